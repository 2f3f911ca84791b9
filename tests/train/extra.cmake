# SPDX-License-Identifier: Apache-2.0
# train/idx.hpp reads gzip through zlib, so the train tests link it.
find_package(ZLIB REQUIRED)
target_link_libraries(test_train PRIVATE ZLIB::ZLIB)
# GCC 12 + -march=native: Eigen's double-precision AVX-512 reductions inside the GEMV fallback of
# a product raise a false -Wmaybe-uninitialized (GCC bug 105593) that a #pragma cannot reach
# (the location is inside <avx512fintrin.h>, included by the precompiled header).
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_compile_options(test_train PRIVATE -Wno-maybe-uninitialized)
endif()
