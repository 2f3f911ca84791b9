// The vectorised uniform fill equals the per-counter Philox functions bit for bit.
#include <gtest/gtest.h>

#include <vector>

#include <sparsenm/core/random_fill.hpp>

using namespace sparsenm;

template <class S>
void check_fill_matches_scalar() {
  const Philox rng(0x1234abcdull, 77);
  // Offsets and lengths that hit the head, the 64-value body and the tail.
  for (std::uint64_t first : {0ull, 1ull, 3ull, 4ull, 61ull, (1ull << 40) + 2})
    for (Index n : {0, 1, 5, 63, 64, 65, 200, 1031}) {
      std::vector<S> fast(n), ref(n);
      detail::fill_uniform(rng, first, fast.data(), n);
      detail::scalar::fill_uniform(rng, first, ref.data(), n);
      for (Index k = 0; k < n; ++k) {
        ASSERT_EQ(fast[k], ref[k]) << "first " << first << " n " << n << " k " << k;
        if constexpr (std::is_same_v<S, float>)
          ASSERT_EQ(ref[k], rng.uniform_float(first + k));
        else
          ASSERT_EQ(ref[k], rng.uniform(first + k));
      }
    }
}

TEST(RandomFill, FloatMatchesScalar) { check_fill_matches_scalar<float>(); }
TEST(RandomFill, DoubleMatchesScalar) { check_fill_matches_scalar<double>(); }

TEST(RandomFill, MatrixUsesLinearIndexAndIsThreadIndependent) {
  const Philox rng(5);
  set_thread_count(1);
  const Matrix<float> one = uniform_matrix<float>(37, 1500, rng, 11);
  set_thread_count(2);
  const Matrix<float> two = uniform_matrix<float>(37, 1500, rng, 11);
  EXPECT_TRUE((one.array() == two.array()).all());
  EXPECT_EQ(one(3, 7), rng.uniform_float(11 + 3 * 1500 + 7));
  // A block of a bigger matrix (outer stride != cols) still uses its own linear index.
  Matrix<double> big = Matrix<double>::Zero(10, 20);
  fill_uniform<double>(big.block(2, 3, 4, 5), rng);
  EXPECT_EQ(big(3, 4), rng.uniform(1 * 5 + 1));
  EXPECT_EQ(big(0, 0), 0.0);
}
