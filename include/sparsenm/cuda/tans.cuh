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

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
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
  double gamma_for(int tau) const { return m_cfg.gamma_at(tau); }
  const TansConfig& config() const { return m_cfg; }
  /// Changes the step size from the next step on (schedules; sparsenm::Tans::set_lr). eta is
  /// computed on the host when a step is enqueued, so a captured graph keeps its lr.
  void set_lr(double lr) { m_cfg.set_lr(lr, "cuda::Tans::set_lr"); }
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

/// Device TANS on an N:M compressed weight (the counterpart of sparsenm::Tans's compressed route,
/// optim/tans.hpp, same TansConfig): V, P and U_base are kept for the active entries only, in the
/// layout of NMCompressed::values (rows x cols / m * n; e.g. SparseLinear24::values_data() and
/// grad_data()), and the slots' in-group indices are a device byte array of the same layout
/// (SparseLinear24::indices_data()). Passes 1 and 3 run over the compressed arrays (every slot is
/// active); the Newton-Schulz input is a per-step dense scratch: U_base scattered into zeros
/// (chtsnm Sec. 3.2 orthogonalises the whole masked update), and O is gathered back at the
/// active slots. PostMaskActive sums O over the slots, PreMaskGlobal over the dense shape, as the
/// CPU route. Device memory: 4 compressed arrays of S plus 2 dense rows x cols scratch arrays.
/// A step allocates nothing and never synchronises with the host.
template <class S>
class TansCompressed {
  static_assert(std::is_floating_point<S>::value,
                "cuda::TansCompressed<S>: S must be float or double");

 public:
  TansCompressed(Index rows, Index cols, NM nm, TansConfig cfg = {},
                 NsPrecision precision = NsPrecision::Native)
      : m_cfg(cfg), m_rows(rows), m_cols(cols), m_nm(nm), m_ns(rows, cols, precision) {
    m_cfg.validate();
    check_nm(nm, "cuda::TansCompressed: nm");
    SPARSENM_CHECK(rows > 0 && cols > 0, "cuda::TansCompressed: shape ", rows, "x", cols,
                   " must be positive");
    check_divisible(cols, nm.m, "cuda::TansCompressed: cols", "nm.m");
    const std::size_t k = slots();
    m_v.resize(k);
    m_p.resize(k);
    m_u.resize(k);
    m_oc.resize(k);
    m_ones.resize(k);
    m_v.fill_bytes(0);
    m_p.fill_bytes(0);
    m_ones.fill_bytes(1);
    m_dense.resize(dense_size());
    m_o.resize(dense_size());
    const std::size_t big = std::max(k, dense_size());
    m_grid = int(detail::grid_for((big + 3) / 4, detail::kReduceBlock, 4u * unsigned(sm_count())));
    m_partial.resize(2 * std::size_t(m_grid));
    m_scalars.resize(7);  // sum U^2, count, sum_M O^2, sum O^2, s, scratch pair
    SPARSENM_CUDA_CHECK(cudaDeviceSynchronize());
  }

