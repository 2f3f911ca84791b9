# SPDX-License-Identifier: Apache-2.0
# GCC 12 + -march=native: Eigen's AVX-512 reductions inside small dense products also raise a false
# -Wuninitialized (GCC bug 105593, next to the -Wmaybe-uninitialized the top level already turns off)
# at locations inside <avx512fintrin.h>, where no #pragma in a test file reaches.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(test_hessian PRIVATE -Wno-uninitialized)
endif()
