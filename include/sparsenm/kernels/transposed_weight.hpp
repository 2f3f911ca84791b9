// SPDX-License-Identifier: Apache-2.0
// The column structure of a compressed N:M weight, for the transposed product dX = dY W.
//
// dX(t, k) = sum_o dY(t, o) W(o, k) is an SpMM with W^T. For a transposable mask (CHTs24 Sec. 3.1)
// every row of W^T holds exactly n of each m inputs, so W^T is itself row-wise N:M; for a row-wise
// mask the rows of W^T have varying lengths. Both are stored here as CSR of W^T (rows = inputs of
// the layer), built from NMCompressed by a counting sort on the column (O(nnz), no dense matrix).
// The structure depends only on the indices; `update_values` refreshes the values after an
// optimizer step without redoing the sort (a gather through the stored permutation).
#ifndef SPARSENM_KERNELS_TRANSPOSED_WEIGHT_HPP
#define SPARSENM_KERNELS_TRANSPOSED_WEIGHT_HPP

#include <cstdint>
#include <vector>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask.hpp"

namespace sparsenm {

/// Checks that `w` is a consistent NMCompressed (shapes, nm, indices in [0, m), increasing within
/// each group). Throws sparsenm::Error naming `name`.
template <class S>
void check_compressed(const NMCompressed<S>& w, const char* name = "weight") {
  check_nm(w.nm, name);
  SPARSENM_CHECK(w.rows >= 0 && w.cols >= 0, name, " has negative shape ", w.rows, "x", w.cols);
  check_divisible(w.cols, w.nm.m, "weight.cols");
  const Index nnzr = w.cols / w.nm.m * w.nm.n;
  check_shape(w.values, w.rows, nnzr, "weight.values");
  check_shape(w.indices, w.rows, nnzr, "weight.indices");
  const int n = w.nm.n, m = w.nm.m;
  for (Index r = 0; r < w.rows; ++r) {
    const std::uint8_t* idx = w.indices.data() + r * nnzr;
    for (Index j = 0; j < nnzr; ++j) {
      SPARSENM_CHECK(idx[j] < m, name, ".indices(", r, ", ", j, ") = ", int(idx[j]),
                     " must be in [0, ", m, ")");
      SPARSENM_CHECK(j % n == 0 || idx[j] > idx[j - 1], name, ".indices(", r, ", ", j,
                     ") = ", int(idx[j]), " must be larger than the previous index of its group");
    }
  }
}

/// CSR of W^T for a compressed weight W (out x in): row k of W^T lists the outputs o with an active
/// W(o, k), in increasing o. When every row of W^T holds exactly n of each m outputs (transposable
/// masks, CHTs24 Sec. 3.1) the structure is also kept as an NMCompressed of W^T (as_nm()), and
/// spmm_transposed runs the row-wise N:M kernel on it instead of the CSR one.
template <class S>
class TransposedWeight {
 public:
  TransposedWeight() = default;
  explicit TransposedWeight(const NMCompressed<S>& w) { rebuild(w); }

  /// Recomputes structure and values from `w` (after a mask change).
  void rebuild(const NMCompressed<S>& w);
  /// Copies the current values of `w` (same indices as at the last rebuild) through the stored
  /// permutation. The caller guarantees the indices did not change.
  void update_values(const NMCompressed<S>& w);

  Index rows() const { return m_rows; }    ///< = in (columns of W)
  Index inner() const { return m_inner; }  ///< = out (rows of W)
  const std::vector<Index>& row_ptr() const { return m_row_ptr; }
  const std::vector<std::int32_t>& cols() const { return m_cols; }
  /// CSR values (empty when is_nm(): the values then live in as_nm().values).
  const std::vector<S>& values() const { return m_values; }
  NM nm() const { return m_nm; }
  /// True when W^T is row-wise N:M with W's n and m (the column structure of a transposable mask).
  bool is_nm() const { return m_is_nm; }
  /// W^T as NMCompressed (only meaningful when is_nm()).
  const NMCompressed<S>& as_nm() const { return m_nmt; }

