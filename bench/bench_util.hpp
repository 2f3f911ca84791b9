// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the benchmark binaries.
#ifndef SPARSENM_BENCH_BENCH_UTIL_HPP
#define SPARSENM_BENCH_BENCH_UTIL_HPP

#include <cstdint>

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

}  // namespace sparsenm_bench

#endif  // SPARSENM_BENCH_BENCH_UTIL_HPP
