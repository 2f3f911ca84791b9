// SPDX-License-Identifier: Apache-2.0
// cuda::SparseLinear24 (2:4 training layer on sparse tensor cores) against independent host
// references: y, dX, dW and db in fp64 from the same bf16-rounded operands (bf16 outputs: 1e-2
// relative; fp32 outputs of exact bf16 products: 1e-4), the Adam step against the CPU compressed
// Adam (sparsenm::Adam on NMCompressed, same arithmetic: 1e-5 relative), the refresh against the
// CPU TopologyRefresher run on the same weight (values and indices bit-identical, moments of kept
// slots moved exactly, fresh ones 0). Outputs are poisoned (NaN) before each run.
#include <cstdint>
#include <cstdio>
#include <vector>

#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <sparsenm/cuda.cuh>
#include <sparsenm/mask.hpp>
#include <sparsenm/optim/adam.hpp>
#include <sparsenm/topology/refresh.hpp>

#include "cuda/cuda_test_util.cuh"

#if defined(SPARSENM_HAS_CUSPARSELT)

namespace {

using sparsenm::Index;
using sparsenm::Layout;
using sparsenm::Mask;
using sparsenm::Matrix;
using sparsenm::NM;
using sparsenm::NMCompressed;
using sparsenm::Philox;
using sparsenm::Vector;
namespace sc = sparsenm::cuda;
namespace st = sparsenm::test;
using bf16 = __nv_bfloat16;

double bf(float x) { return double(__bfloat162float(__float2bfloat16(x))); }

/// Rounds to bf16 on the host and uploads; returns the rounded values in fp64.
Matrix<double> upload_bf16(sc::DeviceBuffer<bf16>& d, const Matrix<float>& m) {
  std::vector<bf16> h(std::size_t(m.size()));
  Matrix<double> r(m.rows(), m.cols());
  for (Index k = 0; k < m.size(); ++k) {
    h[std::size_t(k)] = __float2bfloat16(m.data()[k]);
    r.data()[k] = double(__bfloat162float(h[std::size_t(k)]));
  }
  d.upload(h);
  return r;
}

Matrix<double> download_bf16(const sc::DeviceBuffer<bf16>& d, Index rows, Index cols) {
  const std::vector<bf16> h = d.to_host();
  Matrix<double> out(rows, cols);
  for (Index k = 0; k < out.size(); ++k)
    out.data()[k] = double(__bfloat162float(h[std::size_t(k)]));
  return out;
}

/// Dense bf16-rounded weight in fp64 from compressed fp32 values.
Matrix<double> dense_bf16(const NMCompressed<float>& c) {
  return sparsenm::decompress(c).unaryExpr([](float v) { return bf(v); });
}

Vector<float> as_vector(const std::vector<float>& v) {
  return Eigen::Map<const Vector<float>>(v.data(), Index(v.size()));
}

struct Fixture {
  Index out, in, tokens;
  NMCompressed<float> w;
  Vector<float> bias;
};

Fixture make(Index out, Index in, Index tokens, Layout layout, std::uint64_t seed) {
  Fixture f{out, in, tokens, {}, {}};
  const Mask mask = sparsenm::random_mask(out, in, NM{2, 4}, layout, Philox(seed));
  f.w = sparsenm::compress(st::random_matrix<float>(out, in, seed + 1), mask, NM{2, 4});
  f.bias = st::random_matrix<float>(out, 1, seed + 2).col(0);
  return f;
}

/// One forward + backward on fresh random x, dY; checks y, dX, dW, db against fp64.
void check_pass(sc::SparseLinear24& layer, const NMCompressed<float>& w, const Vector<float>& b,
                std::uint64_t seed) {
  const Index out = layer.out(), in = layer.in(), tokens = layer.tokens();
  sc::DeviceBuffer<bf16> x, dy, y(std::size_t(tokens * out)), dx(std::size_t(tokens * in));
  const Matrix<double> xd = upload_bf16(x, st::random_matrix<float>(tokens, in, seed));
  const Matrix<double> dyd = upload_bf16(dy, st::random_matrix<float>(tokens, out, seed + 1));
  y.fill_bytes(0xff);  // NaN poison
  dx.fill_bytes(0xff);
  layer.forward(x.data(), y.data());
  layer.backward(dy.data(), dx.data());
  SPARSENM_CUDA_CHECK(cudaDeviceSynchronize());
  const Matrix<double> wd = dense_bf16(w);
  Matrix<double> yref = xd * wd.transpose();
  if (b.size()) yref.rowwise() += b.cast<double>().transpose();
  const Matrix<double> y_gpu = download_bf16(y, tokens, out);
  EXPECT_LT(st::fro_rel_err(y_gpu, yref), 1e-2);
  EXPECT_LT(st::max_abs_rel(y_gpu, yref), 2e-2);
  const Matrix<double> dxref = dyd * wd;
  const Matrix<double> dx_gpu = download_bf16(dx, tokens, in);
  EXPECT_LT(st::fro_rel_err(dx_gpu, dxref), 1e-2);
  EXPECT_LT(st::max_abs_rel(dx_gpu, dxref), 2e-2);
  // dW on the active entries: slot (o, j) is column (j/2)*4 + indices(o, j).
  const Matrix<double> dwd = dyd.transpose() * xd;
  Matrix<double> gref(out, in / 2);
  for (Index o = 0; o < out; ++o)
    for (Index j = 0; j < in / 2; ++j) gref(o, j) = dwd(o, (j / 2) * 4 + w.indices(o, j));
  EXPECT_LT(st::max_abs_rel(layer.grad_values(), gref), 1e-4);
  if (b.size()) {
    const Vector<double> dbref = dyd.colwise().sum().transpose();
    EXPECT_LT(st::max_abs_rel(layer.grad_bias(), dbref), 1e-4);
  }
}

TEST(CudaSparseLinear24, ForwardBackwardMatchFp64BothLayouts) {
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (Layout layout : {Layout::Transposable, Layout::RowWise})
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE(std::string(sparsenm::to_string(layout)) + (with_bias ? " bias" : ""));
      const Fixture f = make(64, 128, 48, layout, 5 + std::uint64_t(with_bias));
      const Vector<float> b = with_bias ? f.bias : Vector<float>();
      sc::Linear24Config cfg;
      cfg.search = false;
      cfg.tune = with_bias;  // a re-planned layer must still read the same packing
      cfg.dw_scratch_bytes = 16 * 128 * 4 * 3;  // 48-row dW tiles: two products, one partial
      sc::SparseLinear24 layer(f.w, b, f.tokens, cfg);
      EXPECT_EQ(layer.dx_route(), layout == Layout::Transposable ? sc::DxRoute::SparseTransposed
                                                                 : sc::DxRoute::DenseFallback);
      EXPECT_NE(layer.pack_route(), sc::PackRoute::Recompress);  // InPlace or Fused
      check_pass(layer, f.w, b, 40);
    }
}

