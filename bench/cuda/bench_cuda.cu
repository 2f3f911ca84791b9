// SPDX-License-Identifier: Apache-2.0
// GPU benchmarks of the CUDA backend, each next to its baseline in the same process, timed with
// CUDA events (median of repeated runs after warm-up; inputs rotated where they would fit in L2):
//   copy        device-to-device cudaMemcpy: the bandwidth ceiling (bytes read + written)
//   select/perturb/tans passes   GB/s and fraction of that copy bandwidth (target >= 80%)
//   tans step   full device TANS step (NS fp32 / TF32 / bf16), for the PyTorch comparison
//   sparse24    cuSPARSELt 2:4 vs cuBLAS dense bf16, 8192 tokens (target >= 1.3x)
//   decode14    native 1:4 kernel vs cuBLAS dense bf16 at 1, 4, 16 tokens (target >= 2.5x at 1)
//   layer24     whole training step of cuda::SparseLinear24 (2:4 transposable: forward, dX, dW,
//               Adam, re-pack) vs the dense cuBLAS bf16 step with dense fp32 Adam and the bf16
//               cast, 8192 tokens (target >= 1.3x); components, host overhead per step, CUDA
//               graph replay, plan tuning, and the cost of a CPU-engine topology refresh
//   refresh24   the CHTs24 refresh on the device (cuda::DeviceRefresher24) vs the CPU-engine
//               round trip, amortised over 100 layer steps
// Output: "RESULT <key> <value>" lines (parsed by scripts/cuda_check) and a readable table.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <sparsenm/cuda.cuh>
#include <sparsenm/mask.hpp>
#include <sparsenm/topology/refresh.hpp>

namespace sc = sparsenm::cuda;
using sparsenm::Index;
using sparsenm::Matrix;
using sparsenm::NM;
using sparsenm::Philox;

namespace {

bool g_quick = false;

double median_ms(const std::function<void(int)>& f, int warmup, int reps, cudaStream_t s) {
  for (int i = 0; i < warmup; ++i) f(i);
  SPARSENM_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<float> t(static_cast<std::size_t>(reps));
  sc::Event a, b;
  for (int i = 0; i < reps; ++i) {
    a.record(s);
    f(warmup + i);
    b.record(s);
    b.synchronize();
    t[std::size_t(i)] = b.elapsed_ms_since(a);
  }
  std::sort(t.begin(), t.end());
  return double(t[t.size() / 2]);
}

/// Times `inner` launches per event pair (for microsecond kernels: amortises the event overhead).
double median_ms_batched(const std::function<void(int)>& f, int inner, int reps, cudaStream_t s) {
  return median_ms(
             [&](int r) {
               for (int i = 0; i < inner; ++i) f(r * inner + i);
             },
             2, reps, s) /
         inner;
}

/// Dense and sparse timed in alternation from CUDA graphs of `inner` launches each (METHOD.md: a
/// graph removes the host launch gaps between microsecond kernels, which otherwise dominate both
/// sides); returns the medians {a, b} over `reps` pairs and the median of the per-pair ratios a/b.
struct PairTiming {
  double a_ms, b_ms, ratio;
};
PairTiming graph_pair_ms(const std::function<void(int)>& fa, const std::function<void(int)>& fb,
                         int inner, int reps, cudaStream_t s) {
  auto capture = [&](const std::function<void(int)>& f) {
    cudaGraph_t g;
    cudaGraphExec_t e;
    SPARSENM_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < inner; ++i) f(i);
    SPARSENM_CUDA_CHECK(cudaStreamEndCapture(s, &g));
    SPARSENM_CUDA_CHECK(cudaGraphInstantiate(&e, g, 0));
    SPARSENM_CUDA_CHECK(cudaGraphDestroy(g));
    return e;
  };
  cudaGraphExec_t ga = capture(fa), gb = capture(fb);
  sc::Event e0, e1, e2;
  std::vector<double> ta, tb, r;
  for (int i = 0; i < reps + 3; ++i) {
    e0.record(s);
    SPARSENM_CUDA_CHECK(cudaGraphLaunch(ga, s));
    e1.record(s);
    SPARSENM_CUDA_CHECK(cudaGraphLaunch(gb, s));
    e2.record(s);
    e2.synchronize();
    if (i < 3) continue;  // warm-up
    ta.push_back(double(e1.elapsed_ms_since(e0)) / inner);
    tb.push_back(double(e2.elapsed_ms_since(e1)) / inner);
    r.push_back(ta.back() / tb.back());
  }
  SPARSENM_CUDA_CHECK(cudaGraphExecDestroy(ga));
  SPARSENM_CUDA_CHECK(cudaGraphExecDestroy(gb));
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {median(ta), median(tb), median(r)};
}

/// Times a and b alternately, `reps` pairs after `warm` pairs: medians and median pair ratio a/b.
PairTiming alternate_ms(const std::function<void()>& fa, const std::function<void()>& fb, int warm,
                        int reps, cudaStream_t s) {
  sc::Event e0, e1, e2;
  std::vector<double> ta, tb, r;
  for (int i = 0; i < warm + reps; ++i) {
    e0.record(s);
    fa();
    e1.record(s);
    fb();
    e2.record(s);
    e2.synchronize();
    if (i < warm) continue;
    ta.push_back(e1.elapsed_ms_since(e0));
    tb.push_back(e2.elapsed_ms_since(e1));
    r.push_back(ta.back() / tb.back());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  return {median(ta), median(tb), median(r)};
}
void result(const std::string& key, double v) { std::printf("RESULT %s %.6g\n", key.c_str(), v); }

template <class T>
__global__ void fill_random_kernel(T* p, std::size_t n, Philox rng, float lo, float hi) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    const float u = rng.uniform_float(i);
    p[i] = T(lo + (hi - lo) * u);
  }
}
template <>
__global__ void fill_random_kernel<__nv_bfloat16>(__nv_bfloat16* p, std::size_t n, Philox rng,
                                                  float lo, float hi) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    p[i] = __float2bfloat16(lo + (hi - lo) * rng.uniform_float(i));
}

template <class T>
void fill(sc::DeviceBuffer<T>& b, std::uint64_t seed, float lo = -1.f, float hi = 1.f) {
  fill_random_kernel<T><<<1024, 256>>>(b.data(), b.size(), Philox(seed), lo, hi);
  SPARSENM_CUDA_CHECK_LAUNCH("fill_random_kernel");
}

__global__ void fill_mask_kernel(std::uint8_t* m, std::size_t n, Philox rng) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    m[i] = std::uint8_t((rng.bits(i) & 3u) < 2u);  // ~50% active
}

double g_copy_gbs = 0;

