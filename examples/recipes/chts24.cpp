// SPDX-License-Identifier: Apache-2.0
// Recipe: CHTs24, transposable 2:4 dynamic sparse training (CHTs24 Alg. 1, Sec. 3.2-3.3, App. J;
// docs/recipes.md), sparse-to-sparse: the layer stores only its active weights, Adam keeps state
// for them only, and every `interval` steps the topology refresher removes a fraction of the
// weights (Fréchet soft removal) and regrows links by CH2-L3n link prediction, projected onto the
// transposable pattern (so the transposed weight of the backward pass is 2:4 too). Then the
// deployment export (docs/file-formats.md): `chts24 DIR` writes DIR/model.safetensors in the
// compressed form (values, indices, NVIDIA 2:4 metadata) and DIR/layer.npy, the dense reference
// docs/load_compressed.py compares with.
#include <string>

#include "task.hpp"

int main(int argc, char** argv) {
  using namespace sparsenm;
  const NM nm{2, 4};
  const recipe::Task task(nm);
  SparseLinear<float> layer(task.in, task.out, nm, Layout::Transposable, Philox(1));
  SparseTrainerConfig cfg;  // Adam on the values; refresh on
  cfg.adam.lr = 1e-2;
  cfg.topology.layout = Layout::Transposable;
  cfg.topology.nm = nm;
  cfg.topology.interval = 25;
  cfg.topology.total_steps = 300;
  SparseTrainer<float> trainer(cfg);
  trainer.add(layer);
  double first = 0, loss = 0;
  for (long step = 1; step <= cfg.topology.total_steps; ++step) {
    const Matrix<float> pred = layer.forward(task.x);
    loss = task.loss(pred);
    if (step == 1) first = loss;
    layer.backward(task.grad(pred));  // grad_values(): active entries only
    trainer.step(step);               // Adam, then the refresh when due (state follows weights)
  }
  if (argc > 1) {  // deployment export
    const std::string dir = argv[1];
    SafetensorsFile file;
    add_compressed(file, "layer", layer.weight());
    set_nm_metadata(file, NMMetadata{nm, Layout::Transposable, "chts24"});
    save_safetensors(dir + "/model.safetensors", file);
    save_npy(dir + "/layer.npy", layer.dense_weight());
  }
  return recipe::report("chts24", first, loss, is_transposable_legal(layer.mask(), nm));
}
