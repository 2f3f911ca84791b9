// SPDX-License-Identifier: Apache-2.0
// Recipe: AdamS with learnable weight scaling (CAST Alg. 1; CHTsNM App. H.3; docs/recipes.md).
// The forward weight is Θ ⊙ A (per-group scaling A); AdamS decays the weights outside the current
// N:M mask proportionally (L1 in the first moment) with a strength that ramps up over training, so
// Θ ends close to N:M; finalize() folds A into Θ and projects onto a legal mask.
#include "task.hpp"

int main() {
  using namespace sparsenm;
  const NM nm{2, 4};
  const recipe::Task task(nm);
  const long steps = 300;
  DenseLinear<float> layer(task.in, task.out, Philox(1));
  layer.bias().setZero();
  AdamSConfig cfg;
  cfg.lr = 1e-2;
  cfg.nm = nm;
  cfg.total_steps = steps;  // the decay ramp reaches full strength at the end
  AdamS<float> adams(task.out, task.in, cfg);
  Matrix<float> theta = layer.weight();  // the latent weight Θ
  double first = 0;
  for (long step = 1; step <= steps; ++step) {
    layer.weight() = adams.scaled_weight(theta);  // forward weight Θ ⊙ A
    const Matrix<float>& pred = layer.forward(task.x);
    if (step == 1) first = task.loss(pred);
    layer.backward(task.grad(pred));
    adams.step(theta, layer.grad_weight());  // Θ and A
  }
  const Mask mask = adams.finalize(theta);  // folds A, projects, zeroes the rest
  layer.weight() = theta;
  const double final_loss = task.loss(layer.forward(task.x));
  return recipe::report("adams", first, final_loss, is_rowwise_legal(mask, nm));
}
