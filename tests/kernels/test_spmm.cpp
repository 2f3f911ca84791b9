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
TYPED_TEST_SUITE(SparseKernels, Scalars);

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
