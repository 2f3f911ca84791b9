// SPDX-License-Identifier: Apache-2.0
// Uniform sampling of a legal m x m transposable N:M tile without a pattern table (m up to 12).
//
// Row by row: the number of completions of a partial tile depends only on the multiset of column
// capacities left (a column-sum DP, memoised on the sorted capacities), so choosing each row's
// n-subset with probability proportional to its number of completions gives every legal tile the
// same probability 1 / |P| (CHTs24 Sec. 3.2.1's uniform prior, for any m).
#ifndef SPARSENM_MASK_DETAIL_TRANSPOSABLE_SAMPLER_HPP
#define SPARSENM_MASK_DETAIL_TRANSPOSABLE_SAMPLER_HPP

#include <algorithm>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include "../../core/philox.hpp"
#include "../../core/types.hpp"
#include "../patterns.hpp"

namespace sparsenm {
namespace detail {

class TransposableSampler {
 public:
  static constexpr int kMaxM = 12;

  TransposableSampler(int m, int n) : m_m(m), m_n(n), m_choices(row_choices(m, n)) {}

  /// Number of ways to fill `rows_left` rows given column capacities `caps` (any order).
  double count(const std::vector<int>& caps, int rows_left) {
    std::vector<int> sorted(caps);
    std::sort(sorted.begin(), sorted.end(), std::greater<int>());
    if (rows_left == 0) return sorted.empty() || sorted.front() == 0 ? 1.0 : 0.0;
    if (sorted.front() > rows_left) return 0.0;
    std::uint64_t key = std::uint64_t(rows_left);
    for (int c : sorted) key = key * 16u + std::uint64_t(c);
    const auto it = m_memo.find(key);
    if (it != m_memo.end()) return it->second;
    double total = 0;
    std::vector<int> next(sorted.size());
    for (std::uint32_t ch : m_choices) {
      bool ok = true;
      for (int c = 0; c < m_m && ok; ++c) {
        next[std::size_t(c)] = sorted[std::size_t(c)] - int((ch >> c) & 1u);
        ok = next[std::size_t(c)] >= 0;
      }
      if (ok) total += count(next, rows_left - 1);
    }
    m_memo.emplace(key, total);
    return total;
  }

  /// Draws one tile; row r uses uniform(counter_of_row(r)). Writes 0/1 into out (stride).
  template <class CounterOfRow>
  void sample(const Philox& rng, CounterOfRow&& counter_of_row, std::uint8_t* out, Index stride) {
    std::vector<int> caps(static_cast<std::size_t>(m_m), m_n);
    std::vector<int> next(static_cast<std::size_t>(m_m));
    for (int r = 0; r < m_m; ++r) {
      const int rows_left = m_m - r - 1;
      const double total = count(caps, rows_left + 1);
      const double u = rng.uniform(counter_of_row(r)) * total;
      double acc = 0;
      std::uint32_t pick = 0;
      for (std::uint32_t ch : m_choices) {
        bool ok = true;
        for (int c = 0; c < m_m && ok; ++c) {
          next[std::size_t(c)] = caps[std::size_t(c)] - int((ch >> c) & 1u);
          ok = next[std::size_t(c)] >= 0;
        }
        if (!ok) continue;
        const double w = count(next, rows_left);
        if (w <= 0) continue;
        pick = ch;  // last feasible choice is the fallback against rounding
        acc += w;
        if (u < acc) break;
      }
      for (int c = 0; c < m_m; ++c) {
        const int bit = int((pick >> c) & 1u);
        caps[std::size_t(c)] -= bit;
        out[r * stride + c] = std::uint8_t(bit);
      }
    }
  }

 private:
  int m_m, m_n;
  std::vector<std::uint32_t> m_choices;
  std::unordered_map<std::uint64_t, double> m_memo;
};

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_MASK_DETAIL_TRANSPOSABLE_SAMPLER_HPP
