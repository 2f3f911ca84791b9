// SPDX-License-Identifier: Apache-2.0
// SparseForge soft-mask annealing (Liu et al., "SparseForge", Algorithm 1 lines 7–13, Sec. 4.2
// eqs. (3)–(5), Sec. 4.3 progressive quenching), with the SparseForge release's schedules as the
// defaults (ALGORITHMS.md, "Hutchinson and SparseForge").
//
// Every `update_interval` steps (Alg. 1 line 7), from importance scores s (usually
// obd_scores(H, W, ε) = (H + ε) ⊙ W², line 8):
//   s̃ = (s − mean(s)) / (std(s) + std_eps)                   layer-wise, population std (line 8)
//   per group 𝒢 of m entries: τ_𝒢 = n-th largest s̃ in 𝒢,
//   G = σ((s̃ − τ_𝒢) / T),   Ḡ = TopK_n(s̃)  (the layout's projection)           (eq. (3), line 9)
//   G ← (1 − β) G + β Ḡ                                                          (line 10,
//   Sec. 4.3) G̃ = clamp(G − η_pen · λ_mid · (m − Ḡ), 0, 1)                                  (eq.
//   (4), line 11) m ← (1 − α) m + α G̃                                                          (eq.
//   (5), line 12)
// and the schedules advance (line 13). The forward pass uses m_eff = x m + (1 − x) hard(m)
// (Sec. 4.3, "final quenching"), x annealed linearly 1 → 0 over the hardening window; once x = 0
// the mask is frozen and finalize() returns the legal projection of m.
#ifndef SPARSENM_HESSIAN_SOFT_MASK_HPP
#define SPARSENM_HESSIAN_SOFT_MASK_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <type_traits>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/rowwise.hpp"
#include "../mask/transposable.hpp"
#include "obd.hpp"

// GCC 12 reports false -Wmaybe-uninitialized warnings inside AVX-512 intrinsics (and Eigen's
// AVX-512 reductions) that start from _mm512_undefined_*() (GCC bug 105593); silence them here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace sparsenm {

/// Hyperparameters of SoftMaskAnnealer. Defaults = the SparseForge release (ALGORITHMS.md
/// "Reference defaults") where it fixes them; the window positions (β and hardening), which the
/// release sets per run in absolute steps, default to a 2000-step run here (see for_steps()).
/// `step` everywhere is the training step t of Algorithm 1 (t = 1, 2, ...).
struct SoftMaskConfig {
  /// Target pattern: keep n of every m (paper: 2:4). Gates and the hard target act on row groups
  /// of m contiguous entries; Layout::Transposable projects Ḡ, hard(m) and the final mask onto
  /// m x m tiles with n per tile-row and tile-column (needs rows % m == 0 too).
  NM nm{2, 4};
  Layout layout = Layout::RowWise;

  /// T_update (Alg. 1 line 7, "the soft mask m is updated ... only every T_update steps"): the
  /// mask update period K. Release: 10.
  int update_interval = 10;

  /// ε of "s = (H + ε) ⊙ W²" (Sec. 4.2, "ε is a small stabilizer"), used by update(hdiag, w, step).
  double score_eps = 1e-8;

  /// ε of "s̃ ← (s − μ_s)/(σ_s + ε)" (Sec. 4.2); σ is the population std. Release: 1e-6.
  double std_eps = 1e-6;

  /// Sigmoid temperature (eq. (3)) "T ← γT ... applied at every mask-update step" (Sec. 4.3); the
  /// release evaluates T(step) = max(temperature_min, temperature_init · γ^floor(step / K)).
  /// Release: T0 = 1.0, γ = 0.97, T_min = 0.05.
  double temperature_init = 1.0;
  double temperature_decay = 0.97;
  double temperature_min = 0.05;

  /// α of eq. (5), "m ← (1 − α) m + α G̃" (mask EMA, from m = 1, Alg. 1 line 1). Release: 0.1.
  double mask_lr = 0.1;

  /// η_pen of eq. (4) (release pen_lr 0.1) and the annealed λ_mid ("we anneal its weight λ_mid
  /// during training, keeping the binary preference weak during early exploration", Sec. 4.3):
  /// λ_mid(step) = lambda_mid_max · clamp((step − lambda_mid_start) / lambda_mid_ramp, 0, 1).
  /// Release: λ_max 0.1 ramped from 0 over 500 steps. lambda_mid_ramp = 0 means λ_max at once.
  double penalty_lr = 0.1;
  double lambda_mid_max = 0.1;
  long lambda_mid_start = 0;
  long lambda_mid_ramp = 500;

