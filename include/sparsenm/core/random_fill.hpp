// SPDX-License-Identifier: Apache-2.0
// Bulk uniform fills from Philox: out[k] = rng.uniform(first + k) (double) or
// rng.uniform_float(first + k) (float), bit-identical to the per-counter functions. The AVX-512
// path runs 16 Philox blocks (64 values) per iteration; filling a matrix uses the element's linear
// index as the counter and fixed-size chunks, so the result never depends on the thread count.
#ifndef SPARSENM_CORE_RANDOM_FILL_HPP
#define SPARSENM_CORE_RANDOM_FILL_HPP

#include <cstdint>
#include <type_traits>

#include "parallel.hpp"
#include "philox.hpp"
#include "simd.hpp"
#include "types.hpp"

SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {
namespace detail {

template <class S>
S philox_uniform_as(const Philox& rng, std::uint64_t counter) {
  if constexpr (std::is_same_v<S, float>) {
    return rng.uniform_float(counter);
  } else {
    return static_cast<S>(rng.uniform(counter));
  }
}

namespace scalar {
/// Reference: one counter at a time.
template <class S>
void fill_uniform(const Philox& rng, std::uint64_t first, S* out, Index n) {
  for (Index k = 0; k < n; ++k) out[k] = philox_uniform_as<S>(rng, first + std::uint64_t(k));
}
}  // namespace scalar

}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../random_fill_body.inc"
#include "detail/isa_passes.inc"

namespace sparsenm {
namespace detail {}  // namespace detail

/// Fills `out` with U(0,1) using the element's row-major linear index (+ `first_counter`) as the
/// Philox counter: out(i, j) = rng.uniform(first_counter + i * cols + j) (uniform_float for float).
/// Parallel over fixed chunks, so any thread count gives the same matrix.
template <class S>
void fill_uniform(Eigen::Ref<Matrix<S>> out, const Philox& rng, std::uint64_t first_counter = 0) {
  S* data = out.data();
  const Index n = out.size();
  if (out.outerStride() == out.cols()) {
    parallel_for_chunks(n, Index(1) << 14, [&](Index b, Index e) {
      SPARSENM_DISPATCH(fill_uniform)(rng, first_counter + std::uint64_t(b), data + b, e - b);
    });
  } else {
    parallel_for(0, out.rows(), [&](Index i) {
      SPARSENM_DISPATCH(fill_uniform)
      (rng, first_counter + std::uint64_t(i * out.cols()), &out(i, 0), out.cols());
    });
  }
}

/// A rows x cols matrix of U(0,1), element index as counter (see fill_uniform).
template <class S>
Matrix<S> uniform_matrix(Index rows, Index cols, const Philox& rng,
                         std::uint64_t first_counter = 0) {
  Matrix<S> out(rows, cols);
  fill_uniform<S>(out, rng, first_counter);
  return out;
}

}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_CORE_RANDOM_FILL_HPP
