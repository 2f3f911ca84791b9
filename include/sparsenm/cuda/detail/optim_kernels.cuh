// SPDX-License-Identifier: Apache-2.0
// Fused elementwise passes of the device optimizers (host API: cuda/tans.cuh, cuda/adam.cuh).
// Each pass reads and writes every array once; float runs 4 entries per thread iteration with
// 16-byte loads (uchar4 for the mask). The arithmetic is written exactly as in the CPU passes
// (optim/tans.hpp) so results agree to rounding (FMA contraction may differ).
#ifndef SPARSENM_CUDA_DETAIL_OPTIM_KERNELS_CUH
#define SPARSENM_CUDA_DETAIL_OPTIM_KERNELS_CUH

#include <cstdint>

#include <cuda_runtime.h>

#include "reduce.cuh"

namespace sparsenm {
namespace cuda {
namespace detail {

/// Four consecutive entries of T (16-byte vector for float, two 16-byte halves for double).
template <class T>
struct Vec4 {
  T v[4];
};

template <class T>
__device__ __forceinline__ Vec4<T> load4(const T* p) {
  Vec4<T> r;
  if constexpr (sizeof(T) == 4) {
    const float4 f = *reinterpret_cast<const float4*>(p);
    r.v[0] = f.x, r.v[1] = f.y, r.v[2] = f.z, r.v[3] = f.w;
  } else {
    const double2 a = reinterpret_cast<const double2*>(p)[0];
    const double2 b = reinterpret_cast<const double2*>(p)[1];
    r.v[0] = a.x, r.v[1] = a.y, r.v[2] = b.x, r.v[3] = b.y;
  }
  return r;
}

template <class T>
__device__ __forceinline__ void store4(T* p, const Vec4<T>& r) {
  if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<float4*>(p) = make_float4(r.v[0], r.v[1], r.v[2], r.v[3]);
  } else {
    reinterpret_cast<double2*>(p)[0] = make_double2(r.v[0], r.v[1]);
    reinterpret_cast<double2*>(p)[1] = make_double2(r.v[2], r.v[3]);
  }
}

__device__ __forceinline__ void load_mask4(const std::uint8_t* p, std::uint8_t (&m)[4]) {
  const std::uint32_t w = *reinterpret_cast<const std::uint32_t*>(p);
  m[0] = std::uint8_t(w & 0xffu), m[1] = std::uint8_t((w >> 8) & 0xffu);
  m[2] = std::uint8_t((w >> 16) & 0xffu), m[3] = std::uint8_t(w >> 24);
}

/// Runs f(i, ...) over [0, n): 4-wide vectors for the first n/4*4 entries (all pointers are
/// 16-byte aligned: buffers come from cudaMalloc and n % 4 == 0 is checked by the host), then a
/// scalar tail. `vec(i4)` handles entries 4*i4..4*i4+3, `one(i)` a single entry.
template <class VecF, class OneF>
__device__ __forceinline__ void for_each4(std::size_t n, VecF&& vec, OneF&& one) {
  const std::size_t n4 = n / 4;
  const std::size_t stride = std::size_t(gridDim.x) * blockDim.x;
  const std::size_t t = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x;
  for (std::size_t i = t; i < n4; i += stride) vec(i * 4);
  for (std::size_t i = n4 * 4 + t; i < n; i += stride) one(i);
}

// ----------------------------------------------------------------------------------------------
// TANS (chtsnm Sec. 3.2). Pass 1: V, P, U_base and the partial sums (sum U_base^2, |M|).
// (1 - beta) is rounded once from double, as the CPU does (S(1.0 - beta)), not computed in S.
template <class S>
__device__ __forceinline__ S tans_moment_one(S g, std::uint8_t m, S& V, S& P, S b1, S b2, S ob1,
                                             S ob2, S eps) {
  const S gm = m ? g : S(0);  // select, not multiply: 0 * Inf would be NaN
  const S v = b2 * V + ob2 * (gm * gm);
  const S gh = gm / (sqrt(v) + eps);
  const S p = b1 * P + ob1 * gh;
  V = v;
  P = p;
  return m ? ob1 * gh + b1 * p : S(0);
}

template <class S>
__global__ void __launch_bounds__(kReduceBlock)
    tans_moments_kernel(const S* __restrict__ g, const std::uint8_t* __restrict__ mask,
                        S* __restrict__ V, S* __restrict__ P, S* __restrict__ U, std::size_t n,
                        S b1, S b2, S ob1, S ob2, S eps, double* __restrict__ partial) {
  double acc[2] = {0.0, 0.0};  // sum U^2, active count
  for_each4(
      n,
      [&](std::size_t i) {
        const Vec4<S> gv = load4(g + i);
        Vec4<S> vv = load4(V + i), pv = load4(P + i), uv;
        std::uint8_t m[4];
        load_mask4(mask + i, m);
        S su = S(0);
#pragma unroll
        for (int l = 0; l < 4; ++l) {
          uv.v[l] = tans_moment_one(gv.v[l], m[l], vv.v[l], pv.v[l], b1, b2, ob1, ob2, eps);
          su += uv.v[l] * uv.v[l];
          acc[1] += double(m[l] != 0);
        }
        acc[0] += double(su);
        store4(V + i, vv);
        store4(P + i, pv);
        store4(U + i, uv);
      },
      [&](std::size_t i) {
        S v = V[i], p = P[i];
        const S u = tans_moment_one(g[i], mask[i], v, p, b1, b2, ob1, ob2, eps);
        V[i] = v;
        P[i] = p;
        U[i] = u;
        acc[0] += double(u * u);
        acc[1] += double(mask[i] != 0);
      });
  block_sum<2>(acc);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = acc[0];
    partial[2 * blockIdx.x + 1] = acc[1];
  }
}

/// Pass 2: partial sums of O^2 over active entries and over all entries.
template <class S>
__global__ void __launch_bounds__(kReduceBlock)
    tans_o_sums_kernel(const S* __restrict__ O, const std::uint8_t* __restrict__ mask,
                       std::size_t n, double* __restrict__ partial) {
  double acc[2] = {0.0, 0.0};  // active, all
  for_each4(
      n,
      [&](std::size_t i) {
        const Vec4<S> o = load4(O + i);
        std::uint8_t m[4];
        load_mask4(mask + i, m);
        S a = S(0), t = S(0);
#pragma unroll
        for (int l = 0; l < 4; ++l) {
          const S o2 = o.v[l] * o.v[l];
          t += o2;
          a += m[l] ? o2 : S(0);
        }
        acc[0] += double(a);
        acc[1] += double(t);
      },
      [&](std::size_t i) {
        const double o2 = double(O[i]) * double(O[i]);
        acc[1] += o2;
        acc[0] += mask[i] ? o2 : 0.0;
      });
  block_sum<2>(acc);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = acc[0];
    partial[2 * blockIdx.x + 1] = acc[1];
  }
}

