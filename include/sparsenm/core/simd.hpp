// SPDX-License-Identifier: Apache-2.0
// SIMD selection. ISA-specific kernels live in a namespace named after the ISA (Highway's idea):
// translation units compiled with different -m flags then define different symbols, so linking them
// together cannot silently pick one TU's AVX-512 body for another TU.
//
//   namespace sparsenm::detail { inline namespace SPARSENM_ISA_NAMESPACE { ... } }
//
// Kernel bodies are written once (detail/*_body.inc) and compiled per ISA by
// core/detail/isa_passes.inc: for the ISA of the translation unit (-march) and, with runtime
// dispatch (config.hpp: GCC on x86-64 below AVX-512), also for AVX2 and AVX-512 under
// `#pragma GCC target`. Call sites name a kernel through SPARSENM_DISPATCH(name)(args...), which
// runs the body of active_isa(): chosen once per process from CPUID, overridable with the
// environment variable SPARSENM_FORCE_ISA=scalar|avx2|avx512 or set_active_isa().
//
// Every SIMD kernel keeps a scalar reference in namespace sparsenm::detail::scalar that tests use.
#ifndef SPARSENM_CORE_SIMD_HPP
#define SPARSENM_CORE_SIMD_HPP

#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <string>

#include "../config.hpp"

#include "error.hpp"

#if SPARSENM_HAS_AVX512 || SPARSENM_HAS_AVX2 || SPARSENM_RUNTIME_DISPATCH
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
// -Wpsabi: GCC notes that a helper returning __m512 changes the ABI when it is instantiated from
// a body compiled under `#pragma GCC target` (runtime dispatch); those helpers are always inlined
// into callers of the same target, so no call crosses the ABI boundary.
#define SPARSENM_SIMD_WARNINGS_PUSH                                                          \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")                                  \
          _Pragma("GCC diagnostic ignored \"-Wpsabi\"")
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

/// What the running CPU supports (AVX-512 means F, BW, DQ and VL; AVX2 means AVX2 and FMA).
inline SimdIsa runtime_isa() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return SimdIsa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return SimdIsa::Avx2;
#endif
  return SimdIsa::Scalar;
}

/// The widest ISA this program can run its kernels on: compiled_isa(), or AVX-512 when runtime
/// dispatch compiled the kernels for it too (config.hpp: SPARSENM_RUNTIME_DISPATCH).
constexpr SimdIsa dispatchable_isa() {
  return SPARSENM_RUNTIME_DISPATCH ? SimdIsa::Avx512 : compiled_isa();
}

namespace detail {
inline SimdIsa clamp_isa(SimdIsa want) {
  int w = static_cast<int>(want);
  w = std::min(w, static_cast<int>(runtime_isa()));
  w = std::min(w, static_cast<int>(dispatchable_isa()));
  w = std::max(w, static_cast<int>(compiled_isa()));
  return static_cast<SimdIsa>(w);
}

/// SPARSENM_FORCE_ISA=scalar|avx2|avx512 caps the ISA (for tests and A/B timings); an unknown
/// value stops the program with a message rather than being ignored.
inline SimdIsa initial_active_isa() {
  SimdIsa want = SimdIsa::Avx512;
  if (const char* env = std::getenv("SPARSENM_FORCE_ISA")) {
    const std::string v(env);
    if (v == "scalar" || v == "generic")
      want = SimdIsa::Scalar;
    else if (v == "avx2")
      want = SimdIsa::Avx2;
    else if (v == "avx512")
      want = SimdIsa::Avx512;
    else if (!v.empty()) {
      std::fprintf(stderr, "sparsenm: SPARSENM_FORCE_ISA=%s is not one of scalar, avx2, avx512\n",
                   env);
      std::abort();
    }
  }
  return clamp_isa(want);
}

/// Whether the CPU has AVX-512 VPOPCNTDQ (Ice Lake, Zen 4 and later), checked once.
inline bool cpu_has_avx512_vpopcntdq() {
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
  static const bool has = __builtin_cpu_supports("avx512vpopcntdq");
  return has;
#else
  return false;
#endif
}

inline SimdIsa& active_isa_storage() {
  static SimdIsa isa = initial_active_isa();
  return isa;
}
}  // namespace detail

