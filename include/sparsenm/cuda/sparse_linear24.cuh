// SPDX-License-Identifier: Apache-2.0
// A device 2:4 sparse linear layer for training (the counterpart of sparsenm::SparseLinear with
// NM{2,4}, nn/sparse_linear.hpp), available with cuSPARSELt (SPARSENM_HAS_CUSPARSELT).
//
//   forward   y = x Wᵀ (+ b)          cuSPARSELt 2:4, W packed (out x in, 2:4 along rows)
//   backward  dX = dY W               transposable mask (CHTs24 Sec. 3: Wᵀ is 2:4 too):
//                                     cuSPARSELt 2:4 with Wᵀ packed (in x out);
//                                     row-wise mask: DxRoute::DenseFallback, cuBLAS bf16 on a
//                                     pruned dense bf16 copy of W (kept only for such masks)
//             dW on the active entries only: dense fp32-accumulated tiles of at most
//             `dw_scratch_bytes` (cuBLAS, bf16 in, fp32 out), sampled at the kept positions;
//             a dense dW larger than the tile never exists. With `dw_overlap` the sampling of tile
//             k runs on a second stream next to the product of tile k + 1 (two tiles,
//             event-ordered). When the whole dW is one tile (4096 x 4096 at the default 64 MiB) and
//             the step takes the fused run pass (below), the sampling is deferred into that pass
//             (`sample_in_step`, opt-in for now): grad_data() / grad_values() sample it on demand
//             first, so other optimizers (cuda::TansCompressed) and readers see the same gradient.
//             Measured on the H100 (bench/RESULTS.md): tiles of 8-64 MiB, L2-sized or not, on
//             one or two streams, all give 0.85-0.95x the dense dW; 64 MiB on one stream is
//             the default
//             db = column sums of dY (fp32, deterministic)
//   step      Adam (cuda::Adam, same AdamConfig and arithmetic as sparsenm::Adam) on the fp32
//             master values of the active entries and the bias, and the bf16 re-pack of both
//             packed weights: one fused pass (PackRoute::Fused), or Adam then the gather
//             (PackRoute::InPlace)
//
// State on the device: fp32 master values, fp32 gradient and fp32 Adam moments of the active
// entries (out x in/2 each, the layout of NMCompressed::values), the 2-bit-per-slot indices
// (a byte each), the packed bf16 weights of cuSPARSELt (forward, and transposed for a
// transposable mask), bias and its state. The x of the last forward is not copied: the caller
// keeps it alive until backward (as autograd keeps saved tensors).
//
// Plans are built once (construction); packed weights are rebuilt only when the mask changes
// (refresh(), set_compressed()). Each step re-packs the new values in place: a slot map found at
// rebuild time says where cuSPARSELt's packing puts every slot (probe packs: all-ones and
// all-twos locate the value words; four packs carrying the bytes of each slot's index locate the
// slots), checked byte for byte against a fresh compress; then a step is one gather pass per
// packed weight with coalesced writes (PackRoute::InPlace). (The check uses a nonzero pattern, not
// the real values: a kept weight may be exactly 0, regrown ones start so, and the library may then
// place that group's metadata differently; the mask's own metadata with a stored 0 is equally
// right.) For a transposable mask a step is then ONE pass (PackRoute::Fused): each block takes a
// rectangle of R slot rows x J slots, applies Adam to it in coalesced 16-byte runs, stages the
// bf16 words in shared memory and writes them back coalesced, which also serves pack(). Where
// the words go is planned at rebuild from the slot maps and checked there, in two layouts:
//  - runs (tried first with `fused_runs`, opt-in for now): the forward packing as one run of J
//  consecutive words a
//    slot row, the transposed one as one run of R/2 words a column of W (a transposable mask
//    keeps 2 of 4 rows of each column, so a rectangle's rows of a column are R/2 consecutive
//    words of Wᵀ's packed row). The rebuild finds each run's base and checks that every run
//    holds exactly its slots (detail::run_offsets_kernel); shapes 64 x 64, 128 x 64, 32 x 128,
//    16 x 256 are tried in turn. Where the forward packing is the slot order itself (word s =
//    slot s, checked) the pass writes it directly, without staging (`fwd_direct`).
//  - one window a rectangle: for several shapes the span of packed words a rectangle lands in
//    is measured in both packings, the shape with the smallest windows (<= 16384 words) kept.
// With cuSPARSELt 0.8.0 on the H100 the forward packing is the slot order (values first,
// metadata after) and the transposed packing is Wᵀ's own compressed row order (consecutive slots
// of a row of W are out/2 words apart), which is the run layout (read from the probe's printout on
// 2026-12-07; the run check itself has not yet run on a GPU: bench/RESULTS.md); no single window
// fits the transposed packing of 4096 x 4096 or 11008 x 4096. If neither layout checks, the gather
// route stays. `fused_transposed = false` fuses the forward packing only and gathers the transposed
// one. If the slot map check itself ever fails (another library version packing differently),
// the layer falls back to expanding the values into a dense bf16 scratch and calling
// cusparseLtSpMMACompress every step (PackRoute::Recompress), and says so.
//
// Topology refresh round-trips through the CPU engine: values and indices are downloaded, the
// CPU TopologyRefresher (CHTs24 Alg. 1) moves them to the new mask and returns the SlotMap, the
// values are uploaded, the Adam moments follow on the device (cuda::Adam::remap), and the packed
// weights and slot maps are rebuilt. bench_cuda measures what this costs. cuda::DeviceRefresher24
// (cuda/refresh24.cuh) does the same refresh on the device and installs it with apply_topology().
#ifndef SPARSENM_CUDA_SPARSE_LINEAR24_CUH
#define SPARSENM_CUDA_SPARSE_LINEAR24_CUH

#if defined(SPARSENM_HAS_CUSPARSELT)

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
#include "../optim/adam.hpp"
#include "../topology/refresh.hpp"
#include "adam.cuh"
#include "detail/linear24_kernels.cuh"
#include "error.cuh"
#include "memory.cuh"
#include "sparse24.cuh"