  /// One TANS step on the device compressed `values` with `grad_values` (both rows x k), slot
  /// indices `indices` (rows x k bytes). Uses `handle` for Newton-Schulz on `stream`.
  void step(S* values, const S* grad_values, const std::uint8_t* indices, cublasHandle_t handle,
            cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(values && grad_values && indices,
                   "cuda::TansCompressed::step: values, grad_values and indices must be device "
                   "pointers");
    const std::size_t k = slots(), nd = dense_size();
    const double gamma = gamma_for(m_tau);
    const S b1 = S(m_cfg.beta1), b2 = S(m_cfg.beta2), eps = S(m_cfg.eps);
    const S ob1 = S(1.0 - m_cfg.beta1), ob2 = S(1.0 - m_cfg.beta2);
    const unsigned rg = unsigned(m_grid);
    detail::tans_moments_kernel<S><<<rg, detail::kReduceBlock, 0, stream>>>(
        grad_values, m_ones.data(), m_v.data(), m_p.data(), m_u.data(), k, b1, b2, ob1, ob2, eps,
        m_partial.data());
    SPARSENM_CUDA_CHECK_LAUNCH("tans_moments_kernel");
    detail::finish_partials_kernel<2>
        <<<1, detail::kReduceBlock, 0, stream>>>(m_partial.data(), m_grid, m_scalars.data());
    SPARSENM_CUDA_CHECK_LAUNCH("finish_partials_kernel");
    const S decay = S(1.0 - m_cfg.lr * m_cfg.weight_decay);
    const S eta = S(m_cfg.lr * std::sqrt(double(m_rows) / double(m_cols)));
    const unsigned eg = detail::grid_for((k + 3) / 4, 256);
    if (gamma == 0.0) {
      detail::tans_apply_base_kernel<S>
          <<<eg, 256, 0, stream>>>(m_u.data(), m_ones.data(), values, k, decay, eta);
      SPARSENM_CUDA_CHECK_LAUNCH("tans_apply_base_kernel");
    } else {
      // U_base is 0 off the mask: scatter it into the dense Newton-Schulz input.
      SPARSENM_CUDA_CHECK(cudaMemsetAsync(m_dense.data(), 0, m_dense.bytes(), stream));
      const unsigned sg = detail::grid_for(k, 256);
      detail::scatter_slots_kernel<S>
          <<<sg, 256, 0, stream>>>(m_u.data(), indices, std::size_t(m_rows), std::size_t(m_cols),
                                   m_nm.n, m_nm.m, m_dense.data());
      SPARSENM_CUDA_CHECK_LAUNCH("scatter_slots_kernel");
      m_ns.run(m_dense.data(), m_o.data(), m_cfg.ns_steps, m_cfg.coefficients, handle, stream,
               m_scalars.data());
      detail::gather_slots_kernel<S>
          <<<sg, 256, 0, stream>>>(m_o.data(), indices, std::size_t(m_rows), std::size_t(m_cols),
                                   m_nm.n, m_nm.m, m_oc.data());
      SPARSENM_CUDA_CHECK_LAUNCH("gather_slots_kernel");
      int mode = 0;
      double count = double(k);
      if (m_cfg.rms == RmsMatch::PostMaskActive) {
        // {sum over the slots of O^2 (twice)} -> scalars[2..3]; the scale uses scalars[2].
        mode = 2;
        detail::tans_o_sums_kernel<S><<<rg, detail::kReduceBlock, 0, stream>>>(
            m_oc.data(), m_ones.data(), k, m_partial.data());
        SPARSENM_CUDA_CHECK_LAUNCH("tans_o_sums_kernel");
        detail::finish_partials_kernel<2><<<1, detail::kReduceBlock, 0, stream>>>(
            m_partial.data(), m_grid, m_scalars.data() + 2);
        SPARSENM_CUDA_CHECK_LAUNCH("finish_partials_kernel");
      } else if (m_cfg.rms == RmsMatch::PreMaskGlobal) {
        // {., sum O^2 over the dense shape} -> scalars[2..3]; the scale uses scalars[3]. The
        // mask argument only feeds the unused active sum: any nd readable bytes do (O's own).
        mode = 1;
        count = double(nd);
        detail::tans_o_sums_kernel<S><<<rg, detail::kReduceBlock, 0, stream>>>(
            m_o.data(), reinterpret_cast<const std::uint8_t*>(m_o.data()), nd, m_partial.data());
        SPARSENM_CUDA_CHECK_LAUNCH("tans_o_sums_kernel");
        detail::finish_partials_kernel<2><<<1, detail::kReduceBlock, 0, stream>>>(
            m_partial.data(), m_grid, m_scalars.data() + 2);
        SPARSENM_CUDA_CHECK_LAUNCH("finish_partials_kernel");
      }
      detail::tans_scale_kernel<<<1, 1, 0, stream>>>(m_scalars.data(), m_scalars.data() + 2, count,
                                                     mode, m_cfg.eps, m_scalars.data() + 4);
      SPARSENM_CUDA_CHECK_LAUNCH("tans_scale_kernel");
      detail::tans_apply_kernel<S><<<eg, 256, 0, stream>>>(m_oc.data(), m_u.data(), m_ones.data(),
                                                           values, k, S(gamma),
                                                           m_scalars.data() + 4, decay, eta);
      SPARSENM_CUDA_CHECK_LAUNCH("tans_apply_kernel");
    }
    ++m_tau;
    ++m_steps;
  }

