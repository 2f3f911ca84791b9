// TopologyRefresher (CHTs24 / CHTsNM refresh) and eDSrT: legality over many refreshes, the
// changed set, the pipeline written out plainly (removal -> CH2-L3n ⊙ U -> survivor boost ->
// project_rowwise), MPR (rho = 1 always changes, rho = 0 = plain projection, rate rises with rho),
// schedules, thread-count determinism and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <sparsenm/core/parallel.hpp>
#include <sparsenm/core/philox.hpp>
#include <sparsenm/mask.hpp>
#include <sparsenm/sampling.hpp>
#include <sparsenm/topology.hpp>

using namespace sparsenm;

namespace {

RefreshConfig make_config(Layout layout, NM nm, double rho = 0.0) {
  RefreshConfig c;
  c.layout = layout;
  c.nm = nm;
  c.mpr_rho = rho;
  c.interval = 1;
  c.total_steps = 1000000;
  return c;
}

/// Weights of the given mask: N(0,1)-like values on active entries, 0 elsewhere.
Matrix<float> weights_for(const Mask& mask, std::uint64_t seed) {
  const Philox rng(seed, 5);
  Matrix<float> w = Matrix<float>::Zero(mask.rows(), mask.cols());
  for (Index k = 0; k < w.size(); ++k)
    if (mask.data()[k])
      w.data()[k] = float(rng.uniform(std::uint64_t(k)) - 0.5) * 2.0f +
                    (rng.uniform(std::uint64_t(k) + (1u << 30)) < 0.5 ? 0.1f : -0.1f);
  return w;
}

/// "Training" between refreshes: active weights move a little.
void perturb_active(Matrix<float>& w, const Mask& mask, std::uint64_t seed) {
  const Philox rng(seed, 9);
  for (Index k = 0; k < w.size(); ++k)
    if (mask.data()[k]) w.data()[k] += float(rng.uniform(std::uint64_t(k)) - 0.5) * 0.3f;
}

Index count_ones(const Mask& m) {
  Index s = 0;
  for (Index k = 0; k < m.size(); ++k) s += m.data()[k];
  return s;
}

}  // namespace

TEST(Refresh, MasksStayLegalOverManyRefreshes) {
  struct Case {
    Layout layout;
    NM nm;
    double rho;
  };
  const Case cases[] = {{Layout::RowWise, {1, 4}, 0.5},
                        {Layout::RowWise, {2, 4}, 0.75},
                        {Layout::Transposable, {1, 4}, 0.0},
                        {Layout::Transposable, {2, 4}, 0.0}};
  for (const Case& cs : cases) {
    RefreshConfig cfg = make_config(cs.layout, cs.nm, cs.rho);
    cfg.zeta = 0.3;
    TopologyRefresher<float> topo(cfg, 17);
    Mask mask = random_mask(8, 16, cs.nm, cs.layout, Philox(3));
    Matrix<float> w = weights_for(mask, 4);
    const Index nnz = count_ones(mask);
    Index total_changed = 0;
    for (long step = 1; step <= 1000; ++step) {
      perturb_active(w, mask, std::uint64_t(step));
      const Mask before = mask;
      const Matrix<float> w_before = w;
      const RefreshResult r = topo.refresh(w, mask, step);
      ASSERT_TRUE(is_legal(mask, cs.nm, cs.layout)) << to_string(cs.layout) << " step " << step;
      ASSERT_EQ(count_ones(mask), nnz);
      ASSERT_EQ(r.removed, Index(std::floor(double(nnz) * cfg.zeta)));
      ASSERT_EQ(r.regrown, r.removed);  // the projection restores exactly the legal count
      const MaskStats ms = mask_stats(mask, before);
      ASSERT_EQ(r.changed_count, ms.changed);
      ASSERT_DOUBLE_EQ(r.stats.flip_rate, ms.flip_rate);
      ASSERT_EQ(r.changed_count, 2 * (r.regrown - r.stats.revived));
      for (Index k = 0; k < w.size(); ++k) {
        ASSERT_EQ(r.changed.data()[k], before.data()[k] != mask.data()[k] ? 1 : 0);
        if (!mask.data()[k]) {
          ASSERT_EQ(w.data()[k], 0.0f);  // removed (and never active) -> 0
        }
        if (mask.data()[k] && !before.data()[k]) {
          ASSERT_EQ(w.data()[k], 0.0f);  // regrown weights start at 0
        }
      }
      Index kept_changed = 0;  // active before and after: unchanged unless revived (reset to 0)
      for (Index k = 0; k < w.size(); ++k)
        if (mask.data()[k] && before.data()[k] && w.data()[k] != w_before.data()[k]) {
          ASSERT_EQ(w.data()[k], 0.0f);
          ++kept_changed;
        }
      ASSERT_LE(kept_changed, r.stats.revived) << "only revived entries are reset";
      total_changed += r.changed_count;
    }
    EXPECT_GT(total_changed, 0) << "the topology must actually evolve";
    EXPECT_EQ(topo.refreshes(), 1000);
  }
}

