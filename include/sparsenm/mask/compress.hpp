// SPDX-License-Identifier: Apache-2.0
// Compressed row-wise N:M storage: kept values + in-group indices (docs/algorithms.md "Compressed
// storage"). A transposable mask is row-wise legal too, so it compresses the same way.
#ifndef SPARSENM_MASK_COMPRESS_HPP
#define SPARSENM_MASK_COMPRESS_HPP

#include <algorithm>
#include <cstdint>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/common.hpp"
#include "detail/dispatch.hpp"

namespace sparsenm {

/// Row-major N:M compressed matrix. For row i and group g (columns g*m .. g*m+m-1), slots
/// g*n .. g*n+n-1 of `values` / `indices` hold the n kept values in increasing column order and
/// their in-group column offsets (each in [0, m), strictly increasing within a group).
template <class S>
struct NMCompressed {
  /// The N:M pattern.
  NM nm{2, 4};
  Eigen::Index rows = 0;  ///< dense rows (out)
  Eigen::Index cols = 0;  ///< dense columns (in)
  Matrix<S> values;       ///< rows x (cols / m * n)
  Mask indices;           ///< same shape, each in [0, m)
};

/// Packs `weight` under a row-wise legal `mask` (exactly n ones per group; throws sparsenm::Error
/// otherwise, and for shape mismatches). S defaults to the weight's scalar: `compress(w, mask, nm)`
/// or `compress<float>(w, mask, nm)`. Values are copied as they are (a kept zero stays a slot).
template <class S = void, class Derived>
NMCompressed<detail::resolve_scalar_t<S, typename Derived::Scalar>> compress(
    const Eigen::MatrixBase<Derived>& weight, const Mask& mask, NM nm) {
  using T = detail::resolve_scalar_t<S, typename Derived::Scalar>;
  check_nm(nm, "compress: nm");
  check_same_shape(weight, mask, "compress: weight", "mask");
  check_divisible(weight.cols(), nm.m, "compress: weight.cols()", "m");
  NMCompressed<T> c;
  c.nm = nm;
  c.rows = weight.rows();
  c.cols = weight.cols();
  const Index groups = c.cols / nm.m;
  c.values.resize(c.rows, groups * nm.n);
  c.indices.resize(c.rows, groups * nm.n);
  if (c.rows == 0 || c.cols == 0) return c;
  const auto& w = weight.derived();
  for (Index i = 0; i < c.rows; ++i)
    for (Index g = 0; g < groups; ++g) {
      int slot = 0;
      for (int k = 0; k < nm.m; ++k) {
        const std::uint8_t v = mask(i, g * nm.m + k);
        SPARSENM_CHECK(v <= 1, "compress: mask(", i, ", ", g * nm.m + k, ") = ", int(v),
                       " must be 0 or 1");
        if (!v) continue;
        SPARSENM_CHECK(slot < nm.n, "compress: mask row ", i, " group ", g,
                       " has more than n = ", nm.n, " ones (not row-wise legal)");
        c.values(i, g * nm.n + slot) = T(w(i, g * nm.m + k));
        c.indices(i, g * nm.n + slot) = std::uint8_t(k);
        ++slot;
      }
      SPARSENM_CHECK(slot == nm.n, "compress: mask row ", i, " group ", g, " has ", slot,
                     " ones but must have n = ", nm.n, " (not row-wise legal)");
    }
  return c;
}

/// Dense (rows x cols) matrix with the kept values in place and zeros elsewhere. Throws if the
/// compressed object is inconsistent (shapes, indices out of range or not increasing).
template <class S>
Matrix<S> decompress(const NMCompressed<S>& c) {
  check_nm(c.nm, "decompress: c.nm");
  check_divisible(c.cols, c.nm.m, "decompress: c.cols", "m");
  const Index k = c.cols / c.nm.m * c.nm.n;
  check_shape(c.values, c.rows, k, "decompress: c.values");
  check_shape(c.indices, c.rows, k, "decompress: c.indices");
  Matrix<S> out = Matrix<S>::Zero(c.rows, c.cols);
  const int m = c.nm.m, n = c.nm.n;
  for (Index i = 0; i < c.rows; ++i)
    for (Index g = 0; g < c.cols / m; ++g)
      for (int s = 0; s < n; ++s) {
        const int idx = c.indices(i, g * n + s);
        SPARSENM_CHECK(idx < m && (s == 0 || idx > c.indices(i, g * n + s - 1)),
                       "decompress: c.indices(", i, ", ", g * n + s, ") = ", idx,
                       " must be in [0, m) and increasing within its group");
        out(i, g * m + idx) = c.values(i, g * n + s);
      }
  return out;
}

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

/// Where the active slots of a compressed layer come from after a mask change (a topology
/// refresh, SparseLinear::set_mask): for new slot (i, g n + s), `source(i, g n + s)` is the old
/// slot g n + source of the same row and group whose weight it keeps, or -1 for an entry that
/// starts afresh (regrown, or removed and regrown in the same refresh, CHTs24 Alg. 1 step 5). Slots
/// never move across groups: a group always holds n slots. Every per-weight state in the layout of
/// NMCompressed::values (optimizer moments, gradients) follows its weight through remap_slots().
struct SlotMap {
  /// The N:M pattern of the layer.
  NM nm{2, 4};
  /// (rows, cols / m * n): old slot of each new slot within its group, or -1 (starts afresh).
  Eigen::Matrix<std::int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> source;

