# SPDX-License-Identifier: Apache-2.0
# Checks that every code block the documentation marks with <!-- snippet: PATH --> is the file
# PATH verbatim (without its SPDX line), so the guide never shows code the build does not
# compile. Run: cmake -DROOT=<source dir> -P docs/check_snippets.cmake (ctest: docs_snippets_in_sync).
# docs/sync_snippets.py rewrites the blocks from the files.
file(GLOB _docs "${ROOT}/docs/*.md")
list(APPEND _docs "${ROOT}/README.md")
set(_bad 0)
set(_count 0)
foreach(_doc IN LISTS _docs)
  file(READ "${_doc}" _text)
  string(REGEX MATCHALL "<!-- snippet: [^ ]+ -->" _marks "${_text}")
  foreach(_mark IN LISTS _marks)
    string(REGEX REPLACE "<!-- snippet: ([^ ]+) -->" "\\1" _path "${_mark}")
    file(READ "${ROOT}/${_path}" _code)
    string(REGEX REPLACE "^// SPDX-License-Identifier: [^\n]*\n" "" _code "${_code}")
    string(FIND "${_text}" "${_mark}\n```cpp\n${_code}```" _at)
    math(EXPR _count "${_count} + 1")
    if(_at EQUAL -1)
      message(SEND_ERROR "${_doc}: the block after '${_mark}' is not ${_path} verbatim "
                         "(run python3 docs/sync_snippets.py)")
      set(_bad 1)
    endif()
  endforeach()
endforeach()
if(_count EQUAL 0)
  message(FATAL_ERROR "no snippet markers found")
endif()
if(NOT _bad)
  message(STATUS "${_count} snippets in sync")
endif()
