// SPDX-License-Identifier: Apache-2.0
// Mask projection benchmarks (issue 3) on a 4096 x 4096 float score matrix, all in one binary:
//  * Copy: a plain parallel copy of the same 64 MiB (the bandwidth yardstick);
//  * row-wise 2:4 and 1:4 projection (project_rowwise_into), and 2:8 / 4:8 (informational);
//  * transposable 4x4 selection, 2:4 and 1:4 (project_transposable_into, meet-in-the-middle);
//  * BruteForce90: the chts24 App. E formulation, every tile dotted with all 90 patterns + argmax
//    (a straightforward loop the compiler vectorises, same threads);
//  * BruteForce90Sgemm: the same as one (tiles x 16) x (16 x 90) OpenBLAS sgemm per chunk + argmax
//    (apex-ASP style), serial over chunks (OpenBLAS threads inside).
// Rates are GB/s of the score matrix read (64 MiB per iteration); counters give the ratios to copy
// and to brute force. Targets: transposable >= 70% of copy and >= 20x brute force; row-wise >= 70%.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <string>

#include <sparsenm/mask.hpp>

using namespace sparsenm;

namespace {

constexpr Index kN = 4096;

const Matrix<float>& scores() {
  static const Matrix<float> s = uniform_matrix<float>(kN, kN, Philox(2024));
  return s;
}

double bytes() { return double(kN) * double(kN) * sizeof(float); }

// Best time of a few repetitions, for the ratio counters (measured in the same process).
double time_of(const std::function<void()>& f, int reps = 3) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void parallel_copy(const float* src, float* dst, Index n) {
  parallel_for_chunks(n, Index(1) << 18, [&](Index b, Index e) {
    std::memcpy(dst + b, src + b, std::size_t(e - b) * sizeof(float));
  });
}

/// chts24 App. E: score every 4x4 tile against every pattern of the library, keep the argmax.
void brute_force_90(const Matrix<float>& s, Mask& out) {
  const auto& lib = TransposablePatterns<4, 2>::all();
  const int np = int(lib.size());
  static float pat[90][16];
  for (int p = 0; p < np; ++p)
    for (int k = 0; k < 16; ++k) pat[p][k] = float((lib[std::size_t(p)] >> k) & 1u);
  const Index bands = s.rows() / 4, tiles = s.cols() / 4, cols = s.cols();
  parallel_for(0, bands, [&](Index b) {
    for (Index t = 0; t < tiles; ++t) {
      float x[16];
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c) x[r * 4 + c] = s(4 * b + r, 4 * t + c);
      float best = -1e30f;
      int arg = 0;
      for (int p = 0; p < np; ++p) {
        float acc = 0;
        for (int k = 0; k < 16; ++k) acc += x[k] * pat[p][k];
        if (acc > best) {
          best = acc;
          arg = p;
        }
      }
      const std::uint64_t bits = lib[std::size_t(arg)];
      for (int r = 0; r < 4; ++r)
        for (int c = 0; c < 4; ++c)
          out.data()[(4 * b + r) * cols + 4 * t + c] = std::uint8_t((bits >> (r * 4 + c)) & 1u);
    }
  });
}

/// apex-ASP style: gather tiles into rows of 16, one sgemm against the 16 x 90 pattern matrix per
/// chunk of tiles, argmax per row.
void brute_force_90_sgemm(const Matrix<float>& s, Mask& out) {
  const auto& lib = TransposablePatterns<4, 2>::all();
  static Matrix<float> pat(16, 90);
  for (int p = 0; p < 90; ++p)
    for (int k = 0; k < 16; ++k) pat(k, p) = float((lib[std::size_t(p)] >> k) & 1u);
  const Index bands = s.rows() / 4, tiles = s.cols() / 4, cols = s.cols();
  const Index chunk_bands = 64;
  static Matrix<float> a, c;
  a.resize(chunk_bands * tiles, 16);
  c.resize(chunk_bands * tiles, 90);
  for (Index b0 = 0; b0 < bands; b0 += chunk_bands) {
    parallel_for(0, chunk_bands, [&](Index bb) {
      for (Index t = 0; t < tiles; ++t)
        for (int r = 0; r < 4; ++r)
          for (int q = 0; q < 4; ++q)
            a(bb * tiles + t, r * 4 + q) = s(4 * (b0 + bb) + r, 4 * t + q);
    });
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(a.rows()), 90, 16, 1.0f, a.data(),
                16, pat.data(), 90, 0.0f, c.data(), 90);
    parallel_for(0, chunk_bands, [&](Index bb) {
      for (Index t = 0; t < tiles; ++t) {
        const float* row = c.data() + (bb * tiles + t) * 90;
        int arg = 0;
        for (int p = 1; p < 90; ++p)
          if (row[p] > row[arg]) arg = p;
        const std::uint64_t bits = lib[std::size_t(arg)];
        for (int r = 0; r < 4; ++r)
          for (int q = 0; q < 4; ++q)
            out.data()[(4 * (b0 + bb) + r) * cols + 4 * t + q] =
                std::uint8_t((bits >> (r * 4 + q)) & 1u);
      }
    });
  }
}

