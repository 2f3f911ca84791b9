// SPDX-License-Identifier: Apache-2.0
// SparseForge soft-mask annealing (Liu et al., "SparseForge", Algorithm 1 lines 7–13, Sec. 4.2
// eqs. (3)–(5), Sec. 4.3 progressive quenching), with the SparseForge release's schedules as the
// defaults (docs/algorithms.md, "Hutchinson and SparseForge").
//
// Every `update_interval` steps (Alg. 1 line 7), from importance scores s (usually
// obd_scores(H, W, eps) = (H + eps) * W^2, line 8):
//   line 8:  z = (s - mean(s)) / (std(s) + std_eps)     layer-wise, population std
//   eq. (3): per group of m entries, tau = n-th largest z of the group,
//            G = sigmoid((z - tau) / T),  Gbar = TopK_n(z)  (the layout's projection)
//   line 10: G <- (1 - beta) G + beta Gbar               (structure blend, Sec. 4.3)
//   eq. (4): Gt = clamp(G - pen_lr * lambda_mid * (m - Gbar), 0, 1)
//   eq. (5): m <- (1 - alpha) m + alpha Gt
// and the schedules advance (line 13). The forward pass uses m_eff = x m + (1 - x) hard(m)
// (Sec. 4.3, "final quenching"), x annealed linearly 1 -> 0 over the hardening window; once x = 0
// the mask is frozen and finalize() returns the legal projection of m.
//
// Penalty target: docs/algorithms.md writes the penalty against "target = top-n of G per group";
// for the row-wise layout that is Gbar itself (the blended gate is a strictly increasing function
// of z inside a group, so its top-n is the top-n of z; exact score ties go to the lower index in
// both). For the transposable layout Gbar is project_transposable(z), so that the structure the
// blend and the penalty push towards is the legal tile pattern the mask will be projected onto.
//
// Numerics: the gate's exponent is capped at |80| (sigmoid(+-80) differs from 1 / 0 by 1.8e-35),
// and soft-mask values below 1e-30 are flushed to 0, so no inf or subnormal ever enters the
// arithmetic (the EMA (1 - alpha)^k would otherwise reach subnormals after ~800 updates).
#ifndef SPARSENM_HESSIAN_SOFT_MASK_HPP
#define SPARSENM_HESSIAN_SOFT_MASK_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../core/simd.hpp"
#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/rowwise.hpp"
#include "../mask/transposable.hpp"
#include "detail/finite.hpp"
#include "obd.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {

/// Hyperparameters of SoftMaskAnnealer. Defaults = the SparseForge release (docs/algorithms.md
/// "Reference defaults") where it fixes them; the window positions (β and hardening), which the
/// release sets per run in absolute steps, default to a 2000-step run here (see for_steps()).
/// `step` everywhere is the training step t of Algorithm 1 (t = 1, 2, ...).
struct SoftMaskConfig {
  /// Target pattern: keep n of every m (paper: 2:4). Gates and the hard target act on row groups
  /// of m contiguous entries; Layout::Transposable projects Ḡ, hard(m) and the final mask onto
  /// m x m tiles with n per tile-row and tile-column (needs rows % m == 0 too).
  NM nm{2, 4};
  Layout layout = Layout::RowWise;  ///< row-wise groups, or transposable tiles (the projections)

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
  double temperature_decay = 0.97;  ///< γ: T shrinks by this factor every update
  double temperature_min = 0.05;    ///< T_min: floor of the temperature

  /// α of eq. (5), "m ← (1 − α) m + α G̃" (mask EMA, from m = 1, Alg. 1 line 1). Release: 0.1.
  double mask_lr = 0.1;

  /// η_pen of eq. (4) (release pen_lr 0.1) and the annealed λ_mid ("we anneal its weight λ_mid
  /// during training, keeping the binary preference weak during early exploration", Sec. 4.3):
  /// λ_mid(step) = lambda_mid_max · clamp((step − lambda_mid_start) / lambda_mid_ramp, 0, 1).
  /// Release: λ_max 0.1 ramped from 0 over 500 steps. lambda_mid_ramp = 0 means λ_max at once.
  double penalty_lr = 0.1;
  double lambda_mid_max = 0.1;  ///< λ_max of the annealed λ_mid
  long lambda_mid_start = 0;    ///< step where the λ_mid ramp starts
  long lambda_mid_ramp = 500;   ///< length of the λ_mid ramp (0: λ_max at once)

  /// β window: "We schedule β with a smooth-step (cubic Hermite) curve" (Sec. 4.3):
  /// β(step) = 3u² − 2u³ with u = clamp((step − beta_start)/(beta_end − beta_start), 0, 1).
  long beta_start = 200;
  long beta_end = 1500;  ///< end of the β window (> beta_start)

