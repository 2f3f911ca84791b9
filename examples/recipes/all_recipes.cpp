// SPDX-License-Identifier: Apache-2.0
// Every recipe in one program for the test suite: `recipes METHOD [ARGS...]` runs that recipe's
// main(). One translation unit instead of seven keeps CI's build time down (the compressed
// recipes share SparseTrainer's instantiation); each recipe file is still a complete program on
// its own (`cmake --build build --target recipe_chts24`, or any compiler with -I include).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "task.hpp"  // every header the recipes include, before `main` is renamed below

#define main recipe_dense_main
#include "dense.cpp"
#undef main
#define main recipe_ste_main
#include "ste.cpp"
#undef main
#define main recipe_adams_main
#include "adams.cpp"
#undef main
#define main recipe_chts24_main
#include "chts24.cpp"
#undef main
#define main recipe_chtsnm_main
#include "chtsnm.cpp"
#undef main
#define main recipe_edsrt_main
#include "edsrt.cpp"
#undef main
#define main recipe_sparseforge_main
#include "sparseforge.cpp"
#undef main

int main(int argc, char** argv) {
  struct Entry {
    const char* name;
    int (*run)(int, char**);
  };
  const Entry recipes[] = {
      {"dense", [](int, char**) { return recipe_dense_main(); }},
      {"ste", recipe_ste_main},
      {"adams", [](int, char**) { return recipe_adams_main(); }},
      {"chts24", recipe_chts24_main},
      {"chtsnm", recipe_chtsnm_main},
      {"edsrt", [](int, char**) { return recipe_edsrt_main(); }},
      {"sparseforge", [](int, char**) { return recipe_sparseforge_main(); }},
  };
  for (const Entry& r : recipes)
    if (argc > 1 && std::strcmp(argv[1], r.name) == 0) return r.run(argc - 1, argv + 1);
  std::fprintf(stderr, "usage: recipes dense|ste|adams|chts24|chtsnm|edsrt|sparseforge [ARGS]\n");
  return 2;
}
