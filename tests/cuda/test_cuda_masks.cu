// SPDX-License-Identifier: Apache-2.0
// Device selection, perturbation and CH-L3n scores against their CPU counterparts on fresh random
// inputs: masks and uniform perturbation identical bit for bit, Fréchet bit-identical in float
// (<= 16 ulp in double), CH2-L3n within 1e-5 relative (fp32) plus the worked example of
// ALGORITHMS.md (closed form).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include <sparsenm/cuda.cuh>
#include <sparsenm/mask.hpp>
#include <sparsenm/sampling.hpp>
#include <sparsenm/topology.hpp>

#include "cuda/cuda_test_util.cuh"

namespace {

using sparsenm::Index;
using sparsenm::Mask;
using sparsenm::Matrix;
using sparsenm::NM;
using sparsenm::Philox;
namespace sc = sparsenm::cuda;
namespace st = sparsenm::test;

template <class S>
class CudaMaskTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CudaMaskTyped, Scalars);

TYPED_TEST(CudaMaskTyped, RowwiseEqualsCpuOnRandomAndTiedScores) {
  using S = TypeParam;
  const NM cases[] = {{2, 4}, {1, 4}, {3, 4}, {4, 8}, {2, 8}, {3, 7}, {5, 16}, {1, 1}};
  std::uint64_t seed = 100;
  for (NM nm : cases) {
    for (int tied = 0; tied < 2; ++tied) {
      const Index rows = 37, cols = Index(nm.m) * 23;
      const Matrix<S> s =
          tied ? st::tied_matrix<S>(rows, cols, ++seed) : st::random_matrix<S>(rows, cols, ++seed);
      const Mask cpu = sparsenm::project_rowwise(s, nm);
      const Mask gpu = sc::project_rowwise(s, nm);
      ASSERT_TRUE(gpu == cpu) << "nm = " << nm << " tied = " << tied;
      ASSERT_TRUE(sparsenm::is_rowwise_legal(gpu, nm));
    }
  }
}

TYPED_TEST(CudaMaskTyped, TransposableEqualsCpuOnRandomAndTiedScores) {
  using S = TypeParam;
  std::uint64_t seed = 200;
  for (int n = 1; n <= 4; ++n) {
    const NM nm{n, 4};
    for (int tied = 0; tied < 2; ++tied) {
      const Index rows = 4 * 19, cols = 4 * 33;
      const Matrix<S> s = tied ? st::tied_matrix<S>(rows, cols, ++seed, 3)
                               : st::random_matrix<S>(rows, cols, ++seed);
      const Mask cpu = sparsenm::project_transposable(s, nm);
      const Mask gpu = sc::project_transposable(s, nm);
      ASSERT_TRUE(gpu == cpu) << "nm = " << nm << " tied = " << tied;
      ASSERT_TRUE(sparsenm::is_transposable_legal(gpu, nm));
    }
  }
}

TEST(CudaMask, TransposableBruteForceOnSmallTiles) {
  // Independent reference: every legal tile of the library scored in double.
  const Matrix<float> s = st::random_matrix<float>(8, 8, 9);
  const Mask gpu = sc::project_transposable(s, NM{2, 4});
  const auto& lib = sparsenm::TransposablePatterns<4, 2>::all();
  ASSERT_EQ(lib.size(), 90u);
  for (int tr = 0; tr < 2; ++tr)
    for (int tc = 0; tc < 2; ++tc) {
      double best = -1e300;
      std::uint64_t arg = 0;
      for (std::uint64_t p : lib) {
        double sum = 0;
        for (int k = 0; k < 16; ++k)
          if ((p >> k) & 1u) sum += s(4 * tr + k / 4, 4 * tc + k % 4);
        if (sum > best) best = sum, arg = p;
      }
      for (int k = 0; k < 16; ++k)
        EXPECT_EQ(int(gpu(4 * tr + k / 4, 4 * tc + k % 4)), int((arg >> k) & 1u));
    }
}

TEST(CudaMask, DevicePointerApiPoisonedOutputFullyWritten) {
  const Index rows = 64, cols = 128;
  const Matrix<float> s = st::random_matrix<float>(rows, cols, 31);
  auto d_s = sc::to_device(s);
  sc::DeviceBuffer<std::uint8_t> d_m(std::size_t(rows * cols));
  d_m.fill_bytes(0xAB);
  sc::Stream stream;
  sc::project_rowwise(d_s.data(), rows, cols, NM{2, 4}, d_m.data(), stream);
  std::vector<std::uint8_t> h = d_m.to_host(stream);
  Mask cpu = sparsenm::project_rowwise(s, NM{2, 4});
  for (Index k = 0; k < rows * cols; ++k) ASSERT_EQ(h[std::size_t(k)], cpu.data()[k]);
}