  /// Rows of the layer.
  Eigen::Index rows() const { return source.rows(); }
  /// Compressed slots per row (cols / m * n).
  Eigen::Index cols() const { return source.cols(); }
  /// Slots that keep their weight (source >= 0).
  Eigen::Index kept() const { return (source.array() >= 0).count(); }
  /// Slots that start afresh (source == -1).
  Eigen::Index fresh() const { return source.size() - kept(); }
};

/// Applies a SlotMap to per-slot state in the layout of NMCompressed::values, in place: kept slots
/// take the state of their source slot, fresh ones start at `fresh` (0 unless a policy says
/// otherwise). Throws sparsenm::Error if the shapes differ or a source is out of its group.
template <class S>
void remap_slots(Eigen::Ref<Matrix<S>> state, const SlotMap& map, S fresh = S(0)) {
  check_shape(state, map.rows(), map.cols(), "remap_slots: state");
  const int n = map.nm.n;
  SPARSENM_CHECK(n >= 1 && map.cols() % n == 0, "remap_slots: map has ", map.cols(),
                 " slots per row, not a multiple of n = ", n);
  const Index rows = map.rows(), groups = map.cols() / n;
  const std::int8_t* src = map.source.data();
  for (Index i = 0; i < rows; ++i) {
    S* row = state.data() + i * state.outerStride();
    const std::int8_t* sr = src + i * map.cols();
    for (Index g = 0; g < groups; ++g) {
      S old[kMaxGroupSize];  // a group's n <= 32 slots: the permutation never leaves the group
      for (int s = 0; s < n; ++s) old[s] = row[g * n + s];
      for (int s = 0; s < n; ++s) {
        const int from = sr[g * n + s];
        SPARSENM_CHECK(from >= -1 && from < n, "remap_slots: source(", i, ", ", g * n + s,
                       ") = ", from, " must be -1 or in [0, ", n, ")");
        row[g * n + s] = from >= 0 ? old[from] : fresh;
      }
    }
  }
}

/// The SlotMap from `old_weight`'s indices to `new_mask` (row-wise legal for old_weight.nm):
/// entries active in both keep their slot's state, the others start afresh. `fresh` (optional,
/// same shape as new_mask) marks active entries that must start afresh although they were active
/// before (revived by a refresh). Throws sparsenm::Error on a shape mismatch or an illegal mask.
template <class S>
SlotMap slot_map(const NMCompressed<S>& old_weight, const Mask& new_mask,
                 const Mask* fresh = nullptr) {
  const NM nm = old_weight.nm;
  check_shape(new_mask, old_weight.rows, old_weight.cols, "slot_map: new_mask");
  if (fresh) check_shape(*fresh, old_weight.rows, old_weight.cols, "slot_map: fresh");
  const int n = nm.n, m = nm.m;
  const Index rows = old_weight.rows, groups = old_weight.cols / m, nnzr = groups * n;
  SlotMap map;
  map.nm = nm;
  map.source.resize(rows, nnzr);
  for (Index i = 0; i < rows; ++i)
    for (Index g = 0; g < groups; ++g) {
      std::int8_t slot_of[kMaxGroupSize];  // in-group column -> old slot, -1 when inactive
      for (int c = 0; c < m; ++c) slot_of[c] = -1;
      for (int s = 0; s < n; ++s) slot_of[old_weight.indices(i, g * n + s)] = std::int8_t(s);
      int s = 0;
      for (int c = 0; c < m; ++c) {
        const std::uint8_t on = new_mask(i, g * m + c);
        if (!on) continue;
        SPARSENM_CHECK(on == 1 && s < n, "slot_map: new_mask row ", i, " group ", g,
                       " is not row-wise legal for ", nm);
        const bool restart = fresh && (*fresh)(i, g * m + c);
        map.source(i, g * n + s) = restart ? std::int8_t(-1) : slot_of[c];
        ++s;
      }
      SPARSENM_CHECK(s == n, "slot_map: new_mask row ", i, " group ", g, " has ", s,
                     " ones but must have n = ", n);
    }
  return map;
}

/// Moves `weight` to `new_mask` (row-wise legal for weight.nm) and returns the SlotMap: values of
/// entries active before and after stay, the others start at 0 (CHTs24 Alg. 1 step 5). With
/// `fresh` (see slot_map) revived entries start at 0 too. No dense matrix is formed.
template <class S>
SlotMap move_to_mask(NMCompressed<S>& weight, const Mask& new_mask, const Mask* fresh = nullptr) {
  SlotMap map = slot_map(weight, new_mask, fresh);
  remap_slots<S>(weight.values, map);
  const int n = weight.nm.n, m = weight.nm.m;
  const Index groups = weight.cols / m;
  for (Index i = 0; i < weight.rows; ++i)
    for (Index g = 0; g < groups; ++g) {
      int s = 0;
      for (int c = 0; c < m; ++c)
        if (new_mask(i, g * m + c)) weight.indices(i, g * n + s++) = std::uint8_t(c);
    }
  return map;
}

/// Scatters `slots` (rows x nnz-per-row, the layout of structure.values) to the dense row-major
/// (rows x cols) `dense` under structure's indices, zeros elsewhere (e.g. an optimizer's masked
/// update as the dense Newton-Schulz input). Rows in parallel; no checks (internal helper).
template <class S>
void scatter_slots(const NMCompressed<S>& structure, const S* slots, S* dense) {
  const int n = structure.nm.n, m = structure.nm.m;
  const Index k = structure.values.cols(), cols = structure.cols;
  const std::uint8_t* idx = structure.indices.data();
  parallel_for(
      Index(0), structure.rows,
      [&](Index r) {
        S* d = dense + r * cols;
        const S* v = slots + r * k;
        const std::uint8_t* ix = idx + r * k;
        std::fill(d, d + cols, S(0));
        // Group by group: no division per slot (it cost TANS's compressed step ~2 ms at 2:4).
        for (Index j = 0; j < k; d += m)
          for (int t = 0; t < n; ++t, ++j) d[ix[j]] = v[j];
      },
      Index(64));
}

/// The inverse of scatter_slots: slots(r, j) = dense(r, column of slot j).
template <class S>
void gather_slots(const NMCompressed<S>& structure, const S* dense, S* slots) {
  const int n = structure.nm.n, m = structure.nm.m;
  const Index k = structure.values.cols(), cols = structure.cols;
  const std::uint8_t* idx = structure.indices.data();
  parallel_for(
      Index(0), structure.rows,
      [&](Index r) {
        const S* d = dense + r * cols;
        S* v = slots + r * k;
        const std::uint8_t* ix = idx + r * k;
        for (Index j = 0; j < k; d += m)
          for (int t = 0; t < n; ++t, ++j) v[j] = d[ix[j]];
      },
      Index(64));
}

/// The 0/1 mask (rows x cols) of a compressed weight, rebuilt from its indices.
template <class S>
Mask mask_of(const NMCompressed<S>& c) {
  Mask mask = Mask::Zero(c.rows, c.cols);
  const int n = c.nm.n, m = c.nm.m;
  for (Index i = 0; i < c.rows; ++i)
    for (Index j = 0; j < c.values.cols(); ++j) mask(i, (j / n) * m + c.indices(i, j)) = 1;
  return mask;
}

}  // namespace sparsenm

#endif  // SPARSENM_MASK_COMPRESS_HPP