/// The RMS-matching scale s (one thread): sums = {sum U^2, |M|}, osums = {sum_M O^2, sum O^2}.
/// mode: 0 None, 1 PreMaskGlobal, 2 PostMaskActive (RmsMatch order). Writes s to out[0].
template <int Unused = 0>
__global__ void tans_scale_kernel(const double* __restrict__ sums, const double* __restrict__ osums,
                                  double n, int mode, double eps, double* __restrict__ out) {
  double s = 1.0;
  if (mode == 2) {
    const double cnt = sums[1];
    const double rms_u = cnt > 0 ? sqrt(sums[0] / cnt) : 0.0;
    const double rms_o = cnt > 0 ? sqrt(osums[0] / cnt) : 0.0;
    s = rms_u / (rms_o + eps);
  } else if (mode == 1) {
    s = sqrt(sums[0] / n) / (sqrt(osums[1] / n) + eps);
  }
  out[0] = s;
}

/// Pass 3: U = U_base + gamma (s O - U_base); W <- decay W - eta U on active entries (inactive
/// weights keep their bits). `s` is read from device memory (no host round trip).
template <class S>
__global__ void tans_apply_kernel(const S* __restrict__ O, const S* __restrict__ U,
                                  const std::uint8_t* __restrict__ mask, S* __restrict__ W,
                                  std::size_t n, S gamma, const double* __restrict__ s_dev, S decay,
                                  S eta) {
  const S s = S(s_dev[0]);
  for_each4(
      n,
      [&](std::size_t i) {
        const Vec4<S> o = load4(O + i), u = load4(U + i);
        Vec4<S> w = load4(W + i);
        std::uint8_t m[4];
        load_mask4(mask + i, m);
#pragma unroll
        for (int l = 0; l < 4; ++l) {
          const S upd = u.v[l] + gamma * (s * o.v[l] - u.v[l]);
          const S wn = decay * w.v[l] - eta * upd;
          w.v[l] = m[l] ? wn : w.v[l];
        }
        store4(W + i, w);
      },
      [&](std::size_t i) {
        const S upd = U[i] + gamma * (s * O[i] - U[i]);
        const S wn = decay * W[i] - eta * upd;
        W[i] = mask[i] ? wn : W[i];
      });
}