  /// β window: "We schedule β with a smooth-step (cubic Hermite) curve" (Sec. 4.3):
  /// β(step) = 3u² − 2u³ with u = clamp((step − beta_start)/(beta_end − beta_start), 0, 1).
  long beta_start = 200;
  long beta_end = 1500;

  /// Hardening window: "x is annealed linearly from 1 to 0 over a dedicated hardening window"
  /// (Sec. 4.3): x(step) = clamp(1 − (step − hardening_start)/hardening_duration, 0, 1). From
  /// step hardening_start + hardening_duration on (x = 0) the mask is frozen.
  long hardening_start = 1500;
  long hardening_duration = 500;

  /// Throws sparsenm::Error naming the first bad field and its legal range.
  void validate() const;

  /// The defaults with every window scaled to a run of `total_steps` (>= 20): β over
  /// [0.1, 0.75]·total, λ_mid ramp over the first 0.25·total, hardening over [0.75, 1.0]·total,
  /// so the mask is frozen at the last step. (The release's scripts keep the same order: a soft
  /// warm-up, then β and hardening running to the end.)
  static SoftMaskConfig for_steps(long total_steps);
};

/// Layer-wise standardisation s̃ = (s − mean) / (population std + eps) (SparseForge Sec. 4.2);
/// mean and std are accumulated in double, serially, so the result is thread-count independent.
template <class S, class D>
Matrix<S> standardize_scores(const Eigen::MatrixBase<D>& s, double eps = 1e-6);

/// The group-wise soft gate of eq. (3): G = σ((z − τ_𝒢)/T) with τ_𝒢 the n-th largest entry of z
/// in each row group of m contiguous entries (so the n-th largest entry gets exactly 0.5).
template <class S, class D>
Matrix<S> group_soft_gate(const Eigen::MatrixBase<D>& z, NM nm, double temperature);

/// SparseForge soft mask of one weight matrix (rows = out, cols = in). See the file comment for
/// the rule and SoftMaskConfig for the schedules. Typical use (one annealer per layer):
///
///   SoftMaskAnnealer<float> ann(W.rows(), W.cols(), SoftMaskConfig::for_steps(total));
///   HutchinsonDiagonal<float> hess(W.rows(), W.cols());
///   for (long t = 1; t <= total; ++t) {
///     Matrix<float> meff = ann.effective_mask(t);         // forward with W ⊙ meff
///     ... forward / backward; dW of W ⊙ meff passes straight to W (STE) ...
///     if (ann.due(t)) {
///       hess.update(hvp, rng);                             // optional; H = 1 before the first
///       ann.update(hess.diagonal(), W, t);                 // s = (H+ε)⊙W², Alg. 1 lines 8–13
///     }
///   }
///   Mask final_mask = ann.finalize();                     // legal N:M; W ⊙ final_mask to deploy
template <class S>
class SoftMaskAnnealer {
  static_assert(std::is_floating_point<S>::value, "SoftMaskAnnealer<S>: S must be float or double");

 public:
  /// cfg is validated here and stored by value; cols % m == 0 (and rows % m == 0 for
  /// Layout::Transposable). The soft mask starts at all ones (Alg. 1 line 1).
  SoftMaskAnnealer(Index rows, Index cols, SoftMaskConfig cfg = {});

  /// True when Alg. 1 line 7 fires: step >= 1, step % update_interval == 0, and not frozen.
  bool due(long step) const;

  /// True once the hardening window is over (x(step) = 0): the mask no longer changes.
  bool frozen(long step) const;

  /// One mask update (Alg. 1 lines 9–13) from precomputed scores s (rows x cols, finite), with the
  /// schedules evaluated at `step`. Does nothing and returns false when frozen(step); the caller
  /// decides the period (normally `if (due(step))`). Throws sparsenm::Error on a shape mismatch or
  /// a non-finite score (the mask is left unchanged).
  template <class D>
  bool update(const Eigen::MatrixBase<D>& scores, long step);

  /// Same with s = obd_scores(hdiag, w, score_eps) (Alg. 1 line 8).
  template <class DH, class DW>
  bool update(const Eigen::MatrixBase<DH>& hdiag, const Eigen::MatrixBase<DW>& w, long step);

  /// The soft mask m in [0, 1].
  const Matrix<S>& mask() const { return m_mask; }