TEST(Refresh, RowwisePipelineWrittenOutPlainly) {
  // rho = 0: the refresh equals removal -> CH2-L3n ⊙ U -> survivor boost -> project_rowwise.
  for (bool soft : {true, false})
    for (NM nm : {NM{1, 4}, NM{2, 4}}) {
      RefreshConfig cfg = make_config(Layout::RowWise, nm);
      cfg.soft_remove = cfg.soft_regrow = soft;
      cfg.total_steps = 400;
      const std::uint64_t seed = 77;
      const long step = 100;
      TopologyRefresher<double> topo(cfg, seed);
      Mask mask = random_rowwise(12, 24, nm, Philox(8));
      Matrix<double> w = weights_for(mask, 9).cast<double>();
      const Mask before = mask;
      const Matrix<double> w0 = w;
      topo.refresh(w, mask, step);

      const Philox rng = Philox(seed).split(std::uint64_t(step));
      const double t = cfg.t_start + double(step) * (cfg.t_end - cfg.t_start) / 300.0;
      EXPECT_DOUBLE_EQ(topo.temperature(step), t);
      const Matrix<double> rem = soft ? frechet_scores(w0, t, rng.split(1)) : w0.cwiseAbs().eval();
      std::vector<std::pair<double, Index>> act;
      for (Index k = 0; k < w0.size(); ++k)
        if (before.data()[k]) act.push_back({rem.data()[k], k});
      std::sort(act.begin(), act.end());
      Mask after = before;
      const auto n_remove = Index(std::floor(double(act.size()) * cfg.zeta));
      for (Index q = 0; q < n_remove; ++q) after.data()[act[std::size_t(q)].second] = 0;
      Matrix<double> s = ch2_l3n_scores<double>(after);
      if (soft) s = uniform_perturb(s, rng.split(2));
      Matrix<double> boosted = s;
      for (Index k = 0; k < s.size(); ++k)
        if (after.data()[k]) boosted.data()[k] = 1e12;
      EXPECT_EQ(mask, project_rowwise(boosted, nm)) << nm << " soft " << soft;
    }
}

TEST(Refresh, MprRhoOneChangesEveryRefreshedGroup) {
  for (NM nm : {NM{1, 4}, NM{2, 4}}) {
    TopologyRefresher<float> topo(make_config(Layout::RowWise, nm, 1.0), 5);
    Mask mask = random_rowwise(16, 32, nm, Philox(1));
    Matrix<float> w = weights_for(mask, 2);
    for (long step = 1; step <= 20; ++step) {
      const Mask before = mask;
      Matrix<float> w_copy = w;
      const RefreshResult r = topo.refresh(w, mask, step);
      ASSERT_GT(r.stats.refreshed_groups, 0);
      EXPECT_EQ(r.stats.changed_groups, r.stats.refreshed_groups);
      EXPECT_DOUBLE_EQ(r.stats.effective_refresh_rate, 1.0);
      // Independently: every group that lost a link now has a different pattern.
      for (Index i = 0; i < mask.rows(); ++i)
        for (Index g = 0; g < mask.cols() / nm.m; ++g) {
          bool differs = false;
          for (int q = 0; q < nm.m; ++q)
            differs |= before(i, g * nm.m + q) != mask(i, g * nm.m + q);
          if (!differs) {
            // Unchanged groups must not have been refreshed: all their links survived, so
            // their weights are untouched.
            for (int q = 0; q < nm.m; ++q) ASSERT_EQ(w(i, g * nm.m + q), w_copy(i, g * nm.m + q));
          }
        }
      perturb_active(w, mask, std::uint64_t(step));
    }
  }
}

