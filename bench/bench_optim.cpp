// SPDX-License-Identifier: Apache-2.0
// Optimizers next to their baselines, in one binary (shapes: 1024x1024, 4096x1024, 4096x4096 fp32):
//  * Newton-Schulz (SYRK-based, sparsenm) vs a naive chain of three OpenBLAS sgemm per step on the
//    same (lower-dimensional) side, also fed by a Frobenius normalisation pass; counter "speedup"
//    = naive time / sparsenm time (target >= 1.35).
//  * TANS step time / Newton-Schulz time (target <= 1.1).
//  * The element-wise passes of TANS / AdamS / Adam as bytes per second next to a STREAM-like
//    triad measured here (counter "of_triad", target >= 0.70). Bytes are the array traffic each
//    pass needs (reads + writes, 4 B per float, 1 B per mask entry).
//  * TANS, Muon, AdamW and AdamS step times side by side.
// Run briefly: --benchmark_min_time=0.2 (Google Benchmark 1.7.1 takes a bare number).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <cmath>
#include <vector>

#include <sparsenm/optim.hpp>

#include "bench_util.hpp"

namespace {

using sparsenm_bench::random_matrix;

using sparsenm::Index;
using sparsenm::Mask;
using sparsenm::Matrix;
using Clock = std::chrono::steady_clock;

Mask nm_mask(Index r, Index c, std::uint64_t seed) {
  return sparsenm::random_rowwise(r, c, {2, 4}, sparsenm::Philox(seed));
}

// ---------------------------------------------------------------------------------------------
// Naive Newton-Schulz: three sgemm per step on the lower-dimensional side (row-major cblas).
struct NaiveNs {
  Index R, C, g;
  std::vector<float> x0, x1, a, a2;
  NaiveNs(Index r, Index c)
      : R(r),
        C(c),
        g(std::min(r, c)),
        x0(std::size_t(r * c)),
        x1(std::size_t(r * c)),
        a(std::size_t(g * g)),
        a2(std::size_t(g * g)) {}
  const float* run(const float* in, int steps) {
    double ss = 0;
    for (Index i = 0; i < R * C; ++i) ss += double(in[i]) * in[i];
    const float s = float(1.0 / (std::sqrt(ss) + 1e-7));
    for (Index i = 0; i < R * C; ++i) x0[std::size_t(i)] = s * in[i];
    float* x = x0.data();
    float* y = x1.data();
    const int r = int(R), c = int(C), n = int(g);
    for (int k = 0; k < steps; ++k) {
      const auto t = sparsenm::ns_coefficients(sparsenm::NsCoefficients::TansTableA4, k);
      if (R <= C)  // A = X X^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, r, c, 1.f, x, c, x, c, 0.f,
                    a.data(), n);
      else  // A = X^T X
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c, c, r, 1.f, x, c, x, c, 0.f,
                    a.data(), n);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, a.data(), n,
                  0.f, a2.data(), n);
      for (std::size_t i = 0; i < a.size(); ++i) a2[i] = float(t.b) * a[i] + float(t.c) * a2[i];
      for (Index i = 0; i < R * C; ++i) y[i] = float(t.a) * x[i];
      if (R <= C)  // X <- a X + B X
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, c, r, 1.f, a2.data(), n, x, c,
                    1.f, y, c);
      else  // X <- a X + X B
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, c, c, 1.f, x, c, a2.data(), n,
                    1.f, y, c);
      std::swap(x, y);
    }
    return x;
  }
};

double naive_flops(Index R, Index C, int steps) {
  const double g = double(std::min(R, C)), k = double(std::max(R, C));
  return steps * (4.0 * g * g * k + 2.0 * g * g * g);
}

// Timer of the ratio counters: wall clock by default; process CPU time when the environment sets
// SPARSENM_BENCH_CPU_TIME=1 (for single-threaded runs on a shared, oversubscribed machine, where
// wall time mostly measures the other tenants).
bool use_cpu_time() {
  static const bool v = [] {
    const char* e = std::getenv("SPARSENM_BENCH_CPU_TIME");
    return e && e[0] == '1';
  }();
  return v;
}
double now_seconds() {
  if (use_cpu_time()) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  }
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}
double seconds_since(double t0) { return now_seconds() - t0; }

