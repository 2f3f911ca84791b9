// SPDX-License-Identifier: Apache-2.0
// Muon (Keller Jordan et al. 2024): momentum + Newton-Schulz orthogonalisation; the dense
// matrix-geometry baseline of chtsnm App. J (Table A9).
#ifndef SPARSENM_OPTIM_MUON_HPP
#define SPARSENM_OPTIM_MUON_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
#include "detail/elementwise.hpp"
#include "newton_schulz.hpp"
#include "nonfinite.hpp"

namespace sparsenm {

// clang-format off
/// Muon hyperparameters (docs/algorithms.md "Muon (baseline)").
///
/// | field        | meaning                                   | default                          |
/// |--------------|-------------------------------------------|----------------------------------|
/// | lr           | step size                                 | 0.02                             |
/// | momentum     | beta of m = beta m + (1 - beta) g         | 0.95                             |
/// | nesterov     | update (1 - beta) g + beta m instead of m | true                             |
/// | weight_decay | decoupled: W <- (1 - lr wd) W             | 0                                |
/// | ns_steps     | Newton-Schulz steps                       | 5                                |
/// | coefficients | NS schedule                               | Muon (3.4445, -4.7750, 2.0315)   |
/// | nonfinite    | reaction to NaN/Inf gradient entries      | Throw                            |
// clang-format on
struct MuonConfig {
  double lr = 0.02;        ///< step size
  double momentum = 0.95;  ///< beta of m = beta m + (1 - beta) g
  /// Nesterov-style update (1 - beta) g + beta m instead of m.
  bool nesterov = true;
  /// Decoupled weight decay: W <- (1 - lr wd) W.
  double weight_decay = 0.0;
  /// Newton-Schulz steps.
  int ns_steps = 5;
  /// Newton-Schulz coefficient schedule (Muon's by default).
  NsCoefficients coefficients = NsCoefficients::Muon;
  /// Reaction to NaN/Inf gradient entries.
  NonFinitePolicy nonfinite = NonFinitePolicy::Throw;

  /// Throws sparsenm::Error naming the first field out of its range.
  void validate() const {
    check_finite_positive(lr, "MuonConfig::lr");
    check_in_range(momentum, 0.0, 1.0, "MuonConfig::momentum", false, true);
    check_finite_nonnegative(weight_decay, "MuonConfig::weight_decay");
    SPARSENM_CHECK(lr * weight_decay <= 1.0, "MuonConfig: lr * weight_decay = ", lr * weight_decay,
                   " must be <= 1");
    check_in_range(ns_steps, 0, 1000, "MuonConfig::ns_steps");
  }
};

/// Muon on one row-major (out, in) weight:
/// \code
///   m = beta m + (1-beta) g;  u = nesterov ? (1-beta) g + beta m : m
///   O = NS_K(u / (||u||_F + 1e-7));  W <- (1 - lr wd) W - lr max(1, rows/cols)^0.5 O
/// \endcode
/// With a mask, g and u are masked, and W entries with mask 0 are frozen (the orthogonalised
/// update is projected to the mask; this is the "Muon on a sparse backbone" baseline, without
/// TANS's RMS matching and ramp). step() allocates nothing; deterministic for any thread count.
template <class S>
class Muon {
  static_assert(std::is_floating_point<S>::value, "Muon<S>: S must be float or double");

 public:
  /// Muon for a dense (rows, cols) weight; validates `cfg`.
  Muon(Index rows, Index cols, MuonConfig cfg = {}) : Muon(rows, cols, cfg, 0) {}

  /// Compressed route: the momentum of the active entries only, in the layout of weight.values;
  /// the dense Newton-Schulz input is per-step scratch. Same update as the masked dense step up to
  /// the summation order of the norm. Follow a refresh with remap(result.slots).
  explicit Muon(const NMCompressed<S>& weight, MuonConfig cfg = {})
      : Muon(weight.rows, weight.cols, cfg, weight.values.cols()) {
    check_compressed(weight, "Muon: weight");
    m_nm = weight.nm;
  }

  /// Compressed step with dW on the active entries (SparseLinear::grad_values()).
  template <class Derived>
  void step(NMCompressed<S>& weight, const Eigen::MatrixBase<Derived>& grad_values);

