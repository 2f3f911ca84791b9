// SPDX-License-Identifier: Apache-2.0
// The checkpoint reader's harness (SparseTrainer::restore, nn/sparse_trainer.hpp), run by the
// libFuzzer target fuzz_checkpoint.cpp and by the suite's replay (fuzz/replay.cpp).
//
// Contract: restore() either throws sparsenm::Error and leaves the trainer exactly as it was
// ("load nothing": its next checkpoint is byte-identical to the one before), or it succeeds, and
// then the trainer's state is one the library can use: its checkpoint restores again to the same
// bytes, the compressed weight passes check_compressed, and further training steps (forward,
// backward, optimizer, topology refresh) run without a crash. Training on restored non-finite
// values may throw sparsenm::Error (the optimizers' documented NonFinite policy); nothing else may.
#ifndef SPARSENM_FUZZ_CHECKPOINT_HARNESS_HPP
#define SPARSENM_FUZZ_CHECKPOINT_HARNESS_HPP

#include <cstdint>
#include <string>

#include <sparsenm/nn.hpp>

#include "harness.hpp"

namespace sparsenm_fuzz {

/// The model every checkpoint seed was written by: one 8 -> 8 sparse layer (2:4, with bias), a
/// dense 3 x 8 head and its bias, trained by a SparseTrainer with a refresh every 2 steps.
struct CheckpointModel {
  sparsenm::SparseLinear<float> hidden;
  sparsenm::Matrix<float> head, head_grad;
  sparsenm::Vector<float> head_bias, head_bias_grad;
  sparsenm::SparseTrainer<float> trainer;

  CheckpointModel(sparsenm::WeightOptimizer opt, sparsenm::Layout layout)
      : hidden(8, 8, {2, 4}, layout, sparsenm::Philox(5), true),
        head(sparsenm::Matrix<float>::Constant(3, 8, 0.25f)),
        head_grad(3, 8),
        head_bias(sparsenm::Vector<float>::Zero(3)),
        head_bias_grad(3),
        trainer(config(opt, layout)) {
    trainer.add(hidden);
    trainer.add(head, head_grad);
    trainer.add(head_bias, head_bias_grad);
  }

  static sparsenm::SparseTrainerConfig config(sparsenm::WeightOptimizer opt,
                                              sparsenm::Layout layout) {
    sparsenm::SparseTrainerConfig c;
    c.weights = opt;
    c.topology.layout = layout;
    c.topology.nm = {2, 4};
    c.topology.interval = 2;
    c.topology.total_steps = 1000;
    c.topology.zeta = 0.5;
    c.topology.mpr_rho = layout == sparsenm::Layout::RowWise ? 0.5 : 0.0;
    c.seed = 11;
    return c;
  }

  /// Steps first..last on inputs that depend only on the step (a squared loss against 1).
  void train(long first, long last) {
    for (long step = first; step <= last; ++step) {
      sparsenm::Matrix<float> x(4, 8);
      for (sparsenm::Index i = 0; i < x.size(); ++i)
        x.data()[i] = float((i * 7 + step * 3) % 11) / 11.0f - 0.4f;
      const sparsenm::Matrix<float> h = hidden.forward(x).cwiseMax(0.0f);
      const sparsenm::Matrix<float> y = (h * head.transpose()).rowwise() + head_bias.transpose();
      const sparsenm::Matrix<float> dy = (y.array() - 1.0f).matrix() / 4.0f;
      head_grad.noalias() = dy.transpose() * h;
      head_bias_grad = dy.colwise().sum().transpose();
      const sparsenm::Matrix<float> dh =
          (dy * head).cwiseProduct((h.array() > 0.0f).cast<float>().matrix());
      hidden.backward(dh);
      trainer.step(step);
    }
  }

  std::string bytes() { return sparsenm::safetensors_bytes(trainer.checkpoint()); }
};

inline sparsenm::WeightOptimizer optimizer_named(const std::string& name) {
  return name == "tans"   ? sparsenm::WeightOptimizer::Tans
         : name == "muon" ? sparsenm::WeightOptimizer::Muon
                          : sparsenm::WeightOptimizer::Adam;
}

/// Checkpoint files: parse, then restore into the model of the seeds (optimizer and layout taken
/// from the file's metadata so mutations reach the tensor checks, not only the signature check).
inline int fuzz_checkpoint_one(const std::uint8_t* data, std::size_t size) {
  sparsenm::SafetensorsFile f;
  try {
    f = sparsenm::parse_safetensors(data, size);
  } catch (const sparsenm::Error&) {
    return 0;  // the safetensors harness covers the reader itself
  }
  const auto format = f.metadata.find("format");
  if (format == f.metadata.end() || format->second != "sparsenm-trainer-v1") return 0;
  const auto weights = f.metadata.find("weights");
  const auto layer = f.metadata.find("sparse.0");
  const bool transposable =
      layer != f.metadata.end() && layer->second.find("transposable") != std::string::npos;
  CheckpointModel model(optimizer_named(weights == f.metadata.end() ? "" : weights->second),
                        transposable ? sparsenm::Layout::Transposable : sparsenm::Layout::RowWise);
  const std::string before = model.bytes();
  try {
    model.trainer.restore(f);
  } catch (const sparsenm::Error&) {
    SPARSENM_FUZZ_ASSERT(model.bytes() == before);  // rejected: nothing changed
    return 0;
  }
  const std::string restored = model.bytes();
  try {
    sparsenm::check_compressed(model.hidden.weight(), "fuzz: restored weight");
  } catch (const sparsenm::Error&) {
    SPARSENM_FUZZ_ASSERT(false && "restore accepted an invalid compressed weight");
  }
  {
    // What a trainer wrote it reads back, unchanged.
    const sparsenm::SafetensorsFile again = sparsenm::parse_safetensors(
        reinterpret_cast<const std::uint8_t*>(restored.data()), restored.size());
    CheckpointModel other(optimizer_named(weights->second), model.hidden.layout());
    try {
      other.trainer.restore(again);
    } catch (const sparsenm::Error&) {
      SPARSENM_FUZZ_ASSERT(false && "a trainer's own checkpoint was rejected");
    }
    SPARSENM_FUZZ_ASSERT(other.bytes() == restored);
  }
  const long step = model.trainer.last_step();
  if (step >= 0 && step < (1L << 40)) {
    try {
      model.train(step + 1, step + 2);  // optimizer steps and one refresh (interval 2)
    } catch (const sparsenm::Error&) {
      // e.g. non-finite restored values under NonFinite::Throw: a documented rejection
    }
  }
  return 0;
}

}  // namespace sparsenm_fuzz

#endif  // SPARSENM_FUZZ_CHECKPOINT_HARNESS_HPP
