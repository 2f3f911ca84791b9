// SPDX-License-Identifier: Apache-2.0
// Feature detection only: Eigen version, OpenMP, BLAS backend, instruction sets.
#ifndef SPARSENM_CONFIG_HPP
#define SPARSENM_CONFIG_HPP

#include <Eigen/Core>

#if !EIGEN_VERSION_AT_LEAST(3, 4, 0)
#error "sparsenm requires Eigen 3.4 or newer (Debian: apt-get install libeigen3-dev)"
#endif

// OpenMP is used when the translation unit is compiled with it (-fopenmp, or by linking the
// sparsenm::openmp companion target) unless the user opts out with SPARSENM_DONT_PARALLELIZE.
#if defined(_OPENMP) && !defined(SPARSENM_DONT_PARALLELIZE)
#define SPARSENM_HAS_OPENMP 1
#else
#define SPARSENM_HAS_OPENMP 0
#endif

// EIGEN_USE_BLAS is never defined here: the sparsenm::blas companion target defines it for the
// whole program, because every translation unit must agree on it (ODR).
#if defined(EIGEN_USE_BLAS)
#define SPARSENM_HAS_BLAS 1
#else
#define SPARSENM_HAS_BLAS 0
#endif

// Instruction sets the translation unit is compiled for (-march). Kernel bodies are compiled for
// this ISA and, with SPARSENM_RUNTIME_DISPATCH below, for every wider x86-64 ISA as well
// (core/detail/isa_passes.inc); SPARSENM_HAS_* then names the ISA of the body being compiled.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
    defined(__AVX512VL__) && !defined(SPARSENM_NO_AVX512)
#define SPARSENM_HAS_AVX512 1
#else
#define SPARSENM_HAS_AVX512 0
#endif
#if defined(__AVX2__) && defined(__FMA__) && !defined(SPARSENM_NO_AVX2)
#define SPARSENM_HAS_AVX2 1
#else
#define SPARSENM_HAS_AVX2 0
#endif
#if SPARSENM_HAS_AVX512 && defined(__AVX512VPOPCNTDQ__)
#define SPARSENM_HAS_AVX512_VPOPCNTDQ 1
#else
#define SPARSENM_HAS_AVX512_VPOPCNTDQ 0
#endif
// 1 only in the runtime-dispatched AVX-512 bodies (core/detail/isa_passes.inc): kernels that can
// use VPOPCNTDQ compile it under their own target and check the CPU before calling it.
#define SPARSENM_VPOPCNTDQ_AT_RUNTIME 0
// The same, as literals: isa_passes.inc redefines SPARSENM_HAS_* while it compiles wider bodies.
#if SPARSENM_HAS_AVX512
#define SPARSENM_COMPILED_AVX512 1
#else
#define SPARSENM_COMPILED_AVX512 0
#endif
#if SPARSENM_HAS_AVX2
#define SPARSENM_COMPILED_AVX2 1
#else
#define SPARSENM_COMPILED_AVX2 0
#endif

// Runtime dispatch: a program compiled below AVX-512 (e.g. plain -O2, no -march) still runs the
// AVX2 or AVX-512 kernels when the CPU has them, chosen once per process from CPUID (core/simd.hpp:
// active_isa(), SPARSENM_FORCE_ISA). GCC on x86-64 only (it needs `#pragma GCC target` on
// templates); define SPARSENM_NO_RUNTIME_DISPATCH to compile only the -march ISA.
#if !defined(SPARSENM_NO_RUNTIME_DISPATCH) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__CUDACC__) && defined(__x86_64__) && !SPARSENM_HAS_AVX512 &&                \
    !defined(SPARSENM_NO_AVX512)
#define SPARSENM_RUNTIME_DISPATCH 1
#else
#define SPARSENM_RUNTIME_DISPATCH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SPARSENM_RESTRICT __restrict__
#define SPARSENM_NOINLINE __attribute__((noinline))
#define SPARSENM_COLD __attribute__((cold))
#define SPARSENM_ALWAYS_INLINE inline __attribute__((always_inline))
#define SPARSENM_PREFETCH(p) __builtin_prefetch(p)
#define SPARSENM_PREFETCH_W(p) __builtin_prefetch(p, 1)
#else
#define SPARSENM_RESTRICT
#define SPARSENM_NOINLINE
#define SPARSENM_COLD
#define SPARSENM_ALWAYS_INLINE inline
#define SPARSENM_PREFETCH(p) ((void)(p))
#define SPARSENM_PREFETCH_W(p) ((void)(p))
#endif

// Host/device annotation for code shared with the CUDA backend (CUTLASS's CUTLASS_HOST_DEVICE
// idea).
#if defined(__CUDACC__)
#define SPARSENM_HOST_DEVICE __host__ __device__
#else
#define SPARSENM_HOST_DEVICE
#endif

#endif  // SPARSENM_CONFIG_HPP