namespace sparsenm {
namespace cuda {

/// How dX = dY W is computed.
enum class DxRoute { SparseTransposed, DenseFallback };
/// How new values reach the packed weights each step.
/// InPlace: Adam, then a gather pass per packed weight through the slot map; Fused: Adam and the
/// re-pack of both packed weights in one tiled pass (file comment); Recompress: the fallback.
enum class PackRoute { InPlace, Recompress, Fused };

/// Settings of cuda::SparseLinear24.
///
/// | field            | meaning                                                    | default |
/// |------------------|------------------------------------------------------------|---------|
/// | adam             | optimizer of the values and the bias (sparsenm::AdamConfig) | {}      |
/// | search           | cusparseLtMatmulSearch for each plan at construction        | true    |
/// | tune             | then Sparse24::tune() (every algorithm id, timed) per plan  | true    |
/// | dw_scratch_bytes | fp32 tile of the dW products (rows of at least 16)          | 64 MiB  |
/// | dw_overlap       | sample tile k on a second stream during product k + 1      | false   |
/// | fused_pack       | PackRoute::Fused where the windows allow it                | true    |
/// | fused_transposed | the fused pass writes Wᵀ's packing too (false: the forward  | true    |
/// |                  | packing only, Wᵀ's by the gather)                           |         |
/// | fused_runs       | try the run layout of the fused pass first (file comment);  | false   |
/// |                  | false: the single-window layout only                        |         |
/// | sample_in_step   | dW sampled inside the fused Adam pass when the whole dW is  | false   |
/// |                  | one tile (PackRoute::Fused, run layout; file comment)       |         |
///
/// fused_runs and sample_in_step are off by default until their tests and benchmark have run on
/// a GPU (written 2026-12-08, checked by a host emulation of the kernels only: bench/RESULTS.md).
struct Linear24Config {
  AdamConfig adam{};
  bool search = true;
  bool tune = true;
  std::size_t dw_scratch_bytes = std::size_t(64) << 20;
  bool dw_overlap = false;
  bool fused_pack = true;
  bool fused_transposed = true;
  bool fused_runs = false;
  bool sample_in_step = false;
  void validate() const {
    adam.validate();
    SPARSENM_CHECK(dw_scratch_bytes >= 1024,
                   "Linear24Config::dw_scratch_bytes = ", dw_scratch_bytes, " must be >= 1024");
  }
};

class SparseLinear24 {
 public:
  /// From a 2:4 compressed weight (out x in, e.g. SparseLinear<float>::weight()) and a bias
  /// (length out, or empty for none), for `tokens` activation rows per step. out, in and tokens
  /// must be multiples of 16 (cuSPARSELt's alignment for 16-bit types). Throws sparsenm::Error.
  SparseLinear24(const NMCompressed<float>& weight, const Vector<float>& bias, Index tokens,
                 Linear24Config cfg = {}, cudaStream_t stream = nullptr)
      : m_cfg(cfg) {
    m_cfg.validate();
    check_compressed(weight, "cuda::SparseLinear24: weight");
    SPARSENM_CHECK(weight.nm == (NM{2, 4}), "cuda::SparseLinear24: weight.nm = ", weight.nm,
                   " must be NM{2,4}");
    SPARSENM_CHECK(weight.rows > 0 && weight.cols > 0 && tokens > 0,
                   "cuda::SparseLinear24: out = ", weight.rows, ", in = ", weight.cols,
                   ", tokens = ", tokens, " must be positive");
    check_divisible(weight.rows, 16, "cuda::SparseLinear24: out", "16");
    check_divisible(weight.cols, 16, "cuda::SparseLinear24: in", "16");
    check_divisible(tokens, 16, "cuda::SparseLinear24: tokens", "16");
    SPARSENM_CHECK(bias.size() == 0 || bias.size() == weight.rows,
                   "cuda::SparseLinear24: bias has length ", bias.size(),
                   " but out = ", weight.rows);
    SPARSENM_CHECK(double(weight.rows) * double(weight.cols) < 4.0e9,
                   "cuda::SparseLinear24: out x in = ", weight.rows, " x ", weight.cols,
                   " exceeds the 32-bit slot maps");
    m_out = weight.rows;
    m_in = weight.cols;
    m_tokens = tokens;
    m_indices = weight.indices;
    m_values.upload(
        std::vector<float>(weight.values.data(), weight.values.data() + weight.values.size()),
        stream);
    m_grad.resize(nnz());
    m_grad.fill_bytes(0, stream);
    m_idx.resize(nnz());
    m_opt = std::make_unique<Adam<float>>(m_out, m_in / 2, m_cfg.adam);
    if (bias.size()) {
      m_bias.upload(std::vector<float>(bias.data(), bias.data() + bias.size()), stream);
      m_grad_bias.resize(std::size_t(m_out));
      m_grad_bias.fill_bytes(0, stream);
      m_opt_bias = std::make_unique<Adam<float>>(1, m_out, m_cfg.adam);
    }
    set_dw_tiling(m_cfg.dw_scratch_bytes, m_cfg.dw_overlap);
    m_blas_ws.resize(std::size_t(32) << 20);  // fixed: cuBLAS never allocates in graph capture
    SPARSENM_CUBLAS_CHECK(cublasSetWorkspace(m_blas, m_blas_ws.data(), m_blas_ws.size()));
    rebuild(stream);
    if (m_cfg.tune) tune_plans(stream);
  }

  SparseLinear24(const SparseLinear24&) = delete;
  SparseLinear24& operator=(const SparseLinear24&) = delete;
  ~SparseLinear24() {
    for (cudaEvent_t e :
         {m_ev_fork, m_ev_product[0], m_ev_product[1], m_ev_sampled[0], m_ev_sampled[1]})
      if (e) cudaEventDestroy(e);
  }

  /// y (tokens x out, row-major bf16) = x (tokens x in, row-major bf16) Wᵀ + b. `x` must stay
  /// valid and unchanged until backward().
  void forward(const __nv_bfloat16* x, __nv_bfloat16* y, cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(x && y, "cuda::SparseLinear24::forward: x and y must be device pointers");
    m_x = x;
    m_fwd->matmul(x, y, stream);
    if (has_bias()) {
      detail::bias_add_kernel<float><<<detail::grid_for(outputs(), 256), 256, 0, stream>>>(
          y, m_bias.data(), std::size_t(m_tokens), std::size_t(m_out));
      SPARSENM_CUDA_CHECK_LAUNCH("bias_add_kernel");
    }
  }

