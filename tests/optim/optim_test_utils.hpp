// SPDX-License-Identifier: Apache-2.0
// Independent references for the optimizer tests: plain loops in long double / double that
// transcribe the papers' equations, with no use of the library's kernels.
#ifndef SPARSENM_TESTS_OPTIM_TEST_UTILS_HPP
#define SPARSENM_TESTS_OPTIM_TEST_UTILS_HPP

#include <algorithm>
#include <cmath>
#include <functional>
#include <cstdint>
#include <vector>

#include <Eigen/Core>
#include <gtest/gtest.h>

#include <sparsenm/core.hpp>
#include <sparsenm/optim/newton_schulz.hpp>

namespace sparsenm {
namespace test {

using LD = long double;

/// Dense row-major matrix of long doubles (plain storage, no Eigen products).
struct RefMat {
  Index rows = 0, cols = 0;
  std::vector<LD> v;
  RefMat() = default;
  RefMat(Index r, Index c) : rows(r), cols(c), v(static_cast<std::size_t>(r * c), 0.0L) {}
  LD& operator()(Index i, Index j) { return v[static_cast<std::size_t>(i * cols + j)]; }
  LD operator()(Index i, Index j) const { return v[static_cast<std::size_t>(i * cols + j)]; }
};

template <class D>
RefMat to_ref(const Eigen::MatrixBase<D>& m) {
  RefMat r(m.rows(), m.cols());
  for (Index i = 0; i < m.rows(); ++i)
    for (Index j = 0; j < m.cols(); ++j) r(i, j) = static_cast<LD>(m(i, j));
  return r;
}

inline RefMat transpose(const RefMat& a) {
  RefMat t(a.cols, a.rows);
  for (Index i = 0; i < a.rows; ++i)
    for (Index j = 0; j < a.cols; ++j) t(j, i) = a(i, j);
  return t;
}

inline RefMat matmul(const RefMat& a, const RefMat& b) {
  RefMat c(a.rows, b.cols);
  for (Index i = 0; i < a.rows; ++i)
    for (Index k = 0; k < a.cols; ++k)
      for (Index j = 0; j < b.cols; ++j) c(i, j) += a(i, k) * b(k, j);
  return c;
}

/// chtsnm Sec. 3.2 / App. C literally: transpose if rows > cols, X0 = X / (||X||_F + 1e-7),
/// A = X X^T, X <- a X + (b A + c A^2) X, transpose back.
inline RefMat ref_newton_schulz(const RefMat& in, int steps, NsCoefficients c) {
  const bool tr = in.rows > in.cols;
  RefMat x = tr ? transpose(in) : in;
  LD nrm = 0;
  for (LD e : x.v) nrm += e * e;
  nrm = std::sqrt(nrm);
  for (LD& e : x.v) e /= (nrm + 1e-7L);
  for (int k = 0; k < steps; ++k) {
    const NsTriple t = ns_coefficients(c, k);
    const RefMat a = matmul(x, transpose(x));
    const RefMat a2 = matmul(a, a);
    RefMat b(a.rows, a.cols);
    for (std::size_t i = 0; i < b.v.size(); ++i)
      b.v[i] = static_cast<LD>(t.b) * a.v[i] + static_cast<LD>(t.c) * a2.v[i];
    const RefMat bx = matmul(b, x);
    for (std::size_t i = 0; i < x.v.size(); ++i) x.v[i] = static_cast<LD>(t.a) * x.v[i] + bx.v[i];
  }
  return tr ? transpose(x) : x;
}

/// Eigenvalues of a symmetric matrix by cyclic Jacobi rotations in long double (descending).
inline std::vector<LD> sym_eigenvalues(RefMat a) {
  const Index n = a.rows;
  for (int sweep = 0; sweep < 60; ++sweep) {
    LD off = 0;
    for (Index p = 0; p < n; ++p)
      for (Index q = p + 1; q < n; ++q) off += a(p, q) * a(p, q);
    if (off < 1e-36L) break;
    for (Index p = 0; p < n; ++p)
      for (Index q = p + 1; q < n; ++q) {
        if (a(p, q) == 0) continue;
        const LD theta = (a(q, q) - a(p, p)) / (2 * a(p, q));
        const LD tt = (theta >= 0 ? 1 : -1) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const LD c = 1 / std::sqrt(tt * tt + 1), s = tt * c;
        for (Index k = 0; k < n; ++k) {  // columns p, q
          const LD akp = a(k, p), akq = a(k, q);
          a(k, p) = c * akp - s * akq;
          a(k, q) = s * akp + c * akq;
        }
        for (Index k = 0; k < n; ++k) {  // rows p, q
          const LD apk = a(p, k), aqk = a(q, k);
          a(p, k) = c * apk - s * aqk;
          a(q, k) = s * apk + c * aqk;
        }
      }
  }
  std::vector<LD> ev;
  for (Index i = 0; i < n; ++i) ev.push_back(a(i, i));
  std::sort(ev.begin(), ev.end(), std::greater<LD>());
  return ev;
}

/// Singular values (descending) of a matrix via the eigenvalues of its short-side Gram matrix.
inline std::vector<double> singular_values(const RefMat& x) {
  const RefMat g = x.rows <= x.cols ? matmul(x, transpose(x)) : matmul(transpose(x), x);
  std::vector<double> out;
  for (LD e : sym_eigenvalues(g)) out.push_back(double(std::sqrt(std::max(e, LD(0)))));
  return out;
}

/// Uniform(-1, 1) matrix from Philox, element index as counter.
template <class S>
Matrix<S> uniform_matrix(Index rows, Index cols, std::uint64_t seed, std::uint64_t stream = 0) {
  const Philox rng(seed, stream);
  Matrix<S> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i)
    m.data()[i] = static_cast<S>(2.0 * rng.uniform(static_cast<std::uint64_t>(i)) - 1.0);
  return m;
}

/// Gaussian matrix (Box-Muller on Philox).
template <class S>
Matrix<S> gaussian_matrix(Index rows, Index cols, std::uint64_t seed) {
  const Philox rng(seed, 7);
  Matrix<S> m(rows, cols);
  for (Index i = 0; i < m.size(); ++i) {
    const double u1 = rng.uniform(2 * static_cast<std::uint64_t>(i));
    const double u2 = rng.uniform(2 * static_cast<std::uint64_t>(i) + 1);
    m.data()[i] = static_cast<S>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  return m;
}

/// A random row-wise n:m mask (n kept of every m) from Philox, independent of mask/.
inline Mask random_nm_mask(Index rows, Index cols, int n, int m, std::uint64_t seed) {
  const Philox rng(seed, 99);
  Mask out = Mask::Zero(rows, cols);
  for (Index r = 0; r < rows; ++r)
    for (Index g = 0; g < cols / m; ++g) {
      int kept = 0;
      // Floyd-style: walk the group, keep with probability (needed / remaining).
      for (int k = 0; k < m; ++k) {
        const Index j = g * m + k;
        const double u = rng.uniform(static_cast<std::uint64_t>(r * cols + j));
        if (u * (m - k) < (n - kept)) {
          out(r, j) = 1;
          ++kept;
        }
      }
    }
  return out;
}

/// max |a - b| / max(max |b|, tiny): relative error in the max norm.
template <class DA, class DB>
double max_rel_err(const Eigen::MatrixBase<DA>& a, const Eigen::MatrixBase<DB>& b) {
  double num = 0, den = 0;
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < a.cols(); ++j) {
      num = std::max(num, std::abs(double(a(i, j)) - double(b(i, j))));
      den = std::max(den, std::abs(double(b(i, j))));
    }
  return num / std::max(den, 1e-300);
}

inline Eigen::MatrixXd to_double(const RefMat& r) {
  Eigen::MatrixXd m(r.rows, r.cols);
  for (Index i = 0; i < r.rows; ++i)
    for (Index j = 0; j < r.cols; ++j) m(i, j) = static_cast<double>(r(i, j));
  return m;
}

template <class S>
struct Tol;
template <>
struct Tol<float> {
  static constexpr double ns = 1e-4;
  static constexpr double opt = 2e-4;
};
template <>
struct Tol<double> {
  static constexpr double ns = 1e-10;
  static constexpr double opt = 1e-9;
};

}  // namespace test
}  // namespace sparsenm

#endif  // SPARSENM_TESTS_OPTIM_TEST_UTILS_HPP
