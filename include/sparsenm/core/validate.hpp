// SPDX-License-Identifier: Apache-2.0
// Validation helpers for public entry points. Every message names the argument and its value, e.g.
// "NM{5,4}: n must be in [1, m]" or "cols = 10 must be divisible by m = 4".
#ifndef SPARSENM_CORE_VALIDATE_HPP
#define SPARSENM_CORE_VALIDATE_HPP

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include <Eigen/Core>

#include "error.hpp"
#include "types.hpp"

namespace sparsenm {

namespace detail {

/// True when p[0..n) holds no NaN or ±Inf. Tests the exponent bits as integers, which vectorises
/// and runs at memory speed; Eigen's allFinite() compiles to a scalar loop with GCC 12 (about
/// 10 ns per entry measured here).
template <class S>
inline bool all_finite_range(const S* p, Index n) {
  static_assert(std::is_floating_point<S>::value, "all_finite_range: floating point only");
  using U = std::conditional_t<sizeof(S) == 4, std::uint32_t, std::uint64_t>;
  static_assert(sizeof(U) == sizeof(S), "all_finite_range: float or double only");
  constexpr U exp_mask = sizeof(S) == 4 ? U(0x7f800000u) : U(0x7ff0000000000000ull);
  unsigned bad = 0;
  for (Index i = 0; i < n; ++i) {
    U u;
    std::memcpy(&u, p + i, sizeof(S));
    bad |= unsigned((u & exp_mask) == exp_mask);
  }
  return bad == 0;
}

}  // namespace detail

/// Largest group size the generic row-wise paths support (a group's mask fits in 32 bits).
constexpr int kMaxGroupSize = 32;

/// Checks 1 <= n <= m <= max_m.
inline void check_nm(NM nm, const char* name = "nm", int max_m = kMaxGroupSize) {
  SPARSENM_CHECK(nm.m >= 1 && nm.m <= max_m, name, " = ", nm, ": m must be in [1, ", max_m, "]");
  SPARSENM_CHECK(nm.n >= 1 && nm.n <= nm.m, name, " = ", nm, ": n must be in [1, m]");
}

/// Checks value % divisor == 0 (and value >= 0), naming both.
inline void check_divisible(Index value, Index divisor, const char* value_name,
                            const char* divisor_name = "m") {
  SPARSENM_CHECK(value >= 0, value_name, " = ", value, " must be non-negative");
  SPARSENM_CHECK(divisor > 0 && value % divisor == 0, value_name, " = ", value,
                 " must be divisible by ", divisor_name, " = ", divisor);
}

/// Checks that two shapes agree.
inline void check_same_shape(Index rows_a, Index cols_a, Index rows_b, Index cols_b,
                             const char* name_a, const char* name_b) {
  SPARSENM_CHECK(rows_a == rows_b && cols_a == cols_b, name_a, " is ", rows_a, "x", cols_a, " but ",
                 name_b, " is ", rows_b, "x", cols_b, "; they must have the same shape");
}

template <class A, class B>
void check_same_shape(const Eigen::EigenBase<A>& a, const Eigen::EigenBase<B>& b,
                      const char* name_a, const char* name_b) {
  check_same_shape(a.rows(), a.cols(), b.rows(), b.cols(), name_a, name_b);
}

/// Checks an exact shape.
template <class A>
void check_shape(const Eigen::EigenBase<A>& a, Index rows, Index cols, const char* name) {
  SPARSENM_CHECK(a.rows() == rows && a.cols() == cols, name, " is ", a.rows(), "x", a.cols(),
                 " but must be ", rows, "x", cols);
}

/// Checks a finite value > 0.
inline void check_finite_positive(double value, const char* name) {
  SPARSENM_CHECK(std::isfinite(value) && value > 0, name, " = ", value, " must be finite and > 0");
}

/// Checks a finite value >= 0.
inline void check_finite_nonnegative(double value, const char* name) {
  SPARSENM_CHECK(std::isfinite(value) && value >= 0, name, " = ", value,
                 " must be finite and >= 0");
}

/// Checks lo <= value <= hi (closed) or lo < value < hi (open ends as requested); NaN always fails.
inline void check_in_range(double value, double lo, double hi, const char* name,
                           bool lo_open = false, bool hi_open = false) {
  const bool ok_lo = lo_open ? value > lo : value >= lo;
  const bool ok_hi = hi_open ? value < hi : value <= hi;
  SPARSENM_CHECK(std::isfinite(value) && ok_lo && ok_hi, name, " = ", value, " must be in ",
                 lo_open ? "(" : "[", lo, ", ", hi, hi_open ? ")" : "]");
}

/// Checks an integer parameter >= lo.
inline void check_at_least(long long value, long long lo, const char* name) {
  SPARSENM_CHECK(value >= lo, name, " = ", value, " must be >= ", lo);
}

/// Checks that every entry is finite; names the first offending position.
template <class D>
void check_all_finite(const Eigen::DenseBase<D>& x, const char* name) {
  using S = typename D::Scalar;
  bool fast = false;
  if constexpr (std::is_floating_point<S>::value &&
                bool(Eigen::internal::traits<D>::Flags & Eigen::DirectAccessBit)) {
    const D& d = x.derived();
    if (d.innerStride() == 1 && d.outerStride() == d.innerSize()) {  // contiguous storage
      if (detail::all_finite_range(d.data(), d.size())) return;
      fast = true;
    }
  }
  if (!fast && x.allFinite()) return;
  for (Index i = 0; i < x.rows(); ++i)
    for (Index j = 0; j < x.cols(); ++j)
      SPARSENM_CHECK(std::isfinite(static_cast<double>(x(i, j))), name, "(", i, ", ", j,
                     ") = ", static_cast<double>(x(i, j)), " is not finite");
}

/// Checks that a mask holds only 0 and 1.
inline void check_binary(const Mask& mask, const char* name = "mask") {
  const std::uint8_t* p = mask.data();
  // A branch-free pass over 8 bytes at a time first (4096²: ~1 ms instead of ~10 for the
  // checking loop), the message only on failure.
  std::uint64_t high_bits = 0;
  Index k = 0;
  for (; k + 8 <= mask.size(); k += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + k, 8);
    high_bits |= w;
  }
  for (; k < mask.size(); ++k) high_bits |= p[k];
  if ((high_bits & 0xFEFEFEFEFEFEFEFEull) == 0) return;
  for (Index k = 0; k < mask.size(); ++k)
    SPARSENM_CHECK(p[k] <= 1, name, "(", k / mask.cols(), ", ", k % mask.cols(), ") = ", int(p[k]),
                   " must be 0 or 1");
}

}  // namespace sparsenm

#endif  // SPARSENM_CORE_VALIDATE_HPP
