// SPDX-License-Identifier: Apache-2.0
// Device Newton-Schulz, TANS, Adam and AdamS against the CPU classes on fresh random inputs.
// Tolerances: fp32 within 1e-5 relative, both in Frobenius norm and as the largest absolute
// difference over the largest reference value (elementwise ratios are not used: the CPU build
// contracts a*b+c into FMAs where GCC chooses, the GPU where nvcc chooses, and quantities such as
// g + wd*W cancel, so single entries can differ by more than 1e-5 of themselves while agreeing to
// 1e-7 of the data); TF32 within 5e-3 and bf16 within 3e-2 (Frobenius; Newton-Schulz also
// against an fp64 CPU reference). Weights start at 0.01 scale so the updates are not lost in the
// rounding of the weights themselves.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include <sparsenm/cuda.cuh>
#include <sparsenm/mask.hpp>
#include <sparsenm/optim.hpp>

#include "cuda/cuda_test_util.cuh"

namespace {

using sparsenm::Index;
using sparsenm::Mask;
using sparsenm::Matrix;
using sparsenm::NM;
using sparsenm::Philox;
namespace sc = sparsenm::cuda;
namespace st = sparsenm::test;

TEST(CudaNewtonSchulz, MatchesCpuWideAndTallAllPrecisions) {
  for (auto shape : {std::pair<Index, Index>{48, 96}, {96, 40}, {64, 64}}) {
    const Matrix<float> x = st::random_matrix<float>(shape.first, shape.second, shape.first);
    const Matrix<double> ref = sparsenm::newton_schulz<double>(x.cast<double>());
    const Matrix<float> cpu = sparsenm::newton_schulz<float>(x);
    const Matrix<float> g32 =
        sc::newton_schulz(x, 5, sparsenm::NsCoefficients::TansTableA4, sc::NsPrecision::Native);
    EXPECT_LT(st::fro_rel_err(g32, ref), 1e-5);
    EXPECT_LT(st::fro_rel_err(g32, cpu), 1e-5);
    const Matrix<float> tf =
        sc::newton_schulz(x, 5, sparsenm::NsCoefficients::TansTableA4, sc::NsPrecision::Tf32);
    EXPECT_LT(st::fro_rel_err(tf, ref), 5e-3);
    const Matrix<float> bf =
        sc::newton_schulz(x, 5, sparsenm::NsCoefficients::TansTableA4, sc::NsPrecision::Bf16);
    EXPECT_LT(st::fro_rel_err(bf, ref), 3e-2);
    const Matrix<double> gd =
        sc::newton_schulz(x.cast<double>().eval(), 5, sparsenm::NsCoefficients::Muon);
    EXPECT_LT(st::fro_rel_err(gd, sparsenm::newton_schulz<double>(x.cast<double>(), 5,
                                                                  sparsenm::NsCoefficients::Muon)),
              1e-12);
  }
  // Zero in, zero out; zero steps = the normalised input.
  const Matrix<float> z = Matrix<float>::Zero(8, 12);
  EXPECT_EQ(sc::newton_schulz(z).cwiseAbs().maxCoeff(), 0.0f);
  const Matrix<float> x = st::random_matrix<float>(8, 12, 5);
  const Matrix<float> x0 = sc::newton_schulz(x, 0);
  EXPECT_LT(st::fro_rel_err(x0, (x / (x.norm() + 1e-7f)).eval()), 1e-6);
}

template <class S>
void run_tans_case(sparsenm::TansConfig cfg, sc::NsPrecision prec, double tol) {
  const Index R = 64, C = 96;
  const NM nm{2, 4};
  const Philox rng(2024);
  Mask mask = sparsenm::random_transposable(R, C, nm, rng.split(1));
  Matrix<S> w_cpu = st::random_matrix<S>(R, C, 11) * S(0.01);
  for (Index k = 0; k < w_cpu.size(); ++k)
    if (!mask.data()[k]) w_cpu.data()[k] = S(0.25);  // inactive weights must stay bit-exact
  sparsenm::Tans<S> cpu(R, C, cfg);
  sc::Tans<S> gpu(R, C, cfg, prec);
  sc::CublasHandle handle;
  sc::Stream stream;
  auto d_w = sc::to_device(w_cpu, stream);
  auto d_m = sc::DeviceBuffer<std::uint8_t>(std::size_t(mask.size()));
  d_m.upload(mask.data(), std::size_t(mask.size()), stream);
  sc::DeviceBuffer<S> d_g(std::size_t(R * C));
  const Matrix<S> w0 = w_cpu;
  for (int t = 0; t < 14; ++t) {
    if (t == 6) {  // a topology refresh: new mask, reset changed entries, tau = 0
      Mask next = sparsenm::random_transposable(R, C, nm, rng.split(100 + t));
      Mask changed(R, C);
      for (Index k = 0; k < mask.size(); ++k) changed.data()[k] = next.data()[k] != mask.data()[k];
      mask = next;
      d_m.upload(mask.data(), std::size_t(mask.size()), stream);
      cpu.on_refresh(changed);
      auto d_c = sc::DeviceBuffer<std::uint8_t>(std::size_t(changed.size()));
      d_c.upload(changed.data(), std::size_t(changed.size()), stream);
      gpu.on_refresh(d_c.data(), stream);
      stream.synchronize();
    }
    const Matrix<S> g = st::random_matrix<S>(R, C, 500 + std::uint64_t(t));
    d_g.upload(g.data(), std::size_t(g.size()), stream);
    cpu.step(w_cpu, g, mask);
    gpu.step(d_w.data(), d_g.data(), d_m.data(), handle, stream);
  }
  const Matrix<S> w_gpu = sc::to_host(d_w, R, C, stream);
  // Compare the accumulated updates (the weights themselves are O(1), the updates O(lr)).
  const Matrix<S> du_gpu = w_gpu - w0, du_cpu = w_cpu - w0;
  EXPECT_LT(st::fro_rel_err(du_gpu, du_cpu), tol) << sc::to_string(prec);
  if (prec == sc::NsPrecision::Native) EXPECT_LT(st::max_abs_rel(du_gpu, du_cpu), tol);
  EXPECT_EQ(gpu.steps_since_refresh(), cpu.steps_since_refresh());
  if (prec == sc::NsPrecision::Native) {
    const Matrix<S> v = sc::to_host(gpu.exp_avg_sq(), R, C, stream);
    const Matrix<S> p = sc::to_host(gpu.momentum(), R, C, stream);
    for (double e : {st::fro_rel_err(v, cpu.exp_avg_sq()), st::max_abs_rel(v, cpu.exp_avg_sq()),
                     st::fro_rel_err(p, cpu.momentum()), st::max_abs_rel(p, cpu.momentum())})
      EXPECT_LT(e, std::max(tol, 1e-12));
    EXPECT_NEAR(gpu.last_rms_scale(stream), cpu.last_rms_scale(), 1e-5 * cpu.last_rms_scale());
  }
  // Inactive entries of the final mask that were never active keep their exact bits.
  for (Index k = 0; k < w_gpu.size(); ++k)
    if (w_cpu.data()[k] == S(0.25)) ASSERT_EQ(w_gpu.data()[k], S(0.25)) << k;
}

TEST(CudaTans, MatchesCpuFp32AllRmsModes) {
  for (auto rms : {sparsenm::RmsMatch::PostMaskActive, sparsenm::RmsMatch::PreMaskGlobal,
                   sparsenm::RmsMatch::None}) {
    sparsenm::TansConfig cfg;
    cfg.rms = rms;
    cfg.weight_decay = 0.1;
    cfg.ramp_steps = 3;
    run_tans_case<float>(cfg, sc::NsPrecision::Native, 1e-5);
  }
  sparsenm::TansConfig all;
  all.reset = sparsenm::StateReset::All;
  all.coefficients = sparsenm::NsCoefficients::Muon;
  run_tans_case<float>(all, sc::NsPrecision::Native, 1e-5);
}

TEST(CudaTans, MatchesCpuDoubleTf32Bf16) {
  sparsenm::TansConfig cfg;
  cfg.ramp_steps = 2;
  run_tans_case<double>(cfg, sc::NsPrecision::Native, 1e-10);
  run_tans_case<float>(cfg, sc::NsPrecision::Tf32, 5e-3);
  run_tans_case<float>(cfg, sc::NsPrecision::Bf16, 3e-2);
}

/// cuda::TansCompressed against the CPU Tans compressed route (optim/tans.hpp) on the same
/// NMCompressed weight and slot gradients, with a topology refresh (SlotMap remap) midway.
template <class S>
void run_tans_compressed_case(sparsenm::TansConfig cfg, sc::NsPrecision prec, double tol) {
  const Index R = 64, C = 96;
  const NM nm{2, 4};
  const Philox rng(4048);
  const Mask mask = sparsenm::random_transposable(R, C, nm, rng.split(1));
  sparsenm::NMCompressed<S> w =
      sparsenm::compress(Matrix<S>(st::random_matrix<S>(R, C, 12) * S(0.01)), mask, nm);
  const Index k = w.values.cols();
  const std::size_t nk = std::size_t(R * k);
  sparsenm::Tans<S> cpu(w, cfg);
  sc::TansCompressed<S> gpu(R, C, nm, cfg, prec);
  sc::CublasHandle handle;
  sc::Stream stream;
  auto d_v = sc::to_device(w.values, stream);
  sc::DeviceBuffer<std::uint8_t> d_i(nk);
  d_i.upload(w.indices.data(), nk, stream);
  sc::DeviceBuffer<S> d_g(nk);
  Matrix<S> base = w.values;
  for (int t = 0; t < 10; ++t) {
    if (t == 5) {  // refresh: a new transposable mask, kept slots keep values and state
      const Mask next = sparsenm::random_transposable(R, C, nm, rng.split(100));
      sparsenm::NMCompressed<S> cur = w;
      cur.values = sc::to_host(d_v, R, k, stream);  // the device's values move, as the CPU's
      const sparsenm::SlotMap map = sparsenm::move_to_mask(w, next);
      EXPECT_EQ(sparsenm::move_to_mask(cur, next).source, map.source);
      cpu.remap(map);
      gpu.remap(map, stream);
      d_v.upload(cur.values.data(), nk, stream);
      d_i.upload(w.indices.data(), nk, stream);
      base = w.values;
      EXPECT_EQ(gpu.steps_since_refresh(), 0);
    }
    const Matrix<S> g = st::random_matrix<S>(R, k, 900 + std::uint64_t(t));
    d_g.upload(g.data(), nk, stream);
    cpu.step(w, g);
    gpu.step(d_v.data(), d_g.data(), d_i.data(), handle, stream);
  }
  const Matrix<S> v_gpu = sc::to_host(d_v, R, k, stream);
  const Matrix<S> du_gpu = v_gpu - base, du_cpu = w.values - base;
  EXPECT_LT(st::fro_rel_err(du_gpu, du_cpu), tol) << sc::to_string(prec);
  EXPECT_EQ(gpu.steps_since_refresh(), cpu.steps_since_refresh());
  if (prec == sc::NsPrecision::Native) {
    EXPECT_LT(st::max_abs_rel(du_gpu, du_cpu), tol);
    const Matrix<S> v = sc::to_host(gpu.exp_avg_sq(), R, k, stream);
    const Matrix<S> p = sc::to_host(gpu.momentum(), R, k, stream);
    for (double e : {st::fro_rel_err(v, cpu.exp_avg_sq()), st::fro_rel_err(p, cpu.momentum())})
      EXPECT_LT(e, tol);
    if (cfg.rms != sparsenm::RmsMatch::None)
      EXPECT_NEAR(gpu.last_rms_scale(stream), cpu.last_rms_scale(), 1e-5 * cpu.last_rms_scale());
  }
}

TEST(CudaTansCompressed, MatchesCpuCompressedRouteAllRmsModesAndRefresh) {
  for (auto rms : {sparsenm::RmsMatch::PostMaskActive, sparsenm::RmsMatch::PreMaskGlobal,
                   sparsenm::RmsMatch::None}) {
    sparsenm::TansConfig cfg;
    cfg.rms = rms;
    cfg.weight_decay = 0.1;
    cfg.ramp_steps = 2;  // steps 0 and 5 (after the refresh) take the gamma = 0 route
    run_tans_compressed_case<float>(cfg, sc::NsPrecision::Native, 1e-5);
  }
  sparsenm::TansConfig all;
  all.reset = sparsenm::StateReset::All;
  run_tans_compressed_case<float>(all, sc::NsPrecision::Native, 1e-5);
  run_tans_compressed_case<double>(sparsenm::TansConfig{}, sc::NsPrecision::Native, 1e-10);
  run_tans_compressed_case<float>(sparsenm::TansConfig{}, sc::NsPrecision::Bf16, 3e-2);
}

TEST(CudaAdam, MatchesCpuMaskedAndDenseL2AndDecoupled) {
  const Index R = 33, C = 47;  // 1551 entries: 4-wide body + scalar tail
  const Philox rng(8);
  Mask mask(R, C);
  for (Index k = 0; k < mask.size(); ++k)
    mask.data()[k] = std::uint8_t(rng.bits(std::uint64_t(k)) & 1u);
  for (int variant = 0; variant < 4; ++variant) {
    sparsenm::AdamConfig cfg;
    cfg.weight_decay = 0.05;
    cfg.decoupled_weight_decay = variant & 1;
    const bool masked = variant & 2;
    Matrix<float> w_cpu = st::random_matrix<float>(R, C, 3) * 0.01f;
    const Matrix<float> w0 = w_cpu;
    sparsenm::Adam<float> cpu(R, C, cfg);
    sc::Adam<float> gpu(R, C, cfg);
    auto d_w = sc::to_device(w_cpu);
    sc::DeviceBuffer<std::uint8_t> d_m(std::size_t(mask.size()));
    d_m.upload(mask.data(), std::size_t(mask.size()));
    sc::DeviceBuffer<float> d_g(std::size_t(R * C));
    for (int t = 0; t < 5; ++t) {
      const Matrix<float> g = st::random_matrix<float>(R, C, 40 + std::uint64_t(t));
      d_g.upload(g.data(), std::size_t(g.size()));
      if (masked) {
        cpu.step(w_cpu, g, mask);
        gpu.step(d_w.data(), d_g.data(), d_m.data());
      } else {
        cpu.step(w_cpu, g);
        gpu.step(d_w.data(), d_g.data());
      }
    }
    const Matrix<float> w_gpu = sc::to_host(d_w, R, C);
    const Matrix<float> du_gpu = w_gpu - w0, du_cpu = w_cpu - w0;
    const Matrix<float> m = sc::to_host(gpu.exp_avg(), R, C),
                        v = sc::to_host(gpu.exp_avg_sq(), R, C);
    for (double e : {st::fro_rel_err(du_gpu, du_cpu), st::max_abs_rel(du_gpu, du_cpu),
                     st::fro_rel_err(m, cpu.exp_avg()), st::max_abs_rel(m, cpu.exp_avg()),
                     st::fro_rel_err(v, cpu.exp_avg_sq()), st::max_abs_rel(v, cpu.exp_avg_sq())})
      EXPECT_LT(e, 1e-5) << variant;
    if (masked)
      for (Index k = 0; k < mask.size(); ++k)
        if (!mask.data()[k]) ASSERT_EQ(w_gpu.data()[k], w0.data()[k]);
  }
}

TEST(CudaAdamS, WorkedExampleClosedForm) {
  // ALGORITHMS.md: b1 0.9, b2 0.999, eps 1e-8, lr 1e-3, lambda 0.004, T = 4, g = 0.002, theta0 =
  // 0.01; the pruned coordinate after steps 1..3 = 5.0e-7, -0.007352349, -0.002246215, the kept
  // one = 5.0e-7, -0.006585000, -0.011593135. A 1:2 row [a, b] with |a| > |b| keeps a; the mask is
  // fixed after step 1 (mask_interval large), so a = kept, b = pruned.
  sparsenm::AdamSConfig cfg;
  cfg.lr = 1e-3, cfg.eps = 1e-8, cfg.lambda = 0.004, cfg.total_steps = 4, cfg.mask_interval = 1000;
  cfg.nm = NM{1, 2};
  cfg.scaling_groups = 0;
  sc::AdamS<double> gpu(1, 4, cfg);
  Matrix<double> w(1, 4);
  w << 0.01, 0.01 - 1e-12, 0.01, 0.01 - 1e-12;  // kept, pruned, kept, pruned
  auto d_w = sc::to_device(w);
  const Matrix<double> g = Matrix<double>::Constant(1, 4, 0.002);
  auto d_g = sc::to_device(g);
  const double kept[3] = {5.0e-7, -0.006585000, -0.011593135};
  const double pruned[3] = {5.0e-7, -0.007352349, -0.002246215};
  for (int t = 0; t < 3; ++t) {
    gpu.step(d_w.data(), d_g.data());
    const Matrix<double> h = sc::to_host(d_w, 1, 4);
    EXPECT_NEAR(h(0, 0), kept[t], 2e-9) << t;
    EXPECT_NEAR(h(0, 1), pruned[t] - (t == 0 ? 1e-12 : 0.0), 2e-9) << t;
  }
  cfg.scaling_groups = 2;
  EXPECT_THROW(sc::AdamS<float>(4, 8, cfg), sparsenm::Error);
}

TEST(CudaAdamS, MatchesCpuWithMaskRecompute) {
  sparsenm::AdamSConfig cfg;
  cfg.scaling_groups = 0;
  cfg.mask_interval = 3;
  cfg.total_steps = 5;
  cfg.lambda = 0.01;
  const Index R = 24, C = 64;
  Matrix<float> w_cpu = st::random_matrix<float>(R, C, 12) * 0.01f;
  const Matrix<float> w0 = w_cpu;
  sparsenm::AdamS<float> cpu(R, C, cfg);
  sc::AdamS<float> gpu(R, C, cfg);
  auto d_w = sc::to_device(w_cpu);
  sc::DeviceBuffer<float> d_g(std::size_t(R * C));
  for (int t = 0; t < 8; ++t) {
    const Matrix<float> g = st::random_matrix<float>(R, C, 70 + std::uint64_t(t));
    d_g.upload(g.data(), std::size_t(g.size()));
    cpu.step(w_cpu, g);
    gpu.step(d_w.data(), d_g.data());
  }
  const Matrix<float> w_gpu = sc::to_host(d_w, R, C);
  const Matrix<float> du_gpu = w_gpu - w0, du_cpu = w_cpu - w0;
  EXPECT_LT(st::fro_rel_err(du_gpu, du_cpu), 1e-5);
  EXPECT_LT(st::max_abs_rel(du_gpu, du_cpu), 1e-5);
  std::vector<std::uint8_t> m = gpu.mask().to_host();
  for (Index k = 0; k < R * C; ++k) ASSERT_EQ(m[std::size_t(k)], cpu.mask().data()[k]);
}

}  // namespace
