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
#ifndef SPARSENM_CUDA_SPARSE24_CUH
#define SPARSENM_CUDA_SPARSE24_CUH

#if defined(SPARSENM_HAS_CUSPARSELT)

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
    DeviceBuffer<unsigned char> buffer(cbuf > 0 ? cbuf : 1);
    SPARSENM_CUSPARSELT_CHECK(cusparseLtSpMMACompress(&m_handle, &m_plan, pruned,
                                                      m_compressed.data(), buffer.data(), stream));
    if (search) {
      DeviceBuffer<__nv_bfloat16> x(std::size_t(n * k)), y(std::size_t(m * n));
      x.fill_bytes(0, stream);
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

  Index m_out = 0, m_in = 0, m_tokens = 0;
  cusparseLtHandle_t m_handle{};
  cusparseLtMatDescriptor_t m_a{}, m_b{}, m_c{};
  cusparseLtMatmulDescriptor_t m_matmul{};
  cusparseLtMatmulAlgSelection_t m_alg{};
  cusparseLtMatmulPlan_t m_plan{};
  bool m_handle_ready = false, m_desc_ready = false, m_alg_ready = false, m_plan_ready = false;
  DeviceBuffer<unsigned char> m_compressed, m_workspace;
};

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_HAS_CUSPARSELT
#endif  // SPARSENM_CUDA_SPARSE24_CUH
