// SPDX-License-Identifier: Apache-2.0
#include <cmath>
#include <cstring>
#include <limits>

#include <sparsenm/optim/tans.hpp>

#include "optim/optim_test_utils.hpp"

namespace {

using sparsenm::Index;
using sparsenm::Mask;
using sparsenm::Matrix;
using sparsenm::RmsMatch;
using sparsenm::StateReset;
using sparsenm::Tans;
using sparsenm::TansConfig;
namespace t = sparsenm::test;
using t::LD;

/// chtsnm Sec. 3.2 transcribed with plain loops in long double (docs/algorithms.md "TANS" and its
/// conventions list). Newton-Schulz is the long-double reference (explicit transpose).
struct RefTans {
  TansConfig cfg;
  Index R, C;
  t::RefMat V, P;
  int tau = 0;
  RefTans(Index r, Index c, TansConfig k) : cfg(k), R(r), C(c), V(r, c), P(r, c) {}

  void step(t::RefMat& W, const t::RefMat& G, const Mask& M) {
    const LD b1 = cfg.beta1, b2 = cfg.beta2, eps = cfg.eps;
    t::RefMat Ub(R, C);
    for (Index i = 0; i < R; ++i)
      for (Index j = 0; j < C; ++j) {
        const LD gm = M(i, j) ? G(i, j) : 0.0L;               // G_M = M . G
        V(i, j) = b2 * V(i, j) + (1 - b2) * gm * gm;          // V
        const LD gh = gm / (std::sqrt(V(i, j)) + eps);        // G^
        P(i, j) = b1 * P(i, j) + (1 - b1) * gh;               // P
        Ub(i, j) = M(i, j) * ((1 - b1) * gh + b1 * P(i, j));  // U_base
      }
    const t::RefMat O = t::ref_newton_schulz(Ub, cfg.ns_steps, cfg.coefficients);
    LD su_act = 0, so_act = 0, su_all = 0, so_all = 0, cnt = 0;
    for (Index i = 0; i < R; ++i)
      for (Index j = 0; j < C; ++j) {
        su_all += Ub(i, j) * Ub(i, j);
        so_all += O(i, j) * O(i, j);
        if (M(i, j)) {
          ++cnt;
          su_act += Ub(i, j) * Ub(i, j);
          so_act += O(i, j) * O(i, j);
        }
      }
    LD s = 1;
    if (cfg.rms == RmsMatch::PostMaskActive)
      s = std::sqrt(su_act / cnt) / (std::sqrt(so_act / cnt) + eps);
    else if (cfg.rms == RmsMatch::PreMaskGlobal)
      s = std::sqrt(su_all / (R * C)) / (std::sqrt(so_all / (R * C)) + eps);
    const LD gamma = cfg.ramp_steps == 0
                         ? LD(cfg.gamma_ns)
                         : LD(cfg.gamma_ns) * std::min(LD(1), LD(tau) / LD(cfg.ramp_steps));
    const LD lr = cfg.lr, eta_mat = lr * std::sqrt(LD(R) / LD(C));
    for (Index i = 0; i < R; ++i)
      for (Index j = 0; j < C; ++j) {
        if (!M(i, j)) continue;  // inactive entries are never touched
        const LD ot = s * O(i, j);
        const LD u = Ub(i, j) + gamma * (ot - Ub(i, j));
        W(i, j) = (1 - lr * LD(cfg.weight_decay)) * W(i, j) - eta_mat * u;
      }
    ++tau;
  }
  void refresh(const Mask& changed) {
    tau = 0;
    for (Index i = 0; i < R; ++i)
      for (Index j = 0; j < C; ++j)
        if (cfg.reset == StateReset::All ||
            (cfg.reset == StateReset::ChangedEntries && changed(i, j)))
          V(i, j) = P(i, j) = 0;
  }
};

template <class S>
class TansTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(TansTyped, Scalars, ::testing::internal::DefaultNameGenerator);

template <class S>
bool same_bits(S a, S b) {
  return std::memcmp(&a, &b, sizeof(S)) == 0;
}

// 20 steps with a topology refresh after step 10, for every RmsMatch x StateReset, on a wide and
// a tall matrix, against the long-double transcription. Also: inactive weights bit-for-bit
// unchanged at every step.
TYPED_TEST(TansTyped, MatchesScalarTranscriptionWithRefresh) {
  using S = TypeParam;
  const Index shapes[][2] = {{8, 16}, {16, 8}};
  for (const auto& sh : shapes)
    for (RmsMatch rms : {RmsMatch::None, RmsMatch::PreMaskGlobal, RmsMatch::PostMaskActive})
      for (StateReset reset : {StateReset::None, StateReset::ChangedEntries, StateReset::All}) {
        const Index R = sh[0], C = sh[1];
        TansConfig cfg;
        cfg.lr = 1e-2;
        cfg.weight_decay = 0.5;
        cfg.ramp_steps = 4;
        cfg.rms = rms;
        cfg.reset = reset;
        Tans<S> opt(R, C, cfg);
        RefTans ref(R, C, cfg);
        Matrix<S> W = t::uniform_matrix<S>(R, C, 1);
        const Matrix<S> W0 = W;
        t::RefMat Wr = t::to_ref(W);
        Mask mask = t::random_nm_mask(R, C, 2, 4, 5);
        for (int k = 0; k < 20; ++k) {
          if (k == 10) {
            const Mask next = t::random_nm_mask(R, C, 2, 4, 6);
            Mask changed(R, C);
            for (Index i = 0; i < mask.size(); ++i) {
              changed.data()[i] = mask.data()[i] != next.data()[i];
              if (mask.data()[i] && !next.data()[i]) {  // removed weights are zeroed (refresh)
                W.data()[i] = S(0);
                Wr.v[static_cast<std::size_t>(i)] = 0;
              }
            }
            mask = next;
            opt.on_refresh(changed);
            ref.refresh(changed);
            EXPECT_EQ(opt.steps_since_refresh(), 0);
          }
          const Matrix<S> G = t::uniform_matrix<S>(R, C, 100 + k);
          const Matrix<S> before = W;
          opt.step(W, G, mask);
          ref.step(Wr, t::to_ref(G), mask);
          for (Index i = 0; i < W.size(); ++i)
            if (!mask.data()[i]) {
              ASSERT_TRUE(same_bits(W.data()[i], before.data()[i]));
            }
        }
        // Compare the displacement (W - W0), which is what the optimizer computed.
        Eigen::MatrixXd dg = W.template cast<double>() - W0.template cast<double>();
        Eigen::MatrixXd dr = t::to_double(Wr) - W0.template cast<double>();
        const double tol = std::is_same<S, float>::value ? 2e-4 : 1e-10;
        EXPECT_LT(t::max_rel_err(dg, dr), tol)
            << R << "x" << C << " rms " << int(rms) << " reset " << int(reset);
        EXPECT_LT(t::max_rel_err(opt.exp_avg_sq(), t::to_double(ref.V)), tol);
        EXPECT_LT(t::max_rel_err(opt.momentum(), t::to_double(ref.P)), tol);
        EXPECT_EQ(opt.steps_since_refresh(), 10);
        EXPECT_EQ(opt.steps(), 20);
      }
}

TEST(Tans, GammaRampValues) {
  TansConfig cfg;  // gamma_ns 0.5, ramp 8
  Tans<float> opt(4, 8, cfg);
  EXPECT_DOUBLE_EQ(opt.gamma_for(0), 0.0);
  EXPECT_DOUBLE_EQ(opt.gamma_for(2), 0.125);
  EXPECT_DOUBLE_EQ(opt.gamma_for(4), 0.25);
  EXPECT_DOUBLE_EQ(opt.gamma_for(8), 0.5);
  EXPECT_DOUBLE_EQ(opt.gamma_for(100), 0.5);
  Matrix<float> W = t::uniform_matrix<float>(4, 8, 1);
  const Mask M = t::random_nm_mask(4, 8, 1, 4, 2);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(opt.steps_since_refresh(), k);
    EXPECT_DOUBLE_EQ(opt.next_gamma(), 0.5 * k / 8.0);
    opt.step(W, t::uniform_matrix<float>(4, 8, 10 + k), M);
  }
  opt.on_refresh(Mask::Zero(4, 8));
  EXPECT_EQ(opt.steps_since_refresh(), 0);
  EXPECT_DOUBLE_EQ(opt.next_gamma(), 0.0);
  cfg.ramp_steps = 0;  // no ramp: gamma_NS from the first step
  Tans<float> flat(4, 8, cfg);
  EXPECT_DOUBLE_EQ(flat.gamma_for(0), 0.5);
  cfg.ramp_steps = 3;
  cfg.gamma_ns = 0.9;
  Tans<float> r3(4, 8, cfg);
  EXPECT_NEAR(r3.gamma_for(1), 0.3, 1e-15);
  EXPECT_NEAR(r3.gamma_for(2), 0.6, 1e-15);
  EXPECT_NEAR(r3.gamma_for(3), 0.9, 1e-15);
}

