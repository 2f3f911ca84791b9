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

/// update_values for a transposable structure (TransposedWeight::is_nm()), as a gather into W^T's
/// own layout: entry t2 of output group q in W^T row k holds W(o, k) with o = q m + idx_t (idx_t
/// the W^T index of that entry), stored in W at slot (k / m) n + t of row o, t the position among
/// the n slots of W's group k / m whose index is k mod m (t = 0 for n = 1). Tiles of 64 output
/// groups x 64 inputs keep the reads within 64 m rows of W (a few pages, L1-resident after the
/// first input) and write runs of 64 n values per W^T row; every entry is written once by one tile,
/// so the result does not depend on the thread count. No map is stored: the indices say it all.
/// (The row-wise scatter of for_each_transposed_entry misses cache on most writes: its W^T rows
/// lie a power of two apart, 4-6x slower at the example's 1024 x 784 layers.)
template <int N, int M, class S>
void gather_transposed_nm(const NMCompressed<S>& w, const std::uint8_t* t_idx, S* dst, int n_rt,
                          int m_rt) {
  const int n = N > 0 ? N : n_rt, m = M > 0 ? M : m_rt;
  constexpr Index kGroups = 64, kInputs = 64;
  const Index nnzr = w.values.cols(), nnzr_t = w.rows / m * n, groups = w.rows / m;
  const Index row_tiles = (groups + kGroups - 1) / kGroups;
  const Index col_tiles = (w.cols + kInputs - 1) / kInputs;
  const S* src = w.values.data();
  const std::uint8_t* w_idx = w.indices.data();
  parallel_for(Index(0), row_tiles * col_tiles, [&](Index tile) {
    const Index q0 = (tile % row_tiles) * kGroups, q1 = std::min(groups, q0 + kGroups);
    const Index k0 = (tile / row_tiles) * kInputs, k1 = std::min(w.cols, k0 + kInputs);
    for (Index k = k0; k < k1; ++k) {
      const Index slot0 = (k / m) * n;  // first slot of W's group k / m in every row
      const int want = int(k % m);
      const std::uint8_t* ti = t_idx + k * nnzr_t;
      S* out = dst + k * nnzr_t;
      for (Index q = q0; q < q1; ++q)
        for (int t2 = 0; t2 < n; ++t2) {
          const Index e = q * n + t2;
          const Index row = (q * m + ti[e]) * nnzr + slot0;
          // Exactly one of the group's n slots has index k mod m; branch-free (a data-dependent
          // branch mispredicts half the time at 2:4).
          Index t = 0;
          if (N == 2)
            t = Index(w_idx[row] != want);
          else if (n > 1)
            for (int j = 1; j < n; ++j) t += Index(w_idx[row + j] == want) * j;
          out[e] = src[row + t];
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
  if (m_is_nm) {
    const std::uint8_t* ti = m_nmt.indices.data();
    S* out = m_nmt.values.data();
    if (m_nm == NM{1, 4})
      detail::gather_transposed_nm<1, 4>(w, ti, out, 1, 4);
    else if (m_nm == NM{2, 4})
      detail::gather_transposed_nm<2, 4>(w, ti, out, 2, 4);
    else
      detail::gather_transposed_nm<0, 0>(w, ti, out, m_nm.n, m_nm.m);
    return;
  }
  const S* src = w.values.data();
  S* dst = m_values.data();
  const Index* ptr = m_row_ptr.data();
  detail::for_each_transposed_entry(
      w, [&](Index, Index k, Index slot, Index r) { dst[ptr[k] + r] = src[slot]; });
}

}  // namespace sparsenm

#endif  // SPARSENM_KERNELS_TRANSPOSED_WEIGHT_HPP
