// SPDX-License-Identifier: Apache-2.0
#include <gtest/gtest.h>

#include "mask/mask_test_utils.hpp"

using namespace sparsenm;

template <class S>
class CompressTyped : public ::testing::Test {};
using Scalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CompressTyped, Scalars, ::testing::internal::DefaultNameGenerator);

TYPED_TEST(CompressTyped, RoundTripAllLayouts) {
  using S = TypeParam;
  for (NM nm : {NM{1, 4}, NM{2, 4}, NM{3, 4}, NM{2, 8}, NM{4, 8}, NM{3, 5}}) {
    const Matrix<S> w = test::random_scores<S>(10, 40, 5);
    const Mask mask = project_rowwise(w.cwiseAbs(), nm);
    const NMCompressed<S> c = compress(w, mask, nm);
    ASSERT_EQ(c.values.rows(), 10);
    ASSERT_EQ(c.values.cols(), 40 / nm.m * nm.n);
    ASSERT_EQ(c.indices.cols(), c.values.cols());
    // independent check of the layout: slot order = increasing column
    for (Index i = 0; i < 10; ++i)
      for (Index g = 0; g < 40 / nm.m; ++g) {
        int slot = 0;
        for (int k = 0; k < nm.m; ++k)
          if (mask(i, g * nm.m + k)) {
            EXPECT_EQ(c.indices(i, g * nm.n + slot), k);
            EXPECT_EQ(c.values(i, g * nm.n + slot), w(i, g * nm.m + k));
            ++slot;
          }
      }
    Matrix<S> masked = w;
    apply_mask(masked, mask);
    EXPECT_EQ(decompress(c), masked);
  }
}

TYPED_TEST(CompressTyped, TransposableMaskCompressesRowWise) {
  using S = TypeParam;
  const Matrix<S> w = test::random_scores<S>(16, 16, 6);
  const Mask mask = project_transposable(w.cwiseAbs(), NM{2, 4});
  const auto c = compress(w, mask, NM{2, 4});
  Matrix<S> masked = w.cwiseProduct(mask.cast<S>());
  EXPECT_EQ(decompress(c), masked);
  // explicit scalar conversion
  const NMCompressed<float> cf = compress<float>(w, mask, NM{2, 4});
  EXPECT_EQ(decompress(cf), masked.template cast<float>());
}

TEST(Compress, BadInputsThrow) {
  const Matrix<float> w = Matrix<float>::Ones(4, 8);
  Mask m = random_rowwise(4, 8, NM{2, 4}, Philox(1));
  EXPECT_THROW((void)compress(w, Mask(Mask::Ones(4, 4)), NM{2, 4}), Error);  // shape
  EXPECT_THROW((void)compress(Matrix<float>::Ones(4, 6), Mask(Mask::Ones(4, 6)), NM{2, 4}), Error);
  EXPECT_THROW((void)compress(w, m, NM{3, 4}), Error);  // not legal for 3:4
  Mask bad = m;
  bad(0, 0) = bad(0, 1) = bad(0, 2) = 1;  // 3 in a group (at least)
  bad(0, 3) = 0;
  if (!is_rowwise_legal(bad, NM{2, 4})) {
    EXPECT_THROW((void)compress(w, bad, NM{2, 4}), Error);
  }
  bad = m;
  bad(1, 1) = 7;
  EXPECT_THROW((void)compress(w, bad, NM{2, 4}), Error);
  auto c = compress(w, m, NM{2, 4});
  c.indices(0, 1) = c.indices(0, 0);  // not increasing
  EXPECT_THROW((void)decompress(c), Error);
  c = compress(w, m, NM{2, 4});
  c.values.resize(4, 3);
  EXPECT_THROW((void)decompress(c), Error);
}

TEST(Compress, Empty) {
  const auto c = compress(Matrix<double>(0, 8), Mask(0, 8), NM{2, 4});
  EXPECT_EQ(c.values.rows(), 0);
  EXPECT_EQ(decompress(c).cols(), 8);
}

TEST(NvidiaMetadata, SixCodesAsDocumented) {
  // docs/algorithms.md: 1100, 1010, 0110, 1001, 0101, 0011 -> 0x4, 0x8, 0x9, 0xC, 0xD, 0xE
  const int groups[6][4] = {{1, 1, 0, 0}, {1, 0, 1, 0}, {0, 1, 1, 0},
                            {1, 0, 0, 1}, {0, 1, 0, 1}, {0, 0, 1, 1}};
  const std::uint16_t codes[6] = {0x4, 0x8, 0x9, 0xC, 0xD, 0xE};
  for (int g = 0; g < 6; ++g) {
    Mask m(1, 16);
    for (int q = 0; q < 4; ++q)
      for (int c = 0; c < 4; ++c) m(0, 4 * q + c) = std::uint8_t(groups[(g + q) % 6][c]);
    const NvMetadata meta = nvidia_metadata_2to4(m);
    ASSERT_EQ(meta.rows(), 1);
    ASSERT_EQ(meta.cols(), 1);
    std::uint16_t expect = 0;
    for (int q = 0; q < 4; ++q) expect = std::uint16_t(expect | (codes[(g + q) % 6] << (4 * q)));
    EXPECT_EQ(meta(0, 0), expect);
    EXPECT_EQ(mask_from_nvidia_metadata(meta), m);
  }
  // a worked word: groups 1100 | 0011 | 0101 | 1010 -> 0x8DE4
  Mask m(1, 16);
  m << 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0;
  EXPECT_EQ(nvidia_metadata_2to4(m)(0, 0), 0x8DE4);
}

TEST(NvidiaMetadata, RoundTripAndCompressedAgree) {
  const Matrix<float> w = test::random_scores<float>(12, 64, 3);
  const Mask mask = project_rowwise(w.cwiseAbs(), NM{2, 4});
  const NvMetadata meta = nvidia_metadata_2to4(mask);
  EXPECT_EQ(meta.cols(), 4);
  EXPECT_EQ(mask_from_nvidia_metadata(meta), mask);
  EXPECT_EQ(nvidia_metadata_2to4(compress(w, mask, NM{2, 4})), meta);
}

TEST(NvidiaMetadata, BadInputsThrow) {
  EXPECT_THROW((void)nvidia_metadata_2to4(Mask(Mask::Zero(2, 8))), Error);   // cols % 16
  EXPECT_THROW((void)nvidia_metadata_2to4(Mask(Mask::Zero(2, 16))), Error);  // 0 of 4
  const Mask one = project_rowwise(test::random_scores<float>(2, 16, 1), NM{1, 4});
  EXPECT_THROW((void)nvidia_metadata_2to4(one), Error);
  const auto c1 = compress(test::random_scores<float>(2, 16, 1), one, NM{1, 4});
  EXPECT_THROW((void)nvidia_metadata_2to4(c1), Error);
  NvMetadata bad(1, 1);
  bad(0, 0) = 0x0004;  // nibble 1 = 0x0: idx0 = idx1 = 0
  EXPECT_THROW((void)mask_from_nvidia_metadata(bad), Error);
}
