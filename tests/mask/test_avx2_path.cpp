// SPDX-License-Identifier: Apache-2.0
// Compiles the mask kernels for AVX2 even on an AVX-512 machine (SPARSENM_NO_AVX512), and checks
// them against the scalar references. Only the ISA-namespaced kernels (detail::avx2::...) are
// called here: every other template would have the same symbol as in the AVX-512 translation
// units (an ODR clash the linker would resolve silently).
#define SPARSENM_NO_AVX512 1
#include <gtest/gtest.h>

#include "mask/mask_test_utils.hpp"

using namespace sparsenm;

#if SPARSENM_HAS_AVX2 && !SPARSENM_HAS_AVX512

namespace {

template <int M, int N>
void check_rowwise_avx2(bool ties) {
  const Matrix<float> s = test::random_scores<float>(7, 8 * 37, unsigned(M * 10 + N), ties);
  Mask got(s.rows(), s.cols()), ref(s.rows(), s.cols());
  for (Index i = 0; i < s.rows(); ++i) {
    const bool nan = detail::avx2::rowwise_run_simd<M, N>(s.data() + i * s.cols(), s.cols(),
                                                          got.data() + i * s.cols());
    EXPECT_FALSE(nan);
    detail::scalar::rowwise_run(s.data() + i * s.cols(), s.cols(), M, N, ref.data() + i * s.cols());
  }
  EXPECT_EQ(got, ref) << N << ":" << M;
  EXPECT_EQ(ref, test::rowwise_reference(s, NM{N, M}));
}

template <int N>
void check_transposable_avx2(bool ties) {
  const Index tiles = 29;  // three 8-tile AVX2 steps and a scalar tail
  const Matrix<float> s = test::random_scores<float>(12, 4 * tiles, unsigned(50 + N), ties);
  Mask got(s.rows(), s.cols()), ref(s.rows(), s.cols());
  for (Index b = 0; b < 3; ++b) {
    EXPECT_FALSE(detail::avx2::transposable4_band_simd<N>(
        s.data() + 4 * b * s.cols(), s.cols(), 0, tiles, got.data() + 4 * b * s.cols(), s.cols()));
    detail::scalar::transposable4_band<N>(s.data() + 4 * b * s.cols(), s.cols(), 0, tiles,
                                          ref.data() + 4 * b * s.cols(), s.cols());
  }
  EXPECT_EQ(got, ref) << N;
  EXPECT_TRUE(is_transposable_legal(got, NM{N, 4}));
}

}  // namespace

TEST(Avx2Path, RowwiseEqualsScalar) {
  for (bool ties : {false, true}) {
    check_rowwise_avx2<4, 1>(ties);
    check_rowwise_avx2<4, 2>(ties);
    check_rowwise_avx2<4, 3>(ties);
    check_rowwise_avx2<8, 2>(ties);
    check_rowwise_avx2<8, 4>(ties);
  }
}

TEST(Avx2Path, TransposableEqualsScalar) {
  for (bool ties : {false, true}) {
    check_transposable_avx2<1>(ties);
    check_transposable_avx2<2>(ties);
    check_transposable_avx2<3>(ties);
  }
}

TEST(Avx2Path, NonFiniteDetected) {
  Matrix<float> s = test::random_scores<float>(4, 64, 3);
  s(2, 40) = std::numeric_limits<float>::quiet_NaN();
  Mask out(4, 64);
  EXPECT_TRUE((detail::avx2::rowwise_run_simd<4, 2>(s.data() + 2 * 64, 64, out.data())));
  EXPECT_TRUE((detail::avx2::transposable4_band_simd<2>(s.data(), 64, 0, 16, out.data(), 64)));
  s(2, 40) = std::numeric_limits<float>::infinity();
  EXPECT_TRUE((detail::avx2::transposable4_band_simd<2>(s.data(), 64, 0, 16, out.data(), 64)));
}

#else
TEST(Avx2Path, RowwiseEqualsScalar) { GTEST_SKIP() << "compiled without AVX2"; }
#endif