TEST(Refresh, EffectiveRefreshRateRisesWithRho) {
  // Same seed, same state: the MPR draws u_g are shared, so the excluded groups are nested in rho
  // and the number of changed groups cannot decrease (checked over several starting states).
  for (NM nm : {NM{1, 4}, NM{2, 4}}) {
    const double rhos[] = {0.0, 0.25, 0.5, 0.75, 1.0};
    std::vector<double> mean(5, 0.0);
    for (long step = 1; step <= 6; ++step) {
      const Mask start = random_rowwise(32, 64, nm, Philox(std::uint64_t(step)));
      const Matrix<float> w0 = weights_for(start, std::uint64_t(step) + 100);
      double prev = -1;
      for (int k = 0; k < 5; ++k) {
        TopologyRefresher<float> topo(make_config(Layout::RowWise, nm, rhos[k]), 123);
        Mask mask = start;
        Matrix<float> w = w0;
        const RefreshResult r = topo.refresh(w, mask, step);
        EXPECT_GE(r.stats.effective_refresh_rate, prev) << nm << " rho " << rhos[k];
        prev = r.stats.effective_refresh_rate;
        mean[std::size_t(k)] += prev / 6.0;
      }
    }
    EXPECT_LT(mean[0], 0.9) << "without MPR some refreshed groups revisit their pattern";
    EXPECT_GT(mean[2], mean[0]);
    EXPECT_DOUBLE_EQ(mean[4], 1.0);
  }
}

TEST(Refresh, SameResultForOneAndTwoThreads) {
  for (Layout layout : {Layout::RowWise, Layout::Transposable}) {
    const NM nm{2, 4};
    const Mask start = random_mask(192, 256, nm, layout, Philox(4));  // big enough for threads
    const Matrix<float> w0 = weights_for(start, 6);
    Mask masks[2];
    Matrix<float> ws[2];
    RefreshResult rs[2];
    for (int t = 0; t < 2; ++t) {
      set_thread_count(t + 1);
      TopologyRefresher<float> topo(make_config(layout, nm, layout == Layout::RowWise ? 0.5 : 0.0),
                                    99);
      masks[t] = start;
      ws[t] = w0;
      for (long step = 1; step <= 3; ++step) rs[t] = topo.refresh(ws[t], masks[t], step);
    }
    set_thread_count(2);
    EXPECT_EQ(masks[0], masks[1]);
    EXPECT_TRUE((ws[0].array() == ws[1].array()).all());
    EXPECT_EQ(rs[0].changed, rs[1].changed);
    EXPECT_EQ(rs[0].changed_count, rs[1].changed_count);
  }
}

TEST(Refresh, HardRemovalDropsTheSmallestMagnitudes) {
  RefreshConfig cfg = make_config(Layout::Transposable, NM{2, 4});
  cfg.soft_remove = false;
  cfg.zeta = 0.25;
  TopologyRefresher<double> topo(cfg, 1);
  Mask mask = random_transposable(8, 8, NM{2, 4}, Philox(2));
  Matrix<double> w = weights_for(mask, 3).cast<double>();
  const Matrix<double> w0 = w;
  const Mask before = mask;
  const RefreshResult r = topo.refresh(w, mask, 1);
  ASSERT_EQ(r.removed, 8);  // 32 active, ζ = 0.25
  // Every surviving (kept and not reset) active entry is at least as large as every removed one.
  double max_removed = 0, min_kept = std::numeric_limits<double>::infinity();
  std::vector<double> mags;
  for (Index k = 0; k < w.size(); ++k)
    if (before.data()[k]) mags.push_back(std::abs(w0.data()[k]));
  std::sort(mags.begin(), mags.end());
  max_removed = mags[7];
  min_kept = mags[8];
  for (Index k = 0; k < w.size(); ++k)
    if (before.data()[k] && mask.data()[k] && w.data()[k] != 0) {
      EXPECT_GE(std::abs(w.data()[k]), min_kept);
    }
  EXPECT_LT(max_removed, min_kept);
}