void bench_copy(cudaStream_t s) {
  const std::size_t bytes = std::size_t(1) << 30;
  sc::DeviceBuffer<unsigned char> a(bytes), b(bytes);
  a.fill_bytes(1, s);
  const double ms = median_ms(
      [&](int) {
        SPARSENM_CUDA_CHECK(
            cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, s));
      },
      3, g_quick ? 5 : 20, s);
  g_copy_gbs = 2.0 * double(bytes) / (ms * 1e6);
  std::printf("%-44s %9.3f ms %9.1f GB/s\n", "copy D2D 1 GiB (read+write)", ms, g_copy_gbs);
  result("copy_gbs", g_copy_gbs);
}

void report_bw(const char* name, const std::string& key, double ms, double bytes) {
  const double gbs = bytes / (ms * 1e6);
  std::printf("%-44s %9.3f ms %9.1f GB/s  %5.1f%% of copy\n", name, ms, gbs,
              100.0 * gbs / g_copy_gbs);
  result(key + "_gbs", gbs);
  result(key + "_frac", gbs / g_copy_gbs);
}

void bench_selection(cudaStream_t s) {
  const Index rows = 8192, cols = 16384;
  const std::size_t n = std::size_t(rows) * std::size_t(cols);
  sc::DeviceBuffer<float> scores(n), out(n);
  sc::DeviceBuffer<std::uint8_t> mask(n);
  fill(scores, 1);
  const int reps = g_quick ? 5 : 20;
  struct Case {
    const char* name;
    const char* key;
    NM nm;
    sparsenm::Layout layout;
  };
  const Case cases[] = {
      {"select rowwise 2:4 (8192x16384 f32)", "select_row24", {2, 4}, sparsenm::Layout::RowWise},
      {"select rowwise 1:4", "select_row14", {1, 4}, sparsenm::Layout::RowWise},
      {"select transposable 2:4 (90 patterns)",
       "select_tr24",
       {2, 4},
       sparsenm::Layout::Transposable},
      {"select transposable 1:4 (24 patterns)",
       "select_tr14",
       {1, 4},
       sparsenm::Layout::Transposable}};
  for (const Case& c : cases) {
    const double ms = median_ms(
        [&](int) { sc::project(scores.data(), rows, cols, c.nm, c.layout, mask.data(), s); }, 2,
        reps, s);
    report_bw(c.name, c.key, ms, double(n) * 5.0);
  }
  const Philox rng(5);
  double ms = median_ms(
      [&](int) {
        sc::frechet_scores<float, float>(scores.data(), Index(n), 3.0, rng, out.data(), s);
      },
      2, reps, s);
  report_bw("perturb frechet (f32, log2/exp2 polynomials)", "perturb_frechet", ms, double(n) * 8.0);
  ms = median_ms(
      [&](int) { sc::uniform_perturb<float, float>(scores.data(), Index(n), rng, out.data(), s); },
      2, reps, s);
  report_bw("perturb uniform (f32)", "perturb_uniform", ms, double(n) * 8.0);
}

void bench_tans_passes(cudaStream_t s) {
  const std::size_t n = std::size_t(8192) * 8192;
  sc::DeviceBuffer<float> g(n), V(n), P(n), U(n), O(n), W(n);
  sc::DeviceBuffer<std::uint8_t> m(n);
  fill(g, 2);
  fill(V, 3, 0.f, 1e-3f);
  fill(P, 4);
  fill(O, 5);
  fill(W, 6);
  fill_mask_kernel<<<1024, 256>>>(m.data(), n, Philox(7));
  const int grid = int(
      sc::detail::grid_for((n + 3) / 4, sc::detail::kReduceBlock, 4u * unsigned(sc::sm_count())));
  sc::DeviceBuffer<double> partial(2 * std::size_t(grid)), scal(5);
  scal.fill_bytes(0, s);
  sc::DeviceBuffer<sc::detail::AdamCoef<float>> coef;  // step 1e-3, 1/sqrt(bc2) 1, decay 1
  coef.upload(std::vector<sc::detail::AdamCoef<float>>{{1e-3f, 1.f, 1.f}}, s);
  const unsigned eg = sc::detail::grid_for((n + 3) / 4, 256);
  const int reps = g_quick ? 5 : 20;
  double ms = median_ms(
      [&](int) {
        sc::detail::tans_moments_kernel<float><<<unsigned(grid), sc::detail::kReduceBlock, 0, s>>>(
            g.data(), m.data(), V.data(), P.data(), U.data(), n, 0.9f, 0.999f, 0.1f, 0.001f, 1e-5f,
            partial.data());
      },
      2, reps, s);
  report_bw("tans pass 1: V,P,U_base + sums (64M f32)", "tans_pass1", ms, double(n) * 25.0);
  ms = median_ms(
      [&](int) {
        sc::detail::tans_o_sums_kernel<float><<<unsigned(grid), sc::detail::kReduceBlock, 0, s>>>(
            O.data(), m.data(), n, partial.data());
      },
      2, reps, s);
  report_bw("tans pass 2: sum_M O^2", "tans_pass2", ms, double(n) * 5.0);
  ms = median_ms(
      [&](int) {
        sc::detail::tans_apply_kernel<float><<<eg, 256, 0, s>>>(
            O.data(), U.data(), m.data(), W.data(), n, 0.5f, scal.data(), 1.f, 1e-3f);
      },
      2, reps, s);
  report_bw("tans pass 3: blend + update", "tans_pass3", ms, double(n) * 17.0);
  ms = median_ms(
      [&](int) {
        sc::detail::adam_kernel<true, float>
            <<<eg, 256, 0, s>>>(g.data(), m.data(), P.data(), V.data(), W.data(), n, 0.9f, 0.999f,
                                0.1f, 0.001f, coef.data(), 1e-8f, 0.f);
      },
      2, reps, s);
  report_bw("adam (masked) fused pass", "adam_pass", ms, double(n) * 29.0);
  SPARSENM_CUDA_CHECK_LAUNCH("tans passes");
}

