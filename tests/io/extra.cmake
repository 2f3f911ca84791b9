# SPDX-License-Identifier: Apache-2.0
# The libFuzzer harnesses (fuzz/harness.hpp) run in the suite without libFuzzer, with the suite's
# compiler and sanitizers: every tracked corpus file, each of its truncations and single-byte
# mutations, through every harness. Fuzzing proper (clang, -DSPARSENM_FUZZ=ON) is in fuzz/.
add_executable(fuzz_replay ${PROJECT_SOURCE_DIR}/fuzz/replay.cpp)
target_link_libraries(fuzz_replay PRIVATE sparsenm sparsenm_dev_flags)
add_test(NAME io_fuzz_replay
         COMMAND fuzz_replay ${PROJECT_SOURCE_DIR}/fuzz/corpus/npy
                 ${PROJECT_SOURCE_DIR}/fuzz/corpus/safetensors
                 ${PROJECT_SOURCE_DIR}/fuzz/corpus/checkpoint)
# The harnesses write a scratch file for some inputs (the file-path loaders): in memory where there
# is one, since on a busy disk those small writes took the run from 0.7 s to 5.5 s.
if(EXISTS /dev/shm)
  set_tests_properties(io_fuzz_replay PROPERTIES ENVIRONMENT "TMPDIR=/dev/shm")
endif()
