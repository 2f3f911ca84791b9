// SPDX-License-Identifier: Apache-2.0
// The two level-3 products Newton-Schulz needs, on column-major views: a symmetric rank-k update
// (C = alpha * op(A) op(A)^T, lower triangle only: half the flops of a GEMM) and a product with a
// symmetric matrix given by its lower triangle (?symm; as fast as ?gemm with OpenBLAS here).
// With EIGEN_USE_BLAS they call the BLAS ?syrk/?gemm/?symm that Eigen already declares (OpenBLAS
// here); otherwise Eigen's own triangular and self-adjoint products. The two variants have
// different names so a program mixing translation units with and without EIGEN_USE_BLAS has no ODR
// clash.
//
// Never call these inside an OpenMP parallel region: Debian's OpenBLAS is the pthreads build.
#ifndef SPARSENM_OPTIM_DETAIL_NS_KERNELS_HPP
#define SPARSENM_OPTIM_DETAIL_NS_KERNELS_HPP

#include <type_traits>

#include <Eigen/Core>

#include "../../core/types.hpp"

namespace sparsenm {
namespace detail {

template <class S>
using ColMap = Eigen::Map<Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>, 0,
                          Eigen::OuterStride<>>;
template <class S>
using ConstColMap =
    Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>, 0,
               Eigen::OuterStride<>>;

#if SPARSENM_HAS_BLAS
namespace ns_blas {

/// Lower triangle of C (n x n, ldc) = alpha * op(A) op(A)^T; op(A) is n x k. trans: A is k x n.
inline void syrk_lower(bool trans, int n, int k, float alpha, const float* a, int lda, float* c,
                       int ldc) {
  const float beta = 0.0f;
  ssyrk_("L", trans ? "T" : "N", &n, &k, &alpha, a, &lda, &beta, c, &ldc);
}
inline void syrk_lower(bool trans, int n, int k, double alpha, const double* a, int lda, double* c,
                       int ldc) {
  const double beta = 0.0;
  dsyrk_("L", trans ? "T" : "N", &n, &k, &alpha, a, &lda, &beta, c, &ldc);
}
/// C (m x n) = alpha * A (m x k) * B (k x n), all column-major.
inline void gemm_nn(int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                    int ldb, float* c, int ldc) {
  const float beta = 0.0f;
  sgemm_("N", "N", &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
inline void gemm_nn(int m, int n, int k, double alpha, const double* a, int lda, const double* b,
                    int ldb, double* c, int ldc) {
  const double beta = 0.0;
  dgemm_("N", "N", &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
/// C (m x n) = alpha * A B (left: A is m x m) or alpha * B A (right: A is n x n), A symmetric
/// with only its lower triangle read; all column-major.
inline void symm_lower(bool right, int m, int n, float alpha, const float* a, int lda,
                       const float* b, int ldb, float* c, int ldc) {
  const float beta = 0.0f;
  ssymm_(right ? "R" : "L", "L", &m, &n, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
inline void symm_lower(bool right, int m, int n, double alpha, const double* a, int lda,
                       const double* b, int ldb, double* c, int ldc) {
  const double beta = 0.0;
  dsymm_(right ? "R" : "L", "L", &m, &n, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

}  // namespace ns_blas
namespace ns_backend = ns_blas;
#else
namespace ns_eigen {

template <class S>
void syrk_lower(bool trans, int n, int k, S alpha, const S* a, int lda, S* c, int ldc) {
  ColMap<S> C(c, n, n, Eigen::OuterStride<>(ldc));
  C.template triangularView<Eigen::Lower>().setZero();
  if (trans) {
    ConstColMap<S> A(a, k, n, Eigen::OuterStride<>(lda));
    C.template selfadjointView<Eigen::Lower>().rankUpdate(A.transpose(), alpha);
  } else {
    ConstColMap<S> A(a, n, k, Eigen::OuterStride<>(lda));
    C.template selfadjointView<Eigen::Lower>().rankUpdate(A, alpha);
  }
}

template <class S>
void gemm_nn(int m, int n, int k, S alpha, const S* a, int lda, const S* b, int ldb, S* c,
             int ldc) {
  ConstColMap<S> A(a, m, k, Eigen::OuterStride<>(lda));
  ConstColMap<S> B(b, k, n, Eigen::OuterStride<>(ldb));
  ColMap<S> C(c, m, n, Eigen::OuterStride<>(ldc));
  C.noalias() = alpha * (A * B);
}

template <class S>
void symm_lower(bool right, int m, int n, S alpha, const S* a, int lda, const S* b, int ldb, S* c,
                int ldc) {
  ConstColMap<S> B(b, m, n, Eigen::OuterStride<>(ldb));
  ColMap<S> C(c, m, n, Eigen::OuterStride<>(ldc));
  if (right) {
    ConstColMap<S> A(a, n, n, Eigen::OuterStride<>(lda));
    C.noalias() = alpha * (B * A.template selfadjointView<Eigen::Lower>());
  } else {
    ConstColMap<S> A(a, m, m, Eigen::OuterStride<>(lda));
    C.noalias() = alpha * (A.template selfadjointView<Eigen::Lower>() * B);
  }
}

}  // namespace ns_eigen
namespace ns_backend = ns_eigen;
#endif

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_DETAIL_NS_KERNELS_HPP