/// Runs f back to back for 0.3 s: the steady state of one side of a comparison (its thread pool
/// running, its data in cache), see BM_NewtonSchulzVsNaive3Sgemm for why.
template <class F>
void settle(F&& f) {
  const auto until = Clock::now() + std::chrono::milliseconds(300);
  do f();
  while (Clock::now() < until);
}

// Both in the same iteration: counters report each time and the ratio. Each chain runs back to
// back for 0.3 s before its timed run (steady state, as in an optimizer step that runs
// Newton-Schulz for one layer after another). Why: the naive chain runs on OpenBLAS's pthread
// pool and ours on OpenMP; OpenBLAS's workers keep spinning for up to ~0.1 s after each call, and
// an OpenMP team started in that window shares the two cores with them (our 2-thread 1024^3 product
// took 15-38 ms instead of 6-8 ms right after an OpenBLAS call). The first run after the switch is
// reported too (`*_after_switch_ms`).
void BM_NewtonSchulzVsNaive3Sgemm(benchmark::State& state) {
  const Index R = state.range(0), C = state.range(1);
  const Matrix<float> x = random_matrix(R, C, 1);
  NaiveNs naive(R, C);
  sparsenm::NsWorkspace<float> ws;
  ws.resize(R, C);
  auto ours = [&] {
    // Public-API equivalent minus the input copy: norm pass + the iteration.
    std::vector<double> partial(std::size_t(sparsenm::detail::optim_chunk_count(x.size())));
    const double ss = sparsenm::detail::chunk_sum(
        x.size(), partial,
        [&](Index b, Index e) { return sparsenm::detail::sum_squares(x.data(), b, e); },
        false);  // serial, as newton_schulz() does (see newton_schulz.hpp)
    const float scale = float(1.0 / (std::sqrt(ss) + sparsenm::kNsNormEps));
    benchmark::DoNotOptimize(sparsenm::detail::newton_schulz_run(
        x.data(), R, C, scale, 5, sparsenm::NsCoefficients::TansTableA4, ws));
  };
  double t_naive = 0, t_ours = 0, t_naive_first = 0, t_ours_first = 0;
  auto run_naive = [&] { benchmark::DoNotOptimize(naive.run(x.data(), 5)); };
  // Times f's first run after the switch, settles, times one more.
  auto measure = [](auto&& f, double& first, double& steady) {
    double t0 = now_seconds();
    f();
    first += seconds_since(t0);
    settle(f);
    t0 = now_seconds();
    f();
    steady += seconds_since(t0);
  };
  for (auto _ : state) {
    measure(run_naive, t_naive_first, t_naive);
    measure(ours, t_ours_first, t_ours);
  }
  const double it = double(state.iterations());
  state.counters["naive_ms"] = 1e3 * t_naive / it;
  state.counters["sparsenm_ms"] = 1e3 * t_ours / it;
  state.counters["speedup"] = t_naive / t_ours;
  state.counters["naive_after_switch_ms"] = 1e3 * t_naive_first / it;
  state.counters["sparsenm_after_switch_ms"] = 1e3 * t_ours_first / it;
  state.counters["naive_GFLOPs"] = naive_flops(R, C, 5) * it / t_naive * 1e-9;
  state.counters["sparsenm_equiv_GFLOPs"] = naive_flops(R, C, 5) * it / t_ours * 1e-9;
}

