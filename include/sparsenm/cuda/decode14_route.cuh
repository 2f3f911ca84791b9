// SPDX-License-Identifier: Apache-2.0
// 1:4 decode (1..16 tokens) that is never slower than its alternatives: per token count the
// fastest of
//   Native14   the native 1:4 kernel (cuda::Sparse14: 0.5625 bytes per weight, memory-bound win
//              at few tokens, but CUDA cores, so it falls behind as tokens grow),
//   Sparse24   cuSPARSELt on sparse tensor cores (a 1:4 weight is 2:4-legal: at most 2 of every
//              4 kept), x padded to 16 rows in a scratch (only with SPARSENM_HAS_CUSPARSELT),
//   Dense      cuBLAS bf16 on a pruned dense copy (optional: 2 bytes per weight more memory;
//              the reference the issue's target names),
// chosen by calibrate(), which times each available route at every token count on the device
// (median of batched launches) and keeps the fastest. Before calibration every count runs
// Native14.
#ifndef SPARSENM_CUDA_DECODE14_ROUTE_CUH
#define SPARSENM_CUDA_DECODE14_ROUTE_CUH

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
#include "decode14.cuh"
#include "error.cuh"
#include "memory.cuh"
#include "sparse24.cuh"

namespace sparsenm {
namespace cuda {

enum class DecodeRoute { Native14, Sparse24, Dense };

inline const char* to_string(DecodeRoute r) {
  return r == DecodeRoute::Native14   ? "native1:4"
         : r == DecodeRoute::Sparse24 ? "cusparselt"
                                      : "cublas";
}

class Decode14 {
 public:
  static constexpr int kMaxTokens = Sparse14::kMaxTokens;

