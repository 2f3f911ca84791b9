// SPDX-License-Identifier: Apache-2.0
// TANS: Topology-Aware Newton-Schulz optimisation (chtsnm Sec. 3.2, App. C, H.5, I).
#ifndef SPARSENM_OPTIM_TANS_HPP
#define SPARSENM_OPTIM_TANS_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
#include "../mask/rowwise.hpp"
#include "detail/elementwise.hpp"
#include "detail/sqrt_block.hpp"
#include "newton_schulz.hpp"
#include "nonfinite.hpp"

namespace sparsenm {

/// How the Newton-Schulz correction is rescaled before blending (chtsnm App. I.1, Table A6).
enum class RmsMatch {
  None,           ///< s = 1
  PreMaskGlobal,  ///< s = RMS(U_base) / (RMS(O) + eps), both over all entries, O before masking
  PostMaskActive  ///< s = RMS_M(U_base) / (RMS_M(O_M) + eps) over the active entries (Sec. 3.2)
};

/// What on_refresh() does to the optimizer state V, P (chtsnm App. I.3, Table A8).
enum class StateReset {
  None,            ///< keep V and P
  ChangedEntries,  ///< zero V and P where `changed` is 1 (best in Table A8; default)
  All              ///< zero V and P everywhere
};

// clang-format off
/// TANS hyperparameters; defaults are the paper's canonical settings (chtsnm App. H.5).
///
/// | field        | meaning                                             | default        | source       |
/// |--------------|-----------------------------------------------------|----------------|--------------|
/// | lr           | eta; the matrix step uses eta * sqrt(d_out / d_in)  | 1e-3           | App. H.5     |
/// | beta1        | momentum of P and the Nesterov-style blend          | 0.9            | App. H.5     |
/// | beta2        | EMA of the squared masked gradient V                | 0.999          | App. H.5     |
/// | eps          | preconditioner and RMS-ratio epsilon                | 1e-5           | App. H.5     |
/// | weight_decay | decoupled: Theta <- (1 - eta lambda) Theta          | 0              | App. H.5     |
/// | gamma_ns     | gamma_NS, strength of the NS correction             | 0.5            | App. H.5     |
/// | ramp_steps   | B_ramp; gamma_t = gamma_NS min(1, tau / B_ramp)     | 8              | App. H.5/I.2 |
/// | ns_steps     | K Newton-Schulz steps                               | 5              | Sec. 3.2     |
/// | rms          | RMS matching mode                                   | PostMaskActive | Sec. 3.2     |
/// | reset        | state reset on refresh                              | ChangedEntries | App. I.3     |
/// | nonfinite    | reaction to NaN/Inf gradient entries (extra field)  | Throw          | -            |
/// | coefficients | NS schedule (extra field)                           | TansTableA4    | App. C       |
/// | nm           | N:M check of the dense masked step (extra field)    | {0, 0}: none   | -            |
// clang-format on
struct TansConfig {
  double lr = 1e-3;                                    ///< eta
  double beta1 = 0.9;                                  ///< momentum of P and the blend
  double beta2 = 0.999;                                ///< EMA of the squared masked gradient
  double eps = 1e-5;                                   ///< preconditioner and RMS-ratio epsilon
  double weight_decay = 0.0;                           ///< decoupled weight decay lambda
  double gamma_ns = 0.5;                               ///< gamma_NS, strength of the NS correction
  int ramp_steps = 8;                                  ///< B_ramp
  int ns_steps = 5;                                    ///< K Newton-Schulz steps
  RmsMatch rms = RmsMatch::PostMaskActive;             ///< RMS matching mode
  StateReset reset = StateReset::ChangedEntries;       ///< state reset on refresh
  NonFinitePolicy nonfinite = NonFinitePolicy::Throw;  ///< NaN/Inf gradient entries
  NsCoefficients coefficients = NsCoefficients::TansTableA4;  ///< NS schedule
  /// N:M check of the dense masked step: with nm set (n >= 1), step(W, G, mask) throws
  /// sparsenm::Error unless `mask` is row-wise legal for it (a transposable mask is too). The
  /// default {0, 0} checks only that the mask is 0/1. The compressed route is legal by
  /// construction and ignores it.
  NM nm{0, 0};

