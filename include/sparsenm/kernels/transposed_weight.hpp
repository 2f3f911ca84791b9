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

/// CSR of W^T for a compressed weight W (out x in): row k of W^T lists the outputs o with an active
/// W(o, k), in increasing o. When every row of W^T holds exactly n of each m outputs (transposable
/// masks, CHTs24 Sec. 3.1) the structure is also kept as an NMCompressed of W^T (as_nm()), and
/// spmm_transposed runs the row-wise N:M kernel on it instead of the CSR one.
template <class S>
class TransposedWeight {
 public:
  TransposedWeight() = default;
  /// Builds the column structure of `w` (see rebuild()).
  explicit TransposedWeight(const NMCompressed<S>& w) { rebuild(w); }

  /// Recomputes structure and values from `w` (after a mask change).
  void rebuild(const NMCompressed<S>& w);
  /// Copies the current values of `w` (same indices as at the last rebuild) into the transposed
  /// layout. The caller guarantees the indices did not change.
  void update_values(const NMCompressed<S>& w);

  Index rows() const { return m_rows; }    ///< = in (columns of W)
  Index inner() const { return m_inner; }  ///< = out (rows of W)
  /// Row k of W^T starts at row_ptr()[k] (CSR values, or as_nm().values when is_nm()).
  const std::vector<Index>& row_ptr() const { return m_row_ptr; }
  /// CSR column (output) of every entry; empty when is_nm() (as_nm().indices hold the structure).
  const std::vector<std::int32_t>& cols() const { return m_cols; }
  /// CSR values (empty when is_nm(): the values then live in as_nm().values).
  const std::vector<S>& values() const { return m_values; }
  /// The N:M pattern of the weight it was built from.
  NM nm() const { return m_nm; }
  /// True when W^T is row-wise N:M with W's n and m (the column structure of a transposable mask).
  bool is_nm() const { return m_is_nm; }
  /// W^T as NMCompressed (only meaningful when is_nm()).
  const NMCompressed<S>& as_nm() const { return m_nmt; }
  /// Bytes held between calls (structure and values; part of a layer's training state).
  std::size_t bytes() const {
    return m_row_ptr.size() * sizeof(Index) + m_cols.size() * sizeof(std::int32_t) +
           m_values.size() * sizeof(S) +
           std::size_t(m_nmt.values.size()) * (sizeof(S) + sizeof(std::uint8_t));
  }

 private:
  Index m_rows = 0, m_inner = 0;
  NM m_nm{1, 1};
  std::vector<Index> m_row_ptr;
  std::vector<std::int32_t> m_cols;
  std::vector<S> m_values;
  bool m_is_nm = false;
  NMCompressed<S> m_nmt;
};

namespace detail {

/// Columns of W per block of the transposition: 64 inputs, i.e. one cache line of W's values at
/// 1:4 and a block of W^T rows whose write positions stay cached.
constexpr Index kTransposeBlock = 64;

/// Visits the active entries of W column block by column block (in parallel over blocks), each
/// block's outputs in increasing order: f(o, k, slot of (o, k) in W.values, rank of o in column k).
/// Row k of W^T lists its outputs in increasing order, so the rank is the entry's offset in that
/// row: no stored permutation is needed. Within a block both sides stay cached (W^T rows are a
/// power of two apart in memory for most shapes; a plain W^T-order copy misses L2 on every read).
template <class S, class F>
void for_each_transposed_entry(const NMCompressed<S>& w, F&& f) {
  const int n = w.nm.n, m = w.nm.m;
  const Index nnzr = w.values.cols(), blocks = (w.cols + kTransposeBlock - 1) / kTransposeBlock;
  parallel_for(Index(0), blocks, [&](Index b) {
    const Index g0 = b * kTransposeBlock / m;
    const Index g1 = std::min(w.cols, (b + 1) * kTransposeBlock) / m;
    Index rank[kTransposeBlock] = {};
    for (Index o = 0; o < w.rows; ++o) {
      const std::uint8_t* idx = w.indices.data() + o * nnzr;
      for (Index j = g0 * n; j < g1 * n; ++j) {
        const Index k = (j / n) * m + idx[j];
        f(o, k, o * nnzr + j, rank[k - b * kTransposeBlock]++);
      }
    }
  });
}

}  // namespace detail

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
  for (Index o = 0; o < w.rows; ++o)
    for (Index j = 0; j < nnzr; ++j) ++m_row_ptr[(j / n) * m + idx[o * nnzr + j] + 1];
  for (Index k = 0; k < m_rows; ++k) m_row_ptr[k + 1] += m_row_ptr[k];
  m_cols.resize(static_cast<std::size_t>(nnz));
  const Index* ptr = m_row_ptr.data();
  std::int32_t* cols = m_cols.data();
  detail::for_each_transposed_entry(
      w, [&](Index o, Index k, Index, Index r) { cols[ptr[k] + r] = std::int32_t(o); });
  // Column structure: exactly n of each m outputs in every row of W^T?
  m_is_nm = w.rows % m == 0;
  for (Index k = 0; m_is_nm && k < m_rows; ++k) {
    if (m_row_ptr[k + 1] - m_row_ptr[k] != w.rows / m * n) m_is_nm = false;
    for (Index e = m_row_ptr[k]; m_is_nm && e < m_row_ptr[k + 1]; ++e)
      if (m_cols[e] / m != (e - m_row_ptr[k]) / n) m_is_nm = false;
  }
  if (m_is_nm) {
    // Row k of W^T starts at k * (rows / m * n) = row_ptr[k] in as_nm().values as well.
    m_nmt.nm = w.nm;
    m_nmt.rows = w.cols;
    m_nmt.cols = w.rows;
    m_nmt.values.resize(w.cols, w.rows / m * n);
    m_nmt.indices.resize(w.cols, w.rows / m * n);
    for (Index e = 0; e < nnz; ++e) m_nmt.indices.data()[e] = std::uint8_t(m_cols[e] % m);
    m_values = std::vector<S>();
    m_cols = std::vector<std::int32_t>();  // the N:M indices hold the structure
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
  const Index* ptr = m_row_ptr.data();
  detail::for_each_transposed_entry(
      w, [&](Index, Index k, Index slot, Index r) { dst[ptr[k] + r] = src[slot]; });
}

}  // namespace sparsenm

#endif  // SPARSENM_KERNELS_TRANSPOSED_WEIGHT_HPP
