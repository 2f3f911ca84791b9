// SPDX-License-Identifier: Apache-2.0
// The float Fréchet transform W~ = |W| (-ln U)^(-1/T) (chts24 Sec. 3.2.2, App. A), written once for
// the CPU (scalar reference of the AVX-512 kernel, sampling/detail/frechet_kernels.hpp) and the
// CUDA kernel (cuda/detail/sampling_kernels.cuh), so that all three give the same bits.
//
// In base 2: (-ln U)^(-1/T) = 2^x with x = -(1/T) (log2(-log2 U) + log2(ln 2)). Two log2 and one
// exp2 polynomial, chosen for few operations rather than the last ulp (a sampling transform; the
// pipeline stays within 1e-5 of the formula in double, the float rounding of x alone is ~3e-6 at
// T = 0.5):
//  * log2 x = e + f P(f): e and m = 1 + f in [sqrt(1/2), sqrt(2)) split off with integer
//    arithmetic on the bits, P of degree 8 (weighted least squares for relative error on that
//    interval; ~2 ulp, measured exhaustively over [2^-40, 64]).
//  * 2^x = 2^n (1 + f Q(f)), n = rint(x) by the 1.5 * 2^23 shift, f = x - n exact in
//    [-1/2, 1/2], Q of degree 5 (< 1 ulp); 2^n applied with one rounding (AVX-512 scalef).
// Every multiply-add is an explicit fmaf and no plain product feeds a sum, so no compiler can
// contract the expressions differently on either side; the remaining steps are exact.
#ifndef SPARSENM_SAMPLING_DETAIL_FRECHET_MATH_HPP
#define SPARSENM_SAMPLING_DETAIL_FRECHET_MATH_HPP

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../../config.hpp"

namespace sparsenm {
namespace detail {

/// Coefficients of P (log2(1 + f) / f) and Q ((2^f - 1) / f), constant term first. Scalars, not
/// arrays: device code may read constexpr scalars of the host.
constexpr float kLog2P0 = 1.442695022e+00f, kLog2P1 = -7.213473320e-01f, kLog2P2 = 4.809106290e-01f,
                kLog2P3 = -3.607036769e-01f, kLog2P4 = 2.879162431e-01f,
                kLog2P5 = -2.389448583e-01f, kLog2P6 = 2.157156914e-01f,
                kLog2P7 = -2.072694749e-01f, kLog2P8 = 1.258364618e-01f;
constexpr float kExp2Q0 = 6.931471825e-01f, kExp2Q1 = 2.402264923e-01f, kExp2Q2 = 5.550357327e-02f,
                kExp2Q3 = 9.618237615e-03f, kExp2Q4 = 1.339073526e-03f, kExp2Q5 = 1.540351077e-04f;
/// log2(ln 2) in float.
constexpr float kLog2Ln2 = -5.287663937e-01f;
/// Bits of the float nearest sqrt(1/2): mantissas are split off into [sqrt(1/2), sqrt(2)).
constexpr std::uint32_t kSqrtHalfBits = 0x3f3504f3u;
/// 1.5 * 2^23: adding it rounds |x| < 2^22 to an integer (ties to even) held in the low bits.
constexpr float kRoundShift = 12582912.0f;
constexpr std::uint32_t kRoundShiftBits = 0x4B400000u;
/// exp2 argument range of the checked path: 2^x is 0 below and +Inf above, 2^n fits an int split
/// in two normal powers.
constexpr float kExp2Lo = -165.0f, kExp2Hi = 145.0f;

SPARSENM_HOST_DEVICE inline std::uint32_t float_bits(float x) {
  std::uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
}
SPARSENM_HOST_DEVICE inline float bits_float(std::uint32_t b) {
  float x;
  std::memcpy(&x, &b, sizeof(x));
  return x;
}

/// log2 x for a positive normal float x.
SPARSENM_HOST_DEVICE inline float frechet_log2(float x) {
  const std::uint32_t b = float_bits(x);
  // e = floor(log2(x / sqrt(1/2))) by an arithmetic shift; m = x 2^-e in [sqrt(1/2), sqrt(2)).
  const std::int32_t e = std::int32_t(b - kSqrtHalfBits) >> 23;
  const float f = bits_float(b - (std::uint32_t(e) << 23)) - 1.0f;  // exact (Sterbenz)
  float p = fmaf(kLog2P8, f, kLog2P7);
  p = fmaf(p, f, kLog2P6);
  p = fmaf(p, f, kLog2P5);
  p = fmaf(p, f, kLog2P4);
  p = fmaf(p, f, kLog2P3);
  p = fmaf(p, f, kLog2P2);
  p = fmaf(p, f, kLog2P1);
  p = fmaf(p, f, kLog2P0);
  return fmaf(f, p, float(e));
}

/// The normal float 2^n, n in [-126, 127].
SPARSENM_HOST_DEVICE inline float pow2_float(std::int32_t n) {
  return bits_float(std::uint32_t(n + 127) << 23);
}

/// 2^x. kChecked = false skips the clamp and the range test; only valid where the caller knows
/// rint(x) is in [-125, 127] (the results are then the same).
template <bool kChecked = true>
SPARSENM_HOST_DEVICE inline float frechet_exp2(float x) {
  if (kChecked) x = fminf(fmaxf(x, kExp2Lo), kExp2Hi);
  const float r = x + kRoundShift;
  const float f = x - (r - kRoundShift);  // exact
  float q = fmaf(kExp2Q5, f, kExp2Q4);
  q = fmaf(q, f, kExp2Q3);
  q = fmaf(q, f, kExp2Q2);
  q = fmaf(q, f, kExp2Q1);
  q = fmaf(q, f, kExp2Q0);
  const float p = fmaf(f, q, 1.0f);
  const std::int32_t n = std::int32_t(float_bits(r) - kRoundShiftBits);
  // p 2^n with one rounding (AVX-512 scalef): one exact product where 2^n is normal, else p 2^n1
  // (exact, normal) times 2^n2, so only the second product rounds.
  if (!kChecked || (n >= -125 && n <= 127)) return p * pow2_float(n);
  const std::int32_t n1 = n / 2, n2 = n - n1;
  return (p * pow2_float(n1)) * pow2_float(n2);
}

/// Per-call constants: x = fmaf(neg_inv_t, log2(-log2 U), shift) with neg_inv_t = -(1/T) and
/// shift = neg_inv_t * log2(ln 2), both rounded to float once.
struct FrechetConstants {
  float neg_inv_t;
  float shift;
};
inline FrechetConstants frechet_constants(float inv_t) {
  const float n = -inv_t;
  return {n, n * kLog2Ln2};
}

/// |w| (-ln U)^(-1/T); exactly 0 where a = |w| is 0 (a select: 0 * Inf would be NaN).
template <bool kChecked = true>
SPARSENM_HOST_DEVICE inline float frechet_score(float a, float u, FrechetConstants c) {
  const float l = frechet_log2(u);  // < 0 for u in (0, 1)
  const float x = fmaf(c.neg_inv_t, frechet_log2(-l), c.shift);
  const float r = a * frechet_exp2<kChecked>(x);
  return a == 0.0f ? 0.0f : r;
}

/// True when rint(x) stays in [-125, 127] for every float uniform U in [2^-33, 1 - 2^-24]:
/// log2(-ln U) lies in [-24.0, 4.52] there (margins for the polynomials' rounding).
inline bool frechet_exp2_in_range(float inv_t) {
  return double(inv_t) * 24.1 <= 126.0 && double(inv_t) * 4.6 <= 124.0;
}

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_SAMPLING_DETAIL_FRECHET_MATH_HPP
