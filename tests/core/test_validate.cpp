// Every validation helper throws sparsenm::Error whose message names the argument and its value.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include <sparsenm/core.hpp>

using namespace sparsenm;

namespace {
// Runs f, expects sparsenm::Error, and checks every needle appears in the message.
template <class F>
void expect_error(F&& f, std::initializer_list<const char*> needles) {
  try {
    f();
    ADD_FAILURE() << "no sparsenm::Error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << msg << " lacks " << n;
  }
}
}  // namespace

TEST(Validate, ErrorIsInvalidArgument) { EXPECT_THROW(check_nm(NM{0, 4}), std::invalid_argument); }

TEST(Validate, CheckNm) {
  EXPECT_NO_THROW(check_nm(NM{2, 4}));
  EXPECT_NO_THROW(check_nm(NM{32, 32}));
  expect_error([] { check_nm(NM{5, 4}); }, {"NM{5,4}", "n must be in [1, m]"});
  expect_error([] { check_nm(NM{0, 4}, "sparsity"); }, {"sparsity", "NM{0,4}"});
  expect_error([] { check_nm(NM{1, 33}); }, {"NM{1,33}", "m must be in [1, 32]"});
  expect_error([] { check_nm(NM{1, 0}); }, {"NM{1,0}"});
}

TEST(Validate, CheckDivisible) {
  EXPECT_NO_THROW(check_divisible(12, 4, "cols"));
  EXPECT_NO_THROW(check_divisible(0, 4, "cols"));
  expect_error([] { check_divisible(10, 4, "cols"); }, {"cols = 10", "divisible by m = 4"});
  expect_error([] { check_divisible(-4, 4, "rows"); }, {"rows = -4"});
}

TEST(Validate, CheckShapes) {
  Matrix<float> a(2, 3), b(3, 2);
  EXPECT_NO_THROW(check_same_shape(a, a, "a", "b"));
  expect_error([&] { check_same_shape(a, b, "weight", "grad"); }, {"weight is 2x3", "grad is 3x2"});
  expect_error([&] { check_shape(a, 4, 3, "x"); }, {"x is 2x3", "must be 4x3"});
}

TEST(Validate, CheckScalars) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_NO_THROW(check_finite_positive(1e-3, "lr"));
  expect_error([] { check_finite_positive(0.0, "lr"); }, {"lr = 0", "> 0"});
  expect_error([&] { check_finite_positive(nan, "lr"); }, {"lr = nan"});
  expect_error([&] { check_finite_positive(inf, "eps"); }, {"eps = inf"});
  EXPECT_NO_THROW(check_finite_nonnegative(0.0, "weight_decay"));
  expect_error([] { check_finite_nonnegative(-1.0, "weight_decay"); }, {"weight_decay = -1"});
  EXPECT_NO_THROW(check_in_range(0.5, 0, 1, "zeta", true, true));
  expect_error([] { check_in_range(1.0, 0, 1, "zeta", true, true); }, {"zeta = 1", "(0, 1)"});
  expect_error([] { check_in_range(-0.1, 0, 1, "beta1"); }, {"beta1 = -0.1", "[0, 1]"});
  expect_error([&] { check_in_range(nan, 0, 1, "beta2"); }, {"beta2 = nan"});
  EXPECT_NO_THROW(check_at_least(1, 1, "interval"));
  expect_error([] { check_at_least(0, 1, "interval"); }, {"interval = 0", ">= 1"});
}

TEST(Validate, CheckFiniteMatrixAndBinaryMask) {
  Matrix<double> x = Matrix<double>::Ones(3, 4);
  EXPECT_NO_THROW(check_all_finite(x, "grad"));
  x(2, 1) = std::numeric_limits<double>::quiet_NaN();
  expect_error([&] { check_all_finite(x, "grad"); }, {"grad(2, 1)", "not finite"});
  Mask m = Mask::Ones(2, 4);
  EXPECT_NO_THROW(check_binary(m));
  m(1, 3) = 2;
  expect_error([&] { check_binary(m, "mask"); }, {"mask(1, 3) = 2", "0 or 1"});
  // 15 bytes: the 8-byte pass and the tail, every bad value found.
  for (Index k = 0; k < 15; ++k)
    for (int bad : {2, 3, 128, 255}) {
      Mask odd = Mask::Ones(3, 5);
      odd.data()[k] = static_cast<std::uint8_t>(bad);
      const std::string where = "mask(" + std::to_string(k / 5) + ", " + std::to_string(k % 5) +
                                ") = " + std::to_string(bad);
      expect_error([&] { check_binary(odd, "mask"); }, {where.c_str(), "0 or 1"});
    }
  EXPECT_NO_THROW(check_binary(Mask::Zero(3, 5)));
}

TEST(Validate, CheckFiniteFastPathAgreesWithEigenOnEveryLayout) {
  // The contiguous fast path (exponent bits as integers) against Eigen's allFinite on
  // contiguous, column-major, strided-block and expression inputs, for NaN, +Inf and -Inf at
  // every position of a small matrix.
  const double specials[] = {std::numeric_limits<double>::quiet_NaN(),
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity()};
  for (double v : specials)
    for (Index k = 0; k < 5 * 7; ++k) {
      Matrix<float> f = Matrix<float>::Constant(5, 7, 1.5f);
      f(k / 7, k % 7) = static_cast<float>(v);
      EXPECT_THROW(check_all_finite(f, "f"), Error);
      EXPECT_THROW(check_all_finite(Eigen::MatrixXf(f), "f"), Error);
      Matrix<double> big = Matrix<double>::Ones(7, 9);
      big(1 + k / 7, 1 + k % 7) = v;
      EXPECT_THROW(check_all_finite(big.block(1, 1, 5, 7), "b"), Error);
      EXPECT_NO_THROW(check_all_finite(big.block(0, 0, 1, 9), "b"));  // the NaN is outside
      EXPECT_THROW(check_all_finite(2.0 * big, "e"), Error);
    }
  EXPECT_NO_THROW(check_all_finite(Matrix<float>::Constant(3, 3, 3.4e38f), "max"));
  EXPECT_NO_THROW(check_all_finite(Matrix<double>::Constant(2, 2, 4.9e-324), "subnormal"));
}

TEST(Validate, LayoutAndNmPrint) {
  EXPECT_STREQ(to_string(Layout::RowWise), "rowwise");
  EXPECT_STREQ(to_string(Layout::Transposable), "transposable");
  EXPECT_TRUE((NM{2, 4} == NM{2, 4}));
  EXPECT_TRUE((NM{1, 4} != NM{2, 4}));
}
