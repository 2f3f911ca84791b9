// SPDX-License-Identifier: Apache-2.0
// CHTs24 / CHTsNM dynamic topology refresh: soft removal, soft CH2-L3n regrowth, survivor boosting
// and the legal projection of the layout (CHTs24 Sec. 3.2.2-3.2.5, Alg. 1; CHTsNM Sec. 3.4,
// App. E, H.4; docs/algorithms.md "CHTs24 / CHTsNM refresh").
#ifndef SPARSENM_TOPOLOGY_REFRESH_HPP
#define SPARSENM_TOPOLOGY_REFRESH_HPP

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
#include "../mask/project.hpp"
#include "../mask/rowwise.hpp"
#include "../mask/transposable.hpp"
#include "../sampling/frechet.hpp"
#include "ch_scores.hpp"
#include "detail/select_removal.hpp"

namespace sparsenm {

namespace detail {

/// f(i) -> K integer counts for every row i in [0, rows), in parallel; returns their sums (exact
/// integers, so the same for any thread count).
template <std::size_t K, class F>
std::array<Index, K> sum_over_rows(Index rows, F&& f) {
  std::vector<std::array<Index, K>> per_row(static_cast<std::size_t>(rows));
  parallel_for(
      0, rows, [&](Index i) { per_row[static_cast<std::size_t>(i)] = f(i); }, 16);
  std::array<Index, K> total{};
  for (const auto& c : per_row)
    for (std::size_t q = 0; q < K; ++q) total[q] += c[q];
  return total;
}

}  // namespace detail

// clang-format off
/// Settings of the topology refresh. Defaults are the papers' (CHTs24 Table 5, CHTsNM App. H.4):
///
/// | type   | name          | description                                              | default      |
/// |--------|---------------|----------------------------------------------------------|--------------|
/// | Layout | layout        | RowWise groups (1 x m) or Transposable tiles (m x m)     | Transposable |
/// | NM     | nm            | keep n of every m                                        | {2, 4}       |
/// | double | zeta          | fraction of active weights removed per refresh, (0, 1)   | 0.1          |
/// | int    | interval      | steps between refreshes, >= 1                            | 100          |
/// | long   | total_steps   | training length, >= 1                                    | 10000        |
/// | double | stop_fraction | refresh while step < stop_fraction * total_steps, (0, 1] | 0.75         |
/// | double | t_start,t_end | Fréchet temperature schedule over the window, > 0        | 1, 9         |
/// | bool   | soft_remove   | Fréchet-sampled removal (else: smallest magnitude)       | true         |
/// | bool   | soft_regrow   | scores ⊙ U(0,1) (else: plain CH scores)                  | true         |
/// | double | mpr_rho       | MPR revisit suppression, [0, 1], RowWise only            | 0            |
/// | bool   | adaptive_zeta | ζ_t = ζ/2 (1 + cos(π step / T_end)) (reference code)     | false        |
/// | ChRule | rule          | CH2-L3n or CH3-L3n regrowth scores                       | Ch2L3n       |
///
/// CHTsNM uses mpr_rho = 0.5 for row-wise 1:4 and 0.75 for row-wise 2:4 (App. H.5) and
/// adaptive_zeta = true (App. H.4). validate() throws sparsenm::Error naming the parameter.
// clang-format on
struct RefreshConfig {
  /// Row-wise groups or transposable tiles.
  Layout layout = Layout::Transposable;
  /// Keep n of every m.
  NM nm{2, 4};
  /// Fraction of active weights removed per refresh, (0, 1).
  double zeta = 0.1;
  /// Steps between refreshes.
  int interval = 100;
  /// Training length (sets the refresh window and the schedules).
  long total_steps = 10000;
  /// Refresh while step < stop_fraction * total_steps.
  double stop_fraction = 0.75;
  double t_start = 1.0;     ///< Fréchet temperature at the start of the refresh window
  double t_end = 9.0;       ///< Fréchet temperature at its end (linear in between)
  bool soft_remove = true;  ///< Fréchet-sampled removal (else the smallest |W|)
  bool soft_regrow = true;  ///< regrowth scores ⊙ U(0,1) (else the plain CH scores)
  /// Motif Pattern Revisitation probability, [0, 1], row-wise only (CHTsNM App. E.3).
  double mpr_rho = 0.0;  // MPR: row-wise only
  /// ζ_t = ζ/2 (1 + cos(π step / T_end)) instead of ζ.
  bool adaptive_zeta = false;
  /// CH2-L3n or CH3-L3n regrowth scores.
  ChRule rule = ChRule::Ch2L3n;

