// SPDX-License-Identifier: Apache-2.0
// Device Newton-Schulz orthogonalisation through cuBLAS (chtsnm Sec. 3.2, App. C Table A4), the
// device counterpart of sparsenm::newton_schulz:
//   X0 = x / (||x||_F + 1e-7);  per step k: A = X X^T, B = a_k I + b_k A + c_k A^2, X <- B X
// on the lower-dimensional side (rows > cols: A = X^T X, X <- X B), with no transposes: the
// row-major data is read as its column-major transpose and the GEMM operands are chosen to match.
// Precision: Native (fp32 for float, fp64 for double), Tf32 (fp32 storage, TF32 tensor cores) or
// Bf16 (bf16 iterates, fp32 accumulation; the last product is written in S).
#ifndef SPARSENM_CUDA_NEWTON_SCHULZ_CUH
#define SPARSENM_CUDA_NEWTON_SCHULZ_CUH

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../optim/newton_schulz.hpp"
#include "detail/ns_kernels.cuh"
#include "detail/reduce.cuh"
#include "error.cuh"
#include "memory.cuh"

namespace sparsenm {
namespace cuda {

/// Arithmetic of the Newton-Schulz GEMMs.
enum class NsPrecision {
  Native,  ///< fp32 for float (no TF32), fp64 for double: the CPU's arithmetic
  Tf32,    ///< float only: fp32 storage, TF32 tensor-core products (~1e-3 relative)
  Bf16     ///< float only: bf16 iterates, fp32 accumulation (~1e-2 relative), as Muon runs NS
};

inline const char* to_string(NsPrecision p) {
  return p == NsPrecision::Native ? "native" : (p == NsPrecision::Tf32 ? "tf32" : "bf16");
}

namespace detail {

/// One column-major GEMM C = alpha op(A) op(B) + beta C through cublasGemmEx in the storage type T
/// (float, double or bf16) and the precision's compute type. C may be stored in Tc.
template <class T, class Tc = T>
void gemm_ex(cublasHandle_t h, NsPrecision prec, cublasOperation_t ta, cublasOperation_t tb, int m,
             int n, int k, const T* A, int lda, const T* B, int ldb, Tc* C, int ldc,
             double alpha = 1.0, double beta = 0.0) {
  if constexpr (std::is_same<T, double>::value) {
    SPARSENM_CUBLAS_CHECK(cublasGemmEx(h, ta, tb, m, n, k, &alpha, A, CUDA_R_64F, lda, B,
                                       CUDA_R_64F, ldb, &beta, C, CUDA_R_64F, ldc,
                                       CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT));
  } else {
    const float fa = float(alpha), fb = float(beta);
    const cudaDataType tt = std::is_same<T, float>::value ? CUDA_R_32F : CUDA_R_16BF;
    const cudaDataType tc = std::is_same<Tc, float>::value ? CUDA_R_32F : CUDA_R_16BF;
    const cublasComputeType_t ct = (std::is_same<T, float>::value && prec == NsPrecision::Native)
                                       ? CUBLAS_COMPUTE_32F_PEDANTIC
                                   : (std::is_same<T, float>::value) ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                     : CUBLAS_COMPUTE_32F;
    SPARSENM_CUBLAS_CHECK(cublasGemmEx(h, ta, tb, m, n, k, &fa, A, tt, lda, B, tt, ldb, &fb, C, tc,
                                       ldc, ct, CUBLAS_GEMM_DEFAULT));
  }
}

}  // namespace detail

/// Reusable device Newton-Schulz for one (rows x cols) shape: all buffers are allocated at
/// construction, `run` allocates nothing and never synchronises (graph-capturable).
template <class S>
class NewtonSchulz {
  static_assert(std::is_floating_point<S>::value, "cuda::NewtonSchulz<S>: float or double");

 public:
  NewtonSchulz(Index rows, Index cols, NsPrecision precision = NsPrecision::Native)
      : m_rows(rows), m_cols(cols), m_prec(precision) {
    SPARSENM_CHECK(rows > 0 && cols > 0, "cuda::NewtonSchulz: shape ", rows, "x", cols,
                   " must be positive");
    SPARSENM_CHECK((std::is_same<S, float>::value || precision == NsPrecision::Native),
                   "cuda::NewtonSchulz<double>: precision ", to_string(precision),
                   " needs float (use Native)");
    const std::size_t n = std::size_t(rows) * std::size_t(cols);
    const std::size_t g = std::size_t(std::min(rows, cols));
    if (precision == NsPrecision::Bf16) {
      for (auto& x : m_xb) x.resize(n);
      m_ab.resize(g * g);
      m_a2b.resize(g * g);
      m_bb.resize(g * g);
    } else {
      m_x[0].resize(n);
      m_x[1].resize(n);
      m_a.resize(g * g);
      m_a2.resize(g * g);
      m_b.resize(g * g);
    }
    m_grid = int(detail::grid_for(n, detail::kReduceBlock, 4u * unsigned(sm_count())));
    m_partial.resize(std::size_t(m_grid));
    m_sumsq.resize(1);
  }

  Index rows() const { return m_rows; }
  Index cols() const { return m_cols; }
  NsPrecision precision() const { return m_prec; }

