// SPDX-License-Identifier: Apache-2.0
// Sparse kernels against dense Eigen products on the decompressed weight and against the scalar
// references, for 1:4, 2:4, 3:4, 2:8, 4:8, row-wise and transposable masks, odd token counts
// (every tile width: 1, 2, 4 and 8 vectors plus a partial last tile), float and double.
#include <gtest/gtest.h>

#include <sparsenm/kernels.hpp>

#include <tuple>

// Eigen's vectorised reductions trip GCC 12's false -Wmaybe-uninitialized (bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

using sparsenm::Index;
using sparsenm::Layout;
using sparsenm::Matrix;
using sparsenm::NM;
using sparsenm::Philox;

template <class S>
Matrix<S> random_matrix(Index rows, Index cols, std::uint64_t seed) {
  const Philox rng(seed);
  Matrix<S> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = S(2 * rng.uniform(std::uint64_t(i)) - 1);
  return m;
}

template <class S>
sparsenm::NMCompressed<S> random_weight(Index out, Index in, NM nm, Layout layout,
                                        std::uint64_t seed) {
  const Philox rng(seed);
  const sparsenm::Mask mask = layout == Layout::RowWise
                                  ? sparsenm::random_rowwise(out, in, nm, rng.split(1))
                                  : sparsenm::random_transposable(out, in, nm, rng.split(1));
  const Matrix<S> w = random_matrix<S>(out, in, seed + 7);
  return sparsenm::compress<S>(w, mask, nm);
}

template <class S>
S tol() {
  return std::is_same<S, float>::value ? S(2e-5) : S(1e-12);
}

/// max |a - b| / (1 + max |b|)
template <class S>
double rel_err(const Matrix<S>& a, const Matrix<S>& b) {
  EXPECT_EQ(a.rows(), b.rows());
  EXPECT_EQ(a.cols(), b.cols());
  if (a.rows() != b.rows() || a.cols() != b.cols()) return 1e30;
  if (a.size() == 0) return 0;
  return double((a - b).cwiseAbs().maxCoeff()) / (1.0 + double(b.cwiseAbs().maxCoeff()));
}

template <class S>
class SparseKernels : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
// The empty third argument keeps clang -Wpedantic quiet about an empty __VA_ARGS__.
TYPED_TEST_SUITE(SparseKernels, Scalars, );

const NM kPatterns[] = {{1, 4}, {2, 4}, {3, 4}, {2, 8}, {4, 8}};
const Index kTokens[] = {1, 3, 17, 37, 131};

TYPED_TEST(SparseKernels, MatchDenseAndScalarReference) {
  using S = TypeParam;
  int cases = 0;
  for (const NM nm : kPatterns)
    for (const Layout layout : {Layout::RowWise, Layout::Transposable}) {
      const Index out = 3 * nm.m * 4 + (layout == Layout::RowWise ? 5 : 0);
      const Index in = nm.m * 23;
      // Transposable tiles need both dimensions divisible by m.
      const Index rows = layout == Layout::Transposable ? out / nm.m * nm.m : out;
      const auto w = random_weight<S>(rows, in, nm, layout, 11 + cases);
      const Matrix<S> wd = sparsenm::decompress(w);
      for (const Index t : kTokens) {
        SCOPED_TRACE(::testing::Message() << nm << " " << layout << " tokens " << t);
        const Matrix<S> x = random_matrix<S>(t, in, 100 + t);
        const Matrix<S> dy = random_matrix<S>(t, rows, 200 + t);
        const Matrix<S> y_dense = x * wd.transpose();
        const Matrix<S> dx_dense = dy * wd;
        const Matrix<S> dw_dense = dy.transpose() * x;
        Matrix<S> dv_dense(w.values.rows(), w.values.cols());
        for (Index o = 0; o < rows; ++o)
          for (Index j = 0; j < w.values.cols(); ++j)
            dv_dense(o, j) = dw_dense(o, (j / nm.n) * nm.m + w.indices(o, j));

        const Matrix<S> y = sparsenm::spmm(x, w);
        const Matrix<S> dx = sparsenm::spmm_transposed(dy, w);
        const Matrix<S> dv = sparsenm::sddmm(dy, x, w);
        EXPECT_LT(rel_err(y, y_dense), tol<S>());
        EXPECT_LT(rel_err(dx, dx_dense), tol<S>());
        EXPECT_LT(rel_err(dv, dv_dense), tol<S>() * 10);
        EXPECT_LT(rel_err(y, sparsenm::detail::scalar::spmm(x, w)), tol<S>());
        EXPECT_LT(rel_err(dx, sparsenm::detail::scalar::spmm_transposed(dy, w)), tol<S>());
        EXPECT_LT(rel_err(dv, sparsenm::detail::scalar::sddmm(dy, x, w)), tol<S>() * 10);
        ++cases;
      }
    }
  EXPECT_EQ(cases, 5 * 2 * 5);
}

}  // namespace

