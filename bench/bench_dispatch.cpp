// SPDX-License-Identifier: Apache-2.0
// Runtime ISA dispatch, as a user gets it: this binary is compiled WITHOUT -march (bench/
// CMakeLists.txt), so every kernel below runs on the route active_isa() picks from CPUID. Each
// kernel runs on the scalar route (the baseline: what a plain build ran before runtime dispatch)
// and on the AVX2 and AVX-512 routes the CPU has, in the same process; main() prints the speed-up
// of each route over scalar. The -march=native build of the same calls is the comparison point
// for "dispatch reaches native speed" (bench/RESULTS.md records both).
#include <sparsenm/core.hpp>
#include <sparsenm/kernels.hpp>
#include <sparsenm/mask.hpp>
#include <sparsenm/optim.hpp>
#include <sparsenm/sampling.hpp>
#include <sparsenm/topology.hpp>

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.hpp"

using namespace sparsenm;
using sparsenm_bench::random_matrix;
using sparsenm_bench::RatioReporter;

namespace {

const char* route_name(SimdIsa isa) { return to_string(isa); }

// Runs `body` under the route `isa` (skipped when the CPU lacks it); `setup` builds inputs once.
void run_on(benchmark::State& st, SimdIsa isa, const std::function<void()>& body) {
  if (static_cast<int>(isa) > static_cast<int>(runtime_isa())) {
    st.SkipWithError("CPU lacks this ISA");
    return;
  }
  const SimdIsa saved = active_isa();
  set_active_isa(isa);
  for (auto _ : st) body();
  set_active_isa(saved);
}

struct Inputs {
  Matrix<float> w = random_matrix(1024, 1024, 1), x = random_matrix(256, 1024, 2),
                dy = random_matrix(256, 1024, 3), big = random_matrix(2048, 4096, 4),
                gv = random_matrix(1024, 256, 6);
  Mask mask = project_rowwise(w.cwiseAbs(), NM{1, 4});
  NMCompressed<float> c = compress(w, mask, NM{1, 4});
};
Inputs& inputs() {
  static Inputs in;
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, std::string>> ratios;  // (route name, scalar name)
  const std::vector<std::pair<std::string, std::function<std::function<void()>()>>> kernels = {
      {"spmm/1:4/1024x1024/T256",
       [] {
         return [] {
           Matrix<float> y = spmm(inputs().x, inputs().c);
           benchmark::DoNotOptimize(y.data());
         };
       }},
      {"spmm_transposed/1:4/1024x1024/T256",
       [] {
         return [] {
           Matrix<float> y = spmm_transposed(inputs().dy, inputs().c);
           benchmark::DoNotOptimize(y.data());
         };
       }},
      {"sddmm/1:4/1024x1024/T256",
       [] {
         return [] {
           Matrix<float> y = sddmm(inputs().dy, inputs().x, inputs().c);
           benchmark::DoNotOptimize(y.data());
         };
       }},
      {"project_rowwise/2:4/2048x4096",
       [] {
         return [] {
           Mask m = project_rowwise(inputs().big, NM{2, 4});
           benchmark::DoNotOptimize(m.data());
         };
       }},
      {"project_transposable/2:4/2048x4096",
       [] {
         return [] {
           Mask m = project_transposable(inputs().big, NM{2, 4});
           benchmark::DoNotOptimize(m.data());
         };
       }},
      {"frechet_scores/2048x4096",
       [] {
         return [] {
           Matrix<float> s = frechet_scores(inputs().big, 0.5f, Philox(5));
           benchmark::DoNotOptimize(s.data());
         };
       }},
      {"ch2_l3n_scores/1024x1024",
       [] {
         return [] {
           Matrix<float> s = ch2_l3n_scores<float>(inputs().mask);
           benchmark::DoNotOptimize(s.data());
         };
       }},
      {"adam_step/compressed/1:4/1024x1024",
       [] {
         auto adam = std::make_shared<Adam<float>>(inputs().c);
         auto c = std::make_shared<NMCompressed<float>>(inputs().c);
         return [adam, c] { adam->step(*c, inputs().gv); };
       }},
      // Scalar route: OpenBLAS ?syrk/?symm (this target links sparsenm::blas); AVX-512: the
      // library's packed GEMM with half products of symmetric factors.
      {"newton_schulz/1024x1024",
       [] {
         return [] {
           Matrix<float> o = newton_schulz(inputs().w);
           benchmark::DoNotOptimize(o.data());
         };
       }},
      {"tans_step/compressed/1:4/1024x1024",
       [] {
         auto tans = std::make_shared<Tans<float>>(inputs().c);
         auto c = std::make_shared<NMCompressed<float>>(inputs().c);
         return [tans, c] { tans->step(*c, inputs().gv); };
       }},
  };
  for (const auto& k : kernels)
    for (SimdIsa isa : {SimdIsa::Scalar, SimdIsa::Avx2, SimdIsa::Avx512}) {
      const std::string name = k.first + "/" + route_name(isa);
      auto make = k.second;
      benchmark::RegisterBenchmark(name.c_str(),
                                   [=](benchmark::State& st) { run_on(st, isa, make()); })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
      if (isa != SimdIsa::Scalar) ratios.emplace_back(name, k.first + "/scalar");
    }
  benchmark::Initialize(&argc, argv);
  inputs();  // built here, outside every timed loop
  RatioReporter reporter;
  reporter.use_cpu = thread_count() == 1;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf(
      "\n%s\nspeed-up of each route over the scalar route of the same plain (no -march) "
      "binary (threads: OMP %d)\n",
      isa_report().c_str(), thread_count());
  for (const auto& r : ratios) {
    if (!reporter.times.count(r.first) || !reporter.times.count(r.second)) continue;
    std::printf("%-48s %7.2fx\n", r.first.c_str(),
                reporter.times[r.second] / reporter.times[r.first]);
  }
  benchmark::Shutdown();
  return 0;
}
