// SPDX-License-Identifier: Apache-2.0
// Exact transposable N:M selection for any m (STYLE.md section 3.2, "TransposableExact").
//
// Choosing the m x m tile with n ones per row and per column that maximises the kept score sum is a
// max-weight bipartite b-matching (rows and columns of the tile as the two sides, every node of
// degree n), i.e. a min-cost flow on the complete m x m bipartite graph. This solver is exact,
// unlike the 2-approximation of Hubara et al. 2021 (chts24 ref. [15]) used by other libraries.
//
// Algorithm: start from the row-wise top-n of every tile row. That pseudo-flow is optimal for its
// own column degrees (every row already holds its n best entries, so no alternating cycle gains),
// i.e. its residual graph has no negative cycle. Then repeat successive shortest paths: from the
// over-full columns (degree > n) to the under-full ones (degree < n) in the residual graph
//   column c -> row r  if (r, c) is kept    (cost +s_rc: drop it)
//   row r -> column c  if (r, c) is free    (cost -s_rc: take it)
// found with Bellman-Ford (2m nodes, m^2 arcs), and flip the entries along the path. Augmenting
// along shortest paths preserves the no-negative-cycle invariant, so the final tile is optimal.
// Work: O(excess * m^3) per tile, excess <= m*n/2 (usually a handful).
#ifndef SPARSENM_MASK_DETAIL_TRANSPOSABLE_EXACT_HPP
#define SPARSENM_MASK_DETAIL_TRANSPOSABLE_EXACT_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../../core/types.hpp"

namespace sparsenm {
namespace detail {

/// Reusable workspace of the b-matching solver for one m (per thread).
class BMatchingSolver {
 public:
  BMatchingSolver(int m, int n)
      : m_m(m),
        m_n(n),
        m_w(std::size_t(m) * m),
        m_x(std::size_t(m) * m),
        m_deg(std::size_t(m)),
        m_dist(std::size_t(2 * m)),
        m_pred(std::size_t(2 * m)) {}

  int m() const { return m_m; }
  /// Score of tile entry (r, c); fill before solve().
  double& w(int r, int c) { return m_w[std::size_t(r * m_m + c)]; }
  /// 1 if (r, c) is kept after solve().
  std::uint8_t x(int r, int c) const { return m_x[std::size_t(r * m_m + c)]; }

  /// Solves the tile; scores must be finite.
  void solve() {
    const int m = m_m, n = m_n;
    double scale = 0;
    for (double v : m_w) scale = std::max(scale, std::abs(v));
    // Relaxations must improve by more than rounding noise, so rounding can never close a
    // predecessor cycle (true ties are then resolved by the first path found).
    const double eps = (scale + 1e-300) * 1e-13 * m;
    std::fill(m_deg.begin(), m_deg.end(), 0);
    for (int r = 0; r < m; ++r) {
      const double* wr = &m_w[std::size_t(r * m)];
      for (int c = 0; c < m; ++c) {
        int rank = 0;
        for (int k = 0; k < m; ++k) rank += (wr[k] > wr[c]) || (wr[k] == wr[c] && k < c);
        const bool keep = rank < n;
        m_x[std::size_t(r * m + c)] = std::uint8_t(keep);
        m_deg[std::size_t(c)] += keep;
      }
    }
    const double inf = std::numeric_limits<double>::infinity();
    for (;;) {
      bool excess = false;
      for (int c = 0; c < m; ++c) excess |= m_deg[std::size_t(c)] > n;
      if (!excess) return;
      // Nodes: columns 0..m-1, rows m..2m-1. Multi-source Bellman-Ford from over-full columns.
      for (int v = 0; v < 2 * m; ++v) {
        m_dist[std::size_t(v)] = (v < m && m_deg[std::size_t(v)] > n) ? 0.0 : inf;
        m_pred[std::size_t(v)] = -1;
      }
      for (int round = 0; round < 2 * m; ++round) {
        bool changed = false;
        for (int r = 0; r < m; ++r)
          for (int c = 0; c < m; ++c) {
            const std::size_t e = std::size_t(r * m + c);
            if (m_x[e]) {  // column c -> row r, cost +w
              const double dc = m_dist[std::size_t(c)];
              if (dc < inf && dc + m_w[e] < m_dist[std::size_t(m + r)] - eps) {
                m_dist[std::size_t(m + r)] = dc + m_w[e];
                m_pred[std::size_t(m + r)] = c;
                changed = true;
              }
            } else {  // row r -> column c, cost -w
              const double dr = m_dist[std::size_t(m + r)];
              if (dr < inf && dr - m_w[e] < m_dist[std::size_t(c)] - eps) {
                m_dist[std::size_t(c)] = dr - m_w[e];
                m_pred[std::size_t(c)] = m + r;
                changed = true;
              }
            }
          }
        if (!changed) break;
      }
      int target = -1;
      for (int c = 0; c < m; ++c)
        if (m_deg[std::size_t(c)] < n && m_dist[std::size_t(c)] < inf &&
            (target < 0 || m_dist[std::size_t(c)] < m_dist[std::size_t(target)]))
          target = c;
      if (target < 0) return;  // unreachable for a feasible instance
      // Walk back: column <- row <- column ... until an over-full column (pred == -1).
      int v = target;
      int steps = 0;
      while (m_pred[std::size_t(v)] >= 0 && steps++ <= 2 * m) {
        const int u = m_pred[std::size_t(v)];
        if (v < m) {  // arc row u -> column v: take (u - m, v)
          m_x[std::size_t((u - m) * m + v)] = 1;
        } else {  // arc column u -> row v: drop (v - m, u)
          m_x[std::size_t((v - m) * m + u)] = 0;
        }
        v = u;
      }
      m_deg[std::size_t(target)] += 1;
      m_deg[std::size_t(v)] -= 1;
    }
  }

 private:
  int m_m, m_n;
  std::vector<double> m_w;
  std::vector<std::uint8_t> m_x;
  std::vector<int> m_deg;
  std::vector<double> m_dist;
  std::vector<int> m_pred;
};

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_MASK_DETAIL_TRANSPOSABLE_EXACT_HPP