// The packed GEMM under Newton-Schulz (kernels/detail/dense_gemm.hpp) next to OpenBLAS on the
// same n x n x n float problem: C = A B (sgemm) and the lower triangle of C = A^T A (ssyrk). Each
// side runs back to back for 0.3 s before its timed call, so neither pool is still spinning from
// the other side's calls (OpenBLAS's workers spin ~0.1 s after a call; a single warm-up call of a
// few ms does not cover that, see BM_NewtonSchulzVsNaive3Sgemm) and the caches hold its data.
void BM_PackedGemmVsOpenBlas(benchmark::State& state) {
  const int n = int(state.range(0));
  const bool syrk = state.range(1) != 0;
  const Matrix<float> a = random_matrix(n, n, 3), b = random_matrix(n, n, 4);
  Matrix<float> c(n, n);
  using sparsenm::detail::GemmRead;
  auto blas = [&] {
    if (syrk)
      cblas_ssyrk(CblasColMajor, CblasLower, CblasTrans, n, n, 1.f, a.data(), n, 0.f, c.data(), n);
    else
      cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n,
                  0.f, c.data(), n);
  };
  auto ours = [&] {
    if (syrk)
      sparsenm::detail::packed_gemm<float>(n, n, n, 1.f, {a.data(), n, GemmRead::Transposed},
                                           {a.data(), n, GemmRead::Plain}, c.data(), n, true);
    else
      sparsenm::detail::packed_gemm<float>(n, n, n, 1.f, {a.data(), n, GemmRead::Plain},
                                           {b.data(), n, GemmRead::Plain}, c.data(), n, false);
  };
  double t_blas = 0, t_ours = 0;
  for (auto _ : state) {
    settle(blas);
    double t0 = now_seconds();
    blas();
    t_blas += seconds_since(t0);
    settle(ours);
    t0 = now_seconds();
    ours();
    t_ours += seconds_since(t0);
    benchmark::DoNotOptimize(c.data());
  }
  const double it = double(state.iterations());
  const double flops = (syrk ? 1.0 : 2.0) * double(n) * n * n;  // useful flops
  state.counters["openblas_ms"] = 1e3 * t_blas / it;
  state.counters["packed_ms"] = 1e3 * t_ours / it;
  state.counters["openblas_GFLOPs"] = flops * it / t_blas * 1e-9;
  state.counters["packed_GFLOPs"] = flops * it / t_ours * 1e-9;
  state.counters["speedup"] = t_blas / t_ours;
}

// TANS step (gamma > 0, so Newton-Schulz runs) next to Newton-Schulz alone.
void BM_TansStepOverNewtonSchulz(benchmark::State& state) {
  const Index R = state.range(0), C = state.range(1);
  Matrix<float> W = random_matrix(R, C, 1);
  const Matrix<float> G = random_matrix(R, C, 2);
  const Mask M = nm_mask(R, C, 3);
  sparsenm::TansConfig cfg;
  cfg.ramp_steps = 0;  // gamma = gamma_NS from the first step: every step runs NS
  sparsenm::Tans<float> opt(R, C, cfg);
  sparsenm::NsWorkspace<float> ws;
  ws.resize(R, C);
  double t_tans = 0, t_ns = 0;
  for (auto _ : state) {
    double t0 = now_seconds();
    opt.step(W, G, M);
    t_tans += seconds_since(t0);
    t0 = now_seconds();
    benchmark::DoNotOptimize(sparsenm::detail::newton_schulz_run(
        G.data(), R, C, 1e-3f, 5, sparsenm::NsCoefficients::TansTableA4, ws));
    t_ns += seconds_since(t0);
  }
  const double it = double(state.iterations());
  state.counters["tans_ms"] = 1e3 * t_tans / it;
  state.counters["ns_ms"] = 1e3 * t_ns / it;
  state.counters["tans_over_ns"] = t_tans / t_ns;
}

// ---------------------------------------------------------------------------------------------
// STREAM-like triad a = b + s c on the same thread count and chunking as the optimizers.
void BM_StreamTriad(benchmark::State& state) {
  const Index n = state.range(0) * state.range(1);
  std::vector<float> a(std::size_t(n), 0.f), b(std::size_t(n), 1.f), c(std::size_t(n), 2.f);
  float* pa = a.data();
  const float* pb = b.data();
  const float* pc = c.data();
  for (auto _ : state) {
    sparsenm::detail::for_each_chunk(n, [&](Index lo, Index hi, Index) {
      for (Index i = lo; i < hi; ++i) pa[i] = pb[i] + 3.0f * pc[i];
    });
    benchmark::ClobberMemory();
  }
  state.counters["bytes_per_s"] = benchmark::Counter(12.0 * double(n) * double(state.iterations()),
                                                     benchmark::Counter::kIsRate);
}

