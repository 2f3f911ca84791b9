// SPDX-License-Identifier: Apache-2.0
// A native 1:4 sparse weight for memory-bound decode (1-16 tokens): y = x Wᵀ reading only the
// kept values and their 2-bit indices (kernel and storage format:
// cuda/detail/decode14_kernels.cuh). Dense bf16 moves 2 bytes per weight; this format moves 0.5625
// (a 3.56x ratio), which is the speed-up bound at the shapes where a dense GEMV is bandwidth-bound.
// Built from the CPU's NMCompressed (mask/compress.hpp), so any row-wise 1:4 mask (or a
// transposable 1:4 mask, which is row-wise legal too) can be served.
#ifndef SPARSENM_CUDA_DECODE14_CUH
#define SPARSENM_CUDA_DECODE14_CUH

#include <cstdint>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
#include "detail/decode14_kernels.cuh"
#include "error.cuh"
#include "memory.cuh"

namespace sparsenm {
namespace cuda {

/// A 1:4 weight (out x in) on the device in the decode format.
class Sparse14 {
 public:
  static constexpr int kMaxTokens = 16;

  Sparse14() = default;

  /// From a CPU-compressed 1:4 weight (values rounded to bf16). in % 32 == 0.
  template <class S>
  explicit Sparse14(const NMCompressed<S>& c, cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(c.nm.n == 1 && c.nm.m == 4, "cuda::Sparse14: nm = ", c.nm, " must be NM{1,4}");
    check_divisible(c.cols, 32, "cuda::Sparse14: cols", "32");
    check_shape(c.values, c.rows, c.cols / 4, "cuda::Sparse14: values");
    check_shape(c.indices, c.rows, c.cols / 4, "cuda::Sparse14: indices");
    m_rows = c.rows;
    m_cols = c.cols;
    const Index G = c.cols / 4;
    m_gp = (G + detail::kDecodeSuperGroups - 1) / detail::kDecodeSuperGroups *
           detail::kDecodeSuperGroups;
    const std::size_t words = std::size_t(m_gp / 8);
    std::vector<__nv_bfloat16> v(std::size_t(c.rows) * words * 8, __float2bfloat16(0.f));
    std::vector<std::uint16_t> ix(std::size_t(c.rows) * words, 0);
    for (Index r = 0; r < c.rows; ++r)
      for (Index g = 0; g < G; ++g) {
        // group g -> super-chunk j, lane l, slot s: g = j*256 + 32 s + l
        const Index j = g / detail::kDecodeSuperGroups, rem = g % detail::kDecodeSuperGroups;
        const Index s = rem / 32, l = rem % 32;
        const std::size_t word = std::size_t(r) * words + std::size_t(j * 32 + l);
        v[word * 8 + std::size_t(s)] = __float2bfloat16(float(c.values(r, g)));
        const unsigned k = c.indices(r, g);
        SPARSENM_CHECK(k < 4, "cuda::Sparse14: indices(", r, ", ", g, ") = ", k,
                       " must be in [0, 4)");
        ix[word] = std::uint16_t(ix[word] | (k << (2 * s)));
      }
    m_values.upload(v, stream);
    m_idx.upload(ix, stream);
    configure<1>();
  }

  Index rows() const { return m_rows; }
  Index cols() const { return m_cols; }
  /// Bytes the kernel reads for the weight (values + indices; rows padded to 1024 columns).
  std::size_t weight_bytes() const { return m_values.bytes() + m_idx.bytes(); }

