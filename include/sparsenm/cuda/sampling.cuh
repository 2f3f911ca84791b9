// SPDX-License-Identifier: Apache-2.0
// Device soft-sampling noise (chts24 Sec. 3.2.2-3.2.3, App. A, C), the counterparts of
// sparsenm::frechet_scores and sparsenm::uniform_perturb (sampling/frechet.hpp) with the same
// Philox stream (counter = row-major linear index), U in the output precision (uniform_float for
// float, uniform for double) and the same formulas in the output precision:
//   frechet:  W~ = |W| exp(-(1/T) log(-log U))     uniform:  S~ = S * U
// uniform_perturb is bit-identical to the CPU (one correctly rounded product of identical
// operands). frechet_scores in float runs the CPU's own base-2 pipeline
// (sampling/detail/frechet_math.hpp: the same operations as its scalar and AVX-512 paths), so it
// is bit-identical to the CPU on every build. In double
// it uses CUDA's log/exp, within 16 ulp of glibc's (6 seen on an H100; log(-log U) amplifies 1-ulp
// differences near U = 1/e).
// Device-pointer functions are asynchronous and set `*bad_flag` (optional device int) instead of
// throwing: frechet for a non-finite weight, uniform_perturb for a NaN score.
#ifndef SPARSENM_CUDA_SAMPLING_CUH
#define SPARSENM_CUDA_SAMPLING_CUH

#include <cmath>
#include <cstdint>

#include <cuda_runtime.h>

#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/sampling_kernels.cuh"
#include "error.cuh"
#include "memory.cuh"

namespace sparsenm {
namespace cuda {

/// Fréchet removal scores of `count` device weights (row-major matrix flattened), T > 0.
template <class S, class T>
void frechet_scores(const T* w, Index count, double temperature, const Philox& rng, S* out,
                    cudaStream_t stream = nullptr, int* bad_flag = nullptr) {
  check_finite_positive(temperature, "cuda::frechet_scores: temperature");
  SPARSENM_CHECK(count >= 0, "cuda::frechet_scores: count = ", count, " must be >= 0");
  if (count == 0) return;
  const std::size_t n = std::size_t(count);
  // Arithmetic-bound: a grid of 64 blocks per SM walking the data (grid-stride) measured ~8 %
  // faster on the H100 than one thread per Philox block (the memory-bound uniform noise is the
  // other way round).
  const unsigned grid = detail::grid_for((n + 3) / 4, 256, 64u * unsigned(sm_count()));
  const S inv_t = S(1.0 / temperature);
  const sparsenm::detail::FrechetConstants c = sparsenm::detail::frechet_constants(float(inv_t));
  // Float, T >= ~0.2: exp2's argument provably stays in range; the kernel without the clamp and
  // range test computes the same values with fewer instructions (it is instruction-bound).
  if (sizeof(S) == 4 && sparsenm::detail::frechet_exp2_in_range(float(inv_t)))
    detail::frechet_kernel<S, T, false>
        <<<grid, 256, 0, stream>>>(w, n, inv_t, c, rng, out, bad_flag);
  else
    detail::frechet_kernel<S, T, true>
        <<<grid, 256, 0, stream>>>(w, n, inv_t, c, rng, out, bad_flag);
  SPARSENM_CUDA_CHECK_LAUNCH("frechet_kernel");
}

/// Soft-regrowth noise of `count` device scores.
template <class R, class T>
void uniform_perturb(const T* scores, Index count, const Philox& rng, R* out,
                     cudaStream_t stream = nullptr, int* nan_flag = nullptr) {
  SPARSENM_CHECK(count >= 0, "cuda::uniform_perturb: count = ", count, " must be >= 0");
  if (count == 0) return;
  const std::size_t n = std::size_t(count);
  detail::uniform_perturb_kernel<R, T>
      <<<detail::grid_for((n + 3) / 4, 256), 256, 0, stream>>>(scores, n, rng, out, nan_flag);
  SPARSENM_CUDA_CHECK_LAUNCH("uniform_perturb_kernel");
}

/// Host convenience (synchronises; throws like the CPU function).
template <class S>
Matrix<S> frechet_scores(const Matrix<S>& w, double temperature, const Philox& rng,
                         cudaStream_t stream = nullptr) {
  check_finite_positive(temperature, "cuda::frechet_scores: temperature");
  check_all_finite(w, "cuda::frechet_scores: w");
  DeviceBuffer<S> d_w = to_device(w, stream), d_o(std::size_t(w.size()));
  frechet_scores<S, S>(d_w.data(), w.size(), temperature, rng, d_o.data(), stream);
  return to_host(d_o, w.rows(), w.cols(), stream);
}

/// Host convenience (synchronises; throws on NaN like the CPU function).
template <class S>
Matrix<S> uniform_perturb(const Matrix<S>& scores, const Philox& rng,
                          cudaStream_t stream = nullptr) {
  for (Index k = 0; k < scores.size(); ++k)
    SPARSENM_CHECK(!std::isnan(double(scores.data()[k])), "cuda::uniform_perturb: scores(",
                   k / std::max<Index>(1, scores.cols()), ", ",
                   k % std::max<Index>(1, scores.cols()), ") is NaN");
  DeviceBuffer<S> d_s = to_device(scores, stream), d_o(std::size_t(scores.size()));
  uniform_perturb<S, S>(d_s.data(), scores.size(), rng, d_o.data(), stream);
  return to_host(d_o, scores.rows(), scores.cols(), stream);
}

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_SAMPLING_CUH