void bench_tans_step(cudaStream_t s, cublasHandle_t h) {
  const std::pair<Index, Index> shapes[] = {{4096, 4096}, {11008, 4096}};
  for (auto sh : shapes) {
    const Index R = sh.first, C = sh.second;
    const std::size_t n = std::size_t(R) * std::size_t(C);
    sc::DeviceBuffer<float> w(n), g(n);
    sc::DeviceBuffer<std::uint8_t> mask(n);
    fill(w, 8);
    fill(g, 9);
    fill_mask_kernel<<<1024, 256>>>(mask.data(), n, Philox(10));
    for (auto prec : {sc::NsPrecision::Native, sc::NsPrecision::Tf32, sc::NsPrecision::Bf16}) {
      sparsenm::TansConfig cfg;
      cfg.ramp_steps = 0;  // steady state: gamma = gamma_NS, Newton-Schulz every step
      sc::Tans<float> opt(R, C, cfg, prec);
      const double ms = median_ms([&](int) { opt.step(w.data(), g.data(), mask.data(), h, s); }, 2,
                                  g_quick ? 3 : 10, s);
      char name[96];
      std::snprintf(name, sizeof name, "tans step %lldx%lld NS %s", (long long)R, (long long)C,
                    sc::to_string(prec));
      std::printf("%-44s %9.3f ms\n", name, ms);
      result(std::string("tans_step_") + std::to_string(R) + "x" + std::to_string(C) + "_" +
                 sc::to_string(prec) + "_ms",
             ms);
    }
    // The same step on a 2:4 compressed state (cuda::TansCompressed: passes over the R x C/2
    // slots, Newton-Schulz on the dense scratch), the first R x C/2 entries of w and g as values
    // and slot gradients, slots at in-group columns {0, 2}.
    const std::size_t nk = n / 2;
    std::vector<std::uint8_t> hidx(nk);
    for (std::size_t q = 0; q < nk; ++q) hidx[q] = (q & 1) ? 2 : 0;
    sc::DeviceBuffer<std::uint8_t> idx;
    idx.upload(hidx, s);
    for (auto prec : {sc::NsPrecision::Tf32, sc::NsPrecision::Bf16}) {
      sparsenm::TansConfig cfg;
      cfg.ramp_steps = 0;
      sc::TansCompressed<float> opt(R, C, NM{2, 4}, cfg, prec);
      const double ms = median_ms([&](int) { opt.step(w.data(), g.data(), idx.data(), h, s); }, 2,
                                  g_quick ? 3 : 10, s);
      char name[96];
      std::snprintf(name, sizeof name, "tans 2:4 compressed step %lldx%lld NS %s", (long long)R,
                    (long long)C, sc::to_string(prec));
      std::printf("%-44s %9.3f ms\n", name, ms);
      result(std::string("tans24c_step_") + std::to_string(R) + "x" + std::to_string(C) + "_" +
                 sc::to_string(prec) + "_ms",
             ms);
    }
  }
}

void gemm_bf16(cublasHandle_t h, const __nv_bfloat16* w, const __nv_bfloat16* x, __nv_bfloat16* y,
               int out, int in, int tokens) {
  const float alpha = 1.f, beta = 0.f;
  // y (tokens x out, row-major) = col-major (out x tokens) = W (col-major in x out)^T * X
  // (col-major in x tokens)
  SPARSENM_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, tokens, in, &alpha, w,
                                     CUDA_R_16BF, in, x, CUDA_R_16BF, in, &beta, y, CUDA_R_16BF,
                                     out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

double max_rel_diff_bf16(const sc::DeviceBuffer<__nv_bfloat16>& a,
                         const sc::DeviceBuffer<__nv_bfloat16>& b) {
  std::vector<__nv_bfloat16> ha = a.to_host(), hb = b.to_host();
  double mx = 0, e = 0;
  for (auto v : hb) mx = std::max(mx, std::abs(double(__bfloat162float(v))));
  for (std::size_t i = 0; i < ha.size(); ++i)
    e = std::max(e, std::abs(double(__bfloat162float(ha[i])) - double(__bfloat162float(hb[i]))) /
                        std::max(mx, 1e-30));
  return e;
}

template <class T>
void upload_matrix(sc::DeviceBuffer<__nv_bfloat16>& d, const Matrix<T>& m) {
  std::vector<__nv_bfloat16> h(std::size_t(m.size()));
  for (Index k = 0; k < m.size(); ++k) h[std::size_t(k)] = __float2bfloat16(float(m.data()[k]));
  d.upload(h);
}

void bench_sparse24(cudaStream_t s, cublasHandle_t h) {
#if defined(SPARSENM_HAS_CUSPARSELT)
  const std::pair<int, int> shapes[] = {{4096, 4096}, {11008, 4096}};
  const int tokens = 8192;
  for (auto sh : shapes) {
    const int out = sh.first, in = sh.second;
    const Matrix<float> w = Matrix<float>::Random(out, in);
    const sparsenm::Mask mask = sparsenm::random_rowwise(out, in, NM{2, 4}, Philox(out));
    const auto c = sparsenm::compress(w, mask, NM{2, 4});
    sc::DeviceBuffer<__nv_bfloat16> wd, x(std::size_t(tokens) * in), y1(std::size_t(tokens) * out),
        y2(std::size_t(tokens) * out);
    upload_matrix(wd, sparsenm::decompress(c));
    fill(x, 11);
    SPARSENM_CUBLAS_CHECK(cublasSetStream(h, s));
    sc::Sparse24 sp(c, tokens, true, s);
    sp.matmul(x.data(), y1.data(), s);
    gemm_bf16(h, wd.data(), x.data(), y2.data(), out, in, tokens);
    const double err = max_rel_diff_bf16(y1, y2);
    // dense timing on a fully random weight (never on zeros)
    sc::DeviceBuffer<__nv_bfloat16> wr(std::size_t(out) * in);
    fill(wr, 12);
    const int reps = g_quick ? 5 : 20;
    const double ms_d = median_ms(
        [&](int) { gemm_bf16(h, wr.data(), x.data(), y2.data(), out, in, tokens); }, 3, reps, s);
    const double ms_s = median_ms([&](int) { sp.matmul(x.data(), y1.data(), s); }, 3, reps, s);
    // Every algorithm id (split-k 1 and default) timed on this data; the fastest plan kept.
    const auto tn = sp.tune(x.data(), y1.data(), 5, s);
    const PairTiming pt =
        alternate_ms([&] { gemm_bf16(h, wr.data(), x.data(), y2.data(), out, in, tokens); },
                     [&] { sp.matmul(x.data(), y1.data(), s); }, 3, reps, s);
    sp.matmul(x.data(), y1.data(), s);
    gemm_bf16(h, wd.data(), x.data(), y2.data(), out, in, tokens);
    const double err_t = max_rel_diff_bf16(y1, y2);
    std::printf(
        "  tuned: %d candidates, alg %d split-k %d: %.3f ms; cuBLAS %.3f ms: %.2fx "
        "(median of pair ratios; max rel diff %.1e)\n",
        tn.candidates, tn.alg_id, tn.split_k, pt.b_ms, pt.a_ms, pt.ratio, err_t);
    const std::string kt = "sparse24_" + std::to_string(out) + "x" + std::to_string(in);
    result(kt + "_tuned_ms", pt.b_ms);
    result(kt + "_tuned_speedup", pt.ratio);
    result(kt + "_tuned_alg", tn.alg_id);
    const double flop = 2.0 * tokens * double(out) * in;
    char name[96];
    std::snprintf(name, sizeof name, "2:4 %dx%d, %d tok: cuBLAS / cuSPARSELt", out, in, tokens);
    std::printf(
        "%-44s %9.3f / %7.3f ms  %6.0f / %6.0f TFLOP/s  speedup %.2fx  (max rel diff %.1e)\n", name,
        ms_d, ms_s, flop / ms_d / 1e9, flop / ms_s / 1e9, ms_d / ms_s, err);
    const std::string k = "sparse24_" + std::to_string(out) + "x" + std::to_string(in);
    result(k + "_dense_ms", ms_d);
    result(k + "_sparse_ms", ms_s);
    result(k + "_speedup", ms_d / ms_s);
    result(k + "_maxrel", err);
  }
  std::printf("cuSPARSELt version %d\n", [&] {
    const Matrix<float> w = Matrix<float>::Random(16, 16);
    return sc::Sparse24(sparsenm::compress(w, sparsenm::random_rowwise(16, 16, NM{2, 4}, Philox(1)),
                                           NM{2, 4}),
                        16, false, s)
        .library_version();
  }());
#else
  (void)s, (void)h;
  std::printf("sparse24: cuSPARSELt not found at configure time; skipped\n");
  result("sparse24_available", 0);
#endif
}

#if defined(SPARSENM_HAS_CUSPARSELT)
__global__ void cast_bf16_kernel(const float* __restrict__ w, std::size_t n,
                                 __nv_bfloat16* __restrict__ out) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    out[i] = __float2bfloat16(w[i]);
}