/// The entries a plain ascending sort of (score, linear index) over the active entries removes.
template <class S>
Mask removal_by_sort(const Matrix<S>& score, const Mask& mask, double fraction) {
  std::vector<std::pair<S, Index>> act;
  for (Index k = 0; k < mask.size(); ++k)
    if (mask.data()[k]) act.push_back({score.data()[k], k});
  std::sort(act.begin(), act.end());
  Mask out = mask;
  const auto count = Index(std::floor(double(act.size()) * fraction));
  for (Index q = 0; q < count; ++q) out.data()[act[std::size_t(q)].second] = 0;
  return out;
}

template <class S>
void check_removal_selection() {
  // Both routes of the selection (one nth_element below 2^18 entries, radix selection above),
  // continuous scores and heavy ties (4 distinct values, +0 and -0 mixed: they compare equal,
  // so the index decides), several fractions, 1 and 2 threads.
  for (Index rows : {Index(37), Index(640)})
    for (int ties = 0; ties < 2; ++ties) {
      const Index cols = 513;
      const Philox rng(static_cast<std::uint64_t>(rows + ties), 11);
      Matrix<S> score(rows, cols);
      Mask mask(rows, cols);
      for (Index k = 0; k < score.size(); ++k) {
        const double u = rng.uniform(std::uint64_t(k));
        mask.data()[k] = rng.uniform(std::uint64_t(k) + (1u << 30)) < 0.45 ? 1 : 0;
        score.data()[k] = ties ? S(std::floor(u * 4) * 0.5) : S(std::ldexp(u, int(u * 40) - 20));
        if (ties && score.data()[k] == S(0) && (k % 2)) score.data()[k] = -S(0);
      }
      for (double fraction : {0.1, 0.5, 0.999}) {
        const Mask expected = removal_by_sort(score, mask, fraction);
        for (int threads : {1, 2}) {
          set_thread_count(threads);
          Mask got = mask;
          Index active = -1;
          const Index removed = detail::remove_smallest_fraction(score.data(), got.data(), rows,
                                                                 cols, fraction, active);
          EXPECT_EQ(active, count_ones(mask));
          EXPECT_EQ(removed, Index(std::floor(double(active) * fraction)));
          EXPECT_EQ(got, expected) << rows << " ties " << ties << " fraction " << fraction;
        }
        set_thread_count(2);
      }
    }
}

TEST(Refresh, RemovalSelectsTheSmallestScoreIndexPairs) {
  check_removal_selection<float>();
  check_removal_selection<double>();
}

TEST(Refresh, LargeLayerHardRemovalWithTiesWrittenOutPlainly) {
  // 512 x 768 (above the radix-selection threshold), hard removal, weights on a coarse grid so
  // that many magnitudes tie: the refresh equals sort-based removal -> CH2-L3n -> boost ->
  // project_rowwise (rho = 0, no noise).
  RefreshConfig cfg = make_config(Layout::RowWise, NM{2, 4});
  cfg.soft_remove = cfg.soft_regrow = false;
  TopologyRefresher<float> topo(cfg, 5);
  Mask mask = random_rowwise(512, 768, cfg.nm, Philox(6));
  Matrix<float> w = weights_for(mask, 7);
  for (Index k = 0; k < w.size(); ++k) w.data()[k] = std::round(w.data()[k] * 4.0f) / 4.0f;
  const Mask before = mask;
  const Matrix<float> w0 = w;
  topo.refresh(w, mask, 1);
  const Mask after = removal_by_sort(Matrix<float>(w0.cwiseAbs()), before, cfg.zeta);
  Matrix<float> boosted = ch2_l3n_scores<float>(after);
  for (Index k = 0; k < boosted.size(); ++k)
    if (after.data()[k]) boosted.data()[k] = 1e30f;
  EXPECT_EQ(mask, project_rowwise(boosted, cfg.nm));
}

TEST(Refresh, TinyLayerWithNothingToRemoveIsUnchanged) {
  // 4 active entries, ζ = 0.1: floor(0.4) = 0 removed, so nothing may change.
  TopologyRefresher<float> topo(make_config(Layout::RowWise, NM{1, 4}), 3);
  Mask mask = random_rowwise(2, 8, NM{1, 4}, Philox(1));
  Matrix<float> w = weights_for(mask, 2);
  const Mask before = mask;
  const Matrix<float> w0 = w;
  const RefreshResult r = topo.refresh(w, mask, 10);
  EXPECT_EQ(r.removed, 0);
  EXPECT_EQ(r.changed_count, 0);
  EXPECT_EQ(mask, before);
  EXPECT_TRUE((w.array() == w0.array()).all());
  EXPECT_EQ(r.stats.groups, 4);
  EXPECT_EQ(r.stats.refreshed_groups, 0);
}