  /// After a refresh (compressed route): kept entries keep their momentum, regrown ones start at 0.
  void remap(const SlotMap& slots) {
    SPARSENM_CHECK(m_slots > 0, "Muon::remap: compressed route only");
    check_shape(slots.source, m_rows, m_slots, "Muon::remap: slots");
    remap_slots<S>(m_m, slots);
  }

  /// Bytes of persistent state (momentum and the update buffer of the fused pass).
  std::size_t state_bytes() const { return std::size_t(m_m.size() + m_u.size()) * sizeof(S); }

  /// Calls f(name, object) for every piece of persistent state, for checkpoints.
  template <class F>
  void visit_state(F&& f) {
    f("momentum", m_m);
    f("steps", m_t);
    f("skipped", m_skipped);
  }

  /// Dense step on every entry.
  template <class Derived>
  void step(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad) {
    step_impl(weight, grad, nullptr);
  }
  /// Masked step: g and u are masked, entries with mask 0 are frozen.
  template <class Derived>
  void step(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad,
            const Mask& mask) {
    check_shape(mask, m_rows, m_cols, "Muon::step: mask");
    step_impl(weight, grad, mask.data());
  }

  /// The settings.
  const MuonConfig& config() const { return m_cfg; }
  /// Changes the step size (finite, > 0), e.g. for a schedule.
  void set_lr(double lr) {
    check_finite_positive(lr, "Muon::set_lr: lr");
    m_cfg.lr = lr;
  }
  /// The momentum m (in the layout of the weight or of its compressed values).
  const Matrix<S>& momentum_buffer() const { return m_m; }
  /// Steps taken (skipped ones not counted).
  long steps() const { return m_t; }
  /// Steps skipped under NonFinitePolicy::SkipStep.
  long skipped_steps() const { return m_skipped; }

 private:
  // slots > 0: compressed route with that many slots per row.
  Muon(Index rows, Index cols, MuonConfig cfg, Index slots)
      : m_cfg(cfg), m_rows(rows), m_cols(cols), m_slots(slots) {
    m_cfg.validate();
    SPARSENM_CHECK(rows > 0 && cols > 0, "Muon: shape ", rows, "x", cols, " must be positive");
    const Index k = slots > 0 ? slots : cols;
    m_m = Matrix<S>::Zero(rows, k);
    m_u = Matrix<S>::Zero(rows, k);
    m_ws.resize(rows, cols);
    m_scratch.resize(rows * cols);
  }

  /// m and u over [0, n) of g (masked where mask is non-null); returns sum u^2.
  double moments(const S* g, const std::uint8_t* mask, Index n, bool par);

  template <class Derived>
  void step_impl(Eigen::Ref<Matrix<S>>& weight, const Eigen::MatrixBase<Derived>& grad,
                 const std::uint8_t* mask);

