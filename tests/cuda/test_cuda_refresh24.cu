// SPDX-License-Identifier: Apache-2.0
// cuda::DeviceRefresher24 (the CHTs24 / CHTsNM refresh of a 2:4 layer on the device) against the
// CPU TopologyRefresher<float> on the same compressed weight, seed and step (transposable 64x64,
// 256x128, 1024x784, soft and hard removal/regrowth; row-wise 256x128 with MPR rho = 0.75):
//  - removal counts and refreshed units (4x4 tiles, 1x4 row groups) equal (the removal is
//    bit-identical by construction);
//  - the masks agree in every unit except where float summation order may decide: the CH scores
//    are sums of the same terms in another order on the device (fp32 GEMM) and the CPU (table
//    products). On the CPU's own perturbed scores (recomputed here with the CPU's functions) a
//    tile may pick another pattern only when the device's pattern sum is within kTieRel = 1e-5
//    relative of the CPU's best sum, and a row group only when two of its candidate scores are
//    within kTieRel of each other; both keep every survivor, and (with the soft regrowth noise)
//    at most 1 % of the refreshed units differ;
//  - in agreeing units values, indices and the SlotMap are the CPU's bit for bit; everywhere kept
//    values moved exactly from their source slot and the others are 0 (the CPU rule);
//  - the result is legal for its layout; the layer route moves the Adam moments with the SlotMap,
//    rebuilds once, and its re-packed weight serves the next forward (fp64 reference, 1e-2).
#include <cstdint>
#include <vector>

#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <sparsenm/cuda.cuh>
#include <sparsenm/mask.hpp>
#include <sparsenm/nn/sparse_linear.hpp>
#include <sparsenm/sampling/frechet.hpp>
#include <sparsenm/topology/ch_scores.hpp>
#include <sparsenm/topology/refresh.hpp>

#include "cuda/cuda_test_util.cuh"

