// SPDX-License-Identifier: Apache-2.0
// Runtime ISA dispatch (core/detail/isa_passes.inc): this file is compiled WITHOUT -march, as a
// user's plain `-O2` program would be, so its kernels are the scalar build plus the AVX2 and
// AVX-512 bodies compiled under `#pragma GCC target`. Every public entry point with a SIMD kernel
// is run on each route the CPU has (set_active_isa) and compared with the scalar route of the same
// binary: bit for bit where the kernels are exact (masks, uniforms, Rademacher signs, CH scores),
// within a stated relative bound where the SIMD route sums in another order (SpMM, SDDMM), uses
// its own exp2/log2 polynomials (Fréchet scores) or fused multiply-adds (Adam).
#include <gtest/gtest.h>

#include <sparsenm/core.hpp>
#include <sparsenm/hessian.hpp>
#include <sparsenm/kernels.hpp>
#include <sparsenm/mask.hpp>
#include <sparsenm/optim.hpp>
#include <sparsenm/sampling.hpp>
#include <sparsenm/topology.hpp>

#include <vector>

using namespace sparsenm;

namespace {

std::vector<SimdIsa> routes() {
  std::vector<SimdIsa> r;
  for (SimdIsa isa : {SimdIsa::Avx2, SimdIsa::Avx512})
    if (static_cast<int>(isa) <= static_cast<int>(runtime_isa())) r.push_back(isa);
  return r;
}

struct IsaGuard {
  SimdIsa saved = active_isa();
  ~IsaGuard() { set_active_isa(saved); }
};

// Runs f() on the scalar route and on every SIMD route; check(ref, got, isa) compares.
template <class F, class C>
void on_every_route(F&& f, C&& check) {
  IsaGuard guard;
  set_active_isa(SimdIsa::Scalar);
  const auto ref = f();
  for (SimdIsa isa : routes()) {
    set_active_isa(isa);
    check(ref, f(), isa);
  }
}

template <class S>
Matrix<S> random_matrix(Index rows, Index cols, std::uint64_t seed) {
  return uniform_matrix<S>(rows, cols, Philox(seed)).array() * S(2) - S(1);
}

template <class A, class B>
double max_rel_diff(const A& a, const B& b) {
  const double scale = std::max(1e-30, double(a.template cast<double>().cwiseAbs().maxCoeff()));
  return double((a.template cast<double>() - b.template cast<double>()).cwiseAbs().maxCoeff()) /
         scale;
}

}  // namespace

TEST(Dispatch, PlainBuildRunsTheWidestRouteOfTheCpu) {
  EXPECT_EQ(compiled_isa(), SimdIsa::Scalar) << "this test must be compiled without -march";
  EXPECT_TRUE(SPARSENM_RUNTIME_DISPATCH);
  EXPECT_EQ(dispatchable_isa(), SimdIsa::Avx512);
  if (std::getenv("SPARSENM_FORCE_ISA") == nullptr) {
    EXPECT_EQ(active_isa(), runtime_isa());
  }
  EXPECT_NE(isa_report().find("runtime dispatch"), std::string::npos) << isa_report();
}

TEST(Dispatch, SetActiveIsaRejectsWhatTheCpuLacks) {
  IsaGuard guard;
  EXPECT_NO_THROW(set_active_isa(SimdIsa::Scalar));
  EXPECT_EQ(active_isa(), SimdIsa::Scalar);
  if (runtime_isa() != SimdIsa::Avx512) {
    EXPECT_THROW(set_active_isa(SimdIsa::Avx512), Error);
  }
}

TEST(Dispatch, RowwiseAndTransposableProjectionAreExactOnEveryRoute) {
  const Matrix<float> sf = random_matrix<float>(40, 96, 1);
  const Matrix<double> sd = random_matrix<double>(24, 64, 2);
  for (NM nm : {NM{1, 4}, NM{2, 4}, NM{2, 8}}) {
    on_every_route([&] { return project_rowwise(sf, nm); },
                   [&](const Mask& ref, const Mask& got, SimdIsa isa) {
                     EXPECT_EQ(ref, got) << nm.n << ":" << nm.m << " " << to_string(isa);
                   });
    on_every_route([&] { return project_rowwise(sd, nm); },
                   [&](const Mask& ref, const Mask& got, SimdIsa isa) {
                     EXPECT_EQ(ref, got) << nm.n << ":" << nm.m << " " << to_string(isa);
                   });
  }
  for (NM nm : {NM{1, 4}, NM{2, 4}})
    on_every_route([&] { return project_transposable(sf, nm); },
                   [&](const Mask& ref, const Mask& got, SimdIsa isa) {
                     EXPECT_EQ(ref, got) << nm.n << ":" << nm.m << " " << to_string(isa);
                     EXPECT_TRUE(is_transposable_legal(got, nm));
                   });
}

