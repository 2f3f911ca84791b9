// SPDX-License-Identifier: Apache-2.0
// SoftMaskAnnealer (SparseForge Alg. 1 lines 7–13, Sec. 4.3): a worked example of the
// equations in docs/algorithms.md "Hutchinson and SparseForge",
// one update against a plain scalar transcription of the paper's formulas, schedules, the full
// anneal (final mask = hard top-n of noise-free scores, L_mid falls, mid-range entries vanish
// before hardening ends), legality of finalize(), bad configs, NaN scores, thread invariance.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <sparsenm/hessian.hpp>

#include "hessian/helpers.hpp"

// GCC 12 false positives in AVX-512 intrinsics inlined from Eigen reductions (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace sparsenm {
namespace {

using test::uniform_matrix;

TEST(SoftMask, WorkedExampleFromAlgorithmsMd) {
  // One row of 8 inputs = two 4-groups, H = 1, T = 1, s = (1 + 1e-8) W², 2:4.
  Matrix<double> w(1, 8);
  w << 0.1, -0.4, 0.3, 0.05, 0.2, 0.25, -0.6, 0.0;
  const Matrix<double> s = obd_scores(Matrix<double>::Ones(1, 8), w, 1e-8);
  const Matrix<double> z = standardize_scores<double>(s, 1e-6);
  const double z_ref[8] = {-0.709825, 0.610780,  -0.005503, -0.775855,
                           -0.445704, -0.247613, 2.371586,  -0.797865};
  const double g_ref[8] = {0.330855, 0.649373, 0.5, 0.316403, 0.450639, 0.5, 0.932087, 0.365806};
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(z(0, k), z_ref[k], 1e-6) << k;
  const Matrix<double> g = group_soft_gate<double>(z, NM{2, 4}, 1.0);
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(g(0, k), g_ref[k], 1e-6) << k;
  // Same in float.
  const Matrix<float> gf =
      group_soft_gate<float>(standardize_scores<float>(s.cast<float>(), 1e-6), NM{2, 4}, 1.0);
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(gf(0, k), g_ref[k], 2e-6) << k;
}

// Plain transcription of Alg. 1 lines 8–12 for a row-wise layout (independent of the library:
// own mean/std, own sort for τ and for the top-n target).
Matrix<double> reference_update(const Matrix<double>& m, const Matrix<double>& s, NM nm, double t,
                                double beta, double pen_lr, double lambda, double alpha,
                                double std_eps) {
  const Index n = s.size();
  double mean = 0;
  for (Index i = 0; i < n; ++i) mean += s.data()[i];
  mean /= double(n);
  double var = 0;
  for (Index i = 0; i < n; ++i) var += (s.data()[i] - mean) * (s.data()[i] - mean);
  const double sd = std::sqrt(var / double(n));
  Matrix<double> out = m;
  for (Index r = 0; r < s.rows(); ++r)
    for (Index c0 = 0; c0 < s.cols(); c0 += nm.m) {
      std::vector<std::pair<double, int>> zs;
      for (int k = 0; k < nm.m; ++k) zs.push_back({(s(r, c0 + k) - mean) / (sd + std_eps), k});
      std::vector<std::pair<double, int>> sorted = zs;
      // Descending by value, ties to the lower index (the projection's convention).
      std::stable_sort(sorted.begin(), sorted.end(),
                       [](auto a, auto b) { return a.first > b.first; });
      const double tau = sorted[std::size_t(nm.n - 1)].first;
      for (int k = 0; k < nm.m; ++k) {
        bool top = false;
        for (int q = 0; q < nm.n; ++q) top = top || sorted[std::size_t(q)].second == k;
        const double gbar = top ? 1.0 : 0.0;
        double g = 1.0 / (1.0 + std::exp(-(zs[std::size_t(k)].first - tau) / t));
        g = (1 - beta) * g + beta * gbar;
        const double gt = std::min(1.0, std::max(0.0, g - pen_lr * lambda * (m(r, c0 + k) - gbar)));
        out(r, c0 + k) = (1 - alpha) * m(r, c0 + k) + alpha * gt;
      }
    }
  return out;
}

TEST(SoftMask, UpdatesMatchPlainScalarReference) {
  SoftMaskConfig cfg;  // defaults
  SoftMaskAnnealer<double> ann(6, 16, cfg);
  Matrix<double> ref = Matrix<double>::Ones(6, 16);
  // Steps chosen so that β, λ_mid and T are all strictly between their end points.
  for (long step : {10L, 300L, 600L, 900L, 1200L}) {
    const Matrix<double> s = uniform_matrix<double>(6, 16, 100 + std::uint64_t(step), 0.0, 2.0);
    ASSERT_TRUE(ann.update(s, step));
    ref = reference_update(ref, s, cfg.nm, ann.temperature(step), ann.beta(step), cfg.penalty_lr,
                           ann.lambda_mid(step), cfg.mask_lr, cfg.std_eps);
    EXPECT_LT((ann.mask() - ref).cwiseAbs().maxCoeff(), 1e-12) << "step " << step;
  }
  EXPECT_EQ(ann.updates(), 5);
}

TEST(SoftMask, SchedulesFollowTheReferenceDefaults) {
  SoftMaskConfig cfg;
  const SoftMaskAnnealer<double> ann(4, 8, cfg);
  // T = max(0.05, 1.0 · 0.97^floor(step / 10)).
  for (long step : {0L, 9L, 10L, 55L, 990L, 1000L, 5000L})
    EXPECT_DOUBLE_EQ(ann.temperature(step), std::max(0.05, std::pow(0.97, double(step / 10))));
  // β: smooth-step 3u² − 2u³ over [200, 1500].
  EXPECT_EQ(ann.beta(0), 0.0);
  EXPECT_EQ(ann.beta(200), 0.0);
  EXPECT_DOUBLE_EQ(ann.beta(850), 0.5);
  EXPECT_DOUBLE_EQ(ann.beta(200 + 325), 3 * 0.0625 - 2 * 0.015625);
  EXPECT_EQ(ann.beta(1500), 1.0);
  EXPECT_EQ(ann.beta(4000), 1.0);
  // λ_mid: 0 → 0.1 linearly over 500 steps.
  EXPECT_EQ(ann.lambda_mid(0), 0.0);
  EXPECT_DOUBLE_EQ(ann.lambda_mid(250), 0.05);
  EXPECT_DOUBLE_EQ(ann.lambda_mid(500), 0.1);
  EXPECT_DOUBLE_EQ(ann.lambda_mid(2000), 0.1);
  // x: 1 until 1500, linear to 0 at 2000.
  EXPECT_EQ(ann.hardening_x(1000), 1.0);
  EXPECT_DOUBLE_EQ(ann.hardening_x(1750), 0.5);
  EXPECT_EQ(ann.hardening_x(2000), 0.0);
  EXPECT_FALSE(ann.frozen(1999));
  EXPECT_TRUE(ann.frozen(2000));
  EXPECT_FALSE(ann.due(0));
  EXPECT_FALSE(ann.due(15));
  EXPECT_TRUE(ann.due(20));
  EXPECT_TRUE(ann.due(1990));
  EXPECT_FALSE(ann.due(2000));
  // for_steps scales the windows.
  const SoftMaskConfig c = SoftMaskConfig::for_steps(400);
  EXPECT_EQ(c.beta_start, 40);
  EXPECT_EQ(c.beta_end, 300);
  EXPECT_EQ(c.hardening_start, 300);
  EXPECT_EQ(c.hardening_start + c.hardening_duration, 400);
  EXPECT_EQ(c.lambda_mid_ramp, 100);
}

struct AnnealTrace {
  std::vector<long> steps;
  std::vector<double> mid_loss, mid_fraction;
  Mask final_mask;
  Matrix<double> final_effective;
};

// Runs the whole schedule with fixed scores (noise-free) and records L_mid and the mid fraction
// after every update.
AnnealTrace anneal(const Matrix<double>& scores, const SoftMaskConfig& cfg, long total) {
  SoftMaskAnnealer<double> ann(scores.rows(), scores.cols(), cfg);
  AnnealTrace tr;
  for (long t = 1; t <= total; ++t) {
    if (!ann.due(t)) continue;
    EXPECT_TRUE(ann.update(scores, t));
    tr.steps.push_back(t);
    tr.mid_loss.push_back(ann.mid_loss());
    tr.mid_fraction.push_back(ann.mid_fraction(0.1, 0.9));
  }
  EXPECT_TRUE(ann.frozen(total));
  tr.final_mask = ann.finalize();
  tr.final_effective = ann.effective_mask(total);
  return tr;
}

void check_anneal(const Matrix<double>& scores, const SoftMaskConfig& cfg, const Mask& expect) {
  const long end = cfg.hardening_start + cfg.hardening_duration;
  const AnnealTrace tr = anneal(scores, cfg, end);
  // Noise-free scores: the final mask is the hard projection of the scores themselves.
  EXPECT_EQ(tr.final_mask, expect);
  // At the end of hardening the forward mask is exactly the binary final mask.
  EXPECT_EQ(tr.final_effective, expect.cast<double>());
  // L_mid: the mask leaves the all-ones start (L_mid = 0) during the soft warm-up, peaks once,
  // then decreases monotonically to the end of the schedule.
  const auto peak = std::max_element(tr.mid_loss.begin(), tr.mid_loss.end()) - tr.mid_loss.begin();
  EXPECT_LE(tr.steps[std::size_t(peak)], cfg.beta_start + (cfg.beta_end - cfg.beta_start) / 2);
  for (std::size_t i = std::size_t(peak) + 1; i < tr.mid_loss.size(); ++i)
    ASSERT_LE(tr.mid_loss[i], tr.mid_loss[i - 1]) << "L_mid rose at step " << tr.steps[i];
  EXPECT_LT(tr.mid_loss.back(), 0.1 * tr.mid_loss[std::size_t(peak)]);
  // Entries in (0.1, 0.9) vanish before the hardening window ends: the mask first leaves the
  // all-ones start (most entries pass through the mid range), then every entry leaves (0.1, 0.9)
  // and stays out until the end.
  const auto mid_peak =
      std::max_element(tr.mid_fraction.begin(), tr.mid_fraction.end()) - tr.mid_fraction.begin();
  EXPECT_GT(tr.mid_fraction[std::size_t(mid_peak)], 0.5);
  long first_clean = -1;
  for (std::size_t i = std::size_t(mid_peak); i < tr.steps.size(); ++i) {
    if (tr.mid_fraction[i] == 0.0 && first_clean < 0) first_clean = tr.steps[i];
    if (first_clean >= 0) {
      ASSERT_EQ(tr.mid_fraction[i], 0.0) << "step " << tr.steps[i];
    }
  }
  ASSERT_GE(first_clean, 0) << "mid-range entries never vanished";
  EXPECT_LT(first_clean, end);
  ::testing::Test::RecordProperty("first_step_without_mid_entries", std::to_string(first_clean));
}

TEST(SoftMask, FullAnnealRowwiseEndsAtHardTopN) {
  const Matrix<double> w = uniform_matrix<double>(16, 32, 7);
  const Matrix<double> h = uniform_matrix<double>(16, 32, 8, 0.1, 2.0);
  const Matrix<double> s = obd_scores(h, w, 1e-8);
  SoftMaskConfig cfg;
  check_anneal(s, cfg, project_rowwise(s, cfg.nm));
  cfg.nm = NM{1, 4};
  check_anneal(s, cfg, project_rowwise(s, cfg.nm));
  cfg = SoftMaskConfig::for_steps(600);
  cfg.nm = NM{2, 8};
  check_anneal(s, cfg, project_rowwise(s, cfg.nm));
}

TEST(SoftMask, FullAnnealTransposableEndsAtProjectedScores) {
  const Matrix<double> s = uniform_matrix<double>(16, 16, 9, 0.0, 1.0);
  SoftMaskConfig cfg;
  cfg.layout = Layout::Transposable;
  const Mask expect = project_transposable(s, cfg.nm);
  check_anneal(s, cfg, expect);
  EXPECT_TRUE(is_transposable_legal(expect, cfg.nm));
}

TEST(SoftMask, FinalizeIsAlwaysLegal) {
  // Noisy scores (a fresh draw at every update), checked at every stage of the schedule.
  for (Layout layout : {Layout::RowWise, Layout::Transposable}) {
    for (NM nm : {NM{2, 4}, NM{1, 4}, NM{3, 4}}) {
      SoftMaskConfig cfg = SoftMaskConfig::for_steps(300);
      cfg.nm = nm;
      cfg.layout = layout;
      SoftMaskAnnealer<float> ann(8, 12, cfg);
      auto legal = [&](const Mask& mk) {
        return layout == Layout::RowWise ? is_rowwise_legal(mk, nm) : is_transposable_legal(mk, nm);
      };
      EXPECT_TRUE(legal(ann.finalize()));
      for (long t = 1; t <= 300; ++t) {
        if (!ann.due(t)) continue;
        ann.update(uniform_matrix<float>(8, 12, 500 + std::uint64_t(t), 0.0, 1.0), t);
        ASSERT_TRUE(legal(ann.finalize())) << "step " << t;
        const Matrix<float> meff = ann.effective_mask(t);
        ASSERT_GE(meff.minCoeff(), 0.0f);
        ASSERT_LE(meff.maxCoeff(), 1.0f);
      }
      const Mask fin = ann.finalize();
      EXPECT_TRUE(legal(fin));
      EXPECT_EQ(ann.effective_mask(300), fin.cast<float>());
    }
  }
}

TEST(SoftMask, EffectiveMaskInterpolatesDuringHardening) {
  SoftMaskConfig cfg;
  SoftMaskAnnealer<double> ann(4, 8, cfg);
  ann.update(uniform_matrix<double>(4, 8, 3, 0.0, 1.0), 10);
  ann.update(uniform_matrix<double>(4, 8, 4, 0.0, 1.0), 20);
  const long step = 1600;  // x = 0.8
  const Matrix<double> expect =
      0.8 * ann.mask() + 0.2 * project_rowwise(ann.mask(), cfg.nm).cast<double>();
  EXPECT_LT((ann.effective_mask(step) - expect).cwiseAbs().maxCoeff(), 1e-15);
  EXPECT_EQ(ann.effective_mask(1000), ann.mask());
}

TEST(SoftMask, HessianOverloadEqualsObdScores) {
  const Matrix<double> w = uniform_matrix<double>(4, 8, 1), h = uniform_matrix<double>(4, 8, 2);
  SoftMaskAnnealer<double> a(4, 8), b(4, 8);
  a.update(h, w, 30);
  b.update(obd_scores(h, w, a.config().score_eps), 30);
  EXPECT_EQ(a.mask(), b.mask());
}

TEST(SoftMask, FrozenAndBadScores) {
  SoftMaskAnnealer<double> ann(4, 8);
  const Matrix<double> s = uniform_matrix<double>(4, 8, 1, 0.0, 1.0);
  ann.update(s, 10);
  const Matrix<double> before = ann.mask();
  Matrix<double> bad = s;
  bad(3, 5) = std::nan("");
  try {
    ann.update(bad, 20);
    FAIL() << "expected a throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(3, 5)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ann.update(Matrix<double>::Ones(8, 4), 20), Error);
  EXPECT_EQ(ann.mask(), before);
  EXPECT_FALSE(ann.update(s, 2000));  // frozen: no change
  EXPECT_EQ(ann.mask(), before);
  EXPECT_EQ(ann.updates(), 1);
  EXPECT_THROW(ann.set_mask(Matrix<double>::Constant(4, 8, 1.5)), Error);
  ann.set_mask(Matrix<double>::Constant(4, 8, 0.25));
  EXPECT_EQ(ann.mask(), Matrix<double>::Constant(4, 8, 0.25));
}

void expect_config_throws(const std::function<void(SoftMaskConfig&)>& edit, const char* field) {
  SoftMaskConfig cfg;
  edit(cfg);
  try {
    cfg.validate();
    ADD_FAILURE() << field << ": expected a throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
  EXPECT_THROW(SoftMaskAnnealer<float>(4, 8, cfg), Error) << field;
}

TEST(SoftMask, BadConfigsThrowNamingTheField) {
  EXPECT_NO_THROW(SoftMaskConfig{}.validate());
  expect_config_throws([](SoftMaskConfig& c) { c.nm = NM{5, 4}; }, "nm");
  expect_config_throws([](SoftMaskConfig& c) { c.nm = NM{0, 4}; }, "nm");
  expect_config_throws([](SoftMaskConfig& c) { c.update_interval = 0; }, "update_interval");
  expect_config_throws([](SoftMaskConfig& c) { c.score_eps = -1; }, "score_eps");
  expect_config_throws([](SoftMaskConfig& c) { c.std_eps = 0; }, "std_eps");
  expect_config_throws([](SoftMaskConfig& c) { c.temperature_init = 0; }, "temperature_init");
  expect_config_throws([](SoftMaskConfig& c) { c.temperature_init = std::nan(""); },
                       "temperature_init");
  expect_config_throws([](SoftMaskConfig& c) { c.temperature_decay = 0; }, "temperature_decay");
  expect_config_throws([](SoftMaskConfig& c) { c.temperature_decay = 1.01; }, "temperature_decay");
  expect_config_throws([](SoftMaskConfig& c) { c.temperature_min = 0; }, "temperature_min");
  expect_config_throws([](SoftMaskConfig& c) { c.temperature_min = 2.0; }, "temperature_min");
  expect_config_throws([](SoftMaskConfig& c) { c.mask_lr = 0; }, "mask_lr");
  expect_config_throws([](SoftMaskConfig& c) { c.mask_lr = 1.5; }, "mask_lr");
  expect_config_throws([](SoftMaskConfig& c) { c.penalty_lr = -0.1; }, "penalty_lr");
  expect_config_throws([](SoftMaskConfig& c) { c.lambda_mid_max = INFINITY; }, "lambda_mid_max");
  expect_config_throws([](SoftMaskConfig& c) { c.lambda_mid_start = -1; }, "lambda_mid_start");
  expect_config_throws([](SoftMaskConfig& c) { c.lambda_mid_ramp = -1; }, "lambda_mid_ramp");
  expect_config_throws([](SoftMaskConfig& c) { c.beta_start = -5; }, "beta_start");
  expect_config_throws([](SoftMaskConfig& c) { c.beta_end = c.beta_start; }, "beta_end");
  expect_config_throws([](SoftMaskConfig& c) { c.hardening_start = -1; }, "hardening_start");
  expect_config_throws([](SoftMaskConfig& c) { c.hardening_duration = 0; }, "hardening_duration");
  EXPECT_THROW(SoftMaskConfig::for_steps(5), Error);
  // Shapes.
  EXPECT_THROW(SoftMaskAnnealer<float>(4, 10), Error);  // cols % 4
  EXPECT_THROW(SoftMaskAnnealer<float>(0, 8), Error);
  SoftMaskConfig t;
  t.layout = Layout::Transposable;
  EXPECT_THROW(SoftMaskAnnealer<float>(6, 8, t), Error);  // rows % 4 for tiles
  EXPECT_NO_THROW(SoftMaskAnnealer<float>(8, 8, t));
}

TEST(SoftMask, OneAndTwoThreadsBitIdentical) {
  const int prev = thread_count();
  Matrix<float> out[2];
  Mask fin[2];
  for (int t = 1; t <= 2; ++t) {
    set_thread_count(t);
    SoftMaskAnnealer<float> ann(256, 512, SoftMaskConfig::for_steps(200));
    for (long step = 10; step <= 200; step += 20)
      ann.update(uniform_matrix<float>(256, 512, 40 + std::uint64_t(step), 0.0, 1.0), step);
    out[t - 1] = ann.mask();
    fin[t - 1] = ann.finalize();
  }
  set_thread_count(prev);
  ASSERT_EQ(0,
            std::memcmp(out[0].data(), out[1].data(), sizeof(float) * std::size_t(out[0].size())));
  EXPECT_EQ(fin[0], fin[1]);
}

}  // namespace
}  // namespace sparsenm