TEST(Refresh, SchedulesAndDue) {
  RefreshConfig cfg;  // interval 100, total 10000, stop 0.75 -> window 7500, T 1 -> 9
  TopologyRefresher<float> topo(cfg, 0);
  EXPECT_FALSE(topo.due(0));
  EXPECT_TRUE(topo.due(100));
  EXPECT_FALSE(topo.due(150));
  EXPECT_TRUE(topo.due(7400));
  EXPECT_FALSE(topo.due(7500));
  EXPECT_FALSE(topo.due(9000));
  EXPECT_DOUBLE_EQ(topo.temperature(0), 1.0);
  EXPECT_DOUBLE_EQ(topo.temperature(3750), 5.0);
  EXPECT_DOUBLE_EQ(topo.temperature(7500), 9.0);
  EXPECT_DOUBLE_EQ(topo.temperature(9999), 9.0);
  EXPECT_DOUBLE_EQ(topo.zeta_at(5000), 0.1);
  cfg.adaptive_zeta = true;
  TopologyRefresher<float> adaptive(cfg, 0);
  EXPECT_DOUBLE_EQ(adaptive.zeta_at(0), 0.1);
  EXPECT_NEAR(adaptive.zeta_at(3750), 0.05, 1e-15);
  EXPECT_NEAR(adaptive.zeta_at(7500), 0.0, 1e-15);
  EXPECT_EQ(topo.last_stats().step, -1);
}