/// dX (tokens x in) = dY (tokens x out) W (out x in), all row-major bf16.
void gemm_dx(cublasHandle_t h, const __nv_bfloat16* w, const __nv_bfloat16* dy, __nv_bfloat16* dx,
             int out, int in, int tokens) {
  const float one = 1.f, zero = 0.f;
  SPARSENM_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, in, tokens, out, &one, w,
                                     CUDA_R_16BF, in, dy, CUDA_R_16BF, out, &zero, dx, CUDA_R_16BF,
                                     in, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
/// dW (out x in, fp32 row-major) = dYᵀ X.
void gemm_dw(cublasHandle_t h, const __nv_bfloat16* x, const __nv_bfloat16* dy, float* dw, int out,
             int in, int tokens) {
  const float one = 1.f, zero = 0.f;
  SPARSENM_CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_T, in, out, tokens, &one, x,
                                     CUDA_R_16BF, in, dy, CUDA_R_16BF, out, &zero, dw, CUDA_R_32F,
                                     in, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

#endif

void bench_layer24(cudaStream_t s, cublasHandle_t h) {
#if defined(SPARSENM_HAS_CUSPARSELT)
  const std::pair<int, int> shapes[] = {{4096, 4096}, {11008, 4096}};
  const int tokens = 8192;
  SPARSENM_CUBLAS_CHECK(cublasSetStream(h, s));
  for (auto sh : shapes) {
    const int out = sh.first, in = sh.second;
    const std::string k = "layer24_" + std::to_string(out) + "x" + std::to_string(in);
    auto t0 = std::chrono::steady_clock::now();
    const sparsenm::Mask mask = sparsenm::random_transposable(out, in, NM{2, 4}, Philox(out + 7));
    Matrix<float> w = Matrix<float>::Random(out, in) * float(1.0 / std::sqrt(double(in)));
    const auto c = sparsenm::compress(w, mask, NM{2, 4});
    auto t1 = std::chrono::steady_clock::now();
    sc::Linear24Config cfg;
    cfg.adam.lr = 1e-4;
    cfg.fused_runs = true;      // the run layout of the fused pass and the dW sampling inside it
    cfg.sample_in_step = true;  // (opt-in until measured on a GPU; off: the 2026-12-07 route)
    sc::SparseLinear24 layer(c, sparsenm::Vector<float>(), tokens, cfg, s);
    auto t2 = std::chrono::steady_clock::now();
    const double build_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
    auto route_name = [](sc::PackRoute r) {
      return r == sc::PackRoute::Fused     ? "fused"
             : r == sc::PackRoute::InPlace ? "in place"
                                           : "RECOMPRESS";
    };
    std::printf(
        "layer24 %dx%d: host mask %.0f ms, layer build %.0f ms; dX route %s, pack %s\n", out, in,
        std::chrono::duration<double, std::milli>(t1 - t0).count(), build_ms,
        layer.dx_route() == sc::DxRoute::SparseTransposed ? "sparse transposed" : "DENSE FALLBACK",
        route_name(layer.pack_route()));
    const auto ft = layer.fused_tiles();
    std::printf(
        "  fused tiles (%s%s): %u slot rows x %u slots, windows %u / %u words (fwd / "
        "transposed)\n",
        ft.runs ? "runs" : "windows", ft.fwd_direct ? ", forward direct" : "", ft.rows, ft.slots,
        ft.window_fwd, ft.window_bwd);
    // Where cuSPARSELt's packing puts the slots: the first value words of each packed weight as
    // (row, slot) of the out x in/2 slot matrix, and how long the runs of consecutive slots are.
    for (bool tr : {false, true}) {
      const std::vector<std::uint32_t> m = layer.packed_slot_map(tr).to_host();
      if (m.empty()) continue;
      std::size_t values = 0, runs = 0, first_meta = m.size();
      std::uint32_t prev = sc::detail::kNoSlot;
      for (std::size_t p = 0; p < m.size(); ++p) {
        if (m[p] == sc::detail::kNoSlot) {
          first_meta = std::min(first_meta, p);
          prev = sc::detail::kNoSlot;
          continue;
        }
        ++values;
        if (prev == sc::detail::kNoSlot || m[p] != prev + 1) ++runs;
        prev = m[p];
      }
      std::printf(
          "  %s packing: %zu words, %zu values, first non-value word %zu, mean run %.1f;"
          " words 0..: ",
          tr ? "transposed" : "forward", m.size(), values, first_meta,
          double(values) / double(std::max<std::size_t>(runs, 1)));
      for (std::size_t p = 0; p < 40 && p < m.size(); ++p) {
        if (m[p] == sc::detail::kNoSlot)
          std::printf("- ");
        else
          std::printf("%u:%u ", m[p] / unsigned(in / 2), m[p] % unsigned(in / 2));
      }
      std::printf("\n");
    }
    result(k + "_fused", layer.pack_route() == sc::PackRoute::Fused);
    result(k + "_fused_runs", ft.runs);
    result(k + "_fused_rows", ft.rows);
    result(k + "_fused_slots", ft.slots);
    result(k + "_fused_window_fwd", ft.window_fwd);
    result(k + "_fused_window_bwd", ft.window_bwd);
    result(k + "_build_ms", build_ms);
    result(k + "_inplace", layer.pack_route() == sc::PackRoute::InPlace);
    result(k + "_dx_sparse", layer.dx_route() == sc::DxRoute::SparseTransposed);
    sc::DeviceBuffer<__nv_bfloat16> x(std::size_t(tokens) * in), dy(std::size_t(tokens) * out),
        y(std::size_t(tokens) * out), dx(std::size_t(tokens) * in);
    fill(x, 21);
    fill(dy, 22, -1e-2f, 1e-2f);
    // Plan tuning (every algorithm id, split-k 1 and default) on real-shaped random data.
    {
      const auto tf = layer.forward_plan().tune(x.data(), y.data(), 5, s);
      std::printf("  tune forward: %d candidates, alg %d split-k %d: %.3f -> %.3f ms\n",
                  tf.candidates, tf.alg_id, tf.split_k, tf.first_ms, tf.ms);
      result(k + "_tune_fwd_first_ms", tf.first_ms);
      result(k + "_tune_fwd_ms", tf.ms);
      if (sc::Sparse24* b = layer.backward_plan()) {
        const auto tb = b->tune(dy.data(), dx.data(), 5, s);
        std::printf("  tune dX:      %d candidates, alg %d split-k %d: %.3f -> %.3f ms\n",
                    tb.candidates, tb.alg_id, tb.split_k, tb.first_ms, tb.ms);
        result(k + "_tune_dx_first_ms", tb.first_ms);
        result(k + "_tune_dx_ms", tb.ms);
      }
    }
    // Dense mixed-precision baseline: bf16 weight for the GEMMs, fp32 master + dense Adam.
    sc::DeviceBuffer<float> wf(std::size_t(out) * in), dwf(std::size_t(out) * in);
    sc::DeviceBuffer<__nv_bfloat16> wb(std::size_t(out) * in);
    fill(wf, 23, -0.015f, 0.015f);
    fill(wb, 24);
    sc::Adam<float> dadam(out, in, cfg.adam);
    const std::size_t nw = std::size_t(out) * in;
    auto d_fwd = [&] { gemm_bf16(h, wb.data(), x.data(), y.data(), out, in, tokens); };
    auto d_dx = [&] { gemm_dx(h, wb.data(), dy.data(), dx.data(), out, in, tokens); };
    auto d_dw = [&] { gemm_dw(h, x.data(), dy.data(), dwf.data(), out, in, tokens); };
    auto d_opt = [&] {
      dadam.step(wf.data(), dwf.data(), nullptr, s);
      cast_bf16_kernel<<<sc::detail::grid_for(nw, 256), 256, 0, s>>>(wf.data(), nw, wb.data());
    };
    auto dense_step = [&] { d_fwd(), d_dx(), d_dw(), d_opt(); };
    auto s_fwd = [&] { layer.forward(x.data(), y.data(), s); };
    auto s_bwd = [&] { layer.backward(dy.data(), dx.data(), s); };
    auto s_dw = [&] { layer.backward(dy.data(), nullptr, s); };
    auto s_opt = [&] { layer.step(s); };
    auto sparse_step = [&] { s_fwd(), s_bwd(), s_opt(); };
    const int reps = g_quick ? 5 : 15;
    // dW tilings: fp32 tile bytes, and the sampling on a second stream or not; the fastest is
    // kept for the rest (the sampled dW against the dense dW of the same data).
    s_fwd();  // backward() needs a forward first
    // (SPARSENM_BENCH_DW_SWEEP=1; measured on 2026-12-07, bench/RESULTS.md: 64 MiB on one
    // stream, the default, was the fastest or within noise at both shapes.)
    if (std::getenv("SPARSENM_BENCH_DW_SWEEP")) {
      std::size_t best_bytes = 0;
      bool best_overlap = false;
      double best_ms = 1e30;
      for (std::size_t mib : {64, 32, 24, 16, 8})
        for (bool ov : {false, true}) {
          layer.set_dw_tiling(mib << 20, ov);
          const PairTiming p = alternate_ms(d_dw, s_dw, 2, reps, s);
          std::printf("  dW tiles %2zu MiB (%lld rows)%s: dense %.3f / sparse %.3f ms (%.2fx)\n",
                      mib, (long long)layer.dw_tile_rows(), ov ? " two streams" : "           ",
                      p.a_ms, p.b_ms, p.ratio);
          result(k + "_dw_" + std::to_string(mib) + "mib" + (ov ? "_ov" : "") + "_ms", p.b_ms);
          result(k + "_dw_" + std::to_string(mib) + "mib" + (ov ? "_ov" : "") + "_speedup",
                 p.ratio);
          if (p.b_ms < best_ms) best_ms = p.b_ms, best_bytes = mib << 20, best_overlap = ov;
        }
      layer.set_dw_tiling(best_bytes, best_overlap);
      std::printf("  dW tiling kept: %zu MiB%s\n", best_bytes >> 20,
                  best_overlap ? ", two streams" : "");
      result(k + "_dw_best_mib", double(best_bytes >> 20));
      result(k + "_dw_best_overlap", best_overlap);
    }
    // Rectangle shapes of the fused pass's run layout: optimizer + re-pack per shape; the
    // fastest is kept.
    if (ft.runs) {
      const std::pair<unsigned, unsigned> shapes_rj[] = {{64, 64},  {128, 64}, {32, 128},
                                                         {64, 128}, {16, 256}, {128, 32}};
      double best = 1e30;
      std::pair<unsigned, unsigned> best_rj{ft.rows, ft.slots};
      for (auto rj : shapes_rj) {
        if (!layer.set_fused_runs(rj.first, rj.second, s)) {
          std::printf("  fused runs %u x %u: not available\n", rj.first, rj.second);
          continue;
        }
        const double ms = median_ms([&](int) { s_opt(); }, 2, reps, s);
        const double pk = median_ms([&](int) { layer.pack(s); }, 2, reps, s);
        std::printf("  fused runs %3u x %3u: optimizer+pack %.3f ms, pack alone %.3f ms\n",
                    rj.first, rj.second, ms, pk);
        result(k + "_runs_" + std::to_string(rj.first) + "x" + std::to_string(rj.second) + "_ms",
               ms);
        if (ms < best) best = ms, best_rj = rj;
      }
      layer.set_fused_runs(best_rj.first, best_rj.second, s);
      std::printf("  fused runs kept: %u x %u\n", best_rj.first, best_rj.second);
    }
    // Optimizer + re-pack on each route (fused tiles; Adam then gather), and the whole step.
    const sc::PackRoute main_route = layer.pack_route();
    for (sc::PackRoute r : {sc::PackRoute::InPlace, sc::PackRoute::Fused}) {
      if (layer.set_pack_route(r) != r) continue;
      const PairTiming po_r = alternate_ms(d_opt, s_opt, 2, reps, s);
      const double pk = median_ms([&](int) { layer.pack(s); }, 2, reps, s);
      const PairTiming st_r = alternate_ms(dense_step, sparse_step, 3, reps, s);
      std::printf(
          "  route %-8s: optimizer+pack dense %.3f / sparse %.3f ms (pack alone %.3f); "
          "step %.3f / %.3f ms (%.2fx)\n",
          route_name(r), po_r.a_ms, po_r.b_ms, pk, st_r.a_ms, st_r.b_ms, st_r.ratio);
      const std::string rk = k + (r == sc::PackRoute::Fused ? "_fused" : "_gather");
      result(rk + "_opt_ms", po_r.b_ms);
      result(rk + "_pack_ms", pk);
      result(rk + "_step_ms", st_r.b_ms);
      result(rk + "_step_speedup", st_r.ratio);
    }
    layer.set_pack_route(main_route);
    const PairTiming st = alternate_ms(dense_step, sparse_step, 3, reps, s);
    const PairTiming pf = alternate_ms(d_fwd, s_fwd, 2, reps, s);
    const PairTiming pb = alternate_ms([&] { d_dx(), d_dw(); }, s_bwd, 2, reps, s);
    const PairTiming pw = alternate_ms(d_dw, s_dw, 2, reps, s);
    const PairTiming po = alternate_ms(d_opt, s_opt, 2, reps, s);
    const double ms_pack = median_ms([&](int) { layer.pack(s); }, 2, reps, s);
    std::printf(
        "%-44s %9.3f / %7.3f ms  speedup %.2fx (median of pair ratios)\n",
        ("layer step 2:4T " + std::to_string(out) + "x" + std::to_string(in) + ": dense / sparse")
            .c_str(),
        st.a_ms, st.b_ms, st.ratio);
    std::printf(
        "  forward %.3f / %.3f (%.2fx)  dX+dW %.3f / %.3f (%.2fx)  dW %.3f / %.3f (%.2fx)"
        "  dX %.3f / %.3f  optimizer+pack %.3f / %.3f ms\n",
        pf.a_ms, pf.b_ms, pf.ratio, pb.a_ms, pb.b_ms, pb.ratio, pw.a_ms, pw.b_ms, pw.ratio,
        pb.a_ms - pw.a_ms, pb.b_ms - pw.b_ms, po.a_ms, po.b_ms);
    result(k + "_dense_step_ms", st.a_ms);
    result(k + "_sparse_step_ms", st.b_ms);
    result(k + "_step_speedup", st.ratio);
    result(k + "_fwd_speedup", pf.ratio);
    result(k + "_bwd_speedup", pb.ratio);
    result(k + "_dw_speedup", pw.ratio);
    result(k + "_sparse_fwd_ms", pf.b_ms);
    result(k + "_sparse_dx_ms", pb.b_ms - pw.b_ms);
    result(k + "_sparse_dw_ms", pw.b_ms);
    result(k + "_sparse_opt_ms", po.b_ms);
    result(k + "_dense_opt_ms", po.a_ms);
    result(k + "_sparse_pack_ms", ms_pack);
    std::printf("  of which re-pack (%s) %.3f ms\n", route_name(layer.pack_route()), ms_pack);
    // Host overhead: wall time to enqueue a step (the device runs behind).
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(s));
    const int n_host = 10;
    auto h0 = std::chrono::steady_clock::now();
    for (int i = 0; i < n_host; ++i) sparse_step();
    auto h1 = std::chrono::steady_clock::now();
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(s));
    const double host_us = std::chrono::duration<double, std::micro>(h1 - h0).count() / n_host;
    // The same step (same layer, Adam with bias correction: the device clock) captured once as
    // a CUDA graph (SparseLinear24::capture_step) and replayed.
    double graph_ms = -1, graph_host_us = -1;
    try {
      auto g = layer.capture_step(x.data(), y.data(), dy.data(), dx.data(), s);
      graph_ms = median_ms([&](int) { g.replay(s); }, 2, reps, s);
      SPARSENM_CUDA_CHECK(cudaStreamSynchronize(s));
      auto g0 = std::chrono::steady_clock::now();
      for (int i = 0; i < n_host; ++i) g.replay(s);
      auto g1 = std::chrono::steady_clock::now();
      SPARSENM_CUDA_CHECK(cudaStreamSynchronize(s));
      graph_host_us = std::chrono::duration<double, std::micro>(g1 - g0).count() / n_host;
    } catch (const std::exception& ex) {
      std::printf("  graph capture failed: %s\n", ex.what());
      (void)cudaGetLastError();
    }
    std::printf(
        "  host overhead per step %.1f us (eager), %.1f us (graph launch); graph replay "
        "%.3f ms\n",
        host_us, graph_host_us, graph_ms);
    result(k + "_host_us", host_us);
    result(k + "_graph_host_us", graph_host_us);
    result(k + "_graph_step_ms", graph_ms);
    // One topology refresh through the CPU engine (download, CHTs24 refresh, remap, upload,
    // rebuild of packing and slot maps), amortised over the default interval of 100 steps.
    const char* skip_refresh = std::getenv("SPARSENM_BENCH_NO_REFRESH");
    if (out == 4096 && !skip_refresh) {  // the CPU engine runs single-threaded in this build
      sparsenm::RefreshConfig rc;
      rc.layout = sparsenm::Layout::Transposable;
      rc.interval = 100;
      sparsenm::TopologyRefresher<float> topo(rc, 5);
      const long rb = layer.rebuilds();
      auto r0 = std::chrono::steady_clock::now();
      const auto res = layer.refresh(topo, 100, s);
      auto r1 = std::chrono::steady_clock::now();
      const double rms = std::chrono::duration<double, std::milli>(r1 - r0).count();
      std::printf(
          "  refresh (CPU engine round trip) %.0f ms, changed %ld, rebuilt %ld, pack %s; "
          "per step at interval 100: %.3f ms = %.1f%% of a sparse step\n",
          rms, long(res.stats.changed_count), layer.rebuilds() - rb,
          layer.pack_route() == sc::PackRoute::InPlace ? "in place" : "RECOMPRESS", rms / 100,
          100.0 * rms / 100 / st.b_ms);
      result(k + "_refresh_ms", rms);
      const double after = median_ms([&](int) { sparse_step(); }, 2, reps, s);
      std::printf("  sparse step after the refresh %.3f ms\n", after);
      result(k + "_sparse_step_after_refresh_ms", after);
    }
  }
#else
  (void)s, (void)h;
  std::printf("layer24: cuSPARSELt not found at configure time; skipped\n");
#endif
}

