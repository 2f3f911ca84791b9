// SPDX-License-Identifier: Apache-2.0
// Helpers of the GPU tests: Philox-filled inputs (fresh per test, never zeros) and comparisons.
#ifndef SPARSENM_TESTS_CUDA_CUDA_TEST_UTIL_CUH
#define SPARSENM_TESTS_CUDA_CUDA_TEST_UTIL_CUH

#include <cmath>
#include <cstdint>
#include <cstring>

#include <gtest/gtest.h>

#include <sparsenm/core/philox.hpp>
#include <sparsenm/core/types.hpp>

namespace sparsenm {
namespace test {

/// Uniform in (-1, 1) from Philox (counter = linear index).
template <class S>
Matrix<S> random_matrix(Index rows, Index cols, std::uint64_t seed) {
  const Philox rng(seed, 7);
  Matrix<S> m(rows, cols);
  for (Index k = 0; k < m.size(); ++k) m.data()[k] = S(2.0 * rng.uniform(std::uint64_t(k)) - 1.0);
  return m;
}

/// Values on a coarse grid (many exact ties), to exercise the tie rules.
template <class S>
Matrix<S> tied_matrix(Index rows, Index cols, std::uint64_t seed, int levels = 4) {
  const Philox rng(seed, 9);
  Matrix<S> m(rows, cols);
  for (Index k = 0; k < m.size(); ++k)
    m.data()[k] = S(int(rng.bits(std::uint64_t(k)) % std::uint32_t(levels)));
  return m;
}

/// max |a - b| / max(|b|_inf, tiny) and the elementwise relative error with a floor.
template <class A, class B>
double max_rel_err(const A& a, const B& b, double floor_frac = 1e-3) {
  double bmax = 0;
  for (Index k = 0; k < b.size(); ++k) bmax = std::max(bmax, std::abs(double(b.data()[k])));
  const double floor = std::max(bmax * floor_frac, 1e-30);
  double e = 0;
  for (Index k = 0; k < b.size(); ++k) {
    const double x = double(a.data()[k]), y = double(b.data()[k]);
    if (std::isnan(x) != std::isnan(y)) return INFINITY;
    e = std::max(e, std::abs(x - y) / std::max(std::abs(y), floor));
  }
  return e;
}

/// max |a - b| / max |b| (absolute error relative to the largest reference value).
template <class A, class B>
double max_abs_rel(const A& a, const B& b) {
  double bmax = 0, e = 0;
  for (Index k = 0; k < b.size(); ++k) {
    bmax = std::max(bmax, std::abs(double(b.data()[k])));
    const double d = std::abs(double(a.data()[k]) - double(b.data()[k]));
    if (std::isnan(d)) return INFINITY;
    e = std::max(e, d);
  }
  return e / std::max(bmax, 1e-300);
}

/// ||a - b||_F / ||b||_F.
template <class A, class B>
double fro_rel_err(const A& a, const B& b) {
  double num = 0, den = 0;
  for (Index k = 0; k < b.size(); ++k) {
    const double d = double(a.data()[k]) - double(b.data()[k]);
    num += d * d;
    den += double(b.data()[k]) * double(b.data()[k]);
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

/// Distance in units in the last place between two finite floats/doubles of the same sign.
template <class S>
long long ulp_distance(S a, S b) {
  using I = std::conditional_t<sizeof(S) == 4, std::int32_t, std::int64_t>;
  I ia, ib;
  std::memcpy(&ia, &a, sizeof(S));
  std::memcpy(&ib, &b, sizeof(S));
  return std::llabs((long long)ia - (long long)ib);
}

}  // namespace test
}  // namespace sparsenm

#endif  // SPARSENM_TESTS_CUDA_CUDA_TEST_UTIL_CUH