  /// Throws sparsenm::Error naming the first bad parameter and its legal range.
  void validate() const {
    check_nm(nm, "RefreshConfig.nm");
    check_in_range(zeta, 0.0, 1.0, "RefreshConfig.zeta", true, true);
    check_at_least(interval, 1, "RefreshConfig.interval");
    check_at_least(total_steps, 1, "RefreshConfig.total_steps");
    check_in_range(stop_fraction, 0.0, 1.0, "RefreshConfig.stop_fraction", true, false);
    check_finite_positive(t_start, "RefreshConfig.t_start");
    check_finite_positive(t_end, "RefreshConfig.t_end");
    check_in_range(mpr_rho, 0.0, 1.0, "RefreshConfig.mpr_rho");
    SPARSENM_CHECK(mpr_rho == 0.0 || layout == Layout::RowWise, "RefreshConfig.mpr_rho = ", mpr_rho,
                   " needs layout = rowwise: Motif Pattern Revisitation is defined on row-wise "
                   "groups (CHTsNM App. E.3); use 0 with the transposable layout");
  }
};

/// Per-refresh statistics (all counts refer to one refresh call).
struct RefreshStats {
  long step = -1;                  ///< the step passed to refresh()
  double temperature = 0;          ///< Fréchet temperature used by the removal
  double zeta = 0;                 ///< removal fraction used (ζ_t with adaptive_zeta)
  Eigen::Index active = 0;         ///< active entries before (and after) the refresh
  Eigen::Index removed = 0;        ///< entries removed in step 1 (floor(active · ζ_t))
  Eigen::Index regrown = 0;        ///< entries activated that were inactive after removal
  Eigen::Index revived = 0;        ///< removed and regrown in the same refresh (reset to 0)
  Eigen::Index changed_count = 0;  ///< entries whose mask bit changed (= 2 (regrown − revived))
  Eigen::Index groups = 0;         ///< row-wise groups (1 x m) or transposable tiles (m x m)
  Eigen::Index refreshed_groups = 0;  ///< groups/tiles that lost at least one link in step 1
  Eigen::Index changed_groups = 0;    ///< groups/tiles whose pattern changed
  Eigen::Index mpr_excluded = 0;      ///< refreshed groups whose previous pattern MPR excluded
  double effective_refresh_rate = 0;  ///< changed_groups / refreshed_groups (0 if none)
  double flip_rate = 0;               ///< changed_count / number of entries
};

/// What refresh() reports. `changed` marks every entry whose mask bit changed (pass it to the
/// optimizer's on_refresh); the counts follow RefreshStats.
struct RefreshResult {
  /// 1 where the mask bit changed (pass to an optimizer's on_refresh()).
  Mask changed;
  Eigen::Index removed = 0;        ///< entries removed (RefreshStats::removed)
  Eigen::Index regrown = 0;        ///< entries regrown (RefreshStats::regrown)
  Eigen::Index changed_count = 0;  ///< entries whose mask bit changed
  RefreshStats stats;  ///< the full statistics of this refresh (extra to the API contract)
  /// Compressed route only (refresh(NMCompressed&, step)): where every new slot's state comes
  /// from; pass it to the optimizers' remap() so their state follows each weight. Regrown and
  /// revived entries (removed and regrown in the same refresh) have source -1 and start afresh.
  SlotMap slots;
};

/// CHTs24 / CHTsNM topology engine for one layer (CHTs24 Alg. 1 with the CHTsNM row-wise
/// extension). Every `interval` steps while step < stop_fraction · total_steps, refresh():
///  1. removes floor(active · ζ_t) active weights: soft = the smallest Fréchet scores
///     |W|·(−ln U)^(−1/T) (T annealed linearly from t_start to t_end over the window), hard = the
///     smallest |W|; ties go to the lower linear index;
///  2. scores the absent links with CH2-L3n on the mask after removal, times U(0,1) if soft;
///  3. boosts the survivors of step 1 (Γ → ∞: a survivor is never dropped, CHTs24 Sec. 3.2.4);
///  4. projects onto the layout: per m x m tile the legal pattern with the largest score sum
///     (project_transposable), or per row group the best legal pattern; with mpr_rho > 0 each
///     refreshed group excludes its previous pattern with probability mpr_rho (CHTsNM App. E.3);
///  5. zeroes removed weights, starts regrown ones at 0, and reports the changed entries.
/// A group/tile is "refreshed" when it lost at least one link in step 1.
///
/// Randomness: rng = Philox(seed).split(step); removal noise from rng.split(1), regrowth noise from
/// rng.split(2) (element linear index as counter, through frechet_scores / uniform_perturb), MPR
/// draws from rng.split(3) (row-major group index as counter). A refresh is therefore a pure
/// function of (seed, weight, mask, step) and bit-identical for any thread count. Not thread-safe
/// (one refresher per layer; it keeps reusable buffers).
///
/// \code
///   RefreshConfig cfg;  cfg.layout = Layout::RowWise;  cfg.nm = {1, 4};  cfg.mpr_rho = 0.5;
///   TopologyRefresher<float> topo(cfg, /*seed=*/42);
///   for (long step = 1; step <= cfg.total_steps; ++step) {
///     ...  optimizer.step(W, grad, mask);
///     if (topo.due(step)) optimizer.on_refresh(topo.refresh(W, mask, step).changed);
///   }
/// \endcode
template <class S>
class TopologyRefresher {
  static_assert(std::is_floating_point<S>::value, "TopologyRefresher: S must be float or double");

