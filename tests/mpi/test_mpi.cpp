// SPDX-License-Identifier: Apache-2.0
// Data-parallel training (sparsenm/mpi.hpp), run under mpiexec with 1, 2 and 3 ranks. References
// are computed by every rank on its own, without communication: the rank-order sum of all ranks'
// gradients (each rank can generate every rank's data from the seed), and a single process that
// trains on the global batch by accumulating the shards' gradients in rank order.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <sparsenm/mpi.hpp>
#include <sparsenm/train/dense_linear.hpp>

#include "common/tiny_model.hpp"

namespace {

using namespace sparsenm;

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int k = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &k);
  return k;
}

using sparsenm_test::random_matrix;

TEST(Shard, EqualDisjointSlicesInRankOrder) {
  for (int k = 1; k <= 4; ++k) {
    Index next = 0;
    for (int r = 0; r < k; ++r) {
      const Shard s = shard_of(12, r, k);
      EXPECT_EQ(s.begin, next);
      EXPECT_EQ(s.count, 12 / k);
      next += s.count;
    }
    EXPECT_EQ(next, 12);
  }
  EXPECT_THROW(shard_of(10, 0, 4), Error);  // not a multiple
  EXPECT_THROW(shard_of(0, 0, 1), Error);
  EXPECT_THROW(shard_of(8, 2, 2), Error);  // rank out of range
  EXPECT_THROW(shard_of(8, -1, 2), Error);
  MpiConfig tiny;
  tiny.bucket_bytes = 8;  // < 64 B
  EXPECT_THROW(tiny.validate(), Error);
}

// The window copy (streaming stores past an element-wise head) against std::memcpy, for every
// alignment of the target within a 16-byte line and lengths around the 16-byte steps; the bytes
// around the target stay untouched.
TEST(StreamCopy, EqualsMemcpyForEveryAlignmentAndLength) {
  std::vector<float> src(300);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = float(i) * 0.5f - 7.0f;
  std::vector<double> srcd(120);
  for (std::size_t i = 0; i < srcd.size(); ++i) srcd[i] = double(i) * 0.25 + 1.0;
  for (std::size_t shift = 0; shift < 4; ++shift) {
    for (std::size_t n : {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 255, 299}) {
      std::vector<float> dst(320, -1.0f), want(320, -1.0f);
      detail::stream_copy(src.data(), dst.data() + shift, n);
      std::memcpy(want.data() + shift, src.data(), n * sizeof(float));
      EXPECT_EQ(0, std::memcmp(dst.data(), want.data(), dst.size() * sizeof(float)))
          << "float shift " << shift << " n " << n;
    }
    for (std::size_t n : {0, 1, 2, 3, 5, 8, 63, 117}) {
      std::vector<double> dst(124, -1.0), want(124, -1.0);
      detail::stream_copy(srcd.data() + 1, dst.data() + shift, n);
      std::memcpy(want.data() + shift, srcd.data() + 1, n * sizeof(double));
      EXPECT_EQ(0, std::memcmp(dst.data(), want.data(), dst.size() * sizeof(double)))
          << "double shift " << shift << " n " << n;
    }
  }
}

// Gradients of three shapes, summed over the ranks and averaged, against the rank-order sum
// computed locally; buckets small enough that pieces span several of them, and one large bucket.
// Ordered runs through the shared window (one node) or the all-gather: the same bits either way.
class AllReduce : public ::testing::TestWithParam<std::tuple<MpiReduction, std::size_t, bool>> {};