TEST(Dispatch, UniformsRademacherAndFrechetScores) {
  on_every_route([] { return uniform_matrix<float>(33, 70, Philox(7)); },
                 [](const Matrix<float>& ref, const Matrix<float>& got, SimdIsa isa) {
                   EXPECT_EQ(ref, got) << to_string(isa);
                 });
  on_every_route([] { return uniform_matrix<double>(17, 45, Philox(8)); },
                 [](const Matrix<double>& ref, const Matrix<double>& got, SimdIsa isa) {
                   EXPECT_EQ(ref, got) << to_string(isa);
                 });
  on_every_route(
      [] {
        Matrix<float> v(19, 64);
        HutchinsonDiagonal<float>::rademacher_probe(Philox(9), 3, v);
        return v;
      },
      [](const Matrix<float>& ref, const Matrix<float>& got, SimdIsa isa) {
        EXPECT_EQ(ref, got) << to_string(isa);
      });
  const Matrix<float> w = random_matrix<float>(16, 80, 10);
  on_every_route([&] { return frechet_scores(w, 0.5f, Philox(11)); },
                 [](const Matrix<float>& ref, const Matrix<float>& got, SimdIsa isa) {
                   // exp2/log2 polynomials of the SIMD route: a few float ulps of relative error.
                   EXPECT_LT(max_rel_diff(ref, got), 1e-5) << to_string(isa);
                 });
}

TEST(Dispatch, SpmmSpmmTransposedAndSddmm) {
  for (NM nm : {NM{1, 4}, NM{2, 4}}) {
    const Matrix<float> w = random_matrix<float>(48, 64, 20);
    const Mask mask = project_rowwise(w.cwiseAbs(), nm);
    const auto c = compress(w, mask, nm);
    const Matrix<float> x = random_matrix<float>(37, 64, 21);
    const Matrix<float> dy = random_matrix<float>(37, 48, 22);
    const Matrix<float> dense = decompress(c);
    // Independent reference: the dense products in double.
    const Matrix<double> y_ref = x.cast<double>() * dense.cast<double>().transpose();
    const Matrix<double> dx_ref = dy.cast<double>() * dense.cast<double>();
    on_every_route([&] { return spmm(x, c); },
                   [&](const Matrix<float>& ref, const Matrix<float>& got, SimdIsa isa) {
                     EXPECT_LT(max_rel_diff(y_ref, got), 1e-5) << to_string(isa);
                     EXPECT_LT(max_rel_diff(ref, got), 1e-5) << to_string(isa);
                   });
    on_every_route([&] { return spmm_transposed(dy, c); },
                   [&](const Matrix<float>& ref, const Matrix<float>& got, SimdIsa isa) {
                     EXPECT_LT(max_rel_diff(dx_ref, got), 1e-5) << to_string(isa);
                     EXPECT_LT(max_rel_diff(ref, got), 1e-5) << to_string(isa);
                   });
    on_every_route([&] { return Matrix<float>(sddmm(dy, x, c)); },
                   [&](const Matrix<float>& ref, const Matrix<float>& got, SimdIsa isa) {
                     EXPECT_LT(max_rel_diff(ref, got), 1e-5) << to_string(isa);
                   });
  }
}

