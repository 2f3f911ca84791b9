// Shuffling: a permutation, deterministic per (seed, epoch), uniform (chi-square, fixed seed).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include <sparsenm/train/batching.hpp>

using namespace sparsenm;

TEST(Batching, PermutationIsDeterministicAndComplete) {
  const Philox rng(11);
  const auto p = random_permutation(1000, rng);
  auto s = p;
  std::sort(s.begin(), s.end());
  for (Index i = 0; i < 1000; ++i) ASSERT_EQ(s[i], i);
  EXPECT_EQ(p, random_permutation(1000, rng));
  EXPECT_NE(p, random_permutation(1000, rng.split(1)));
  EXPECT_TRUE(random_permutation(0, rng).empty());
}

TEST(Batching, PermutationIsUniform) {
  // All 24 permutations of 4 items, 24000 draws: chi-square with 23 dof; the 99.9% quantile is
  // 49.7 (fixed seeds, so this is deterministic).
  std::vector<int> counts(256, 0);
  const int draws = 24000;
  for (int k = 0; k < draws; ++k) {
    const auto p = random_permutation(4, Philox(3, std::uint64_t(k)));
    counts[p[0] * 64 + p[1] * 16 + p[2] * 4 + p[3]]++;
  }
  double chi2 = 0;
  int cells = 0;
  for (int c : counts)
    if (c) {
      ++cells;
      chi2 += (c - 1000.0) * (c - 1000.0) / 1000.0;
    }
  EXPECT_EQ(cells, 24);
  EXPECT_LT(chi2, 49.7);
}

TEST(Batching, SamplerCoversEveryExampleOncePerEpoch) {
  Matrix<float> images(10, 2);
  std::vector<int> labels(10);
  for (int i = 0; i < 10; ++i) {
    images(i, 0) = float(i);
    images(i, 1) = float(-i);
    labels[i] = i;
  }
  BatchSampler sampler(10, 4, Philox(1));
  EXPECT_EQ(sampler.batches_per_epoch(), 3);
  for (int epoch = 0; epoch < 2; ++epoch) {
    sampler.begin(epoch);
    Matrix<float> x;
    std::vector<int> y, seen;
    std::vector<Index> sizes;
    while (sampler.next(images, labels, x, y)) {
      sizes.push_back(x.rows());
      for (Index i = 0; i < x.rows(); ++i) {
        EXPECT_EQ(x(i, 0), float(y[i]));
        EXPECT_EQ(x(i, 1), -float(y[i]));
        seen.push_back(y[i]);
      }
    }
    EXPECT_EQ(sizes, (std::vector<Index>{4, 4, 2}));
    std::sort(seen.begin(), seen.end());
    for (int i = 0; i < 10; ++i) EXPECT_EQ(seen[i], i);
  }
  EXPECT_THROW(BatchSampler(0, 4, Philox(1)), Error);
  EXPECT_THROW(BatchSampler(4, 0, Philox(1)), Error);
  Matrix<float> wrong(9, 2);
  Matrix<float> x;
  std::vector<int> y;
  EXPECT_THROW(sampler.next(wrong, labels, x, y), Error);
}
