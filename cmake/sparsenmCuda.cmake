# SPDX-License-Identifier: Apache-2.0
# The optional CUDA backend (include/sparsenm/cuda.cuh), included by the top-level CMakeLists.txt
# right after the OpenMP / BLAS companion targets.
#
#  SPARSENM_CUDA=ON : enable_language(CUDA); INTERFACE target sparsenm_cuda (alias sparsenm::cuda,
#                     export set sparsenmCudaTargets) with CUDA::cudart + CUDA::cublas; cuSPARSELt
#                     when found (build tree only: SPARSENM_HAS_CUSPARSELT + its include/library);
#                     the GPU test executable test_cuda (ctest: cuda_tests, SKIPPED without a GPU)
#                     and the benchmark bench_cuda.
#  SPARSENM_CUDA=OFF: nothing is required. If SPARSENM_BUILD_TESTS is ON and a WORKING nvcc is found
#                     (a trivial compile is tried once at configure time), ctest gets
#                     cuda_header_compile: every CUDA header compiled (not run) by that nvcc.
#                     An absent or broken nvcc only drops that test.

set(SPARSENM_CUDA_ARCHITECTURES "90" CACHE STRING "CUDA architectures for sparsenm's CUDA tests and benchmarks (H100: 90)")
# Flags every CUDA translation unit of the backend needs: Philox and the pattern plan are constexpr
# host code used on the device; Eigen's headers trigger harmless host/device annotation warnings.
set(_sparsenm_cuda_flags --expt-relaxed-constexpr -diag-suppress=20012,20011,20014)

if(SPARSENM_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES ${SPARSENM_CUDA_ARCHITECTURES})
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)

  add_library(sparsenm_cuda INTERFACE)
  add_library(sparsenm::cuda ALIAS sparsenm_cuda)
  set_target_properties(sparsenm_cuda PROPERTIES EXPORT_NAME cuda)
  target_link_libraries(sparsenm_cuda INTERFACE sparsenm CUDA::cudart CUDA::cublas)
  target_compile_features(sparsenm_cuda INTERFACE cuda_std_17)
  target_compile_options(sparsenm_cuda INTERFACE
    "$<$<COMPILE_LANGUAGE:CUDA>:${_sparsenm_cuda_flags}>")

  # cuSPARSELt: a system install, CUSPARSELT_PATH, the CUDA toolkit, or the Python wheel
  # (site-packages/nvidia/cusparselt, as shipped with PyTorch).
  set(_sparsenm_cslt_hints $ENV{CUSPARSELT_PATH} ${CUSPARSELT_PATH} ${CUDAToolkit_LIBRARY_ROOT})
  find_program(_sparsenm_python NAMES python3 python)
  if(_sparsenm_python)
    execute_process(
      COMMAND ${_sparsenm_python} -c "import importlib.util as u; s = u.find_spec('nvidia.cusparselt'); print(list(s.submodule_search_locations)[0] if s else '')"
      OUTPUT_VARIABLE _sparsenm_cslt_py OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET TIMEOUT 60)
    if(_sparsenm_cslt_py)
      list(APPEND _sparsenm_cslt_hints "${_sparsenm_cslt_py}")
    endif()
  endif()
  file(GLOB _sparsenm_cslt_globs "/usr/local/lib/python3*/dist-packages/nvidia/cusparselt"
       "/usr/lib/python3/dist-packages/nvidia/cusparselt"
       "/opt/*/.venv/lib/python3*/site-packages/nvidia/cusparselt")
  list(APPEND _sparsenm_cslt_hints ${_sparsenm_cslt_globs})
  find_path(SPARSENM_CUSPARSELT_INCLUDE_DIR cusparseLt.h HINTS ${_sparsenm_cslt_hints}
            PATH_SUFFIXES include)
  find_library(SPARSENM_CUSPARSELT_LIBRARY NAMES cusparseLt libcusparseLt.so.0
               HINTS ${_sparsenm_cslt_hints} PATH_SUFFIXES lib lib64)
  if(SPARSENM_CUSPARSELT_INCLUDE_DIR AND SPARSENM_CUSPARSELT_LIBRARY)
    message(STATUS "sparsenm: cuSPARSELt found: ${SPARSENM_CUSPARSELT_LIBRARY}")
    # Build tree only: an installed sparsenm::cuda does not pin a machine-specific library path;
    # consumers that want Sparse24 define SPARSENM_HAS_CUSPARSELT and link cuSPARSELt themselves.
    target_compile_definitions(sparsenm_cuda INTERFACE $<BUILD_INTERFACE:SPARSENM_HAS_CUSPARSELT>)
    target_include_directories(sparsenm_cuda SYSTEM INTERFACE
      $<BUILD_INTERFACE:${SPARSENM_CUSPARSELT_INCLUDE_DIR}>)
    target_link_libraries(sparsenm_cuda INTERFACE $<BUILD_INTERFACE:${SPARSENM_CUSPARSELT_LIBRARY}>)
    set(SPARSENM_HAS_CUSPARSELT ON)
  else()
    message(STATUS "sparsenm: cuSPARSELt not found; cuda::Sparse24 is disabled")
    set(SPARSENM_HAS_CUSPARSELT OFF)
  endif()

  if(SPARSENM_INSTALL)
    install(TARGETS sparsenm_cuda EXPORT sparsenmCudaTargets)
    install(EXPORT sparsenmCudaTargets NAMESPACE sparsenm::
            DESTINATION "${CMAKE_INSTALL_LIBDIR}/cmake/sparsenm")
  endif()
