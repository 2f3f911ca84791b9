// SPDX-License-Identifier: Apache-2.0
// Soft-sampling benchmarks (issue 3) on a 4096 x 4096 float weight: frechet_scores (vectorised
// Philox fill + AVX-512 log2/exp2 polynomials) and uniform_perturb, next to the plain per-element
// formula in double with per-counter Philox (the straightforward implementation), same binary, same
// threads. Rates are GB/s of the weight read; `speedup_vs_naive` = naive time / our time. Both
// sides write into a preallocated result (the `_into` forms): a fresh 64 MiB result per call is
// mapped anew by glibc and its page faults cost more than the kernel in a VM (bench/RESULTS.md).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <functional>

#include <sparsenm/sampling.hpp>

using namespace sparsenm;

namespace {

constexpr Index kN = 4096;

const Matrix<float>& weight() {
  static const Matrix<float> w = (uniform_matrix<float>(kN, kN, Philox(7)).array() - 0.5f).matrix();
  return w;
}

double time_of(const std::function<void()>& f, int reps = 2) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void naive_frechet(const Matrix<float>& w, float t, const Philox& rng, Matrix<float>& out) {
  const Index cols = w.cols();
  parallel_for(0, w.rows(), [&](Index i) {
    for (Index j = 0; j < cols; ++j) {
      const double a = std::abs(double(w(i, j)));
      const double u = rng.uniform(std::uint64_t(i * cols + j));
      out(i, j) = a == 0 ? 0.0f : float(a * std::pow(-std::log(u), -1.0 / double(t)));
    }
  });
}

void naive_perturb(const Matrix<float>& s, const Philox& rng, Matrix<float>& out) {
  const Index cols = s.cols();
  parallel_for(0, s.rows(), [&](Index i) {
    for (Index j = 0; j < cols; ++j)
      out(i, j) = float(double(s(i, j)) * rng.uniform(std::uint64_t(i * cols + j)));
  });
}

void run(benchmark::State& state, const std::function<void()>& f,
         const std::function<void()>& naive) {
  f();
  for (auto _ : state) {
    f();
    benchmark::ClobberMemory();
  }
  state.counters["weight_read"] =
      benchmark::Counter(double(kN) * kN * 4 * double(state.iterations()),
                         benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
  naive();
  state.counters["speedup_vs_naive"] = time_of(naive) / time_of(f);
}

void BM_FrechetScores(benchmark::State& state) {
  Matrix<float> out(kN, kN), ref(kN, kN);
  const Philox rng(3);
  run(
      state, [&] { frechet_scores_into(weight(), 2.0f, rng, out); },
      [&] { naive_frechet(weight(), 2.0f, rng, ref); });
}

void BM_UniformPerturb(benchmark::State& state) {
  Matrix<float> out(kN, kN), ref(kN, kN);
  const Philox rng(3);
  run(
      state, [&] { uniform_perturb_into(weight(), rng, out); },
      [&] { naive_perturb(weight(), rng, ref); });
}

}  // namespace

BENCHMARK(BM_FrechetScores)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_UniformPerturb)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
