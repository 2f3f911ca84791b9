// SPDX-License-Identifier: Apache-2.0
// Device Adam / AdamW (counterpart of sparsenm::Adam, optim/adam.hpp: same AdamConfig, same
// operation order, masked entries frozen bit for bit) and AdamS (counterpart of sparsenm::AdamS,
// CAST Algorithm 1: proportional L1 decay mixed into the first moment of pruned entries).
// One fused pass per step (read g, mask, m, v, W; write m, v, W); nothing is allocated in step().
// Gradients are not screened for NaN/Inf on the device (AdamConfig::nonfinite is ignored).
//
// The step counter t and the step size live in device memory (cuda::Adam): each step first runs
// a one-thread kernel that increments t and computes lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t)
// and the AdamW decay in double, then the fused pass reads them. A step captured into a CUDA graph
// (cuda::SparseLinear24::capture_step) therefore replays with the bias correction of each replay's
// own t, and sees set_lr() changes made between replays.
#ifndef SPARSENM_CUDA_ADAM_CUH
#define SPARSENM_CUDA_ADAM_CUH

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../optim/adam.hpp"
#include "../optim/adams.hpp"
#include "../mask/compress.hpp"
#include "projection.cuh"
#include "detail/optim_kernels.cuh"
#include "error.cuh"
#include "memory.cuh"

namespace sparsenm {
namespace cuda {

template <class S>
class Adam {
  static_assert(std::is_floating_point<S>::value, "cuda::Adam<S>: S must be float or double");

 public:
  Adam(Index rows, Index cols, AdamConfig cfg = {}) : m_cfg(cfg), m_rows(rows), m_cols(cols) {
    m_cfg.validate();
    SPARSENM_CHECK(rows > 0 && cols > 0, "cuda::Adam: shape ", rows, "x", cols,
                   " must be positive");
    m_m.resize(size());
    m_v.resize(size());
    m_m.fill_bytes(0);
    m_v.fill_bytes(0);
    m_clock.resize(1);
    m_coef.resize(1);
    m_host_clock = detail::AdamClock{0, m_cfg.lr};
    m_clock.upload(&m_host_clock, 1);
    SPARSENM_CUDA_CHECK(cudaDeviceSynchronize());
  }

  /// One step on device `weight` with device `grad`; `mask` (device, optional): entries with 0
  /// are frozen (weight and moments keep their bits). Two launches: the clock tick (t + 1 and the
  /// step's coefficients, on the device) and the fused pass. Capturable into a CUDA graph.
  void step(S* weight, const S* grad, const std::uint8_t* mask = nullptr,
            cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(weight && grad, "cuda::Adam::step: weight and grad must be device pointers");
    tick(stream);
    const S l2 = m_cfg.decoupled_weight_decay ? S(0) : S(m_cfg.weight_decay);
    const S b1 = S(m_cfg.beta1), b2 = S(m_cfg.beta2), eps = S(m_cfg.eps);
    const S ob1 = S(1.0 - m_cfg.beta1), ob2 = S(1.0 - m_cfg.beta2);
    const unsigned grid = detail::grid_for((size() + 3) / 4, 256);
    if (mask)
      detail::adam_kernel<true, S><<<grid, 256, 0, stream>>>(grad, mask, m_m.data(), m_v.data(),
                                                             weight, size(), b1, b2, ob1, ob2,
                                                             m_coef.data(), eps, l2);
    else
      detail::adam_kernel<false, S><<<grid, 256, 0, stream>>>(grad, mask, m_m.data(), m_v.data(),
                                                              weight, size(), b1, b2, ob1, ob2,
                                                              m_coef.data(), eps, l2);
    SPARSENM_CUDA_CHECK_LAUNCH("adam_kernel");
  }