  /// Throws sparsenm::Error naming the first field out of its range.
  void validate() const {
    if (nm.n != 0 || nm.m != 0) check_nm(nm, "TansConfig::nm");
    check_finite_positive(lr, "TansConfig::lr");
    check_in_range(beta1, 0.0, 1.0, "TansConfig::beta1", false, true);
    check_in_range(beta2, 0.0, 1.0, "TansConfig::beta2", false, true);
    check_finite_positive(eps, "TansConfig::eps");
    check_finite_nonnegative(weight_decay, "TansConfig::weight_decay");
    SPARSENM_CHECK(lr * weight_decay <= 1.0, "TansConfig: lr * weight_decay = ", lr * weight_decay,
                   " must be <= 1 (the decay factor 1 - lr * weight_decay must stay >= 0)");
    check_in_range(gamma_ns, 0.0, 1.0, "TansConfig::gamma_ns");
    check_at_least(ramp_steps, 0, "TansConfig::ramp_steps");
    check_in_range(ns_steps, 0, 1000, "TansConfig::ns_steps");
  }
  /// gamma_t = gamma_NS min(1, tau / B_ramp) tau steps after construction or a refresh
  /// (chtsnm App. I); B_ramp = 0 gives gamma_NS. The CPU and CUDA TANS routes all use this.
  double gamma_at(int tau) const {
    if (ramp_steps == 0) return gamma_ns;
    return gamma_ns * std::min(1.0, double(tau) / double(ramp_steps));
  }
  /// A new step size (schedules), checked as validate() checks lr; `caller` names the set_lr of
  /// the optimizer in errors. The CPU and CUDA TANS routes all use this.
  void set_lr(double new_lr, const char* caller) {
    SPARSENM_CHECK(std::isfinite(new_lr) && new_lr > 0, caller, ": lr = ", new_lr,
                   " must be finite and > 0");
    SPARSENM_CHECK(new_lr * weight_decay <= 1.0, caller,
                   ": lr * weight_decay = ", new_lr * weight_decay, " must be <= 1");
    lr = new_lr;
  }
};

/// TANS for one (out, in) row-major weight matrix under a changing N:M mask (chtsnm Sec. 3.2):
/// \code
///   G_M = M . G;  V = b2 V + (1-b2) G_M^2;  G^ = G_M / (sqrt(V) + eps)
///   P = b1 P + (1-b1) G^;                   U_base = M . [(1-b1) G^ + b1 P]
///   O = NS_K(U_base / (||U_base||_F + 1e-7));  O_M = M . O;  O~ = s O_M  (s per RmsMatch)
///   gamma_t = gamma_NS min(1, tau / B_ramp);  U = U_base + gamma_t (O~ - U_base)
///   Theta <- (1 - eta lambda) Theta - eta sqrt(d_out / d_in) U      (active entries only)
/// \endcode
/// tau counts step() calls since construction or the last on_refresh(), read before the current
/// step: the first step after a refresh uses gamma = 0 (and skips Newton-Schulz, whose result
/// would be multiplied by 0). No bias correction (as written in the paper). Inactive weights are
/// never written (bit-for-bit unchanged), also not by weight decay.
///
/// Cost per step: one read-only pre-scan of grad and mask (finiteness, 0/1 check, |M|), one fused
/// pass for V, P, U_base and ||U_base||^2, Newton-Schulz (SYRK-based), one read pass for the RMS of
/// O (skipped for RmsMatch::None), one fused pass for the blend, decay and update. step() allocates
/// nothing. Results are bit-identical for any OpenMP thread count (fixed chunking, fixed-order
/// reductions). Must not be called inside an OpenMP parallel region (Newton-Schulz uses BLAS).
///
/// \code
///   sparsenm::TansConfig cfg; cfg.lr = 1e-3;
///   sparsenm::Tans<float> opt(W.rows(), W.cols(), cfg);
///   opt.step(W, dW, mask);              // every step
///   opt.on_refresh(result.changed);     // after a topology refresh
/// \endcode
template <class S>
class Tans {
  static_assert(std::is_floating_point<S>::value, "Tans<S>: S must be float or double");

