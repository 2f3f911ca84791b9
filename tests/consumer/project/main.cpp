// A user's program: includes the umbrella, uses the package, checks one known answer.
#include <cstdio>
#include <sparsenm/sparsenm.hpp>

int main() {
  // Random123 known answer for Philox4x32-10 with counter = key = 0.
  const auto block = sparsenm::Philox::philox4x32_10({0, 0, 0, 0}, {0, 0});
  if (block[0] != 0x6627e8d5u) return 1;
  try {
    sparsenm::check_nm(sparsenm::NM{5, 4});
    return 2;
  } catch (const sparsenm::Error&) {
  }
  std::printf("consumer OK: sparsenm %s, %d thread(s)\n", SPARSENM_VERSION_STRING,
              sparsenm::thread_count());
  return 0;
}