void bench_decode14(cudaStream_t s, cublasHandle_t h) {
  const std::pair<int, int> shapes[] = {{4096, 4096}, {11008, 4096}};
  const std::size_t rotate_bytes = std::size_t(320) << 20;  // > 6x the 50 MB L2
  SPARSENM_CUBLAS_CHECK(cublasSetStream(h, s));
  for (auto sh : shapes) {
    const int out = sh.first, in = sh.second;
    const Matrix<float> w = Matrix<float>::Random(out, in);
    const sparsenm::Mask mask = sparsenm::random_rowwise(out, in, NM{1, 4}, Philox(out + 1));
    const auto c = sparsenm::compress(w, mask, NM{1, 4});
    const std::size_t dense_bytes = std::size_t(out) * in * 2;
    const int nd = int(std::max<std::size_t>(1, (rotate_bytes + dense_bytes - 1) / dense_bytes));
    std::vector<sc::DeviceBuffer<__nv_bfloat16>> dense(static_cast<std::size_t>(nd));
    for (int i = 0; i < nd; ++i) {
      dense[std::size_t(i)].resize(std::size_t(out) * in);
      fill(dense[std::size_t(i)], 100 + std::uint64_t(i));
    }
    std::vector<sc::Sparse14> sparse;
    sparse.emplace_back(c, s);
    const std::size_t sp_bytes = sparse[0].weight_bytes();
    const int ns = int(std::max<std::size_t>(1, (rotate_bytes + sp_bytes - 1) / sp_bytes));
    for (int i = 1; i < ns; ++i) sparse.emplace_back(c, s);
    // correctness: sparse kernel vs cuBLAS on the decompressed weight
    sc::DeviceBuffer<__nv_bfloat16> wdec;
    upload_matrix(wdec, sparsenm::decompress(c));
    for (int tokens : {1, 4, 16}) {
      sc::DeviceBuffer<__nv_bfloat16> x(std::size_t(tokens) * in), y1(std::size_t(tokens) * out),
          y2(std::size_t(tokens) * out);
      fill(x, 13);
      sparse[0].matmul(x.data(), tokens, y1.data(), s);
      gemm_bf16(h, wdec.data(), x.data(), y2.data(), out, in, tokens);
      const double err = max_rel_diff_bf16(y1, y2);
      const int inner = 20, reps = g_quick ? 5 : 15;
      const double ms_d = median_ms_batched(
          [&](int i) {
            gemm_bf16(h, dense[std::size_t(i % nd)].data(), x.data(), y2.data(), out, in, tokens);
          },
          inner, reps, s);
      const double ms_s = median_ms_batched(
          [&](int i) { sparse[std::size_t(i % ns)].matmul(x.data(), tokens, y1.data(), s); }, inner,
          reps, s);
      // Same work replayed from CUDA graphs, dense and sparse alternating (the figure of record:
      // launch gaps of the host are not a property of either kernel).
      const PairTiming gr = graph_pair_ms(
          [&](int i) {
            gemm_bf16(h, dense[std::size_t(i % nd)].data(), x.data(), y2.data(), out, in, tokens);
          },
          [&](int i) { sparse[std::size_t(i % ns)].matmul(x.data(), tokens, y1.data(), s); },
          2 * inner, g_quick ? 7 : 31, s);
      std::printf("%-44s %8.2f / %6.2f us  graph replay, speedup %.2fx (median of pair ratios)\n",
                  "", gr.a_ms * 1e3, gr.b_ms * 1e3, gr.ratio);
      const double bw_d = double(dense_bytes) / (ms_d * 1e6),
                   bw_s = double(sp_bytes) / (ms_s * 1e6);
      char name[96];
      std::snprintf(name, sizeof name, "1:4 decode %dx%d, %2d tok: cuBLAS / 1:4", out, in, tokens);
      std::printf(
          "%-44s %8.2f / %6.2f us  %5.0f / %5.0f GB/s  speedup %.2fx  (max rel diff %.1e)\n", name,
          ms_d * 1e3, ms_s * 1e3, bw_d, bw_s, ms_d / ms_s, err);
      const std::string k = "decode14_" + std::to_string(out) + "x" + std::to_string(in) + "_t" +
                            std::to_string(tokens);
      result(k + "_dense_us", ms_d * 1e3);
      result(k + "_sparse_us", ms_s * 1e3);
      result(k + "_speedup", ms_d / ms_s);
      result(k + "_maxrel", err);
      result(k + "_graph_dense_us", gr.a_ms * 1e3);
      result(k + "_graph_sparse_us", gr.b_ms * 1e3);
      result(k + "_graph_speedup", gr.ratio);
    }
    // The routed decode (cuda::Decode14): per token count the fastest of the native kernel,
    // cuSPARSELt (a 1:4 weight is 2:4-legal) and cuBLAS, chosen by its calibration; reported
    // against cuBLAS at every count 1..16 (target: never slower).
    {
      sc::Decode14 dec(c, /*dense_fallback=*/true, s);
      sc::DeviceBuffer<__nv_bfloat16> xs(std::size_t(16) * in), ys(std::size_t(16) * out);
      fill(xs, 14);
      const auto us = dec.calibrate(xs.data(), ys.data(), 20, g_quick ? 3 : 9, s);
      const std::string kr = "decode14_route_" + std::to_string(out) + "x" + std::to_string(in);
      std::printf("decode14 routed %dx%d (us: native / cuSPARSELt / cuBLAS -> chosen, vs cuBLAS)\n",
                  out, in);
      double worst = 1e30;
      for (int t = 1; t <= 16; ++t) {
        const double chosen = us[std::size_t(int(dec.route(t)))][std::size_t(t)];
        const double dense = us[2][std::size_t(t)];
        worst = std::min(worst, dense / chosen);
        std::printf("  %2d tok: %7.2f / %7.2f / %7.2f -> %-10s %.2fx\n", t, us[0][std::size_t(t)],
                    us[1][std::size_t(t)], dense, sc::to_string(dec.route(t)), dense / chosen);
        result(kr + "_t" + std::to_string(t) + "_speedup", dense / chosen);
      }
      result(kr + "_min_speedup", worst);
    }
  }
}