 public:
  /// TANS for a dense (rows, cols) weight; validates `cfg`.
  Tans(Index rows, Index cols, TansConfig cfg = {}) : m_cfg(cfg), m_rows(rows), m_cols(cols) {
    m_cfg.validate();
    SPARSENM_CHECK(rows > 0 && cols > 0, "Tans: shape ", rows, "x", cols, " must be positive");
    m_v = Matrix<S>::Zero(rows, cols);
    m_p = Matrix<S>::Zero(rows, cols);
    m_u = Matrix<S>::Zero(rows, cols);
    m_ws.resize(rows, cols);
    m_scratch.resize(rows * cols);
  }

  /// Compressed route (sparse-to-sparse training): V and P are kept for the active entries only, in
  /// the layout of `weight.values`. Step with step(weight, grad_values), follow a refresh with
  /// remap(result.slots). The dense (out, in) Newton-Schulz input is per-step scratch (the
  /// algorithm orthogonalises the whole masked update, chtsnm Sec. 3.2).
  explicit Tans(const NMCompressed<S>& weight, TansConfig cfg = {})
      : m_cfg(cfg), m_rows(weight.rows), m_cols(weight.cols), m_nm(weight.nm), m_compressed(true) {
    m_cfg.validate();
    check_compressed(weight, "Tans: weight");
    SPARSENM_CHECK(m_rows > 0 && m_cols > 0, "Tans: shape ", m_rows, "x", m_cols,
                   " must be positive");
    const Index k = weight.values.cols();
    m_v = Matrix<S>::Zero(m_rows, k);
    m_p = Matrix<S>::Zero(m_rows, k);
    m_u = Matrix<S>::Zero(m_rows, k);
    m_scratch.resize(m_rows * m_cols);  // PreMaskGlobal sums O over the dense shape
  }

  /// Compressed step: `grad_values` is dW on the active entries in the layout of weight.values
  /// (SparseLinear::grad_values()). The same update as the masked dense step on the decompressed
  /// weight, up to the summation order of the norms (a few ulp in the Newton-Schulz scale).
  template <class Derived>
  void step(NMCompressed<S>& weight, const Eigen::MatrixBase<Derived>& grad_values);

  /// Compressed route after a refresh: tau = 0; with StateReset::ChangedEntries (and None) kept
  /// entries keep V and P and regrown ones start at 0 (the state of removed entries is gone: the
  /// compressed route has no place for it); StateReset::All zeroes everything.
  void remap(const SlotMap& slots);

  /// Bytes of persistent optimizer state (V, P and the U buffer of the fused passes).
  std::size_t state_bytes() const { return std::size_t(m_v.size() * 3) * sizeof(S); }
  /// Bytes of per-step scratch kept allocated (Newton-Schulz workspace, dense input, O gather).
  std::size_t scratch_bytes() const {
    return std::size_t(m_dense.size() + m_oc.size() + m_ws.x[0].size() + m_ws.x[1].size() +
                       m_ws.flushed.size()) *
               sizeof(S) +
           (m_ws.a.size() + m_ws.a2.size() + m_ws.p.size() + m_ws.q.size() + m_ws.t.size()) *
               sizeof(S);
  }
  /// True for the compressed route.
  bool compressed() const { return m_compressed; }

  /// Calls f(name, object) for every piece of persistent state (matrices and counters), for
  /// checkpoints; a loader may assign through the references.
  template <class F>
  void visit_state(F&& f) {
    f("exp_avg_sq", m_v);
    f("momentum", m_p);
    f("tau", m_tau);
    f("steps", m_steps);
    f("skipped", m_skipped);
    f("last_rms_scale", m_last_s);
  }

  /// One TANS step on `weight` (rows x cols) with gradient `grad` (dense allowed: it is masked)
  /// under the current legal `mask` (0/1; with TansConfig::nm set, a mask that is not row-wise
  /// legal for it throws). Non-finite gradient entries: see TansConfig::nonfinite.
  template <class Derived>
  void step(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad, const Mask& mask);

  /// Topology refresh: tau = 0, and V, P reset per TansConfig::reset (`changed` = 1 where the
  /// mask changed, e.g. RefreshResult::changed).
  void on_refresh(const Mask& changed);

