// Philox4x32-10 throughput next to std::mt19937 (the usual stateful baseline), same binary.
// Philox fills with the element index as counter (any thread count gives the same matrix), so it is
// also measured filling in parallel; mt19937 cannot do that without changing its output.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include <sparsenm/core.hpp>

namespace {
constexpr std::int64_t kCount = 1 << 22;

void BM_Mt19937Uniform(benchmark::State& state) {
  std::vector<float> out(kCount);
  std::mt19937 gen(42);
  std::uniform_real_distribution<float> dist(0.0f, 1.0f);
  for (auto _ : state) {
    for (auto& v : out) v = dist(gen);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["values/s"] =
      benchmark::Counter(double(kCount) * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_PhiloxUniform(benchmark::State& state) {
  std::vector<float> out(kCount);
  const sparsenm::Philox rng(42);
  const int threads = static_cast<int>(state.range(0));
  sparsenm::set_thread_count(threads);
  for (auto _ : state) {
    // Four values per Philox block: one block feeds four consecutive counters.
    sparsenm::parallel_for_chunks(kCount / 4, 4096, [&](sparsenm::Index b, sparsenm::Index e) {
      for (sparsenm::Index blk = b; blk < e; ++blk) {
        const auto w = rng.block(static_cast<std::uint64_t>(blk));
        for (int k = 0; k < 4; ++k) out[blk * 4 + k] = sparsenm::Philox::to_uniform_float(w[k]);
      }
    });
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["values/s"] =
      benchmark::Counter(double(kCount) * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_PhiloxFillUniform(benchmark::State& state) {
  // sparsenm::fill_uniform: 16 Philox blocks per AVX-512 iteration, same values as uniform_float().
  sparsenm::Matrix<float> out(1024, kCount / 1024);
  const sparsenm::Philox rng(42);
  sparsenm::set_thread_count(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    sparsenm::fill_uniform<float>(out, rng);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["values/s"] =
      benchmark::Counter(double(kCount) * state.iterations(), benchmark::Counter::kIsRate);
}

void BM_PhiloxBitsPerCounter(benchmark::State& state) {
  // The convenience path: one call per counter (computes a block per value).
  std::vector<std::uint32_t> out(kCount);
  const sparsenm::Philox rng(42);
  for (auto _ : state) {
    for (std::int64_t i = 0; i < kCount; ++i) out[i] = rng.bits(static_cast<std::uint64_t>(i));
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["values/s"] =
      benchmark::Counter(double(kCount) * state.iterations(), benchmark::Counter::kIsRate);
}
}  // namespace

BENCHMARK(BM_Mt19937Uniform)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PhiloxUniform)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PhiloxFillUniform)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PhiloxBitsPerCounter)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