  MuonConfig m_cfg;
  Index m_rows, m_cols, m_slots;
  NM m_nm{1, 1};
  Matrix<S> m_m, m_u, m_gbuf, m_dense, m_oc;
  NsWorkspace<S> m_ws;
  detail::ChunkScratch m_scratch;
  long m_t = 0, m_skipped = 0;
};

template <class S>
double Muon<S>::moments(const S* g, const std::uint8_t* mask, Index n, bool par) {
  const S beta = S(m_cfg.momentum), ob = S(1.0 - m_cfg.momentum);
  const bool nest = m_cfg.nesterov;
  S* M = m_m.data();
  S* U = m_u.data();
  return detail::chunk_sum(
      n, m_scratch.a,
      [&](Index b, Index e) {
        S acc[detail::kLanes] = {};
        auto one = [&](Index i, S& a) {
          const S gm = (mask && !mask[i]) ? S(0) : g[i];
          const S mn = beta * M[i] + ob * gm;
          const S u = nest ? ob * gm + beta * mn : mn;
          M[i] = mn;
          U[i] = (mask && !mask[i]) ? S(0) : u;
          a += U[i] * U[i];
        };
        Index i = b;
        for (; i + detail::kLanes <= e; i += detail::kLanes)
          for (int l = 0; l < detail::kLanes; ++l) one(i + l, acc[l]);
        for (; i < e; ++i) one(i, acc[0]);
        double s = 0;
        for (int l = 0; l < detail::kLanes; ++l) s += double(acc[l]);
        return s;
      },
      par);
}

template <class S>
template <class Derived>
void Muon<S>::step(NMCompressed<S>& weight, const Eigen::MatrixBase<Derived>& grad_values) {
  SPARSENM_CHECK(m_slots > 0, "Muon::step: this Muon was built for a dense weight; build it from ",
                 "the NMCompressed weight for the compressed route");
  SPARSENM_CHECK(weight.rows == m_rows && weight.cols == m_cols && weight.nm == m_nm,
                 "Muon::step: weight is ", weight.rows, "x", weight.cols, " ", weight.nm,
                 " but this Muon was built for ", m_rows, "x", m_cols, " ", m_nm);
  check_shape(weight.values, m_rows, m_slots, "Muon::step: weight.values");
  check_shape(grad_values, m_rows, m_slots, "Muon::step: grad_values");
  const Eigen::Ref<const Matrix<S>> gref(grad_values.template cast<S>());
  const S* g = detail::contiguous_data<S>(gref, m_gbuf);
  const bool par = detail::parallel_next_to_blas(m_rows * m_cols);
  if (!detail::admit_gradient("Muon::step", g, nullptr, m_rows, m_slots, m_cfg.nonfinite, m_scratch,
                              nullptr, par)) {
    ++m_skipped;
    return;
  }
  ++m_t;
  const Index n = m_rows * m_slots;
  const double ss = moments(g, nullptr, n, par);
  m_dense.resize(m_rows, m_cols);
  scatter_slots(weight, m_u.data(), m_dense.data());
  const S scale = S(1.0 / (std::sqrt(ss) + kNsNormEps));
  const Matrix<S>& Om = detail::newton_schulz_run(m_dense.data(), m_rows, m_cols, scale,
                                                  m_cfg.ns_steps, m_cfg.coefficients, m_ws);
  m_oc.resize(m_rows, m_slots);
  gather_slots(weight, Om.data(), m_oc.data());
  const S* O = m_oc.data();
  const S lr_eff = S(m_cfg.lr * std::sqrt(std::max(1.0, double(m_rows) / double(m_cols))));
  const S decay = S(1.0 - m_cfg.lr * m_cfg.weight_decay);
  S* w = weight.values.data();
  detail::for_each_chunk(
      n,
      [&](Index b, Index e, Index) {
        for (Index i = b; i < e; ++i) w[i] = decay * w[i] - lr_eff * O[i];
      },
      detail::parallel_after_ns(par));
}

template <class S>
template <class Derived>
void Muon<S>::step_impl(Eigen::Ref<Matrix<S>>& weight, const Eigen::MatrixBase<Derived>& grad,
                        const std::uint8_t* mask) {
  SPARSENM_CHECK(m_slots == 0, "Muon::step: this Muon steps a compressed weight; call ",
                 "step(NMCompressed&, grad_values)");
  check_shape(weight, m_rows, m_cols, "Muon::step: weight");
  check_shape(grad, m_rows, m_cols, "Muon::step: grad");
  const Eigen::Ref<const Matrix<S>> gref(grad.template cast<S>());
  const S* g = detail::contiguous_data<S>(gref, m_gbuf);
  const bool par = detail::parallel_next_to_blas(m_rows * m_cols);
  if (!detail::admit_gradient("Muon::step", g, mask, m_rows, m_cols, m_cfg.nonfinite, m_scratch,
                              nullptr, par)) {
    ++m_skipped;
    return;
  }
  ++m_t;
  const double ss = moments(g, mask, m_rows * m_cols, par);
  const S scale = S(1.0 / (std::sqrt(ss) + kNsNormEps));
  const Matrix<S>& Om = detail::newton_schulz_run(m_u.data(), m_rows, m_cols, scale, m_cfg.ns_steps,
                                                  m_cfg.coefficients, m_ws);
  const S* O = Om.data();
  const S lr_eff = S(m_cfg.lr * std::sqrt(std::max(1.0, double(m_rows) / double(m_cols))));
  const S decay = S(1.0 - m_cfg.lr * m_cfg.weight_decay);
  detail::for_each_weight_span<S>(
      weight,
      [&](Index b, Index e, S* w) {
        for (Index i = b; i < e; ++i) {
          const S wo = w[i - b];
          const S wn = decay * wo - lr_eff * O[i];
          w[i - b] = (mask && !mask[i]) ? wo : wn;
        }
      },
      detail::parallel_after_ns(par));
}

}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_MUON_HPP