  /// The first launch of step() alone: t + 1 and the step's coefficients (coef_data()), on the
  /// device. For fused passes that apply detail::adam_one themselves with these coefficients and
  /// exp_avg_data() / exp_avg_sq_data() (cuda::SparseLinear24's Adam + bf16 re-pack,
  /// PackRoute::Fused): tick, then one such pass over every entry, is one step().
  void tick(cudaStream_t stream = nullptr) {
    detail::adam_tick_kernel<S><<<1, 32, 0, stream>>>(
        m_clock.data(), m_coef.data(), m_cfg.beta1, m_cfg.beta2, m_cfg.weight_decay,
        m_cfg.bias_correction, m_cfg.decoupled_weight_decay);
    SPARSENM_CUDA_CHECK_LAUNCH("adam_tick_kernel");
  }
  const detail::AdamCoef<S>* coef_data() const { return m_coef.data(); }
  S* exp_avg_data() { return m_m.data(); }
  S* exp_avg_sq_data() { return m_v.data(); }

  /// Compressed route (the counterpart of sparsenm::Adam::remap): after a topology refresh of a
  /// weight stored as NMCompressed::values (this Adam built with rows x cols = values' shape),
  /// kept slots take the moments of their source slot and fresh ones start from 0. The map is
  /// uploaded once per call (a refresh, not a step); the remap runs on the device.
  void remap(const SlotMap& slots, cudaStream_t stream = nullptr) {
    check_shape(slots.source, m_rows, m_cols, "cuda::Adam::remap: slots");
    const int n = slots.nm.n;
    SPARSENM_CHECK(n >= 1 && n <= 32 && m_cols % n == 0, "cuda::Adam::remap: slots.nm.n = ", n,
                   " must be in [1, 32] and divide cols = ", m_cols);
    for (Index k = 0; k < slots.source.size(); ++k)
      SPARSENM_CHECK(slots.source.data()[k] >= -1 && slots.source.data()[k] < n,
                     "cuda::Adam::remap: source entry ", k, " = ", int(slots.source.data()[k]),
                     " must be -1 or in [0, ", n, ")");
    m_source.resize(size());
    SPARSENM_CUDA_CHECK(cudaMemcpyAsync(m_source.data(), slots.source.data(), size(),
                                        cudaMemcpyHostToDevice, stream));
    const std::size_t groups = size() / std::size_t(n);
    detail::remap_slots_kernel<S><<<detail::grid_for(groups, 256), 256, 0, stream>>>(
        m_m.data(), m_v.data(), m_source.data(), groups, n);
    SPARSENM_CUDA_CHECK_LAUNCH("remap_slots_kernel");
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));  // the host map may go away on return
  }

  const AdamConfig& config() const { return m_cfg; }
  /// New step size from the next step on, written to the device clock in stream order on
  /// `stream` (no synchronisation): a captured step graph replayed after this call uses it.
  void set_lr(double lr, cudaStream_t stream = nullptr) {
    check_finite_positive(lr, "cuda::Adam::set_lr: lr");
    m_cfg.lr = lr;
    m_host_lr = lr;  // a member, not a local: the copy may read it after the call returns
    char* lr_field = reinterpret_cast<char*>(m_clock.data()) + offsetof(detail::AdamClock, lr);
    SPARSENM_CUDA_CHECK(
        cudaMemcpyAsync(lr_field, &m_host_lr, sizeof(double), cudaMemcpyHostToDevice, stream));
  }
  const DeviceBuffer<S>& exp_avg() const { return m_m; }
  const DeviceBuffer<S>& exp_avg_sq() const { return m_v; }
  /// Steps taken (t), read from the device after the work queued on `stream` (synchronises it;
  /// pass the stream the steps ran on). Counts graph replays too.
  long steps(cudaStream_t stream = nullptr) const {
    detail::AdamClock c{};
    m_clock.download(&c, 1, stream);
    return long(c.t);
  }
  /// Sets the step counter (e.g. from a checkpoint of sparsenm::Adam, whose visit_state names it
  /// "steps"): the next step is t + 1 and takes that step's bias correction. Synchronous.
  /// A remap (topology refresh) keeps t, as sparsenm::Adam::remap does.
  void set_steps(long t, cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(t >= 0, "cuda::Adam::set_steps: t = ", t, " must be >= 0");
    m_host_clock = detail::AdamClock{static_cast<long long>(t), m_cfg.lr};
    m_clock.upload(&m_host_clock, 1, stream);
  }

