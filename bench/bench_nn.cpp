// nn layers next to the dense baseline, same binary: a SparseLinear training step (forward +
// backward: dX and the active-entry dW, CHTs24 App. J) against the dense layer step done with three
// OpenBLAS sgemms, and the CoMoLoRA branch (r = 7, h = 2; chtsnm Sec. 3.3) as an overhead on top of
// it. Shapes: LLaMA projections with 2048 tokens. A ratio table is printed at the end.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <sparsenm/nn.hpp>

#include "bench_util.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

using sparsenm_bench::random_matrix;

using sparsenm::Index;
using sparsenm::Layout;
using sparsenm::Matrix;
using sparsenm::NM;

void BM_DenseStep(benchmark::State& state, Index out, Index in, Index tokens) {
  const Matrix<float> w = random_matrix(out, in, 1), x = random_matrix(tokens, in, 2),
                      dy = random_matrix(tokens, out, 3);
  Matrix<float> y(tokens, out), dx(tokens, in), dw(out, in);
  const int T = int(tokens), K = int(in), O = int(out);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, O, K, 1.f, x.data(), K, w.data(), K,
                0.f, y.data(), O);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, K, O, 1.f, dy.data(), O, w.data(), K,
                0.f, dx.data(), K);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, K, T, 1.f, dy.data(), O, x.data(), K,
                0.f, dw.data(), K);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(6.0 * T * O * K * state.iterations() * 1e-9, benchmark::Counter::kIsRate);
}

void BM_SparseStep(benchmark::State& state, Index out, Index in, Index tokens, NM nm, Layout layout,
                   bool lora) {
  sparsenm::SparseLinear<float> layer(in, out, nm, layout, sparsenm::Philox(5));
  sparsenm::CoMoLoRA<float> branch(in, out);
  branch.B() = random_matrix(out, 7, 9);
  const Matrix<float> x = random_matrix(tokens, in, 2), dy = random_matrix(tokens, out, 3);
  for (auto _ : state) {
    Matrix<float> y = layer.forward(x);
    if (lora) y += branch.forward(x);
    Matrix<float> dx = layer.backward(dy);
    if (lora) dx += branch.backward(dy);
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dx.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(6.0 * tokens * out * in * nm.n / nm.m * state.iterations() * 1e-9,
                         benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  struct Shape {
    Index out, in;
  };
  std::vector<std::pair<std::string, std::string>> ratios;
  const Index tokens = 2048;
  for (const Shape s : {Shape{1280, 512}, Shape{2048, 2048}, Shape{4096, 4096}}) {
    const std::string sh = std::to_string(s.out) + "x" + std::to_string(s.in) + "/T2048";
    const std::string dn = "dense_layer_step/" + sh;
    benchmark::RegisterBenchmark(
        dn.c_str(), [=](benchmark::State& st) { BM_DenseStep(st, s.out, s.in, tokens); })
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    for (const NM nm : {NM{1, 4}, NM{2, 4}})
      for (const bool lora : {false, true}) {
        const std::string sn =
            std::string(lora ? "sparse_linear+comolora_step/" : "sparse_linear_step/") +
            std::to_string(nm.n) + ":4t/" + sh;
        benchmark::RegisterBenchmark(sn.c_str(),
                                     [=](benchmark::State& st) {
                                       BM_SparseStep(st, s.out, s.in, tokens, nm,
                                                     Layout::Transposable, lora);
                                     })
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
        ratios.emplace_back(sn, dn);
      }
  }
  benchmark::Initialize(&argc, argv);
  sparsenm_bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\nspeed-up = dense layer step time / sparse layer step time (OMP %d, real time)\n",
              sparsenm::thread_count());
  for (const auto& r : ratios)
    if (reporter.times.count(r.first) && reporter.times.count(r.second))
      std::printf("%-52s %7.2fx\n", r.first.c_str(),
                  reporter.times[r.second] / reporter.times[r.first]);
  benchmark::Shutdown();
  return 0;
}
