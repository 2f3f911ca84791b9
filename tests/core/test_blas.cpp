// SPDX-License-Identifier: Apache-2.0
// The thread policy next to BLAS (core/blas.hpp): parallel_product against a plain triple loop in
// double (closed-form reference), bit-identical for 1 and 2 OpenMP threads on every block split
// (rows or columns, partial last block, one block), and BLAS set to one thread in a program linked
// with sparsenm::blas.
#include <gtest/gtest.h>

#include <sparsenm/core.hpp>

namespace {

using sparsenm::Index;
using sparsenm::Matrix;

Matrix<double> naive(const Matrix<double>& a, const Matrix<double>& b) {
  Matrix<double> c = Matrix<double>::Zero(a.rows(), b.cols());
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < b.cols(); ++j)
      for (Index k = 0; k < a.cols(); ++k) c(i, j) += a(i, k) * b(k, j);
  return c;
}

template <class S>
Matrix<S> random(Index r, Index c, std::uint64_t seed) {
  return (2 * sparsenm::uniform_matrix<S>(r, c, sparsenm::Philox(seed)).array() - 1).matrix();
}

TEST(ParallelProduct, MatchesTheTripleLoopAndIsThreadCountInvariant) {
  const int saved = sparsenm::thread_count();
  struct Shape {
    Index m, k, n;
  };
  // rows >= cols (split by rows, partial block), cols > rows (split by columns), one block.
  for (const Shape s : {Shape{300, 70, 130}, Shape{40, 90, 333}, Shape{20, 30, 50}}) {
    const Matrix<float> a = random<float>(s.m, s.k, 1), b = random<float>(s.k, s.n, 2);
    Matrix<float> c1(s.m, s.n), c2(s.m, s.n), ct(s.n, s.m);
    sparsenm::set_thread_count(1);
    sparsenm::parallel_product(c1, a, b);
    sparsenm::set_thread_count(2);
    sparsenm::parallel_product(c2, a, b);
    sparsenm::parallel_product(ct, b.transpose(), a.transpose());  // operands as expressions
    EXPECT_TRUE(c1 == c2) << s.m << "x" << s.n;
    const Matrix<double> ref = naive(a.cast<double>(), b.cast<double>());
    // float GEMM against the exact product: |error| <= k * eps * sum |a||b| (here <= k eps k).
    const double bound = double(s.k) * 6e-8 * double(s.k);
    EXPECT_LT((c1.cast<double>() - ref).cwiseAbs().maxCoeff(), bound);
    EXPECT_LT((ct.transpose().cast<double>() - ref).cwiseAbs().maxCoeff(), bound);
  }
  sparsenm::set_thread_count(saved);
}

TEST(ParallelProduct, BlasRunsSingleThreadedUnderThePolicy) {
#if defined(SPARSENM_OPENBLAS) && !defined(SPARSENM_KEEP_BLAS_THREADS)
  EXPECT_EQ(sparsenm::blas_threads(), 1);
#else
  GTEST_SKIP() << "not linked with sparsenm::blas";
#endif
}

}  // namespace
