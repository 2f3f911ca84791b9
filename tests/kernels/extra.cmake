# SPDX-License-Identifier: Apache-2.0
# g++ 12 issues false -Wmaybe-uninitialized warnings from inside Eigen's out-of-line AVX-512
# product/reduction code (the _mm512_undefined_* of GCC bug 105593), which no pragma in our headers
# can reach; clang and newer GCC do not.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(test_kernels PRIVATE -Wno-maybe-uninitialized)
endif()
