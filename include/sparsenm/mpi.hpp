// SPDX-License-Identifier: Apache-2.0
// Data-parallel sparse training over MPI (optional: include this header and link sparsenm::mpi;
// nothing else in sparsenm needs MPI, and sparsenm.hpp does not include it).
//
// Every rank holds the whole model and trains on a disjoint shard of each global batch
// (shard_of). After the backward pass the gradients are summed over the ranks and averaged; each
// rank then takes the same optimizer step, so the replicas stay identical. N:M sparsity makes this
// cheaper than for a dense model in two ways:
//  - a sparse layer's gradient is reduced as its compressed values only (SparseLinear::grad_values,
//    n/m of the dense bytes: 1:4 sends about a quarter of what the dense model sends);
//  - the topology refresh needs no communication at all: it is a deterministic function of the
//    (identical) weights, gradients and the counter-based RNG's seed and step, so every rank
//    computes the same new mask. check_agreement() verifies that cheaply (one 16-byte all-reduce of
//    a hash of every sparse layer's indices and values and the step) and throws if ranks diverged.
//
// Reduction order. MpiReduction::Ordered (default) all-gathers each bucket and sums the ranks'
// contributions in rank order on every rank, then multiplies by 1/K: the result depends neither on
// timing nor on MPI's choice of algorithm, and equals, bit for bit, one process that accumulates
// the K shards' gradients in rank order (tests/mpi). MpiReduction::Native uses MPI_Iallreduce,
// which sends less for K > 2 (about 2 (K-1)/K of the payload per rank with a ring instead of
// (K-1) times it) but whose rounding depends on the MPI library's algorithm.
//
// Overlap. Gradients are packed into buckets of about MpiConfig::bucket_bytes; a bucket's
// non-blocking collective starts as soon as it is full, so a loop that post()s each layer's
// gradients right after that layer's backward (last layer first) overlaps communication with the
// backward of the earlier layers; wait() completes everything and writes the averages back.
// all_reduce_gradients(trainer) is the one-call form.
//
// The loop (see examples/fashion_mnist_mpi.cpp):
// \code
//   MPI_Init(&argc, &argv);
//   MpiDataParallel<float> dp;                    // MPI_COMM_WORLD
//   const Shard mine = shard_of(global_batch, dp.rank(), dp.size());
//   for (long step = 1; step <= steps; ++step) {
//     ... forward / backward on rows [mine.begin, mine.begin + mine.count) of the global batch,
//         the loss averaged over those rows ...
//     dp.step(trainer, step);                     // all-reduce, optimizer step, refresh, agreement
//   }
//   dp.save(trainer, "run.ckpt");                 // rank 0 writes; any number of ranks can load
// \endcode
#ifndef SPARSENM_MPI_HPP
#define SPARSENM_MPI_HPP

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "core/error.hpp"
#include "core/types.hpp"
#include "nn/sparse_trainer.hpp"

namespace sparsenm {

/// How gradients are summed over the ranks (see the file comment).
enum class MpiReduction {
  Ordered,  ///< all-gather + sum in rank order: deterministic, bit-identical to rank-order
            ///< accumulation
  Native    ///< MPI_Iallreduce(MPI_SUM): fewer bytes for more than 2 ranks, MPI-defined rounding
};

/// MpiDataParallel settings.
struct MpiConfig {
  MpiReduction reduction = MpiReduction::Ordered;  ///< how the ranks' gradients are summed
  /// Divide the sum by the number of ranks (each rank's loss is a mean over its shard, so the
  /// average is the gradient of the mean over the global batch).
  bool average = true;
  /// Gradients are packed into buckets of this many bytes (the last one smaller); each bucket is
  /// one non-blocking collective. 4 MiB: large enough to amortise MPI's per-call latency, small
  /// enough that the first buckets start while later gradients are still being computed.
  std::size_t bucket_bytes = std::size_t(4) << 20;
  /// Run check_agreement() in step() after every step that refreshed a layer.
  bool check_on_refresh = true;

