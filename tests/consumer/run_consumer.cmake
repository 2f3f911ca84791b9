# Runs one consumer scenario; fails (FATAL_ERROR) on any step that fails.
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
if(MODE STREQUAL "installed")
  run(${CMAKE_COMMAND} --install "${SPARSENM_BUILD_DIR}" --prefix "${WORK}/prefix")
  run(${CMAKE_COMMAND} -S "${CONSUMER}" -B "${WORK}/build" -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${WORK}/prefix -DCONSUME=installed)
else()
  run(${CMAKE_COMMAND} -S "${CONSUMER}" -B "${WORK}/build" -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_CXX_COMPILER=${CXX} -DCONSUME=subdirectory -DSPARSENM_SOURCE_DIR=${SPARSENM_SOURCE_DIR})
endif()
run(${CMAKE_COMMAND} --build "${WORK}/build")
function(fingerprints exe var)
  execute_process(COMMAND "${exe}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${exe}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
  string(REGEX MATCHALL "fingerprints:[^\n]*" lines "${out}")
  set(${var} "${lines}" PARENT_SCOPE)
endfunction()
fingerprints("${WORK}/build/consumer" plain)
fingerprints("${WORK}/build/consumer_native" native)
# The plain build (kernels chosen at run time) computes what the -march=native build computes.
if(plain STREQUAL "" OR NOT plain STREQUAL native)
  message(FATAL_ERROR "plain and native builds differ:\n plain:  ${plain}\n native: ${native}")
endif()
if(MODE STREQUAL "installed")
  # A misspelt component fails with a message that names it and the valid ones.
  execute_process(COMMAND ${CMAKE_COMMAND} -S "${CONSUMER}" -B "${WORK}/build-bad"
                  -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_PREFIX_PATH=${WORK}/prefix
                  -DCONSUME=installed -DBAD_COMPONENT=OpenMP
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT err MATCHES "unknown sparsenm component\\(s\\): OpenMP; valid: openmp blas mpi native cuda")
    message(FATAL_ERROR "component 'OpenMP' was not rejected with the expected message:\n${out}\n${err}")
  endif()
endif()