  /// After a topology refresh (sparsenm::Tans::remap): tau = 0; StateReset::All zeroes V and P,
  /// otherwise kept slots take their source slot's V and P and regrown ones start at 0.
  void remap(const SlotMap& map, cudaStream_t stream = nullptr) {
    check_shape(map.source, m_rows, Index(slots_per_row()), "cuda::TansCompressed::remap: map");
    m_tau = 0;
    if (m_cfg.reset == StateReset::All) {
      m_v.fill_bytes(0, stream);
      m_p.fill_bytes(0, stream);
      SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
      return;
    }
    const int n = map.nm.n;
    SPARSENM_CHECK(map.nm == m_nm, "cuda::TansCompressed::remap: map.nm = ", map.nm,
                   " but this optimizer is ", m_nm);
    for (Index q = 0; q < map.source.size(); ++q)
      SPARSENM_CHECK(map.source.data()[q] >= -1 && map.source.data()[q] < n,
                     "cuda::TansCompressed::remap: source entry ", q, " = ",
                     int(map.source.data()[q]), " must be -1 or in [0, ", n, ")");
    m_source.resize(slots());
    SPARSENM_CUDA_CHECK(cudaMemcpyAsync(m_source.data(), map.source.data(), slots(),
                                        cudaMemcpyHostToDevice, stream));
    const std::size_t groups = slots() / std::size_t(n);
    detail::remap_slots_kernel<S><<<detail::grid_for(groups, 256), 256, 0, stream>>>(
        m_v.data(), m_p.data(), m_source.data(), groups, n);
    SPARSENM_CUDA_CHECK_LAUNCH("remap_slots_kernel");
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));  // the host map may go away on return
  }

  int steps_since_refresh() const { return m_tau; }
  double gamma_for(int tau) const { return m_cfg.gamma_at(tau); }
  const TansConfig& config() const { return m_cfg; }
  /// Changes the step size from the next step on (schedules; sparsenm::Tans::set_lr). eta is
  /// computed on the host when a step is enqueued, so a captured graph keeps its lr.
  void set_lr(double lr) { m_cfg.set_lr(lr, "cuda::TansCompressed::set_lr"); }
  long steps() const { return m_steps; }
  const DeviceBuffer<S>& exp_avg_sq() const { return m_v; }  ///< V of the slots (device)
  const DeviceBuffer<S>& momentum() const { return m_p; }    ///< P of the slots (device)
  /// s of the last step that ran Newton-Schulz (synchronises `stream`).
  double last_rms_scale(cudaStream_t stream = nullptr) const {
    double s = 0;
    SPARSENM_CUDA_CHECK(
        cudaMemcpyAsync(&s, m_scalars.data() + 4, sizeof(double), cudaMemcpyDeviceToHost, stream));
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
    return s;
  }
  /// Bytes of persistent state (V, P) and of per-step scratch (U, O slots, ones, dense U and O).
  std::size_t state_bytes() const { return m_v.bytes() + m_p.bytes(); }
  std::size_t scratch_bytes() const {
    return m_u.bytes() + m_oc.bytes() + m_ones.bytes() + m_dense.bytes() + m_o.bytes();
  }

 private:
  std::size_t slots_per_row() const {
    return std::size_t(m_cols) / std::size_t(m_nm.m) * std::size_t(m_nm.n);
  }
  std::size_t slots() const { return std::size_t(m_rows) * slots_per_row(); }
  std::size_t dense_size() const { return std::size_t(m_rows) * std::size_t(m_cols); }

  TansConfig m_cfg;
  Index m_rows, m_cols;
  NM m_nm;
  NewtonSchulz<S> m_ns;
  DeviceBuffer<S> m_v, m_p, m_u, m_oc, m_dense, m_o;
  DeviceBuffer<std::uint8_t> m_ones;
  DeviceBuffer<std::int8_t> m_source;
  DeviceBuffer<double> m_partial, m_scalars;
  int m_grid = 1;
  int m_tau = 0;
  long m_steps = 0;
};

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_TANS_CUH