TEST_P(AllReduce, AveragesEqualTheRankOrderSum) {
  const auto [reduction, bucket, shared] = GetParam();
  MpiConfig cfg;
  cfg.reduction = reduction;
  cfg.bucket_bytes = bucket;
  cfg.shared_memory = shared;
  MpiDataParallel<float> dp(MPI_COMM_WORLD, cfg);
  const int K = dp.size(), me = dp.rank();
  // ctest runs every rank on this machine: one node.
  EXPECT_EQ(dp.uses_shared_memory(), shared && reduction == MpiReduction::Ordered && K > 1);
  const std::vector<std::pair<Index, Index>> shapes = {{7, 13}, {1, 5}, {64, 33}};
  std::vector<Matrix<float>> mine;
  for (std::size_t t = 0; t < shapes.size(); ++t)
    mine.push_back(random_matrix<float>(shapes[t].first, shapes[t].second, 1000 * me + t));
  for (Matrix<float>& g : mine) dp.post(Eigen::Map<Matrix<float>>(g.data(), g.rows(), g.cols()));
  dp.wait();
  std::size_t payload = 0;
  for (std::size_t t = 0; t < shapes.size(); ++t) {
    Matrix<float> sum = random_matrix<float>(shapes[t].first, shapes[t].second, t);
    for (int r = 1; r < K; ++r)
      sum += random_matrix<float>(shapes[t].first, shapes[t].second, 1000 * r + t);
    if (K > 1) sum *= 1.0f / float(K);
    payload += std::size_t(sum.size()) * sizeof(float);
    if (reduction == MpiReduction::Ordered || K <= 2) {
      // Two addends commute exactly, so with 2 ranks any MPI algorithm gives these bits too.
      EXPECT_TRUE(mine[t] == sum) << "tensor " << t;
    } else {
      EXPECT_LE((mine[t] - sum).cwiseAbs().maxCoeff(), 4e-7f * float(K)) << "tensor " << t;
    }
  }
  EXPECT_EQ(dp.payload_bytes(), payload);
  if (reduction == MpiReduction::Ordered) {
    EXPECT_EQ(dp.sent_bytes(), std::size_t(K - 1) * payload);
  }
  // Nothing posted: wait() has nothing to do (no window exists yet on a fresh object either).
  MpiDataParallel<float> idle(MPI_COMM_WORLD, cfg);
  EXPECT_NO_THROW(idle.wait());
  EXPECT_EQ(idle.payload_bytes(), 0u);
  // The object is reusable: a second round with other data.
  Matrix<float> again = Matrix<float>::Constant(3, 3, float(me + 1));
  dp.post(Eigen::Map<Matrix<float>>(again.data(), 3, 3));
  dp.wait();
  EXPECT_FLOAT_EQ(again(0, 0), float(K + 1) / 2.0f);  // mean of 1..K
  // A third round larger than the first (the shared window grows, collectively), then a small one
  // that reuses it: both against the rank-order sum.
  for (const Index rows : {Index(300), Index(2)}) {
    Matrix<float> big = random_matrix<float>(rows, 301, 7000 + 100 * me + rows);
    dp.post(Eigen::Map<Matrix<float>>(big.data(), big.rows(), big.cols()));
    dp.wait();
    Matrix<float> sum = random_matrix<float>(rows, 301, 7000 + rows);
    for (int r = 1; r < K; ++r) sum += random_matrix<float>(rows, 301, 7000 + 100 * r + rows);
    if (K > 1) sum *= 1.0f / float(K);
    if (reduction == MpiReduction::Ordered || K <= 2)
      EXPECT_TRUE(big == sum) << rows << " rows";
    else
      EXPECT_LE((big - sum).cwiseAbs().maxCoeff(), 4e-7f * float(K)) << rows << " rows";
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, AllReduce,
    ::testing::Combine(::testing::Values(MpiReduction::Ordered, MpiReduction::Native),
                       ::testing::Values(std::size_t(64), std::size_t(4) << 20),
                       ::testing::Bool()));

using sparsenm_test::TinyModel;

class DataParallel : public ::testing::TestWithParam<std::tuple<WeightOptimizer, Layout, bool>> {};

// K ranks with shards of a global batch of 12 == one process accumulating the K shards'
// gradients in rank order, bit for bit, through steps and refreshes (every 3 steps); the masks
// agree without any mask traffic, and a checkpoint written by rank 0 loads on every rank.
TEST_P(DataParallel, RanksMatchOneProcessAccumulatingTheShards) {
  const auto [opt, layout, shared] = GetParam();
  MpiConfig cfg;
  cfg.shared_memory = shared;
  MpiDataParallel<float> dp(MPI_COMM_WORLD, cfg);
  const int K = dp.size();
  if (TinyModel::kBatch % K != 0) GTEST_SKIP() << K << " ranks do not divide the batch of 12";
  TinyModel ranked(opt, layout, 3), single(opt, layout, 3), whole(opt, layout, 3);
  long refreshes = 0;
  for (long step = 1; step <= 10; ++step) {
    const Shard mine = shard_of(TinyModel::kBatch, dp.rank(), K);
    ranked.backward(step, mine.begin, mine.count);
    if (step == 1) {
      // The averaged shard gradients are the whole batch's gradients, up to rounding.
      dp.all_reduce_gradients(ranked.trainer);
      whole.backward(step);
      const std::vector<Matrix<float>> a = ranked.gradients(), b = whole.gradients();
      ASSERT_EQ(a.size(), b.size());
      for (std::size_t t = 0; t < a.size(); ++t)
        EXPECT_LE((a[t] - b[t]).cwiseAbs().maxCoeff(), 1e-6f * (1.0f + b[t].cwiseAbs().maxCoeff()))
            << "gradient " << t;
      refreshes += long(ranked.trainer.step(step).size());
    } else {
      refreshes += long(dp.step(ranked.trainer, step).size());
    }
    // The reference: shard r's gradients for r = 0..K-1, summed in rank order, times 1/K.
    std::vector<Matrix<float>> acc;
    for (int r = 0; r < K; ++r) {
      const Shard theirs = shard_of(TinyModel::kBatch, r, K);
      single.backward(step, theirs.begin, theirs.count);
      std::vector<Matrix<float>> g = single.gradients();
      if (r == 0)
        acc = g;
      else
        for (std::size_t t = 0; t < g.size(); ++t) acc[t] += g[t];
    }
    std::size_t t = 0;
    single.trainer.visit_gradients([&](Eigen::Map<Matrix<float>> m) {
      m = acc[t++];
      if (K > 1) m *= 1.0f / float(K);
    });
    single.trainer.step(step);
  }
  EXPECT_TRUE(ranked.same_as(single));
  EXPECT_GE(refreshes, 3);
  EXPECT_EQ(dp.payload_bytes(), std::size_t(ranked.trainer.gradient_count()) * sizeof(float));
  EXPECT_NO_THROW(dp.check_agreement(ranked.trainer));
  // Checkpoint: rank 0 writes, every rank loads into a fresh model and continues identically.
  // One name for all ranks (rank 0 writes it) that differs between the 1/2/3-rank runs ctest
  // may start in parallel, and between the parameterisations: rank 0's scratch name, broadcast.
  std::string path = sparsenm_test::scratch_file("mpi");
  path.resize(1024, '\0');
  MPI_Bcast(path.data(), 1024, MPI_CHAR, 0, MPI_COMM_WORLD);
  path.resize(path.find('\0'));
  dp.save(ranked.trainer, path);
  TinyModel loaded(opt, layout, 99);  // other initial weights: all replaced
  loaded.trainer.load(path);
  EXPECT_TRUE(loaded.same_as(ranked));
  MPI_Barrier(MPI_COMM_WORLD);
  if (dp.rank() == 0) std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    All, DataParallel,
    ::testing::Combine(::testing::Values(WeightOptimizer::Adam, WeightOptimizer::Tans),
                       ::testing::Values(Layout::RowWise, Layout::Transposable),
                       ::testing::Bool()));

// Largest-remainder split: one granule each, the rest within one granule of the proportional
// share, in granules, summing to the batch; a worked case and bad input.
TEST(Balance, SharesAreProportionalInGranules) {
  // speeds 1 : 3, 8 granules of 8 rows: 6 spare -> ideal 1.5 / 4.5, the tie goes to rank 0.
  EXPECT_EQ(detail::balanced_shares(64, 8, {1.0, 3.0}), (std::vector<Index>{24, 40}));
  EXPECT_EQ(detail::balanced_shares(64, 8, {1.0, 1.0}), (std::vector<Index>{32, 32}));
  EXPECT_EQ(detail::balanced_shares(16, 8, {1.0, 1e9}), (std::vector<Index>{8, 8}));
  const Philox rng(5);
  std::uint64_t counter = 0;
  const auto uniform = [&](double lo, double hi) {
    return lo + (hi - lo) * rng.uniform(counter++);
  };
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t k = 1 + std::size_t(uniform(0.0, 5.0));
    const Index g = 1 + Index(uniform(0.0, 16.0));
    const Index units = Index(k) + Index(uniform(0.0, 40.0));
    std::vector<double> speed(k);
    double total = 0;
    for (double& v : speed) total += (v = uniform(0.01, 10.0));
    const std::vector<Index> shares = detail::balanced_shares(units * g, g, speed);
    ASSERT_EQ(shares.size(), k);
    Index sum = 0;
    for (std::size_t r = 0; r < k; ++r) {
      EXPECT_EQ(shares[r] % g, 0);
      EXPECT_GE(shares[r], g);
      const double ideal = double(units - Index(k)) * speed[r] / total;
      EXPECT_LT(std::abs(double(shares[r] / g - 1) - ideal), 1.0) << "trial " << trial;
      sum += shares[r];
    }
    EXPECT_EQ(sum, units * g);
  }
  EXPECT_THROW(detail::balanced_shares(12, 8, {1.0}), Error);       // not a multiple
  EXPECT_THROW(detail::balanced_shares(8, 8, {1.0, 1.0}), Error);   // fewer granules than ranks
  EXPECT_THROW(detail::balanced_shares(16, 8, {1.0, 0.0}), Error);  // speed not positive
  MpiConfig bad;
  bad.balance_granularity = 0;
  EXPECT_THROW(bad.validate(), Error);
  bad = MpiConfig{};
  bad.balance_interval = 0;
  EXPECT_THROW(bad.validate(), Error);
}

