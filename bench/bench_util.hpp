// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the benchmark binaries.
#ifndef SPARSENM_BENCH_BENCH_UTIL_HPP
#define SPARSENM_BENCH_BENCH_UTIL_HPP

#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <sparsenm/core/philox.hpp>
#include <sparsenm/core/random_fill.hpp>
#include <sparsenm/core/types.hpp>

namespace sparsenm_bench {

/// rows x cols of U(-1, 1) from Philox (element index as counter): deterministic inputs, never
/// zeros.
inline sparsenm::Matrix<float> random_matrix(sparsenm::Index rows, sparsenm::Index cols,
                                             std::uint64_t seed) {
  return (2.0f * sparsenm::uniform_matrix<float>(rows, cols, sparsenm::Philox(seed)).array() - 1.0f)
      .matrix();
}

/// Console reporter that also keeps each benchmark's mean time per iteration by name (the
/// "/real_time" suffix dropped), so main() can print ratios of benchmarks run in the same binary.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> times;  ///< name -> seconds per iteration
  /// With one thread, CPU time of the benchmark thread is robust against a shared machine.
  bool use_cpu = false;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs)
      if (r.run_type == Run::RT_Iteration && r.iterations > 0) {
        std::string name = r.benchmark_name();
        const auto cut = name.find("/real_time");
        if (cut != std::string::npos) name.erase(cut);
        times[name] =
            (use_cpu ? r.cpu_accumulated_time : r.real_accumulated_time) / double(r.iterations);
      }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace sparsenm_bench

#endif  // SPARSENM_BENCH_BENCH_UTIL_HPP