TEST(CudaSparseLinear24, AdamStepMatchesCpuCompressedAdamAndRepacks) {
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (Layout layout : {Layout::Transposable, Layout::RowWise}) {
    SCOPED_TRACE(sparsenm::to_string(layout));
    const Fixture f = make(96, 64, 32, layout, 11);
    sc::Linear24Config cfg;
    cfg.search = false;
    cfg.tune = false;
    cfg.adam.lr = 1e-2;
    cfg.adam.weight_decay = 1e-2;
    sc::SparseLinear24 layer(f.w, f.bias, f.tokens, cfg);
    NMCompressed<float> cpu = f.w;
    Matrix<float> cpu_bias = f.bias.transpose();
    sparsenm::Adam<float> adam(cpu, cfg.adam);
    sparsenm::Adam<float> adam_bias(1, f.out, cfg.adam);
    const long rebuilds = layer.rebuilds();
    for (int it = 0; it < 3; ++it) {
      check_pass(layer, cpu, cpu_bias.row(0).transpose(), 100 + std::uint64_t(it));
      const Matrix<float> g = layer.grad_values();
      const Matrix<float> gb = layer.grad_bias().transpose();
      adam.step(cpu, g);
      adam_bias.step(cpu_bias, gb);
      layer.step();
      const NMCompressed<float> gpu = layer.download();
      EXPECT_EQ(gpu.indices, cpu.indices);
      EXPECT_LT(st::max_rel_err(gpu.values, cpu.values, 1e-2), 1e-5) << "step " << it;
      EXPECT_LT(st::max_rel_err(layer.bias(), cpu_bias.row(0).transpose(), 1e-2), 1e-5);
      EXPECT_LT(
          st::max_rel_err(
              as_vector(layer.optimizer().exp_avg().to_host()),
              Eigen::Map<const Vector<float>>(adam.exp_avg().data(), adam.exp_avg().size()), 1e-2),
          1e-5);
    }
    EXPECT_EQ(layer.rebuilds(), rebuilds) << "a step must not rebuild the packed weights";
    check_pass(layer, cpu, cpu_bias.row(0).transpose(), 200);  // re-packed values in use
  }
}