// With balancing, a rank slowed down (20 ms of sleep per step on the last rank) is given less of
// the batch, and the share-weighted reduction still gives the whole batch's mean gradient (to
// rounding: 1e-6 relative), so training follows one process on the whole batch.
TEST(Balance, SlowRankGetsLessAndGradientsStayTheBatchMean) {
  MpiConfig cfg;
  cfg.balance = true;
  cfg.balance_granularity = 2;
  cfg.balance_interval = 1;
  MpiDataParallel<float> dp(MPI_COMM_WORLD, cfg);
  const int K = dp.size();
  if (TinyModel::kBatch / cfg.balance_granularity < K) GTEST_SKIP();
  TinyModel ranked(WeightOptimizer::Adam, Layout::RowWise, 3),
      whole(WeightOptimizer::Adam, Layout::RowWise, 3);
  for (long step = 1; step <= 8; ++step) {
    const Shard mine = dp.shard(TinyModel::kBatch);
    ranked.backward(step, mine.begin, mine.count);
    if (K > 1 && dp.rank() == K - 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    dp.all_reduce_gradients(ranked.trainer);
    whole.backward(step);
    const std::vector<Matrix<float>> a = ranked.gradients(), b = whole.gradients();
    for (std::size_t t = 0; t < a.size(); ++t)
      EXPECT_LE((a[t] - b[t]).cwiseAbs().maxCoeff(), 1e-6f * (1.0f + b[t].cwiseAbs().maxCoeff()))
          << "step " << step << " gradient " << t;
    ranked.trainer.step(step);
    whole.trainer.step(step);
  }
  EXPECT_TRUE(ranked.hidden.weight().indices == whole.hidden.weight().indices);
  EXPECT_LE((ranked.hidden.weight().values - whole.hidden.weight().values).cwiseAbs().maxCoeff(),
            1e-5f);
  EXPECT_NO_THROW(dp.check_agreement(ranked.trainer));
  if (K == 1) {
    EXPECT_TRUE(dp.shares().empty());  // one rank: nothing to balance
    return;
  }
  const std::vector<Index>& shares = dp.shares();
  ASSERT_EQ(shares.size(), std::size_t(K));
  Index sum = 0;
  for (const Index n : shares) sum += n;
  EXPECT_EQ(sum, TinyModel::kBatch);
  EXPECT_LT(shares.back(), TinyModel::kBatch / K);
}

// A rank that drifted (here: one weight nudged on the last rank) is caught by the agreement check
// on every rank, with an error naming the step.
TEST(DataParallel, DivergedRankIsDetected) {
  MpiDataParallel<float> dp;
  TinyModel m(WeightOptimizer::Adam, Layout::RowWise, 3);
  const Shard mine = shard_of(TinyModel::kBatch, dp.rank(), dp.size());
  m.backward(1, mine.begin, mine.count);
  dp.step(m.trainer, 1);
  EXPECT_NO_THROW(dp.check_agreement(m.trainer));
  if (dp.size() == 1) return;
  if (dp.rank() == dp.size() - 1) {
    NMCompressed<float> w = m.hidden.weight();
    w.values(0, 0) += 1e-3f;
    m.hidden.set_compressed(w);
  }
  try {
    dp.check_agreement(m.trainer);
    ADD_FAILURE() << "divergence not detected";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("diverged at step 1"), std::string::npos) << e.what();
  }
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  // Only rank 0 prints GoogleTest's report; every rank's result decides the exit status.
  if (world_rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int local = RUN_ALL_TESTS();
  int any = 0;
  MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (world_rank() == 0)
    std::printf("%d rank(s): %s\n", world_size(), any == 0 ? "all passed on every rank" : "FAILED");
  MPI_Finalize();
  return any;
}