/// The ISA whose kernels run: the widest the CPU and the build allow, capped by
/// SPARSENM_FORCE_ISA. Never below compiled_isa() (such a program cannot run on a lesser CPU).
inline SimdIsa active_isa() { return detail::active_isa_storage(); }

/// Selects the kernels for the rest of the process (tests use it to run every route on one
/// machine). Throws sparsenm::Error when the CPU lacks `isa`, when the build did not compile its
/// kernels, or when it is below the ISA the program was compiled for. Call it while no kernel runs.
inline void set_active_isa(SimdIsa isa) {
  if (detail::clamp_isa(isa) != isa)
    throw Error(std::string("set_active_isa: isa = ") + to_string(isa) +
                " is not available (CPU: " + to_string(runtime_isa()) +
                ", compiled: " + to_string(compiled_isa()) +
                ", dispatchable: " + to_string(dispatchable_isa()) + ")");
  detail::active_isa_storage() = isa;
}

/// One line on the kernels this program runs and what the CPU could run, for logs: e.g.
/// "sparsenm kernels: avx512 (runtime dispatch, compiled for scalar; CPU: avx512)". When neither
/// the build nor dispatch can use what the CPU has, it says how to get the faster kernels.
inline std::string isa_report() {
  std::string s = std::string("sparsenm kernels: ") + to_string(active_isa());
  if (SPARSENM_RUNTIME_DISPATCH)
    s += std::string(" (runtime dispatch, compiled for ") + to_string(compiled_isa()) + "; CPU: ";
  else
    s += " (CPU: ";
  s += std::string(to_string(runtime_isa())) + ")";
  if (static_cast<int>(runtime_isa()) > static_cast<int>(dispatchable_isa()))
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
    // fputs, not fprintf: with _FORTIFY_SOURCE (Ubuntu's default) fprintf is an always_inline
    // wrapper that cannot be inlined into this baseline-target function under -march=native.
    std::fputs("sparsenm: this program was compiled for ", stderr);
    std::fputs(to_string(compiled_isa()), stderr);
    std::fputs(" but this CPU supports only ", stderr);
    std::fputs(to_string(runtime_isa()), stderr);
    std::fputs("; rebuild it for this CPU (without -march=native from another machine)\n", stderr);
    std::abort();
  }
  return true;
}
inline const bool kCpuHasCompiledIsa = check_cpu_has_compiled_isa();
}  // namespace detail

}  // namespace sparsenm

/// SPARSENM_DISPATCH(kernel)(args...) calls detail::<isa>::kernel(args...) for active_isa();
/// `kernel` may carry template arguments (SPARSENM_DISPATCH(rowwise_run_simd<M, N>)). Without
/// runtime dispatch it is the compiled ISA's kernel, as an unqualified call would be.
#if SPARSENM_RUNTIME_DISPATCH
#define SPARSENM_DISPATCH_CALL_(ns, ...) \
  ::sparsenm::detail::ns::__VA_ARGS__(static_cast<decltype(sparsenm_args_)&&>(sparsenm_args_)...)
#if SPARSENM_COMPILED_AVX2
#define SPARSENM_DISPATCH_AVX2_(...)
#else
#define SPARSENM_DISPATCH_AVX2_(...)                         \
  if (::sparsenm::active_isa() == ::sparsenm::SimdIsa::Avx2) \
    return SPARSENM_DISPATCH_CALL_(avx2, __VA_ARGS__);
#endif
#define SPARSENM_DISPATCH(...)                                           \
  [&](auto&&... sparsenm_args_) -> decltype(auto) {                      \
    if (::sparsenm::active_isa() == ::sparsenm::SimdIsa::Avx512)         \
      return SPARSENM_DISPATCH_CALL_(avx512, __VA_ARGS__);               \
    SPARSENM_DISPATCH_AVX2_(__VA_ARGS__)                                 \
    return SPARSENM_DISPATCH_CALL_(SPARSENM_ISA_NAMESPACE, __VA_ARGS__); \
  }
#else
#define SPARSENM_DISPATCH(...) ::sparsenm::detail::SPARSENM_ISA_NAMESPACE::__VA_ARGS__
#endif

#endif  // SPARSENM_CORE_SIMD_HPP
