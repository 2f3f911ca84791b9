// SPDX-License-Identifier: Apache-2.0
// The 1:4 decode kernel and the cuSPARSELt 2:4 product against an fp64 host reference computed
// from the same bf16-rounded operands (tolerance 1e-2 relative: bf16 output rounding is 2^-9).
// Outputs are poisoned (NaN) before each run, so an unwritten element fails.
#include <cstdint>
#include <vector>

#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <sparsenm/cuda.cuh>
#include <sparsenm/mask.hpp>

#include "cuda/cuda_test_util.cuh"

namespace {

using sparsenm::Index;
using sparsenm::Mask;
using sparsenm::Matrix;
using sparsenm::NM;
using sparsenm::Philox;
namespace sc = sparsenm::cuda;
namespace st = sparsenm::test;

float bf16_round(float x) { return __bfloat162float(__float2bfloat16(x)); }

std::vector<__nv_bfloat16> to_bf16(const Matrix<float>& m) {
  std::vector<__nv_bfloat16> v(std::size_t(m.size()));
  for (Index k = 0; k < m.size(); ++k) v[std::size_t(k)] = __float2bfloat16(m.data()[k]);
  return v;
}

/// y = x W^T in fp64 from bf16-rounded operands; W = decompress(c).
Matrix<double> reference(const Matrix<float>& x, const Matrix<float>& w) {
  Matrix<double> xd = x.unaryExpr([](float v) { return double(bf16_round(v)); });
  Matrix<double> wd = w.unaryExpr([](float v) { return double(bf16_round(v)); });
  return xd * wd.transpose();
}

Matrix<double> download_bf16(const sc::DeviceBuffer<__nv_bfloat16>& d, Index rows, Index cols) {
  std::vector<__nv_bfloat16> h = d.to_host();
  Matrix<double> out(rows, cols);
  for (Index k = 0; k < out.size(); ++k)
    out.data()[k] = double(__bfloat162float(h[std::size_t(k)]));
  return out;
}

TEST(CudaDecode14, MatchesReferenceForEveryTokenCount) {
  for (auto shape : {std::pair<Index, Index>{72, 256}, {129, 96}, {40, 2048}, {33, 1056}}) {
    const Index out = shape.first, in = shape.second;
    const Mask mask = sparsenm::random_rowwise(out, in, NM{1, 4}, Philox(out));
    const Matrix<float> w = st::random_matrix<float>(out, in, 21);
    const auto c = sparsenm::compress(w, mask, NM{1, 4});
    const Matrix<float> wp = sparsenm::decompress(c);
    sc::Sparse14 s14(c);
    const Index gp = (in / 4 + 255) / 256 * 256;  // groups per row, padded to 256
    EXPECT_EQ(s14.weight_bytes(), std::size_t(out * gp * 2 + out * gp / 8 * 2));
    for (int tokens = 1; tokens <= 16; ++tokens) {
      const Matrix<float> x = st::random_matrix<float>(tokens, in, 100 + std::uint64_t(tokens));
      sc::DeviceBuffer<__nv_bfloat16> d_x, d_y(std::size_t(tokens * out));
      d_x.upload(to_bf16(x));
      d_y.fill_bytes(0xFF);  // NaN poison
      s14.matmul(d_x.data(), tokens, d_y.data());
      const Matrix<double> y = download_bf16(d_y, tokens, out);
      const Matrix<double> ref = reference(x, wp);
      EXPECT_LT(st::max_rel_err(y, ref, 1e-2), 1e-2) << out << "x" << in << " tokens " << tokens;
    }
  }
  const auto c24 =
      sparsenm::compress(st::random_matrix<float>(8, 32, 1),
                         sparsenm::random_rowwise(8, 32, NM{2, 4}, Philox(1)), NM{2, 4});
  EXPECT_THROW(sc::Sparse14{c24}, sparsenm::Error);
}

TEST(CudaDecode14, ObjectsOfDifferentWidthsInterleave) {
  // The opt-in shared-memory limit belongs to the kernel, not to a Sparse14: a narrower weight
  // built (and run) after a wider one must not leave the wider one unable to launch. At 16 tokens
  // both need more than the default 48 KiB (4096 and 2048 columns: 128 and 64 KiB).
  auto make = [](Index out, Index in, std::uint64_t seed) {
    const Mask mask = sparsenm::random_rowwise(out, in, NM{1, 4}, Philox(seed));
    return sparsenm::compress(st::random_matrix<float>(out, in, seed), mask, NM{1, 4});
  };
  const auto wide = make(24, 4096, 31), narrow = make(40, 2048, 32);
  sc::Sparse14 a(wide), b(narrow);
  const int tokens = 16;
  for (int round = 0; round < 2; ++round)
    for (const auto* c : {&wide, &narrow}) {
      const sc::Sparse14& s = c == &wide ? a : b;
      const Matrix<float> x = st::random_matrix<float>(tokens, c->cols, 40 + std::uint64_t(round));
      sc::DeviceBuffer<__nv_bfloat16> d_x, d_y(std::size_t(tokens * c->rows));
      d_x.upload(to_bf16(x));
      d_y.fill_bytes(0xFF);
      ASSERT_NO_THROW(s.matmul(d_x.data(), tokens, d_y.data()));
      const Matrix<double> y = download_bf16(d_y, tokens, c->rows);
      EXPECT_LT(st::max_rel_err(y, reference(x, sparsenm::decompress(*c)), 1e-2), 1e-2)
          << c->cols << " columns, round " << round;
    }
}

#if defined(SPARSENM_HAS_CUSPARSELT)
TEST(CudaSparse24, CuSparseLtMatchesReference) {
  const Index out = 128, in = 256, tokens = 32;
  const Mask mask = sparsenm::random_rowwise(out, in, NM{2, 4}, Philox(3));
  const Matrix<float> w = st::random_matrix<float>(out, in, 22);
  const auto c = sparsenm::compress(w, mask, NM{2, 4});
  sc::Sparse24 s24(c, tokens);
  const Matrix<float> x = st::random_matrix<float>(tokens, in, 23);
  sc::DeviceBuffer<__nv_bfloat16> d_x, d_y(std::size_t(tokens * out));
  d_x.upload(to_bf16(x));
  d_y.fill_bytes(0xFF);
  s24.matmul(d_x.data(), d_y.data());
  const Matrix<double> y = download_bf16(d_y, tokens, out);
  EXPECT_LT(st::max_rel_err(y, reference(x, sparsenm::decompress(c)), 1e-2), 1e-2);
  std::printf("cuSPARSELt version %d\n", s24.library_version());
  // A weight that is not 2:4 is refused.
  sc::DeviceBuffer<__nv_bfloat16> dense;
  dense.upload(to_bf16(w));
  EXPECT_THROW(sc::Sparse24(dense.data(), out, in, tokens), sparsenm::Error);
}
#else
TEST(CudaSparse24, CuSparseLtNotFoundAtConfigureTime) {
  GTEST_SKIP() << "cuSPARSELt was not found by CMake; cuda::Sparse24 is not compiled";
}
#endif

TEST(CudaDecode14Route, EveryRouteMatchesReferenceAndCalibrationPicksTheFastest) {
  const Index out = 64, in = 256;
  const Mask mask = sparsenm::random_rowwise(out, in, NM{1, 4}, Philox(3));
  const auto c = sparsenm::compress(st::random_matrix<float>(out, in, 31), mask, NM{1, 4});
  const Matrix<float> wp = sparsenm::decompress(c);
  sc::Decode14 dec(c, /*dense_fallback=*/true);
  EXPECT_TRUE(dec.has(sc::DecodeRoute::Native14));
  EXPECT_TRUE(dec.has(sc::DecodeRoute::Dense));
#if defined(SPARSENM_HAS_CUSPARSELT)
  EXPECT_TRUE(dec.has(sc::DecodeRoute::Sparse24));
#endif
  sc::DeviceBuffer<__nv_bfloat16> xs(std::size_t(16 * in)), ys(std::size_t(16 * out));
  for (int tokens : {1, 5, 16}) {
    const Matrix<float> x = st::random_matrix<float>(tokens, in, 500 + std::uint64_t(tokens));
    const Matrix<double> ref = reference(x, wp);
    sc::DeviceBuffer<__nv_bfloat16> xd, y(std::size_t(tokens * out));
    xd.upload(to_bf16(x));
    for (auto r : {sc::DecodeRoute::Native14, sc::DecodeRoute::Sparse24, sc::DecodeRoute::Dense}) {
      if (!dec.has(r)) continue;
      SCOPED_TRACE(std::string(sc::to_string(r)) + " tokens " + std::to_string(tokens));
      y.fill_bytes(0xff);
      dec.run(r, xd.data(), tokens, y.data());
      EXPECT_LT(st::max_abs_rel(download_bf16(y, tokens, out), ref), 1e-2);
    }
  }
  xs.upload(to_bf16(st::random_matrix<float>(16, in, 600)));
  const auto us = dec.calibrate(xs.data(), ys.data(), 4, 3);
  for (int t = 1; t <= 16; ++t) {
    const double chosen = us[std::size_t(int(dec.route(t)))][std::size_t(t)];
    for (int r = 0; r < 3; ++r)
      if (us[std::size_t(r)][std::size_t(t)] >= 0)
        EXPECT_LE(chosen, us[std::size_t(r)][std::size_t(t)]);
  }
  EXPECT_THROW(dec.matmul(xs.data(), 17, ys.data()), sparsenm::Error);
}

}  // namespace