/// refresh24: the CHTs24 refresh of a transposable 2:4 layer on the device
/// (cuda::DeviceRefresher24: core = removal, CH scores, projection, move, host maps; install =
/// SparseLinear24::apply_topology: Adam remap and rebuild of packing and slot maps) against the
/// CPU-engine round trip of SparseLinear24::refresh (download, TopologyRefresher, upload, remap,
/// rebuild) on the same weight and seed, and both amortised over the default interval of 100
/// steps of the layer's training step (8192 tokens). The CPU round trip runs at 1024x1024 only
/// (single-threaded CPU engine, about 0.5 s); at 4096x4096 (about 30 s) only with
/// SPARSENM_BENCH_CPU_REFRESH_4096=1. Also counts the 4x4 tiles where the two masks differ.
void bench_refresh24(cudaStream_t s) {
#if defined(SPARSENM_HAS_CUSPARSELT)
  const int tokens = 8192;
  for (int n : {1024, 4096}) {
    const std::string k = "refresh24_" + std::to_string(n);
    const sparsenm::Mask mask = sparsenm::random_transposable(n, n, NM{2, 4}, Philox(n + 7));
    Matrix<float> w = Matrix<float>::Random(n, n) * float(1.0 / std::sqrt(double(n)));
    const auto c = sparsenm::compress(w, mask, NM{2, 4});
    sc::Linear24Config cfg;
    cfg.adam.lr = 1e-4;
    sc::SparseLinear24 layer(c, sparsenm::Vector<float>(), tokens, cfg, s);
    sc::DeviceBuffer<__nv_bfloat16> x(std::size_t(tokens) * n), dy(std::size_t(tokens) * n),
        y(std::size_t(tokens) * n), dx(std::size_t(tokens) * n);
    fill(x, 31);
    fill(dy, 32, -1e-2f, 1e-2f);
    const int reps = g_quick ? 5 : 11;
    auto step = [&](int) {
      layer.forward(x.data(), y.data(), s);
      layer.backward(dy.data(), dx.data(), s);
      layer.step(s);
    };
    const double step_ms = median_ms(step, 3, reps, s);
    sparsenm::RefreshConfig rc;
    rc.layout = sparsenm::Layout::Transposable;
    rc.interval = 100;
    sc::DeviceRefresher24 dev(rc, 5, n, n);
    auto wall = [](auto t0, auto t1) {
      return std::chrono::duration<double, std::milli>(t1 - t0).count();
    };
    // The first refresh (step 100) is compared with the CPU engine on this state below.
    const auto state = layer.download(s);
    std::vector<double> core, install, total;
    sparsenm::Mask first;
    long changed = 0;
    const int nref = g_quick ? 3 : 5;
    for (int r = 0; r < nref; ++r) {
      SPARSENM_CUDA_CHECK(cudaStreamSynchronize(s));
      const auto t0 = std::chrono::steady_clock::now();
      auto res = dev.refresh(layer.values_data(), layer.indices_data(), 100L * (r + 1), s);
      const auto t1 = std::chrono::steady_clock::now();
      layer.apply_topology(dev.new_values(), res.indices, res.refresh.slots, s);
      const auto t2 = std::chrono::steady_clock::now();
      core.push_back(wall(t0, t1));
      install.push_back(wall(t1, t2));
      total.push_back(wall(t0, t2));
      if (r == 0) first = res.indices, changed = long(res.refresh.stats.changed_count);
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    const double dev_ms = median(total);
    const double after_ms = median_ms(step, 2, reps, s);
    std::printf(
        "refresh24 %dx%d: device refresh %.2f ms (core %.2f + install %.2f; median of %d, first "
        "%.2f ms), changed %ld entries; layer step %.3f ms (after the refreshes %.3f); at "
        "interval 100: %.4f ms per step = %.2f%% of a step\n",
        n, n, dev_ms, median(core), median(install), nref, total[0], changed, step_ms, after_ms,
        dev_ms / 100, 100.0 * dev_ms / 100 / step_ms);
    result(k + "_device_ms", dev_ms);
    result(k + "_device_core_ms", median(core));
    result(k + "_device_install_ms", median(install));
    result(k + "_step_ms", step_ms);
    result(k + "_device_share_pct", 100.0 * dev_ms / 100 / step_ms);
    const bool cpu = n == 1024 || std::getenv("SPARSENM_BENCH_CPU_REFRESH_4096");
    if (!cpu) {
      std::printf("  CPU round trip at %dx%d skipped (SPARSENM_BENCH_CPU_REFRESH_4096=1 runs it)\n",
                  n, n);
      continue;
    }
    sc::Linear24Config cfg2 = cfg;
    cfg2.search = cfg2.tune = false;
    sc::SparseLinear24 layer2(state, sparsenm::Vector<float>(), 16, cfg2, s);
    sparsenm::TopologyRefresher<float> topo(rc, 5);
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(s));
    const auto t0 = std::chrono::steady_clock::now();
    layer2.refresh(topo, 100, s);
    const double cpu_ms = wall(t0, std::chrono::steady_clock::now());
    const sparsenm::Mask cpu_idx = layer2.download(s).indices;
    long differ = 0;
    for (Index tr = 0; tr < n / 4; ++tr)
      for (Index tc = 0; tc < n / 4; ++tc) {
        bool d = false;
        for (Index i = tr * 4; i < tr * 4 + 4; ++i)
          d |= first(i, 2 * tc) != cpu_idx(i, 2 * tc) ||
               first(i, 2 * tc + 1) != cpu_idx(i, 2 * tc + 1);
        differ += d;
      }
    std::printf(
        "  CPU-engine round trip %.0f ms (%.3f ms per step at interval 100 = %.1f%% of a step): "
        "device %.0fx faster; tiles whose mask differs from the CPU's: %ld of %ld\n",
        cpu_ms, cpu_ms / 100, 100.0 * cpu_ms / 100 / step_ms, cpu_ms / dev_ms, differ,
        long(n / 4) * long(n / 4));
    result(k + "_cpu_roundtrip_ms", cpu_ms);
    result(k + "_speedup", cpu_ms / dev_ms);
    result(k + "_tiles_differ", double(differ));
  }
#else
  (void)s;
  std::printf("refresh24: cuSPARSELt not found at configure time; skipped\n");
#endif
}

