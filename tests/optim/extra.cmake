# SPDX-License-Identifier: Apache-2.0
# The Newton-Schulz and TANS tests once more WITHOUT EIGEN_USE_BLAS, so the Eigen fallback of
# optim/detail/ns_kernels.hpp (used by consumers that do not opt into BLAS) is tested too. It cannot
# share the precompiled header (that one is built with EIGEN_USE_BLAS).
if(TARGET test_optim)
  add_executable(test_optim_noblas
    ${CMAKE_CURRENT_SOURCE_DIR}/optim/test_newton_schulz.cpp
    ${CMAKE_CURRENT_SOURCE_DIR}/optim/test_tans.cpp)
  target_link_libraries(test_optim_noblas PRIVATE sparsenm sparsenm_dev_flags
                        $<TARGET_NAME_IF_EXISTS:sparsenm_openmp> GTest::gtest_main)
  target_include_directories(test_optim_noblas PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  gtest_discover_tests(test_optim_noblas DISCOVERY_MODE PRE_TEST TEST_PREFIX "noblas."
                       PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=2")
endif()