TEST(CudaMask, BadInputThrowsNamingTheArgument) {
  Matrix<float> s = st::random_matrix<float>(8, 10, 3);
  EXPECT_THROW(sc::project_rowwise(s, NM{2, 4}), sparsenm::Error);  // 10 % 4 != 0
  EXPECT_THROW(sc::project_rowwise(s, NM{5, 4}), sparsenm::Error);
  Matrix<float> t = st::random_matrix<float>(8, 8, 4);
  EXPECT_THROW(sc::project_transposable(t, NM{2, 8}), sparsenm::Error);  // m = 4 only
  t(3, 5) = std::numeric_limits<float>::quiet_NaN();
  try {
    sc::project_rowwise(t, NM{2, 4});
    FAIL() << "NaN must throw";
  } catch (const sparsenm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("scores(3, 5)"), std::string::npos) << e.what();
  }
  t(3, 5) = std::numeric_limits<float>::infinity();
  EXPECT_THROW(sc::project_transposable(t, NM{2, 4}), sparsenm::Error);  // Inf: like the CPU
  EXPECT_NO_THROW(sc::project_rowwise(t, NM{2, 4}));                     // Inf is ordered
}

TEST(CudaMask, CudaFailureBecomesCudaErrorWithCode) {
  try {
    sc::DeviceBuffer<float> huge(std::size_t(1) << 45);  // 128 TiB
    FAIL() << "allocation must fail";
  } catch (const sc::Error& e) {
    EXPECT_NE(e.code(), 0);
    EXPECT_NE(std::string(e.what()).find("cudaMalloc"), std::string::npos) << e.what();
  }
  (void)cudaGetLastError();
}

TYPED_TEST(CudaMaskTyped, UniformPerturbBitIdentical) {
  using S = TypeParam;
  const Matrix<S> s = st::random_matrix<S>(53, 71, 41);  // odd size: vector body + tail
  const Philox rng(1234, 5);
  const Matrix<S> cpu = sparsenm::uniform_perturb(s, rng);
  const Matrix<S> gpu = sc::uniform_perturb(s, rng);
  for (Index k = 0; k < s.size(); ++k) ASSERT_EQ(gpu.data()[k], cpu.data()[k]) << k;
}

/// Host replica of the float Fréchet pipeline (sampling/detail/frechet_math.hpp) written with
/// other primitives (frexp, nearbyint, ldexp): the device must reproduce it bit for bit.
float replica_log2(float x) {
  int ex = 0;
  float m = std::frexp(x, &ex) * 2.0f;  // [1, 2)
  float e = float(ex - 1);
  if (m >= 1.41421354f) m *= 0.5f, e += 1.0f;  // the float 0x3fb504f3
  volatile float f = m - 1.0f;
  float p = 1.258364618e-01f;
  for (float c : {-2.072694749e-01f, 2.157156914e-01f, -2.389448583e-01f, 2.879162431e-01f,
                  -3.607036769e-01f, 4.809106290e-01f, -7.213473320e-01f, 1.442695022e+00f})
    p = std::fma(p, f, c);
  return std::fma(f, p, e);
}
float replica_exp2(float x) {
  x = std::min(std::max(x, -165.0f), 145.0f);
  const float n = std::nearbyint(x);
  volatile float f = x - n;
  float q = 1.540351077e-04f;
  for (float c :
       {1.339073526e-03f, 9.618237615e-03f, 5.550357327e-02f, 2.402264923e-01f, 6.931471825e-01f})
    q = std::fma(q, f, c);
  return std::ldexp(std::fma(f, q, 1.0f), int(n));
}