  /// tau: steps since construction or the last on_refresh().
  int steps_since_refresh() const { return m_tau; }
  /// gamma_t the next step will use.
  double next_gamma() const { return gamma_for(m_tau); }
  /// gamma_t = gamma_NS min(1, tau / B_ramp); B_ramp = 0 gives gamma_NS.
  double gamma_for(int tau) const { return m_cfg.gamma_at(tau); }
  /// The settings.
  const TansConfig& config() const { return m_cfg; }
  /// Changes eta (for schedules) without touching the state.
  void set_lr(double lr) { m_cfg.set_lr(lr, "Tans::set_lr"); }
  const Matrix<S>& exp_avg_sq() const { return m_v; }  ///< V
  const Matrix<S>& momentum() const { return m_p; }    ///< P
  long steps() const { return m_steps; }               ///< steps taken (skipped ones excluded)
  long skipped_steps() const { return m_skipped; }     ///< steps skipped (NonFinitePolicy)
  double last_rms_scale() const { return m_last_s; }   ///< s_t of the last step that ran NS
  Index rows() const { return m_rows; }                ///< rows of the weight
  Index cols() const { return m_cols; }                ///< columns of the (dense) weight

 private:
  TansConfig m_cfg;
  Index m_rows, m_cols;
  NM m_nm{1, 1};
  bool m_compressed = false;
  Matrix<S> m_v, m_p, m_u, m_gbuf;
  Matrix<S> m_dense, m_oc;  // compressed route: dense NS input and O on the active entries
  NsWorkspace<S> m_ws;
  detail::ChunkScratch m_scratch;
  int m_tau = 0;
  long m_steps = 0, m_skipped = 0;
  double m_last_s = 1.0;
};

}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../optim/detail/tans_body.inc"
#include "../core/detail/isa_passes.inc"