  /// y (tokens x rows, row-major bf16) = x (tokens x cols, row-major bf16) Wᵀ; 1 <= tokens <= 16.
  /// `grid` = 0 picks a persistent grid (the occupancy limit times the multiprocessor count).
  void matmul(const __nv_bfloat16* x, int tokens, __nv_bfloat16* y, cudaStream_t stream = nullptr,
              int grid = 0) const {
    SPARSENM_CHECK(tokens >= 1 && tokens <= kMaxTokens, "cuda::Sparse14::matmul: tokens = ", tokens,
                   " must be in [1, ", kMaxTokens, "]");
    SPARSENM_CHECK(x && y, "cuda::Sparse14::matmul: x and y must be device pointers");
    SPARSENM_CHECK((reinterpret_cast<std::uintptr_t>(x) & 15u) == 0,
                   "cuda::Sparse14::matmul: x must be 16-byte aligned (cudaMalloc'd)");
    if (m_rows == 0) return;
    switch (tokens) {
#define SPARSENM_DECODE14_CASE(T_) \
  case T_:                         \
    return launch<T_>(x, y, stream, grid);
      SPARSENM_DECODE14_CASE(1)
      SPARSENM_DECODE14_CASE(2)
      SPARSENM_DECODE14_CASE(3)
      SPARSENM_DECODE14_CASE(4)
      SPARSENM_DECODE14_CASE(5)
      SPARSENM_DECODE14_CASE(6)
      SPARSENM_DECODE14_CASE(7)
      SPARSENM_DECODE14_CASE(8)
      SPARSENM_DECODE14_CASE(9)
      SPARSENM_DECODE14_CASE(10)
      SPARSENM_DECODE14_CASE(11)
      SPARSENM_DECODE14_CASE(12)
      SPARSENM_DECODE14_CASE(13)
      SPARSENM_DECODE14_CASE(14)
      SPARSENM_DECODE14_CASE(15)
      SPARSENM_DECODE14_CASE(16)
#undef SPARSENM_DECODE14_CASE
      default:
        break;
    }
  }

 private:
  /// Shared memory and persistent grid of every token count, computed once here: a decode call
  /// lasts a few microseconds, and the occupancy query + attribute calls per launch cost about as
  /// much host time, which starves the GPU between back-to-back launches.
  template <int T>
  void configure() {
    const std::size_t smem = std::size_t(4 * m_gp) * T * sizeof(__nv_bfloat16);
    m_smem[T] = smem;
    m_grid[T] = 0;  // 0: too many columns for this token count (matmul throws)
    if (smem <= 227u * 1024u && m_rows > 0) {
      if (smem > 48u * 1024u) raise_smem_limit<T>(smem);
      int per_sm = 0;
      SPARSENM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
          &per_sm, detail::decode14_kernel<T>, detail::kDecodeWarps * 32, smem));
      if (per_sm < 1) per_sm = 1;
      const long rows_per_block = detail::kDecodeWarps;
      const long need = (long(m_rows) + rows_per_block - 1) / rows_per_block;
      m_grid[T] = int(std::min<long>(need, long(per_sm) * sm_count()));
    }
    if constexpr (T < kMaxTokens) configure<T + 1>();
  }

  /// The opt-in shared-memory limit is a property of the kernel, not of this object (another
  /// Sparse14 with fewer columns may have lowered it since), so it is raised before every launch
  /// that needs more than the default 48 KiB (never for T = 1 at in <= 6144).
  template <int T>
  static void raise_smem_limit(std::size_t smem) {
    SPARSENM_CUDA_CHECK(cudaFuncSetAttribute(
        detail::decode14_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  }

  template <int T>
  void launch(const __nv_bfloat16* x, __nv_bfloat16* y, cudaStream_t stream, int grid) const {
    const std::size_t smem = m_smem[T];
    SPARSENM_CHECK(smem <= 227u * 1024u,
                   "cuda::Sparse14::matmul: padded cols * tokens * 2 = ", smem,
                   " bytes of activations exceed the 227 KiB of shared memory");
    if (smem > 48u * 1024u) raise_smem_limit<T>(smem);
    if (grid <= 0) grid = m_grid[T];
    detail::decode14_kernel<T><<<unsigned(grid), detail::kDecodeWarps * 32, smem, stream>>>(
        reinterpret_cast<const uint4*>(m_values.data()), m_idx.data(), x, int(m_rows), int(m_cols),
        int(m_gp), y);
    SPARSENM_CUDA_CHECK_LAUNCH("decode14_kernel");
  }

  Index m_rows = 0, m_cols = 0, m_gp = 0;
  std::size_t m_smem[kMaxTokens + 1] = {};
  int m_grid[kMaxTokens + 1] = {};
  DeviceBuffer<__nv_bfloat16> m_values;
  DeviceBuffer<std::uint16_t> m_idx;
};

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DECODE14_CUH