// ChangedEntries zeroes exactly the changed entries of V and P; All zeroes everything.
TEST(Tans, OnRefreshResetsExactlyChangedEntries) {
  for (StateReset reset : {StateReset::None, StateReset::ChangedEntries, StateReset::All}) {
    TansConfig cfg;
    cfg.reset = reset;
    Tans<double> opt(8, 8, cfg);
    Matrix<double> W = t::uniform_matrix<double>(8, 8, 3);
    const Mask M = Mask::Ones(8, 8);
    opt.step(W, t::uniform_matrix<double>(8, 8, 4), M);
    const Matrix<double> V = opt.exp_avg_sq(), P = opt.momentum();
    const Mask changed = t::random_nm_mask(8, 8, 1, 4, 9);
    opt.on_refresh(changed);
    for (Index i = 0; i < 64; ++i) {
      const bool zero =
          reset == StateReset::All || (reset == StateReset::ChangedEntries && changed.data()[i]);
      EXPECT_EQ(opt.exp_avg_sq().data()[i], zero ? 0.0 : V.data()[i]);
      EXPECT_EQ(opt.momentum().data()[i], zero ? 0.0 : P.data()[i]);
    }
  }
}

// Convex quadratic f = 1/2 ||M . (W - W*)||^2: active entries approach W*, inactive stay put.
TYPED_TEST(TansTyped, MinimisesConvexQuadratic) {
  using S = TypeParam;
  const Index R = 16, C = 32;
  TansConfig cfg;
  cfg.lr = 2e-2;
  Tans<S> opt(R, C, cfg);
  const Matrix<S> target = t::uniform_matrix<S>(R, C, 7);
  Matrix<S> W = Matrix<S>::Zero(R, C);
  const Mask M = t::random_nm_mask(R, C, 2, 4, 8);
  auto loss = [&] {
    double l = 0;
    for (Index i = 0; i < W.size(); ++i)
      if (M.data()[i]) l += 0.5 * std::pow(double(W.data()[i] - target.data()[i]), 2);
    return l;
  };
  const double l0 = loss();
  for (int k = 0; k < 400; ++k) {
    if (k % 100 == 50) opt.on_refresh(Mask::Zero(R, C));  // a refresh restarts the ramp
    const Matrix<S> G = W - target;
    opt.step(W, G, M);
  }
  EXPECT_LT(loss(), 1e-3 * l0);
  for (Index i = 0; i < W.size(); ++i)
    if (!M.data()[i]) {
      EXPECT_EQ(W.data()[i], S(0));
    }
}