TYPED_TEST(CudaMaskTyped, FrechetMatchesCpu) {
  using S = TypeParam;
  Matrix<S> w = st::random_matrix<S>(61, 64, 43);  // cols % 16 == 0: the CPU's vector path
  w(0, 0) = S(0);                                  // exact zero scores 0
  const Philox rng(99, 1);
  // T = 0.05 takes the kernel with exp2's clamp and range test (scores overflow to +Inf or
  // underflow there); the others the one without.
  for (double T : {0.5, 1.0, 3.0, 9.0, 0.05}) {
    const Matrix<S> cpu = sparsenm::frechet_scores<S>(w, S(T), rng);
    const Matrix<S> gpu = sc::frechet_scores(w, T, rng);
    long long worst = 0;
    for (Index k = 0; k < w.size(); ++k)
      worst = std::max(worst, st::ulp_distance(gpu.data()[k], cpu.data()[k]));
    if (std::is_same<S, float>::value) {
      // Bit for bit against the replica of the CPU's AVX-512 formula ...
      volatile float neg_it = -float(1.0 / T);
      volatile float shift = neg_it * -5.287663937e-01f;  // -(1/T) log2(ln 2)
      for (Index k = 0; k < w.size(); ++k) {
        const float a = std::abs(float(w.data()[k]));
        const float u = rng.uniform_float(std::uint64_t(k));
        const float arg = std::fma(neg_it, replica_log2(-replica_log2(u)), shift);
        volatile float want = a == 0.0f ? 0.0f : a * replica_exp2(arg);
        ASSERT_EQ(float(gpu.data()[k]), float(want)) << "T = " << T << " k = " << k;
      }
      // ... and so against sparsenm::frechet_scores itself (scalar or AVX-512 path alike).
      EXPECT_EQ(worst, 0) << "T = " << T;
    } else {  // CUDA's double log/exp are within 1 ulp of glibc's; log(-log U) amplifies that
      EXPECT_LE(worst, T < 0.1 ? 320 : 16) << "T = " << T;  // 1/T scales the difference
    }
    EXPECT_EQ(gpu(0, 0), S(0));
    // Same removal decision: the projections of the scores agree.
    EXPECT_TRUE(sparsenm::project_rowwise(gpu, NM{2, 4}) ==
                sparsenm::project_rowwise(cpu, NM{2, 4}));
  }
  w(2, 3) = std::numeric_limits<S>::infinity();
  EXPECT_THROW(sc::frechet_scores(w, 1.0, rng), sparsenm::Error);
  EXPECT_THROW(sc::frechet_scores(w, 0.0, rng), sparsenm::Error);
}

TEST(CudaChScores, WorkedExampleClosedForm) {
  Mask m(5, 6);
  m << 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 0;
  Matrix<double> want(5, 6);
  want << 0, 0, 5.5, 0, 9.5, 8.0, 7.666666666666667, 0, 0, 9.166666666666667, 0, 6.166666666666667,
      0, 13.5, 0, 0, 10.5, 0, 13.5, 0, 9.5, 0, 0, 0, 0, 6.666666666666667, 3.666666666666667,
      6.333333333333333, 0, 3.333333333333333;
  const Matrix<double> gd = sc::ch2_l3n_scores<double>(m);
  EXPECT_LT(st::max_rel_err(gd, want, 1e-12), 1e-12);
  const Matrix<float> gf = sc::ch2_l3n_scores<float>(m);
  EXPECT_LT(st::max_rel_err(gf, want, 1e-9), 1e-6);
}

TYPED_TEST(CudaMaskTyped, ChScoresMatchCpuOnRandomMasks) {
  using S = TypeParam;
  const Philox rng(77);
  for (auto shape : {std::pair<Index, Index>{96, 128}, {160, 64}}) {
    Mask m = sparsenm::random_rowwise(shape.first, shape.second, NM{2, 4}, rng.split(shape.first));
    // remove a few links (the refresh scores the mask after removal)
    for (Index k = 0; k < m.size(); k += 7) m.data()[k] = 0;
    for (auto rule : {sparsenm::ChRule::Ch2L3n, sparsenm::ChRule::Ch3L3n}) {
      const Matrix<S> cpu = sparsenm::ch_l3n_scores<S>(m, rule);
      const Matrix<S> gpu = sc::ch2_l3n_scores<S>(m, rule);
      const double tol = std::is_same<S, float>::value ? 1e-5 : 1e-12;
      EXPECT_LT(st::max_rel_err(gpu, cpu, 1e-6), tol);
    }
  }
  Mask bad = Mask::Zero(4, 4);
  bad(1, 1) = 2;
  EXPECT_THROW(sc::ch2_l3n_scores<S>(bad), sparsenm::Error);
}

}  // namespace