namespace {

TYPED_TEST(SparseKernels, OneAndTwoThreadsBitIdenticalAcrossRowBlocks) {
  using S = TypeParam;
  // 600 rows: three row blocks of the tiled kernels, two input blocks, a partial token tile.
  for (const Layout layout : {Layout::RowWise, Layout::Transposable}) {
    const auto w = random_weight<S>(600, 136, NM{2, 4}, layout, 5);
    const Matrix<S> x = random_matrix<S>(150, 136, 6), dy = random_matrix<S>(150, 600, 7);
    Matrix<S> y[2], dx[2], dv[2];
    for (int t = 0; t < 2; ++t) {
      sparsenm::set_thread_count(t + 1);
      y[t] = sparsenm::spmm(x, w);
      dx[t] = sparsenm::spmm_transposed(dy, w);
      dv[t] = sparsenm::sddmm(dy, x, w);
    }
    sparsenm::set_thread_count(2);
    EXPECT_TRUE(y[0] == y[1]);
    EXPECT_TRUE(dx[0] == dx[1]);
    EXPECT_TRUE(dv[0] == dv[1]);
    const Matrix<S> wd = sparsenm::decompress(w);
    EXPECT_LT(rel_err(y[0], Matrix<S>(x * wd.transpose())), tol<S>());
    EXPECT_LT(rel_err(dx[0], Matrix<S>(dy * wd)), tol<S>());
  }
}

TYPED_TEST(SparseKernels, PackedTokensLayout) {
  using S = TypeParam;
  const Matrix<S> x = random_matrix<S>(21, 9, 3);
  const sparsenm::PackedTokens<S> p(x);
  EXPECT_EQ(p.tokens(), 21);
  EXPECT_EQ(p.features(), 9);
  EXPECT_EQ(p.tile_count(), (21 + p.tile() - 1) / p.tile());
  EXPECT_GE(p.tile_count() * p.tile(), 21);
  for (Index t = 0; t < p.tile_count() * p.tile(); ++t)
    for (Index k = 0; k < 9; ++k) {
      const S v = p.tile_data(t / p.tile())[k * p.tile() + t % p.tile()];
      EXPECT_EQ(v, t < 21 ? x(t, k) : S(0));
    }
}

TYPED_TEST(SparseKernels, TransposedStructureOfTransposableMaskIsNM) {
  using S = TypeParam;
  const NM nm{2, 4};
  const auto w = random_weight<S>(16, 24, nm, Layout::Transposable, 9);
  const sparsenm::TransposedWeight<S> wt(w);
  ASSERT_EQ(wt.rows(), 24);
  EXPECT_TRUE(wt.is_nm());
  EXPECT_EQ(wt.as_nm().rows, 24);
  EXPECT_TRUE(sparsenm::decompress(wt.as_nm()) == Matrix<S>(sparsenm::decompress(w).transpose()));
  // A row-wise mask generally is not N:M by columns.
  EXPECT_FALSE(
      sparsenm::TransposedWeight<S>(random_weight<S>(16, 24, nm, Layout::RowWise, 9)).is_nm());
  // Every row of W^T holds exactly n of each m outputs (CHTs24 Sec. 3.1).
  for (Index k = 0; k < 24; ++k) {
    EXPECT_EQ(wt.row_ptr()[k + 1] - wt.row_ptr()[k], 16 / nm.m * nm.n);
    EXPECT_EQ(wt.row_ptr()[k], k * (16 / nm.m * nm.n));  // also the row's start in as_nm()
    std::vector<int> per_group(16 / nm.m, 0);
    const Matrix<S> wtd = sparsenm::decompress(w).transpose();
    for (Index o = 0; o < 16; ++o) per_group[o / nm.m] += wtd(k, o) != S(0);
    for (const int c : per_group) EXPECT_EQ(c, nm.n);
  }
  // Values follow the weight after update_values.
  auto w2 = w;
  w2.values *= S(3);
  sparsenm::TransposedWeight<S> wt2(w);
  wt2.update_values(w2);
  const Matrix<S> dy = random_matrix<S>(5, 16, 2);
  sparsenm::PackedTokens<S> dyp(dy);
  Matrix<S> dx(5, 24);
  sparsenm::spmm_transposed(dyp, wt2, dx);
  EXPECT_LT(rel_err(dx, Matrix<S>(dy * sparsenm::decompress(w2))), tol<S>());
}

// update_values transposes in blocks of 64 columns of W; shapes with partial blocks, checked entry
// by entry against the decompressed weight.
TYPED_TEST(SparseKernels, TransposedWeightUpdateValuesMatchesWeight) {
  using S = TypeParam;
  // 260 x 136: partial tiles of the transposable gather (64 output groups x 64 inputs) in both
  // directions; 2:8 exercises its generic (runtime n, m) path.
  struct Case {
    Index rows, cols;
    NM nm;
  };
  for (const Layout layout : {Layout::RowWise, Layout::Transposable})
    for (const Case c :
         {Case{100, 200, NM{1, 4}}, Case{100, 200, NM{2, 4}}, Case{260, 136, NM{1, 4}},
          Case{260, 136, NM{2, 4}}, Case{520, 136, NM{2, 8}}}) {
      const NM nm = c.nm;
      const auto w = random_weight<S>(c.rows, c.cols, nm, layout, 21);
      sparsenm::TransposedWeight<S> wt(w);
      auto w2 = w;
      w2.values = random_matrix<S>(w.values.rows(), w.values.cols(), 22);
      wt.update_values(w2);
      const Matrix<S> dt = sparsenm::decompress(w2).transpose();
      if (wt.is_nm()) {
        EXPECT_TRUE(sparsenm::decompress(wt.as_nm()) == dt);
      } else {
        ASSERT_EQ(Index(wt.values().size()), Index(w.values.size()));
        for (Index k = 0; k < wt.rows(); ++k)
          for (Index e = wt.row_ptr()[k]; e < wt.row_ptr()[k + 1]; ++e)
            ASSERT_EQ(wt.values()[std::size_t(e)], dt(k, wt.cols()[std::size_t(e)]));
      }
      EXPECT_EQ(wt.is_nm(), layout == Layout::Transposable);
    }
}

TEST(SparseKernelErrors, ShapeErrorsThrow) {
  const auto w = random_weight<float>(8, 16, NM{2, 4}, Layout::RowWise, 1);
  const Matrix<float> x = Matrix<float>::Zero(3, 16), bad = Matrix<float>::Zero(3, 12);
  EXPECT_THROW(sparsenm::spmm(bad, w), sparsenm::Error);
  EXPECT_THROW(sparsenm::spmm_transposed(Matrix<float>::Zero(3, 7), w), sparsenm::Error);
  EXPECT_THROW(sparsenm::sddmm(Matrix<float>::Zero(3, 8), bad, w), sparsenm::Error);
  EXPECT_THROW(sparsenm::sddmm(Matrix<float>::Zero(4, 8), x, w), sparsenm::Error);
  sparsenm::PackedTokens<float> xp(x);
  Matrix<float> y(3, 7);
  EXPECT_THROW(sparsenm::spmm(xp, w, y), sparsenm::Error);
  auto broken = w;
  broken.indices(0, 0) = 4;  // out of [0, m)
  EXPECT_THROW(sparsenm::spmm(x, broken), sparsenm::Error);
  broken = w;
  broken.indices(0, 1) = broken.indices(0, 0);  // not increasing within the group
  EXPECT_THROW(sparsenm::spmm(x, broken), sparsenm::Error);
  broken = w;
  broken.values.resize(8, 7);
  EXPECT_THROW(sparsenm::spmm(x, broken), sparsenm::Error);
}

TEST(SparseKernelErrors, EmptyAndNonFinite) {
  const auto w = random_weight<float>(8, 16, NM{1, 4}, Layout::RowWise, 1);
  EXPECT_EQ(sparsenm::spmm(Matrix<float>::Zero(0, 16), w).rows(), 0);
  EXPECT_TRUE(sparsenm::sddmm(Matrix<float>::Zero(0, 8), Matrix<float>::Zero(0, 16), w).isZero(0));
  // NaN in X reaches exactly the outputs whose rows use that input (documented propagation).
  Matrix<float> x = Matrix<float>::Ones(2, 16);
  x(1, 5) = std::numeric_limits<float>::quiet_NaN();
  const Matrix<float> y = sparsenm::spmm(x, w);
  const Matrix<float> wd = sparsenm::decompress(w);
  for (Index o = 0; o < 8; ++o) {
    EXPECT_FALSE(std::isnan(y(0, o)));
    EXPECT_EQ(std::isnan(y(1, o)), wd(o, 5) != 0.f) << o;
  }
}

}  // namespace
