# SPDX-License-Identifier: Apache-2.0
# GCC 12 + -march=native: Eigen's AVX-512 reductions and GEMV fallbacks inside small dense products
# raise a false -Wmaybe-uninitialized (GCC bug 105593) at locations inside <avx512fintrin.h>, which
# the precompiled header includes before any #pragma in a test file could reach them.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(test_hessian PRIVATE -Wno-maybe-uninitialized -Wno-uninitialized)
endif()