  /// dY (tokens x out, bf16) of the last forward -> dX (tokens x in, bf16; skipped when null),
  /// dW on the active entries (grad_data(), fp32) and db (fp32).
  void backward(const __nv_bfloat16* dy, __nv_bfloat16* dx, cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(m_x, "cuda::SparseLinear24::backward called before forward");
    SPARSENM_CHECK(dy, "cuda::SparseLinear24::backward: dy must be a device pointer");
    SPARSENM_CUBLAS_CHECK(cublasSetStream(m_blas, stream));
    const float one = 1.f, zero = 0.f;
    // dW rows [o0, o0 + r): tile (col-major in x r) = Xᵀ (in x tokens) dY[:, o0:o0+r], then
    // sampled. With overlap: tiles alternate between two buffers; the product of tile k waits
    // until the sampling of tile k - 2 (same buffer) is done, the sampling of tile k (second
    // stream) waits for its product, and the stream waits for the last sampling at the end.
    const bool overlap = m_dw_overlap && m_out > m_dw_rows;
    // The whole dW in one tile and the fused run pass next: step() samples it (file comment).
    const bool defer = m_cfg.sample_in_step && m_dw_rows >= m_out && fused_runs_route();
    m_grad_pending = false;
    cudaStream_t side = overlap ? m_side->get() : stream;
    if (overlap) {
      SPARSENM_CUDA_CHECK(cudaEventRecord(m_ev_fork, stream));
      SPARSENM_CUDA_CHECK(cudaStreamWaitEvent(side, m_ev_fork, 0));
    }
    int k = 0;
    for (Index o0 = 0; o0 < m_out; o0 += m_dw_rows, ++k) {
      const Index r = std::min(m_dw_rows, m_out - o0);
      float* tile = m_dw_tile.data() + (overlap && (k & 1) ? m_dw_tile.size() / 2 : 0);
      if (overlap && k >= 2)
        SPARSENM_CUDA_CHECK(cudaStreamWaitEvent(stream, m_ev_sampled[k & 1], 0));
      SPARSENM_CUBLAS_CHECK(cublasGemmEx(m_blas, CUBLAS_OP_N, CUBLAS_OP_T, int(m_in), int(r),
                                         int(m_tokens), &one, m_x, CUDA_R_16BF, int(m_in), dy + o0,
                                         CUDA_R_16BF, int(m_out), &zero, tile, CUDA_R_32F,
                                         int(m_in), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      if (overlap) {
        SPARSENM_CUDA_CHECK(cudaEventRecord(m_ev_product[k & 1], stream));
        SPARSENM_CUDA_CHECK(cudaStreamWaitEvent(side, m_ev_product[k & 1], 0));
      }
      if (!defer) sample_tile(tile, o0, r, side);
      if (overlap) SPARSENM_CUDA_CHECK(cudaEventRecord(m_ev_sampled[k & 1], side));
    }
    // dX after the dW products: with overlap the last tile's sampling runs next to it.
    if (dx) {
      if (m_dx_route == DxRoute::SparseTransposed) {
        m_bwd->matmul(dy, dx, stream);  // (tokens x in) = dY (tokens x out) (Wᵀ)ᵀ
      } else {
        // Column-major view: dXᵀ (in x tokens) = W (col-major in x out) dYᵀ (out x tokens).
        SPARSENM_CUBLAS_CHECK(cublasGemmEx(
            m_blas, CUBLAS_OP_N, CUBLAS_OP_N, int(m_in), int(m_tokens), int(m_out), &one,
            m_dense_w.data(), CUDA_R_16BF, int(m_in), dy, CUDA_R_16BF, int(m_out), &zero, dx,
            CUDA_R_16BF, int(m_in), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      }
    }
    if (has_bias()) {  // on the sampling stream with overlap: next to dX as well
      detail::bias_grad_kernel<float><<<unsigned((m_out + 31) / 32), dim3(32, 16), 0, side>>>(
          dy, std::size_t(m_tokens), std::size_t(m_out), m_grad_bias.data());
      SPARSENM_CUDA_CHECK_LAUNCH("bias_grad_kernel");
    }
    if (overlap) {  // join: the side stream's last event covers all its work (in order)
      SPARSENM_CUDA_CHECK(cudaEventRecord(m_ev_fork, side));
      SPARSENM_CUDA_CHECK(cudaStreamWaitEvent(stream, m_ev_fork, 0));
    }
    m_grad_pending = defer;
    m_pending_stream = stream;
  }

  /// One Adam step on the active values (and the bias) with the gradients of the last
  /// backward, then the re-pack of the bf16 weights. Allocates nothing; capturable.
  void step(cudaStream_t stream = nullptr) {
    if (m_grad_pending && !fused_runs_route()) materialize_grad(false);
    if (m_pack_route == PackRoute::Fused) {
      m_opt->tick(stream);
      fused_pass<true>(stream);
    } else {
      m_opt->step(m_values.data(), m_grad.data(), nullptr, stream);
    }
    if (has_bias()) m_opt_bias->step(m_bias.data(), m_grad_bias.data(), nullptr, stream);
    if (m_pack_route != PackRoute::Fused) pack(stream);
  }

  /// The dW tiling (Linear24Config::dw_scratch_bytes, dw_overlap) from the next backward on; for
  /// measuring. Allocates: not during a capture, and a captured step graph keeps the old tiles.
  void set_dw_tiling(std::size_t tile_bytes, bool overlap) {
    SPARSENM_CHECK(tile_bytes >= 1024,
                   "cuda::SparseLinear24::set_dw_tiling: tile_bytes = ", tile_bytes,
                   " must be >= 1024");
    if (m_grad_pending) materialize_grad(true);  // the tile is about to go
    const std::size_t rows =
        std::max<std::size_t>(16, tile_bytes / (sizeof(float) * std::size_t(m_in)));
    m_dw_rows = Index(std::min<std::size_t>(rows, std::size_t(m_out)));
    m_dw_overlap = overlap;
    const std::size_t tiles = overlap && m_out > m_dw_rows ? 2 : 1;
    m_dw_tile = DeviceBuffer<float>();
    m_dw_tile.resize(tiles * std::size_t(m_dw_rows) * std::size_t(m_in));
    if (overlap && !m_ev_fork) {
      m_side = std::make_unique<Stream>();
      for (cudaEvent_t* e :
           {&m_ev_fork, &m_ev_product[0], &m_ev_product[1], &m_ev_sampled[0], &m_ev_sampled[1]})
        SPARSENM_CUDA_CHECK(cudaEventCreateWithFlags(e, cudaEventDisableTiming));
    }
  }
  /// Rows of one dW tile.
  Index dw_tile_rows() const { return m_dw_rows; }

  /// Switches between PackRoute::Fused and PackRoute::InPlace (both kept for a transposable mask
  /// whose slot map held; for measuring and for the equality test). Returns the route in effect.
  PackRoute set_pack_route(PackRoute route) {
    if ((route == PackRoute::Fused && m_tiles_ok) ||
        (route == PackRoute::InPlace && m_pack_route == PackRoute::Fused))
      m_pack_route = route;
    return m_pack_route;
  }
  /// The rectangle of the fused pass (slot rows x slots) and its largest windows (words of the
  /// forward / transposed packed weight); zeros without PackRoute::Fused available.
  /// With `runs` (the run layout) the windows are the staged words of a rectangle: its runs of
  /// the forward packing (one a slot row; 0 with fwd_direct) and of the transposed one (one a
  /// column of W).
  struct FusedTiles {
    unsigned rows = 0, slots = 0, window_fwd = 0, window_bwd = 0;
    bool runs = false;
    bool fwd_direct = false;  ///< runs: the forward packing is the slot order, written directly
  };
  FusedTiles fused_tiles() const { return m_tiles_ok ? m_tiles : FusedTiles{}; }
  /// Re-plans the run layout of the fused pass with rectangles of `rows` slot rows x `slots`
  /// slots (rows % 16 == 0, slots % 8 == 0; for measuring). `direct` false stages the forward
  /// packing in runs even where it is the slot order (for the test of that path). Returns false,
  /// and keeps the current plan, if the layout check fails for that shape or no fused route
  /// exists for this mask.
  bool set_fused_runs(unsigned rows, unsigned slots, cudaStream_t stream = nullptr,
                      bool direct = true) {
    SPARSENM_CHECK(rows > 0 && slots > 0 && rows % 16 == 0 && slots % 8 == 0,
                   "cuda::SparseLinear24::set_fused_runs: rows = ", rows, ", slots = ", slots,
                   " must be positive multiples of 16 and 8");
    if (!m_tiles_ok || m_map_fwd.size() == 0 || m_map_bwd.size() == 0) return false;
    DeviceBuffer<std::uint32_t> inv_fwd, inv_bwd;
    invert_map(m_map_fwd, inv_fwd, stream);
    invert_map(m_map_bwd, inv_bwd, stream);
    const std::pair<unsigned, unsigned> shape[] = {{rows, slots}};
    return plan_runs(inv_fwd, inv_bwd, shape, stream, direct);
  }
  /// The slot map of a packed weight (16-bit word -> slot; detail::kNoSlot for metadata and
  /// padding), forward or transposed (empty unless PackRoute::InPlace / Fused): what cuSPARSELt's
  /// packing does with the slots, for diagnostics.
  const DeviceBuffer<std::uint32_t>& packed_slot_map(bool transposed) const {
    return transposed ? m_map_bwd : m_map_fwd;
  }

  /// A whole training step (forward, backward, step) on fixed buffers, captured once as a CUDA
  /// graph: replay() launches it for 7-11 us of host time per step on the H100 where the eager
  /// calls take 63-102 us (bench/RESULTS.md). The packed buffers and maps may move when the mask
  /// changes: replay() throws after a rebuild (refresh(), set_compressed()); capture again.
  class StepGraph {
   public:
    StepGraph(const StepGraph&) = delete;
    StepGraph& operator=(const StepGraph&) = delete;
    StepGraph(StepGraph&& o) noexcept
        : m_layer(o.m_layer), m_exec(std::exchange(o.m_exec, nullptr)), m_rebuilds(o.m_rebuilds) {}
    ~StepGraph() {
      if (m_exec) cudaGraphExecDestroy(m_exec);
    }
    void replay(cudaStream_t stream = nullptr) {
      SPARSENM_CHECK(m_exec && m_layer->rebuilds() == m_rebuilds,
                     "cuda::SparseLinear24::StepGraph::replay: the layer was rebuilt (mask "
                     "change) after the capture; capture the step again");
      SPARSENM_CUDA_CHECK(cudaGraphLaunch(m_exec, stream));
    }

   private:
    friend class SparseLinear24;
    StepGraph(SparseLinear24* layer, cudaGraphExec_t exec)
        : m_layer(layer), m_exec(exec), m_rebuilds(layer->rebuilds()) {}
    SparseLinear24* m_layer;
    cudaGraphExec_t m_exec = nullptr;
    long m_rebuilds = 0;
  };

  /// Captures forward(x, y), backward(dy, dx), step() on `stream` (not the legacy default
  /// stream: capture needs a created stream). Nothing in a step allocates or synchronises.
  /// The capture itself runs nothing (the optimizer's step counter is unchanged by it). Each
  /// replay is a full step with its own bias correction: cuda::Adam keeps t and lr in device
  /// memory and computes the correction on the device (an earlier host-side correction was
  /// frozen into the graph: 0.88 relative difference after three replays on the H100); set_lr()
  /// between replays takes effect.
  StepGraph capture_step(const __nv_bfloat16* x, __nv_bfloat16* y, const __nv_bfloat16* dy,
                         __nv_bfloat16* dx, cudaStream_t stream) {
    SPARSENM_CHECK(stream != nullptr,
                   "cuda::SparseLinear24::capture_step: pass a created stream (cuda::Stream)");
    cudaGraph_t graph = nullptr;
    SPARSENM_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
      forward(x, y, stream);
      backward(dy, dx, stream);
      step(stream);
    } catch (...) {
      (void)cudaStreamEndCapture(stream, &graph);
      if (graph) cudaGraphDestroy(graph);
      (void)cudaGetLastError();
      throw;
    }
    SPARSENM_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t st = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    SPARSENM_CUDA_CHECK(st);
    return StepGraph(this, exec);
  }

  /// One topology refresh at `step` through the CPU engine (see the file comment); the values
  /// move to the new mask, the Adam moments follow, the gradient is zeroed, and the packed
  /// weights are rebuilt when the mask changed. The refresher's nm must be 2:4. Synchronous.
  RefreshResult refresh(TopologyRefresher<float>& topology, long step,
                        cudaStream_t stream = nullptr) {
    NMCompressed<float> w = download(stream);
    RefreshResult res = topology.refresh(w, step);
    m_indices = w.indices;
    m_values.upload(w.values.data(), nnz(), stream);
    install(res.slots, res.stats.changed_count > 0, stream);
    return res;
  }

  /// Installs a topology computed on the device (cuda::DeviceRefresher24, cuda/refresh24.cuh):
  /// `values` (device, out x in/2 slots) and `indices` (host, the new in-group indices) become
  /// the layer's, the Adam moments follow `slots`, the gradient is zeroed, and the packed weights
  /// are rebuilt when the indices changed (else re-packed). Synchronous.
  void apply_topology(const float* values, const Mask& indices, const SlotMap& slots,
                      cudaStream_t stream = nullptr) {
    check_shape(indices, m_out, m_in / 2, "cuda::SparseLinear24::apply_topology: indices");
    SPARSENM_CHECK(values, "cuda::SparseLinear24::apply_topology: values must be a device pointer");
    const bool changed = (indices.array() != m_indices.array()).any();
    m_indices = indices;
    SPARSENM_CUDA_CHECK(cudaMemcpyAsync(m_values.data(), values, nnz() * sizeof(float),
                                        cudaMemcpyDeviceToDevice, stream));
    install(slots, changed, stream);
  }

  /// Replaces the weight (same shape, 2:4): values and mask; moments of entries active in both
  /// masks are kept (the SlotMap of move_to_mask), others start at 0. Returns that map.
  SlotMap set_compressed(const NMCompressed<float>& weight, cudaStream_t stream = nullptr) {
    check_compressed(weight, "cuda::SparseLinear24::set_compressed: weight");
    SPARSENM_CHECK(weight.nm == (NM{2, 4}) && weight.rows == m_out && weight.cols == m_in,
                   "cuda::SparseLinear24::set_compressed: weight is ", weight.rows, "x",
                   weight.cols, " ", weight.nm, " but the layer is ", m_out, "x", m_in, " 2:4");
    NMCompressed<float> old = download(stream);
    const SlotMap map = slot_map(old, mask_of(weight));
    m_indices = weight.indices;
    m_values.upload(weight.values.data(), nnz(), stream);
    m_opt->remap(map, stream);
    m_grad.fill_bytes(0, stream);
    m_grad_pending = false;
    rebuild(stream);
    return map;
  }

  /// The Adam step of the bias alone (no re-pack), for callers that step the values with another
  /// optimizer on values_data() / grad_data() (e.g. cuda::TansCompressed) and then call pack().
  void step_bias(cudaStream_t stream = nullptr) {
    if (has_bias()) m_opt_bias->step(m_bias.data(), m_grad_bias.data(), nullptr, stream);
  }

  /// Values and indices on the host (synchronous).
  NMCompressed<float> download(cudaStream_t stream = nullptr) const {
    NMCompressed<float> w;
    w.nm = NM{2, 4};
    w.rows = m_out;
    w.cols = m_in;
    w.values.resize(m_out, m_in / 2);
    m_values.download(w.values.data(), nnz(), stream);
    w.indices = m_indices;
    return w;
  }
  /// dW on the active entries of the last backward (host copy). With the sampling deferred to
  /// step() (Linear24Config::sample_in_step) it is sampled from the tile first.
  Matrix<float> grad_values(cudaStream_t stream = nullptr) const {
    if (m_grad_pending) {
      materialize_grad(false);
      if (stream != m_pending_stream) SPARSENM_CUDA_CHECK(cudaStreamSynchronize(m_pending_stream));
    }
    return to_host(m_grad, m_out, m_in / 2, stream);
  }
  Vector<float> bias(cudaStream_t stream = nullptr) const { return vec(m_bias, stream); }
  Vector<float> grad_bias(cudaStream_t stream = nullptr) const { return vec(m_grad_bias, stream); }

  /// Step size of the values' and the bias's Adam from the next step on (stream-ordered on
  /// `stream`, no synchronisation; captured step graphs see it).
  void set_lr(double lr, cudaStream_t stream = nullptr) {
    m_opt->set_lr(lr, stream);
    if (m_opt_bias) m_opt_bias->set_lr(lr, stream);
  }
  float* values_data() { return m_values.data(); }
  /// In-group index of every slot (device bytes, the layout of values_data()): what a compressed
  /// optimizer needs to scatter the slots into the dense shape (cuda::TansCompressed::step).
  const std::uint8_t* indices_data() const { return m_idx.data(); }
  /// The device gradient of the active entries (out x in/2 fp32), for optimizers other than the
  /// layer's own Adam, which may also write it. With the sampling deferred to step() it is
  /// sampled here first (on the stream of the last backward, which wrote it before), and step()
  /// then reads this buffer.
  float* grad_data() {
    if (m_grad_pending) materialize_grad(true);
    return m_grad.data();
  }
  const Adam<float>& optimizer() const { return *m_opt; }
  bool has_bias() const { return m_bias.size() > 0; }
  Index in() const { return m_in; }
  Index out() const { return m_out; }
  Index tokens() const { return m_tokens; }
  DxRoute dx_route() const { return m_dx_route; }
  PackRoute pack_route() const { return m_pack_route; }
  /// Times the packed weights and slot maps were rebuilt (construction, mask changes).
  long rebuilds() const { return m_rebuilds; }
  /// The cuSPARSELt plans: forward (W), and backward (Wᵀ; null unless the mask is transposable).
  Sparse24& forward_plan() { return *m_fwd; }
  Sparse24* backward_plan() { return m_bwd.get(); }
  /// Bytes of training state on the device between steps (values, gradient, moments, indices,
  /// packed weights, slot maps, the dense fallback copy if any, bias and its state; not the
  /// dW tile or the workspaces).
  std::size_t state_bytes() const {
    std::size_t b = m_values.bytes() + m_grad.bytes() + 2 * m_values.bytes() + m_idx.bytes() +
                    m_fwd->compressed_bytes() + m_map_fwd.bytes() + m_map_bwd.bytes() +
                    m_dense_w.bytes() + m_dense_wt.bytes() + 4 * m_bias.bytes() +
                    m_off_fwd.bytes() + m_off_bwd.bytes() + m_base_fwd.bytes() + m_base_bwd.bytes();
    if (m_bwd) b += m_bwd->compressed_bytes();
    return b;
  }

 private:
  // The end of every topology change (refresh, apply_topology): the Adam moments follow the
  // slots, the gradient restarts at 0, the packed weights are rebuilt when the mask changed (else
  // the new values re-packed in place). Synchronous.
  void install(const SlotMap& slots, bool mask_changed, cudaStream_t stream) {
    m_opt->remap(slots, stream);
    m_grad.fill_bytes(0, stream);
    m_grad_pending = false;
    if (mask_changed)
      rebuild(stream);
    else
      pack(stream);
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  /// The fused pass with the run layout is the step's route (it can sample dW itself).
  bool fused_runs_route() const {
    return m_pack_route == PackRoute::Fused && m_tiles_ok && m_tiles.runs;
  }
  /// dW on the active entries from a tile of rows [o0, o0 + r) into m_grad.
  void sample_tile(const float* tile, Index o0, Index r, cudaStream_t stream) const {
    const std::size_t n = std::size_t(r) * std::size_t(m_in / 4);
    detail::sample_tile4_kernel<float><<<detail::grid_for(n, 256), 256, 0, stream>>>(
        tile, m_idx.data(), std::size_t(o0), std::size_t(r), std::size_t(m_in),
        const_cast<float*>(m_grad.data()));
    SPARSENM_CUDA_CHECK_LAUNCH("sample_tile4_kernel");
  }
  /// Writes the deferred gradient (the whole dW in the tile) into m_grad, on the stream of the
  /// backward that left it. `release`: step() is to read m_grad from now on (a caller may write
  /// it; the tile may go).
  void materialize_grad(bool release) const {
    sample_tile(m_dw_tile.data(), 0, m_out, m_pending_stream);
    if (release) m_grad_pending = false;
  }

  std::size_t nnz() const { return std::size_t(m_out) * std::size_t(m_in / 2); }
  std::size_t outputs() const { return std::size_t(m_tokens) * std::size_t(m_out); }
  static Vector<float> vec(const DeviceBuffer<float>& d, cudaStream_t stream) {
    Vector<float> v(Index(d.size()));
    if (d.size()) d.download(v.data(), d.size(), stream);
    return v;
  }

  /// True when every column of the mask is 2:4 along rows too (Wᵀ is 2:4 along its rows).
  bool columns_are_24() const {
    if (m_out % 16 != 0) return false;
    const Index nnzr = m_in / 2;
    std::vector<std::uint8_t> count(static_cast<std::size_t>(m_in));
    for (Index r0 = 0; r0 < m_out; r0 += 4) {
      std::fill(count.begin(), count.end(), std::uint8_t(0));
      for (Index r = r0; r < r0 + 4; ++r) {
        const std::uint8_t* ix = m_indices.data() + r * nnzr;
        for (Index j = 0; j < nnzr; ++j) ++count[std::size_t((j >> 1) * 4 + ix[j])];
      }
      for (std::uint8_t c : count)
        if (c != 2) return false;
    }
    return true;
  }

  void expand(bool transpose, detail::Expand what, int digit, __nv_bfloat16* dst,
              cudaStream_t stream) {
    detail::expand_slots_kernel<float><<<detail::grid_for(nnz(), 256), 256, 0, stream>>>(
        m_values.data(), m_idx.data(), std::size_t(m_out), std::size_t(m_in), transpose, what,
        digit, dst);
    SPARSENM_CUDA_CHECK_LAUNCH("expand_slots_kernel");
  }

  /// Finds where `plan`'s packing puts every slot (file comment) and checks it against a fresh
  /// packing (true: the map holds; `plan` then has the mask's packing, values still to write;
  /// false: `plan` holds the packing of the real values). `pruned` is the zeroed dense
  /// scratch of this orientation (its kept positions are overwritten).
  bool build_slot_map(Sparse24& plan, bool transpose, __nv_bfloat16* pruned,
                      DeviceBuffer<std::uint32_t>& slot, DeviceBuffer<std::uint32_t>& inverse,
                      cudaStream_t stream) {
    const std::size_t bytes = plan.compressed_bytes(), words = bytes / 2;
    const auto* packed16 = reinterpret_cast<const std::uint16_t*>(plan.compressed_data());
    DeviceBuffer<unsigned char> ones(bytes);
    DeviceBuffer<std::uint32_t>& map = inverse;  // slot -> word: the check, the fused tiles
    slot.resize(words);
    DeviceBuffer<unsigned long long> counters(4);
    counters.fill_bytes(0, stream);
    const unsigned gw = detail::grid_for(words, 256);
    expand(transpose, detail::Expand::One, 0, pruned, stream);
    plan.recompress(pruned, stream);
    SPARSENM_CUDA_CHECK(cudaMemcpyAsync(ones.data(), plan.compressed_data(), bytes,
                                        cudaMemcpyDeviceToDevice, stream));
    expand(transpose, detail::Expand::Two, 0, pruned, stream);
    plan.recompress(pruned, stream);
    detail::mark_value_words_kernel<std::uint16_t><<<gw, 256, 0, stream>>>(
        reinterpret_cast<const std::uint16_t*>(ones.data()), packed16, words, slot.data());
    SPARSENM_CUDA_CHECK_LAUNCH("mark_value_words_kernel");
    for (int d = 0; d < 4; ++d) {
      expand(transpose, detail::Expand::Digit, d, pruned, stream);
      plan.recompress(pruned, stream);
      detail::add_digit_kernel<std::uint16_t>
          <<<gw, 256, 0, stream>>>(packed16, words, d, slot.data(), counters.data() + 2);
      SPARSENM_CUDA_CHECK_LAUNCH("add_digit_kernel");
    }
    map.resize(nnz());
    map.fill_bytes(0xff, stream);
    detail::invert_slots_kernel<std::uint32_t>
        <<<gw, 256, 0, stream>>>(slot.data(), words, nnz(), map.data(), counters.data());
    SPARSENM_CUDA_CHECK_LAUNCH("invert_slots_kernel");
    // The check: the packing of a nonzero pattern that varies with the slot must equal the
    // all-ones packing with that pattern scattered in through the map, byte for byte. (Not the
    // real values: a kept weight may be exactly 0, e.g. regrown, and the library may then put
    // that group's metadata elsewhere; the mask's metadata with a stored 0 is just as right.)
    expand(transpose, detail::Expand::Check, 0, pruned, stream);
    plan.recompress(pruned, stream);
    std::vector<unsigned long long> c(4);
    counters.download(c.data(), 4, stream);
    if (c[0] != nnz() || c[1] != 0 || c[2] != 0) {
      expand(transpose, detail::Expand::Values, 0, pruned, stream);
      plan.recompress(pruned, stream);
      return false;
    }
    detail::scatter_values_kernel<float><<<detail::grid_for(nnz(), 256), 256, 0, stream>>>(
        nullptr, nnz(), map.data(), reinterpret_cast<__nv_bfloat16*>(ones.data()), nullptr,
        nullptr);
    SPARSENM_CUDA_CHECK_LAUNCH("scatter_values_kernel");
    detail::count_diff_kernel<unsigned char><<<detail::grid_for(bytes, 256), 256, 0, stream>>>(
        ones.data(), plan.compressed_data(), bytes, counters.data() + 3);
    SPARSENM_CUDA_CHECK_LAUNCH("count_diff_kernel");
    counters.download(c.data(), 4, stream);
    if (c[3] == 0) return true;  // the plan holds the mask's packing; pack() writes the values
    expand(transpose, detail::Expand::Values, 0, pruned, stream);
    plan.recompress(pruned, stream);
    return false;
  }

  /// Packed weights, plans (first time), slot maps and routes for the current mask.
  void rebuild(cudaStream_t stream) {
    m_idx.upload(m_indices.data(), nnz(), stream);
    const bool transposable = columns_are_24();
    m_dx_route = transposable ? DxRoute::SparseTransposed : DxRoute::DenseFallback;
    DeviceBuffer<__nv_bfloat16> pruned(std::size_t(m_out) * std::size_t(m_in));
    pruned.fill_bytes(0, stream);
    expand(false, detail::Expand::Values, 0, pruned.data(), stream);
    if (!m_fwd)
      m_fwd =
          std::make_unique<Sparse24>(pruned.data(), m_out, m_in, m_tokens, m_cfg.search, stream);
    DeviceBuffer<std::uint32_t> inv_fwd, inv_bwd;
    bool in_place = build_slot_map(*m_fwd, false, pruned.data(), m_map_fwd, inv_fwd, stream);
    DeviceBuffer<__nv_bfloat16> pruned_t;
    if (transposable) {
      pruned_t.resize(pruned.size());
      pruned_t.fill_bytes(0, stream);
      expand(true, detail::Expand::Values, 0, pruned_t.data(), stream);
      if (!m_bwd)
        m_bwd = std::make_unique<Sparse24>(pruned_t.data(), m_in, m_out, m_tokens, m_cfg.search,
                                           stream);
      in_place =
          build_slot_map(*m_bwd, true, pruned_t.data(), m_map_bwd, inv_bwd, stream) && in_place;
    } else {
      m_map_bwd = DeviceBuffer<std::uint32_t>();
    }
    m_pack_route = in_place ? PackRoute::InPlace : PackRoute::Recompress;
    m_tiles_ok = in_place && transposable &&
                 ((m_cfg.fused_runs && plan_runs(inv_fwd, inv_bwd, kRunShapes, stream)) ||
                  plan_tiles(inv_fwd, inv_bwd, stream));
    if (m_tiles_ok && m_cfg.fused_pack) m_pack_route = PackRoute::Fused;
    // Dense bf16 copies persist only where a route needs them (file comment).
    m_dense_w = (!transposable || !in_place) ? std::move(pruned) : DeviceBuffer<__nv_bfloat16>();
    m_dense_wt = (transposable && !in_place) ? std::move(pruned_t) : DeviceBuffer<__nv_bfloat16>();
    pack(stream);
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
    ++m_rebuilds;
  }

  /// Sparse24::tune() of both plans on pseudo-random activations (never zeros), after the
  /// library's own search: on the H100 it found 1.52-1.53x cuBLAS where the search gave
  /// 1.42-1.47x (bench/RESULTS.md). The values are unchanged: the packing is the algorithm's.
  void tune_plans(cudaStream_t stream) {
    const std::size_t rows = std::size_t(m_tokens);
    const std::size_t cols = std::size_t(std::max(m_in, m_out));
    DeviceBuffer<__nv_bfloat16> a(rows * cols), b(rows * cols);
    detail::fill_search_input<__nv_bfloat16>
        <<<detail::grid_for(a.size(), 256), 256, 0, stream>>>(a.data(), a.size());
    SPARSENM_CUDA_CHECK_LAUNCH("fill_search_input");
    m_fwd->tune(a.data(), b.data(), 5, stream);
    if (m_bwd) m_bwd->tune(a.data(), b.data(), 5, stream);
  }

  /// Rectangle shapes (slot rows x slots) the run layout tries, in order: the first whose check
  /// passes is kept. 64 x 64 first: 4096 slots a block (2048 blocks at 4096 x 4096, 8.5 KiB of
  /// staging), runs of 64 words forward and 32 transposed; chosen by reasoning, not yet timed
  /// against the others (bench_cuda layer24 times them via set_fused_runs).
  static constexpr std::pair<unsigned, unsigned> kRunShapes[] = {
      {64, 64}, {128, 64}, {32, 128}, {16, 256}};

  /// slot -> word from word -> slot (kNoSlot for metadata).
  void invert_map(const DeviceBuffer<std::uint32_t>& slot_of, DeviceBuffer<std::uint32_t>& inv,
                  cudaStream_t stream) {
    DeviceBuffer<unsigned long long> counters(2);
    counters.fill_bytes(0, stream);
    inv.resize(nnz());
    inv.fill_bytes(0xff, stream);
    detail::invert_slots_kernel<std::uint32_t>
        <<<detail::grid_for(slot_of.size(), 256), 256, 0, stream>>>(
            slot_of.data(), slot_of.size(), nnz(), inv.data(), counters.data());
    SPARSENM_CUDA_CHECK_LAUNCH("invert_slots_kernel");
  }

  /// The run layout of PackRoute::Fused (file comment; detail::RunShape): for the first of
  /// `shapes` whose check passes on both packed weights (or the forward one alone without
  /// fused_transposed), the per-slot staging offsets and the per-run bases; the forward packing
  /// in runs along slot rows, the transposed one in runs along columns of W. Runs at rebuild.
  template <std::size_t N>
  bool plan_runs(const DeviceBuffer<std::uint32_t>& inv_fwd,
                 const DeviceBuffer<std::uint32_t>& inv_bwd,
                 const std::pair<unsigned, unsigned> (&shapes)[N], cudaStream_t stream,
                 bool allow_direct = true) {
    const std::size_t nnzr = std::size_t(m_in / 2), out = std::size_t(m_out);
    const bool both = m_cfg.fused_transposed;
    DeviceBuffer<std::uint32_t> count, base[2];
    DeviceBuffer<std::uint16_t> off[2];
    DeviceBuffer<unsigned long long> bad(1);
    // The forward packing in slot order (word s = slot s): written directly, nothing staged.
    bool direct = false;
    if (allow_direct) {
      bad.fill_bytes(0, stream);
      detail::count_not_identity_kernel<std::uint32_t>
          <<<detail::grid_for(nnz(), 256), 256, 0, stream>>>(inv_fwd.data(), nnz(), bad.data());
      SPARSENM_CUDA_CHECK_LAUNCH("count_not_identity_kernel");
      unsigned long long n = 1;
      bad.download(&n, 1, stream);
      direct = n == 0;
    }
    for (const auto& sh : shapes) {
      const unsigned R = sh.first, J = sh.second;
      const unsigned staged_a = direct ? 0u : detail::RunShape::of(false, R, J).staged();
      const unsigned staged_b = both ? detail::RunShape::of(true, R, J).staged() : 0u;
      // 16-bit offsets; the kernel's staging fits the default 48 KiB of shared memory.
      if (R % 16 != 0 || J % 8 != 0 || staged_a > 65535u || staged_b > 65535u ||
          2 * std::size_t(staged_a + staged_b) > (std::size_t(48) << 10))
        continue;
      const unsigned nbj = unsigned((nnzr + J - 1) / J);
      const std::size_t nblocks = ((out + R - 1) / R) * nbj;
      if (nblocks >= (std::size_t(1) << 31)) continue;
      bad.fill_bytes(0, stream);
      for (int side = direct ? 1 : 0; side < (both ? 2 : 1); ++side) {
        const bool col = side == 1;
        const unsigned max_runs = col ? 2 * J : R;
        base[side].resize(nblocks * max_runs);
        base[side].fill_bytes(0xff, stream);
        count.resize(nblocks * max_runs);
        count.fill_bytes(0, stream);
        off[side].resize(nnz());
        const DeviceBuffer<std::uint32_t>& inv = col ? inv_bwd : inv_fwd;
        const unsigned grid = detail::grid_for(nnz(), 256);
        detail::run_bounds_kernel<std::uint32_t>
            <<<grid, 256, 0, stream>>>(inv.data(), m_idx.data(), out, nnzr, R, J, nbj, col,
                                       max_runs, base[side].data(), count.data());
        SPARSENM_CUDA_CHECK_LAUNCH("run_bounds_kernel");
        detail::run_offsets_kernel<std::uint32_t><<<grid, 256, 0, stream>>>(
            inv.data(), m_idx.data(), out, nnzr, R, J, nbj, col, max_runs, base[side].data(),
            count.data(), off[side].data(), bad.data());
        SPARSENM_CUDA_CHECK_LAUNCH("run_offsets_kernel");
      }
      unsigned long long nbad = 0;
      bad.download(&nbad, 1, stream);
      if (nbad != 0) continue;
      m_tiles = FusedTiles{R, J, staged_a, staged_b, true, direct};
      m_off_fwd = std::move(off[0]);  // empty with `direct`: the kernel's signal
      m_base_fwd = std::move(base[0]);
      m_off_bwd = both ? std::move(off[1]) : DeviceBuffer<std::uint16_t>();
      m_base_bwd = both ? std::move(base[1]) : DeviceBuffer<std::uint32_t>();
      return true;
    }
    return false;
  }

  /// The rectangle shape of PackRoute::Fused (file comment): for each candidate (slot rows R x
  /// slots J, 1024 to 8192 slots, J >= 8), the largest window of packed words that a rectangle's
  /// slots land in, in each packed weight; keeps the shape with the smallest windows per slot
  /// (ties: the larger rectangle, then the longer runs), if both windows are <= 16384 words,
  /// and fills the per-slot 16-bit offsets and per-rectangle bases. Runs at rebuild only.
  bool plan_tiles(const DeviceBuffer<std::uint32_t>& inv_fwd,
                  const DeviceBuffer<std::uint32_t>& inv_bwd, cudaStream_t stream) {
    constexpr unsigned kMaxWindow = 16384;
    const std::size_t nnzr = std::size_t(m_in / 2), out = std::size_t(m_out);
    double best_cost = 1e30;
    FusedTiles best{};
    std::vector<std::uint32_t> lo, hi;
    DeviceBuffer<std::uint32_t> d_lo, d_hi;
    auto windows = [&](const DeviceBuffer<std::uint32_t>& inv, unsigned R, unsigned J,
                       std::size_t nblocks, unsigned nbj) {
      d_lo.resize(nblocks);
      d_hi.resize(nblocks);
      detail::window_bounds_kernel<std::uint32_t><<<unsigned(nblocks), 256, 0, stream>>>(
          inv.data(), out, nnzr, R, J, nbj, d_lo.data(), d_hi.data());
      SPARSENM_CUDA_CHECK_LAUNCH("window_bounds_kernel");
      lo.resize(nblocks);
      hi.resize(nblocks);
      d_lo.download(lo.data(), nblocks, stream);
      d_hi.download(hi.data(), nblocks, stream);
      std::uint64_t w = 0;
      for (std::size_t b = 0; b < nblocks; ++b)
        w = std::max<std::uint64_t>(w, std::uint64_t(hi[b]) - lo[b] + 1);
      return w;
    };
    for (unsigned size : {8192u, 4096u, 2048u, 1024u})
      for (unsigned R = 1; R <= size / 8; R *= 2) {
        const unsigned J = size / R;
        if (J % 4 != 0 || R > out || J > nnzr) continue;
        const unsigned nbj = unsigned((nnzr + J - 1) / J);
        const std::size_t nblocks = ((out + R - 1) / R) * nbj;
        if (nblocks >= (std::size_t(1) << 31)) continue;
        const std::uint64_t wf = windows(inv_fwd, R, J, nblocks, nbj);
        if (wf > kMaxWindow) continue;
        // Both packed weights in the pass, or (fused_transposed false) the forward one only.
        const std::uint64_t wb = m_cfg.fused_transposed ? windows(inv_bwd, R, J, nblocks, nbj) : 0;
        if (wb > kMaxWindow) continue;
        const double cost = double(wf + wb) / double(R * J);
        // A candidate must beat the best by 1 % (ties keep the earlier: larger, longer runs).
        if (cost < best_cost * 0.99) {
          best_cost = cost;
          best = FusedTiles{R, J, unsigned(wf), unsigned(wb)};
        }
      }
    if (best.rows == 0) return false;
    m_tiles = best;  // runs == false: one window a rectangle
    const unsigned R = best.rows, J = best.slots, nbj = unsigned((nnzr + J - 1) / J);
    const std::size_t nblocks = ((out + R - 1) / R) * nbj;
    m_off_fwd.resize(nnz());
    m_off_bwd.resize(best.window_bwd ? nnz() : 0);
    m_base_fwd.resize(nblocks);
    m_base_bwd.resize(best.window_bwd ? nblocks : 0);
    DeviceBuffer<std::uint32_t> hi_dummy(nblocks);
    for (int side = 0; side < (best.window_bwd ? 2 : 1); ++side) {
      const DeviceBuffer<std::uint32_t>& inv = side ? inv_bwd : inv_fwd;
      DeviceBuffer<std::uint32_t>& base = side ? m_base_bwd : m_base_fwd;
      DeviceBuffer<std::uint16_t>& off = side ? m_off_bwd : m_off_fwd;
      detail::window_bounds_kernel<std::uint32_t><<<unsigned(nblocks), 256, 0, stream>>>(
          inv.data(), out, nnzr, R, J, nbj, base.data(), hi_dummy.data());
      SPARSENM_CUDA_CHECK_LAUNCH("window_bounds_kernel");
      detail::window_offsets_kernel<std::uint32_t>
          <<<detail::grid_for(nnz(), 256), 256, 0, stream>>>(inv.data(), out, nnzr, R, J, nbj,
                                                             base.data(), off.data());
      SPARSENM_CUDA_CHECK_LAUNCH("window_offsets_kernel");
    }
    // The attribute is per kernel, not per layer: always the bound of any layer's windows.
    const int smem_bound = int(4 * 2 * (kMaxWindow / 32) + 2 * 2 * kMaxWindow);
    SPARSENM_CUDA_CHECK(cudaFuncSetAttribute(detail::adam_pack_tiles_kernel<true>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             smem_bound));
    SPARSENM_CUDA_CHECK(cudaFuncSetAttribute(detail::adam_pack_tiles_kernel<false>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             smem_bound));
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
    return true;
  }

  std::size_t fused_smem() const {
    const std::size_t wa = m_tiles.window_fwd, wb = m_tiles.window_bwd;
    if (m_tiles.runs) return 2 * (wa + wb);
    return 4 * ((wa + 31) / 32 + (wb + 31) / 32) + 2 * (wa + wb);
  }

  /// PackRoute::Fused: the tiled pass, with the Adam step (ADAM; after m_opt->tick) or the
  /// re-pack of the master values only.
  template <bool ADAM>
  void fused_pass(cudaStream_t stream) {
    const AdamConfig& a = m_opt->config();
    const std::size_t nnzr = std::size_t(m_in / 2), out = std::size_t(m_out);
    const unsigned R = m_tiles.rows, J = m_tiles.slots, nbj = unsigned((nnzr + J - 1) / J);
    const unsigned nblocks = unsigned(((out + R - 1) / R) * nbj);
    __nv_bfloat16* packed_b =
        m_tiles.window_bwd ? reinterpret_cast<__nv_bfloat16*>(m_bwd->compressed_data()) : nullptr;
    if (m_tiles.runs) {
      const bool sample = ADAM && m_grad_pending;
      auto kernel = sample ? detail::adam_pack_runs_kernel<ADAM, true>
                           : detail::adam_pack_runs_kernel<ADAM, false>;
      kernel<<<nblocks, 256, fused_smem(), stream>>>(
          m_grad.data(), m_opt->exp_avg_data(), m_opt->exp_avg_sq_data(), m_values.data(), out,
          nnzr, R, J, nbj, m_off_fwd.data(), m_base_fwd.data(), false, R, m_tiles.window_fwd,
          reinterpret_cast<__nv_bfloat16*>(m_fwd->compressed_data()), m_off_bwd.data(),
          m_base_bwd.data(), true, 2 * J, packed_b, float(a.beta1), float(a.beta2),
          float(1.0 - a.beta1), float(1.0 - a.beta2), m_opt->coef_data(), float(a.eps),
          a.decoupled_weight_decay ? 0.f : float(a.weight_decay),
          sample ? m_dw_tile.data() : nullptr, m_idx.data());
      SPARSENM_CUDA_CHECK_LAUNCH("adam_pack_runs_kernel");
      if (!packed_b) gather(m_map_bwd, *m_bwd, stream);  // forward-only runs
      return;
    }
    detail::adam_pack_tiles_kernel<ADAM><<<nblocks, 256, fused_smem(), stream>>>(
        m_grad.data(), m_opt->exp_avg_data(), m_opt->exp_avg_sq_data(), m_values.data(), out, nnzr,
        R, J, nbj, m_off_fwd.data(), m_base_fwd.data(), m_tiles.window_fwd,
        reinterpret_cast<__nv_bfloat16*>(m_fwd->compressed_data()), m_off_bwd.data(),
        m_base_bwd.data(), m_tiles.window_bwd,
        m_tiles.window_bwd ? reinterpret_cast<__nv_bfloat16*>(m_bwd->compressed_data()) : nullptr,
        float(a.beta1), float(a.beta2), float(1.0 - a.beta1), float(1.0 - a.beta2),
        m_opt->coef_data(), float(a.eps), a.decoupled_weight_decay ? 0.f : float(a.weight_decay));
    SPARSENM_CUDA_CHECK_LAUNCH("adam_pack_tiles_kernel");
    if (!m_tiles.window_bwd) gather(m_map_bwd, *m_bwd, stream);  // forward-only windows
  }

  void gather(const DeviceBuffer<std::uint32_t>& slot_of, Sparse24& plan, cudaStream_t stream) {
    detail::gather_values_kernel<float><<<detail::grid_for(slot_of.size(), 256), 256, 0, stream>>>(
        m_values.data(), slot_of.data(), slot_of.size(),
        reinterpret_cast<__nv_bfloat16*>(plan.compressed_data()));
    SPARSENM_CUDA_CHECK_LAUNCH("gather_values_kernel");
  }

 public:
  /// The bf16 weights from the fp32 master values (the mask unchanged): what step() runs after
  /// the optimizer; call it after changing values_data() directly.
  void pack(cudaStream_t stream = nullptr) {
    const bool transposable = m_dx_route == DxRoute::SparseTransposed;
    if (m_pack_route == PackRoute::Fused) {
      fused_pass<false>(stream);
    } else if (m_pack_route == PackRoute::InPlace) {
      gather(m_map_fwd, *m_fwd, stream);
      if (transposable) gather(m_map_bwd, *m_bwd, stream);
      if (!transposable) expand(false, detail::Expand::Values, 0, m_dense_w.data(), stream);
    } else {
      expand(false, detail::Expand::Values, 0, m_dense_w.data(), stream);
      m_fwd->recompress(m_dense_w.data(), stream);
      if (transposable) {
        expand(true, detail::Expand::Values, 0, m_dense_wt.data(), stream);
        m_bwd->recompress(m_dense_wt.data(), stream);
      }
    }
  }

 private:
  Linear24Config m_cfg;
  Index m_out = 0, m_in = 0, m_tokens = 0, m_dw_rows = 0;
  Mask m_indices;  ///< host copy of the indices (out x in/2): they change only on a refresh
  DeviceBuffer<float> m_values, m_grad, m_bias, m_grad_bias, m_dw_tile;
  DeviceBuffer<std::uint16_t> m_off_fwd, m_off_bwd;    ///< PackRoute::Fused: slot -> window offset
  DeviceBuffer<std::uint32_t> m_base_fwd, m_base_bwd;  ///< PackRoute::Fused: rectangle -> window
  FusedTiles m_tiles{};
  bool m_tiles_ok = false, m_dw_overlap = false;
  /// The last backward left dW in the tile unsampled (sample_in_step): m_grad may be stale.
  mutable bool m_grad_pending = false;
  cudaStream_t m_pending_stream = nullptr;
  std::unique_ptr<Stream> m_side;  ///< dw_overlap: the sampling stream
  cudaEvent_t m_ev_fork = nullptr, m_ev_product[2] = {nullptr, nullptr},
              m_ev_sampled[2] = {nullptr, nullptr};
  DeviceBuffer<std::uint8_t> m_idx;
  DeviceBuffer<std::uint32_t> m_map_fwd, m_map_bwd;  ///< packed word -> slot (kNoSlot: metadata)
  DeviceBuffer<__nv_bfloat16> m_dense_w, m_dense_wt;
  DeviceBuffer<unsigned char> m_blas_ws;
  CublasHandle m_blas;
  std::unique_ptr<Sparse24> m_fwd, m_bwd;
  std::unique_ptr<Adam<float>> m_opt, m_opt_bias;
  DxRoute m_dx_route = DxRoute::DenseFallback;
  PackRoute m_pack_route = PackRoute::Recompress;
  const __nv_bfloat16* m_x = nullptr;
  long m_rebuilds = 0;
};

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_HAS_CUSPARSELT
#endif  // SPARSENM_CUDA_SPARSE_LINEAR24_CUH