namespace {

using sparsenm::Index;
using sparsenm::Layout;
using sparsenm::Mask;
using sparsenm::Matrix;
using sparsenm::NM;
using sparsenm::NMCompressed;
using sparsenm::Philox;
namespace sc = sparsenm::cuda;

constexpr double kTieRel = 1e-5;

NMCompressed<float> random_weight(Index out, Index in, std::uint64_t seed, bool zeros,
                                  Layout layout = Layout::Transposable) {
  sparsenm::SparseLinear<float> l(in, out, NM{2, 4}, layout, Philox(seed), false);
  NMCompressed<float> w = l.weight();
  if (zeros)  // a few exact zeros (regrown weights start so): ties in the removal keys
    for (Index k = 0; k < w.values.size(); k += 37) w.values.data()[k] = 0.f;
  return w;
}

/// The CPU refresher's perturbed regrowth scores and its mask after removal, recomputed with the
/// CPU's own functions in refresh.hpp's order (only used to judge tiles that differ).
struct CpuScores {
  Mask before, after;
  Matrix<float> scores;
};
CpuScores cpu_scores(const NMCompressed<float>& w, const sparsenm::RefreshConfig& rc,
                     std::uint64_t seed, long step) {
  sparsenm::TopologyRefresher<float> sched(rc, seed);
  const Philox rng = Philox(seed).split(std::uint64_t(step));
  const Matrix<float> dense = sparsenm::decompress(w);
  CpuScores s;
  s.before = sparsenm::mask_of(w);
  Matrix<float> rem;
  if (rc.soft_remove)
    sparsenm::frechet_scores_into(dense, float(sched.temperature(step)), rng.split(1), rem);
  else
    rem = dense.cwiseAbs();
  s.after = s.before;
  Index active = 0;
  sparsenm::detail::remove_smallest_fraction(rem.data(), s.after.data(), dense.rows(), dense.cols(),
                                             sched.zeta_at(step), active, false);
  s.scores = sparsenm::ch_l3n_scores<float>(s.after, rc.rule);
  if (rc.soft_regrow) {
    const Philox noise = rng.split(2);
    for (Index i = 0; i < dense.rows(); ++i)
      for (Index j = 0; j < dense.cols(); ++j) {
        const bool rw = rc.layout == Layout::RowWise;
        bool refreshed = false;
        for (int a = 0; a < (rw ? 1 : 4); ++a)
          for (int b = 0; b < 4; ++b)
            refreshed |= s.before(rw ? i : i / 4 * 4 + a, j / 4 * 4 + b) !=
                         s.after(rw ? i : i / 4 * 4 + a, j / 4 * 4 + b);
        const Index k = i * dense.cols() + j;
        if (refreshed && !s.after(i, j))
          s.scores(i, j) = float(double(s.scores(i, j)) * noise.uniform(std::uint64_t(k)));
      }
  }
  return s;
}

/// The pattern of refresh unit (ur, uc) as bits a * 4 + c: a 4x4 tile (ur rows = 4) or a 1x4
/// row group (ur rows = 1).
unsigned unit_pattern(const Mask& m, Index ur, Index tr, Index tc) {
  unsigned b = 0;
  for (int a = 0; a < ur; ++a)
    for (int c = 0; c < 4; ++c) b |= unsigned(m(tr * ur + a, tc * 4 + c) != 0) << (4 * a + c);
  return b;
}

TEST(CudaRefresh24, MatchesCpuEngineOnShapes) {
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  struct Case {
    Index out, in;
    bool soft;
    Layout layout;
    double mpr;
  };
  const Layout TR = Layout::Transposable, RW = Layout::RowWise;
  for (const Case cs :
       {Case{64, 64, true, TR, 0}, Case{256, 128, true, TR, 0}, Case{256, 128, false, TR, 0},
        Case{1024, 784, true, TR, 0}, Case{256, 128, true, RW, 0.75}}) {
    SCOPED_TRACE(::testing::Message() << cs.out << "x" << cs.in << (cs.soft ? " soft " : " hard ")
                                      << sparsenm::to_string(cs.layout));
    const bool rw = cs.layout == RW;
    const NMCompressed<float> w0 = random_weight(cs.out, cs.in, 11 + cs.out, true, cs.layout);
    sparsenm::RefreshConfig rc;
    rc.layout = cs.layout;
    rc.mpr_rho = cs.mpr;
    rc.zeta = 0.3;
    rc.interval = 5;
    rc.total_steps = 200;
    rc.soft_remove = rc.soft_regrow = cs.soft;
    const std::uint64_t seed = 4242;
    const long step = 35;
    const Index R = cs.out, C = cs.in, nnzr = C / 2;

    sc::DeviceBuffer<float> d_v(std::size_t(w0.values.size()));
    sc::DeviceBuffer<std::uint8_t> d_i(std::size_t(w0.indices.size()));
    d_v.upload(w0.values.data(), d_v.size());
    d_i.upload(w0.indices.data(), d_i.size());
    sc::DeviceRefresher24 dev(rc, seed, R, C);
    EXPECT_TRUE(dev.due(step));
    const sc::DeviceRefresher24::Result r = dev.refresh(d_v.data(), d_i.data(), step);
    Matrix<float> dv(R, nnzr);
    {
      std::vector<float> h(std::size_t(R * nnzr));
      SPARSENM_CUDA_CHECK(
          cudaMemcpy(h.data(), dev.new_values(), h.size() * sizeof(float), cudaMemcpyDeviceToHost));
      for (Index k = 0; k < dv.size(); ++k) dv.data()[k] = h[std::size_t(k)];
    }
    NMCompressed<float> dres;
    dres.nm = NM{2, 4};
    dres.rows = R;
    dres.cols = C;
    dres.values = dv;
    dres.indices = r.indices;

    NMCompressed<float> cres = w0;
    sparsenm::TopologyRefresher<float> cpu(rc, seed);
    const sparsenm::RefreshResult rcpu = cpu.refresh(cres, step);
    const CpuScores ref = cpu_scores(w0, rc, seed, step);

    const sparsenm::RefreshStats& sd = r.refresh.stats;
    const sparsenm::RefreshStats& scpu = rcpu.stats;
    EXPECT_EQ(sd.removed, scpu.removed);
    EXPECT_EQ(sd.active, scpu.active);
    EXPECT_EQ(sd.refreshed_groups, scpu.refreshed_groups);
    EXPECT_EQ(sd.groups, scpu.groups);
    EXPECT_GT(sd.changed_count, 0);

    const Mask md = sparsenm::mask_of(dres), mc = sparsenm::mask_of(cres);
    EXPECT_TRUE(sparsenm::is_legal(md, NM{2, 4}, cs.layout));
    EXPECT_EQ(sd.mpr_excluded > 0, cs.mpr > 0);
    Index differ = 0, refreshed = 0;
    double worst = 0;
    const Index ur = rw ? 1 : 4;  // rows of a refresh unit
    for (Index tr = 0; tr < R / ur; ++tr)
      for (Index tc = 0; tc < C / 4; ++tc) {
        const unsigned pb = unit_pattern(ref.before, ur, tr, tc);
        const unsigned pa = unit_pattern(ref.after, ur, tr, tc);
        const unsigned pd = unit_pattern(md, ur, tr, tc), pc = unit_pattern(mc, ur, tr, tc);
        refreshed += pb != pa;
        if (pd == pc) {
          for (Index i = tr * ur; i < tr * ur + ur; ++i)
            for (Index j = tc * 2; j < tc * 2 + 2; ++j) {
              ASSERT_EQ(dres.indices(i, j), cres.indices(i, j)) << i << "," << j;
              ASSERT_EQ(dres.values(i, j), cres.values(i, j)) << i << "," << j;
              ASSERT_EQ(r.refresh.slots.source(i, j), rcpu.slots.source(i, j)) << i << "," << j;
            }
          continue;
        }
        ++differ;
        ASSERT_NE(pb, pa) << "unit " << tr << "," << tc << " differs but lost no link";
        ASSERT_EQ(pd & pa, pa) << "the device dropped a survivor";
        ASSERT_EQ(pc & pa, pa);
        double rel = INFINITY;
        if (!rw) {  // the two patterns' sums of the CPU's scores (survivors' Γ cancels)
          double fd = 0, fc = 0;
          for (int k = 0; k < 16; ++k) {
            const double s = ref.scores(tr * 4 + k / 4, tc * 4 + k % 4);
            if ((pd >> k & 1u) && !(pa >> k & 1u)) fd += s;
            if ((pc >> k & 1u) && !(pa >> k & 1u)) fc += s;
          }
          rel = std::abs(fc - fd) / std::max({std::abs(fc), std::abs(fd), 1e-30});
        } else {  // the candidates' order decides (and MPR's swap): the closest pair of scores
          for (int a = 0; a < 4; ++a)
            for (int b = a + 1; b < 4; ++b) {
              if ((pa >> a & 1u) || (pa >> b & 1u)) continue;
              const double x = ref.scores(tr, tc * 4 + a), y = ref.scores(tr, tc * 4 + b);
              rel = std::min(rel, std::abs(x - y) / std::max({std::abs(x), std::abs(y), 1e-30}));
            }
        }
        worst = std::max(worst, rel);
        EXPECT_LE(rel, kTieRel) << "unit " << tr << "," << tc;
      }
    EXPECT_EQ(refreshed, scpu.refreshed_groups);
    // With the U(0,1) noise near-ties are rare; plain CH scores (hard) tie exactly in many units,
    // where either order of summation may decide, so only the per-unit bound applies there.
    if (cs.soft)
      EXPECT_LE(double(differ), 0.01 * double(std::max<Index>(refreshed, 1)))
          << differ << " of " << refreshed << " refreshed units differ";
    if (differ == 0) {
      EXPECT_EQ(sd.changed_count, scpu.changed_count);
      EXPECT_EQ(sd.regrown, scpu.regrown);
      EXPECT_EQ(sd.revived, scpu.revived);
      EXPECT_EQ(sd.changed_groups, scpu.changed_groups);
      EXPECT_EQ(sd.mpr_excluded, scpu.mpr_excluded);
    }
    std::printf("[refresh24] %lldx%lld %s %s: %lld of %lld refreshed units differ (closest %.2e)\n",
                (long long)R, (long long)C, cs.soft ? "soft" : "hard", rw ? "row-wise" : "tiles",
                (long long)differ, (long long)refreshed, differ ? worst : 0.0);
    // The CPU rule on every slot: kept values moved exactly, the others 0; the SlotMap consistent.
    for (Index i = 0; i < R; ++i)
      for (Index j = 0; j < nnzr; ++j) {
        const int src = r.refresh.slots.source(i, j);
        const Index col = (j / 2) * 4 + dres.indices(i, j);
        ASSERT_TRUE(src >= -1 && src <= 1);
        if (src >= 0) {
          const Index from = (j / 2) * 2 + src;
          ASSERT_EQ(w0.indices(i, from), dres.indices(i, j));
          ASSERT_TRUE(ref.after(i, col)) << "a kept slot must be a survivor of the removal";
          ASSERT_EQ(dres.values(i, j), w0.values(i, from));
        } else {
          ASSERT_FALSE(ref.after(i, col)) << "a survivor must keep its state";
          ASSERT_EQ(dres.values(i, j), 0.f);
        }
      }
    EXPECT_EQ(dev.refreshes(), 1);
  }
}

TEST(CudaRefresh24, RejectsUnsupportedAndBadInput) {
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  sparsenm::RefreshConfig rc;
  rc.nm = NM{1, 4};
  EXPECT_THROW(sc::DeviceRefresher24(rc, 1, 64, 64), sparsenm::Error);
  rc.nm = NM{2, 4};
  EXPECT_THROW(sc::DeviceRefresher24(rc, 1, 62, 64), sparsenm::Error);
  sc::DeviceRefresher24 dev(rc, 1, 64, 64);
  NMCompressed<float> w = random_weight(64, 64, 5, false);
  sc::DeviceBuffer<float> d_v(std::size_t(w.values.size()));
  sc::DeviceBuffer<std::uint8_t> d_i(std::size_t(w.indices.size()));
  d_i.upload(w.indices.data(), d_i.size());
  w.values(3, 5) = std::nanf("");
  d_v.upload(w.values.data(), d_v.size());
  EXPECT_THROW(dev.refresh(d_v.data(), d_i.data(), 1), sparsenm::Error);  // NaN value
  w.values(3, 5) = 1.f;
  d_v.upload(w.values.data(), d_v.size());
  EXPECT_THROW(dev.refresh(d_v.data(), d_i.data(), -1), sparsenm::Error);  // step < 0
  // A row-wise legal 2:4 mask that is not transposable: every row keeps columns 0 and 1.
  Mask rowwise = Mask::Zero(64, 32);
  for (Index i = 0; i < 64; ++i)
    for (Index j = 0; j < 32; j += 2) rowwise(i, j) = 0, rowwise(i, j + 1) = 1;
  d_i.upload(rowwise.data(), d_i.size());
  EXPECT_THROW(dev.refresh(d_v.data(), d_i.data(), 1), sparsenm::Error);
  EXPECT_EQ(dev.refreshes(), 0);
}

#if defined(SPARSENM_HAS_CUSPARSELT)
TEST(CudaRefresh24, LayerRouteMovesMomentsAndRepacks) {
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  using bf16 = __nv_bfloat16;
  const Index out = 64, in = 64, tokens = 16;
  const NMCompressed<float> w0 = random_weight(out, in, 8, false);
  sc::Linear24Config cfg;
  cfg.search = false;
  cfg.tune = false;
  cfg.adam.lr = 1e-2;
  sc::SparseLinear24 layer(w0, sparsenm::Vector<float>(), tokens, cfg);
  // Two Adam steps on Philox gradients, so the moments are nonzero.
  for (int it = 0; it < 2; ++it) {
    const Matrix<float> g = sparsenm::test::random_matrix<float>(out, in / 2, 50 + it);
    SPARSENM_CUDA_CHECK(
        cudaMemcpy(layer.grad_data(), g.data(), sizeof(float) * g.size(), cudaMemcpyHostToDevice));
    layer.step();
  }
  const NMCompressed<float> before = layer.download();
  const std::vector<float> m0 = layer.optimizer().exp_avg().to_host();
  const std::vector<float> v0 = layer.optimizer().exp_avg_sq().to_host();
  sparsenm::RefreshConfig rc;
  rc.zeta = 0.3;
  rc.interval = 1;
  sc::DeviceRefresher24 dev(rc, 77, out, in);
  const long rebuilds = layer.rebuilds();
  const sparsenm::RefreshResult r = dev.refresh(layer, 3);
  ASSERT_GT(r.stats.changed_count, 0);
  EXPECT_EQ(layer.rebuilds(), rebuilds + 1);
  const NMCompressed<float> after = layer.download();
  EXPECT_TRUE(sparsenm::is_transposable_legal(sparsenm::mask_of(after), NM{2, 4}));
  EXPECT_EQ(layer.dx_route(), sc::DxRoute::SparseTransposed);
  const std::vector<float> m1 = layer.optimizer().exp_avg().to_host();
  const std::vector<float> v1 = layer.optimizer().exp_avg_sq().to_host();
  Index kept = 0, fresh = 0;
  for (Index o = 0; o < out; ++o)
    for (Index j = 0; j < in / 2; ++j) {
      const int src = r.slots.source(o, j);
      const std::size_t k = std::size_t(o * (in / 2) + j);
      const std::size_t from = std::size_t(o * (in / 2) + (j / 2) * 2 + src);
      if (src >= 0) {
        ++kept;
        ASSERT_EQ(after.values(o, j), before.values(o, (j / 2) * 2 + src));
        ASSERT_EQ(m1[k], m0[from]);
        ASSERT_EQ(v1[k], v0[from]);
      } else {
        ++fresh;
        ASSERT_EQ(after.values(o, j), 0.f);
        ASSERT_EQ(m1[k], 0.f);
        ASSERT_EQ(v1[k], 0.f);
      }
    }
  EXPECT_GT(kept, 0);
  EXPECT_GT(fresh, 0);
  EXPECT_TRUE(layer.grad_values().isZero(0));
  // The rebuilt packing serves the new mask: y = x Wᵀ against fp64 from the bf16 operands.
  const Matrix<float> x = sparsenm::test::random_matrix<float>(tokens, in, 91);
  std::vector<bf16> hx(std::size_t(x.size()));
  Matrix<double> xd(tokens, in);
  for (Index k = 0; k < x.size(); ++k) {
    hx[std::size_t(k)] = __float2bfloat16(x.data()[k]);
    xd.data()[k] = double(__bfloat162float(hx[std::size_t(k)]));
  }
  const Matrix<float> wd = sparsenm::decompress(after);
  Matrix<double> wb(out, in);
  for (Index k = 0; k < wd.size(); ++k)
    wb.data()[k] = double(__bfloat162float(__float2bfloat16(wd.data()[k])));
  const Matrix<double> yref = xd * wb.transpose();
  sc::DeviceBuffer<bf16> d_x, d_y(std::size_t(tokens * out));
  d_x.upload(hx);
  layer.forward(d_x.data(), d_y.data());
  const std::vector<bf16> hy = d_y.to_host();
  double ymax = 0, err = 0;
  for (Index k = 0; k < yref.size(); ++k) {
    ymax = std::max(ymax, std::abs(yref.data()[k]));
    err = std::max(err, std::abs(double(__bfloat162float(hy[std::size_t(k)])) - yref.data()[k]));
  }
  EXPECT_LE(err, 1e-2 * ymax);
}
#endif  // SPARSENM_HAS_CUSPARSELT

}  // namespace