 public:
  /// Validates `cfg` (sparsenm::Error on a bad parameter) and keeps it by value.
  TopologyRefresher(RefreshConfig cfg, std::uint64_t seed) : m_cfg(cfg), m_rng(seed) {
    m_cfg.validate();
  }

  /// True when a refresh is scheduled at `step`: step > 0, step % interval == 0 and
  /// step < stop_fraction · total_steps.
  bool due(long step) const {
    return step > 0 && step % m_cfg.interval == 0 && double(step) < window();
  }

  /// One refresh of `weight` (out, in) and its legal `mask` at training step `step` (see the
  /// class comment). Keeps the mask legal, zeroes removed weights and starts regrown ones at 0.
  /// Throws sparsenm::Error on a shape mismatch, a mask that is not legal for cfg.nm/layout,
  /// a non-finite weight, a weight that is nonzero where the mask is 0, or step < 0. It does not
  /// check due(step): the caller decides.
  RefreshResult refresh(Eigen::Ref<Matrix<S>> weight, Mask& mask, long step) {
    return refresh_dense(weight, mask, step, nullptr);
  }

  /// The same refresh on a compressed layer (sparse-to-sparse training): `weight`'s mask and
  /// values move to the new topology in place (kept values stay, regrown ones start at 0) and the
  /// result's `slots` says where each new slot comes from, for the optimizers' remap(). The
  /// layout is the config's; the result (mask, values, statistics, `changed`) is bit-identical to
  /// the dense route on decompress(weight). Dense scratch (the weight, removal and CH scores) lives
  /// only during the call: nothing dense persists between refreshes.
  RefreshResult refresh(NMCompressed<S>& weight, long step);

  /// Refreshes done so far; with the seed this is the whole state a checkpoint needs (a refresh is
  /// a pure function of seed, weight, mask and step).
  void set_refreshes(long count) {
    SPARSENM_CHECK(count >= 0, "TopologyRefresher::set_refreshes: count = ", count,
                   " must be >= 0");
    m_count = count;
  }
  /// The seed given to the constructor.
  std::uint64_t seed() const { return m_rng.seed(); }

  /// T at `step`: t_start + step (t_end − t_start) / T_end, T_end = stop_fraction · total_steps
  /// (held at t_end after the window).
  double temperature(long step) const {
    const double x = std::min(1.0, std::max(0.0, double(step) / window()));
    return m_cfg.t_start + x * (m_cfg.t_end - m_cfg.t_start);
  }

  /// ζ_t at `step`: zeta, or zeta/2 (1 + cos(π step / T_end)) with adaptive_zeta.
  double zeta_at(long step) const {
    if (!m_cfg.adaptive_zeta) return m_cfg.zeta;
    const double x = std::min(1.0, std::max(0.0, double(step) / window()));
    return 0.5 * m_cfg.zeta * (1.0 + std::cos(3.14159265358979323846 * x));
  }

