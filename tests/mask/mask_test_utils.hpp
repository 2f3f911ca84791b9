// SPDX-License-Identifier: Apache-2.0
// Independent references for the mask tests: sort-based row-wise top-n, brute force over the
// pattern library, branch-and-bound exhaustive search for any m.
#ifndef SPARSENM_TESTS_MASK_MASK_TEST_UTILS_HPP
#define SPARSENM_TESTS_MASK_MASK_TEST_UTILS_HPP

#include <algorithm>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include <sparsenm/mask.hpp>

namespace sparsenm {
namespace test {

/// Row-wise reference: stable sort of the group's indices by decreasing score; keep the first n.
template <class S>
Mask rowwise_reference(const Matrix<S>& s, NM nm) {
  Mask out = Mask::Zero(s.rows(), s.cols());
  for (Index i = 0; i < s.rows(); ++i)
    for (Index g = 0; g < s.cols(); g += nm.m) {
      std::vector<int> idx(static_cast<std::size_t>(nm.m));
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(),
                       [&](int a, int b) { return s(i, g + a) > s(i, g + b); });
      for (int k = 0; k < nm.n; ++k) out(i, g + idx[static_cast<std::size_t>(k)]) = 1;
    }
  return out;
}

/// Score of tile (bi, bj) of size m under a tile mask given as bits (r*m + c), summed in double.
template <class S>
double tile_sum(const Matrix<S>& s, Index bi, Index bj, int m, std::uint64_t bits) {
  double acc = 0;
  for (int r = 0; r < m; ++r)
    for (int c = 0; c < m; ++c)
      if ((bits >> (r * m + c)) & 1u) acc += double(s(bi * m + r, bj * m + c));
  return acc;
}

template <class S>
double tile_sum(const Matrix<S>& s, Index bi, Index bj, int m, const Mask& mask) {
  double acc = 0;
  for (int r = 0; r < m; ++r)
    for (int c = 0; c < m; ++c)
      if (mask(bi * m + r, bj * m + c)) acc += double(s(bi * m + r, bj * m + c));
  return acc;
}

/// Exhaustive branch-and-bound over all legal m x m tiles (row by row, each row's n-subsets in
/// order of decreasing sum, bound = current + best row-wise completion). Returns the max sum.
inline double exhaustive_best(const std::vector<double>& w, int m, int n) {
  std::vector<std::uint32_t> choices;
  for (std::uint32_t b = 0; b < (1u << m); ++b)
    if (__builtin_popcount(b) == n) choices.push_back(b);
  std::vector<std::vector<std::pair<double, std::uint32_t>>> rows(static_cast<std::size_t>(m));
  std::vector<double> row_best(static_cast<std::size_t>(m) + 1, 0.0);
  for (int r = 0; r < m; ++r) {
    for (std::uint32_t ch : choices) {
      double v = 0;
      for (int c = 0; c < m; ++c)
        if ((ch >> c) & 1u) v += w[static_cast<std::size_t>(r * m + c)];
      rows[static_cast<std::size_t>(r)].push_back({v, ch});
    }
    std::sort(rows[static_cast<std::size_t>(r)].begin(), rows[static_cast<std::size_t>(r)].end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
  }
  // suffix sums of each row's unconstrained best
  for (int r = m - 1; r >= 0; --r)
    row_best[static_cast<std::size_t>(r)] =
        row_best[static_cast<std::size_t>(r) + 1] + rows[static_cast<std::size_t>(r)][0].first;
  std::vector<int> cap(static_cast<std::size_t>(m), n);
  double best = -1e300;
  std::function<void(int, double)> go = [&](int r, double cur) {
    if (r == m) {
      best = std::max(best, cur);
      return;
    }
    if (cur + row_best[static_cast<std::size_t>(r)] <= best) return;
    const int rows_left = m - r;
    for (const auto& [v, ch] : rows[static_cast<std::size_t>(r)]) {
      if (cur + v + row_best[static_cast<std::size_t>(r) + 1] <= best) break;  // sorted: no better
      bool ok = true;
      for (int c = 0; c < m && ok; ++c) {
        const int left = cap[static_cast<std::size_t>(c)] - int((ch >> c) & 1u);
        ok = left >= 0 && left <= rows_left - 1;
      }
      if (!ok) continue;
      for (int c = 0; c < m; ++c) cap[static_cast<std::size_t>(c)] -= int((ch >> c) & 1u);
      go(r + 1, cur + v);
      for (int c = 0; c < m; ++c) cap[static_cast<std::size_t>(c)] += int((ch >> c) & 1u);
    }
  };
  go(0, 0.0);
  return best;
}

/// Random scores; with `ties` the values come from a small integer set so ties are frequent.
template <class S>
Matrix<S> random_scores(Index rows, Index cols, unsigned seed, bool ties = false) {
  std::mt19937 gen(seed);
  Matrix<S> s(rows, cols);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::uniform_int_distribution<int> k(0, 3);
  for (Index i = 0; i < rows; ++i)
    for (Index j = 0; j < cols; ++j) s(i, j) = ties ? S(k(gen)) : S(u(gen));
  return s;
}

}  // namespace test
}  // namespace sparsenm

#endif  // SPARSENM_TESTS_MASK_MASK_TEST_UTILS_HPP