TEST(Tans, BadConfigsThrow) {
  auto make = [](auto edit) {
    TansConfig c;
    edit(c);
    return Tans<float>(4, 8, c);
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THROW(make([](TansConfig& c) { c.lr = 0; }), sparsenm::Error);
  EXPECT_THROW(make([&](TansConfig& c) { c.lr = nan; }), sparsenm::Error);
  EXPECT_THROW(make([](TansConfig& c) { c.beta1 = 1.0; }), sparsenm::Error);
  EXPECT_THROW(make([](TansConfig& c) { c.beta2 = -0.1; }), sparsenm::Error);
  EXPECT_THROW(make([](TansConfig& c) { c.eps = 0; }), sparsenm::Error);
  EXPECT_THROW(make([](TansConfig& c) { c.weight_decay = -1; }), sparsenm::Error);
  EXPECT_THROW(make([](TansConfig& c) { c.weight_decay = 2000; }), sparsenm::Error);
  EXPECT_THROW(make([](TansConfig& c) { c.gamma_ns = 1.5; }), sparsenm::Error);
  EXPECT_THROW(make([&](TansConfig& c) { c.gamma_ns = nan; }), sparsenm::Error);
  EXPECT_THROW(make([](TansConfig& c) { c.ramp_steps = -1; }), sparsenm::Error);
  EXPECT_THROW(make([](TansConfig& c) { c.ns_steps = -1; }), sparsenm::Error);
  EXPECT_THROW(Tans<float>(0, 8), sparsenm::Error);
  try {
    make([](TansConfig& c) { c.beta2 = 1.5; });
    FAIL();
  } catch (const sparsenm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("beta2"), std::string::npos) << e.what();
  }
  Tans<float> opt(4, 8);
  Matrix<float> W = Matrix<float>::Zero(4, 8);
  const Mask M = Mask::Ones(4, 8);
  EXPECT_THROW(opt.step(W, Matrix<float>::Zero(4, 4), M), sparsenm::Error);
  EXPECT_THROW(opt.step(W, Matrix<float>::Zero(4, 8), Mask::Ones(8, 4)), sparsenm::Error);
  Mask bad = M;
  bad(1, 1) = 2;
  EXPECT_THROW(opt.step(W, Matrix<float>::Zero(4, 8), bad), sparsenm::Error);
  EXPECT_THROW(opt.on_refresh(bad), sparsenm::Error);
  EXPECT_THROW(opt.set_lr(-1), sparsenm::Error);
}