TEST(CudaSparseLinear24, RefreshMatchesCpuEngineAndMovesMoments) {
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  for (Layout layout : {Layout::Transposable, Layout::RowWise}) {
    SCOPED_TRACE(sparsenm::to_string(layout));
    const Fixture f = make(64, 64, 16, layout, 21);
    sc::Linear24Config cfg;
    cfg.search = false;
    cfg.tune = false;
    cfg.adam.lr = 1e-2;
    sc::SparseLinear24 layer(f.w, Vector<float>(), f.tokens, cfg);
    for (int it = 0; it < 2; ++it) {
      check_pass(layer, layer.download(), Vector<float>(), 300 + std::uint64_t(it));
      layer.step();
    }
    sparsenm::RefreshConfig rc;
    rc.layout = layout;
    rc.zeta = 0.3;
    rc.interval = 1;
    rc.soft_remove = false;  // magnitude removal, so the kept set is easy to reason about
    NMCompressed<float> before = layer.download();
    const std::vector<float> m0 = layer.optimizer().exp_avg().to_host();
    const std::vector<float> v0 = layer.optimizer().exp_avg_sq().to_host();
    sparsenm::TopologyRefresher<float> topo_gpu(rc, 77), topo_cpu(rc, 77);
    const long rebuilds = layer.rebuilds();
    const sparsenm::RefreshResult r = layer.refresh(topo_gpu, 1);
    const sparsenm::RefreshResult rcpu = topo_cpu.refresh(before, 1);
    ASSERT_GT(r.stats.changed_count, 0);
    EXPECT_EQ(layer.rebuilds(), rebuilds + 1);
    const NMCompressed<float> after = layer.download();
    EXPECT_EQ(after.indices, before.indices);  // `before` now holds the CPU engine's result
    EXPECT_EQ(after.values, before.values);
    EXPECT_EQ(r.slots.source, rcpu.slots.source);
    const std::vector<float> m1 = layer.optimizer().exp_avg().to_host();
    const std::vector<float> v1 = layer.optimizer().exp_avg_sq().to_host();
    Index kept = 0, fresh = 0;
    for (Index o = 0; o < f.out; ++o)
      for (Index j = 0; j < f.in / 2; ++j) {
        const int src = r.slots.source(o, j);
        const std::size_t k = std::size_t(o * (f.in / 2) + j);
        const std::size_t from = std::size_t(o * (f.in / 2) + (j / 2) * 2 + src);
        if (src >= 0) {
          ++kept;
          EXPECT_EQ(m1[k], m0[from]);
          EXPECT_EQ(v1[k], v0[from]);
        } else {
          ++fresh;
          EXPECT_EQ(m1[k], 0.f);
          EXPECT_EQ(v1[k], 0.f);
        }
      }
    EXPECT_GT(kept, 0);
    EXPECT_GT(fresh, 0);
    EXPECT_EQ(layer.dx_route(), layout == Layout::Transposable ? sc::DxRoute::SparseTransposed
                                                               : sc::DxRoute::DenseFallback);
    check_pass(layer, after, Vector<float>(), 400);  // the rebuilt packing serves the new mask
    EXPECT_NE(layer.pack_route(), sc::PackRoute::Recompress);  // InPlace or Fused
  }
}

