// SPDX-License-Identifier: Apache-2.0
// 1:4 sparse-to-sparse training (CHTsNM: TANS + topology refresh) of one layer, y = x Wᵀ.
#include <iostream>

#include <sparsenm/sparsenm.hpp>

int main() {
  using namespace sparsenm;
  const Philox rng(42);  // counter-based: the same numbers for any thread count
  const Matrix<float> x = uniform_matrix<float>(256, 128, rng.split(1)).array() - 0.5f;
  const Matrix<float> w = uniform_matrix<float>(64, 128, rng.split(2)).array() - 0.5f;
  const Matrix<float> y = x * w.transpose();                                  // the target
  SparseLinear<float> layer(128, 64, {1, 4}, Layout::RowWise, rng.split(3));  // values + indices
  SparseTrainerConfig cfg;  // TANS on the active weights, row-wise refresh with MPR
  cfg.weights = WeightOptimizer::Tans, cfg.tans.lr = 0.02;
  cfg.topology.layout = Layout::RowWise, cfg.topology.nm = {1, 4}, cfg.topology.mpr_rho = 0.5;
  cfg.topology.interval = 50, cfg.topology.total_steps = 600;
  SparseTrainer<float> trainer(cfg);  // one object for every layer of a model
  trainer.add(layer);
  for (long step = 1; step <= 600; ++step) {
    layer.backward((layer.forward(x) - y) / 256.0f);  // dL/dY of |x Wᵀ - y|² / 2B
    trainer.step(step);                               // TANS, then a refresh every 50 steps
  }
  const double fit = (layer.forward(x) - y).norm() / y.norm();  // 1 for zero weights
  const bool legal = is_rowwise_legal(layer.mask(), {1, 4});
  std::cout << "1:4 mask legal: " << legal << ", relative residual " << fit << "\n";
  return legal && fit < 0.9 ? 0 : 1;
}
