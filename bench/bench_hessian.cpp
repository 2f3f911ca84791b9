// SPDX-License-Identifier: Apache-2.0
// Hutchinson estimator overhead (issue 6): the cost of one HutchinsonDiagonal::update per probe,
// EXCLUDING the user's Hessian-vector product (the callable returns a precomputed matrix by
// reference, so it costs nothing), next to one pass over the same weights in the same binary:
//  * Copy:  dst = src (read n, write n; memcpy per chunk, same threads and chunking);
//  * Triad: a = b + s * c (read 2n, write n), the STREAM triad.
// Also the pieces: the Rademacher fill alone (AVX-512 Philox, 8 blocks per iteration) and the
// scalar reference fill (one Philox call per element), and the multi-probe path (P = 4 probes per
// update, reported per probe). Rates are GB/s of the float weight matrix (n * 4 bytes per
// iteration; per probe for the P = 4 case); counters report ratios to copy and triad measured in
// the same process. SoftMaskAnnealer::update (one mask update, Alg. 1 lines 8–12) is reported too.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstring>
#include <functional>
#include <string>

#include <sparsenm/hessian.hpp>

using namespace sparsenm;

namespace {

Matrix<float> filled(Index rows, Index cols, std::uint64_t seed) {
  Matrix<float> m(rows, cols);
  const Philox rng(seed);
  for (Index k = 0; k < m.size(); ++k) m.data()[k] = rng.uniform_float(std::uint64_t(k)) - 0.5f;
  return m;
}

// Best of a few repetitions of f, in wall time and in process CPU time (all threads). On a quiet
// machine the wall ratio is the figure; on a loaded shared machine the CPU ratio (work done) is
// the stable one, so both are reported.
struct Times {
  double wall, cpu;
};

double process_cpu_now() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

Times time_of(const std::function<void()>& f, int reps = 5) {
  f();  // warm-up (first touch, caches)
  Times best{1e30, 1e30};
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_now();
    f();
    best.cpu = std::min(best.cpu, process_cpu_now() - c0);
    best.wall = std::min(
        best.wall, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void parallel_copy(const float* src, float* dst, Index n) {
  parallel_for_chunks(n, detail::kHessianGrain, [&](Index b, Index e) {
    std::memcpy(dst + b, src + b, std::size_t(e - b) * sizeof(float));
  });
}

void parallel_triad(float* a, const float* b, const float* c, float s, Index n) {
  parallel_for_chunks(n, detail::kHessianGrain, [&](Index lo, Index hi) {
    for (Index i = lo; i < hi; ++i) a[i] = b[i] + s * c[i];
  });
}

struct Fixture {
  Index rows, cols;
  Matrix<float> hv, a, b, c;
  explicit Fixture(Index n)
      : rows(n),
        cols(n),
        hv(filled(n, n, 1)),
        a(filled(n, n, 2)),
        b(filled(n, n, 3)),
        c(filled(n, n, 4)) {}
  Times copy_s() {
    return time_of([&] { parallel_copy(b.data(), a.data(), a.size()); });
  }
  Times triad_s() {
    return time_of([&] { parallel_triad(a.data(), b.data(), c.data(), 0.5f, a.size()); });
  }
};

Fixture& fixture(Index n) {
  static Fixture f1024(1024);
  static Fixture f4096(4096);
  return n == 1024 ? f1024 : f4096;
}

void set_rate(benchmark::State& state, double bytes_per_iter) {
  state.counters["GB/s"] =
      benchmark::Counter(bytes_per_iter * double(state.iterations()), benchmark::Counter::kIsRate);
}

// The ratio counters: this kernel's best time over copy's and triad's, same process; "_cpu" are
// the same ratios in process CPU time.
void set_ratios(benchmark::State& state, Fixture& f, Times kernel) {
  const Times c = f.copy_s(), t = f.triad_s();
  state.counters["x_copy"] = kernel.wall / c.wall;
  state.counters["x_triad"] = kernel.wall / t.wall;
  state.counters["x_copy_cpu"] = kernel.cpu / c.cpu;
  state.counters["x_triad_cpu"] = kernel.cpu / t.cpu;
}

Times per_probe(Times t, double probes) { return Times{t.wall / probes, t.cpu / probes}; }

void BM_Copy(benchmark::State& state) {
  Fixture& f = fixture(state.range(0));
  for (auto _ : state) {
    parallel_copy(f.b.data(), f.a.data(), f.a.size());
    benchmark::DoNotOptimize(f.a.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, double(f.a.size()) * sizeof(float));
}

void BM_Triad(benchmark::State& state) {
  Fixture& f = fixture(state.range(0));
  for (auto _ : state) {
    parallel_triad(f.a.data(), f.b.data(), f.c.data(), 0.5f, f.a.size());
    benchmark::DoNotOptimize(f.a.data());
    benchmark::ClobberMemory();
  }
  set_rate(state, double(f.a.size()) * sizeof(float));
}

// One update with one probe; the HVP is free (a reference to a precomputed matrix).
void BM_HutchinsonUpdatePerProbe(benchmark::State& state) {
  Fixture& f = fixture(state.range(0));
  HutchinsonDiagonal<float> est(f.rows, f.cols, 0.99);
  const Matrix<float>& hv = f.hv;
  auto hvp = [&](const Matrix<float>&) -> const Matrix<float>& { return hv; };
  const Philox rng(7);
  for (auto _ : state) {
    est.update(hvp, rng);
    benchmark::DoNotOptimize(est.diagonal().data());
  }
  set_rate(state, double(f.a.size()) * sizeof(float));
  HutchinsonDiagonal<float> probe(f.rows, f.cols, 0.99);
  set_ratios(state, f, time_of([&] { probe.update(hvp, rng); }));
}

// P = 4 probes per update; time and rate per probe.
void BM_HutchinsonUpdate4ProbesPerProbe(benchmark::State& state) {
  Fixture& f = fixture(state.range(0));
  HutchinsonDiagonal<float> est(f.rows, f.cols, 0.99);
  const Matrix<float>& hv = f.hv;
  auto hvp = [&](const Matrix<float>&) -> const Matrix<float>& { return hv; };
  const Philox rng(7);
  for (auto _ : state) {
    est.update(hvp, rng, 4);
    benchmark::DoNotOptimize(est.diagonal().data());
  }
  set_rate(state, 4.0 * double(f.a.size()) * sizeof(float));
  HutchinsonDiagonal<float> probe(f.rows, f.cols, 0.99);
  set_ratios(state, f, per_probe(time_of([&] { probe.update(hvp, rng, 4); }), 4.0));
}

// The Rademacher fill alone (what the estimator does before calling the HVP).
void BM_RademacherFill(benchmark::State& state) {
  Fixture& f = fixture(state.range(0));
  Matrix<float> v(f.rows, f.cols);
  const Philox rng(9);
  long k = 0;
  for (auto _ : state) {
    HutchinsonDiagonal<float>::rademacher_probe(rng, k++, v);
    benchmark::DoNotOptimize(v.data());
  }
  set_rate(state, double(f.a.size()) * sizeof(float));
  set_ratios(state, f, time_of([&] { HutchinsonDiagonal<float>::rademacher_probe(rng, k++, v); }));
}

// The scalar reference fill (Philox::rademacher per element), same threads and chunking.
void BM_RademacherFillScalarReference(benchmark::State& state) {
  Fixture& f = fixture(state.range(0));
  Matrix<float> v(f.rows, f.cols);
  const Philox rng(9);
  auto run = [&] {
    float* out = v.data();
    parallel_for_chunks(v.size(), detail::kHessianGrain,
                        [&](Index b, Index e) { detail::scalar::fill_rademacher(rng, out, b, e); });
  };
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(v.data());
  }
  set_rate(state, double(f.a.size()) * sizeof(float));
  set_ratios(state, f, time_of(run, 2));
}

// One SparseForge mask update (Alg. 1 lines 8–12, row-wise 2:4) from precomputed scores.
void BM_SoftMaskUpdate(benchmark::State& state) {
  Fixture& f = fixture(state.range(0));
  SoftMaskAnnealer<float> ann(f.rows, f.cols);
  const Matrix<float> s = f.b.cwiseAbs();
  long step = 10;
  for (auto _ : state) {
    ann.update(s, step);
    step = step >= 1400 ? 10 : step + 10;
    benchmark::DoNotOptimize(ann.mask().data());
  }
  set_rate(state, double(f.a.size()) * sizeof(float));
  SoftMaskAnnealer<float> probe(f.rows, f.cols);
  set_ratios(state, f, time_of([&] { probe.update(s, 600); }, 3));
}

// Context: one exact HVP of a 1024 x 1024 (in x out) softmax-CE linear layer on a batch of 256
// (two GEMMs plus the softmax Jacobian), i.e. the product the estimator's overhead sits next to.
void BM_LinearSoftmaxCeHvpContext(benchmark::State& state) {
  Fixture& f = fixture(state.range(0));
  const Matrix<float> x = filled(256, f.cols, 11);
  const LinearSoftmaxCeHvp<float> hvp(x, f.b);
  Matrix<float> out;
  for (auto _ : state) {
    out = hvp(f.c);
    benchmark::DoNotOptimize(out.data());
  }
  set_rate(state, double(f.a.size()) * sizeof(float));
  set_ratios(state, f, time_of([&] { out = hvp(f.c); }, 3));
}

}  // namespace

BENCHMARK(BM_Copy)->Arg(1024)->Arg(4096)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Triad)->Arg(1024)->Arg(4096)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_HutchinsonUpdatePerProbe)
    ->Arg(1024)
    ->Arg(4096)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_HutchinsonUpdate4ProbesPerProbe)
    ->Arg(1024)
    ->Arg(4096)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RademacherFill)->Arg(1024)->Arg(4096)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RademacherFillScalarReference)
    ->Arg(1024)
    ->Arg(4096)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LinearSoftmaxCeHvpContext)->Arg(1024)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SoftMaskUpdate)->Arg(1024)->Arg(4096)->UseRealTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
