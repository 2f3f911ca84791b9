// SPDX-License-Identifier: Apache-2.0
// 2:4 sparse x dense on sparse tensor cores through cuSPARSELt (bf16 in/out, fp32 accumulation),
// available when CMake found cuSPARSELt (it defines SPARSENM_HAS_CUSPARSELT and links it; the H100
// image ships it in its Python packages, nvidia/cusparselt). The weight comes from our
// NMCompressed (mask/compress.hpp, row-wise 2:4 along the input dimension): it is expanded to a
// pruned dense bf16 matrix and handed to cusparseLtSpMMACompress, which builds cuSPARSELt's own
// opaque layout (values + NVIDIA 2-bit metadata; see mask/nvidia_metadata.hpp for the format).
//
// y (tokens x out) = x (tokens x in) Wᵀ with W (out x in): structured A = W (row-major, m = out,
// k = in), dense B = x read as Bᵀ (row-major tokens x in, opB = T), C written column-major
// (out x tokens, ld = out), which is y row-major. The layout choice follows PyTorch's
// _cslt_sparse_mm. The token count is fixed per object (the plan is tuned for it).
//
// Kernel choice. cusparseLtMatmulSearch times the candidate kernels on the inputs it is given; it
// is run on pseudo-random bf16 activations (zeros run faster than real data on these cards and
// can favour the wrong kernel). tune() goes further: it times every algorithm id the plan offers
// (CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID) with split-k 1 and the library's own choice, on caller
// data, and keeps the fastest plan. The compressed weight does not depend on the algorithm (the
// library's compression takes the matrix descriptor and operation only), so it is kept.
// recompress() re-packs new values under the same plan (a training step: values change, the
// mask may too); compressed_data() exposes the packed buffer for in-place value updates
// (cuda/sparse_linear24.cuh).
#ifndef SPARSENM_CUDA_SPARSE24_CUH
#define SPARSENM_CUDA_SPARSE24_CUH

#if defined(SPARSENM_HAS_CUSPARSELT)

#include <algorithm>
#include <cstdint>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cusparseLt.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
#include "error.cuh"
#include "memory.cuh"