double copy_time() {
  static const double t = [] {
    Matrix<float> dst(kN, kN);
    parallel_copy(scores().data(), dst.data(), dst.size());
    return time_of([&] { parallel_copy(scores().data(), dst.data(), dst.size()); }, 5);
  }();
  return t;
}

double brute_time() {
  static const double t = [] {
    Mask out(kN, kN);
    brute_force_90(scores(), out);
    return time_of([&] { brute_force_90(scores(), out); }, 2);
  }();
  return t;
}

double brute_sgemm_time() {
  static const double t = [] {
    Mask out(kN, kN);
    brute_force_90_sgemm(scores(), out);
    return time_of([&] { brute_force_90_sgemm(scores(), out); }, 2);
  }();
  return t;
}

void report(benchmark::State& state, const std::function<void()>& f, bool vs_brute) {
  f();  // first touch of the output pages stays out of the timing
  for (auto _ : state) {
    f();
    benchmark::ClobberMemory();
  }
  state.counters["score_read"] =
      benchmark::Counter(bytes() * double(state.iterations()), benchmark::Counter::kIsRate,
                         benchmark::Counter::kIs1024);
  const double mine = time_of(f);
  state.counters["frac_of_copy"] = copy_time() / mine;
  if (vs_brute) {
    state.counters["speedup_vs_brute90"] = brute_time() / mine;
    state.counters["speedup_vs_brute90_sgemm"] = brute_sgemm_time() / mine;
  }
}

void BM_Copy(benchmark::State& state) {
  Matrix<float> dst(kN, kN);
  report(
      state, [&] { parallel_copy(scores().data(), dst.data(), dst.size()); }, false);
}

void BM_Rowwise(benchmark::State& state) {
  const NM nm{int(state.range(0)), 4};
  Mask out(kN, kN);
  report(
      state, [&] { project_rowwise_into(scores(), nm, out); }, false);
  state.SetLabel(nm.n == 2 ? "2:4" : "1:4");
}

void BM_Rowwise8(benchmark::State& state) {
  const NM nm{int(state.range(0)), 8};
  Mask out(kN, kN);
  report(
      state, [&] { project_rowwise_into(scores(), nm, out); }, false);
  state.SetLabel(nm.n == 2 ? "2:8" : "4:8");
}

void BM_Transposable(benchmark::State& state) {
  const NM nm{int(state.range(0)), 4};
  Mask out(kN, kN);
  report(
      state, [&] { project_transposable_into(scores(), nm, out); }, true);
  state.SetLabel(nm.n == 2 ? "2:4" : (nm.n == 1 ? "1:4" : "3:4"));
}

void BM_TransposableAlloc(benchmark::State& state) {
  report(
      state,
      [&] {
        benchmark::DoNotOptimize(project_transposable(scores(), NM{2, 4}));
      },
      true);
  state.SetLabel("2:4, returns a new Mask");
}

void BM_BruteForce90(benchmark::State& state) {
  Mask out(kN, kN);
  report(
      state, [&] { brute_force_90(scores(), out); }, false);
}

void BM_BruteForce90Sgemm(benchmark::State& state) {
  Mask out(kN, kN);
  report(
      state, [&] { brute_force_90_sgemm(scores(), out); }, false);
}

void BM_Transposable84Exact(benchmark::State& state) {
  // General-m exact b-matching (8:4) on a 1024 x 1024 slice: informational.
  const Matrix<float> s = scores().topLeftCorner(1024, 1024);
  Mask out(1024, 1024);
  for (auto _ : state) project_transposable_into(s, NM{4, 8}, out);
  state.counters["score_read"] =
      benchmark::Counter(1024.0 * 1024 * 4 * double(state.iterations()),
                         benchmark::Counter::kIsRate, benchmark::Counter::kIs1024);
}

}  // namespace

BENCHMARK(BM_Copy)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Rowwise)->Arg(2)->Arg(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Rowwise8)->Arg(2)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Transposable)->Arg(2)->Arg(1)->Arg(3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TransposableAlloc)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BruteForce90)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BruteForce90Sgemm)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Transposable84Exact)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