TEST(Refresh, InvalidConfigsAndInputsThrow) {
  auto bad = [](auto edit) {
    RefreshConfig c;
    edit(c);
    EXPECT_THROW(TopologyRefresher<float>(c, 0), Error);
  };
  bad([](RefreshConfig& c) { c.zeta = 0.0; });
  bad([](RefreshConfig& c) { c.zeta = 1.0; });
  bad([](RefreshConfig& c) { c.zeta = -0.1; });
  bad([](RefreshConfig& c) { c.zeta = std::nan(""); });
  bad([](RefreshConfig& c) { c.interval = 0; });
  bad([](RefreshConfig& c) { c.total_steps = 0; });
  bad([](RefreshConfig& c) { c.stop_fraction = 0.0; });
  bad([](RefreshConfig& c) { c.stop_fraction = 1.5; });
  bad([](RefreshConfig& c) { c.t_start = 0.0; });
  bad([](RefreshConfig& c) { c.t_start = -1.0; });
  bad([](RefreshConfig& c) { c.t_end = std::numeric_limits<double>::infinity(); });
  bad([](RefreshConfig& c) { c.mpr_rho = 0.5; });  // transposable layout
  bad([](RefreshConfig& c) {
    c.layout = Layout::RowWise;
    c.mpr_rho = 1.5;
  });
  bad([](RefreshConfig& c) { c.nm = NM{5, 4}; });
  try {
    RefreshConfig c;
    c.zeta = 2.0;
    TopologyRefresher<float> t(c, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zeta"), std::string::npos);
  }
  RefreshConfig ok;
  ok.layout = Layout::RowWise;
  ok.mpr_rho = 1.0;
  EXPECT_NO_THROW(TopologyRefresher<float>(ok, 0));

  TopologyRefresher<float> topo(make_config(Layout::Transposable, NM{2, 4}), 0);
  Mask mask = random_transposable(8, 8, NM{2, 4}, Philox(1));
  Matrix<float> w = weights_for(mask, 1);
  Matrix<float> w_bad = Matrix<float>::Zero(8, 12);
  EXPECT_THROW(topo.refresh(w_bad, mask, 1), Error);  // shape mismatch
  Mask illegal = mask;
  illegal(0, 0) ^= 1;
  EXPECT_THROW(topo.refresh(w, illegal, 1), Error);  // not legal
  EXPECT_THROW(topo.refresh(w, mask, -1), Error);    // negative step
  Matrix<float> w_nan = w;
  w_nan(0, 0) = std::nanf("");
  EXPECT_THROW(topo.refresh(w_nan, mask, 1), Error);  // NaN weight
  Mask odd = random_rowwise(6, 8, NM{2, 4}, Philox(1));
  Matrix<float> w_odd = weights_for(odd, 1);
  EXPECT_THROW(topo.refresh(w_odd, odd, 1), Error);  // rows not divisible by m for transposable
}

TEST(Refresh, WeightNonzeroOffTheMaskThrowsAndChangesNothing) {
  // Only active entries take part in removal, so a nonzero weight off the mask would stay off the
  // new mask as well: refresh() rejects it (naming the entry) before touching weight or mask.
  for (Layout layout : {Layout::RowWise, Layout::Transposable}) {
    TopologyRefresher<float> topo(make_config(layout, NM{2, 4}), 0);
    Mask mask = random_mask(8, 16, NM{2, 4}, layout, Philox(1));
    Matrix<float> w = weights_for(mask, 1);
    Index off = -1;  // the last entry off the mask, found by brute force
    for (Index k = 0; k < mask.size(); ++k)
      if (!mask.data()[k]) off = k;
    ASSERT_GE(off, 0);
    w.data()[off] = 1e-30f;
    const Mask mask0 = mask;
    const Matrix<float> w0 = w;
    try {
      topo.refresh(w, mask, 1);
      ADD_FAILURE() << "no throw";
    } catch (const Error& e) {
      const std::string where =
          "weight(" + std::to_string(off / 16) + ", " + std::to_string(off % 16) + ")";
      EXPECT_NE(std::string(e.what()).find(where), std::string::npos) << e.what();
    }
    EXPECT_EQ(mask, mask0);
    EXPECT_TRUE((w.array() == w0.array()).all());
    EXPECT_EQ(topo.refreshes(), 0);
    w.data()[off] = -0.0f;  // a signed zero is zero
    EXPECT_NO_THROW(topo.refresh(w, mask, 1));
  }
}

TEST(Edsrt, PrunesOntoTheLegalManifoldByMagnitude) {
  const Philox rng(31);
  Matrix<double> w(8, 12);
  for (Index k = 0; k < w.size(); ++k) w.data()[k] = rng.uniform(std::uint64_t(k)) - 0.5;
  // Row-wise 2:4: each group keeps its two largest |w|.
  {
    Matrix<double> x = w;
    const Mask m = edsrt_prune<double>(x, NM{2, 4}, Layout::RowWise);
    ASSERT_TRUE(is_rowwise_legal(m, NM{2, 4}));
    for (Index i = 0; i < 8; ++i)
      for (Index g = 0; g < 3; ++g)
        for (int a = 0; a < 4; ++a)
          for (int b = 0; b < 4; ++b)
            if (m(i, 4 * g + a) && !m(i, 4 * g + b)) {
              EXPECT_GE(std::abs(w(i, 4 * g + a)), std::abs(w(i, 4 * g + b)));
            }
    for (Index k = 0; k < w.size(); ++k) EXPECT_EQ(x.data()[k], m.data()[k] ? w.data()[k] : 0.0);
  }
  // Transposable 2:4: each tile keeps the best of the 90 patterns (brute force).
  {
    Matrix<double> x = w;
    const Mask m = edsrt_prune<double>(x, NM{2, 4}, Layout::Transposable);
    ASSERT_TRUE(is_transposable_legal(m, NM{2, 4}));
    for (Index ti = 0; ti < 8; ti += 4)
      for (Index tj = 0; tj < 12; tj += 4) {
        double best = -1, kept = 0;
        for (std::uint64_t p : TransposablePatterns<4, 2>::all()) {
          double s = 0;
          for (int b = 0; b < 16; ++b)
            if (p >> b & 1u) s += std::abs(w(ti + b / 4, tj + b % 4));
          best = std::max(best, s);
        }
        for (int a = 0; a < 4; ++a)
          for (int b = 0; b < 4; ++b)
            if (m(ti + a, tj + b)) kept += std::abs(w(ti + a, tj + b));
        EXPECT_NEAR(kept, best, 1e-12);
      }
  }
  Matrix<double> nan = w;
  nan(1, 1) = std::nan("");
  EXPECT_THROW(edsrt_prune<double>(nan, NM{2, 4}, Layout::RowWise), Error);
}