  /// m_eff = x m + (1 − x) hard(m) with x = hardening_x(step), hard(m) = the layout's projection of
  /// m (the "1[m > θ]" of Sec. 4.3 is the top-n rule for N:M). The forward pass uses W ⊙ m_eff.
  Matrix<S> effective_mask(long step) const;
  void effective_mask(long step, Eigen::Ref<Matrix<S>> out) const;

  /// hard(m): the legal N:M mask (row-wise or transposable) closest to the current soft mask.
  const Mask& hard_mask() const { return m_hard; }

  /// The final legal mask (paper: "apply the final structured projection, freeze the binary
  /// mask"): project_rowwise / project_transposable of m. Always legal for the layout.
  Mask finalize() const { return m_hard; }

  /// Schedules (functions of the step only).
  double temperature(long step) const;
  double beta(long step) const;
  double lambda_mid(long step) const;
  double hardening_x(long step) const;

  /// L_mid = mean m (1 − m) (Sec. 4.3), the binary-preference regulariser.
  double mid_loss() const;
  /// Fraction of entries of m strictly inside (lo, hi).
  double mid_fraction(double lo = 0.1, double hi = 0.9) const;

  /// update() calls that changed the mask.
  long updates() const { return m_updates; }
  const SoftMaskConfig& config() const { return m_cfg; }
  Index rows() const { return m_mask.rows(); }
  Index cols() const { return m_mask.cols(); }

  /// Restores a saved soft mask (checkpointing): shape rows x cols, entries in [0, 1].
  void set_mask(const Matrix<S>& m);

 private:
  Mask project(const Matrix<S>& x) const;

  SoftMaskConfig m_cfg;
  Matrix<S> m_mask;
  Mask m_hard;
  long m_updates = 0;
};

// ---------------------------------------------------------------------------------------------
// Implementation

inline void SoftMaskConfig::validate() const {
  check_nm(nm, "SoftMaskConfig::nm");
  check_at_least(update_interval, 1, "SoftMaskConfig::update_interval");
  check_finite_nonnegative(score_eps, "SoftMaskConfig::score_eps");
  check_finite_positive(std_eps, "SoftMaskConfig::std_eps");
  check_finite_positive(temperature_init, "SoftMaskConfig::temperature_init");
  check_in_range(temperature_decay, 0.0, 1.0, "SoftMaskConfig::temperature_decay", true, false);
  check_in_range(temperature_min, 0.0, temperature_init, "SoftMaskConfig::temperature_min", true,
                 false);
  check_in_range(mask_lr, 0.0, 1.0, "SoftMaskConfig::mask_lr", true, false);
  check_finite_nonnegative(penalty_lr, "SoftMaskConfig::penalty_lr");
  check_finite_nonnegative(lambda_mid_max, "SoftMaskConfig::lambda_mid_max");
  check_at_least(lambda_mid_start, 0, "SoftMaskConfig::lambda_mid_start");
  check_at_least(lambda_mid_ramp, 0, "SoftMaskConfig::lambda_mid_ramp");
  check_at_least(beta_start, 0, "SoftMaskConfig::beta_start");
  SPARSENM_CHECK(beta_end > beta_start, "SoftMaskConfig::beta_end = ", beta_end,
                 " must be > beta_start = ", beta_start);
  check_at_least(hardening_start, 0, "SoftMaskConfig::hardening_start");
  check_at_least(hardening_duration, 1, "SoftMaskConfig::hardening_duration");
}

inline SoftMaskConfig SoftMaskConfig::for_steps(long total_steps) {
  check_at_least(total_steps, 20, "SoftMaskConfig::for_steps: total_steps");
  SoftMaskConfig c;
  c.beta_start = total_steps / 10;
  c.beta_end = std::max(c.beta_start + 1, total_steps * 3 / 4);
  c.lambda_mid_ramp = std::max(1L, total_steps / 4);
  c.hardening_start = total_steps * 3 / 4;
  c.hardening_duration = std::max(1L, total_steps - c.hardening_start);
  return c;
}

template <class S, class D>
Matrix<S> standardize_scores(const Eigen::MatrixBase<D>& s, double eps) {
  check_finite_positive(eps, "standardize_scores: eps");
  check_at_least(s.size(), 1, "standardize_scores: size");
  const Matrix<S> x = s.template cast<S>();
  check_all_finite(x, "standardize_scores: scores");
  const S* p = x.data();
  const Index n = x.size();
  double sum = 0;
  for (Index i = 0; i < n; ++i) sum += double(p[i]);
  const double mean = sum / double(n);
  double ss = 0;
  for (Index i = 0; i < n; ++i) ss += (double(p[i]) - mean) * (double(p[i]) - mean);
  const double inv = 1.0 / (std::sqrt(ss / double(n)) + eps);
  Matrix<S> z(x.rows(), x.cols());
  S* q = z.data();
  for (Index i = 0; i < n; ++i) q[i] = S((double(p[i]) - mean) * inv);
  return z;
}