  /// out = NS_steps(in / (||in||_F + 1e-7)). `in`, `out`: device, rows x cols row-major (may
  /// alias). `d_sumsq`: optional device double holding ||in||_F^2 already (TANS gets it from its
  /// fused pass); when null it is computed here. A zero matrix gives zeros.
  void run(const S* in, S* out, int steps, NsCoefficients coeffs, cublasHandle_t handle,
           cudaStream_t stream = nullptr, const double* d_sumsq = nullptr) {
    check_in_range(steps, 0, 1000, "cuda::NewtonSchulz::run: steps");
    const std::size_t n = std::size_t(m_rows) * std::size_t(m_cols);
    const unsigned grid = unsigned(m_grid);
    if (!d_sumsq) {
      detail::sum_squares_kernel<S>
          <<<grid, detail::kReduceBlock, 0, stream>>>(in, n, m_partial.data());
      SPARSENM_CUDA_CHECK_LAUNCH("sum_squares_kernel");
      detail::finish_partials_kernel<1>
          <<<1, detail::kReduceBlock, 0, stream>>>(m_partial.data(), m_grid, m_sumsq.data());
      SPARSENM_CUDA_CHECK_LAUNCH("finish_partials_kernel");
      d_sumsq = m_sumsq.data();
    }
    SPARSENM_CUBLAS_CHECK(cublasSetStream(handle, stream));
    if (m_prec == NsPrecision::Bf16) {
      if constexpr (std::is_same<S, float>::value)
        run_impl<__nv_bfloat16>(in, out, steps, coeffs, handle, stream, d_sumsq, m_xb, m_ab, m_a2b,
                                m_bb);
    } else {
      run_impl<S>(in, out, steps, coeffs, handle, stream, d_sumsq, m_x, m_a, m_a2, m_b);
    }
  }

 private:
  template <class T, class XB, class GB>
  void run_impl(const S* in, S* out, int steps, NsCoefficients coeffs, cublasHandle_t h,
                cudaStream_t stream, const double* d_sumsq, XB& x, GB& A, GB& A2, GB& B) {
    const std::size_t n = std::size_t(m_rows) * std::size_t(m_cols);
    const unsigned eg = detail::grid_for(n, 256);
    detail::ns_prepare_kernel<S, T>
        <<<eg, 256, 0, stream>>>(in, n, d_sumsq, kNsNormEps, x[0].data());
    SPARSENM_CUDA_CHECK_LAUNCH("ns_prepare_kernel");
    if (steps == 0) {
      detail::convert_kernel<T, S><<<eg, 256, 0, stream>>>(x[0].data(), n, out);
      SPARSENM_CUDA_CHECK_LAUNCH("convert_kernel");
      return;
    }
    const bool col_side = m_rows > m_cols;
    const int R = int(m_rows), C = int(m_cols);
    const int g = col_side ? C : R;
    using Cf = std::conditional_t<std::is_same<T, double>::value, double, float>;
    const unsigned gg = detail::grid_for(std::size_t(g) * std::size_t(g), 256);
    int cur = 0;
    for (int t = 0; t < steps; ++t) {
      const NsTriple tr = ns_coefficients(coeffs, t);
      const T* Z = x[cur].data();  // column-major view: Z = X^T, C x R, ld = C
      if (!col_side)               // A = X X^T = Z^T Z
        detail::gemm_ex<T>(h, m_prec, CUBLAS_OP_T, CUBLAS_OP_N, g, g, C, Z, C, Z, C, A.data(), g);
      else  // A = X^T X = Z Z^T
        detail::gemm_ex<T>(h, m_prec, CUBLAS_OP_N, CUBLAS_OP_T, g, g, R, Z, C, Z, C, A.data(), g);
      detail::gemm_ex<T>(h, m_prec, CUBLAS_OP_N, CUBLAS_OP_N, g, g, g, A.data(), g, A.data(), g,
                         A2.data(), g);
      detail::ns_combine_kernel<T, Cf>
          <<<gg, 256, 0, stream>>>(A.data(), A2.data(), g, Cf(tr.a), Cf(tr.b), Cf(tr.c), B.data());
      SPARSENM_CUDA_CHECK_LAUNCH("ns_combine_kernel");
      const bool last = t + 1 == steps;
      // X <- B X  (rows side: Z <- Z B; cols side: Z <- B Z). The last product goes to `out` in S.
      auto product = [&](auto* dst) {
        if (!col_side)
          detail::gemm_ex<T>(h, m_prec, CUBLAS_OP_N, CUBLAS_OP_N, C, R, R, Z, C, B.data(), g, dst,
                             C);
        else
          detail::gemm_ex<T>(h, m_prec, CUBLAS_OP_N, CUBLAS_OP_N, C, R, C, B.data(), g, Z, C, dst,
                             C);
      };
      if (last) {
        product(out);
      } else {
        product(x[cur ^ 1].data());
        cur ^= 1;
      }
    }
  }

  Index m_rows, m_cols;
  NsPrecision m_prec;
  DeviceBuffer<S> m_x[2], m_a, m_a2, m_b;
  DeviceBuffer<__nv_bfloat16> m_xb[2], m_ab, m_a2b, m_bb;
  DeviceBuffer<double> m_partial, m_sumsq;
  int m_grid = 1;
};

/// Device newton_schulz on a host matrix (convenience; synchronises): the device counterpart of
/// sparsenm::newton_schulz with the same conventions (zero in, zero out; Table A4 or Muon).
template <class S>
Matrix<S> newton_schulz(const Matrix<S>& x, int steps = 5,
                        NsCoefficients c = NsCoefficients::TansTableA4,
                        NsPrecision precision = NsPrecision::Native,
                        cudaStream_t stream = nullptr) {
  check_in_range(steps, 0, 1000, "cuda::newton_schulz: steps");
  check_all_finite(x, "cuda::newton_schulz: x");
  if (x.size() == 0) return x;
  CublasHandle handle;
  NewtonSchulz<S> ns(x.rows(), x.cols(), precision);
  DeviceBuffer<S> d_in = to_device(x, stream), d_out(std::size_t(x.size()));
  ns.run(d_in.data(), d_out.data(), steps, c, handle, stream);
  return to_host(d_out, x.rows(), x.cols(), stream);
}

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_NEWTON_SCHULZ_CUH
