// SPDX-License-Identifier: Apache-2.0
// Token-major activations repacked for the sparse kernels.
//
// The SpMM/SDDMM micro-kernels (kernels/spmm.hpp, kernels/sddmm.hpp) work on X^T: for one weight
// nonzero (o, k) they multiply a broadcast weight by a contiguous run of tokens of feature k. A
// (tokens x features) row-major matrix is therefore transposed once into tiles of `tile()` tokens:
//   packed(tile q, feature k, lane i) = x(q * tile() + i, k),  zero past the last token,
// each tile stored contiguously (features x tile), so a block of features of one tile is one
// contiguous, L1-sized piece of memory whatever the number of tokens (no cache-set aliasing of the
// kind a plain strided X^T would have). Packing costs one read and one write of X, which is small
// next to the kernels (they read each packed row n/m * out times); a layer packs X in forward and
// reuses it for the weight gradient in backward.
#ifndef SPARSENM_KERNELS_PACKED_TOKENS_HPP
#define SPARSENM_KERNELS_PACKED_TOKENS_HPP

#include <algorithm>
#include <vector>

#include <Eigen/Core>

#include "../core/simd.hpp"
#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "detail/simd_vec.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {

namespace detail {

/// An output argument Eigen::Ref<Matrix<S>> whose S is deduced from the other arguments only (a
/// plain Matrix<S> then binds to it without a deduction failure).
template <class S>
struct RefOutType {
  using type = Eigen::Ref<Matrix<S>>;
};
template <class S>
using RefOut = typename RefOutType<S>::type;

/// Vectors per token tile for `tokens` tokens: 8 for long batches (the register tile of the
/// micro-kernels), fewer for skinny batches so little of a tile is padding.
inline int token_tile_vectors(Index tokens, int width) {
  const Index vecs = (tokens + width - 1) / width;
  if (vecs <= 1) return 1;
  if (vecs <= 2) return 2;
  if (vecs <= 4) return 4;
  return 8;
}
}  // namespace detail

/// X (tokens x features) transposed into token tiles; see the file comment for the layout.
template <class S>
class PackedTokens {
 public:
  PackedTokens() = default;

  /// Packs `x` (tokens x features). Any Eigen dense expression is accepted.
  template <class Derived>
  explicit PackedTokens(const Eigen::MatrixBase<Derived>& x) {
    pack(x);
  }

  /// Re-packs in place (reuses the allocation when the size allows).
  template <class Derived>
  void pack(const Eigen::MatrixBase<Derived>& x);

  Index tokens() const { return m_tokens; }      ///< rows of the packed matrix (tokens)
  Index features() const { return m_features; }  ///< its columns (features)
  /// Tokens per tile (a multiple of the SIMD width).
  Index tile() const { return m_tile; }
  /// Number of tiles (the last one zero-padded past the last token).
  Index tile_count() const { return m_tiles; }
  /// Start of tile q: features() rows of tile() contiguous values.
  const S* tile_data(Index q) const { return m_data.data() + q * m_features * m_tile; }
  bool empty() const { return m_tokens == 0; }  ///< true when no token is packed
  /// Bytes held (the packed copy).
  std::size_t bytes() const { return m_data.capacity() * sizeof(S); }

 private:
  Index m_tokens = 0, m_features = 0, m_tile = 0, m_tiles = 0;
  std::vector<S, detail::CacheAlignedAllocator<S>> m_data;
};

template <class S>
template <class Derived>
void PackedTokens<S>::pack(const Eigen::MatrixBase<Derived>& x) {
  // Bind once to a row-major view; an expression or a column-major argument is evaluated here.
  const Eigen::Ref<const Matrix<S>> xr(x.template cast<S>());
  m_tokens = xr.rows();
  m_features = xr.cols();
  // The tile is a multiple of the SIMD width of the kernels that will read it (active_isa(): with
  // runtime dispatch the width is known only at run time).
  const int width = SPARSENM_DISPATCH(vec_width<S>)();
  m_tile = Index(detail::token_tile_vectors(m_tokens, width)) * width;
  m_tiles = (m_tokens + m_tile - 1) / m_tile;
  m_data.resize(static_cast<std::size_t>(m_tiles * m_features * m_tile));
  const S* src = xr.data();
  const Index ld = xr.outerStride();
  const Index features = m_features, tokens = m_tokens, tile = m_tile;
  S* dst_all = m_data.data();
  // Chunks of 64 features per tile: reads 64 contiguous values per token row, writes 64 short
  // rows of the tile; each chunk is independent, so the static split is thread-count invariant.
  constexpr Index kChunk = 64;
  const Index chunks = (features + kChunk - 1) / kChunk;
  parallel_for(
      Index(0), m_tiles * chunks,
      [&](Index item) {
        const Index q = item / chunks, k0 = (item % chunks) * kChunk;
        SPARSENM_DISPATCH(pack_token_chunk<S>)
        (src, ld, tokens, std::min(features, k0 + kChunk), tile, q, k0,
         dst_all + q * features * tile);
      },
      4);
}

}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_KERNELS_PACKED_TOKENS_HPP