// Newton-Schulz: the AVX-512 route runs the packed GEMM (half products of symmetric factors), the
// others Eigen's products. Reference: the iteration X <- a X + (b A + c A^2) X, A = X X^T, in
// double with plain Eigen products (chtsnm App. C, Table A4). 40 x 72 takes the square-side
// iteration, 24 x 96 the Gram form (long side >= 2 x short side).
TEST(Dispatch, NewtonSchulzOnEveryRouteMatchesTheDoubleIteration) {
  for (const auto& shape : {std::pair<Index, Index>{40, 72}, std::pair<Index, Index>{96, 24}}) {
    const Matrix<float> x = random_matrix<float>(shape.first, shape.second, 50);
    Matrix<double> ref = x.cast<double>() / (x.cast<double>().norm() + kNsNormEps);
    const bool wide = ref.rows() <= ref.cols();
    for (int t = 0; t < 5; ++t) {
      const NsTriple tr = ns_coefficients(NsCoefficients::TansTableA4, t);
      if (wide) {
        const Matrix<double> a = ref * ref.transpose();
        ref = (tr.a * ref + (tr.b * a + tr.c * a * a) * ref).eval();
      } else {
        const Matrix<double> a = ref.transpose() * ref;
        ref = (tr.a * ref + ref * (tr.b * a + tr.c * a * a)).eval();
      }
    }
    on_every_route([&] { return newton_schulz(x); },
                   [&](const Matrix<float>& scalar, const Matrix<float>& got, SimdIsa isa) {
                     EXPECT_EQ(detail::ns_packed_route(), isa == SimdIsa::Avx512);
                     EXPECT_LT(max_rel_diff(ref, got), 2e-5) << to_string(isa);
                     EXPECT_LT(max_rel_diff(ref, scalar), 2e-5);
                   });
    if (runtime_isa() == SimdIsa::Avx512) {  // the packed route: same bits for 1 and 2 threads
      IsaGuard guard;
      set_active_isa(SimdIsa::Avx512);
      const int saved = thread_count();
      set_thread_count(1);
      const Matrix<float> one = newton_schulz(x);
      set_thread_count(2);
      const Matrix<float> two = newton_schulz(x);
      set_thread_count(saved);
      EXPECT_EQ(one, two);
    }
  }
}

TEST(Dispatch, ChScoresAreExactOnEveryRoute) {
  // 512 x 512: large enough for the interleaved Gram route, whose scratch has only the
  // translation unit's Eigen alignment (16 bytes in this plain build).
  const Mask big = random_rowwise(512, 512, NM{1, 4}, Philox(31));
  on_every_route([&] { return ch2_l3n_scores<float>(big); },
                 [](const Matrix<float>& ref, const Matrix<float>& got, SimdIsa isa) {
                   EXPECT_EQ(ref, got) << to_string(isa);
                 });
  const Mask mask = random_rowwise(64, 96, NM{1, 4}, Philox(30));
  on_every_route([&] { return ch2_l3n_scores<float>(mask); },
                 [](const Matrix<float>& ref, const Matrix<float>& got, SimdIsa isa) {
                   EXPECT_EQ(ref, got) << to_string(isa);
                 });
  on_every_route([&] { return ch2_l3n_scores<double>(mask); },
                 [](const Matrix<double>& ref, const Matrix<double>& got, SimdIsa isa) {
                   EXPECT_EQ(ref, got) << to_string(isa);
                 });
}

TEST(Dispatch, AdamStepIsExactOnEveryRoute) {
  const Matrix<float> w0 = random_matrix<float>(32, 64, 40);
  const Matrix<float> g = random_matrix<float>(32, 64, 41);
  on_every_route(
      [&] {
        Matrix<float> w = w0;
        Adam<float> adam(w.rows(), w.cols());
        for (int t = 0; t < 3; ++t) adam.step(w, g);
        return w;
      },
      [&](const Matrix<float>& ref, const Matrix<float>& got, SimdIsa isa) {
        // The AVX2 / AVX-512 bodies may contract a * b + c into FMAs (GCC's default
        // -ffp-contract=fast): a few ulps per step, against steps of lr = 1e-3.
        EXPECT_LT(max_rel_diff(ref, got), 1e-6) << to_string(isa);
        EXPECT_GT(max_rel_diff(w0, got), 1e-4) << "the steps moved the weights";
      });
}

TEST(Dispatch, ForceIsaEnvironmentCapsTheRoute) {
  const char* env = std::getenv("SPARSENM_FORCE_ISA");
  if (env == nullptr) GTEST_SKIP() << "run by ctest with SPARSENM_FORCE_ISA set";
  const std::string want(env);
  if (want == "scalar") {
    EXPECT_EQ(active_isa(), SimdIsa::Scalar);
  }
  if (want == "avx2" && runtime_isa() != SimdIsa::Scalar) {
    EXPECT_EQ(active_isa(), SimdIsa::Avx2);
  }
}