  /// T_end = stop_fraction · total_steps.
  double window() const { return m_cfg.stop_fraction * double(m_cfg.total_steps); }
  /// The settings.
  const RefreshConfig& config() const { return m_cfg; }
  /// Statistics of the last refresh (step = −1 before the first).
  const RefreshStats& last_stats() const { return m_stats; }
  /// Number of refresh() calls so far.
  long refreshes() const { return m_count; }

 private:
  RefreshResult refresh_dense(Eigen::Ref<Matrix<S>> weight, Mask& mask, long step, Mask* fresh);
  void project_rowwise_groups(const Mask& before, const Mask& after, const Matrix<S>& scores,
                              const Philox& mpr_rng, Mask& out, RefreshStats& st) const;
  void project_tiles(const Mask& before, const Mask& after, const Matrix<S>& scores,
                     const std::vector<std::uint8_t>& refreshed, Mask& out, RefreshStats& st) const;

  RefreshConfig m_cfg;
  Philox m_rng;
  RefreshStats m_stats;
  long m_count = 0;
  Matrix<S> m_removal;          // removal scores (Fréchet or |W|)
  Matrix<S> m_scores;           // CH scores of the mask after removal
  detail::ChWorkspace<S> m_ws;  // buffers of the score kernels
};

/// eDSrT phase 1 (CHTs24 Sec. 3.3.1): prunes a dense weight onto the legal manifold by magnitude,
/// i.e. per tile (transposable) or group (row-wise) the legal pattern keeping the largest Σ|W|.
/// Zeroes the pruned entries of `weight` in place and returns the mask; dynamic re-training then
/// continues with TopologyRefresher. Throws sparsenm::Error on bad nm/shape or a NaN weight.
template <class S>
Mask edsrt_prune(Eigen::Ref<Matrix<S>> weight, NM nm, Layout layout) {
  check_nm(nm, "edsrt_prune: nm");
  check_all_finite(weight, "edsrt_prune: weight");
  const Matrix<S> magnitude = weight.cwiseAbs();
  Mask mask = project(magnitude, nm, layout);
  for (Index i = 0; i < weight.rows(); ++i)
    for (Index j = 0; j < weight.cols(); ++j)
      if (!mask(i, j)) weight(i, j) = S(0);
  return mask;
}

// ---------------------------------------------------------------------------------------------

template <class S>
RefreshResult TopologyRefresher<S>::refresh(NMCompressed<S>& weight, long step) {
  check_compressed(weight, "TopologyRefresher::refresh: weight");
  SPARSENM_CHECK(weight.nm == m_cfg.nm, "TopologyRefresher::refresh: weight is ", weight.nm,
                 " but the refresher is configured for ", m_cfg.nm);
  Matrix<S> dense = decompress(weight);
  Mask mask = mask_of(weight);
  Mask fresh;
  RefreshResult res = refresh_dense(dense, mask, step, &fresh);
  res.slots = move_to_mask(weight, mask, &fresh);
  // Scratch of the score kernels and removal: released so that nothing dense persists.
  m_removal = Matrix<S>();
  m_scores = Matrix<S>();
  m_ws.release();
  return res;
}

template <class S>
RefreshResult TopologyRefresher<S>::refresh_dense(Eigen::Ref<Matrix<S>> weight, Mask& mask,
                                                  long step, Mask* fresh) {
  const RefreshConfig& c = m_cfg;
  const NM nm = c.nm;
  SPARSENM_CHECK(step >= 0, "TopologyRefresher::refresh: step = ", step, " must be >= 0");
  check_same_shape(weight, mask, "TopologyRefresher::refresh: weight", "mask");
  check_binary(mask, "TopologyRefresher::refresh: mask");
  check_divisible(mask.cols(), nm.m, "TopologyRefresher::refresh: cols", "m");
  if (c.layout == Layout::Transposable)
    check_divisible(mask.rows(), nm.m, "TopologyRefresher::refresh: rows", "m");
  SPARSENM_CHECK(is_legal(mask, nm, c.layout), "TopologyRefresher::refresh: mask is not a legal ",
                 to_string(c.layout), " ", nm, " mask");
  const Index rows = mask.rows(), cols = mask.cols(), size = mask.size();
  {
    // Fast tests (finite; zero off the mask); the slow checks name the entry. A weight that is
    // nonzero off its mask would survive the refresh off the new mask too (only active entries
    // take part in removal), so it is rejected instead of silently kept.
    std::atomic<bool> bad{false}, off{false};
    parallel_for(
        0, rows,
        [&](Index i) {
          const S* w = weight.data() + i * weight.outerStride();
          if (!detail::all_finite_range(w, cols)) bad.store(true, std::memory_order_relaxed);
          const std::uint8_t* mk = mask.data() + i * cols;
          unsigned nz = 0;
          for (Index j = 0; j < cols; ++j) nz |= unsigned(w[j] != S(0)) & (1u ^ mk[j]);
          if (nz) off.store(true, std::memory_order_relaxed);
        },
        64);
    if (bad.load()) check_all_finite(weight, "TopologyRefresher::refresh: weight");
    if (off.load())
      for (Index i = 0; i < rows; ++i)
        for (Index j = 0; j < cols; ++j)
          SPARSENM_CHECK(mask(i, j) || weight(i, j) == S(0), "TopologyRefresher::refresh: weight(",
                         i, ", ", j, ") = ", weight(i, j),
                         " is nonzero where mask is 0; apply_mask(weight, mask) first (the "
                         "weights of a masked layer are zero off its mask)");
  }
  const Philox rng = m_rng.split(static_cast<std::uint64_t>(step));
  RefreshStats st;
  st.step = step;
  st.temperature = temperature(step);
  st.zeta = zeta_at(step);
  const Mask before = mask;
  const std::uint8_t* mb = before.data();

  // 1. Removal among the active entries: the smallest Fréchet scores (soft) or |W| (hard), ties
  // to the lower linear index.
  if (c.soft_remove) {
    frechet_scores_into(weight, S(st.temperature), rng.split(1), m_removal);
  } else {
    m_removal.resize(rows, cols);
    parallel_for(
        0, rows, [&](Index i) { m_removal.row(i) = weight.row(i).cwiseAbs(); }, 64);
  }
  Mask after = before;
  st.removed = detail::remove_smallest_fraction(m_removal.data(), after.data(), rows, cols, st.zeta,
                                                st.active);
  if (st.removed == 0) {  // nothing removed: no group can change (skip the scores)
    st.groups = c.layout == Layout::RowWise ? rows * (cols / nm.m) : (rows / nm.m) * (cols / nm.m);
    RefreshResult res;
    res.changed = Mask::Zero(rows, cols);
    if (fresh) *fresh = Mask::Zero(rows, cols);
    res.stats = st;
    m_stats = st;
    ++m_count;
    return res;
  }

  // 2. Regrowth scores on the mask after removal (CH2-L3n), soft: ⊙ U(0, 1). Only groups/tiles
  // that lost a link can change (the others are fully held by their survivors), so the noise is
  // drawn only there; the values are those of uniform_perturb(scores, rng.split(2)) (same
  // counters), so the result equals the plain pipeline.
  ch_l3n_scores_into(after, c.rule, m_scores, m_ws);
  const Index gr = c.layout == Layout::RowWise ? 1 : nm.m;  // group rows
  const Index gpr = cols / nm.m;                            // groups per group-row
  std::vector<std::uint8_t> refreshed(static_cast<std::size_t>((rows / gr) * gpr), 0);
  const std::uint8_t* ma = after.data();
  parallel_for(
      0, rows / gr,
      [&](Index gi) {
        std::uint8_t* f = refreshed.data() + gi * gpr;
        for (Index i = gi * gr; i < gi * gr + gr; ++i) {
          const std::uint8_t* x = mb + i * cols;
          const std::uint8_t* y = ma + i * cols;
          for (Index g = 0; g < gpr; ++g) {
            unsigned d = 0;
            for (int q = 0; q < nm.m; ++q) d |= unsigned(x[g * nm.m + q] ^ y[g * nm.m + q]);
            f[g] = static_cast<std::uint8_t>(f[g] | d);
          }
        }
      },
      16);
  if (c.soft_regrow) {
    const Philox noise = rng.split(2);
    S* sp = m_scores.data();
    parallel_for(
        0, rows,
        [&](Index i) {
          const std::uint8_t* f = refreshed.data() + (i / gr) * gpr;
          for (Index g = 0; g < gpr; ++g) {
            if (!f[g]) continue;
            for (int q = 0; q < nm.m; ++q) {
              const Index k = i * cols + g * nm.m + q;
              if (!ma[k]) sp[k] = S(double(sp[k]) * noise.uniform(static_cast<std::uint64_t>(k)));
            }
          }
        },
        64);
  }

  // 3.-4. Survivor boosting and the legal projection.
  Mask next = before;
  if (c.layout == Layout::RowWise)
    project_rowwise_groups(before, after, m_scores, rng.split(3), next, st);
  else
    project_tiles(before, after, m_scores, refreshed, next, st);

  // 5. Zero removed and regrown weights; report the changed entries.
  RefreshResult res;
  res.changed.resize(rows, cols);
  if (fresh) fresh->resize(rows, cols);
  const std::uint8_t* mn = next.data();
  std::uint8_t* ch = res.changed.data();
  std::uint8_t* fr = fresh ? fresh->data() : nullptr;
  const auto counts = detail::sum_over_rows<3>(rows, [&](Index i) {
    S* w = weight.data() + i * weight.outerStride();
    // Branch-free (the three masks are 0/1 bytes in no predictable order), so it vectorises.
    const std::uint8_t* b = mb + i * cols;
    const std::uint8_t* a = ma + i * cols;
    const std::uint8_t* x = mn + i * cols;
    std::uint8_t* d = ch + i * cols;
    unsigned changed = 0, regrown = 0, revived = 0;
    for (Index j = 0; j < cols; ++j) {
      const unsigned lost = 1u ^ a[j];  // not a survivor of the removal
      d[j] = static_cast<std::uint8_t>(b[j] ^ x[j]);
      changed += d[j];
      regrown += lost & x[j];
      revived += lost & x[j] & b[j];
      w[j] = (lost & (b[j] | x[j])) ? S(0) : w[j];  // removed or regrown: starts at 0
    }
    if (fr)
      for (Index j = 0; j < cols; ++j)
        fr[i * cols + j] = static_cast<std::uint8_t>((1u ^ a[j]) & x[j]);
    return std::array<Index, 3>{Index(changed), Index(regrown), Index(revived)};
  });
  st.changed_count += counts[0];
  st.regrown += counts[1];
  st.revived += counts[2];
  st.effective_refresh_rate =
      st.refreshed_groups > 0 ? double(st.changed_groups) / double(st.refreshed_groups) : 0.0;
  st.flip_rate = size > 0 ? double(st.changed_count) / double(size) : 0.0;
  mask = std::move(next);
  res.removed = st.removed;
  res.regrown = st.regrown;
  res.changed_count = st.changed_count;
  res.stats = st;
  m_stats = st;
  ++m_count;
  return res;
}

template <class S>
void TopologyRefresher<S>::project_rowwise_groups(const Mask& before, const Mask& after,
                                                  const Matrix<S>& scores, const Philox& mpr_rng,
                                                  Mask& out, RefreshStats& st) const {
  const int m = m_cfg.nm.m, n = m_cfg.nm.n;
  const Index rows = before.rows(), cols = before.cols(), gpr = cols / m;
  st.groups = rows * gpr;
  const double rho = m_cfg.mpr_rho;
  const std::uint8_t* mb = before.data();
  const std::uint8_t* ma = after.data();
  std::uint8_t* mo = out.data();  // starts as a copy of `before`: unrefreshed groups stay
  const auto counts = detail::sum_over_rows<3>(rows, [&](Index i) {
    Index refreshed = 0, excluded = 0, changed = 0;
    const S* sr = scores.data() + i * cols;
    for (Index g = 0; g < gpr; ++g) {
      const Index k0 = i * cols + g * m;
      std::uint32_t old_pat = 0, surv = 0;
      for (int q = 0; q < m; ++q) {
        old_pat |= std::uint32_t(mb[k0 + q]) << q;
        surv |= std::uint32_t(ma[k0 + q]) << q;
      }
      if (surv == old_pat) continue;
      ++refreshed;
      // Survivors are kept (Γ → ∞); the free slots take the best non-survivors, ties to the
      // lower index (the order project_rowwise uses).
      int cand[32], nc = 0;
      for (int q = 0; q < m; ++q)
        if (!(surv >> q & 1u)) cand[nc++] = q;
      const S* sg = sr + g * m;
      std::stable_sort(cand, cand + nc, [&](int a, int b) { return sg[a] > sg[b]; });
      const int need = n - __builtin_popcount(surv);
      std::uint32_t pat = surv;
      for (int t = 0; t < need; ++t) pat |= 1u << cand[t];
      // MPR (CHTsNM App. E.3): with probability rho the previous pattern is not a candidate;
      // the best other pattern swaps the weakest chosen slot for the strongest unchosen one.
      if (rho > 0 && pat == old_pat && need < nc &&
          mpr_rng.uniform(static_cast<std::uint64_t>(i * gpr + g)) < rho) {
        ++excluded;
        pat = (pat & ~(1u << cand[need - 1])) | (1u << cand[need]);
      }
      if (pat != old_pat) ++changed;
      for (int q = 0; q < m; ++q) mo[k0 + q] = (pat >> q & 1u) ? 1 : 0;
    }
    return std::array<Index, 3>{refreshed, excluded, changed};
  });
  st.refreshed_groups += counts[0];
  st.mpr_excluded += counts[1];
  st.changed_groups += counts[2];
}

template <class S>
void TopologyRefresher<S>::project_tiles(const Mask& before, const Mask& after,
                                         const Matrix<S>& scores,
                                         const std::vector<std::uint8_t>& refreshed, Mask& out,
                                         RefreshStats& st) const {
  const int m = m_cfg.nm.m;
  const Index rows = before.rows(), cols = before.cols(), tpr = cols / m;
  st.groups = (rows / m) * tpr;
  // Only tiles that lost a link can change.
  std::vector<Index> tiles;
  for (Index t = 0; t < st.groups; ++t)
    if (refreshed[static_cast<std::size_t>(t)]) tiles.push_back(t);
  st.refreshed_groups = static_cast<Index>(tiles.size());
  if (tiles.empty()) return;
  // Survivor boosting Ŝ = S̃ + Γ [survivor] in double with Γ a power of two above m² · max S̃:
  // a pattern that drops a survivor loses Γ and can gain at most m² · max S̃ < Γ, so survivors
  // are always kept (Γ → ∞), while the sums of the remaining scores stay exact in double.
  const Index size = scores.size();
  constexpr Index kChunk = Index(1) << 16;
  std::vector<double> chunk_max(static_cast<std::size_t>((size + kChunk - 1) / kChunk), 0.0);
  parallel_for_chunks(size, kChunk, [&](Index b, Index e) {
    double v = 0;
    for (Index k = b; k < e; ++k) v = std::max(v, double(scores.data()[k]));
    chunk_max[static_cast<std::size_t>(b / kChunk)] = v;
  });
  double smax = 0;
  for (double v : chunk_max) smax = std::max(smax, v);
  const double gamma = std::exp2(std::ceil(std::log2((smax + 1.0) * double(m) * double(m) * 2.0)));
  // The refreshed tiles go side by side into m x (m·T) blocks (each stays an m x m tile), a chunk
  // of tiles per block, projected in parallel (a tile's projection ignores its neighbours).
  const Index T = static_cast<Index>(tiles.size());
  constexpr Index kTiles = 4096;
  std::vector<Index> changed((static_cast<std::size_t>(T) + kTiles - 1) / kTiles, 0);
  parallel_for_chunks(T, kTiles, [&](Index t0, Index t1) {
    Matrix<double> boosted(m, m * (t1 - t0));
    auto origin = [&](Index t) {
      const Index tile = tiles[static_cast<std::size_t>(t)];
      return std::make_pair(tile / tpr * m, tile % tpr * m);
    };
    for (Index t = t0; t < t1; ++t) {
      const auto o = origin(t);
      for (int a = 0; a < m; ++a)
        for (int b = 0; b < m; ++b)
          boosted(a, (t - t0) * m + b) =
              after(o.first + a, o.second + b) ? gamma : double(scores(o.first + a, o.second + b));
    }
    const Mask proj = project_transposable(boosted, m_cfg.nm);
    Index n_changed = 0;
    for (Index t = t0; t < t1; ++t) {
      const auto o = origin(t);
      bool diff = false;
      for (int a = 0; a < m; ++a)
        for (int b = 0; b < m; ++b) {
          out(o.first + a, o.second + b) = proj(a, (t - t0) * m + b);
          diff |= before(o.first + a, o.second + b) != proj(a, (t - t0) * m + b);
        }
      n_changed += diff;
    }
    changed[static_cast<std::size_t>(t0 / kTiles)] = n_changed;
  });
  for (Index v : changed) st.changed_groups += v;
}

}  // namespace sparsenm

#endif  // SPARSENM_TOPOLOGY_REFRESH_HPP
