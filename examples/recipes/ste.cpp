// SPDX-License-Identifier: Apache-2.0
// Recipe: STE and SR-STE (CHTsNM App. H.1, H.2; docs/recipes.md). Dense latent weights W; every
// step the forward uses W ⊙ m(W), m(W) the row-wise N:M projection of |W|, and the gradient goes
// straight through to W. SR-STE (`ste --srste`) adds λ_W · W ⊙ (1 − m) to the gradient, which
// pulls the pruned weights towards zero so the mask settles.
#include <cstring>

#include "task.hpp"

int main(int argc, char** argv) {
  using namespace sparsenm;
  const bool srste = argc > 1 && std::strcmp(argv[1], "--srste") == 0;
  const NM nm{2, 4};
  const recipe::Task task(nm);
  DenseLinear<float> layer(task.in, task.out, Philox(1));
  layer.bias().setZero();
  SteConfig sc;
  sc.nm = nm;
  sc.lambda_w = srste ? 2e-4 : 0.0;  // SR-STE decay
  Ste<float> ste(task.out, task.in, sc);
  AdamConfig ac;
  ac.lr = 1e-2;
  Adam<float> adam(task.out, task.in, ac);
  double first = 0;
  for (long step = 1; step <= 300; ++step) {
    ste.forward(layer.weight());          // m(W): magnitude N:M mask of the latent weight
    layer.set_forward_mask(&ste.mask());  // forward with W ⊙ m(W)
    const Matrix<float>& pred = layer.forward(task.x);
    if (step == 1) first = task.loss(pred);
    layer.backward(task.grad(pred));
    adam.step(layer.weight(),
              ste.backward(layer.grad_weight(), layer.weight()));  // straight through
  }
  // Deploy: the final mask, applied for good.
  ste.forward(layer.weight());
  const Mask mask = ste.mask();
  apply_mask(layer.weight(), mask);
  layer.set_forward_mask(nullptr);
  const double final_loss = task.loss(layer.forward(task.x));
  return recipe::report(srste ? "sr-ste" : "ste", first, final_loss, is_rowwise_legal(mask, nm));
}
