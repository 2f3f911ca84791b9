// SPDX-License-Identifier: Apache-2.0
// Device CH-L3n link-prediction scores (CHTs24 Alg. 1 stage 1, App. B), the counterpart of
// sparsenm::ch2_l3n_scores / ch3_l3n_scores, in the GEMM formulation of the reference code:
//   DD = M Mᵀ, TT = Mᵀ M       bf16 tensor-core GEMMs with fp32 accumulation: EXACT for 0/1
//                              inputs (counts < 2^24), so every weight below sees exact counts
//   F_D, F_T                   elementwise (degrees read off the diagonals)
//   S = F_D M + M F_Tᵀ         two GEMMs in S (fp32 without TF32, or fp64), then S ⊙ (1 − M)
// Row-major data is read as its column-major transpose, so no transposes are materialised.
#ifndef SPARSENM_CUDA_CH_SCORES_CUH
#define SPARSENM_CUDA_CH_SCORES_CUH

#include <cstdint>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../topology/ch_scores.hpp"
#include "detail/ch_kernels.cuh"
#include "error.cuh"
#include "memory.cuh"
#include "newton_schulz.cuh"

namespace sparsenm {
namespace cuda {

/// Reusable workspace + runner for one (rows x cols) mask shape.
template <class S>
class ChScores {
  static_assert(std::is_floating_point<S>::value, "cuda::ChScores<S>: float or double");

 public:
  ChScores(Index rows, Index cols) : m_rows(rows), m_cols(cols) {
    SPARSENM_CHECK(rows > 0 && cols > 0, "cuda::ChScores: shape ", rows, "x", cols,
                   " must be positive");
    const std::size_t r = std::size_t(rows), c = std::size_t(cols);
    m_ms.resize(r * c);
    m_mb.resize(r * c);
    m_dd.resize(r * r);
    m_tt.resize(c * c);
    m_fd.resize(r * r);
    m_ft.resize(c * c);
    m_bad.resize(1);
  }

  /// out (device, rows x cols row-major) = CH-L3n scores of the device 0/1 `mask`.
  /// `bad_flag` (optional device int) is set when the mask holds a value other than 0/1.
  void run(const std::uint8_t* mask, S* out, cublasHandle_t h, cudaStream_t stream = nullptr,
           ChRule rule = ChRule::Ch2L3n, int* bad_flag = nullptr) {
    const int R = int(m_rows), C = int(m_cols);
    const std::size_t n = std::size_t(m_rows) * std::size_t(m_cols);
    SPARSENM_CUBLAS_CHECK(cublasSetStream(h, stream));
    detail::mask_to_float_kernel<S>
        <<<detail::grid_for(n, 256), 256, 0, stream>>>(mask, n, m_ms.data(), m_mb.data(), bad_flag);
    SPARSENM_CUDA_CHECK_LAUNCH("mask_to_float_kernel");
    // Column-major view: Mc = Mᵀ (C x R, ld C).
    const __nv_bfloat16* Mb = m_mb.data();
    detail::gemm_ex<__nv_bfloat16, float>(h, NsPrecision::Bf16, CUBLAS_OP_T, CUBLAS_OP_N, R, R, C,
                                          Mb, C, Mb, C, m_dd.data(), R);  // DD = Mcᵀ Mc
    detail::gemm_ex<__nv_bfloat16, float>(h, NsPrecision::Bf16, CUBLAS_OP_N, CUBLAS_OP_T, C, C, R,
                                          Mb, C, Mb, C, m_tt.data(), C);  // TT = Mc Mcᵀ
    const bool ch2 = rule == ChRule::Ch2L3n;
    detail::ch_weights_kernel<S><<<detail::grid_for(std::size_t(R) * R, 256), 256, 0, stream>>>(
        m_dd.data(), R, ch2, m_fd.data());
    SPARSENM_CUDA_CHECK_LAUNCH("ch_weights_kernel");
    detail::ch_weights_kernel<S><<<detail::grid_for(std::size_t(C) * C, 256), 256, 0, stream>>>(
        m_tt.data(), C, ch2, m_ft.data());
    SPARSENM_CUDA_CHECK_LAUNCH("ch_weights_kernel");
    // Sᵀ = Mc F_Dᵀ + F_T Mc   (C x R column-major = S row-major)
    const S* Ms = m_ms.data();
    detail::gemm_ex<S>(h, NsPrecision::Native, CUBLAS_OP_N, CUBLAS_OP_T, C, R, R, Ms, C,
                       m_fd.data(), R, out, C);
    detail::gemm_ex<S>(h, NsPrecision::Native, CUBLAS_OP_N, CUBLAS_OP_N, C, R, C, m_ft.data(), C,
                       Ms, C, out, C, 1.0, 1.0);
    detail::ch_mask_out_kernel<S><<<detail::grid_for(n, 256), 256, 0, stream>>>(mask, n, out);
    SPARSENM_CUDA_CHECK_LAUNCH("ch_mask_out_kernel");
  }

 private:
  Index m_rows, m_cols;
  DeviceBuffer<S> m_ms, m_fd, m_ft;
  DeviceBuffer<__nv_bfloat16> m_mb;
  DeviceBuffer<float> m_dd, m_tt;
  DeviceBuffer<int> m_bad;
};

/// Host convenience (synchronises): CH2-L3n scores of a host mask, computed on the device.
/// Throws sparsenm::Error if the mask holds values other than 0/1 (like the CPU function).
template <class S>
Matrix<S> ch2_l3n_scores(const Mask& mask, ChRule rule = ChRule::Ch2L3n,
                         cudaStream_t stream = nullptr) {
  check_binary(mask, "cuda::ch2_l3n_scores: mask");
  Matrix<S> out = Matrix<S>::Zero(mask.rows(), mask.cols());
  if (mask.size() == 0) return out;
  CublasHandle h;
  ChScores<S> ch(mask.rows(), mask.cols());
  DeviceBuffer<std::uint8_t> d_m(std::size_t(mask.size()));
  d_m.upload(mask.data(), std::size_t(mask.size()), stream);
  DeviceBuffer<S> d_o(std::size_t(mask.size()));
  ch.run(d_m.data(), d_o.data(), h, stream, rule);
  d_o.download(out.data(), std::size_t(out.size()), stream);
  return out;
}

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_CH_SCORES_CUH