  /// Hardening window: "x is annealed linearly from 1 to 0 over a dedicated hardening window"
  /// (Sec. 4.3): x(step) = clamp(1 − (step − hardening_start)/hardening_duration, 0, 1). From
  /// step hardening_start + hardening_duration on (x = 0) the mask is frozen.
  long hardening_start = 1500;
  long hardening_duration = 500;  ///< length of the hardening window (>= 1)

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
namespace detail {

/// rank[k] = number of entries of g[0..m) that beat g[k] (larger, or equal at a lower index), so
/// the top-n entries are exactly those with rank < n, ties going to the lower index as in
/// project_rowwise. O(m²) compares, branch-free; m <= kMaxGroupSize.
template <class S, int MC = 0>
inline void group_ranks(const S* g, int m_runtime, int* rank) {
  const int m = MC > 0 ? MC : m_runtime;
  for (int k = 0; k < m; ++k) {
    int r = 0;
    for (int j = 0; j < m; ++j) r += int(g[j] > g[k]) | int(j < k && g[j] == g[k]);
    rank[k] = r;
  }
}

/// n-th largest of the m values at g (n in [1, m], m <= kMaxGroupSize).
template <class S>
inline S nth_largest(const S* g, int n, int m) {
  int rank[kMaxGroupSize];
  group_ranks(g, m, rank);
  S tau = g[0];
  for (int k = 0; k < m; ++k)
    if (rank[k] == n - 1) tau = g[k];
  return tau;
}

/// σ(x) without overflow warnings: exp of a large positive argument gives inf and 1/(1+inf) = 0.
template <class S>
inline S sigmoid(S x) {
  return S(1) / (S(1) + std::exp(-x));
}

}  // namespace detail

namespace detail {

/// Everything one mask update needs (schedules already evaluated at the step).
template <class S>
struct SoftMaskStep {
  S inv_t, beta, pen, alpha;
  int n, m;
  Index cols;
  const S* z;                  // standardised scores s̃
  const std::uint8_t* target;  // Ḡ for the transposable layout (nullptr: row-wise ranks)
  S* mask;                     // m, updated in place
  std::uint8_t* hard;          // hard(m) written here for row-wise (nullptr otherwise)
};

/// |argument| of the gate's exponential is capped at 80: σ(±80) is 1 − 1.8e−35 / 1.8e−35, so no
/// result changes visibly, and neither exp nor 1/(1 + e) produces inf or a subnormal.
inline constexpr double kGateArgMax = 80.0;
/// Mask values below this are flushed to 0: the EMA (1 − α)^k would otherwise walk a pruned entry
/// into the subnormal range after about 800 updates, where x86 arithmetic is ~100x slower.
inline constexpr double kMaskFlush = 1e-30;

/// Alg. 1 lines 9–12 on rows [r0, r1). MC = m when known at compile time (4, 8), else 0.
template <class S, int MC>
void soft_mask_rows(const SoftMaskStep<S>& st, Index r0, Index r1) {
  const int m = MC > 0 ? MC : st.m;
  const int n = st.n;
  const Index cols = st.cols;
  const Index groups = cols / m;
  const S cap = S(kGateArgMax), flush = S(kMaskFlush);
  // Eigen-allocated (aligned) buffers: the packet exp below then starts at index 0 in every
  // thread; a std::vector's address-dependent peeling would mix scalar and packet exp depending
  // on the allocation, and results would differ between thread counts.
  Eigen::Array<S, Eigen::Dynamic, 1> arg(cols), gbar(cols);
  int rank[kMaxGroupSize];
  for (Index r = r0; r < r1; ++r) {
    const S* z = st.z + r * cols;
    S* mk = st.mask + r * cols;
    // Pass 1, per group: ranks give τ_𝒢 (rank n − 1) and the row-wise target Ḡ (rank < n).
    for (Index q = 0; q < groups; ++q) {
      const S* zg = z + q * m;
      group_ranks<S, MC>(zg, m, rank);
      S tau = zg[0];
      for (int k = 0; k < m; ++k)
        if (rank[k] == n - 1) tau = zg[k];
      for (int k = 0; k < m; ++k) {
        const Index c = q * m + k;
        // −(s̃ − τ)/T, the exponent of σ's denominator, capped.
        arg[c] = std::clamp(-(zg[k] - tau) * st.inv_t, -cap, cap);
        gbar[c] = st.target ? S(st.target[r * cols + c]) : S(rank[k] < n ? 1 : 0);
      }
    }
    // Pass 2, vectorised: e = exp(arg) (Eigen's packet exp), then the element-wise rule.
    arg = arg.exp();
    const S* gb = gbar.data();
    const S* ex = arg.data();
    for (Index c = 0; c < cols; ++c) {
      S g = S(1) / (S(1) + ex[c]);                                        // eq. (3)
      g = (S(1) - st.beta) * g + st.beta * gb[c];                         // structure blend
      const S gt = std::clamp(g - st.pen * (mk[c] - gb[c]), S(0), S(1));  // eq. (4)
      const S mv = (S(1) - st.alpha) * mk[c] + st.alpha * gt;             // eq. (5)
      mk[c] = mv < flush ? S(0) : mv;
    }
    if (st.hard) {
      // hard(m) fused for row-wise: top-n of the new m per group, ties to the lower index
      // (= project_rowwise(m)).
      std::uint8_t* h = st.hard + r * cols;
      for (Index q = 0; q < groups; ++q) {
        group_ranks<S, MC>(mk + q * m, m, rank);
        for (int k = 0; k < m; ++k) h[q * m + k] = std::uint8_t(rank[k] < n ? 1 : 0);
      }
    }
  }
}

}  // namespace detail

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
  /// The same, written into `out` (rows x cols; no allocation).
  void effective_mask(long step, Eigen::Ref<Matrix<S>> out) const;