TEST(CudaSparseLinear24, TansOnCompressedStateMatchesCpuAndRepacks) {
  // TANS (chtsnm Sec. 3.2) on the layer's device state: cuda::TansCompressed steps values_data()
  // with grad_data() and indices_data(), pack() re-packs; reference: the CPU Tans compressed
  // route fed the same slot gradients (fp32 Newton-Schulz: updates within 1e-5).
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Fixture f = make(64, 128, 32, Layout::Transposable, 51);
  sc::Linear24Config cfg;
  cfg.search = false;
  cfg.tune = false;
  sc::SparseLinear24 layer(f.w, Vector<float>(), f.tokens, cfg);
  sparsenm::TansConfig tc;
  tc.lr = 1e-2;
  tc.ramp_steps = 1;  // the first step without Newton-Schulz, then gamma = gamma_NS
  sc::TansCompressed<float> tans(f.out, f.in, NM{2, 4}, tc);
  NMCompressed<float> cpu = f.w;
  sparsenm::Tans<float> ctans(cpu, tc);
  sc::CublasHandle handle;
  for (int it = 0; it < 3; ++it) {
    check_pass(layer, cpu, Vector<float>(), 600 + std::uint64_t(it));
    const Matrix<float> g = layer.grad_values();
    ctans.step(cpu, g);
    tans.step(layer.values_data(), layer.grad_data(), layer.indices_data(), handle);
    layer.pack();
    const Matrix<float> du_gpu = layer.download().values - f.w.values;
    const Matrix<float> du_cpu = cpu.values - f.w.values;
    EXPECT_LT(st::fro_rel_err(du_gpu, du_cpu), 1e-5) << "step " << it;
    EXPECT_LT(st::max_abs_rel(du_gpu, du_cpu), 1e-5) << "step " << it;
  }
  EXPECT_GT(ctans.last_rms_scale(), 0.0);
  check_pass(layer, cpu, Vector<float>(), 700);  // the re-packed TANS values serve the products
}

TEST(CudaSparseLinear24, CapturedStepEqualsEagerSteps) {
  // With Adam's bias correction (the default) and an lr change between steps: every replay must
  // take its own step's correction and the new lr from the device clock, so the graph equals the
  // eager steps, and both equal the CPU compressed Adam fed the same gradients (1 - beta^t of a
  // frozen step 1 would differ by ~0.9 relative: the defect this guards).
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Fixture f = make(64, 128, 32, Layout::Transposable, 41);
  sc::Linear24Config cfg;
  cfg.search = false;
  cfg.tune = false;
  cfg.adam.lr = 1e-2;
  ASSERT_TRUE(cfg.adam.bias_correction);
  sc::Stream stream;
  sc::DeviceBuffer<bf16> x, dy, y(std::size_t(f.tokens * f.out)), dx(std::size_t(f.tokens * f.in));
  upload_bf16(x, st::random_matrix<float>(f.tokens, f.in, 42));
  upload_bf16(dy, st::random_matrix<float>(f.tokens, f.out, 43));
  sc::SparseLinear24 eager(f.w, f.bias, f.tokens, cfg), graphed(f.w, f.bias, f.tokens, cfg);
  auto g = graphed.capture_step(x.data(), y.data(), dy.data(), dx.data(), stream);
  EXPECT_EQ(graphed.optimizer().steps(stream), 0) << "capturing must not step";
  NMCompressed<float> cpu = f.w;
  sparsenm::Adam<float> adam(cpu, cfg.adam);
  const double lrs[4] = {1e-2, 1e-2, 5e-3, 5e-3};
  for (int i = 0; i < 4; ++i) {
    eager.set_lr(lrs[i], stream);
    graphed.set_lr(lrs[i], stream);
    eager.forward(x.data(), y.data(), stream);
    eager.backward(dy.data(), dx.data(), stream);
    stream.synchronize();
    const Matrix<float> grad = eager.grad_values(stream);  // the same x, dY: the same dW
    adam.set_lr(lrs[i]);
    adam.step(cpu, grad);
    eager.step(stream);
    g.replay(stream);
  }
  stream.synchronize();
  EXPECT_EQ(graphed.optimizer().steps(stream), 4);
  EXPECT_EQ(eager.optimizer().steps(stream), 4);
  const NMCompressed<float> gv = graphed.download(stream), ev = eager.download(stream);
  EXPECT_LT(st::max_rel_err(gv.values, ev.values, 1e-2), 1e-6);
  EXPECT_LT(st::max_rel_err(graphed.bias(stream), eager.bias(stream), 1e-2), 1e-6);
  EXPECT_LT(st::max_rel_err(gv.values, cpu.values, 1e-2), 1e-5);
  EXPECT_NE(gv.values, f.w.values);  // the replays did step
}

