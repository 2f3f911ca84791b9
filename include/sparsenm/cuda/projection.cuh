// SPDX-License-Identifier: Apache-2.0
// Device mask projections (host API; kernels in cuda/detail/projection_kernels.cuh). They compute
// exactly what sparsenm::project_rowwise / project_transposable compute on the CPU (masks are
// identical bit for bit, tested on random inputs): row-wise top-n per group with ties to the lower
// index; transposable 4x4 = the legal pattern of the 24/90/24-tile library (n = 1/2/3) with the
// largest kept-score sum (chts24 eq. (2)), pattern sums accumulated in bit order r*4 + c.
//
// Device-pointer functions are asynchronous on `stream` and cannot throw for data: a NaN score
// (row-wise) or a non-finite score (transposable, whose sums would be meaningless) sets
// `*nan_flag` (device int, optional) and leaves that group's/tile's output unspecified. The
// host-matrix overloads synchronise and throw sparsenm::Error naming the entry, like the CPU.
#ifndef SPARSENM_CUDA_PROJECTION_CUH
#define SPARSENM_CUDA_PROJECTION_CUH

#include <cstdint>
#include <type_traits>

#include <cuda_runtime.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/projection_kernels.cuh"
#include "error.cuh"
#include "memory.cuh"

namespace sparsenm {
namespace cuda {

namespace detail {
constexpr unsigned kProjectBlock = 256;
inline bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }
}  // namespace detail

/// Row-wise N:M projection of a row-major (rows x cols) device score matrix into a device mask.
/// 1 <= n <= m <= 32, cols % m == 0. float and double.
template <class S>
void project_rowwise(const S* scores, Index rows, Index cols, NM nm, std::uint8_t* mask,
                     cudaStream_t stream = nullptr, int* nan_flag = nullptr) {
  static_assert(std::is_floating_point<S>::value, "cuda::project_rowwise takes float or double");
  check_nm(nm, "cuda::project_rowwise: nm");
  SPARSENM_CHECK(rows >= 0, "cuda::project_rowwise: rows = ", rows, " must be >= 0");
  check_divisible(cols, nm.m, "cuda::project_rowwise: cols", "m");
  const std::size_t groups = std::size_t(rows) * std::size_t(cols) / std::size_t(nm.m);
  if (groups == 0) return;
  SPARSENM_CHECK(scores != nullptr && mask != nullptr,
                 "cuda::project_rowwise: scores and mask must be device pointers");
  const unsigned grid = detail::grid_for(groups, detail::kProjectBlock);
  const bool vec = std::is_same<S, float>::value && detail::aligned16(scores) &&
                   (reinterpret_cast<std::uintptr_t>(mask) % std::uintptr_t(nm.m) == 0);
  if constexpr (std::is_same<S, float>::value) {
    if (vec && nm.m == 4) {
      auto s4 = reinterpret_cast<const float4*>(scores);
      auto o4 = reinterpret_cast<std::uint32_t*>(mask);
      switch (nm.n) {
        case 1:
          detail::rowwise4_float_kernel<1>
              <<<grid, detail::kProjectBlock, 0, stream>>>(s4, groups, o4, nan_flag);
          break;
        case 2:
          detail::rowwise4_float_kernel<2>
              <<<grid, detail::kProjectBlock, 0, stream>>>(s4, groups, o4, nan_flag);
          break;
        case 3:
          detail::rowwise4_float_kernel<3>
              <<<grid, detail::kProjectBlock, 0, stream>>>(s4, groups, o4, nan_flag);
          break;
        default:
          detail::rowwise4_float_kernel<4>
              <<<grid, detail::kProjectBlock, 0, stream>>>(s4, groups, o4, nan_flag);
          break;
      }
      SPARSENM_CUDA_CHECK_LAUNCH("rowwise4_float_kernel");
      return;
    }
    if (vec && nm.m == 8 && (nm.n == 2 || nm.n == 4)) {
      auto s4 = reinterpret_cast<const float4*>(scores);
      auto o8 = reinterpret_cast<uint2*>(mask);
      if (nm.n == 2)
        detail::rowwise8_float_kernel<2>
            <<<grid, detail::kProjectBlock, 0, stream>>>(s4, groups, o8, nan_flag);
      else
        detail::rowwise8_float_kernel<4>
            <<<grid, detail::kProjectBlock, 0, stream>>>(s4, groups, o8, nan_flag);
      SPARSENM_CUDA_CHECK_LAUNCH("rowwise8_float_kernel");
      return;
    }
  }
  detail::rowwise_generic_kernel<S>
      <<<grid, detail::kProjectBlock, 0, stream>>>(scores, groups, nm.m, nm.n, mask, nan_flag);
  SPARSENM_CUDA_CHECK_LAUNCH("rowwise_generic_kernel");
}

/// Transposable 4x4 projection (m = 4, n in 1..4) of a row-major (rows x cols) device score
/// matrix; rows % 4 == 0 and cols % 4 == 0. Each 4x4 tile gets the legal pattern (n per tile-row
/// and tile-column) with the largest score sum; ties go to the lower pattern index of the
/// ascending TransposablePatterns<4, n> table.
template <class S>
void project_transposable(const S* scores, Index rows, Index cols, NM nm, std::uint8_t* mask,
                          cudaStream_t stream = nullptr, int* nan_flag = nullptr) {
  static_assert(std::is_floating_point<S>::value,
                "cuda::project_transposable takes float or double");
  check_nm(nm, "cuda::project_transposable: nm");
  SPARSENM_CHECK(nm.m == 4, "cuda::project_transposable: nm = ", nm,
                 ": the device path implements the 4x4 pattern libraries (m = 4) only");
  check_divisible(rows, 4, "cuda::project_transposable: rows", "m");
  check_divisible(cols, 4, "cuda::project_transposable: cols", "m");
  const std::size_t tiles = std::size_t(rows / 4) * std::size_t(cols / 4);
  if (tiles == 0) return;
  SPARSENM_CHECK(scores != nullptr && mask != nullptr,
                 "cuda::project_transposable: scores and mask must be device pointers");
  const unsigned grid = detail::grid_for(tiles, 128);
  const std::size_t r = std::size_t(rows), c = std::size_t(cols);
  if constexpr (std::is_same<S, float>::value) {
    if (detail::aligned16(scores) && (reinterpret_cast<std::uintptr_t>(mask) & 3u) == 0) {
      switch (nm.n) {
        case 1:
          detail::transposable4_float_kernel<1>
              <<<grid, 128, 0, stream>>>(scores, r, c, mask, nan_flag);
          break;
        case 2:
          detail::transposable4_float_kernel<2>
              <<<grid, 128, 0, stream>>>(scores, r, c, mask, nan_flag);
          break;
        case 3:
          detail::transposable4_float_kernel<3>
              <<<grid, 128, 0, stream>>>(scores, r, c, mask, nan_flag);
          break;
        default:
          detail::transposable4_float_kernel<4>
              <<<grid, 128, 0, stream>>>(scores, r, c, mask, nan_flag);
          break;
      }
      SPARSENM_CUDA_CHECK_LAUNCH("transposable4_float_kernel");
      return;
    }
  }
  switch (nm.n) {
    case 1:
      detail::transposable4_kernel<1, S><<<grid, 128, 0, stream>>>(scores, r, c, mask, nan_flag);
      break;
    case 2:
      detail::transposable4_kernel<2, S><<<grid, 128, 0, stream>>>(scores, r, c, mask, nan_flag);
      break;
    case 3:
      detail::transposable4_kernel<3, S><<<grid, 128, 0, stream>>>(scores, r, c, mask, nan_flag);
      break;
    default:
      detail::transposable4_kernel<4, S><<<grid, 128, 0, stream>>>(scores, r, c, mask, nan_flag);
      break;
  }
  SPARSENM_CUDA_CHECK_LAUNCH("transposable4_kernel");
}

/// Projection of `scores` onto `layout` (Transposable: m = 4 only).
template <class S>
void project(const S* scores, Index rows, Index cols, NM nm, Layout layout, std::uint8_t* mask,
             cudaStream_t stream = nullptr, int* nan_flag = nullptr) {
  if (layout == Layout::RowWise)
    project_rowwise(scores, rows, cols, nm, mask, stream, nan_flag);
  else
    project_transposable(scores, rows, cols, nm, mask, stream, nan_flag);
}

namespace detail {
template <class S, class F>
Mask project_host(const Matrix<S>& scores, const char* where, bool nan_only, F&& launch,
                  cudaStream_t stream) {
  DeviceBuffer<S> d_s = to_device(scores, stream);
  DeviceBuffer<std::uint8_t> d_m(std::size_t(scores.size()));
  DeviceBuffer<int> d_nan(1);
  d_nan.fill_bytes(0, stream);
  launch(d_s.data(), d_m.data(), d_nan.data());
  Mask out(scores.rows(), scores.cols());
  if (out.size()) d_m.download(out.data(), std::size_t(out.size()), stream);
  int nan = 0;
  d_nan.download(&nan, 1, stream);
  if (nan) {
    for (Index i = 0; i < scores.rows(); ++i)
      for (Index j = 0; j < scores.cols(); ++j)
        SPARSENM_CHECK(
            nan_only ? !(scores(i, j) != scores(i, j)) : (scores(i, j) - scores(i, j) == S(0)),
            where, ": scores(", i, ", ", j, ") = ", double(scores(i, j)),
            nan_only ? " is NaN" : " is not finite");
  }
  return out;
}
}  // namespace detail

/// Host convenience: uploads, projects on the device, downloads. Throws on NaN like the CPU.
template <class S>
Mask project_rowwise(const Matrix<S>& scores, NM nm, cudaStream_t stream = nullptr) {
  check_nm(nm, "cuda::project_rowwise: nm");
  check_divisible(scores.cols(), nm.m, "cuda::project_rowwise: scores.cols()", "m");
  return detail::project_host(
      scores, "cuda::project_rowwise", true,
      [&](const S* s, std::uint8_t* m, int* f) {
        project_rowwise(s, scores.rows(), scores.cols(), nm, m, stream, f);
      },
      stream);
}

/// Host convenience for the transposable 4x4 projection. Throws on NaN like the CPU.
template <class S>
Mask project_transposable(const Matrix<S>& scores, NM nm, cudaStream_t stream = nullptr) {
  check_nm(nm, "cuda::project_transposable: nm");
  return detail::project_host(
      scores, "cuda::project_transposable", false,
      [&](const S* s, std::uint8_t* m, int* f) {
        project_transposable(s, scores.rows(), scores.cols(), nm, m, stream, f);
      },
      stream);
}

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_PROJECTION_CUH