  /// Throws sparsenm::Error naming a field out of its range.
  void validate() const {
    SPARSENM_CHECK(bucket_bytes >= 64 && bucket_bytes <= (std::size_t(1) << 30),
                   "MpiConfig: bucket_bytes = ", bucket_bytes, " (must be in [64, 2^30])");
  }
};

/// Rows [begin, begin + count) of a global batch.
struct Shard {
  Index begin = 0;  ///< first row of the shard
  Index count = 0;  ///< rows in the shard
};

/// The shard of `rank` among `ranks`: contiguous, disjoint, equal slices of a global batch, rank 0
/// first. Throws sparsenm::Error unless 0 <= rank < ranks and global_batch is a positive multiple
/// of ranks (equal shards keep the average of the ranks' mean losses equal to the global mean).
inline Shard shard_of(Index global_batch, int rank, int ranks) {
  SPARSENM_CHECK(ranks > 0 && rank >= 0 && rank < ranks, "shard_of: rank ", rank, " of ", ranks,
                 " (must be 0 <= rank < ranks)");
  SPARSENM_CHECK(global_batch > 0 && global_batch % ranks == 0, "shard_of: global batch ",
                 global_batch, " is not a positive multiple of the ", ranks, " ranks");
  const Index per = global_batch / ranks;
  return {per * rank, per};
}

namespace detail {
template <class S>
MPI_Datatype mpi_type() {
  static_assert(std::is_same<S, float>::value || std::is_same<S, double>::value,
                "MpiDataParallel: float or double");
  return std::is_same<S, float>::value ? MPI_FLOAT : MPI_DOUBLE;
}

/// A 64-bit hash of bytes (FNV-1a over 8-byte words, then a final avalanche): for comparing
/// replicas, not for security.
inline std::uint64_t hash_bytes(const void* data, std::size_t n, std::uint64_t h) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
  }
  for (; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

inline void mpi_check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    raise(concat("MpiDataParallel: ", what, " failed: ", std::string(msg, std::size_t(len))));
  }
}
}  // namespace detail

/// Sums (averages) gradients over the ranks of a communicator and keeps replicated sparse models
/// in step. One object per communicator and scalar type; not thread-safe (call it from the thread
/// that calls MPI).
template <class S>
class MpiDataParallel {
 public:
  /// Joins `comm` (every rank must construct it with the same config); throws for a bad config.
  explicit MpiDataParallel(MPI_Comm comm = MPI_COMM_WORLD, MpiConfig cfg = {})
      : m_comm(comm), m_cfg(cfg) {
    m_cfg.validate();
    int init = 0;
    MPI_Initialized(&init);
    SPARSENM_CHECK(init != 0, "MpiDataParallel: call MPI_Init before constructing it");
    detail::mpi_check(MPI_Comm_rank(comm, &m_rank), "MPI_Comm_rank");
    detail::mpi_check(MPI_Comm_size(comm, &m_size), "MPI_Comm_size");
    m_bucket_elems = std::max<std::size_t>(1, m_cfg.bucket_bytes / sizeof(S));
    // MPI counts and displacements are int: K buckets of the gather buffer must be addressable.
    SPARSENM_CHECK(std::size_t(m_size) * m_bucket_elems <= std::size_t(2147483647),
                   "MpiDataParallel: ", m_size, " ranks x bucket of ", m_cfg.bucket_bytes,
                   " bytes exceed MPI's int displacements; use a smaller bucket_bytes");
  }
  MpiDataParallel(const MpiDataParallel&) = delete;
  MpiDataParallel& operator=(const MpiDataParallel&) = delete;

  /// This process's rank in the communicator.
  int rank() const { return m_rank; }
  /// Number of ranks.
  int size() const { return m_size; }
  /// The settings.
  const MpiConfig& config() const { return m_cfg; }