std::vector<unsigned char> packed_bytes(sc::Sparse24& plan) {
  std::vector<unsigned char> h(plan.compressed_bytes());
  SPARSENM_CUDA_CHECK(
      cudaMemcpy(h.data(), plan.compressed_data(), h.size(), cudaMemcpyDeviceToHost));
  return h;
}

TEST(CudaSparseLinear24, FusedAdamPackEqualsAdamThenGatherAndCpuAdam) {
  // PackRoute::Fused (Adam and the re-pack of both packed weights in one tiled pass) against the
  // gather route: each step's packed buffers must equal, byte for byte, what the gather route
  // writes for the same master values; the values must match a layer on the gather route fed the
  // same data (1e-6) and the CPU compressed Adam (1e-5). Both layouts of the pass: runs
  // (fused_runs: one run a slot row of the forward packing, one a column of W of the transposed
  // one) and single windows (fused_runs false). Shapes: one with whole rectangles, one (208 x 1040:
  // 520 slots a row) with partial rectangles at both edges, and 1024 x 1536 where a rectangle's
  // transposed words are spread over 2J rows of Wᵀ (the case of the large layers: the run layout
  // must hold there with cuSPARSELt's Wᵀ packing in its own row order).
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  struct Case {
    Index out, in;
    bool runs;
  };
  const Case cases[] = {
      {96, 128, true}, {208, 1040, true}, {1024, 1536, true}, {96, 128, false}, {208, 1040, false}};
  for (const Case& cs : cases) {
    const std::pair<Index, Index> sh{cs.out, cs.in};
    SCOPED_TRACE(std::to_string(sh.first) + "x" + std::to_string(sh.second) +
                 (cs.runs ? " runs" : " windows"));
    const Fixture f = make(sh.first, sh.second, 32, Layout::Transposable, 61);
    sc::Linear24Config cfg;
    cfg.fused_runs = cs.runs;
    cfg.sample_in_step = true;  // dW sampled inside the fused step where the route allows
    cfg.search = false;
    cfg.tune = false;
    cfg.adam.lr = 1e-2;
    cfg.adam.weight_decay = 1e-2;
    sc::SparseLinear24 fused(f.w, f.bias, f.tokens, cfg);
    sc::Linear24Config gcfg = cfg;
    gcfg.fused_pack = false;
    sc::SparseLinear24 gather(f.w, f.bias, f.tokens, gcfg);
    sc::Linear24Config hcfg = cfg;  // the fused pass on the forward packing only, the
    hcfg.fused_transposed = false;  // transposed one by the gather
    sc::SparseLinear24 half(f.w, f.bias, f.tokens, hcfg);
    sc::Linear24Config ncfg = cfg;  // the sampling pass in backward(), not in the fused step
    ncfg.sample_in_step = false;
    sc::SparseLinear24 nosample(f.w, f.bias, f.tokens, ncfg);
    ASSERT_EQ(half.pack_route(), sc::PackRoute::Fused);
    EXPECT_EQ(half.fused_tiles().window_bwd, 0u);
    ASSERT_EQ(fused.pack_route(), sc::PackRoute::Fused);
    ASSERT_EQ(gather.pack_route(), sc::PackRoute::InPlace);
    const auto t = fused.fused_tiles();
    std::printf("  %lldx%lld: fused %s%s, %u x %u slots, staged / window words %u / %u\n",
                (long long)sh.first, (long long)sh.second, t.runs ? "runs" : "windows",
                t.fwd_direct ? " (forward direct)" : "", t.rows, t.slots, t.window_fwd,
                t.window_bwd);
    EXPECT_GT(t.rows * t.slots, 0u);
    EXPECT_LE(t.window_fwd, 16384u);
    EXPECT_LE(t.window_bwd, 16384u);
    EXPECT_GT(t.window_bwd, 0u);
    if (!cs.runs) EXPECT_FALSE(t.runs);
    if (sh.first >= 1024) EXPECT_TRUE(t.runs);  // the layout of the large layers
    if (t.runs) {
      // Another rectangle shape re-planned on the same maps, with the forward packing staged in
      // runs too (not written directly where it is the slot order): the same bytes; the steps
      // below run on it, the other fused layers on the default plan.
      ASSERT_TRUE(fused.set_fused_runs(128, 64, nullptr, false));
      EXPECT_EQ(fused.fused_tiles().rows, 128u);
      EXPECT_FALSE(fused.fused_tiles().fwd_direct);
      EXPECT_GT(fused.fused_tiles().window_fwd, 0u);
      fused.pack();
      EXPECT_EQ(packed_bytes(fused.forward_plan()), packed_bytes(gather.forward_plan()));
      EXPECT_EQ(packed_bytes(*fused.backward_plan()), packed_bytes(*gather.backward_plan()));
    }
    // Right after construction both routes packed the same values.
    EXPECT_EQ(packed_bytes(fused.forward_plan()), packed_bytes(gather.forward_plan()));
    EXPECT_EQ(packed_bytes(*fused.backward_plan()), packed_bytes(*gather.backward_plan()));
    NMCompressed<float> cpu = f.w;
    Matrix<float> cpu_bias = f.bias.transpose();
    sparsenm::Adam<float> adam(cpu, cfg.adam);
    sparsenm::Adam<float> adam_bias(1, f.out, cfg.adam);
    for (int it = 0; it < 3; ++it) {
      check_pass(fused, cpu, cpu_bias.row(0).transpose(), 800 + std::uint64_t(it));
      check_pass(gather, cpu, cpu_bias.row(0).transpose(), 800 + std::uint64_t(it));
      adam.step(cpu, fused.grad_values());
      adam_bias.step(cpu_bias, fused.grad_bias().transpose());
      check_pass(half, cpu, cpu_bias.row(0).transpose(), 800 + std::uint64_t(it));
      check_pass(nosample, cpu, cpu_bias.row(0).transpose(), 800 + std::uint64_t(it));
      fused.step();  // (grad_values() above sampled a copy; the step samples the tile itself)
      gather.step();
      half.step();
      nosample.step();
      // dW sampled inside the fused step: the same bits as the sampling pass of backward().
      EXPECT_EQ(fused.download().values, nosample.download().values) << "step " << it;
      EXPECT_EQ(packed_bytes(nosample.forward_plan()), packed_bytes(fused.forward_plan()));
      EXPECT_EQ(packed_bytes(*nosample.backward_plan()), packed_bytes(*fused.backward_plan()));
      EXPECT_EQ(packed_bytes(half.forward_plan()), packed_bytes(fused.forward_plan()));
      EXPECT_EQ(packed_bytes(*half.backward_plan()), packed_bytes(*fused.backward_plan()));
      const auto pf = packed_bytes(fused.forward_plan()), pb = packed_bytes(*fused.backward_plan());
      ASSERT_EQ(fused.set_pack_route(sc::PackRoute::InPlace), sc::PackRoute::InPlace);
      fused.pack();  // the gather route on the fused layer's own values
      EXPECT_EQ(pf, packed_bytes(fused.forward_plan())) << "step " << it;
      EXPECT_EQ(pb, packed_bytes(*fused.backward_plan())) << "step " << it;
      ASSERT_EQ(fused.set_pack_route(sc::PackRoute::Fused), sc::PackRoute::Fused);
      const NMCompressed<float> fv = fused.download(), gv = gather.download();
      EXPECT_LT(st::max_rel_err(fv.values, gv.values, 1e-2), 1e-6) << "step " << it;
      EXPECT_LT(st::max_rel_err(fv.values, cpu.values, 1e-2), 1e-5) << "step " << it;
      EXPECT_LT(st::max_rel_err(fused.bias(), cpu_bias.row(0).transpose(), 1e-2), 1e-5);
      EXPECT_LT(
          st::max_rel_err(
              as_vector(fused.optimizer().exp_avg().to_host()),
              Eigen::Map<const Vector<float>>(adam.exp_avg().data(), adam.exp_avg().size()), 1e-2),
          1e-5);
      EXPECT_EQ(fused.optimizer().steps(), it + 1);
    }
    // pack() on the fused route (the tiled pass without Adam) after a direct change of the
    // values: byte for byte the gather route's packing, and the products use the new values.
    const Matrix<float> scaled = cpu.values * 1.5f;
    cpu.values = scaled;
    SPARSENM_CUDA_CHECK(cudaMemcpy(fused.values_data(), scaled.data(),
                                   std::size_t(scaled.size()) * sizeof(float),
                                   cudaMemcpyHostToDevice));
    fused.pack();
    const auto pf = packed_bytes(fused.forward_plan()), pb = packed_bytes(*fused.backward_plan());
    fused.set_pack_route(sc::PackRoute::InPlace);
    fused.pack();
    EXPECT_EQ(pf, packed_bytes(fused.forward_plan()));
    EXPECT_EQ(pb, packed_bytes(*fused.backward_plan()));
    fused.set_pack_route(sc::PackRoute::Fused);
    fused.pack();
    check_pass(fused, cpu, cpu_bias.row(0).transpose(), 900);  // re-packed values in use
    if (t.runs) {
      // grad_data() after a backward whose sampling was deferred: the same gradient as the
      // sampling pass of backward() (dW does not depend on W: the same mask, x and dY), and a
      // gradient written through grad_data() is what the next step() uses (not the tile).
      const std::size_t nnz = std::size_t(f.out * (f.in / 2));
      sc::DeviceBuffer<bf16> x, dy, y(std::size_t(f.tokens * f.out));
      upload_bf16(x, st::random_matrix<float>(f.tokens, f.in, 990));
      upload_bf16(dy, st::random_matrix<float>(f.tokens, f.out, 991));
      for (sc::SparseLinear24* l : {&fused, &nosample}) {
        l->forward(x.data(), y.data());
        l->backward(dy.data(), nullptr);
      }
      std::vector<float> gf(nnz), gn(nnz);
      SPARSENM_CUDA_CHECK(
          cudaMemcpy(gf.data(), fused.grad_data(), nnz * sizeof(float), cudaMemcpyDeviceToHost));
      SPARSENM_CUDA_CHECK(
          cudaMemcpy(gn.data(), nosample.grad_data(), nnz * sizeof(float), cudaMemcpyDeviceToHost));
      EXPECT_EQ(gf, gn);
      const Matrix<float> g = st::random_matrix<float>(f.out, f.in / 2, 992);
      for (sc::SparseLinear24* l : {&fused, &nosample})
        SPARSENM_CUDA_CHECK(
            cudaMemcpy(l->grad_data(), g.data(), nnz * sizeof(float), cudaMemcpyHostToDevice));
      SPARSENM_CUDA_CHECK(cudaMemcpy(nosample.values_data(), fused.values_data(),
                                     nnz * sizeof(float), cudaMemcpyDeviceToDevice));
      fused.step();
      nosample.step();
      EXPECT_EQ(fused.download().values, nosample.download().values);
      EXPECT_EQ(packed_bytes(fused.forward_plan()), packed_bytes(nosample.forward_plan()));
      EXPECT_EQ(packed_bytes(*fused.backward_plan()), packed_bytes(*nosample.backward_plan()));
    }
  }
}

