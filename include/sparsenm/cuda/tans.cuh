// SPDX-License-Identifier: Apache-2.0
// Device TANS optimizer (chtsnm Sec. 3.2, App. C, H.5, I): the counterpart of sparsenm::Tans with
// the same configuration (TansConfig), the same equations and conventions (tau, gamma ramp, RMS
// matching, state reset, inactive weights untouched) and the same pass structure:
//   pass 1 (fused): V, P, U_base, sum U_base^2 and |M|            read g, M, V, P; write V, P, U
//   Newton-Schulz via cuBLAS (fp32 / TF32 / bf16, Table A4)      skipped when gamma_t = 0
//   pass 2: sum_M O^2 and sum O^2 (skipped for RmsMatch::None)    read O, M
//   pass 3 (fused): blend, decay, update                          read O, U, M, W; write W
// A step allocates nothing, never synchronises with the host and can be captured in a CUDA graph.
// Differences from the CPU class: gradients are not screened for NaN/Inf on the device (a
// non-finite gradient propagates, as in PyTorch optimizers; TansConfig::nonfinite is ignored),
// and the mask is not checked for 0/1 (it must be a legal mask, as produced by cuda::project_*).
#ifndef SPARSENM_CUDA_TANS_CUH
#define SPARSENM_CUDA_TANS_CUH

#include <cmath>
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../optim/tans.hpp"
#include "detail/optim_kernels.cuh"
#include "detail/reduce.cuh"
#include "error.cuh"
#include "memory.cuh"
#include "newton_schulz.cuh"

namespace sparsenm {
namespace cuda {

template <class S>
class Tans {
  static_assert(std::is_floating_point<S>::value, "cuda::Tans<S>: S must be float or double");

 public:
  /// State V, P (zero) and all scratch are allocated here. `precision` selects the NS arithmetic.
  Tans(Index rows, Index cols, TansConfig cfg = {}, NsPrecision precision = NsPrecision::Native)
      : m_cfg(cfg), m_rows(rows), m_cols(cols), m_ns(rows, cols, precision) {
    m_cfg.validate();
    const std::size_t n = size();
    m_v.resize(n);
    m_p.resize(n);
    m_u.resize(n);
    m_o.resize(n);
    m_v.fill_bytes(0);
    m_p.fill_bytes(0);
    m_grid = int(detail::grid_for((n + 3) / 4, detail::kReduceBlock, 4u * unsigned(sm_count())));
    m_partial.resize(2 * std::size_t(m_grid));
    m_scalars.resize(5);  // sum U^2, |M|, sum_M O^2, sum O^2, s
    SPARSENM_CUDA_CHECK(cudaDeviceSynchronize());
  }

