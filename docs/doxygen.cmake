# SPDX-License-Identifier: Apache-2.0
# API reference (docs/api.md), when Doxygen is found (Debian: doxygen):
#   cmake --build build --target docs      HTML of every public header -> build/docs/api/html
#                                          (warnings listed in build/docs/api/warnings.log)
#   ctest -R docs_api_complete             Doxygen with WARN_AS_ERROR over the headers whose
#                                          documentation is complete (SPARSENM_DOXYGEN_STRICT):
#                                          an undocumented public entity or a broken reference
#                                          there fails the test suite
find_package(Doxygen QUIET)
if(NOT DOXYGEN_FOUND)
  message(STATUS "sparsenm: Doxygen not found; no `docs` target (Debian: apt-get install doxygen)")
  return()
endif()

set(SPARSENM_DOXYGEN_OUT "${PROJECT_BINARY_DIR}/docs/api")
set(SPARSENM_DOXYGEN_INPUT "${PROJECT_SOURCE_DIR}/include/sparsenm")
set(SPARSENM_DOXYGEN_WARN_AS_ERROR NO)
configure_file("${PROJECT_SOURCE_DIR}/docs/Doxyfile.in" "${SPARSENM_DOXYGEN_OUT}/Doxyfile" @ONLY)
add_custom_target(docs
  COMMAND ${DOXYGEN_EXECUTABLE} "${SPARSENM_DOXYGEN_OUT}/Doxyfile"
  COMMAND ${CMAKE_COMMAND} -E echo "API reference: ${SPARSENM_DOXYGEN_OUT}/html/index.html"
  WORKING_DIRECTORY "${SPARSENM_DOXYGEN_OUT}"
  COMMENT "Doxygen: sparsenm API reference"
  VERBATIM)

# The headers held to zero warnings: every public C++ header (*.hpp) of include/sparsenm, each
# layer directory whole, so a new header there is held to it from its first commit. (cuda/ is
# *.cuh, which FILE_PATTERNS leaves out of both runs.)
set(SPARSENM_DOXYGEN_STRICT_HEADERS
  config.hpp version.hpp mpi.hpp sparsenm.hpp
  core.hpp mask.hpp kernels.hpp sampling.hpp topology.hpp optim.hpp hessian.hpp io.hpp nn.hpp
  train.hpp
  core mask kernels sampling topology optim hessian io nn train)
set(_strict "")
foreach(_h IN LISTS SPARSENM_DOXYGEN_STRICT_HEADERS)
  string(APPEND _strict " \"${PROJECT_SOURCE_DIR}/include/sparsenm/${_h}\"")
endforeach()
set(SPARSENM_DOXYGEN_OUT "${PROJECT_BINARY_DIR}/docs/api_strict")
set(SPARSENM_DOXYGEN_INPUT "${_strict}")
set(SPARSENM_DOXYGEN_WARN_AS_ERROR FAIL_ON_WARNINGS)
configure_file("${PROJECT_SOURCE_DIR}/docs/Doxyfile.in" "${SPARSENM_DOXYGEN_OUT}/Doxyfile" @ONLY)
if(SPARSENM_BUILD_TESTS)
  add_test(NAME docs_api_complete COMMAND ${DOXYGEN_EXECUTABLE} "${SPARSENM_DOXYGEN_OUT}/Doxyfile"
           WORKING_DIRECTORY "${SPARSENM_DOXYGEN_OUT}")
endif()