TEST(CudaSparseLinear24, DwTilesOnTwoStreamsMatchFp64AndCapture) {
  // dw_overlap: 16-row dW tiles in two buffers, sampled on a second stream (event-ordered): the
  // same fp64 references as the single-stream tiles, and a captured step (fork / join inside the
  // graph) equals eager steps of a single-stream layer.
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Fixture f = make(64, 128, 32, Layout::Transposable, 71);
  sc::Linear24Config cfg;
  cfg.search = false;
  cfg.tune = false;
  cfg.adam.lr = 1e-2;
  cfg.dw_scratch_bytes = 16 * 128 * 4;  // 16-row tiles: four products, two buffers
  cfg.dw_overlap = true;
  sc::SparseLinear24 layer(f.w, f.bias, f.tokens, cfg);
  EXPECT_EQ(layer.dw_tile_rows(), 16);
  check_pass(layer, f.w, f.bias, 1000);
  sc::Stream stream;
  sc::DeviceBuffer<bf16> x, dy, y(std::size_t(f.tokens * f.out)), dx(std::size_t(f.tokens * f.in));
  upload_bf16(x, st::random_matrix<float>(f.tokens, f.in, 72));
  upload_bf16(dy, st::random_matrix<float>(f.tokens, f.out, 73));
  sc::Linear24Config ecfg = cfg;
  ecfg.dw_overlap = false;
  ecfg.dw_scratch_bytes = std::size_t(16) << 20;
  sc::SparseLinear24 graphed(f.w, f.bias, f.tokens, cfg), eager(f.w, f.bias, f.tokens, ecfg);
  auto g = graphed.capture_step(x.data(), y.data(), dy.data(), dx.data(), stream);
  for (int i = 0; i < 3; ++i) {
    eager.forward(x.data(), y.data(), stream);
    eager.backward(dy.data(), dx.data(), stream);
    eager.step(stream);
    g.replay(stream);
  }
  stream.synchronize();
  EXPECT_LT(st::max_rel_err(graphed.download(stream).values, eager.download(stream).values, 1e-2),
            1e-6);
  EXPECT_LT(st::max_rel_err(graphed.bias(stream), eager.bias(stream), 1e-2), 1e-6);
  EXPECT_NE(graphed.download(stream).values, f.w.values);
}

