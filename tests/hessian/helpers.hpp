// SPDX-License-Identifier: Apache-2.0
// Shared helpers for the hessian tests: known-H quadratics and small statistics.
#ifndef SPARSENM_TESTS_HESSIAN_HELPERS_HPP
#define SPARSENM_TESTS_HESSIAN_HELPERS_HPP

#include <cmath>
#include <vector>

#include <Eigen/Dense>

#include <sparsenm/core.hpp>

namespace sparsenm::test {

/// A matrix of uniform(-1, 1) entries from Philox (element index as counter).
template <class S>
Matrix<S> uniform_matrix(Index rows, Index cols, std::uint64_t seed, double lo = -1.0,
                         double hi = 1.0) {
  const Philox rng(seed);
  Matrix<S> a(rows, cols);
  for (Index i = 0; i < a.size(); ++i)
    a.data()[i] = S(lo + (hi - lo) * rng.uniform(std::uint64_t(i)));
  return a;
}

/// Dense SPD H = AᵀA / d + 0.5 I of size d (d = rows * cols of the weight), with strong
/// off-diagonal coupling so the Hutchinson variance is far from zero.
inline Eigen::MatrixXd dense_spd(Index d, std::uint64_t seed) {
  const Matrix<double> a = uniform_matrix<double>(d, d, seed);
  Eigen::MatrixXd h = a.transpose() * a / double(d);
  h += 0.5 * Eigen::MatrixXd::Identity(d, d);
  return h;
}

/// H·vec(v) for a weight-shaped v, vec = row-major flattening (the storage order of Matrix<S>).
template <class S>
Matrix<S> dense_hvp(const Eigen::MatrixXd& h, const Matrix<S>& v) {
  Eigen::Map<const Eigen::Matrix<S, Eigen::Dynamic, 1>> vv(v.data(), v.size());
  const Eigen::VectorXd hv = h * vv.template cast<double>();
  Matrix<S> out(v.rows(), v.cols());
  for (Index i = 0; i < v.size(); ++i) out.data()[i] = S(hv[i]);
  return out;
}

/// Least-squares slope of log(y) on log(x).
inline double loglog_slope(const std::vector<double>& x, const std::vector<double>& y) {
  const std::size_t n = x.size();
  double mx = 0, my = 0;
  for (std::size_t i = 0; i < n; ++i) {
    mx += std::log(x[i]);
    my += std::log(y[i]);
  }
  mx /= double(n);
  my /= double(n);
  double sxy = 0, sxx = 0;
  for (std::size_t i = 0; i < n; ++i) {
    sxy += (std::log(x[i]) - mx) * (std::log(y[i]) - my);
    sxx += (std::log(x[i]) - mx) * (std::log(x[i]) - mx);
  }
  return sxy / sxx;
}

}  // namespace sparsenm::test

#endif  // SPARSENM_TESTS_HESSIAN_HELPERS_HPP