 private:
  std::size_t size() const { return std::size_t(m_rows) * std::size_t(m_cols); }
  AdamConfig m_cfg;
  Index m_rows, m_cols;
  DeviceBuffer<S> m_m, m_v;
  DeviceBuffer<std::int8_t> m_source;
  DeviceBuffer<detail::AdamClock> m_clock;   ///< t and lr on the device (one element)
  DeviceBuffer<detail::AdamCoef<S>> m_coef;  ///< the current step's coefficients
  detail::AdamClock m_host_clock{0, 0.0};    ///< staging for set_steps / construction
  double m_host_lr = 0.0;                    ///< staging for set_lr
};

/// Device AdamS (counterpart of sparsenm::AdamS, optim/adams.hpp, with the same AdamSConfig) for
/// scaling_groups = 0 (no learnable scaling on the device: the constructor throws otherwise).
/// Before every step whose 0-based index is a multiple of mask_interval the mask is recomputed as
/// the row-wise magnitude top-n of the weight (cuda::project_rowwise on |W|); then one fused pass
/// applies CAST Algorithm 1 (alpha = min(1, t / T), t = steps taken before this one).
template <class S>
class AdamS {
  static_assert(std::is_floating_point<S>::value, "cuda::AdamS<S>: S must be float or double");

 public:
  AdamS(Index rows, Index cols, AdamSConfig cfg = {}) : m_cfg(cfg), m_rows(rows), m_cols(cols) {
    m_cfg.validate();
    SPARSENM_CHECK(rows > 0 && cols > 0, "cuda::AdamS: shape ", rows, "x", cols,
                   " must be positive");
    check_divisible(cols, cfg.nm.m, "cuda::AdamS: cols", "nm.m");
    SPARSENM_CHECK(cfg.scaling_groups == 0,
                   "cuda::AdamS: AdamSConfig::scaling_groups = ", cfg.scaling_groups,
                   " must be 0 (the device class has no learnable scaling)");
    m_mu.resize(size());
    m_v.resize(size());
    m_scores.resize(size());
    m_mask.resize(size());
    m_mu.fill_bytes(0);
    m_v.fill_bytes(0);
    SPARSENM_CUDA_CHECK(cudaDeviceSynchronize());
  }

  /// One step on the device weight with the device gradient (both rows x cols row-major).
  void step(S* weight, const S* grad, cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(weight && grad, "cuda::AdamS::step: weight and grad must be device pointers");
    const unsigned eg = detail::grid_for(size(), 256);
    if (m_t % m_cfg.mask_interval == 0) {
      detail::abs_kernel<S><<<eg, 256, 0, stream>>>(weight, size(), m_scores.data());
      SPARSENM_CUDA_CHECK_LAUNCH("abs_kernel");
      project_rowwise(m_scores.data(), m_rows, m_cols, m_cfg.nm, m_mask.data(), stream);
    }
    const double alpha = std::min(1.0, double(m_t) / double(m_cfg.total_steps));
    ++m_t;
    const double bc1 = 1.0 - std::pow(m_cfg.beta1, double(m_t));
    const double bc2 = 1.0 - std::pow(m_cfg.beta2, double(m_t));
    detail::adams_kernel<S><<<detail::grid_for((size() + 3) / 4, 256), 256, 0, stream>>>(
        grad, m_mask.data(), m_mu.data(), m_v.data(), weight, size(), S(m_cfg.beta1),
        S(m_cfg.beta2), S(1.0 - m_cfg.beta1), S(1.0 - m_cfg.beta2), S(alpha), S(m_cfg.lambda),
        S(m_cfg.lr / bc1), S(1.0 / std::sqrt(bc2)), S(m_cfg.eps));
    SPARSENM_CUDA_CHECK_LAUNCH("adams_kernel");
  }

  long steps() const { return m_t; }
  const AdamSConfig& config() const { return m_cfg; }
  const DeviceBuffer<S>& exp_avg() const { return m_mu; }
  const DeviceBuffer<S>& exp_avg_sq() const { return m_v; }
  const DeviceBuffer<std::uint8_t>& mask() const { return m_mask; }

 private:
  std::size_t size() const { return std::size_t(m_rows) * std::size_t(m_cols); }
  AdamSConfig m_cfg;
  Index m_rows, m_cols;
  DeviceBuffer<S> m_mu, m_v, m_scores;
  DeviceBuffer<std::uint8_t> m_mask;
  long m_t = 0;
};

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_ADAM_CUH
