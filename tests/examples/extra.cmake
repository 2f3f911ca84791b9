# SPDX-License-Identifier: Apache-2.0
# End-to-end checks of examples/fashion_mnist (needs the example target and the Fashion-MNIST
# files of Debian's dataset-fashion-mnist package; skipped when either is missing):
#   example_smoke         every method, one epoch on 2,000 training images (a few seconds)
#   example_masks_legal   every exported mask is legal for its N:M and layout (C++ checker)
#   example_numpy_eval    numpy evaluates each exported model: same test accuracy to 0.1 point;
#                         SKIPPED (not passed) when /usr/bin/python3 or numpy is missing
set(_fm_data "/usr/share/datasets/fashion-mnist")
# (tests/ is added before examples/, so test for the option, not for the target.)
if(SPARSENM_BUILD_EXAMPLES AND EXISTS "${_fm_data}/t10k-labels-idx1-ubyte.gz")
  set(_fm_out "${CMAKE_CURRENT_BINARY_DIR}/example_smoke")
  set(_fm_methods dense ste srste adams chts24 chtsnm chtsnm-lora edsrt sparseforge)
  list(JOIN _fm_methods "," _fm_method_list)
  add_test(NAME example_smoke
           COMMAND fashion_mnist --method ${_fm_method_list} --epochs 1 --train-limit 2000
                   --test-limit 1000 --batch 500 --tans-batch 1000 --out ${_fm_out}
                   --data ${_fm_data})
  set_tests_properties(example_smoke PROPERTIES FIXTURES_SETUP fashion_mnist_export
                       ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 300)

  add_executable(check_export "${CMAKE_CURRENT_LIST_DIR}/tools/check_export.cpp")
  target_link_libraries(check_export PRIVATE sparsenm_dev)
  add_test(NAME example_masks_legal COMMAND check_export ${_fm_out} ${_fm_methods})
  set_tests_properties(example_masks_legal PROPERTIES FIXTURES_REQUIRED fashion_mnist_export)

  # Results depend only on the seed (and the ISA route): the exported models of a short run are
  # byte-identical for --threads 1/2 x OPENBLAS_NUM_THREADS 1/2 (core/blas.hpp's thread policy).
  set(_fm_inv "${CMAKE_CURRENT_BINARY_DIR}/example_threads")
  add_test(NAME example_thread_invariance
           COMMAND sh -c "set -e; for t in 1 2; do for b in 1 2; do \
OPENBLAS_NUM_THREADS=$b OMP_NUM_THREADS=2 $0 --method dense,ste,chts24,chtsnm-lora --epochs 1 \
--train-limit 1500 --test-limit 500 --batch 250 --tans-batch 500 --threads $t \
--out $1/t$t-b$b --data $2 > /dev/null; done; done; \
for f in $1/t1-b1/*/model.safetensors; do m=\${f#$1/t1-b1/}; \
for c in t1-b2 t2-b1 t2-b2; do cmp $f $1/$c/$m; done; done; echo identical"
                   $<TARGET_FILE:fashion_mnist> ${_fm_inv} ${_fm_data})
  set_tests_properties(example_thread_invariance PROPERTIES TIMEOUT 300)

  # /usr/bin/python3 is Debian's, which has numpy (python3-numpy); a PATH python3 may not.
  find_program(SPARSENM_SYSTEM_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT SPARSENM_SYSTEM_PYTHON3)
    find_program(SPARSENM_SYSTEM_PYTHON3 python3)
  endif()
  if(SPARSENM_SYSTEM_PYTHON3)
    add_test(NAME example_numpy_eval
             COMMAND ${SPARSENM_SYSTEM_PYTHON3} "${CMAKE_CURRENT_LIST_DIR}/eval_numpy.py" ${_fm_out}
                     ${_fm_data} ${_fm_methods})
  else()
    add_test(NAME example_numpy_eval COMMAND sh -c "echo 'no python3: skipping'; exit 77")
  endif()
  set_tests_properties(example_numpy_eval PROPERTIES FIXTURES_REQUIRED fashion_mnist_export
                       SKIP_RETURN_CODE 77)
endif()

# tiny_llama (issue 20; needs Debian's fortunes text, skipped without it):
#   example_llama_smoke            every method, a few steps of a tiny decoder (seconds)
#   example_llama_manifest_numpy   numpy rebuilds each exported model from manifest.json alone:
#                                  the same perplexity on the same validation windows (1e-3),
#                                  .npy == safetensors, weights zero off legal N:M masks
#   example_llama_missing_corpus   a missing corpus names the apt-get line
if(SPARSENM_BUILD_EXAMPLES AND EXISTS "/usr/share/games/fortunes/fortunes")
  set(_tl_out "${CMAKE_CURRENT_BINARY_DIR}/example_llama")
  set(_tl_methods dense ste srste chts24 chtsnm chtsnm-lora chtsnm-adam chtsnm-nompr
                  post-magnitude post-ste post-cast post-sparseforge)
  add_test(NAME example_llama_smoke
           COMMAND tiny_llama --method all --steps 10 --post-steps 20 --batch 2 --d-model 16
                   --layers 1 --heads 2 --hidden 32 --context 16 --eval-tokens 256 --evals 1
                   --out ${_tl_out})
  set_tests_properties(example_llama_smoke PROPERTIES FIXTURES_SETUP tiny_llama_export
                       ENVIRONMENT "OMP_NUM_THREADS=2" TIMEOUT 300)
  find_program(SPARSENM_SYSTEM_PYTHON3 python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(SPARSENM_SYSTEM_PYTHON3)
    add_test(NAME example_llama_manifest_numpy
             COMMAND ${SPARSENM_SYSTEM_PYTHON3} "${CMAKE_CURRENT_LIST_DIR}/llama_numpy.py"
                     ${_tl_out} ${_tl_methods})
  else()
    add_test(NAME example_llama_manifest_numpy COMMAND sh -c "echo 'no python3: skipping'; exit 77")
  endif()
  set_tests_properties(example_llama_manifest_numpy PROPERTIES
                       FIXTURES_REQUIRED tiny_llama_export SKIP_RETURN_CODE 77)
  add_test(NAME example_llama_missing_corpus
           COMMAND tiny_llama --corpus /nonexistent/corpus.txt --out ${_tl_out}-missing)
  set_tests_properties(example_llama_missing_corpus PROPERTIES
                       PASS_REGULAR_EXPRESSION "apt-get install fortunes")
endif()
