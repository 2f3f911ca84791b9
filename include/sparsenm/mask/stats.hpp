// SPDX-License-Identifier: Apache-2.0
// Mask statistics: density, flip rate, changed count, and pattern histograms.
#ifndef SPARSENM_MASK_STATS_HPP
#define SPARSENM_MASK_STATS_HPP

#include <cstdint>
#include <map>
#include <vector>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"

namespace sparsenm {

/// density = fraction of ones in `now`; changed = number of entries where `now` and `before`
/// differ; flip_rate = changed / number of entries. All 0 for empty masks.
struct MaskStats {
  /// Fraction of ones in `now`.
  double density;
  /// changed / number of entries.
  double flip_rate;
  /// Entries where `now` and `before` differ.
  Eigen::Index changed;
};

/// Compares two masks of the same shape (throws sparsenm::Error on a shape mismatch or a value
/// other than 0/1).
inline MaskStats mask_stats(const Mask& now, const Mask& before) {
  check_same_shape(now, before, "mask_stats: now", "before");
  check_binary(now, "mask_stats: now");
  check_binary(before, "mask_stats: before");
  const Index size = now.size();
  Index ones = 0, changed = 0;
  const std::uint8_t* a = now.data();
  const std::uint8_t* b = before.data();
  for (Index k = 0; k < size; ++k) {
    ones += a[k];
    changed += a[k] != b[k];
  }
  if (size == 0) return MaskStats{0.0, 0.0, 0};
  return MaskStats{double(ones) / double(size), double(changed) / double(size), changed};
}

/// How often each tile pattern occurs. A pattern is the bitmask of its tile: bit c for a row-wise
/// group (1 x m), bit (r*m + c) for a transposable tile (m x m, m <= 8). `patterns` is ascending,
/// `counts[i]` goes with `patterns[i]`; `illegal` counts tiles that are not legal for nm (they are
/// listed too). Useful to watch the search over the 90 atomic topologies (chts24 Sec. 3.3).
struct PatternHistogram {
  /// The distinct tile patterns seen, ascending.
  std::vector<std::uint64_t> patterns;
  /// How often each pattern occurs (counts[i] goes with patterns[i]).
  std::vector<Index> counts;
  /// Tiles that are not legal for nm.
  Index illegal = 0;
  /// All tiles counted.
  Index total = 0;
};

inline PatternHistogram pattern_histogram(const Mask& mask, NM nm, Layout layout) {
  check_nm(nm, "pattern_histogram: nm");
  check_binary(mask, "pattern_histogram: mask");
  check_divisible(mask.cols(), nm.m, "pattern_histogram: mask.cols()", "m");
  const int m = nm.m;
  std::map<std::uint64_t, Index> hist;
  PatternHistogram h;
  if (layout == Layout::RowWise) {
    for (Index i = 0; i < mask.rows(); ++i)
      for (Index j = 0; j < mask.cols(); j += m) {
        std::uint64_t bits = 0;
        int cnt = 0;
        for (int c = 0; c < m; ++c) {
          bits |= std::uint64_t(mask(i, j + c)) << c;
          cnt += mask(i, j + c);
        }
        ++hist[bits];
        h.illegal += cnt != nm.n;
        ++h.total;
      }
  } else {
    SPARSENM_CHECK(m <= 8, "pattern_histogram: nm = ", nm,
                   ": transposable tiles need m <= 8 (64-bit patterns)");
    check_divisible(mask.rows(), nm.m, "pattern_histogram: mask.rows()", "m");
    for (Index i = 0; i < mask.rows(); i += m)
      for (Index j = 0; j < mask.cols(); j += m) {
        std::uint64_t bits = 0;
        bool legal = true;
        for (int r = 0; r < m; ++r) {
          int rc = 0, cc = 0;
          for (int c = 0; c < m; ++c) {
            bits |= std::uint64_t(mask(i + r, j + c)) << (r * m + c);
            rc += mask(i + r, j + c);
            cc += mask(i + c, j + r);
          }
          legal = legal && rc == nm.n && cc == nm.n;
        }
        ++hist[bits];
        h.illegal += !legal;
        ++h.total;
      }
  }
  for (const auto& kv : hist) {
    h.patterns.push_back(kv.first);
    h.counts.push_back(kv.second);
  }
  return h;
}

}  // namespace sparsenm

#endif  // SPARSENM_MASK_STATS_HPP
