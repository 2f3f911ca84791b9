// SPDX-License-Identifier: Apache-2.0
// The small model the trainer tests share (tests/nn, tests/mpi): a sparse 32 -> 24 hidden layer
// (1:4, with bias) -> ReLU -> dense 24 -> 6 head, squared loss against 1, trained by one
// SparseTrainer with a refresh every 3 steps. Each step's global batch of 12 rows depends only on
// the step, so runs, resumed runs and data-parallel shards can be compared bit for bit.
#ifndef SPARSENM_TESTS_COMMON_TINY_MODEL_HPP
#define SPARSENM_TESTS_COMMON_TINY_MODEL_HPP

#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <sparsenm/nn.hpp>
#include <sparsenm/train/dense_linear.hpp>

namespace sparsenm_test {

template <class S>
sparsenm::Matrix<S> random_matrix(sparsenm::Index rows, sparsenm::Index cols, std::uint64_t seed,
                                  double lo = -1, double hi = 1) {
  const sparsenm::Philox rng(seed);
  sparsenm::Matrix<S> m(rows, cols);
  for (sparsenm::Index i = 0; i < m.size(); ++i)
    m.data()[i] = S(lo + (hi - lo) * rng.uniform(std::uint64_t(i)));
  return m;
}

/// A scratch file name unique to this test and process: ctest runs every test (and each
/// parameterisation) as its own process, in parallel, so a fixed name would be shared.
inline std::string scratch_file(const std::string& stem) {
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = t ? std::string(t->test_suite_name()) + "." + t->name() : "none";
  for (char& c : name)
    if (c == '/' || c == ' ') c = '_';
  return ::testing::TempDir() + "sparsenm_" + stem + "_" + name + "_" + std::to_string(::getpid()) +
         ".safetensors";
}

struct TinyModel {
  static constexpr sparsenm::Index kBatch = 12;  ///< the global batch of every step

  sparsenm::SparseLinear<float> hidden;
  sparsenm::DenseLinear<float> head;
  sparsenm::SparseTrainer<float> trainer;

  TinyModel(sparsenm::WeightOptimizer opt, sparsenm::Layout layout, std::uint64_t seed)
      : hidden(32, 24, {1, 4}, layout, sparsenm::Philox(seed), true),
        head(24, 6, sparsenm::Philox(seed + 1)),
        trainer(config(opt, layout)) {
    trainer.add(hidden);
    trainer.add(head.weight(), head.grad_weight());
    trainer.add(head.bias(), head.grad_bias());
  }

  static sparsenm::SparseTrainerConfig config(sparsenm::WeightOptimizer opt,
                                              sparsenm::Layout layout) {
    sparsenm::SparseTrainerConfig c;
    c.weights = opt;
    c.adam.lr = 1e-2;
    c.tans.lr = 1e-2;
    c.muon.lr = 1e-2;
    c.topology.layout = layout;
    c.topology.nm = {1, 4};
    c.topology.interval = 3;
    c.topology.total_steps = 40;
    c.topology.zeta = 0.3;
    c.topology.mpr_rho = layout == sparsenm::Layout::RowWise ? 0.5 : 0.0;
    c.seed = 17;
    return c;
  }

  /// Forward and backward on rows [begin, begin + count) of the step's global batch, the loss
  /// averaged over those rows: fills the gradients the trainer reads.
  void backward(long step, sparsenm::Index begin = 0, sparsenm::Index count = kBatch) {
    const sparsenm::Matrix<float> x =
        random_matrix<float>(kBatch, 32, 1000 + std::uint64_t(step)).middleRows(begin, count);
    const sparsenm::Matrix<float> h = hidden.forward(x).cwiseMax(0.0f);
    const sparsenm::Matrix<float> y = head.forward(h);
    const sparsenm::Matrix<float> dy = (y - sparsenm::Matrix<float>::Ones(count, 6)) / float(count);
    sparsenm::Matrix<float> dh = head.backward(dy);
    dh = dh.cwiseProduct((h.array() > 0.0f).cast<float>().matrix());
    hidden.backward(dh);
  }

  /// Steps first..last on the whole global batch.
  void train(long first, long last) {
    for (long step = first; step <= last; ++step) {
      backward(step);
      trainer.step(step);
    }
  }

  /// Copies of the gradients the next step reads (SparseTrainer::visit_gradients order).
  std::vector<sparsenm::Matrix<float>> gradients() {
    std::vector<sparsenm::Matrix<float>> g;
    trainer.visit_gradients([&](Eigen::Map<sparsenm::Matrix<float>> m) { g.emplace_back(m); });
    return g;
  }

  bool same_as(const TinyModel& o) const {
    return hidden.weight().values == o.hidden.weight().values &&
           hidden.weight().indices == o.hidden.weight().indices &&
           hidden.bias() == o.hidden.bias() && head.weight() == o.head.weight() &&
           head.bias() == o.head.bias();
  }
};

}  // namespace sparsenm_test

#endif  // SPARSENM_TESTS_COMMON_TINY_MODEL_HPP
