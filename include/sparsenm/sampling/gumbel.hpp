// SPDX-License-Identifier: Apache-2.0
// Gumbel-top-k: k indices sampled without replacement with probability ∝ exp(logit) (Kool et al.
// 2019; the log-space view of chts24 App. A).
#ifndef SPARSENM_SAMPLING_GUMBEL_HPP
#define SPARSENM_SAMPLING_GUMBEL_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"

namespace sparsenm {

/// Returns the k linear indices (row-major: i * cols + j) with the largest logit + G, G ~
/// Gumbel(0,1) = -ln(-ln U) with U from `rng` at counter = linear index; ordered by decreasing
/// perturbed value (ties -> lower index). Equivalent in distribution to drawing k times without
/// replacement with P ∝ exp(logit). -Inf logits are never drawn before finite ones; NaN or +Inf
/// throws sparsenm::Error, as does k outside [0, size].
template <class Derived>
std::vector<Eigen::Index> gumbel_topk(const Eigen::MatrixBase<Derived>& logits, Eigen::Index k,
                                      const Philox& rng) {
  const Index rows = logits.rows(), cols = logits.cols(), size = rows * cols;
  SPARSENM_CHECK(k >= 0 && k <= size, "gumbel_topk: k = ", k, " must be in [0, ", size, "]");
  std::vector<double> key(static_cast<std::size_t>(size));
  for (Index i = 0; i < rows; ++i)
    for (Index j = 0; j < cols; ++j) {
      const double l = double(logits(i, j));
      SPARSENM_CHECK(!std::isnan(l) && l != std::numeric_limits<double>::infinity(),
                     "gumbel_topk: logits(", i, ", ", j, ") = ", l, " must not be NaN or +Inf");
      const Index lin = i * cols + j;
      key[std::size_t(lin)] = l - std::log(-std::log(rng.uniform(std::uint64_t(lin))));
    }
  std::vector<Index> idx(static_cast<std::size_t>(size));
  for (Index t = 0; t < size; ++t) idx[std::size_t(t)] = t;
  auto better = [&](Index a, Index b) {
    const double ka = key[std::size_t(a)], kb = key[std::size_t(b)];
    return ka > kb || (ka == kb && a < b);
  };
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), better);
  idx.resize(std::size_t(k));
  return idx;
}

}  // namespace sparsenm

#endif  // SPARSENM_SAMPLING_GUMBEL_HPP