TEST(CudaAdam, DeviceClockSetStepsAndRemapKeepT) {
  // set_steps(t) resumes the bias correction at t + 1 (checkpoint restore). Reference: a CPU Adam
  // that took t steps on zero gradients (m, v and w stay as they were; only t advances).
  if (sc::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const Index R = 8, C = 12;
  sparsenm::AdamConfig cfg;
  cfg.lr = 1e-2;
  sparsenm::Adam<float> cpu(R, C, cfg);
  sc::Adam<float> gpu(R, C, cfg);
  Matrix<float> w = st::random_matrix<float>(R, C, 5);
  const Matrix<float> zero = Matrix<float>::Zero(R, C);
  for (int t = 0; t < 7; ++t) cpu.step(w, zero);  // w unchanged (m = 0), t = 7
  gpu.set_steps(7);
  EXPECT_EQ(gpu.steps(), 7);
  auto d_w = sc::to_device(w);
  const Matrix<float> g = st::random_matrix<float>(R, C, 6);
  auto d_g = sc::to_device(g);
  cpu.step(w, g);
  gpu.step(d_w.data(), d_g.data());
  EXPECT_EQ(gpu.steps(), 8);
  EXPECT_LT(st::max_rel_err(sc::to_host(d_w, R, C), w, 1e-2), 1e-6);
  sparsenm::SlotMap slots;  // identity remap (2 slots per group): t must survive
  slots.nm = NM{2, 4};
  slots.source.resize(R, C);
  for (Index r = 0; r < R; ++r)
    for (Index c = 0; c < C; ++c) slots.source(r, c) = std::int8_t(c % 2);
  gpu.remap(slots);
  EXPECT_EQ(gpu.steps(), 8);
  EXPECT_THROW(gpu.set_steps(-1), sparsenm::Error);
}

TEST(CudaSparseLinear24, RejectsBadShapes) {
  const Fixture f = make(64, 64, 16, Layout::RowWise, 31);
  EXPECT_THROW(sc::SparseLinear24(f.w, f.bias, 24), sparsenm::Error);            // tokens % 16
  EXPECT_THROW(sc::SparseLinear24(f.w, Vector<float>(3), 16), sparsenm::Error);  // bias length
  const Mask m14 = sparsenm::random_rowwise(64, 64, NM{1, 4}, Philox(1));
  const auto c14 = sparsenm::compress(st::random_matrix<float>(64, 64, 2), m14, NM{1, 4});
  EXPECT_THROW(sc::SparseLinear24(c14, Vector<float>(), 16), sparsenm::Error);  // not 2:4
  const Mask m = sparsenm::random_rowwise(24, 64, NM{2, 4}, Philox(1));
  const auto c = sparsenm::compress(st::random_matrix<float>(24, 64, 2), m, NM{2, 4});
  EXPECT_THROW(sc::SparseLinear24(c, Vector<float>(), 16), sparsenm::Error);  // out % 16
}

}  // namespace

#endif  // SPARSENM_HAS_CUSPARSELT