endif()

# Tests and benchmarks are defined at the end of the top-level directory, once sparsenm_openmp,
# enable_testing() and friends exist.
option(SPARSENM_CUDA_TESTS "Build the GPU tests (needs SPARSENM_CUDA)" ON)
option(SPARSENM_CUDA_BENCHMARKS "Build bench_cuda (needs SPARSENM_CUDA)" ON)
if(SPARSENM_CUDA AND SPARSENM_CUDA_TESTS)
  enable_testing()  # at directory scope: it sets a directory variable, so not inside a function
endif()

function(_sparsenm_cuda_define_tests)
  if(SPARSENM_CUDA)
    if(SPARSENM_CUDA_TESTS)
      if(NOT TARGET GTest::gtest)
        find_package(GTest QUIET)
      endif()
      if(NOT TARGET GTest::gtest AND DEFINED SPARSENM_GTEST_SOURCE_DIR)
        set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
        add_subdirectory(${SPARSENM_GTEST_SOURCE_DIR} ${CMAKE_BINARY_DIR}/_gtest EXCLUDE_FROM_ALL)
        add_library(GTest::gtest ALIAS gtest)
      endif()
      if(TARGET GTest::gtest)
        file(GLOB _cu CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/cuda/*.cu")
        add_executable(test_cuda ${_cu})
        target_link_libraries(test_cuda PRIVATE sparsenm_cuda GTest::gtest
                              $<TARGET_NAME_IF_EXISTS:sparsenm_openmp>)
        target_include_directories(test_cuda PRIVATE "${PROJECT_SOURCE_DIR}/tests")
        # The CPU references are host code of the same TUs: give them the CPU build's -march=native
        # (so e.g. the CPU's AVX-512 Fréchet kernel is what the device is compared with).
        target_compile_options(test_cuda PRIVATE
          "$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra$<$<BOOL:${SPARSENM_OPENMP}>:,-fopenmp>$<$<BOOL:${SPARSENM_NATIVE}>:,-march=native>>")
        # tests/cuda/main.cu returns 77 when no GPU is present: ctest reports the test SKIPPED.
        add_test(NAME cuda_tests COMMAND test_cuda)
        set_tests_properties(cuda_tests PROPERTIES SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_NUM_THREADS=2")
      else()
        message(STATUS "sparsenm: GoogleTest not found; GPU tests are not built")
      endif()
    endif()
    if(SPARSENM_CUDA_BENCHMARKS)
      add_executable(bench_cuda "${PROJECT_SOURCE_DIR}/bench/cuda/bench_cuda.cu")
      target_link_libraries(bench_cuda PRIVATE sparsenm_cuda $<TARGET_NAME_IF_EXISTS:sparsenm_openmp>)
      target_include_directories(bench_cuda PRIVATE "${PROJECT_SOURCE_DIR}/tests")
    endif()
  elseif(SPARSENM_BUILD_TESTS)
    # Compile-only check of the CUDA headers with the machine's nvcc, when one works.
    if(NOT DEFINED SPARSENM_NVCC_WORKS)
      find_program(SPARSENM_NVCC_EXECUTABLE nvcc HINTS ENV CUDA_PATH ENV CUDA_HOME
                   PATHS /usr/local/cuda/bin /usr/local/cuda PATH_SUFFIXES bin)
      set(_works OFF)
      if(SPARSENM_NVCC_EXECUTABLE)
        set(_probe_dir "${CMAKE_BINARY_DIR}/CMakeFiles/sparsenm_nvcc_probe")
        file(WRITE "${_probe_dir}/probe.cu" "__global__ void k(int* p) { *p = 1; }\nint main() { return 0; }\n")
        execute_process(COMMAND "${SPARSENM_NVCC_EXECUTABLE}" -std=c++17 -c probe.cu -o probe.o
                        WORKING_DIRECTORY "${_probe_dir}" RESULT_VARIABLE _rc
                        OUTPUT_QUIET ERROR_QUIET TIMEOUT 180)
        if(_rc EQUAL 0)
          set(_works ON)
        endif()
      endif()
      set(SPARSENM_NVCC_WORKS ${_works} CACHE BOOL "nvcc compiled a probe at configure time")
      message(STATUS "sparsenm: nvcc for the CUDA header compile test: ${SPARSENM_NVCC_WORKS}")
    endif()
    if(SPARSENM_NVCC_WORKS AND TARGET Eigen3::Eigen)
      get_target_property(_eigen_inc Eigen3::Eigen INTERFACE_INCLUDE_DIRECTORIES)
      set(_inc_flags "-I${PROJECT_SOURCE_DIR}/include")
      foreach(_d IN LISTS _eigen_inc)
        list(APPEND _inc_flags "-I${_d}")
      endforeach()
      add_test(NAME cuda_header_compile
               COMMAND "${SPARSENM_NVCC_EXECUTABLE}" -std=c++17 ${_sparsenm_cuda_flags}
                       ${_inc_flags} -c "${PROJECT_SOURCE_DIR}/tests/cuda/compile_check.cu"
                       -o "${CMAKE_BINARY_DIR}/cuda_header_compile.o")
      set_tests_properties(cuda_header_compile PROPERTIES TIMEOUT 600)
    endif()
  endif()
endfunction()
cmake_language(DEFER DIRECTORY "${PROJECT_SOURCE_DIR}" CALL _sparsenm_cuda_define_tests)
