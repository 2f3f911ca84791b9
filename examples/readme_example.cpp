// The README's usage example (built by the build, run by ctest): fit a 1:4 row-wise sparse linear
// map with TANS and Cannistraci-Hebb topology refresh (CHTsNM), sparse-to-sparse: the layer keeps
// only its compressed active weights, in a loop you write yourself.
#include <iostream>

#include <sparsenm/sparsenm.hpp>

int main() {
  using namespace sparsenm;
  const Index out = 64, in = 128, batch = 256;
  const Philox rng(42);  // counter-based: the same numbers for any thread count
  const Matrix<float> x = uniform_matrix<float>(batch, in, rng.split(1)).array() - 0.5f;
  const Matrix<float> teacher = uniform_matrix<float>(out, in, rng.split(2)).array() - 0.5f;
  const Matrix<float> y = x * teacher.transpose();

  SparseLinear<float> layer(in, out, {1, 4}, Layout::RowWise, rng.split(3));  // values + indices
  SparseTrainerConfig cfg;  // CHTsNM: TANS + row-wise refresh with Motif Pattern Revisitation
  cfg.weights = WeightOptimizer::Tans, cfg.tans.lr = 0.02;
  cfg.topology.layout = Layout::RowWise, cfg.topology.nm = {1, 4}, cfg.topology.mpr_rho = 0.5;
  cfg.topology.interval = 50, cfg.topology.total_steps = 600;
  SparseTrainer<float> trainer(cfg);  // one object for every layer of a model
  trainer.add(layer);
  for (long step = 1; step <= cfg.topology.total_steps; ++step) {
    const Matrix<float> residual = layer.forward(x) - y;
    layer.backward(residual / float(batch));  // dL/dY of |XWᵀ - Y|² / 2B: fills grad_values()
    trainer.step(step);  // TANS on the active weights; every 50 steps a refresh, state remapped
  }
  const double fit = (layer.forward(x) - y).norm() / y.norm();
  const bool legal = is_rowwise_legal(layer.mask(), cfg.topology.nm);
  std::cout << "1:4 mask legal: " << legal << ", relative residual " << fit
            << " (zero weights give 1), training state " << trainer.state_bytes() << " bytes\n";
  return legal && fit < 0.9 ? 0 : 1;
}