namespace sparsenm {
namespace cuda {
namespace detail {
inline void check_cusparselt(cusparseStatus_t status, const char* call, const char* file,
                             int line) {
  if (status != CUSPARSE_STATUS_SUCCESS)
    raise_cuda(call, file, line, int(status), cusparseLtGetErrorName(status),
               cusparseLtGetErrorString(status));
}
}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

namespace sparsenm {
namespace cuda {
namespace detail {
/// Deterministic bf16 activations in [-1, 1) for the kernel search (a multiplicative hash of the
/// index; not a statistical generator, only "not zeros").
template <class T>  // a template: header-only kernels need no out-of-line definition
__global__ void fill_search_input(T* x, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const std::uint32_t h = std::uint32_t(i) * 2654435761u ^ std::uint32_t(i >> 32);
    x[i] = T(float(h >> 8) * (2.f / 16777216.f) - 1.f);
  }
}
}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

/// Checks a cuSPARSELt call (cusparseStatus_t).
#define SPARSENM_CUSPARSELT_CHECK(call) \
  ::sparsenm::cuda::detail::check_cusparselt((call), #call, __FILE__, __LINE__)

namespace sparsenm {
namespace cuda {

/// A 2:4 weight compressed by cuSPARSELt, with a plan tuned for `tokens` activation rows.
class Sparse24 {
 public:
  /// From a row-wise 2:4 NMCompressed weight (values rounded to bf16). in % 16 == 0,
  /// out % 16 == 0, tokens % 16 == 0 (cuSPARSELt's 16-element alignment for 16-bit types).
  /// `search` runs cusparseLtMatmulSearch once to pick the fastest kernel for this shape.
  template <class S>
  Sparse24(const NMCompressed<S>& c, Index tokens, bool search = true,
           cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(c.nm.n == 2 && c.nm.m == 4, "cuda::Sparse24: nm = ", c.nm, " must be NM{2,4}");
    const Matrix<S> dense = decompress(c);
    std::vector<__nv_bfloat16> h(std::size_t(dense.size()));
    for (Index k = 0; k < dense.size(); ++k)
      h[std::size_t(k)] = __float2bfloat16(float(dense.data()[k]));
    DeviceBuffer<__nv_bfloat16> d;
    d.upload(h, stream);
    init(d.data(), c.rows, c.cols, tokens, search, stream);
  }

  /// From a pruned dense bf16 device weight (out x in, row-major, 2:4 along rows).
  Sparse24(const __nv_bfloat16* pruned, Index out, Index in, Index tokens, bool search = true,
           cudaStream_t stream = nullptr) {
    init(pruned, out, in, tokens, search, stream);
  }

  Sparse24(const Sparse24&) = delete;
  Sparse24& operator=(const Sparse24&) = delete;
  ~Sparse24() {
    if (m_plan_ready) cusparseLtMatmulPlanDestroy(&m_plan);
    if (m_alg_ready) cusparseLtMatmulAlgSelectionDestroy(&m_alg);
    if (m_desc_ready) {
      cusparseLtMatDescriptorDestroy(&m_a);
      cusparseLtMatDescriptorDestroy(&m_b);
      cusparseLtMatDescriptorDestroy(&m_c);
    }
    if (m_handle_ready) cusparseLtDestroy(&m_handle);
  }

  Index rows() const { return m_out; }
  Index cols() const { return m_in; }
  Index tokens() const { return m_tokens; }
  std::size_t compressed_bytes() const { return m_compressed.size(); }
  int library_version() const {
    int v = 0;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtGetVersion(&m_handle, &v));
    return v;
  }

  /// y (tokens x out, row-major bf16) = x (tokens x in, row-major bf16) Wᵀ.
  void matmul(const __nv_bfloat16* x, __nv_bfloat16* y, cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(x && y, "cuda::Sparse24::matmul: x and y must be device pointers");
    const float alpha = 1.f, beta = 0.f;
    cudaStream_t streams[1] = {stream};
    SPARSENM_CUSPARSELT_CHECK(cusparseLtMatmul(&m_handle, &m_plan, &alpha, m_compressed.data(), x,
                                               &beta, y, y, m_workspace.data(), streams, 1));
  }

  /// Re-packs a new pruned dense bf16 weight (same shape, 2:4 along rows; not re-checked) into
  /// the compressed buffer under the current plan. Stream-ordered; allocates nothing.
  void recompress(const __nv_bfloat16* pruned, cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(pruned, "cuda::Sparse24::recompress: pruned must be a device pointer");
    SPARSENM_CUSPARSELT_CHECK(cusparseLtSpMMACompress(
        &m_handle, &m_plan, pruned, m_compressed.data(), m_compress_buffer.data(), stream));
  }
  /// The packed weight (cuSPARSELt's layout: the kept bf16 values, then the metadata).
  unsigned char* compressed_data() { return m_compressed.data(); }
  const unsigned char* compressed_data() const { return m_compressed.data(); }

  /// The algorithm id and split-k of the current plan (after search or tune()).
  int alg_id() const { return get_alg_attr(CUSPARSELT_MATMUL_ALG_CONFIG_ID); }
  int split_k() const { return get_alg_attr(CUSPARSELT_MATMUL_SPLIT_K); }

  struct TuneResult {
    int alg_id = 0, split_k = 1, candidates = 0;
    float ms = 0, first_ms = 0;  ///< best median, and the median of the plan tune() started from
  };
  /// Times every algorithm id (split-k 1 and the library's default split-k for that id) on
  /// x -> y, `reps` runs each (median), and keeps the fastest plan. Synchronises `stream`.
  TuneResult tune(const __nv_bfloat16* x, __nv_bfloat16* y, int reps = 5,
                  cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(x && y && reps > 0, "cuda::Sparse24::tune: x, y device pointers, reps = ", reps,
                   " must be > 0");
    TuneResult best;
    best.alg_id = alg_id();
    best.split_k = split_k();
    best.first_ms = best.ms = time_plan(x, y, reps, stream);
    int max_id = 0;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtMatmulAlgGetAttribute(
        &m_handle, &m_alg, CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID, &max_id, sizeof max_id));
    for (int id = 0; id <= max_id; ++id)
      for (int sk : {-1, 1}) {  // -1: leave split-k to the library's heuristic for this id
        if (!set_plan(id, sk)) continue;
        ++best.candidates;
        const float ms = time_plan(x, y, reps, stream);
        if (ms < best.ms) best.ms = ms, best.alg_id = id, best.split_k = split_k();
      }
    SPARSENM_CHECK(set_plan(best.alg_id, best.split_k),
                   "cuda::Sparse24::tune: the best plan could not be rebuilt");
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
    return best;
  }

 private:
  void init(const __nv_bfloat16* pruned, Index out, Index in, Index tokens, bool search,
            cudaStream_t stream) {
    SPARSENM_CHECK(out > 0 && in > 0 && tokens > 0, "cuda::Sparse24: shape out = ", out,
                   ", in = ", in, ", tokens = ", tokens, " must be positive");
    check_divisible(out, 16, "cuda::Sparse24: out", "16");
    check_divisible(in, 16, "cuda::Sparse24: in", "16");
    check_divisible(tokens, 16, "cuda::Sparse24: tokens", "16");
    m_out = out;
    m_in = in;
    m_tokens = tokens;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtInit(&m_handle));
    m_handle_ready = true;
    const std::int64_t m = out, k = in, n = tokens;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtStructuredDescriptorInit(&m_handle, &m_a, m, k, k, 16,
                                                                 CUDA_R_16BF, CUSPARSE_ORDER_ROW,
                                                                 CUSPARSELT_SPARSITY_50_PERCENT));
    SPARSENM_CUSPARSELT_CHECK(cusparseLtDenseDescriptorInit(&m_handle, &m_b, n, k, k, 16,
                                                            CUDA_R_16BF, CUSPARSE_ORDER_ROW));
    SPARSENM_CUSPARSELT_CHECK(cusparseLtDenseDescriptorInit(&m_handle, &m_c, m, n, m, 16,
                                                            CUDA_R_16BF, CUSPARSE_ORDER_COL));
    m_desc_ready = true;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtMatmulDescriptorInit(
        &m_handle, &m_matmul, CUSPARSE_OPERATION_NON_TRANSPOSE, CUSPARSE_OPERATION_TRANSPOSE, &m_a,
        &m_b, &m_c, &m_c, CUSPARSE_COMPUTE_32F));
    SPARSENM_CUSPARSELT_CHECK(cusparseLtMatmulAlgSelectionInit(&m_handle, &m_alg, &m_matmul,
                                                               CUSPARSELT_MATMUL_ALG_DEFAULT));
    m_alg_ready = true;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtMatmulPlanInit(&m_handle, &m_plan, &m_matmul, &m_alg));
    m_plan_ready = true;
    // The input must already be 2:4 along k; cuSPARSELt checks it (0 = valid).
    DeviceBuffer<int> valid(1);
    valid.fill_bytes(0, stream);  // the check only reports failures: start from 0
    SPARSENM_CUSPARSELT_CHECK(
        cusparseLtSpMMAPruneCheck(&m_handle, &m_matmul, pruned, valid.data(), stream));
    int is_valid = 1;
    valid.download(&is_valid, 1, stream);
    SPARSENM_CHECK(is_valid == 0,
                   "cuda::Sparse24: the weight is not 2:4 sparse along its rows "
                   "(cusparseLtSpMMAPruneCheck)");
    std::size_t csize = 0, cbuf = 0;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtSpMMACompressedSize(&m_handle, &m_plan, &csize, &cbuf));
    m_compressed.resize(csize);
    m_compress_buffer.resize(cbuf > 0 ? cbuf : 1);
    SPARSENM_CUSPARSELT_CHECK(cusparseLtSpMMACompress(
        &m_handle, &m_plan, pruned, m_compressed.data(), m_compress_buffer.data(), stream));
    if (search) {
      DeviceBuffer<__nv_bfloat16> x(std::size_t(n * k)), y(std::size_t(m * n));
      // Never search on zeros: they run faster than real data and can pick the wrong kernel.
      detail::fill_search_input<__nv_bfloat16>
          <<<detail::grid_for(x.size(), 256), 256, 0, stream>>>(x.data(), x.size());
      SPARSENM_CUDA_CHECK_LAUNCH("fill_search_input");
      const float alpha = 1.f, beta = 0.f;
      cudaStream_t streams[1] = {stream};
      SPARSENM_CUSPARSELT_CHECK(cusparseLtMatmulSearch(&m_handle, &m_plan, &alpha,
                                                       m_compressed.data(), x.data(), &beta,
                                                       y.data(), y.data(), nullptr, streams, 1));
    }
    std::size_t ws = 0;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtMatmulGetWorkspace(&m_handle, &m_plan, &ws));
    m_workspace.resize(ws > 0 ? ws : 1);
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  int get_alg_attr(cusparseLtMatmulAlgAttribute_t a) const {
    int v = 0;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtMatmulAlgGetAttribute(&m_handle, &m_alg, a, &v, sizeof v));
    return v;
  }
  /// Rebuilds the plan for algorithm `id` and split-k `sk` (-1: the library's default); false
  /// (and the previous plan destroyed, to be rebuilt by the caller) when the library refuses.
  bool set_plan(int id, int sk) {
    if (m_plan_ready) cusparseLtMatmulPlanDestroy(&m_plan);
    m_plan_ready = false;
    if (m_alg_ready) cusparseLtMatmulAlgSelectionDestroy(&m_alg);
    m_alg_ready = false;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtMatmulAlgSelectionInit(&m_handle, &m_alg, &m_matmul,
                                                               CUSPARSELT_MATMUL_ALG_DEFAULT));
    m_alg_ready = true;
    if (cusparseLtMatmulAlgSetAttribute(&m_handle, &m_alg, CUSPARSELT_MATMUL_ALG_CONFIG_ID, &id,
                                        sizeof id) != CUSPARSE_STATUS_SUCCESS)
      return false;
    if (sk > 0 && cusparseLtMatmulAlgSetAttribute(&m_handle, &m_alg, CUSPARSELT_MATMUL_SPLIT_K, &sk,
                                                  sizeof sk) != CUSPARSE_STATUS_SUCCESS)
      return false;
    if (cusparseLtMatmulPlanInit(&m_handle, &m_plan, &m_matmul, &m_alg) != CUSPARSE_STATUS_SUCCESS)
      return false;
    m_plan_ready = true;
    std::size_t ws = 0;
    SPARSENM_CUSPARSELT_CHECK(cusparseLtMatmulGetWorkspace(&m_handle, &m_plan, &ws));
    if (ws > m_workspace.size()) m_workspace.resize(ws);
    return true;
  }
  float time_plan(const __nv_bfloat16* x, __nv_bfloat16* y, int reps, cudaStream_t stream) {
    Event a, b;
    std::vector<float> t;
    for (int r = -2; r < reps; ++r) {  // two warm-up runs
      a.record(stream);
      matmul(x, y, stream);
      b.record(stream);
      b.synchronize();
      if (r >= 0) t.push_back(b.elapsed_ms_since(a));
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }

  Index m_out = 0, m_in = 0, m_tokens = 0;
  cusparseLtHandle_t m_handle{};
  cusparseLtMatDescriptor_t m_a{}, m_b{}, m_c{};
  cusparseLtMatmulDescriptor_t m_matmul{};
  cusparseLtMatmulAlgSelection_t m_alg{};
  cusparseLtMatmulPlan_t m_plan{};
  bool m_handle_ready = false, m_desc_ready = false, m_alg_ready = false, m_plan_ready = false;
  DeviceBuffer<unsigned char> m_compressed, m_compress_buffer, m_workspace;
};

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_HAS_CUSPARSELT
#endif  // SPARSENM_CUDA_SPARSE24_CUH
