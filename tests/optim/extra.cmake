# SPDX-License-Identifier: Apache-2.0
# On AVX-512 builds Newton-Schulz runs on the library's packed GEMM (SPARSENM_NS_PACKED_GEMM=1, the
# default there). The BLAS/Eigen route of optim/detail/ns_kernels.hpp is what other builds use and
# what SPARSENM_NS_PACKED_GEMM=0 selects, so the Newton-Schulz and TANS tests run once more on each
# route: without EIGEN_USE_BLAS (Eigen's products) and with it (BLAS ?syrk/?symm/?gemm). Neither
# can share the precompiled header (different macros). The sanitizer pass of scripts/test leaves these
# two variants out (CI time on 2 cores): the first pass runs them, and their only difference is which
# GEMM the same loops call.
if(TARGET test_optim AND NOT SPARSENM_SANITIZE)
  add_executable(test_optim_noblas
    ${CMAKE_CURRENT_SOURCE_DIR}/optim/test_newton_schulz.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/optim/test_tans.cpp)
  target_link_libraries(test_optim_noblas PRIVATE sparsenm sparsenm_dev_flags
                        $<TARGET_NAME_IF_EXISTS:sparsenm_openmp> GTest::gtest_main)
  target_compile_definitions(test_optim_noblas PRIVATE SPARSENM_NS_PACKED_GEMM=0)
  target_include_directories(test_optim_noblas PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  gtest_discover_tests(test_optim_noblas DISCOVERY_MODE PRE_TEST TEST_PREFIX "noblas."
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2")
  if(TARGET sparsenm_blas)
    add_executable(test_optim_blas_ns ${CMAKE_CURRENT_SOURCE_DIR}/optim/test_newton_schulz.cpp)
    target_link_libraries(test_optim_blas_ns PRIVATE sparsenm_dev GTest::gtest_main)
    target_compile_definitions(test_optim_blas_ns PRIVATE SPARSENM_NS_PACKED_GEMM=0)
    target_include_directories(test_optim_blas_ns PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    gtest_discover_tests(test_optim_blas_ns DISCOVERY_MODE PRE_TEST TEST_PREFIX "blasns."
                         PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2")
  endif()
endif()