/// Pass 3 with gamma = 0: W <- decay W - eta U_base on active entries.
template <class S>
__global__ void tans_apply_base_kernel(const S* __restrict__ U,
                                       const std::uint8_t* __restrict__ mask, S* __restrict__ W,
                                       std::size_t n, S decay, S eta) {
  for_each4(
      n,
      [&](std::size_t i) {
        const Vec4<S> u = load4(U + i);
        Vec4<S> w = load4(W + i);
        std::uint8_t m[4];
        load_mask4(mask + i, m);
#pragma unroll
        for (int l = 0; l < 4; ++l) {
          const S wn = decay * w.v[l] - eta * u.v[l];
          w.v[l] = m[l] ? wn : w.v[l];
        }
        store4(W + i, w);
      },
      [&](std::size_t i) {
        const S wn = decay * W[i] - eta * U[i];
        W[i] = mask[i] ? wn : W[i];
      });
}

/// on_refresh with StateReset::ChangedEntries: V, P = 0 where changed.
template <class S>
__global__ void reset_changed_kernel(const std::uint8_t* __restrict__ changed, S* __restrict__ V,
                                     S* __restrict__ P, std::size_t n) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    if (changed[i]) {
      V[i] = S(0);
      P[i] = S(0);
    }
}

// ----------------------------------------------------------------------------------------------
// Adam / AdamW (optim/adam.hpp), same operation order; MASKED freezes entries where mask == 0.
template <bool MASKED, class S>
__device__ __forceinline__ void adam_one(S g, bool on, S& m, S& v, S& w, S b1, S b2, S ob1, S ob2,
                                         S step, S inv_sqrt_bc2, S eps, S l2, S decay) {
  const S wo = w;
  const S gg = g + l2 * wo;
  const S mn = b1 * m + ob1 * gg;
  const S vn = b2 * v + ob2 * (gg * gg);
  const S wn = decay * wo - step * mn / (sqrt(vn) * inv_sqrt_bc2 + eps);
  if (!MASKED || on) {
    m = mn;
    v = vn;
    w = wn;
  }
}

/// The step's scalars, computed on the device from the device step counter so that a captured
/// CUDA graph replays every step with its own bias correction (and the current lr).
template <class S>
struct AdamCoef {
  S step;          ///< lr / (1 - beta1^t)
  S inv_sqrt_bc2;  ///< 1 / sqrt(1 - beta2^t)
  S decay;         ///< AdamW: 1 - lr * weight_decay; otherwise 1
};

/// The device clock of cuda::Adam: steps taken and the current step size.
struct AdamClock {
  long long t;
  double lr;
};

/// One thread: ++t, then the coefficients of step t in double, rounded to S exactly as the host
/// route does (optim/adam.hpp: S(lr / bc1), S(1 / sqrt(bc2)), S(1 - lr wd)).
template <class S>
__global__ void adam_tick_kernel(AdamClock* __restrict__ clock, AdamCoef<S>* __restrict__ coef,
                                 double beta1, double beta2, double weight_decay,
                                 bool bias_correction, bool decoupled) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const long long t = clock->t + 1;
  clock->t = t;
  const double lr = clock->lr;
  const double bc1 = bias_correction ? 1.0 - pow(beta1, double(t)) : 1.0;
  const double bc2 = bias_correction ? 1.0 - pow(beta2, double(t)) : 1.0;
  AdamCoef<S> c;
  c.step = S(lr / bc1);
  c.inv_sqrt_bc2 = S(1.0 / sqrt(bc2));
  c.decay = decoupled ? S(1.0 - lr * weight_decay) : S(1);
  *coef = c;
}

template <bool MASKED, class S>
__global__ void adam_kernel(const S* __restrict__ g, const std::uint8_t* __restrict__ mask,
                            S* __restrict__ M, S* __restrict__ V, S* __restrict__ W, std::size_t n,
                            S b1, S b2, S ob1, S ob2, const AdamCoef<S>* __restrict__ coef, S eps,
                            S l2) {
  const AdamCoef<S> c = *coef;
  const S step = c.step, inv_sqrt_bc2 = c.inv_sqrt_bc2, decay = c.decay;
  for_each4(
      n,
      [&](std::size_t i) {
        const Vec4<S> gv = load4(g + i);
        Vec4<S> mv = load4(M + i), vv = load4(V + i), wv = load4(W + i);
        std::uint8_t mk[4] = {1, 1, 1, 1};
        if (MASKED) load_mask4(mask + i, mk);
#pragma unroll
        for (int l = 0; l < 4; ++l)
          adam_one<MASKED>(gv.v[l], mk[l] != 0, mv.v[l], vv.v[l], wv.v[l], b1, b2, ob1, ob2, step,
                           inv_sqrt_bc2, eps, l2, decay);
        store4(M + i, mv);
        store4(V + i, vv);
        store4(W + i, wv);
      },
      [&](std::size_t i) {
        adam_one<MASKED>(g[i], MASKED ? mask[i] != 0 : true, M[i], V[i], W[i], b1, b2, ob1, ob2,
                         step, inv_sqrt_bc2, eps, l2, decay);
      });
}

