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
  // 2:4 projection keeps the two largest of each group of four (ties to the lower index).
  sparsenm::Matrix<float> scores(1, 8);
  scores << 0.1f, 0.9f, 0.5f, 0.2f, 3.0f, 1.0f, 1.0f, 0.0f;
  const sparsenm::Mask mask = sparsenm::project_rowwise(scores, sparsenm::NM{2, 4});
  const int expected[8] = {0, 1, 1, 0, 1, 1, 0, 0};
  for (int j = 0; j < 8; ++j)
    if (mask(0, j) != expected[j]) return 3;
#if SPARSENM_RUNTIME_DISPATCH
  // Built without -march, yet the kernels are the widest the CPU runs (runtime dispatch).
  if (sparsenm::active_isa() != sparsenm::runtime_isa()) return 5;
#endif
#if defined(CONSUMER_EXPECT_NATIVE)
  // sparsenm::native compiles for this CPU, so the kernels are the widest the CPU runs.
  if (sparsenm::compiled_isa() != sparsenm::runtime_isa()) return 4;
#endif
  std::printf("consumer OK: sparsenm %s, %d thread(s); %s\n", SPARSENM_VERSION_STRING,
              sparsenm::thread_count(), sparsenm::isa_report().c_str());
  return 0;
}
