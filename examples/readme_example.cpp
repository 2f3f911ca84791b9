// The README's usage example (kept compiling by the build).
#include <iostream>

#include <sparsenm/sparsenm.hpp>

int main() {
  using namespace sparsenm;
  const Philox rng(42);
  Matrix<float> w(8, 16);
  for (Index i = 0; i < w.size(); ++i) w.data()[i] = float(rng.uniform(i) - 0.5);
  std::cout << "sparsenm " << SPARSENM_VERSION_STRING << ", first weight " << w(0, 0) << '\n';
  return 0;
}
