// SPDX-License-Identifier: Apache-2.0
// Recipe: SparseForge (SparseForge Alg. 1, Sec. 3.3, 4.1-4.3; docs/recipes.md): dense latent
// weights W under a soft mask that anneals to a hard N:M mask. Every update_interval steps a
// Hutchinson probe refreshes an estimate of the Hessian diagonal H; the scores (H + ε) ⊙ W² drive
// the group-wise soft gates; the forward uses W ⊙ m_eff and the gradient goes straight to W.
#include <algorithm>

#include "task.hpp"

int main() {
  using namespace sparsenm;
  const NM nm{2, 4};
  const recipe::Task task(nm);
  const long steps = 300;
  DenseLinear<float> layer(task.in, task.out, Philox(1));
  layer.bias().setZero();
  Matrix<float> theta = layer.weight();                  // the latent weight W
  SoftMaskConfig sc = SoftMaskConfig::for_steps(steps);  // the release's schedule, scaled
  sc.nm = nm;
  sc.layout = Layout::RowWise;
  SoftMaskAnnealer<float> annealer(task.out, task.in, sc);
  HutchinsonDiagonal<float> hessian(task.out, task.in, 0.99);
  // This layer's loss is |X Wᵀ - Y|² / 2B: its Hessian-vector product is exact, V XᵀX / B (for a
  // deep model use finite_difference_hvp with your gradient, as examples/fashion_mnist.cpp does).
  const LinearSquaredLossHvp<float> hvp(task.x);
  AdamConfig ac;
  ac.lr = 1e-2;
  Adam<float> adam(task.out, task.in, ac);
  double first = 0;
  for (long step = 1; step <= steps; ++step) {
    layer.weight() = theta.cwiseProduct(annealer.effective_mask(step));  // W ⊙ m_eff
    const Matrix<float>& pred = layer.forward(task.x);
    if (step == 1) first = task.loss(pred);
    layer.backward(task.grad(pred));
    adam.step(theta, layer.grad_weight());  // straight-through gradient for W
    if (annealer.due(step)) {
      hessian.update(hvp, Philox(3).split(std::uint64_t(step)));  // Rademacher probe of diag(H)
      annealer.update(hessian.diagonal(), theta, step);           // scores, gates, mask EMA
    }
  }
  const Mask mask = annealer.finalize();  // the hard, legal N:M mask
  layer.weight() = theta;
  apply_mask(layer.weight(), mask);
  const double final_loss = task.loss(layer.forward(task.x));
  return recipe::report("sparseforge", first, final_loss, is_rowwise_legal(mask, nm));
}