namespace detail {

/// n-th largest of the m values at g (n in [1, m], m <= kMaxGroupSize).
template <class S>
inline S nth_largest(const S* g, int n, int m) {
  S buf[kMaxGroupSize];
  std::copy(g, g + m, buf);
  std::nth_element(buf, buf + (n - 1), buf + m, std::greater<S>());
  return buf[n - 1];
}

/// σ(x) without overflow warnings: exp of a large positive argument gives inf and 1/(1+inf) = 0.
template <class S>
inline S sigmoid(S x) {
  return S(1) / (S(1) + std::exp(-x));
}

}  // namespace detail

template <class S, class D>
Matrix<S> group_soft_gate(const Eigen::MatrixBase<D>& z, NM nm, double temperature) {
  check_nm(nm, "group_soft_gate: nm");
  check_divisible(z.cols(), nm.m, "group_soft_gate: cols");
  check_finite_positive(temperature, "group_soft_gate: temperature");
  const Matrix<S> x = z.template cast<S>();
  Matrix<S> g(x.rows(), x.cols());
  const S inv_t = S(1.0 / temperature);
  const Index groups = x.cols() / nm.m;
  for (Index r = 0; r < x.rows(); ++r) {
    for (Index q = 0; q < groups; ++q) {
      const S* zg = x.data() + r * x.cols() + q * nm.m;
      const S tau = detail::nth_largest(zg, nm.n, nm.m);
      S* gg = g.data() + r * x.cols() + q * nm.m;
      for (int k = 0; k < nm.m; ++k) gg[k] = detail::sigmoid((zg[k] - tau) * inv_t);
    }
  }
  return g;
}

template <class S>
SoftMaskAnnealer<S>::SoftMaskAnnealer(Index rows, Index cols, SoftMaskConfig cfg) : m_cfg(cfg) {
  m_cfg.validate();
  check_at_least(rows, 1, "SoftMaskAnnealer: rows");
  check_at_least(cols, 1, "SoftMaskAnnealer: cols");
  check_divisible(cols, m_cfg.nm.m, "SoftMaskAnnealer: cols", "m");
  if (m_cfg.layout == Layout::Transposable)
    check_divisible(rows, m_cfg.nm.m, "SoftMaskAnnealer: rows (transposable layout)", "m");
  m_mask.setOnes(rows, cols);
  m_hard = project(m_mask);
}

template <class S>
Mask SoftMaskAnnealer<S>::project(const Matrix<S>& x) const {
  return m_cfg.layout == Layout::RowWise ? project_rowwise(x, m_cfg.nm)
                                         : project_transposable(x, m_cfg.nm);
}

template <class S>
bool SoftMaskAnnealer<S>::frozen(long step) const {
  return step >= m_cfg.hardening_start + m_cfg.hardening_duration;
}

template <class S>
bool SoftMaskAnnealer<S>::due(long step) const {
  return step >= 1 && step % m_cfg.update_interval == 0 && !frozen(step);
}

template <class S>
double SoftMaskAnnealer<S>::temperature(long step) const {
  const long k = std::max(0L, step) / m_cfg.update_interval;
  return std::max(m_cfg.temperature_min,
                  m_cfg.temperature_init * std::pow(m_cfg.temperature_decay, double(k)));
}

template <class S>
double SoftMaskAnnealer<S>::beta(long step) const {
  const double u = std::clamp(
      double(step - m_cfg.beta_start) / double(m_cfg.beta_end - m_cfg.beta_start), 0.0, 1.0);
  return u * u * (3.0 - 2.0 * u);  // smooth-step 3u² − 2u³
}

template <class S>
double SoftMaskAnnealer<S>::lambda_mid(long step) const {
  if (m_cfg.lambda_mid_ramp == 0)
    return step >= m_cfg.lambda_mid_start ? m_cfg.lambda_mid_max : 0.0;
  const double u =
      std::clamp(double(step - m_cfg.lambda_mid_start) / double(m_cfg.lambda_mid_ramp), 0.0, 1.0);
  return m_cfg.lambda_mid_max * u;
}

template <class S>
double SoftMaskAnnealer<S>::hardening_x(long step) const {
  return std::clamp(1.0 - double(step - m_cfg.hardening_start) / double(m_cfg.hardening_duration),
                    0.0, 1.0);
}

