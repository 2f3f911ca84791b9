// SPDX-License-Identifier: Apache-2.0
// The removal step of a refresh (CHTs24 Sec. 3.2.2; docs/algorithms.md "CHTs24 / CHTsNM refresh",
// step 1): drop the floor(ζ · active) active entries with the smallest removal scores, ties to
// the lower linear index. Written as a radix selection over order-preserving integer keys so that
// a 4096 x 4096 layer (8 M active entries) does not sort or nth_element 8 M (score, index) pairs.
#ifndef SPARSENM_TOPOLOGY_DETAIL_SELECT_REMOVAL_HPP
#define SPARSENM_TOPOLOGY_DETAIL_SELECT_REMOVAL_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "../../core/parallel.hpp"
#include "../../core/types.hpp"

namespace sparsenm {
namespace detail {

/// Unsigned integer key of a float or double that orders like the number: a < b iff
/// order_key(a) < order_key(b) for non-NaN a, b, and -0 and +0 get the same key (they compare
/// equal as numbers, so the index decides between them, as in a sort of (score, index) pairs).
template <class S>
auto order_key(S v) {
  static_assert(std::is_floating_point<S>::value, "order_key: float or double");
  using U = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
  constexpr U sign = U(1) << (8 * sizeof(U) - 1);
  v = v + S(0);  // -0 + 0 = +0
  U b;
  std::memcpy(&b, &v, sizeof(S));
  return (b & sign) ? U(~b) : U(b | sign);
}

/// Zeroes mask[k] for the `need` smallest (key, k) among the candidates, given as lists whose
/// concatenation is in ascending k: the need-th smallest key K by nth_element over the keys, then,
/// in index order, every key below K and the first keys equal to K (ties are common: e.g. regrown
/// weights are exactly 0).
template <class U>
void remove_smallest_candidates(const std::vector<std::vector<std::pair<U, Index>>>& cand,
                                Index need, std::uint8_t* mask) {
  std::size_t size = 0;
  for (const auto& c : cand) size += c.size();
  std::vector<U> keys;
  keys.reserve(size);
  for (const auto& c : cand)
    for (const auto& e : c) keys.push_back(e.first);
  std::nth_element(keys.begin(), keys.begin() + (need - 1), keys.end());
  const U kth = keys[static_cast<std::size_t>(need - 1)];
  Index less = 0;
  for (U k : keys) less += k < kth;
  Index equal_left = need - less;
  for (const auto& c : cand)
    for (const auto& e : c)
      if (e.first < kth || (e.first == kth && equal_left-- > 0)) mask[e.second] = 0;
}

/// Zeroes in `mask` (rows x cols, row-major bytes, 0/1) the floor(fraction · active) active
/// entries with the smallest (score, linear index) — exactly the ones an ascending sort of the
/// pairs (score[k], k) over active k lists first — and returns that number; `active` receives
/// the number of active entries. Scores must not be NaN.
///
/// Two passes over the layer: a histogram of the top 16 key bits (per thread, summed: integer
/// counts, so the result does not depend on the thread count) finds the bin holding the cut;
/// then everything below that bin is removed, and the (key, index) pairs inside it, collected in
/// index order, go to remove_smallest_candidates. Small layers skip the histogram.
template <class S>
Index remove_smallest_fraction(const S* score, std::uint8_t* mask, Index rows, Index cols,
                               double fraction, Index& active, bool par = true) {
  using U = decltype(order_key(S(0)));
  if (rows * cols < (Index(1) << 18)) {  // small layer: every active entry is a candidate
    std::vector<std::vector<std::pair<U, Index>>> all(1);
    for (Index k = 0; k < rows * cols; ++k)
      if (mask[k]) all[0].emplace_back(order_key(score[k]), k);
    active = static_cast<Index>(all[0].size());
    const Index count = static_cast<Index>(std::floor(double(active) * fraction));
    if (count > 0) remove_smallest_candidates(all, count, mask);
    return count;
  }
  constexpr int kShift = 8 * int(sizeof(U)) - 16;
  constexpr Index kBins = Index(1) << 16;
  const Index parts = par ? std::max(1, thread_count()) : 1;
  auto rows_of = [&](Index t) { return std::make_pair(t * rows / parts, (t + 1) * rows / parts); };
  std::vector<std::vector<Index>> hist(static_cast<std::size_t>(parts));
  parallel_for(
      0, parts,
      [&](Index t) {
        std::vector<Index>& h = hist[static_cast<std::size_t>(t)];
        h.assign(static_cast<std::size_t>(kBins), 0);
        const auto range = rows_of(t);
        // Branch-free: about half the entries are active, in no predictable order.
        for (Index k = range.first * cols; k < range.second * cols; ++k)
          h[static_cast<std::size_t>(order_key(score[k]) >> kShift)] += mask[k];
      },
      par ? Index(2) : Index(1) << 62);
  std::vector<Index> total(static_cast<std::size_t>(kBins), 0);
  for (const auto& h : hist)
    for (Index b = 0; b < kBins; ++b)
      total[static_cast<std::size_t>(b)] += h[static_cast<std::size_t>(b)];
  active = 0;
  for (Index b = 0; b < kBins; ++b) active += total[static_cast<std::size_t>(b)];
  const Index count = static_cast<Index>(std::floor(double(active) * fraction));
  if (count <= 0) return 0;
  Index cut = 0, below = 0;
  while (below + total[static_cast<std::size_t>(cut)] < count)
    below += total[static_cast<std::size_t>(cut++)];

  std::vector<std::vector<std::pair<U, Index>>> cand(static_cast<std::size_t>(parts));
  parallel_for(
      0, parts,
      [&](Index t) {
        const auto range = rows_of(t);
        auto& c = cand[static_cast<std::size_t>(t)];
        c.reserve(static_cast<std::size_t>(
            hist[static_cast<std::size_t>(t)][static_cast<std::size_t>(cut)]));
        for (Index k = range.first * cols; k < range.second * cols; ++k) {
          const U key = order_key(score[k]);
          const Index bin = static_cast<Index>(key >> kShift);
          if (bin == cut && mask[k]) c.emplace_back(key, k);  // rare: one bin of 65536
          mask[k] = static_cast<std::uint8_t>(mask[k] & (bin >= cut));
        }
      },
      par ? Index(2) : Index(1) << 62);
  // Inside the cut bin (parts in row order: ascending index).
  remove_smallest_candidates(cand, count - below, mask);
  return count;
}

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_TOPOLOGY_DETAIL_SELECT_REMOVAL_HPP