/// N:M compressed slots <-> dense (rows x cols, row-major): slot (r, j) of k = cols / m * n per row
/// is column (j / n) * m + idx[r k + j] (mask/compress.hpp). One thread per slot.
__device__ __forceinline__ std::size_t slot_offset(std::size_t s, const std::uint8_t* idx,
                                                   std::size_t k, std::size_t cols, int n, int m) {
  const std::size_t r = s / k, j = s % k;
  return r * cols + (j / std::size_t(n)) * std::size_t(m) + idx[s];
}

template <class S>
__global__ void scatter_slots_kernel(const S* __restrict__ values,
                                     const std::uint8_t* __restrict__ idx, std::size_t rows,
                                     std::size_t cols, int n, int m, S* __restrict__ dense) {
  const std::size_t k = cols / std::size_t(m) * std::size_t(n), total = rows * k;
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < total;
       s += std::size_t(gridDim.x) * blockDim.x) {
    dense[slot_offset(s, idx, k, cols, n, m)] = values[s];
  }
}

template <class S>
__global__ void gather_slots_kernel(const S* __restrict__ dense,
                                    const std::uint8_t* __restrict__ idx, std::size_t rows,
                                    std::size_t cols, int n, int m, S* __restrict__ values) {
  const std::size_t k = cols / std::size_t(m) * std::size_t(n), total = rows * k;
  for (std::size_t s = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; s < total;
       s += std::size_t(gridDim.x) * blockDim.x) {
    values[s] = dense[slot_offset(s, idx, k, cols, n, m)];
  }
}

/// Per-slot state follows a SlotMap (mask/compress.hpp remap_slots, same rule): in group g of n
/// slots, slot s takes old slot src[g n + s] of the same group, or 0 when src is -1. Two arrays
/// (the two moments) in one pass; one thread per group.
template <class S>
__global__ void remap_slots_kernel(S* __restrict__ a, S* __restrict__ b,
                                   const std::int8_t* __restrict__ src, std::size_t groups, int n) {
  for (std::size_t g = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; g < groups;
       g += std::size_t(gridDim.x) * blockDim.x) {
    S oa[32], ob[32];
    const std::size_t base = g * std::size_t(n);
    for (int s = 0; s < n; ++s) oa[s] = a[base + s], ob[s] = b[base + s];
    for (int s = 0; s < n; ++s) {
      const int from = src[base + s];
      a[base + s] = from >= 0 ? oa[from] : S(0);
      b[base + s] = from >= 0 ? ob[from] : S(0);
    }
  }
}

// ----------------------------------------------------------------------------------------------
// AdamS (CAST Algorithm 1; optim/adams.hpp detail::adams_block with scale a = 1, same order).
template <class S>
__device__ __forceinline__ void adams_one(S g, bool on, S& mu, S& v, S& w, S b1, S b2, S ob1, S ob2,
                                          S alpha, S lam, S step, S inv_sqrt_bc2, S eps) {
  const S oa = S(1) - alpha, al = alpha * lam;
  const S th = w;
  const S m = b1 * mu + ob1 * g;
  const S sg = S(th > S(0)) - S(th < S(0));
  const S mt = on ? m : oa * m + al * sg;
  const S vn = b2 * v + ob2 * (mt * mt);
  mu = m;
  v = vn;
  w = th - step * mt / (sqrt(vn) * inv_sqrt_bc2 + eps);
}

template <class S>
__global__ void adams_kernel(const S* __restrict__ g, const std::uint8_t* __restrict__ mask,
                             S* __restrict__ MU, S* __restrict__ V, S* __restrict__ W,
                             std::size_t n, S b1, S b2, S ob1, S ob2, S alpha, S lam, S step,
                             S inv_sqrt_bc2, S eps) {
  for_each4(
      n,
      [&](std::size_t i) {
        const Vec4<S> gv = load4(g + i);
        Vec4<S> mv = load4(MU + i), vv = load4(V + i), wv = load4(W + i);
        std::uint8_t mk[4];
        load_mask4(mask + i, mk);
#pragma unroll
        for (int l = 0; l < 4; ++l)
          adams_one(gv.v[l], mk[l] != 0, mv.v[l], vv.v[l], wv.v[l], b1, b2, ob1, ob2, alpha, lam,
                    step, inv_sqrt_bc2, eps);
        store4(MU + i, mv);
        store4(V + i, vv);
        store4(W + i, wv);
      },
      [&](std::size_t i) {
        adams_one(g[i], mask[i] != 0, MU[i], V[i], W[i], b1, b2, ob1, ob2, alpha, lam, step,
                  inv_sqrt_bc2, eps);
      });
}

/// out = |w| (AdamS's magnitude scores before the row-wise projection).
template <class S>
__global__ void abs_kernel(const S* __restrict__ w, std::size_t n, S* __restrict__ out) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x)
    out[i] = fabs(w[i]);
}

}  // namespace detail
}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_DETAIL_OPTIM_KERNELS_CUH
