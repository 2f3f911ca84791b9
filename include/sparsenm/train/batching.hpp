// SPDX-License-Identifier: Apache-2.0
// Mini-batch shuffling and gathering. The permutation of an epoch is a Fisher-Yates shuffle whose
// i-th draw uses counter i of the epoch's Philox sub-stream, so it depends only on (seed, epoch).
#ifndef SPARSENM_TRAIN_BATCHING_HPP
#define SPARSENM_TRAIN_BATCHING_HPP

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"

namespace sparsenm {

/// A uniformly random permutation of [0, n) (Fisher-Yates; the draw for position i uses counter
/// i, with 64-bit multiply-shift to map 32 random bits to [0, i] without modulo bias beyond 2^-32).
inline std::vector<Index> random_permutation(Index n, const Philox& rng);

/// Splits a shuffled epoch into mini-batches: `begin(epoch)` reshuffles with rng.split(epoch),
/// then `next(images, labels, x, y)` fills the next batch (the last one may be smaller) until it
/// returns false. The order depends only on (rng, epoch), so a resumed run sees the same batches.
/// \code
///   BatchSampler sampler(train.images.rows(), 128, Philox(seed));
///   for (std::uint64_t epoch = 0; epoch < epochs; ++epoch) {
///     sampler.begin(epoch);
///     while (sampler.next(train.images, train.labels, x, y)) { ... }
///   }
/// \endcode
class BatchSampler {
 public:
  /// `samples` rows in the data set, `batch` rows per mini-batch (both >= 1, else
  /// sparsenm::Error); starts at epoch 0 (begin(0)).
  BatchSampler(Index samples, Index batch, const Philox& rng);
  /// Starts `epoch`: a fresh permutation from rng.split(epoch), position back to the first batch.
  void begin(std::uint64_t epoch);
  /// Gathers the next mini-batch of the epoch: x = the images rows (min(batch, remaining), cols)
  /// in shuffled order and y their labels. Returns false, leaving x and y unchanged, once the
  /// epoch is exhausted. Throws sparsenm::Error unless images has `samples` rows and labels
  /// `samples` entries.
  template <class S>
  bool next(const Matrix<S>& images, const std::vector<int>& labels, Matrix<S>& x,
            std::vector<int>& y);
  /// ceil(samples / batch): calls of next() that return true per epoch.
  Index batches_per_epoch() const { return (m_samples + m_batch - 1) / m_batch; }
  /// Rows in the data set.
  Index samples() const { return m_samples; }
  /// Rows per mini-batch (the last batch of an epoch may be smaller).
  Index batch() const { return m_batch; }

 private:
  Index m_samples, m_batch;
  Philox m_rng;
  std::vector<Index> m_order;
  Index m_pos = 0;
};

/// Copies rows idx[begin..end) of `src` into `dst` (resized to (end - begin, src.cols())).
template <class S>
void gather_rows(const Matrix<S>& src, const std::vector<Index>& idx, Index begin, Index end,
                 Matrix<S>& dst);

// ---------------------------------------------------------------------------------------------

inline std::vector<Index> random_permutation(Index n, const Philox& rng) {
  SPARSENM_CHECK(n >= 0, "n = ", n, " must be >= 0");
  std::vector<Index> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), Index(0));
  for (Index i = n - 1; i > 0; --i) {
    const std::uint64_t r = rng.bits(static_cast<std::uint64_t>(i));
    const auto j = static_cast<Index>((r * static_cast<std::uint64_t>(i + 1)) >> 32);
    std::swap(p[static_cast<std::size_t>(i)], p[static_cast<std::size_t>(j)]);
  }
  return p;
}

inline BatchSampler::BatchSampler(Index samples, Index batch, const Philox& rng)
    : m_samples(samples), m_batch(batch), m_rng(rng) {
  check_at_least(samples, 1, "samples");
  check_at_least(batch, 1, "batch");
  begin(0);
}

inline void BatchSampler::begin(std::uint64_t epoch) {
  m_order = random_permutation(m_samples, m_rng.split(epoch));
  m_pos = 0;
}

template <class S>
bool BatchSampler::next(const Matrix<S>& images, const std::vector<int>& labels, Matrix<S>& x,
                        std::vector<int>& y) {
  SPARSENM_CHECK(images.rows() == m_samples && static_cast<Index>(labels.size()) == m_samples,
                 "BatchSampler was built for ", m_samples, " samples but got images with ",
                 images.rows(), " rows and ", labels.size(), " labels");
  if (m_pos >= m_samples) return false;
  const Index end = std::min(m_samples, m_pos + m_batch);
  gather_rows(images, m_order, m_pos, end, x);
  y.resize(static_cast<std::size_t>(end - m_pos));
  for (Index i = m_pos; i < end; ++i)
    y[static_cast<std::size_t>(i - m_pos)] = labels[static_cast<std::size_t>(m_order[i])];
  m_pos = end;
  return true;
}

template <class S>
void gather_rows(const Matrix<S>& src, const std::vector<Index>& idx, Index begin, Index end,
                 Matrix<S>& dst) {
  SPARSENM_CHECK(0 <= begin && begin <= end && end <= static_cast<Index>(idx.size()),
                 "gather_rows: range [", begin, ", ", end, ") outside idx of size ", idx.size());
  dst.resize(end - begin, src.cols());
  for (Index i = begin; i < end; ++i) {
    const Index r = idx[static_cast<std::size_t>(i)];
    SPARSENM_CHECK(r >= 0 && r < src.rows(), "gather_rows: idx[", i, "] = ", r, " outside [0, ",
                   src.rows(), ")");
    dst.row(i - begin) = src.row(r);
  }
}

}  // namespace sparsenm

#endif  // SPARSENM_TRAIN_BATCHING_HPP