void bench_ch(cudaStream_t s, cublasHandle_t h) {
  const Index R = 4096, C = 4096;
  sc::DeviceBuffer<std::uint8_t> m(std::size_t(R * C));
  fill_mask_kernel<<<1024, 256>>>(m.data(), m.size(), Philox(3));
  sc::DeviceBuffer<float> out(std::size_t(R * C));
  sc::ChScores<float> ch(R, C);
  const double ms =
      median_ms([&](int) { ch.run(m.data(), out.data(), h, s); }, 1, g_quick ? 3 : 5, s);
  std::printf("%-44s %9.3f ms\n", "CH2-L3n scores 4096x4096 (fp32 GEMMs)", ms);
  result("ch2_l3n_4096_ms", ms);
}

}  // namespace

int main(int argc, char** argv) {
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0)
      g_quick = true;
    else
      only = argv[i];
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (sc::device_count() == 0) {
    std::printf("bench_cuda: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp p{};
  SPARSENM_CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
  std::printf("device: %s, %d SMs, L2 %d MB\n", p.name, p.multiProcessorCount, p.l2CacheSize >> 20);
  sc::Stream stream;
  // A fixed cuBLAS workspace (declared before the handle, so it outlives it): cuBLAS then never
  // allocates inside a CUDA-graph capture (decode timings replay captured graphs).
  sc::DeviceBuffer<unsigned char> cublas_workspace(std::size_t(32) << 20);
  sc::CublasHandle handle;
  SPARSENM_CUBLAS_CHECK(
      cublasSetWorkspace(handle, cublas_workspace.data(), cublas_workspace.size()));
  auto want = [&](const char* k) {  // `only`: one name or a comma-separated list
    return only.empty() || ("," + only + ",").find("," + std::string(k) + ",") != std::string::npos;
  };
  auto guarded = [&](const char* name, const std::function<void()>& f) {
    if (!want(name)) return;
    try {
      f();
    } catch (const std::exception& e) {
      std::printf("%s: FAILED: %s\n", name, e.what());
      result(std::string(name) + "_failed", 1);
      (void)cudaGetLastError();
    }
  };
  bench_copy(stream);
  guarded("select", [&] { bench_selection(stream); });
  guarded("tans", [&] { bench_tans_passes(stream); });
  guarded("decode", [&] { bench_decode14(stream, handle); });
  guarded("sparse24", [&] { bench_sparse24(stream, handle); });
  guarded("layer24", [&] { bench_layer24(stream, handle); });
  guarded("step", [&] { bench_tans_step(stream, handle); });
  guarded("ch", [&] { bench_ch(stream, handle); });
  guarded("refresh24", [&] { bench_refresh24(stream); });
  SPARSENM_CUDA_CHECK(cudaDeviceSynchronize());
  return 0;
}