  /// Queues a gradient for reduction (it is copied into the current bucket now; a full bucket
  /// starts its non-blocking collective at once). The gradient must stay alive until wait(), which
  /// overwrites it with the average. Every rank must post the same sequence of shapes.
  void post(Eigen::Map<Matrix<S>> grad) {
    const S* src = grad.data();
    std::size_t left = std::size_t(grad.size());
    S* dst = grad.data();
    m_payload += left * sizeof(S);
    if (m_size == 1) return;  // one rank: the gradient is already the sum and the average
    while (left > 0) {
      if (m_open == m_buckets.size()) m_buckets.emplace_back();
      Bucket& b = m_buckets[m_open];
      const std::size_t cap = m_bucket_elems;
      if (b.buf.empty()) b.buf.resize(ordered() ? std::size_t(m_size) * cap : cap);
      const std::size_t take = std::min(left, cap - b.used);
      // Ordered: straight into this rank's block of the gather buffer (gathered in place).
      std::copy(src, src + take, b.buf.data() + own_block() + b.used);
      m_pieces.push_back({dst, m_open, b.used, take});
      b.used += take;
      src += take;
      dst += take;
      left -= take;
      if (b.used == cap) start(m_open++);
    }
  }

  /// Completes every posted reduction and writes the sums (averages with MpiConfig::average)
  /// back into the posted gradients.
  void wait() {
    if (m_open < m_buckets.size() && m_buckets[m_open].used > 0) start(m_open++);
    for (std::size_t k = 0; k < m_open; ++k)
      detail::mpi_check(MPI_Wait(&m_buckets[k].request, MPI_STATUS_IGNORE), "MPI_Wait");
    const S scale = m_cfg.average && m_size > 1 ? S(1) / S(m_size) : S(1);
    const std::size_t cap = m_bucket_elems;
    for (const Piece& p : m_pieces) {
      const S* from = m_buckets[p.bucket].buf.data() + p.offset;
      if (ordered()) {
        // Rank order, the same on every rank: ((g_0 + g_1) + g_2) + ..., then the scale; one
        // pass from the gathered blocks into the gradient.
        for (std::size_t i = 0; i < p.count; ++i) {
          S sum = from[i];
          for (int r = 1; r < m_size; ++r) sum += from[std::size_t(r) * cap + i];
          p.dst[i] = sum * scale;
        }
      } else {
        for (std::size_t i = 0; i < p.count; ++i) p.dst[i] = from[i] * scale;
      }
    }
    m_last_payload = m_payload;
    m_last_sent = m_sent;
    m_pieces.clear();
    for (Bucket& bk : m_buckets) bk.used = 0;
    m_open = 0;
    m_payload = m_sent = 0;
  }

  /// Posts every gradient of the trainer, last registered first (the order a backward pass
  /// produces them), and waits: afterwards every rank holds the same averaged gradients.
  void all_reduce_gradients(SparseTrainer<S>& trainer) {
    std::vector<Eigen::Map<Matrix<S>>> grads;
    trainer.visit_gradients([&](Eigen::Map<Matrix<S>> g) { grads.push_back(g); });
    for (std::size_t k = grads.size(); k-- > 0;) post(grads[k]);
    wait();
  }

  /// One data-parallel training step: all_reduce_gradients, trainer.step(step), and, when a layer
  /// was refreshed (and MpiConfig::check_on_refresh), check_agreement().
  const std::vector<RefreshResult>& step(SparseTrainer<S>& trainer, long step) {
    all_reduce_gradients(trainer);
    const std::vector<RefreshResult>& r = trainer.step(step);
    if (m_cfg.check_on_refresh && !r.empty()) check_agreement(trainer);
    return r;
  }

  /// A hash of the trainer's last step and every sparse layer's indices and values (and bias).
  static std::uint64_t replica_hash(const SparseTrainer<S>& trainer) {
    const long step = trainer.last_step();
    std::uint64_t h = detail::hash_bytes(&step, sizeof step, 0xcbf29ce484222325ull);
    for (std::size_t k = 0; k < trainer.sparse_layers(); ++k) {
      const SparseLinear<S>& l = trainer.sparse_layer(k);
      const NMCompressed<S>& w = l.weight();
      h = detail::hash_bytes(w.indices.data(), std::size_t(w.indices.size()), h);
      h = detail::hash_bytes(w.values.data(), std::size_t(w.values.size()) * sizeof(S), h);
      if (l.has_bias())
        h = detail::hash_bytes(l.bias().data(), std::size_t(l.bias().size()) * sizeof(S), h);
    }
    return h;
  }