  /// One TANS step. `weight` (in/out), `grad`, `mask`: device, rows x cols row-major.
  /// Uses `handle` for Newton-Schulz (its stream is set to `stream`).
  void step(S* weight, const S* grad, const std::uint8_t* mask, cublasHandle_t handle,
            cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(weight && grad && mask,
                   "cuda::Tans::step: weight, grad and mask must be "
                   "device pointers");
    const std::size_t n = size();
    const double gamma = gamma_for(m_tau);
    const S b1 = S(m_cfg.beta1), b2 = S(m_cfg.beta2), eps = S(m_cfg.eps);
    const S ob1 = S(1.0 - m_cfg.beta1), ob2 = S(1.0 - m_cfg.beta2);
    detail::tans_moments_kernel<S><<<unsigned(m_grid), detail::kReduceBlock, 0, stream>>>(
        grad, mask, m_v.data(), m_p.data(), m_u.data(), n, b1, b2, ob1, ob2, eps, m_partial.data());
    SPARSENM_CUDA_CHECK_LAUNCH("tans_moments_kernel");
    detail::finish_partials_kernel<2>
        <<<1, detail::kReduceBlock, 0, stream>>>(m_partial.data(), m_grid, m_scalars.data());
    SPARSENM_CUDA_CHECK_LAUNCH("finish_partials_kernel");
    const S decay = S(1.0 - m_cfg.lr * m_cfg.weight_decay);
    const S eta = S(m_cfg.lr * std::sqrt(double(m_rows) / double(m_cols)));
    const unsigned eg = detail::grid_for((n + 3) / 4, 256);
    if (gamma == 0.0) {
      detail::tans_apply_base_kernel<S>
          <<<eg, 256, 0, stream>>>(m_u.data(), mask, weight, n, decay, eta);
      SPARSENM_CUDA_CHECK_LAUNCH("tans_apply_base_kernel");
    } else {
      m_ns.run(m_u.data(), m_o.data(), m_cfg.ns_steps, m_cfg.coefficients, handle, stream,
               m_scalars.data());
      const int mode =
          m_cfg.rms == RmsMatch::None ? 0 : (m_cfg.rms == RmsMatch::PreMaskGlobal ? 1 : 2);
      if (mode != 0) {
        detail::tans_o_sums_kernel<S><<<unsigned(m_grid), detail::kReduceBlock, 0, stream>>>(
            m_o.data(), mask, n, m_partial.data());
        SPARSENM_CUDA_CHECK_LAUNCH("tans_o_sums_kernel");
        detail::finish_partials_kernel<2><<<1, detail::kReduceBlock, 0, stream>>>(
            m_partial.data(), m_grid, m_scalars.data() + 2);
        SPARSENM_CUDA_CHECK_LAUNCH("finish_partials_kernel");
      }
      detail::tans_scale_kernel<<<1, 1, 0, stream>>>(
          m_scalars.data(), m_scalars.data() + 2, double(n), mode, m_cfg.eps, m_scalars.data() + 4);
      SPARSENM_CUDA_CHECK_LAUNCH("tans_scale_kernel");
      detail::tans_apply_kernel<S><<<eg, 256, 0, stream>>>(
          m_o.data(), m_u.data(), mask, weight, n, S(gamma), m_scalars.data() + 4, decay, eta);
      SPARSENM_CUDA_CHECK_LAUNCH("tans_apply_kernel");
    }
    ++m_tau;
    ++m_steps;
  }

  /// Topology refresh: tau = 0; V, P reset per TansConfig::reset (`changed`: device 0/1 mask).
  void on_refresh(const std::uint8_t* changed, cudaStream_t stream = nullptr) {
    m_tau = 0;
    if (m_cfg.reset == StateReset::All) {
      SPARSENM_CUDA_CHECK(cudaMemsetAsync(m_v.data(), 0, m_v.bytes(), stream));
      SPARSENM_CUDA_CHECK(cudaMemsetAsync(m_p.data(), 0, m_p.bytes(), stream));
    } else if (m_cfg.reset == StateReset::ChangedEntries) {
      SPARSENM_CHECK(changed != nullptr, "cuda::Tans::on_refresh: changed must be a device mask");
      detail::reset_changed_kernel<S><<<detail::grid_for(size(), 256), 256, 0, stream>>>(
          changed, m_v.data(), m_p.data(), size());
      SPARSENM_CUDA_CHECK_LAUNCH("reset_changed_kernel");
    }
  }

  int steps_since_refresh() const { return m_tau; }
  double gamma_for(int tau) const {
    if (m_cfg.ramp_steps == 0) return m_cfg.gamma_ns;
    return m_cfg.gamma_ns * std::min(1.0, double(tau) / double(m_cfg.ramp_steps));
  }
  const TansConfig& config() const { return m_cfg; }
  long steps() const { return m_steps; }
  Index rows() const { return m_rows; }
  Index cols() const { return m_cols; }
  const DeviceBuffer<S>& exp_avg_sq() const { return m_v; }  ///< V (device)
  const DeviceBuffer<S>& momentum() const { return m_p; }    ///< P (device)
  /// s of the last step that ran Newton-Schulz (synchronises `stream`).
  double last_rms_scale(cudaStream_t stream = nullptr) const {
    double s = 0;
    SPARSENM_CUDA_CHECK(
        cudaMemcpyAsync(&s, m_scalars.data() + 4, sizeof(double), cudaMemcpyDeviceToHost, stream));
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
    return s;
  }

 private:
  std::size_t size() const { return std::size_t(m_rows) * std::size_t(m_cols); }

  TansConfig m_cfg;
  Index m_rows, m_cols;
  NewtonSchulz<S> m_ns;
  DeviceBuffer<S> m_v, m_p, m_u, m_o;
  DeviceBuffer<double> m_partial, m_scalars;
  int m_grid = 1;
  int m_tau = 0;
  long m_steps = 0;
};

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_TANS_CUH
