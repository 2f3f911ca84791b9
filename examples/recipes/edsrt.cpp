// SPDX-License-Identifier: Apache-2.0
// Recipe: eDSrT (CHTs24 Sec. 3.3.1; docs/recipes.md): train dense for a while, prune onto the
// legal N:M set by magnitude, then continue sparse-to-sparse with dynamic retraining (the CHTs24
// refresh with Adam) from the pruned weights.
#include "task.hpp"

int main() {
  using namespace sparsenm;
  const NM nm{2, 4};
  const Layout layout = Layout::Transposable;
  const recipe::Task task(nm);
  const long dense_steps = 100, sparse_steps = 200;
  DenseLinear<float> dense(task.in, task.out, Philox(1));
  dense.bias().setZero();
  AdamConfig ac;
  ac.lr = 1e-2;
  Adam<float> adam(task.out, task.in, ac);
  double first = 0;
  for (long step = 1; step <= dense_steps; ++step) {  // 1. dense phase
    const Matrix<float>& pred = dense.forward(task.x);
    if (step == 1) first = task.loss(pred);
    dense.backward(task.grad(pred));
    adam.step(dense.weight(), dense.grad_weight());
  }
  // 2. prune: the legal mask with the largest |W| (zeroes the rest of W in place)
  const Mask mask = edsrt_prune<float>(dense.weight(), nm, layout);
  SparseLinear<float> layer(task.in, task.out, nm, layout, Philox(2));
  layer.set_weight(dense.weight(), mask);  // from here on the compressed layer is the only copy
  // 3. dynamic sparse retraining
  SparseTrainerConfig cfg;
  cfg.adam = ac;
  cfg.topology.layout = layout;
  cfg.topology.nm = nm;
  cfg.topology.interval = 25;
  cfg.topology.total_steps = sparse_steps;
  SparseTrainer<float> trainer(cfg);
  trainer.add(layer);
  double loss = 0;
  for (long step = 1; step <= sparse_steps; ++step) {
    const Matrix<float> pred = layer.forward(task.x);
    loss = task.loss(pred);
    layer.backward(task.grad(pred));
    trainer.step(step);
  }
  return recipe::report("edsrt", first, loss, is_legal(layer.mask(), nm, layout));
}