  /// Throws sparsenm::Error on every rank if the ranks' replicas differ (step, sparse topology or
  /// values): one all-reduce of 16 bytes.
  void check_agreement(const SparseTrainer<S>& trainer) const {
    const std::uint64_t h = replica_hash(trainer);
    std::uint64_t mine[2] = {h, ~h}, lo[2] = {0, 0};
    detail::mpi_check(MPI_Allreduce(mine, lo, 2, MPI_UINT64_T, MPI_MIN, m_comm), "MPI_Allreduce");
    const std::uint64_t min = lo[0], max = ~lo[1];
    SPARSENM_CHECK(min == max, "MpiDataParallel: replicas diverged at step ", trainer.last_step(),
                   " (rank ", m_rank, " of ", m_size, ": hash ", h, ", ranks range over [", min,
                   ", ", max, "]); were the ranks given different seeds, data orders or settings?");
  }

  /// Rank 0 writes the trainer's checkpoint; every rank waits for it. Any number of ranks (or a
  /// single process) can load it with trainer.load(path), since every replica is the same.
  void save(SparseTrainer<S>& trainer, const std::string& path) const {
    int ok = 1;
    std::string error;
    if (m_rank == 0) {
      try {
        trainer.save(path);
      } catch (const Error& e) {
        ok = 0;
        error = e.what();
      }
    }
    detail::mpi_check(MPI_Bcast(&ok, 1, MPI_INT, 0, m_comm), "MPI_Bcast");
    SPARSENM_CHECK(ok == 1, "MpiDataParallel::save: rank 0 could not write '", path, "'",
                   error.empty() ? std::string() : ": " + error);
  }

  /// Gradient bytes this rank contributed in the last wait() (the payload of one step).
  std::size_t payload_bytes() const { return m_last_payload; }
  /// Bytes this rank sent in the last wait()'s collectives, by the algorithm's count: Ordered
  /// (all-gather) (K-1) x payload; Native with a ring all-reduce 2 (K-1)/K x payload.
  std::size_t sent_bytes() const { return m_last_sent; }

 private:
  struct Bucket {
    // Native: the bucket (reduced in place). Ordered: K blocks of bucket_elems, block r rank r's
    // contribution (this rank packs into its own block; the all-gather fills the others in place).
    std::vector<S> buf;
    std::vector<int> counts, displs;  // Iallgatherv arguments: must live until the request ends
    std::size_t used = 0;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  struct Piece {
    S* dst;
    std::size_t bucket, offset, count;
  };

  bool ordered() const { return m_cfg.reduction == MpiReduction::Ordered; }
  std::size_t own_block() const { return ordered() ? std::size_t(m_rank) * m_bucket_elems : 0; }

  void start(std::size_t k) {
    Bucket& b = m_buckets[k];
    const int n = static_cast<int>(b.used);
    if (ordered()) {
      // Blocks sit bucket_elems apart whatever `used` is, hence the v-variant.
      b.counts.assign(std::size_t(m_size), n);
      b.displs.resize(std::size_t(m_size));
      for (int r = 0; r < m_size; ++r)
        b.displs[std::size_t(r)] = static_cast<int>(std::size_t(r) * m_bucket_elems);
      detail::mpi_check(
          MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, b.buf.data(), b.counts.data(),
                          b.displs.data(), detail::mpi_type<S>(), m_comm, &b.request),
          "MPI_Iallgatherv");
      m_sent += std::size_t(m_size - 1) * b.used * sizeof(S);
    } else {
      detail::mpi_check(MPI_Iallreduce(MPI_IN_PLACE, b.buf.data(), n, detail::mpi_type<S>(),
                                       MPI_SUM, m_comm, &b.request),
                        "MPI_Iallreduce");
      m_sent += 2 * std::size_t(m_size - 1) * b.used * sizeof(S) / std::size_t(m_size);
    }
  }

  MPI_Comm m_comm;
  MpiConfig m_cfg;
  int m_rank = 0, m_size = 1;
  std::size_t m_bucket_elems = 0;
  std::deque<Bucket> m_buckets;  // a deque: buckets in flight never move
  std::vector<Piece> m_pieces;
  std::size_t m_open = 0;  // index of the bucket being filled
  std::size_t m_payload = 0, m_sent = 0, m_last_payload = 0, m_last_sent = 0;
};

}  // namespace sparsenm

#endif  // SPARSENM_MPI_HPP
