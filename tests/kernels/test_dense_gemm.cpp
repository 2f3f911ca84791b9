// SPDX-License-Identifier: Apache-2.0
// The packed dense GEMM / SYRK (kernels/detail/dense_gemm.hpp) against a long-double product of the
// logical operands (entrywise error bound from the sum of |a||b|), against its scalar reference
// micro-kernel (bit for bit), and across thread counts (bit for bit). Shapes cover partial MR / NR
// tiles, several k-blocks (KC = 512), m-blocks (MC = 256) and column chunks (NC = 2064), every way
// of reading an operand (plain, transposed, symmetric lower), and the lower-triangle-only mode.
#include <gtest/gtest.h>

#include <sparsenm/core/parallel.hpp>
#include <sparsenm/core/philox.hpp>
#include <sparsenm/kernels/detail/dense_gemm.hpp>

#include <cmath>
#include <limits>
#include <vector>

namespace {

using sparsenm::Index;
using sparsenm::Philox;
using sparsenm::detail::GemmOperand;
using sparsenm::detail::GemmRead;
using sparsenm::detail::packed_gemm;

template <class S>
std::vector<S> random_storage(Index n, std::uint64_t seed) {
  const Philox rng(seed);
  std::vector<S> v(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) v[std::size_t(i)] = S(2 * rng.uniform(std::uint64_t(i)) - 1);
  return v;
}

// Element (r, c) of the logical operand, exactly as GemmRead documents it.
template <class S>
S logical(const GemmOperand<S>& op, Index r, Index c) {
  switch (op.read) {
    case GemmRead::Plain:
      return op.p[r + c * op.ld];
    case GemmRead::Transposed:
      return op.p[c + r * op.ld];
    case GemmRead::SymmetricLower:
      return r >= c ? op.p[r + c * op.ld] : op.p[c + r * op.ld];
  }
  return S(0);
}

// Storage for a logical rows x cols operand read as `read` (ld = storage rows + 3 to test ld).
template <class S>
struct Operand {
  std::vector<S> data;
  GemmOperand<S> op;
  Operand(Index rows, Index cols, GemmRead read, std::uint64_t seed) {
    const Index srows = read == GemmRead::Transposed ? cols : rows;
    const Index scols = read == GemmRead::Transposed ? rows : cols;
    const Index ld = srows + 3;
    data = random_storage<S>(ld * scols, seed);
    op = {data.data(), ld, read};
  }
};

struct Case {
  Index m, n, k;
  GemmRead a, b;
  bool lower;
};

template <class S>
void check_case(const Case& cs) {
  const Operand<S> A(cs.m, cs.k, cs.a, 100 + cs.m * 7 + cs.k);
  const Operand<S> B(cs.k, cs.n, cs.b, 200 + cs.n * 5 + cs.k);
  const Index ldc = cs.m + 2;
  const S sentinel = S(-12345);
  const S alpha = S(0.75);
  std::vector<S> c(std::size_t(ldc * cs.n), sentinel), c_ref(c), c1(c);
  sparsenm::set_thread_count(2);
  packed_gemm<S>(cs.m, cs.n, cs.k, alpha, A.op, B.op, c.data(), ldc, cs.lower);
  packed_gemm<S>(cs.m, cs.n, cs.k, alpha, A.op, B.op, c_ref.data(), ldc, cs.lower, true);
  sparsenm::set_thread_count(1);
  packed_gemm<S>(cs.m, cs.n, cs.k, alpha, A.op, B.op, c1.data(), ldc, cs.lower);
  sparsenm::set_thread_count(2);
  const long double eps = std::numeric_limits<S>::epsilon();
  Index bad = 0, bitdiff = 0, threaddiff = 0, touched = 0;
  for (Index j = 0; j < cs.n; ++j)
    for (Index i = 0; i < cs.m; ++i) {
      const std::size_t at = std::size_t(i + j * ldc);
      if (cs.lower && i < j) {
        touched += c[at] != sentinel || c_ref[at] != sentinel || c1[at] != sentinel;
        continue;
      }
      long double sum = 0, mag = 0;
      for (Index p = 0; p < cs.k; ++p) {
        const long double t = (long double)logical(A.op, i, p) * logical(B.op, p, j);
        sum += t;
        mag += std::fabs(t);
      }
      sum *= alpha;
      mag *= alpha;
      // Each entry is a chain of k FMAs plus one scaling per k-block: |error| <= (k + 8) eps mag.
      if (std::fabs((long double)c[at] - sum) > (cs.k + 8) * eps * mag + 1e-30L) ++bad;
      bitdiff += c[at] != c_ref[at];
      threaddiff += c[at] != c1[at];
    }
  for (std::size_t j = std::size_t(cs.n) * ldc; j < c.size(); ++j) touched += c[j] != sentinel;
  for (Index j = 0; j < cs.n; ++j)
    for (Index i = cs.m; i < ldc; ++i) touched += c[std::size_t(i + j * ldc)] != sentinel;
  const auto what = ::testing::Message()
                    << "m " << cs.m << " n " << cs.n << " k " << cs.k << " reads " << int(cs.a)
                    << "," << int(cs.b) << " lower " << cs.lower;
  EXPECT_EQ(bad, 0) << what;
  EXPECT_EQ(bitdiff, 0) << what << " (vector vs scalar reference micro-kernel)";
  EXPECT_EQ(threaddiff, 0) << what << " (1 vs 2 threads)";
  EXPECT_EQ(touched, 0) << what << " (entries outside the result were written)";
}

template <class S>
class DenseGemmTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(DenseGemmTyped, Scalars, ::testing::internal::DefaultNameGenerator);

TYPED_TEST(DenseGemmTyped, GeneralShapesAllReadsMatchReference) {
  using S = TypeParam;
  const GemmRead reads[] = {GemmRead::Plain, GemmRead::Transposed};
  const Index shapes[][3] = {{1, 1, 1},     {33, 13, 7},     {70, 25, 513},
                             {300, 37, 29}, {31, 100, 1100}, {17, 2100, 5}};
  for (const auto& sh : shapes)
    for (GemmRead a : reads)
      for (GemmRead b : reads) check_case<S>({sh[0], sh[1], sh[2], a, b, false});
}

TYPED_TEST(DenseGemmTyped, SymmetricOperandsAndLowerTriangle) {
  using S = TypeParam;
  for (Index g : {Index(5), Index(45), Index(290), Index(530)}) {
    // SYRK as Newton-Schulz uses it: L L^T from plain / transposed storage, lower triangle only.
    check_case<S>({g, g, 61, GemmRead::Transposed, GemmRead::Plain, true});
    check_case<S>({g, g, 61, GemmRead::Plain, GemmRead::Transposed, true});
    // Products with a symmetric factor stored as its lower triangle, from either side.
    check_case<S>({g, 29, g, GemmRead::SymmetricLower, GemmRead::Plain, false});
    check_case<S>({29, g, g, GemmRead::Plain, GemmRead::SymmetricLower, false});
    // Symmetric x symmetric, full and lower-only.
    check_case<S>({g, g, g, GemmRead::SymmetricLower, GemmRead::SymmetricLower, false});
    check_case<S>({g, g, g, GemmRead::SymmetricLower, GemmRead::SymmetricLower, true});
  }
}

TEST(DenseGemm, EmptyInnerDimensionGivesZeros) {
  std::vector<float> a(12, 1.f), c(12, 7.f);
  packed_gemm<float>(3, 4, 0, 1.f, {a.data(), 3, GemmRead::Plain}, {a.data(), 1, GemmRead::Plain},
                     c.data(), 3, true);
  for (Index j = 0; j < 4; ++j)
    for (Index i = 0; i < 3; ++i) EXPECT_EQ(c[std::size_t(i + 3 * j)], i >= j ? 0.f : 7.f);
}

TEST(DenseGemm, InsideAParallelRegionRunsSerially) {
  const Operand<float> A(64, 40, GemmRead::Plain, 1), B(40, 50, GemmRead::Plain, 2);
  std::vector<float> ref(64 * 50), got(2 * 64 * 50);
  packed_gemm<float>(64, 50, 40, 1.f, A.op, B.op, ref.data(), 64, false);
  sparsenm::parallel_for(0, 2, [&](Index t) {
    packed_gemm<float>(64, 50, 40, 1.f, A.op, B.op, got.data() + t * 64 * 50, 64, false);
  });
  for (std::size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(got[i], ref[i]);
    EXPECT_EQ(got[i + ref.size()], ref[i]);
  }
}

}  // namespace