double triad_rate(Index n) {
  std::vector<float> a(std::size_t(n), 0.f), b(std::size_t(n), 1.f), c(std::size_t(n), 2.f);
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now_seconds();
    sparsenm::detail::for_each_chunk(n, [&](Index lo, Index hi, Index) {
      for (Index i = lo; i < hi; ++i)
        a[std::size_t(i)] = b[std::size_t(i)] + 3.0f * c[std::size_t(i)];
    });
    benchmark::DoNotOptimize(a.data());
    best = std::min(best, seconds_since(t0));
  }
  return 12.0 * double(n) / best;
}

void report_bw(benchmark::State& state, double bytes_per_iter, Index n, double seconds) {
  const double it = double(state.iterations());
  const double rate = bytes_per_iter * it / seconds, triad = triad_rate(n);
  state.counters["GB_per_s"] = rate * 1e-9;
  state.counters["triad_GB_per_s"] = triad * 1e-9;
  state.counters["of_triad"] = rate / triad;
}

// The element-wise passes of a TANS step (everything except Newton-Schulz): pre-scan (g, M),
// pass 1 (g, M, V rw, P rw, U w), RMS pass (O, M), update pass (O, U, M, W rw): 52 B / entry.
void BM_TansElementwisePasses(benchmark::State& state) {
  const Index R = state.range(0), C = state.range(1), n = R * C;
  Matrix<float> W = random_matrix(R, C, 1), V = Matrix<float>::Zero(R, C), P = V, U = V;
  const Matrix<float> G = random_matrix(R, C, 2), O = random_matrix(R, C, 4);
  const Mask M = nm_mask(R, C, 3);
  sparsenm::detail::ChunkScratch sc;
  sc.resize(n);
  namespace d = sparsenm::detail;
  const double t0 = now_seconds();
  for (auto _ : state) {
    d::admit_gradient("bench", G.data(), M.data(), R, C, sparsenm::NonFinitePolicy::Throw, sc);
    const double ss = d::chunk_sum(n, sc.a, [&](Index b, Index e) {
      return d::tans_moments<true>(G.data(), M.data(), V.data(), P.data(), U.data(), b, e, 0.9f,
                                   0.999f, 0.1f, 0.001f, 1e-5f);
    });
    d::for_each_chunk(n, [&](Index b, Index e, Index c) {
      d::tans_o_sums(O.data(), M.data(), b, e, sc.a[std::size_t(c)], sc.b[std::size_t(c)]);
    });
    float* w = W.data();
    d::for_each_chunk(n, [&](Index b, Index e, Index) {
      d::tans_apply<true>(O.data(), U.data(), M.data(), w + b, b, e, 0.5f,
                          float(ss > 0 ? 1.0 : 0.0), 1.0f, 1e-6f);
    });
    benchmark::ClobberMemory();
  }
  report_bw(state, 52.0 * double(n), n, seconds_since(t0));
}

// A full AdamW step (dense): pre-scan (g) + fused pass (g, m rw, v rw, W rw): 32 B / entry.
void BM_AdamWStepBandwidth(benchmark::State& state) {
  const Index R = state.range(0), C = state.range(1);
  Matrix<float> W = random_matrix(R, C, 1);
  const Matrix<float> G = random_matrix(R, C, 2);
  sparsenm::AdamW<float> opt(R, C);
  const double t0 = now_seconds();
  for (auto _ : state) opt.step(W, G);
  report_bw(state, 32.0 * double(R * C), R * C, seconds_since(t0));
}

