// SPDX-License-Identifier: Apache-2.0
// Recipe: dense training, the reference every sparse method is compared with (docs/recipes.md).
// A DenseLinear layer (OpenBLAS GEMMs) and Adam on every weight.
#include "task.hpp"

int main() {
  using namespace sparsenm;
  const recipe::Task task(NM{2, 4});
  DenseLinear<float> layer(task.in, task.out, Philox(1));
  layer.bias().setZero();  // the task has no bias; only the weight is trained
  AdamConfig cfg;
  cfg.lr = 1e-2;
  Adam<float> adam(task.out, task.in, cfg);
  double first = 0, loss = 0;
  for (long step = 1; step <= 300; ++step) {
    const Matrix<float>& pred = layer.forward(task.x);
    loss = task.loss(pred);
    if (step == 1) first = loss;
    layer.backward(task.grad(pred));                 // fills grad_weight()
    adam.step(layer.weight(), layer.grad_weight());  // every weight
  }
  return recipe::report("dense", first, loss, true);
}
