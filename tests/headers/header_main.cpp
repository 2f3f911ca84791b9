// Links every header's translation unit into one program and checks the count was not empty.
#include <cstdio>
#include <sparsenm/version.hpp>
int header_umbrella_a();
int header_umbrella_b();
int main() {
  std::printf("sparsenm %s: %d public headers compiled standalone and linked together\n",
              SPARSENM_VERSION_STRING, SPARSENM_HEADER_COUNT);
  return (SPARSENM_HEADER_COUNT > 10 && header_umbrella_a() == 1 && header_umbrella_b() == 1) ? 0
                                                                                              : 1;
}