// A full masked Adam step: pre-scan (g, M) + fused pass (g, M, m rw, v rw, W rw): 34 B / entry.
void BM_MaskedAdamStepBandwidth(benchmark::State& state) {
  const Index R = state.range(0), C = state.range(1);
  Matrix<float> W = random_matrix(R, C, 1);
  const Matrix<float> G = random_matrix(R, C, 2);
  const Mask M = nm_mask(R, C, 3);
  sparsenm::Adam<float> opt(R, C);
  const double t0 = now_seconds();
  for (auto _ : state) opt.step(W, G, M);
  report_bw(state, 34.0 * double(R * C), R * C, seconds_since(t0));
}

// A full AdamS step (scaling on, mask recomputed every 10 steps and included in the time):
// pre-scan (g) + fused pass (g, M, mu rw, v rw, W rw): 33 B / entry counted.
void BM_AdamSStepBandwidth(benchmark::State& state) {
  const Index R = state.range(0), C = state.range(1);
  Matrix<float> W = random_matrix(R, C, 1);
  const Matrix<float> G = random_matrix(R, C, 2);
  sparsenm::AdamS<float> opt(R, C);
  opt.step(W, G);
  const double t0 = now_seconds();
  for (auto _ : state) opt.step(W, G);
  report_bw(state, 33.0 * double(R * C), R * C, seconds_since(t0));
}

// ---------------------------------------------------------------------------------------------
// Step times side by side.
void BM_StepTans(benchmark::State& state) {
  const Index R = state.range(0), C = state.range(1);
  Matrix<float> W = random_matrix(R, C, 1);
  const Matrix<float> G = random_matrix(R, C, 2);
  const Mask M = nm_mask(R, C, 3);
  sparsenm::TansConfig cfg;
  cfg.ramp_steps = 0;
  sparsenm::Tans<float> opt(R, C, cfg);
  for (auto _ : state) opt.step(W, G, M);
}
void BM_StepMuon(benchmark::State& state) {
  const Index R = state.range(0), C = state.range(1);
  Matrix<float> W = random_matrix(R, C, 1);
  const Matrix<float> G = random_matrix(R, C, 2);
  sparsenm::Muon<float> opt(R, C);
  for (auto _ : state) opt.step(W, G);
}
void BM_StepAdamW(benchmark::State& state) {
  const Index R = state.range(0), C = state.range(1);
  Matrix<float> W = random_matrix(R, C, 1);
  const Matrix<float> G = random_matrix(R, C, 2);
  sparsenm::AdamW<float> opt(R, C);
  for (auto _ : state) opt.step(W, G);
}
void BM_StepAdamS(benchmark::State& state) {
  const Index R = state.range(0), C = state.range(1);
  Matrix<float> W = random_matrix(R, C, 1);
  const Matrix<float> G = random_matrix(R, C, 2);
  sparsenm::AdamS<float> opt(R, C);
  for (auto _ : state) opt.step(W, G);
}

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({1024, 1024})->Args({4096, 1024})->Args({4096, 4096});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(BM_NewtonSchulzVsNaive3Sgemm)->Apply(shapes);
BENCHMARK(BM_PackedGemmVsOpenBlas)
    ->ArgNames({"n", "syrk"})
    ->Args({1024, 0})
    ->Args({1024, 1})
    ->Args({4096, 0})
    ->Args({4096, 1})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TansStepOverNewtonSchulz)->Apply(shapes);
BENCHMARK(BM_StreamTriad)->Apply(shapes);
BENCHMARK(BM_TansElementwisePasses)->Apply(shapes);
BENCHMARK(BM_AdamWStepBandwidth)->Apply(shapes);
BENCHMARK(BM_MaskedAdamStepBandwidth)->Apply(shapes);
BENCHMARK(BM_AdamSStepBandwidth)->Apply(shapes);
BENCHMARK(BM_StepTans)->Apply(shapes);
BENCHMARK(BM_StepMuon)->Apply(shapes);
BENCHMARK(BM_StepAdamW)->Apply(shapes);
BENCHMARK(BM_StepAdamS)->Apply(shapes);
BENCHMARK_MAIN();
