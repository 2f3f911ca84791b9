// SPDX-License-Identifier: Apache-2.0
// Compile-time SIMD selection. ISA-specific kernels live in an inline namespace named after the ISA
// (Highway's idea): translation units compiled with different -m flags then define different
// symbols, so linking them together cannot silently pick one TU's AVX-512 body for another TU.
//
//   namespace sparsenm::detail { inline namespace SPARSENM_ISA_NAMESPACE { ... } }
//
// Every SIMD kernel keeps a scalar reference in namespace sparsenm::detail::scalar that tests use.
#ifndef SPARSENM_CORE_SIMD_HPP
#define SPARSENM_CORE_SIMD_HPP

#include <cstdio>
#include <cstdlib>
#include <string>

#include "../config.hpp"

#if SPARSENM_HAS_AVX512 || SPARSENM_HAS_AVX2
#include <immintrin.h>
#endif

#if SPARSENM_HAS_AVX512
#define SPARSENM_ISA_NAMESPACE avx512
#elif SPARSENM_HAS_AVX2
#define SPARSENM_ISA_NAMESPACE avx2
#else
#define SPARSENM_ISA_NAMESPACE generic
#endif

// GCC 12 reports -Wmaybe-uninitialized (and, after inlining, -Wuninitialized) inside AVX-512
// intrinsics that start from _mm512_undefined_*() (GCC bug 105593, a false positive), in our
// kernels and in Eigen's AVX-512 packet code. Headers with such code wrap their whole body in
// these, because the warning is attributed to the inlined call sites.
#if defined(__GNUC__) && !defined(__clang__)
#define SPARSENM_SIMD_WARNINGS_PUSH                                                          \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#define SPARSENM_SIMD_WARNINGS_POP _Pragma("GCC diagnostic pop")
#else
#define SPARSENM_SIMD_WARNINGS_PUSH
#define SPARSENM_SIMD_WARNINGS_POP
#endif

namespace sparsenm {

enum class SimdIsa { Scalar, Avx2, Avx512 };

/// The widest ISA this translation unit was compiled for.
constexpr SimdIsa compiled_isa() {
#if SPARSENM_HAS_AVX512
  return SimdIsa::Avx512;
#elif SPARSENM_HAS_AVX2
  return SimdIsa::Avx2;
#else
  return SimdIsa::Scalar;
#endif
}

inline const char* to_string(SimdIsa isa) {
  switch (isa) {
    case SimdIsa::Avx512:
      return "avx512";
    case SimdIsa::Avx2:
      return "avx2";
    default:
      return "scalar";
  }
}

/// What the running CPU supports (for reports and for tests that must skip); kernels are selected
/// at compile time, never from this.
inline SimdIsa runtime_isa() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return SimdIsa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdIsa::Avx2;
#endif
  return SimdIsa::Scalar;
}

/// One line on the kernels this program runs and what the CPU could run, for logs: e.g.
/// "sparsenm kernels: avx512 (CPU: avx512)". When the CPU supports more than the program was
/// compiled for, it says how to get the faster kernels (they are chosen at compile time: compile
/// with -march=native, or link the CMake target sparsenm::native).
inline std::string isa_report() {
  std::string s = std::string("sparsenm kernels: ") + to_string(compiled_isa()) +
                  " (CPU: " + to_string(runtime_isa()) + ")";
  if (static_cast<int>(runtime_isa()) > static_cast<int>(compiled_isa()))
    s += "; this CPU has faster kernels: compile with -march=native or link sparsenm::native";
  return s;
}

namespace detail {
/// A program compiled for an ISA the CPU lacks would die of SIGILL somewhere inside a kernel. This
/// check runs once per program at static initialisation and stops it with a message instead
/// (compiled for the baseline x86-64 ISA itself, so the check cannot be the illegal instruction).
#if (defined(__GNUC__) && !defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
__attribute__((target("arch=x86-64")))
#endif
inline bool
check_cpu_has_compiled_isa() {
  if (static_cast<int>(compiled_isa()) > static_cast<int>(runtime_isa())) {
    std::fprintf(stderr,
                 "sparsenm: this program was compiled for %s but this CPU supports only %s; "
                 "rebuild it for this CPU (without -march=native from another machine)\n",
                 to_string(compiled_isa()), to_string(runtime_isa()));
    std::abort();
  }
  return true;
}
inline const bool kCpuHasCompiledIsa = check_cpu_has_compiled_isa();
}  // namespace detail

}  // namespace sparsenm

#endif  // SPARSENM_CORE_SIMD_HPP
