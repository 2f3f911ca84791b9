// Machine bounds behind the kernels' figures (bench/RESULTS.md, "kernels"): stand-alone loops of
// the instruction patterns a row-wise N:M SpMM can use, all data in L1, one thread, reported as
// zmm FMAs per second (counter `G_fma_per_s`).
//  * RegisterFma: independent FMA chains fed from registers (the core's FMA peak, what a dense
//    GEMM micro-kernel approaches by reusing both operands from registers).
//  * LoadFed (A): per nonzero, broadcast the weight and 8 FMAs whose activation vector is a load
//    (tokens in lanes; each row's nonzeros sit in its own columns, so no reuse from registers).
//  * PermuteFed (B): 16 output rows in lanes, an activation quad broadcast per token and group,
//    one vpermps by the rows' in-group indices per FMA.
//  * Mixed<a, b>: A and B interleaved in one loop (a x 16 FMAs of A per b x 16 FMAs of B).
//  * CsrRows<variable>: the CSR loop of row-wise W^T with per-block row lengths ~ Binomial(64,
//    1/4), against equal lengths (16): the cost of the data-dependent loop exits.
// AVX-512 builds only (others report an error for every benchmark).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <sparsenm/core/simd.hpp>

namespace {

#if SPARSENM_HAS_AVX512
struct Data {
  alignas(64) float xt[64][128];  // A: X^T tile, 64 features x 128 tokens
  alignas(64) float xr[16][64];   // B: 16 tokens x 64 features
  alignas(64) int idx_a[4096];    // A: feature of each nonzero
  alignas(64) float w_a[4096];
  alignas(64) int idx_b[16][2][16];  // B: per group, slot, row lane: in-group index 0..3
  alignas(64) float w_b[16][2][16];
  Data() {
    std::mt19937 g(1);
    for (auto& row : xt)
      for (float& v : row) v = float(g() % 1000) * 1e-6f;
    for (auto& row : xr)
      for (float& v : row) v = float(g() % 1000) * 1e-6f;
    for (int e = 0; e < 4096; ++e) {
      idx_a[e] = int(g() % 64);
      w_a[e] = 1e-3f;
    }
    for (auto& grp : idx_b)
      for (auto& slot : grp)
        for (int& v : slot) v = int(g() % 4);
    for (auto& grp : w_b)
      for (auto& slot : grp)
        for (float& v : slot) v = 1e-3f;
  }
};

Data& data() {
  static Data d;
  return d;
}

void report(benchmark::State& state, double fmas) {
  state.counters["G_fma"] =
      benchmark::Counter(fmas * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}

void BM_RegisterFma(benchmark::State& state) {
  __m512 acc[12];
  for (int k = 0; k < 12; ++k) acc[k] = _mm512_set1_ps(float(k));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-6f);
  for (auto _ : state) {
    for (int rep = 0; rep < 4096; ++rep)
      for (int k = 0; k < 12; ++k) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
    for (int k = 0; k < 12; ++k) benchmark::DoNotOptimize(acc[k]);
  }
  report(state, 4096.0 * 12);
}

/// a steps of A (16 FMAs each) and b steps of B (16 FMAs each) per inner step, 1024 inner steps.
template <int NA, int NB>
void BM_Mixed(benchmark::State& state) {
  Data& d = data();
  __m512 a[2][8], b[8];
  for (auto& r : a)
    for (auto& v : r) v = _mm512_setzero_ps();
  for (auto& v : b) v = _mm512_setzero_ps();
  for (auto _ : state) {
    for (int step = 0; step < 1024; ++step) {
      for (int q = 0; q < NA; ++q) {
        const int e = ((step * NA + q) * 2) & 4095;
        const __m512 w0 = _mm512_set1_ps(d.w_a[e]), w1 = _mm512_set1_ps(d.w_a[e + 1]);
        const float* x0 = d.xt[d.idx_a[e]];
        const float* x1 = d.xt[d.idx_a[e + 1]];
        for (int v = 0; v < 8; ++v) {
          a[0][v] = _mm512_fmadd_ps(w0, _mm512_load_ps(x0 + 16 * v), a[0][v]);
          a[1][v] = _mm512_fmadd_ps(w1, _mm512_load_ps(x1 + 16 * v), a[1][v]);
        }
      }
      for (int q = 0; q < NB; ++q) {
        const int g = (step * NB + q) & 15;  // 16 groups of 4 features
        const __m512i i0 = _mm512_load_si512(d.idx_b[g][0]), i1 = _mm512_load_si512(d.idx_b[g][1]);
        const __m512 v0 = _mm512_load_ps(d.w_b[g][0]), v1 = _mm512_load_ps(d.w_b[g][1]);
        for (int t = 0; t < 8; ++t) {
          const __m512 xg = _mm512_broadcast_f32x4(_mm_load_ps(&d.xr[t][4 * g]));
          b[t] = _mm512_fmadd_ps(v0, _mm512_permutexvar_ps(i0, xg), b[t]);
          b[t] = _mm512_fmadd_ps(v1, _mm512_permutexvar_ps(i1, xg), b[t]);
        }
      }
    }
    for (auto& r : a)
      for (auto& v : r) benchmark::DoNotOptimize(v);
    for (auto& v : b) benchmark::DoNotOptimize(v);
  }
  report(state, 1024.0 * 16.0 * (NA + NB));
}

template <bool Variable>
void BM_CsrRows(benchmark::State& state) {
  Data& d = data();
  constexpr int kRows = 256, kBlocks = 64;
  std::mt19937 g(2);
  std::vector<int> start(kRows * kBlocks + 1, 0), col;
  std::vector<float> val;
  for (int k = 0; k < kRows * kBlocks; ++k) {
    int cnt = 16;
    if (Variable) {
      cnt = 0;
      for (int o = 0; o < 64; ++o) cnt += (g() % 4) == 0;
    }
    for (int q = 0; q < cnt; ++q) {
      col.push_back(int(g() % 64) * 128);
      val.push_back(1e-3f);
    }
    start[static_cast<std::size_t>(k + 1)] = static_cast<int>(col.size());
  }
  std::vector<float> buf(kRows * 128, 0.0f);
  const float* xt = &d.xt[0][0];
  for (auto _ : state) {
    for (int b = 0; b < kBlocks; ++b)
      for (int r = 0; r < kRows; ++r) {
        __m512 acc[8];
        float* br = buf.data() + r * 128;
        for (int c = 0; c < 8; ++c) acc[c] = _mm512_loadu_ps(br + 16 * c);
        const int k = b * kRows + r;
        for (int e = start[std::size_t(k)]; e < start[std::size_t(k + 1)]; ++e) {
          const __m512 v = _mm512_set1_ps(val[std::size_t(e)]);
          const float* x = xt + col[std::size_t(e)];
          for (int c = 0; c < 8; ++c)
            acc[c] = _mm512_fmadd_ps(v, _mm512_load_ps(x + 16 * c), acc[c]);
        }
        for (int c = 0; c < 8; ++c) _mm512_storeu_ps(br + 16 * c, acc[c]);
      }
    benchmark::DoNotOptimize(buf.data());
  }
  report(state, 8.0 * double(col.size()));
}
#else
void unsupported(benchmark::State& state) { state.SkipWithError("needs an AVX-512 build"); }
void BM_RegisterFma(benchmark::State& state) { unsupported(state); }
template <int NA, int NB>
void BM_Mixed(benchmark::State& state) {
  unsupported(state);
}
template <bool Variable>
void BM_CsrRows(benchmark::State& state) {
  unsupported(state);
}
#endif

}  // namespace

BENCHMARK(BM_RegisterFma);
BENCHMARK_TEMPLATE(BM_Mixed, 1, 0)->Name("LoadFed_A");
BENCHMARK_TEMPLATE(BM_Mixed, 0, 1)->Name("PermuteFed_B");
BENCHMARK_TEMPLATE(BM_Mixed, 2, 1)->Name("Mixed_A2_B1");
BENCHMARK_TEMPLATE(BM_Mixed, 1, 1)->Name("Mixed_A1_B1");
BENCHMARK_TEMPLATE(BM_Mixed, 3, 1)->Name("Mixed_A3_B1");
BENCHMARK_TEMPLATE(BM_Mixed, 1, 2)->Name("Mixed_A1_B2");
BENCHMARK_TEMPLATE(BM_CsrRows, true)->Name("CsrRows_variable_lengths");
BENCHMARK_TEMPLATE(BM_CsrRows, false)->Name("CsrRows_equal_lengths");

BENCHMARK_MAIN();