  /// hard(m): the legal N:M mask (row-wise or transposable) closest to the current soft mask.
  const Mask& hard_mask() const { return m_hard; }

  /// The final legal mask (paper: "apply the final structured projection, freeze the binary
  /// mask"): project_rowwise / project_transposable of m. Always legal for the layout.
  Mask finalize() const { return m_hard; }

  /// Schedules (functions of the step only).
  double temperature(long step) const;
  /// β(step), the structure blend weight.
  double beta(long step) const;
  /// λ_mid(step), the weight of the mid-value penalty.
  double lambda_mid(long step) const;
  /// x(step), the soft share of m_eff (1 -> 0 over the hardening window).
  double hardening_x(long step) const;

  /// L_mid = mean m (1 − m) (Sec. 4.3), the binary-preference regulariser.
  double mid_loss() const;
  /// Fraction of entries of m strictly inside (lo, hi).
  double mid_fraction(double lo = 0.1, double hi = 0.9) const;

  /// update() calls that changed the mask.
  long updates() const { return m_updates; }
  /// The settings.
  const SoftMaskConfig& config() const { return m_cfg; }
  /// Rows of the weight.
  Index rows() const { return m_mask.rows(); }
  /// Columns of the weight.
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
  Matrix<S> z = s.template cast<S>();
  detail::check_all_finite_fast(z, "standardize_scores: scores");
  // Sums in double over fixed chunks, combined in chunk order: the result does not depend on the
  // thread count.
  constexpr Index grain = Index(1) << 14;
  const Index n = z.size();
  const Index chunks = (n + grain - 1) / grain;
  std::vector<double> part(std::size_t(chunks), 0.0);
  S* p = z.data();
  parallel_for_chunks(n, grain, [&](Index b, Index e) {
    double acc = 0;
    for (Index i = b; i < e; ++i) acc += double(p[i]);
    part[std::size_t(b / grain)] = acc;
  });
  double sum = 0;
  for (double v : part) sum += v;
  const double mean = sum / double(n);
  parallel_for_chunks(n, grain, [&](Index b, Index e) {
    double acc = 0;
    for (Index i = b; i < e; ++i) acc += (double(p[i]) - mean) * (double(p[i]) - mean);
    part[std::size_t(b / grain)] = acc;
  });
  double ss = 0;
  for (double v : part) ss += v;
  const double inv = 1.0 / (std::sqrt(ss / double(n)) + eps);
  parallel_for_chunks(n, grain, [&](Index b, Index e) {
    for (Index i = b; i < e; ++i) p[i] = S((double(p[i]) - mean) * inv);
  });
  return z;
}

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
  const bool rowwise = m_cfg.layout == Layout::RowWise;
  // Ḡ = TopK_n(s̃): per group for row-wise (from the ranks in the kernel), the tile projection
  // otherwise.
  Mask target;
  if (!rowwise) target = project_transposable(z, m_cfg.nm);
  detail::SoftMaskStep<S> st;
  st.inv_t = S(1.0 / temperature(step));
  st.beta = S(beta(step));
  st.pen = S(m_cfg.penalty_lr * lambda_mid(step));
  st.alpha = S(m_cfg.mask_lr);
  st.n = m_cfg.nm.n;
  st.m = m_cfg.nm.m;
  st.cols = m_mask.cols();
  st.z = z.data();
  st.target = rowwise ? nullptr : target.data();
  st.mask = m_mask.data();
  st.hard = rowwise ? m_hard.data() : nullptr;
  // Rows are independent; chunks of rows keep small layers serial (a parallel region costs
  // microseconds) and let each chunk reuse its row buffers. Results do not depend on threads.
  const Index grain = std::max<Index>(1, (Index(1) << 15) / std::max<Index>(st.cols, 1));
  switch (st.m) {
    case 4:
      parallel_for_chunks(m_mask.rows(), grain,
                          [&](Index r0, Index r1) { detail::soft_mask_rows<S, 4>(st, r0, r1); });
      break;
    case 8:
      parallel_for_chunks(m_mask.rows(), grain,
                          [&](Index r0, Index r1) { detail::soft_mask_rows<S, 8>(st, r0, r1); });
      break;
    default:
      parallel_for_chunks(m_mask.rows(), grain,
                          [&](Index r0, Index r1) { detail::soft_mask_rows<S, 0>(st, r0, r1); });
  }
  if (!rowwise) m_hard = project_transposable(m_mask, m_cfg.nm);
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

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_HESSIAN_SOFT_MASK_HPP