template <class S>
template <class D>
bool SoftMaskAnnealer<S>::update(const Eigen::MatrixBase<D>& scores, long step) {
  check_shape(scores, m_mask.rows(), m_mask.cols(), "SoftMaskAnnealer::update: scores");
  if (frozen(step)) return false;
  const Matrix<S> z = standardize_scores<S>(scores, m_cfg.std_eps);  // throws on NaN/Inf
  const Mask target = project(z);                                    // Ḡ = TopK_n(s̃)
  const S inv_t = S(1.0 / temperature(step));
  const S b = S(beta(step));
  const S pen = S(m_cfg.penalty_lr * lambda_mid(step));
  const S a = S(m_cfg.mask_lr);
  const int n = m_cfg.nm.n, m = m_cfg.nm.m;
  const Index cols = m_mask.cols();
  const Index groups = cols / m;
  S* mp = m_mask.data();
  const S* zp = z.data();
  const std::uint8_t* tp = target.data();
  // Rows are independent; small layers stay serial (a parallel region costs microseconds).
  const Index min_rows = std::max<Index>(2, (Index(1) << 16) / std::max<Index>(cols, 1));
  parallel_for(
      Index(0), m_mask.rows(),
      [&](Index r) {
        for (Index q = 0; q < groups; ++q) {
          const Index off = r * cols + q * m;
          const S tau = detail::nth_largest(zp + off, n, m);
          for (int k = 0; k < m; ++k) {
            const Index i = off + k;
            const S gbar = S(tp[i]);
            S g = detail::sigmoid((zp[i] - tau) * inv_t);                   // eq. (3)
            g = (S(1) - b) * g + b * gbar;                                  // structure blend
            const S gt = std::clamp(g - pen * (mp[i] - gbar), S(0), S(1));  // eq. (4)
            mp[i] = (S(1) - a) * mp[i] + a * gt;                            // eq. (5)
          }
        }
      },
      min_rows);
  m_hard = project(m_mask);
  ++m_updates;
  return true;
}

template <class S>
template <class DH, class DW>
bool SoftMaskAnnealer<S>::update(const Eigen::MatrixBase<DH>& hdiag, const Eigen::MatrixBase<DW>& w,
                                 long step) {
  if (frozen(step)) {
    check_shape(w, m_mask.rows(), m_mask.cols(), "SoftMaskAnnealer::update: w");
    return false;
  }
  return update(obd_scores<S>(hdiag, w, S(m_cfg.score_eps)), step);
}

template <class S>
void SoftMaskAnnealer<S>::effective_mask(long step, Eigen::Ref<Matrix<S>> out) const {
  check_shape(out, m_mask.rows(), m_mask.cols(), "SoftMaskAnnealer::effective_mask: out");
  const S x = S(hardening_x(step));
  if (x == S(1)) {
    out = m_mask;
    return;
  }
  out = x * m_mask + (S(1) - x) * m_hard.template cast<S>();
}

template <class S>
Matrix<S> SoftMaskAnnealer<S>::effective_mask(long step) const {
  Matrix<S> out(m_mask.rows(), m_mask.cols());
  effective_mask(step, out);
  return out;
}

template <class S>
double SoftMaskAnnealer<S>::mid_loss() const {
  const S* p = m_mask.data();
  double acc = 0;
  for (Index i = 0; i < m_mask.size(); ++i) acc += double(p[i]) * (1.0 - double(p[i]));
  return acc / double(m_mask.size());
}

template <class S>
double SoftMaskAnnealer<S>::mid_fraction(double lo, double hi) const {
  const S* p = m_mask.data();
  Index c = 0;
  for (Index i = 0; i < m_mask.size(); ++i) c += (double(p[i]) > lo && double(p[i]) < hi) ? 1 : 0;
  return double(c) / double(m_mask.size());
}

template <class S>
void SoftMaskAnnealer<S>::set_mask(const Matrix<S>& m) {
  check_shape(m, m_mask.rows(), m_mask.cols(), "SoftMaskAnnealer::set_mask: m");
  check_all_finite(m, "SoftMaskAnnealer::set_mask: m");
  SPARSENM_CHECK(m.minCoeff() >= S(0) && m.maxCoeff() <= S(1),
                 "SoftMaskAnnealer::set_mask: entries must be in [0, 1], got min ", m.minCoeff(),
                 " max ", m.maxCoeff());
  m_mask = m;
  m_hard = project(m_mask);
}

}  // namespace sparsenm

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // SPARSENM_HESSIAN_SOFT_MASK_HPP