namespace sparsenm {

template <class S>
template <class Derived>
void Tans<S>::step(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad,
                   const Mask& mask) {
  SPARSENM_CHECK(!m_compressed, "Tans::step: this Tans was built for a compressed weight; call ",
                 "step(NMCompressed&, grad_values)");
  check_shape(weight, m_rows, m_cols, "Tans::step: weight");
  check_shape(grad, m_rows, m_cols, "Tans::step: grad");
  check_shape(mask, m_rows, m_cols, "Tans::step: mask");
  if (m_cfg.nm.n != 0) check_rowwise_legal(mask, m_cfg.nm, "Tans::step: mask");
  const Eigen::Ref<const Matrix<S>> gref(grad.template cast<S>());
  const S* g = detail::contiguous_data<S>(gref, m_gbuf);
  const std::uint8_t* mk = mask.data();
  const Index n = m_rows * m_cols;
  const bool par = detail::parallel_next_to_blas(n);
  long long active = 0;
  if (!detail::admit_gradient("Tans::step", g, mk, m_rows, m_cols, m_cfg.nonfinite, m_scratch,
                              &active, par)) {
    ++m_skipped;
    return;
  }
  const double gamma = gamma_for(m_tau);
  // 1 - beta is formed in double: float(1 - 0.999) is 1e-3 to 7 digits, 1 - float(0.999) is not.
  const S b1 = S(m_cfg.beta1), b2 = S(m_cfg.beta2), eps = S(m_cfg.eps);
  const S ob1 = S(1.0 - m_cfg.beta1), ob2 = S(1.0 - m_cfg.beta2);
  S* V = m_v.data();
  S* P = m_p.data();
  S* U = m_u.data();
  const double ss = detail::chunk_sum(
      n, m_scratch.a,
      [&](Index b, Index e) {
        return SPARSENM_DISPATCH(tans_moments<true>)(g, mk, V, P, U, b, e, b1, b2, ob1, ob2, eps);
      },
      par);
  const S decay = S(1.0 - m_cfg.lr * m_cfg.weight_decay);
  const S eta_mat = S(m_cfg.lr * std::sqrt(double(m_rows) / double(m_cols)));

  if (gamma == 0.0) {
    detail::for_each_weight_span<S>(
        weight,
        [&](Index b, Index e, S* w) {
          SPARSENM_DISPATCH(tans_apply_base<true>)(U, mk, w, b, e, decay, eta_mat);
        },
        par);
  } else {
    const S scale = S(1.0 / (std::sqrt(ss) + kNsNormEps));
    const Matrix<S>& Om = detail::newton_schulz_run(U, m_rows, m_cols, scale, m_cfg.ns_steps,
                                                    m_cfg.coefficients, m_ws);
    const S* O = Om.data();
    const bool par_ns = detail::parallel_after_ns(par);
    double s = 1.0;
    if (m_cfg.rms != RmsMatch::None) {
      detail::for_each_chunk(
          n,
          [&](Index b, Index e, Index c) {
            SPARSENM_DISPATCH(tans_o_sums)
            (O, mk, b, e, m_scratch.a[static_cast<std::size_t>(c)],
             m_scratch.b[static_cast<std::size_t>(c)]);
          },
          par_ns);
      double so_act = 0, so_all = 0;
      for (Index c = 0; c < detail::optim_chunk_count(n); ++c) {
        so_act += m_scratch.a[static_cast<std::size_t>(c)];
        so_all += m_scratch.b[static_cast<std::size_t>(c)];
      }
      if (m_cfg.rms == RmsMatch::PostMaskActive) {
        // RMS_M(X) = sqrt(sum_{M=1} X^2 / |M|); U_base is 0 off the mask, so ss is its active sum.
        const double cnt = double(active);
        const double rms_u = active > 0 ? std::sqrt(ss / cnt) : 0.0;
        const double rms_o = active > 0 ? std::sqrt(so_act / cnt) : 0.0;
        s = rms_u / (rms_o + m_cfg.eps);
      } else {
        const double rms_u = std::sqrt(ss / double(n));
        const double rms_o = std::sqrt(so_all / double(n));
        s = rms_u / (rms_o + m_cfg.eps);
      }
    }
    m_last_s = s;
    const S sg = S(gamma), ss_ = S(s);
    detail::for_each_weight_span<S>(
        weight,
        [&](Index b, Index e, S* w) {
          SPARSENM_DISPATCH(tans_apply<true>)(O, U, mk, w, b, e, sg, ss_, decay, eta_mat);
        },
        par_ns);
  }
  ++m_tau;
  ++m_steps;
}

template <class S>
template <class Derived>
void Tans<S>::step(NMCompressed<S>& weight, const Eigen::MatrixBase<Derived>& grad_values) {
  SPARSENM_CHECK(m_compressed, "Tans::step: this Tans was built for a dense (", m_rows, "x", m_cols,
                 ") weight; build it from the NMCompressed weight for the compressed route");
  SPARSENM_CHECK(weight.rows == m_rows && weight.cols == m_cols && weight.nm == m_nm,
                 "Tans::step: weight is ", weight.rows, "x", weight.cols, " ", weight.nm,
                 " but this Tans was built for ", m_rows, "x", m_cols, " ", m_nm);
  const Index k = m_v.cols(), n = m_rows * k;
  check_shape(weight.values, m_rows, k, "Tans::step: weight.values");
  check_shape(grad_values, m_rows, k, "Tans::step: grad_values");
  const Eigen::Ref<const Matrix<S>> gref(grad_values.template cast<S>());
  const S* g = detail::contiguous_data<S>(gref, m_gbuf);
  const bool par = detail::parallel_next_to_blas(m_rows * m_cols);
  if (!detail::admit_gradient("Tans::step", g, nullptr, m_rows, k, m_cfg.nonfinite, m_scratch,
                              nullptr, par)) {
    ++m_skipped;
    return;
  }
  const double gamma = gamma_for(m_tau);
  const S b1 = S(m_cfg.beta1), b2 = S(m_cfg.beta2), eps = S(m_cfg.eps);
  const S ob1 = S(1.0 - m_cfg.beta1), ob2 = S(1.0 - m_cfg.beta2);
  S* V = m_v.data();
  S* P = m_p.data();
  S* U = m_u.data();
  const double ss = detail::chunk_sum(
      n, m_scratch.a,
      [&](Index b, Index e) {
        return SPARSENM_DISPATCH(tans_moments<false>)(g, nullptr, V, P, U, b, e, b1, b2, ob1, ob2,
                                                      eps);
      },
      par);
  const S decay = S(1.0 - m_cfg.lr * m_cfg.weight_decay);
  const S eta_mat = S(m_cfg.lr * std::sqrt(double(m_rows) / double(m_cols)));
  S* w = weight.values.data();
  if (gamma == 0.0) {
    detail::for_each_chunk(
        n,
        [&](Index b, Index e, Index) {
          SPARSENM_DISPATCH(tans_apply_base<false>)(U, nullptr, w + b, b, e, decay, eta_mat);
        },
        par);
  } else {
    // U_base is 0 off the mask: scatter it into the dense Newton-Schulz input.
    m_dense.resize(m_rows, m_cols);
    scatter_slots(weight, U, m_dense.data());
    const S scale = S(1.0 / (std::sqrt(ss) + kNsNormEps));
    const Matrix<S>& Om = detail::newton_schulz_run(m_dense.data(), m_rows, m_cols, scale,
                                                    m_cfg.ns_steps, m_cfg.coefficients, m_ws);
    const bool par_ns = detail::parallel_after_ns(par);
    // O_M on the active entries, in the layout of the values.
    m_oc.resize(m_rows, k);
    S* Oc = m_oc.data();
    const S* O = Om.data();
    gather_slots(weight, O, Oc);
    double s = 1.0;
    if (m_cfg.rms == RmsMatch::PostMaskActive) {
      const double so_act = detail::chunk_sum(
          n, m_scratch.b, [&](Index b, Index e) { return detail::sum_squares(Oc, b, e); }, par_ns);
      const double cnt = double(n);
      s = std::sqrt(ss / cnt) / (std::sqrt(so_act / cnt) + m_cfg.eps);
    } else if (m_cfg.rms == RmsMatch::PreMaskGlobal) {
      const Index nd = m_rows * m_cols;
      const double so_all = detail::chunk_sum(
          nd, m_scratch.b, [&](Index b, Index e) { return detail::sum_squares(O, b, e); }, par_ns);
      s = std::sqrt(ss / double(nd)) / (std::sqrt(so_all / double(nd)) + m_cfg.eps);
    }
    m_last_s = s;
    const S sg = S(gamma), ss_ = S(s);
    detail::for_each_chunk(
        n,
        [&](Index b, Index e, Index) {
          SPARSENM_DISPATCH(tans_apply<false>)
          (Oc, U, nullptr, w + b, b, e, sg, ss_, decay, eta_mat);
        },
        par_ns);
  }
  ++m_tau;
  ++m_steps;
}

template <class S>
void Tans<S>::remap(const SlotMap& slots) {
  SPARSENM_CHECK(m_compressed, "Tans::remap: compressed route only (the dense route takes ",
                 "on_refresh(changed))");
  check_shape(slots.source, m_v.rows(), m_v.cols(), "Tans::remap: slots");
  m_tau = 0;
  if (m_cfg.reset == StateReset::All) {
    m_v.setZero();
    m_p.setZero();
  } else {
    remap_slots<S>(m_v, slots);
    remap_slots<S>(m_p, slots);
  }
}

template <class S>
void Tans<S>::on_refresh(const Mask& changed) {
  SPARSENM_CHECK(!m_compressed, "Tans::on_refresh: this Tans steps a compressed weight; pass the ",
                 "refresh's slot map to remap(result.slots) instead");
  check_shape(changed, m_rows, m_cols, "Tans::on_refresh: changed");
  check_binary(changed, "Tans::on_refresh: changed");
  m_tau = 0;
  if (m_cfg.reset == StateReset::All) {
    m_v.setZero();
    m_p.setZero();
  } else if (m_cfg.reset == StateReset::ChangedEntries) {
    const std::uint8_t* c = changed.data();
    S* V = m_v.data();
    S* P = m_p.data();
    detail::for_each_chunk(m_rows * m_cols, [&](Index b, Index e, Index) {
      for (Index i = b; i < e; ++i) {
        V[i] = c[i] ? S(0) : V[i];
        P[i] = c[i] ? S(0) : P[i];
      }
    });
  }
}

}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_TANS_HPP
