// A user's program: includes the umbrella, uses the package, checks one known answer, and prints
// fingerprints of the hot kernels' results. run_consumer.cmake requires the plain build (runtime
// dispatch) and the sparsenm::native build to print the same fingerprints: the same results.
#include <cstdint>
#include <cstdio>
#include <sparsenm/sparsenm.hpp>

namespace {
// FNV-1a over the bytes of a dense Eigen object.
template <class M>
std::uint64_t fingerprint(const M& m) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(m.data());
  for (std::size_t i = 0; i < sizeof(typename M::Scalar) * std::size_t(m.size()); ++i)
    h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
}  // namespace

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
  // Results of the dispatched kernels (projections, sampling, CH scores, SpMM / SpMM^T / SDDMM,
  // compressed Adam): the same bits whether the AVX-512 bodies were compiled by -march or by the
  // runtime-dispatch pass.
  using sparsenm::Matrix;
  const Matrix<float> w = sparsenm::uniform_matrix<float>(64, 128, sparsenm::Philox(7));
  const sparsenm::Mask rows = sparsenm::project_rowwise(w, sparsenm::NM{1, 4});
  const sparsenm::Mask blocks = sparsenm::project_transposable(w, sparsenm::NM{2, 4});
  const Matrix<float> fr = sparsenm::frechet_scores(w, 0.5f, sparsenm::Philox(8));
  const Matrix<double> ch = sparsenm::ch2_l3n_scores<double>(rows);
  auto c = sparsenm::compress(w, rows, sparsenm::NM{1, 4});
  const Matrix<float> x = sparsenm::uniform_matrix<float>(40, 128, sparsenm::Philox(9));
  const Matrix<float> dy = sparsenm::uniform_matrix<float>(40, 64, sparsenm::Philox(10));
  const Matrix<float> y = sparsenm::spmm(x, c), dx = sparsenm::spmm_transposed(dy, c);
  const Matrix<float> dw = sparsenm::sddmm(dy, x, c);
  sparsenm::Adam<float> adam(c);
  for (int t = 0; t < 3; ++t) adam.step(c, dw);
  std::printf("fingerprints: masks %016llx %016llx frechet %016llx ch %016llx\n",
              (unsigned long long)fingerprint(rows), (unsigned long long)fingerprint(blocks),
              (unsigned long long)fingerprint(fr), (unsigned long long)fingerprint(ch));
  std::printf("fingerprints: spmm %016llx spmm_t %016llx sddmm %016llx adam %016llx\n",
              (unsigned long long)fingerprint(y), (unsigned long long)fingerprint(dx),
              (unsigned long long)fingerprint(dw), (unsigned long long)fingerprint(c.values));
  std::printf("consumer OK: sparsenm %s, %d thread(s); %s\n", SPARSENM_VERSION_STRING,
              sparsenm::thread_count(), sparsenm::isa_report().c_str());
  return 0;
}
