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
// (K-1) times it) but whose rounding depends on the MPI library's algorithm. When every rank runs
// on one node, Ordered goes through an MPI-3 shared window instead of the all-gather
// (MpiConfig::shared_memory): each rank writes its gradients once into shared memory and, after
// one barrier, sums every rank's in rank order straight into its gradients (the same bits, without
// the two copies through MPI's shared-memory buffers that a message costs). The copy in uses
// streaming stores (detail::stream_copy), and with two ranks each rank reads only the other's part
// (its own term is still in its gradient), so the only cross-core traffic is the one read of the
// other rank's gradients that any all-reduce needs.
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
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

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
  /// Ordered reduction when every rank of the communicator runs on one node (MPI_Comm_split_type
  /// MPI_COMM_TYPE_SHARED): each rank writes its gradients into its part of an MPI-3 shared
  /// window and, after one barrier, reads every rank's part and sums them in rank order. The same
  /// bits as the all-gather route with none of its copies through MPI's buffers. Ignored (the
  /// all-gather is used) for Native or when the ranks span several nodes.
  bool shared_memory = true;
  /// Load balancing for ranks of unequal speed (cores of unequal clock or load, mixed machines):
  /// MpiDataParallel::shard() gives each rank a share of the global batch proportional to its
  /// measured speed, and the reduction weighs rank r's gradient (the mean over its shard) by its
  /// share n_r / B, so the result is still the gradient of the mean over the global batch. A
  /// synchronous step waits for the slowest rank; balanced shares let the ranks finish together.
  /// Off by default: the shares then depend on timing, so results equal one process's only up
  /// to rounding, and differ from run to run.
  bool balance = false;
  /// Shares are multiples of this many rows (e.g. the kernels' token tile), at least one each.
  Index balance_granularity = 8;
  /// Steps between re-balancing; each rank's speed is measured over this many steps.
  long balance_interval = 10;

  /// Throws sparsenm::Error naming a field out of its range.
  void validate() const {
    SPARSENM_CHECK(bucket_bytes >= 64 && bucket_bytes <= (std::size_t(1) << 30),
                   "MpiConfig: bucket_bytes = ", bucket_bytes, " (must be in [64, 2^30])");
    SPARSENM_CHECK(balance_granularity >= 1,
                   "MpiConfig: balance_granularity = ", balance_granularity, " (must be >= 1)");
    SPARSENM_CHECK(balance_interval >= 1, "MpiConfig: balance_interval = ", balance_interval,
                   " (must be >= 1)");
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

/// Rows per rank for a global batch of `batch` rows (a multiple of `granularity`, at least
/// granularity x ranks): one granule each, the rest in proportion to `speed` (positive), rounded by
/// largest remainder (ties to the lower rank). The same inputs give the same shares on every rank.
inline std::vector<Index> balanced_shares(Index batch, Index granularity,
                                          const std::vector<double>& speed) {
  const std::size_t k = speed.size();
  SPARSENM_CHECK(
      k > 0 && granularity > 0 && batch % granularity == 0 && batch / granularity >= Index(k),
      "balanced_shares: batch ", batch, " must be a multiple of the granularity ", granularity,
      " and hold at least one granule for each of the ", k, " ranks");
  double total = 0;
  for (const double v : speed) {
    SPARSENM_CHECK(std::isfinite(v) && v > 0, "balanced_shares: speed ", v,
                   " must be finite and positive");
    total += v;
  }
  const Index spare = batch / granularity - Index(k);
  std::vector<Index> units(k, 1);
  std::vector<double> frac(k);
  Index given = 0;
  for (std::size_t r = 0; r < k; ++r) {
    const double ideal = double(spare) * speed[r] / total;
    const Index whole = std::min<Index>(spare, Index(std::floor(ideal)));
    units[r] += whole;
    frac[r] = ideal - double(whole);
    given += whole;
  }
  for (; given < spare; ++given) {
    std::size_t best = 0;
    for (std::size_t r = 1; r < k; ++r)
      if (frac[r] > frac[best]) best = r;
    ++units[best];
    frac[best] = -1;
  }
  for (Index& u : units) u *= granularity;
  return units;
}

/// Copies n elements with non-temporal stores where the target offers them (x86-64: SSE2, part
/// of the base ISA), plain stores elsewhere and for the unaligned head and the tail. For the
/// shared window: a plain store to a line that another rank's core read the step before must
/// first invalidate that core's copy, line by line; a streaming store goes to memory without the
/// round trip (on the 2-vCPU AMD EPYC Zen 5 project machine: 1.9 MB in 0.05 ms instead of 0.20
/// ms; bench/RESULTS.md). Ends with a store fence, so the data is visible to the other ranks once
/// the caller's MPI_Win_sync / barrier completes.
template <class S>
void stream_copy(const S* src, S* dst, std::size_t n) {
#if defined(__SSE2__)
  unsigned char* d = reinterpret_cast<unsigned char*>(dst);
  const unsigned char* s = reinterpret_cast<const unsigned char*>(src);
  std::size_t bytes = n * sizeof(S);
  // Element-wise up to a 16-byte boundary of the target (a window's base is at least
  // element-aligned), then whole 16-byte stores, then the rest.
  std::size_t head = (16 - (reinterpret_cast<std::uintptr_t>(d) & 15)) & 15;
  head = std::min(bytes, head);
  std::memcpy(d, s, head);
  d += head;
  s += head;
  bytes -= head;
  for (; bytes >= 16; bytes -= 16, d += 16, s += 16)
    _mm_stream_si128(reinterpret_cast<__m128i*>(d),
                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
  std::memcpy(d, s, bytes);
  _mm_sfence();
#else
  std::copy(src, src + n, dst);
#endif
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
    if (ordered() && m_cfg.shared_memory && m_size > 1) {
      MPI_Comm node = MPI_COMM_NULL;
      detail::mpi_check(
          MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, m_rank, MPI_INFO_NULL, &node),
          "MPI_Comm_split_type");
      int node_size = 0;
      detail::mpi_check(MPI_Comm_size(node, &node_size), "MPI_Comm_size");
      MPI_Comm_free(&node);
      // Every rank sees the same sizes, so every rank takes the same route.
      m_shm = node_size == m_size;
    }
  }
  MpiDataParallel(const MpiDataParallel&) = delete;
  MpiDataParallel& operator=(const MpiDataParallel&) = delete;
  /// Frees the shared window (collective, like the constructor: destroy it on every rank, before
  /// MPI_Finalize).
  ~MpiDataParallel() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) free_window();
  }

  /// True when the Ordered reduction runs through the shared window (MpiConfig::shared_memory and
  /// every rank on one node).
  bool uses_shared_memory() const { return m_shm; }

  /// This rank's rows of a global batch for the coming step: shard_of()'s equal slices, or with
  /// MpiConfig::balance, shares proportional to the ranks' measured speeds (balanced_shares;
  /// contiguous, rank 0 first). Every rank calls it once per step, with the same global_batch,
  /// before that step's post() / wait(); the reduction then weighs each rank by its share.
  Shard shard(Index global_batch) {
    if (!m_cfg.balance || m_size == 1) {
      m_shares.clear();
      return shard_of(global_batch, m_rank, m_size);
    }
    if (m_speed.empty()) m_speed.assign(std::size_t(m_size), 1.0);
    m_shares = detail::balanced_shares(global_batch, m_cfg.balance_granularity, m_speed);
    m_share_batch = global_batch;
    Index begin = 0;
    for (int r = 0; r < m_rank; ++r) begin += m_shares[std::size_t(r)];
    return {begin, m_shares[std::size_t(m_rank)]};
  }
  /// Rows per rank of the last shard() call (empty unless balancing).
  const std::vector<Index>& shares() const { return m_shares; }

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
    if (balancing() && m_cfg.average) {
      // Weighted by this rank's share (see MpiConfig::balance); wait() then only sums.
      grad *= S(double(m_shares[std::size_t(m_rank)]) / double(m_share_batch));
    }
    const S* src = grad.data();
    std::size_t left = std::size_t(grad.size());
    S* dst = grad.data();
    m_payload += left * sizeof(S);
    if (m_size == 1) return;  // one rank: the gradient is already the sum and the average
    if (m_shm) {
      // Straight into this rank's part of the current half of the window; a step larger than
      // the window is copied in wait(), after the (collective) reallocation.
      if (!m_shm_overflow && m_shm_used + left <= m_shm_cap)
        detail::stream_copy(src, own_segment() + m_shm_used, left);
      else
        m_shm_overflow = true;
      m_pieces.push_back({dst, 0, m_shm_used, left});
      m_shm_used += left;
      m_sent += std::size_t(m_size - 1) * left * sizeof(S);
      return;
    }
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
    const auto entered = std::chrono::steady_clock::now();
    if (balancing() && m_timed) {
      m_window_seconds += std::chrono::duration<double>(entered - m_left).count();
      m_window_rows += double(m_shares[std::size_t(m_rank)]);
      ++m_window_steps;
    }
    if (m_shm)
      wait_shared();
    else
      wait_gathered();
    m_last_payload = m_payload;
    m_last_sent = m_sent;
    m_pieces.clear();
    m_payload = m_sent = 0;
    if (balancing()) rebalance();
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
  /// (all-gather) (K-1) x payload; Native with a ring all-reduce 2 (K-1)/K x payload. Through the
  /// shared window: the (K-1) x payload the other ranks read from this rank's part.
  std::size_t sent_bytes() const { return m_last_sent; }

 private:
  void wait_gathered() {
    if (m_open < m_buckets.size() && m_buckets[m_open].used > 0) start(m_open++);
    for (std::size_t k = 0; k < m_open; ++k)
      detail::mpi_check(MPI_Wait(&m_buckets[k].request, MPI_STATUS_IGNORE), "MPI_Wait");
    const S scale = reduction_scale();
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
    for (Bucket& bk : m_buckets) bk.used = 0;
    m_open = 0;
  }

  bool balancing() const { return !m_shares.empty(); }
  // What the sum is multiplied by: 1/K for the average of equal shards; 1 for plain sums, one
  // rank, or balanced shares (each rank weighed its own gradient by n_r / B at post()).
  S reduction_scale() const {
    return m_cfg.average && m_size > 1 && !balancing() ? S(1) / S(m_size) : S(1);
  }

  // After a wait(): every balance_interval timed steps, the ranks exchange their rows per second
  // over the window (time from leaving one wait() to entering the next: this rank's own work) and
  // move each speed estimate halfway to it, which damps timing noise; shard() splits by them.
  void rebalance() {
    m_left = std::chrono::steady_clock::now();
    m_timed = true;
    if (m_window_steps < m_cfg.balance_interval) return;
    const double mine[2] = {m_window_rows, m_window_seconds};
    std::vector<double> all(2 * std::size_t(m_size));
    detail::mpi_check(MPI_Allgather(mine, 2, MPI_DOUBLE, all.data(), 2, MPI_DOUBLE, m_comm),
                      "MPI_Allgather");
    for (std::size_t r = 0; r < std::size_t(m_size); ++r) {
      const double rows = all[2 * r], secs = all[2 * r + 1];
      if (rows > 0 && secs > 0 && std::isfinite(rows / secs))
        m_speed[r] = m_measured ? 0.5 * (m_speed[r] + rows / secs) : rows / secs;
    }
    m_measured = true;
    m_window_rows = m_window_seconds = 0;
    m_window_steps = 0;
  }

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

  // Shared-window route. Rank r's segment holds two halves of m_shm_cap elements; step t writes
  // half t % 2. One barrier per step suffices: a rank writes half p again two steps later, after
  // the barrier of the step in between, which every rank enters only once it has read half p.
  S* own_segment() { return m_segments[std::size_t(m_rank)] + m_parity * m_shm_cap; }

  void free_window() {
    if (m_win == MPI_WIN_NULL) return;
    MPI_Win_unlock_all(m_win);
    MPI_Win_free(&m_win);
    m_win = MPI_WIN_NULL;
    m_segments.clear();
    m_shm_cap = 0;
  }

  // Collective: every rank posts the same shapes, so every rank grows at the same wait().
  void grow_window(std::size_t need) {
    free_window();
    m_shm_cap = std::max<std::size_t>(need, 1024);
    S* base = nullptr;
    detail::mpi_check(MPI_Win_allocate_shared(MPI_Aint(2 * m_shm_cap * sizeof(S)), int(sizeof(S)),
                                              MPI_INFO_NULL, m_comm, &base, &m_win),
                      "MPI_Win_allocate_shared");
    m_segments.assign(std::size_t(m_size), nullptr);
    for (int r = 0; r < m_size; ++r) {
      MPI_Aint bytes = 0;
      int unit = 0;
      detail::mpi_check(MPI_Win_shared_query(m_win, r, &bytes, &unit, &m_segments[std::size_t(r)]),
                        "MPI_Win_shared_query");
    }
    detail::mpi_check(MPI_Win_lock_all(MPI_MODE_NOCHECK, m_win), "MPI_Win_lock_all");
  }

  void wait_shared() {
    if (m_pieces.empty()) return;  // nothing posted (on every rank: they post the same shapes)
    if (m_shm_overflow || m_shm_used > m_shm_cap) {
      grow_window(m_shm_used);
      for (const Piece& p : m_pieces) detail::stream_copy(p.dst, own_segment() + p.offset, p.count);
    }
    // Make this rank's writes visible, wait for every rank's, and see them.
    detail::mpi_check(MPI_Win_sync(m_win), "MPI_Win_sync");
    detail::mpi_check(MPI_Barrier(m_comm), "MPI_Barrier");
    detail::mpi_check(MPI_Win_sync(m_win), "MPI_Win_sync");
    const S scale = reduction_scale();
    const std::size_t half = m_parity * m_shm_cap;
    for (const Piece& p : m_pieces) {
      // Rank order, as the all-gather route: ((g_0 + g_1) + g_2) + ..., then the scale.
      S* __restrict out = p.dst;
      if (m_size == 2) {
        // This rank's own term is still in its gradient (and in its cache: the window copy went
        // to memory); only the other rank's part is read from the window. g_0 + g_1 = g_1 + g_0
        // exactly in IEEE arithmetic, so both ranks get the bits of the rank-order sum.
        const S* __restrict other = m_segments[std::size_t(1 - m_rank)] + half + p.offset;
        for (std::size_t i = 0; i < p.count; ++i) out[i] = (out[i] + other[i]) * scale;
        continue;
      }
      const S* __restrict g0 = m_segments[0] + half + p.offset;
      const S* __restrict g1 = m_segments[1] + half + p.offset;
      for (std::size_t i = 0; i < p.count; ++i) out[i] = g0[i] + g1[i];
      for (int r = 2; r < m_size; ++r) {
        const S* __restrict g = m_segments[std::size_t(r)] + half + p.offset;
        for (std::size_t i = 0; i < p.count; ++i) out[i] += g[i];
      }
      for (std::size_t i = 0; i < p.count; ++i) out[i] *= scale;
    }
    m_parity ^= 1;
    m_shm_used = 0;
    m_shm_overflow = false;
  }
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
  // Shared-window route (see own_segment()).
  bool m_shm = false, m_shm_overflow = false;
  MPI_Win m_win = MPI_WIN_NULL;
  std::vector<S*> m_segments;  // base of every rank's segment, in this process's address space
  std::size_t m_shm_cap = 0, m_shm_used = 0, m_parity = 0;
  // Balancing (MpiConfig::balance): shares of the last shard(), speed estimates, timing window.
  std::vector<Index> m_shares;
  Index m_share_batch = 0;
  std::vector<double> m_speed;
  bool m_timed = false, m_measured = false;
  std::chrono::steady_clock::time_point m_left;
  double m_window_rows = 0, m_window_seconds = 0;
  long m_window_steps = 0;
};

}  // namespace sparsenm

#endif  // SPARSENM_MPI_HPP