 private:
  Index m_rows = 0, m_inner = 0;
  NM m_nm{1, 1};
  std::vector<Index> m_row_ptr;
  std::vector<std::int32_t> m_cols;
  // update_values copies dst[m_copy_dst[i]] = w.values.data()[m_copy_src[i]] in the order of
  // kCopyBlock x kCopyBlock tiles of W (see rebuild).
  std::vector<std::int64_t> m_copy_src, m_copy_dst;
  std::vector<S> m_values;
  bool m_is_nm = false;
  NMCompressed<S> m_nmt;
};

template <class S>
void TransposedWeight<S>::rebuild(const NMCompressed<S>& w) {
  check_compressed(w, "weight");
  SPARSENM_CHECK(w.rows <= Index(INT32_MAX), "weight.rows = ", w.rows, " must fit in 32 bits");
  m_rows = w.cols;
  m_inner = w.rows;
  m_nm = w.nm;
  const int n = w.nm.n, m = w.nm.m;
  const Index nnzr = w.values.cols(), nnz = w.rows * nnzr;
  m_row_ptr.assign(static_cast<std::size_t>(m_rows + 1), 0);
  const std::uint8_t* idx = w.indices.data();
  // The value copy of update_values, ordered by tiles of kCopyBlock outputs x kCopyBlock inputs.
  // Rows of W (and of W^T) are a power of two apart in memory for most layer shapes, so copying
  // in W^T order makes all the sources of a W^T row compete for the same few cache sets and
  // every read misses L2 (4096x4096 1:4, 2 threads: 19.7 ms; tiles of 32: 9.8 ms); within a tile
  // both sides stay cached. A counting sort on the tile, O(nnz).
  constexpr Index kCopyBlock = 32;
  const Index tiles_k = (m_rows + kCopyBlock - 1) / kCopyBlock;
  const Index tiles = (w.rows + kCopyBlock - 1) / kCopyBlock * tiles_k;
  std::vector<Index> tile_ptr(static_cast<std::size_t>(tiles + 1), 0);
  auto tile_of = [&](Index o, Index k) { return o / kCopyBlock * tiles_k + k / kCopyBlock; };
  for (Index o = 0; o < w.rows; ++o)
    for (Index j = 0; j < nnzr; ++j) {
      const Index k = (j / n) * m + idx[o * nnzr + j];
      ++m_row_ptr[k + 1];
      ++tile_ptr[tile_of(o, k) + 1];
    }
  for (Index k = 0; k < m_rows; ++k) m_row_ptr[k + 1] += m_row_ptr[k];
  for (Index t = 0; t < tiles; ++t) tile_ptr[t + 1] += tile_ptr[t];
  m_cols.resize(static_cast<std::size_t>(nnz));
  m_copy_src.resize(static_cast<std::size_t>(nnz));
  m_copy_dst.resize(static_cast<std::size_t>(nnz));
  std::vector<Index> fill(m_row_ptr.begin(), m_row_ptr.end() - 1);
  // Outputs are visited in increasing o, so each row of W^T comes out sorted.
  for (Index o = 0; o < w.rows; ++o)
    for (Index j = 0; j < nnzr; ++j) {
      const Index k = (j / n) * m + idx[o * nnzr + j];
      const Index e = fill[k]++, slot = tile_ptr[tile_of(o, k)]++;
      m_cols[e] = std::int32_t(o);
      m_copy_src[slot] = o * nnzr + j;
      m_copy_dst[slot] = e;
    }
  // Column structure: exactly n of each m outputs in every row of W^T?
  m_is_nm = w.rows % m == 0;
  for (Index k = 0; m_is_nm && k < m_rows; ++k) {
    if (m_row_ptr[k + 1] - m_row_ptr[k] != w.rows / m * n) m_is_nm = false;
    for (Index e = m_row_ptr[k]; m_is_nm && e < m_row_ptr[k + 1]; ++e)
      if (m_cols[e] / m != (e - m_row_ptr[k]) / n) m_is_nm = false;
  }
  if (m_is_nm) {
    m_nmt.nm = w.nm;
    m_nmt.rows = w.cols;
    m_nmt.cols = w.rows;
    m_nmt.values.resize(w.cols, w.rows / m * n);
    m_nmt.indices.resize(w.cols, w.rows / m * n);
    for (Index e = 0; e < nnz; ++e) m_nmt.indices.data()[e] = std::uint8_t(m_cols[e] % m);
    m_values.clear();
  } else {
    m_nmt = NMCompressed<S>{};
    m_values.resize(static_cast<std::size_t>(nnz));
  }
  update_values(w);
}

template <class S>
void TransposedWeight<S>::update_values(const NMCompressed<S>& w) {
  SPARSENM_CHECK(w.rows == m_inner && w.cols == m_rows && w.nm == m_nm, "weight is ", w.rows, "x",
                 w.cols, " ", w.nm, " but the transposed structure was built for ", m_inner, "x",
                 m_rows, " ", m_nm);
  const S* src = w.values.data();
  S* dst = m_is_nm ? m_nmt.values.data() : m_values.data();
  const Index nnz = Index(m_copy_src.size());
  const std::int64_t* from = m_copy_src.data();
  const std::int64_t* to = m_copy_dst.data();
  parallel_for_chunks(nnz, 1 << 16, [&](Index b, Index e) {
    for (Index i = b; i < e; ++i) dst[to[i]] = src[from[i]];
  });
}

}  // namespace sparsenm

#endif  // SPARSENM_KERNELS_TRANSPOSED_WEIGHT_HPP