// NaN/Inf gradient: Throw (default) leaves everything untouched; SkipStep skips the step.
TEST(Tans, NonFiniteGradient) {
  for (auto policy : {sparsenm::NonFinitePolicy::Throw, sparsenm::NonFinitePolicy::SkipStep}) {
    TansConfig cfg;
    cfg.nonfinite = policy;
    Tans<float> opt(4, 8, cfg);
    Matrix<float> W = t::uniform_matrix<float>(4, 8, 1);
    const Mask M = Mask::Ones(4, 8);
    opt.step(W, t::uniform_matrix<float>(4, 8, 2), M);
    const Matrix<float> W1 = W, V1 = opt.exp_avg_sq(), P1 = opt.momentum();
    Matrix<float> G = t::uniform_matrix<float>(4, 8, 3);
    G(2, 5) = std::numeric_limits<float>::infinity();
    if (policy == sparsenm::NonFinitePolicy::Throw) {
      EXPECT_THROW(opt.step(W, G, M), sparsenm::Error);
    } else {
      opt.step(W, G, M);
      EXPECT_EQ(opt.skipped_steps(), 1);
    }
    G(2, 5) = std::numeric_limits<float>::quiet_NaN();
    if (policy == sparsenm::NonFinitePolicy::SkipStep) {
      opt.step(W, G, M);
    }
    EXPECT_TRUE(W == W1);
    EXPECT_TRUE(opt.exp_avg_sq() == V1);
    EXPECT_TRUE(opt.momentum() == P1);
    EXPECT_EQ(opt.steps(), 1);
    EXPECT_EQ(opt.steps_since_refresh(), 1);
  }
  // A non-finite gradient on an inactive entry is still rejected (documented: any entry).
  Tans<float> opt(4, 8);
  Matrix<float> W = Matrix<float>::Zero(4, 8);
  Matrix<float> G = Matrix<float>::Zero(4, 8);
  G(0, 0) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(opt.step(W, G, Mask::Zero(4, 8)), sparsenm::Error);
}

// Bit-identical for 1 and 2 OpenMP threads (several chunks), and for a non-contiguous weight.
TEST(Tans, ThreadCountAndStrideDoNotChangeResult) {
  const Index R = 128, C = 640;  // 81,920 entries: 3 chunks
  auto run = [&](int threads, bool strided) {
    sparsenm::set_thread_count(threads);
    Tans<float> opt(R, C);
    Matrix<float> big = Matrix<float>::Zero(R, C + 8);
    big.leftCols(C) = t::uniform_matrix<float>(R, C, 1);
    Matrix<float> W = big.leftCols(C);
    const Mask M = t::random_nm_mask(R, C, 2, 4, 3);
    for (int k = 0; k < 4; ++k) {
      const Matrix<float> G = t::uniform_matrix<float>(R, C, 20 + k);
      if (strided) {
        opt.step(big.leftCols(C), G, M);
      } else {
        opt.step(W, G, M);
      }
    }
    sparsenm::set_thread_count(2);
    return strided ? Matrix<float>(big.leftCols(C)) : W;
  };
  const Matrix<float> a = run(1, false), b = run(2, false), c = run(2, true);
  EXPECT_TRUE(a == b);
  EXPECT_TRUE(a == c);
}

// TansConfig::nm: the dense masked step rejects a mask that breaks N:M (naming row and group) and
// changes nothing; a legal mask (row-wise or transposable) passes.
TEST(Tans, MaskThatBreaksNMThrowsWhenNmIsSet) {
  TansConfig cfg;
  cfg.nm = {2, 4};
  Tans<float> opt(4, 8, cfg);
  Matrix<float> W = t::uniform_matrix<float>(4, 8, 3);
  const Matrix<float> W0 = W;
  const Matrix<float> G = t::uniform_matrix<float>(4, 8, 4);
  Mask M = t::random_nm_mask(4, 8, 2, 4, 5);
  Index bad_col = 4;  // row 2, group 1: flip one entry -> 1 or 3 ones
  M(2, bad_col) ^= 1;
  try {
    opt.step(W, G, M);
    ADD_FAILURE() << "no throw";
  } catch (const sparsenm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 2 group 1"), std::string::npos) << e.what();
  }
  EXPECT_TRUE((W.array() == W0.array()).all());
  M(2, bad_col) ^= 1;
  EXPECT_NO_THROW(opt.step(W, G, M));
  cfg.nm = {0, 0};  // default: any 0/1 mask
  Tans<float> loose(4, 8, cfg);
  M(2, bad_col) ^= 1;
  EXPECT_NO_THROW(loose.step(W, G, M));
  cfg.nm = {5, 4};
  EXPECT_THROW(Tans<float>(4, 8, cfg), sparsenm::Error);
}

}  // namespace