  /// From a CPU-compressed 1:4 weight. `dense_fallback` keeps a pruned dense bf16 copy for the
  /// cuBLAS route. out % 16 == 0 and in % 32 == 0 for the cuSPARSELt route (else it is left out).
  template <class S>
  Decode14(const NMCompressed<S>& c, bool dense_fallback, cudaStream_t stream = nullptr)
      : m_native(c, stream), m_out(c.rows), m_in(c.cols) {
    std::fill(std::begin(m_route), std::end(m_route), DecodeRoute::Native14);
    const bool want24 = c.rows % 16 == 0 && c.cols % 16 == 0;
#if defined(SPARSENM_HAS_CUSPARSELT)
    if (want24 || dense_fallback) {
#else
    if (dense_fallback) {
#endif
      const Matrix<S> d = decompress(c);
      std::vector<__nv_bfloat16> h(std::size_t(d.size()));
      for (Index k = 0; k < d.size(); ++k) h[std::size_t(k)] = __float2bfloat16(float(d.data()[k]));
      DeviceBuffer<__nv_bfloat16> dw;
      dw.upload(h, stream);
#if defined(SPARSENM_HAS_CUSPARSELT)
      if (want24) {
        m_sparse24 =
            std::make_unique<Sparse24>(dw.data(), m_out, m_in, Index(kMaxTokens), true, stream);
        m_xpad.resize(std::size_t(kMaxTokens) * std::size_t(m_in));
        m_xpad.fill_bytes(0, stream);
        m_ypad.resize(std::size_t(kMaxTokens) * std::size_t(m_out));
      }
#endif
      if (dense_fallback) {
        m_dense = std::move(dw);
        m_ws.resize(std::size_t(4) << 20);
        m_blas = std::make_unique<CublasHandle>();
        SPARSENM_CUBLAS_CHECK(cublasSetWorkspace(*m_blas, m_ws.data(), m_ws.size()));
      }
    }
    (void)want24;
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  bool has(DecodeRoute r) const {
    return r == DecodeRoute::Native14 || (r == DecodeRoute::Dense && m_blas) ||
           (r == DecodeRoute::Sparse24 && has_sparse24());
  }
  DecodeRoute route(int tokens) const {
    check_tokens(tokens);
    return m_route[tokens];
  }
  void set_route(int tokens, DecodeRoute r) {
    check_tokens(tokens);
    SPARSENM_CHECK(has(r), "cuda::Decode14::set_route: route ", to_string(r),
                   " is not available for this weight");
    m_route[tokens] = r;
  }

  /// y (tokens x out) = x (tokens x in) Wᵀ by the route chosen for `tokens`.
  void matmul(const __nv_bfloat16* x, int tokens, __nv_bfloat16* y, cudaStream_t stream = nullptr) {
    run(m_route[checked(tokens)], x, tokens, y, stream);
  }
  /// The same by a given route (for calibration and benchmarks).
  void run(DecodeRoute r, const __nv_bfloat16* x, int tokens, __nv_bfloat16* y,
           cudaStream_t stream = nullptr) {
    checked(tokens);
    if (r == DecodeRoute::Native14) return m_native.matmul(x, tokens, y, stream);
    if (r == DecodeRoute::Dense) {
      SPARSENM_CHECK(m_blas, "cuda::Decode14: no dense fallback was kept");
      const float one = 1.f, zero = 0.f;
      SPARSENM_CUBLAS_CHECK(cublasSetStream(*m_blas, stream));
      SPARSENM_CUBLAS_CHECK(cublasGemmEx(*m_blas, CUBLAS_OP_T, CUBLAS_OP_N, int(m_out), tokens,
                                         int(m_in), &one, m_dense.data(), CUDA_R_16BF, int(m_in), x,
                                         CUDA_R_16BF, int(m_in), &zero, y, CUDA_R_16BF, int(m_out),
                                         CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      return;
    }
#if defined(SPARSENM_HAS_CUSPARSELT)
    SPARSENM_CHECK(m_sparse24, "cuda::Decode14: the cuSPARSELt route is not available");
    const std::size_t xb = std::size_t(tokens) * std::size_t(m_in) * sizeof(__nv_bfloat16);
    SPARSENM_CUDA_CHECK(cudaMemcpyAsync(m_xpad.data(), x, xb, cudaMemcpyDeviceToDevice, stream));
    m_sparse24->matmul(m_xpad.data(), m_ypad.data(), stream);  // rows >= tokens: stale, unused
    SPARSENM_CUDA_CHECK(cudaMemcpyAsync(
        y, m_ypad.data(), std::size_t(tokens) * std::size_t(m_out) * sizeof(__nv_bfloat16),
        cudaMemcpyDeviceToDevice, stream));
#else
    SPARSENM_CHECK(false, "cuda::Decode14: built without cuSPARSELt");
#endif
  }

  /// Times every available route at every token count (`inner` launches per event pair, median
  /// of `reps`) on the caller's scratch x (kMaxTokens x in) and y (kMaxTokens x out), and keeps
  /// the fastest per count. Returns the times, [route][tokens] in microseconds (-1: absent).
  std::vector<std::vector<double>> calibrate(const __nv_bfloat16* x, __nv_bfloat16* y,
                                             int inner = 20, int reps = 7,
                                             cudaStream_t stream = nullptr) {
    std::vector<std::vector<double>> us(3, std::vector<double>(kMaxTokens + 1, -1.0));
    Event a, b;
    for (int t = 1; t <= kMaxTokens; ++t) {
      double best = 1e30;
      for (int ri = 0; ri < 3; ++ri) {
        const DecodeRoute r = DecodeRoute(ri);
        if (!has(r)) continue;
        std::vector<float> ms;
        for (int k = -1; k < reps; ++k) {
          a.record(stream);
          for (int i = 0; i < inner; ++i) run(r, x, t, y, stream);
          b.record(stream);
          b.synchronize();
          if (k >= 0) ms.push_back(b.elapsed_ms_since(a));
        }
        std::sort(ms.begin(), ms.end());
        us[std::size_t(ri)][std::size_t(t)] = double(ms[ms.size() / 2]) * 1e3 / inner;
        if (us[std::size_t(ri)][std::size_t(t)] < best)
          best = us[std::size_t(ri)][std::size_t(t)], m_route[t] = r;
      }
    }
    return us;
  }

  const Sparse14& native() const { return m_native; }

 private:
  bool has_sparse24() const {
#if defined(SPARSENM_HAS_CUSPARSELT)
    return bool(m_sparse24);
#else
    return false;
#endif
  }
  static void check_tokens(int tokens) {
    SPARSENM_CHECK(tokens >= 1 && tokens <= kMaxTokens, "cuda::Decode14: tokens = ", tokens,
                   " must be in [1, ", kMaxTokens, "]");
  }
  static int checked(int tokens) {
    check_tokens(tokens);
    return tokens;
  }

  Sparse14 m_native;
  Index m_out, m_in;
  DecodeRoute m_route[kMaxTokens + 1];
  DeviceBuffer<__nv_bfloat16> m_dense, m_xpad, m_ypad;
  DeviceBuffer<unsigned char> m_ws;
  std::unique_ptr<CublasHandle> m_blas;  // after m_ws: destroyed first
#if defined(SPARSENM_HAS_CUSPARSELT)
  std::unique_ptr<Sparse24> m_sparse24;
#endif
};

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DECODE14_ROUTE_CUH
