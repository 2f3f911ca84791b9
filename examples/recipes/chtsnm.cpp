// SPDX-License-Identifier: Apache-2.0
// Recipe: CHTsNM (CHTsNM Sec. 3.1-3.4, App. E, H.5; docs/recipes.md): row-wise 1:4 sparse-to-sparse
// training with TANS (masked preconditioned update plus a Newton-Schulz correction projected onto
// the mask, Sec. 3.2) and the topology refresh with Motif Pattern Revisitation (App. E.3).
// `chtsnm --comolora` adds a CoMoLoRA branch (Sec. 3.3): a low-rank update modulated by a small
// gate, y = x Wᵀ + (α/r) ((1 + γ tanh(G(x))) ⊙ x Aᵀ) Bᵀ, trained by Adam through the same trainer.
#include <cstring>
#include <memory>

#include "task.hpp"

int main(int argc, char** argv) {
  using namespace sparsenm;
  const bool lora = argc > 1 && std::strcmp(argv[1], "--comolora") == 0;
  const NM nm{1, 4};
  const recipe::Task task(nm);
  SparseLinear<float> layer(task.in, task.out, nm, Layout::RowWise, Philox(1));
  SparseTrainerConfig cfg;
  cfg.weights = WeightOptimizer::Tans;
  cfg.tans.lr = 0.02;
  cfg.adam.lr = 1e-2;  // the CoMoLoRA branch
  cfg.topology.layout = Layout::RowWise;
  cfg.topology.nm = nm;
  cfg.topology.mpr_rho = 0.5;  // App. H.5: 0.5 for row-wise 1:4, 0.75 for 2:4
  cfg.topology.zeta = 0.3;     // a short run: move 30 % of the links every 10 steps (the paper:
  cfg.topology.interval = 10;  // ζ = 0.1 with adaptive_zeta, hundreds of steps apart, App. H.4)
  cfg.topology.total_steps = 300;
  SparseTrainer<float> trainer(cfg);
  trainer.add(layer);
  std::unique_ptr<CoMoLoRA<float>> branch;
  if (lora) {  // rank 2, gate width 2, γ = 0.5, α = r: starts exactly as the sparse layer (B = 0)
    branch = std::make_unique<CoMoLoRA<float>>(task.in, task.out, 2, 2, 0.5f, 2.0f, Philox(2));
    trainer.add(*branch);
  }
  double first = 0, loss = 0;
  for (long step = 1; step <= cfg.topology.total_steps; ++step) {
    Matrix<float> pred = layer.forward(task.x);
    if (branch) pred += branch->forward(task.x);
    loss = task.loss(pred);
    if (step == 1) first = loss;
    const Matrix<float> dy = task.grad(pred);
    layer.backward(dy);
    if (branch) branch->backward(dy);
    trainer.step(step);  // TANS on the values, Adam on the branch, refresh when due
  }
  return recipe::report(lora ? "chtsnm + comolora" : "chtsnm", first, loss,
                        is_rowwise_legal(layer.mask(), nm));
}
