// SPDX-License-Identifier: Apache-2.0
// Sparse-to-sparse training of a whole model through one object: the optimizer steps of every
// registered parameter, the topology refreshes of every sparse layer with the optimizer state
// following each weight, memory accounting, and checkpoint / resume.
//
// Sparse layers train in compressed form (CHTs24 App. J; CHTsNM Sec. 3.1): their values take the
// weight optimizer (Adam for CHTs24 / eDSrT, TANS for CHTsNM Sec. 3.2, or Muon) with state for the
// active entries only; every `interval` steps a TopologyRefresher (CHTs24 Alg. 1, CHTsNM Sec. 3.4)
// moves the layer to a new topology and the optimizer remaps its state (kept entries keep it,
// regrown ones start from zero). Biases and dense parameters (an output head, CoMoLoRA, ...) take
// Adam. A whole model needs one trainer, not one optimizer object per tensor (example in the
// comment of SparseTrainer).
#ifndef SPARSENM_NN_SPARSE_TRAINER_HPP
#define SPARSENM_NN_SPARSE_TRAINER_HPP

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../io/safetensors.hpp"
#include "../optim/adam.hpp"
#include "../optim/muon.hpp"
#include "../optim/tans.hpp"
#include "../topology/refresh.hpp"
#include "checkpoint.hpp"
#include "comolora.hpp"
#include "sparse_linear.hpp"

namespace sparsenm {

/// The optimizer of the sparse layers' values.
enum class WeightOptimizer {
  Adam,  ///< masked Adam / AdamW on the active entries (CHTs24, eDSrT; CHTsNM App. H baselines)
  Tans,  ///< TANS (CHTsNM Sec. 3.2): preconditioned update + Newton-Schulz correction
  Muon   ///< Muon on the sparse backbone (CHTsNM App. H)
};

/// SparseTrainer settings. `adam` also drives every bias and dense parameter.
///
/// | field     | meaning                                                    | default |
/// |-----------|------------------------------------------------------------|---------|
/// | weights   | optimizer of the sparse values                             | Adam    |
/// | adam      | Adam settings (sparse values with Adam, biases, dense)     | AdamConfig{} |
/// | tans      | TANS settings (weights = Tans)                             | TansConfig{} |
/// | muon      | Muon settings (weights = Muon)                             | MuonConfig{} |
/// | refresh   | dynamic topology (false: a static sparse mask)             | true    |
/// | topology  | refresh settings; nm and layout must match every layer's   | RefreshConfig{} |
/// | seed      | refresher seeds: layer i uses Philox(seed).split(i).stream() | 0     |
struct SparseTrainerConfig {
  WeightOptimizer weights = WeightOptimizer::Adam;  ///< optimizer of the sparse layers' values
  AdamConfig adam;         ///< sparse values (weights = Adam), every bias and dense parameter
  TansConfig tans;         ///< used when weights = Tans (CHTsNM Sec. 3.2)
  MuonConfig muon;         ///< used when weights = Muon (CHTsNM App. H)
  bool refresh = true;     ///< dynamic topology; false keeps every layer's mask fixed
  RefreshConfig topology;  ///< refresh schedule and n:m / layout (CHTs24 Alg. 1, CHTsNM Sec. 3.4)
  std::uint64_t seed = 0;  ///< refresher seeds: layer k gets Philox(seed).split(k).stream()

  /// Throws sparsenm::Error naming the first bad field.
  void validate() const {
    adam.validate();
    tans.validate();
    muon.validate();
    if (refresh) topology.validate();
  }
};

/// Optimizer steps, topology refresh and checkpoints for every registered parameter of a model.
/// Sparse layers train in compressed form (CHTs24 App. J; CHTsNM Sec. 3.1) with the weight
/// optimizer on their active values; every cfg.topology.interval steps (until stop_fraction of
/// total_steps) a TopologyRefresher moves each layer to a new topology and the optimizer state
/// follows (kept entries keep it, regrown ones start from zero). Biases and dense parameters
/// take Adam:
/// \code
///   SparseTrainerConfig cfg;                         // Adam on the sparse values, refresh on
///   cfg.topology.layout = Layout::Transposable;  cfg.topology.nm = {1, 4};
///   cfg.topology.total_steps = steps;
///   SparseTrainer<float> trainer(cfg);
///   trainer.add(hidden1);  trainer.add(hidden2);      // SparseLinear: values, bias, topology
///   trainer.add(head.weight(), head.grad_weight());   // dense parameters: Adam
///   for (long step = 1; step <= steps; ++step) {
///     ... forward, loss, backward ...
///     trainer.step(step);                             // optimizers, then due refreshes
///   }
///   trainer.save("run.ckpt");                         // and trainer.load("run.ckpt") to resume
/// \endcode
/// Parameters are held by reference: they must outlive the trainer and keep their shapes.
/// Bit-identical for any thread count (every piece is).
template <class S>
class SparseTrainer {
 public:
  /// An empty trainer; throws sparsenm::Error naming the first bad field of `cfg` (validate()).
  explicit SparseTrainer(SparseTrainerConfig cfg = {}) : m_cfg(std::move(cfg)) { m_cfg.validate(); }

  /// Registers a sparse layer: its values take the weight optimizer (compressed route), its bias
  /// Adam, and with cfg.refresh it gets a TopologyRefresher (the k-th layer added is seeded with
  /// Philox(cfg.seed).split(k)). Throws if the layer's n:m or layout differ from cfg.topology's.
  void add(SparseLinear<S>& layer) {
    if (m_cfg.refresh)
      SPARSENM_CHECK(layer.nm() == m_cfg.topology.nm && layer.layout() == m_cfg.topology.layout,
                     "SparseTrainer::add: layer is ", layer.nm(), " ", to_string(layer.layout()),
                     " but the refresh is configured for ", m_cfg.topology.nm, " ",
                     to_string(m_cfg.topology.layout));
    SparseEntry e{&layer, make_weight_optimizer(layer), nullptr, nullptr};
    if (layer.has_bias()) e.bias = std::make_unique<Adam<S>>(1, layer.out(), m_cfg.adam);
    if (m_cfg.refresh) {
      const std::uint64_t seed =
          Philox(m_cfg.seed).split(static_cast<std::uint64_t>(m_sparse.size())).stream();
      e.topology = std::make_unique<TopologyRefresher<S>>(m_cfg.topology, seed);
    }
    m_sparse.push_back(std::move(e));
  }

  /// Registers a dense parameter and the matrix its gradient is written to (Adam).
  void add(Matrix<S>& value, const Matrix<S>& grad) {
    add_dense(
        [&value] { return Eigen::Map<Matrix<S>>(value.data(), value.rows(), value.cols()); },
        [&grad] { return Eigen::Map<const Matrix<S>>(grad.data(), grad.rows(), grad.cols()); },
        value.rows(), value.cols());
  }
  /// Registers a dense vector parameter (e.g. a bias) and its gradient (Adam).
  void add(Vector<S>& value, const Vector<S>& grad) {
    add_dense([&value] { return Eigen::Map<Matrix<S>>(value.data(), 1, value.size()); },
              [&grad] { return Eigen::Map<const Matrix<S>>(grad.data(), 1, grad.size()); }, 1,
              value.size());
  }
  /// Registers every parameter of a CoMoLoRA branch (Adam, as in CHTsNM Sec. 3.3).
  void add(CoMoLoRA<S>& branch) {
    const std::vector<Matrix<S>*> p = branch.parameters();
    const std::vector<const Matrix<S>*> g = branch.gradients();
    for (std::size_t i = 0; i < p.size(); ++i) add(*p[i], *g[i]);
  }

  /// One training step: every optimizer steps with the gradients of the last backward pass, then
  /// every sparse layer whose refresher is due(step) is refreshed and its optimizer state remapped.
  /// Returns the refresh results of this step (one per refreshed layer, in registration order).
  const std::vector<RefreshResult>& step(long step) {
    for (SparseEntry& e : m_sparse) {
      std::visit([&](auto& opt) { e.layer->step(opt); }, e.weights);
      if (e.bias)
        e.bias->step(Eigen::Map<Matrix<S>>(e.layer->bias().data(), 1, e.layer->out()),
                     Eigen::Map<const Matrix<S>>(e.layer->grad_bias().data(), 1, e.layer->out()));
    }
    for (DenseEntry& d : m_dense) d.adam.step(d.value(), d.grad());
    m_refreshed.clear();
    for (SparseEntry& e : m_sparse) {
      if (!e.topology || !e.topology->due(step)) continue;
      m_refreshed.push_back(e.layer->refresh(*e.topology, step));
      std::visit([&](auto& opt) { opt.remap(m_refreshed.back().slots); }, e.weights);
    }
    m_step = step;
    return m_refreshed;
  }

  /// Sets the step size of every optimizer (learning-rate schedules).
  void set_lr(double lr) {
    for (SparseEntry& e : m_sparse) {
      std::visit([&](auto& opt) { opt.set_lr(lr); }, e.weights);
      if (e.bias) e.bias->set_lr(lr);
    }
    for (DenseEntry& d : m_dense) d.adam.set_lr(lr);
  }

  /// Persistent optimizer state in bytes (moments, V, P, momentum) of every registered parameter.
  std::size_t optimizer_bytes() const {
    std::size_t b = 0;
    for (const SparseEntry& e : m_sparse) {
      b += std::visit([](const auto& opt) { return opt.state_bytes(); }, e.weights);
      if (e.bias) b += e.bias->state_bytes();
    }
    for (const DenseEntry& d : m_dense) b += d.adam.state_bytes();
    return b;
  }
  /// Training state of the model between steps: the sparse layers' state_bytes(), every dense
  /// parameter's value and gradient, and optimizer_bytes().
  std::size_t state_bytes() const {
    std::size_t b = optimizer_bytes();
    for (const SparseEntry& e : m_sparse) b += e.layer->state_bytes();
    for (const DenseEntry& d : m_dense)  // value + gradient
      b += 2 * std::size_t(d.adam.rows() * d.adam.cols()) * sizeof(S);
    return b;
  }

  /// The last step passed to step() (0 before the first).
  long last_step() const { return m_step; }
  /// Number of sparse layers registered with add(SparseLinear&).
  std::size_t sparse_layers() const { return m_sparse.size(); }
  /// The k-th registered sparse layer.
  const SparseLinear<S>& sparse_layer(std::size_t k) const { return *m_sparse.at(k).layer; }

  /// Calls f(Eigen::Map<Matrix<S>> grad) for every gradient the next step() reads, in
  /// registration order: each sparse layer's grad_values() then its bias gradient, then every dense
  /// parameter's gradient. Gradient hooks (data-parallel averaging, clipping) rewrite them in place
  /// through these maps, so the gradients given to add() must be modifiable objects (the library's
  /// layers keep them as members; a gradient bound to a truly const object is undefined here).
  template <class F>
  void visit_gradients(F&& f) {
    for (SparseEntry& e : m_sparse) {
      const Matrix<S>& g = e.layer->grad_values();
      f(Eigen::Map<Matrix<S>>(const_cast<S*>(g.data()), g.rows(), g.cols()));
      if (e.layer->has_bias()) {
        const Vector<S>& b = e.layer->grad_bias();
        f(Eigen::Map<Matrix<S>>(const_cast<S*>(b.data()), 1, b.size()));
      }
    }
    for (DenseEntry& d : m_dense) {
      const Eigen::Map<const Matrix<S>> g = d.grad();
      f(Eigen::Map<Matrix<S>>(const_cast<S*>(g.data()), g.rows(), g.cols()));
    }
  }
  /// Number of gradient elements visit_gradients() visits (what one data-parallel step reduces).
  std::size_t gradient_count() {
    std::size_t n = 0;
    visit_gradients([&](const Eigen::Map<Matrix<S>>& g) { n += std::size_t(g.size()); });
    return n;
  }
  /// The refresher of the `layer`-th sparse layer (its count, seed and config), or nullptr with
  /// cfg.refresh false. Throws std::out_of_range for layer >= sparse_layers().
  const TopologyRefresher<S>* refresher(std::size_t layer) const {
    return m_sparse.at(layer).topology.get();
  }
  /// The configuration (validated).
  const SparseTrainerConfig& config() const { return m_cfg; }

  /// Everything needed to resume bit for bit: the sparse layers' compressed weights (values and
  /// indices), biases, every optimizer's state and step counters, the refreshers' counts and
  /// seeds, dense parameters, and the last step. Metadata records the format, n:m and layout.
  SafetensorsFile checkpoint() {
    SafetensorsFile f;
    f.metadata["format"] = kFormat;
    f.metadata["weights"] = weights_name();
    for (std::size_t k = 0; k < m_sparse.size(); ++k)
      f.metadata["sparse." + std::to_string(k)] = layer_signature(*m_sparse[k].layer);
    StateWriter<S> w{f, ""};
    visit_all(w, f);
    return f;
  }
  /// Writes checkpoint() to `path` (atomically: a temporary file, then a rename).
  void save(const std::string& path) { save_safetensors(path, checkpoint()); }

  /// Restores a checkpoint() of a trainer with the same registrations (shapes, n:m, optimizers).
  /// Throws sparsenm::Error naming what is missing or mismatched and then changes nothing.
  void restore(const SafetensorsFile& f) {
    const auto meta = [&](const char* key) -> std::string {
      const auto it = f.metadata.find(key);
      SPARSENM_CHECK(it != f.metadata.end(), "checkpoint: metadata '", key, "' is missing");
      return it->second;
    };
    SPARSENM_CHECK(meta("format") == kFormat, "checkpoint: format '", meta("format"), "' is not ",
                   kFormat);
    SPARSENM_CHECK(meta("weights") == weights_name(), "checkpoint: written with weight optimizer ",
                   meta("weights"), " but this trainer uses ", weights_name());
    for (std::size_t k = 0; k < m_sparse.size(); ++k) {
      const std::string key = "sparse." + std::to_string(k);
      SPARSENM_CHECK(meta(key.c_str()) == layer_signature(*m_sparse[k].layer), "checkpoint: ", key,
                     " is ", meta(key.c_str()), " but this trainer's is ",
                     layer_signature(*m_sparse[k].layer));
    }
    StateReader<S> check{f, "", false};
    visit_all(check, f);  // throws before anything changes
    SPARSENM_CHECK(check.seen == f.tensors().size(), "checkpoint: holds ", f.tensors().size(),
                   " tensors but this trainer reads ", check.seen,
                   " (written by a trainer with other registrations?)");
    StateReader<S> assign{f, "", true};
    visit_all(assign, f);
  }
  /// Loads and restores a file written by save().
  void load(const std::string& path) { restore(load_safetensors(path)); }

 private:
  static constexpr const char* kFormat = "sparsenm-trainer-v1";
  using WeightOpt = std::variant<Adam<S>, Tans<S>, Muon<S>>;

  struct SparseEntry {
    SparseLinear<S>* layer;
    WeightOpt weights;
    std::unique_ptr<Adam<S>> bias;
    std::unique_ptr<TopologyRefresher<S>> topology;
  };
  struct DenseEntry {
    std::function<Eigen::Map<Matrix<S>>()> value;
    std::function<Eigen::Map<const Matrix<S>>()> grad;
    Adam<S> adam;
  };

  WeightOpt make_weight_optimizer(const SparseLinear<S>& layer) const {
    switch (m_cfg.weights) {
      case WeightOptimizer::Tans:
        return WeightOpt(std::in_place_type<Tans<S>>, layer.weight(), m_cfg.tans);
      case WeightOptimizer::Muon:
        return WeightOpt(std::in_place_type<Muon<S>>, layer.weight(), m_cfg.muon);
      default:
        return WeightOpt(std::in_place_type<Adam<S>>, layer.weight(), m_cfg.adam);
    }
  }

  static std::string layer_signature(const SparseLinear<S>& l) {
    return std::to_string(l.out()) + "x" + std::to_string(l.in()) + " " + std::to_string(l.nm().n) +
           ":" + std::to_string(l.nm().m) + " " + to_string(l.layout()) +
           (l.has_bias() ? " bias" : "");
  }

  std::string weights_name() const {
    return m_cfg.weights == WeightOptimizer::Tans   ? "tans"
           : m_cfg.weights == WeightOptimizer::Muon ? "muon"
                                                    : "adam";
  }

  template <class V, class F>
  void add_dense(V value, F grad, Index rows, Index cols) {
    SPARSENM_CHECK(rows > 0 && cols > 0, "SparseTrainer::add: parameter is ", rows, "x", cols,
                   " (must be non-empty)");
    m_dense.push_back(
        DenseEntry{std::move(value), std::move(grad), Adam<S>(rows, cols, m_cfg.adam)});
  }

  // Sparse layer k: "sparse.k.values" (S), "sparse.k.indices" (U8), "sparse.k.bias", its weight
  // optimizer under "sparse.k.opt.", bias Adam under "sparse.k.bias_opt.", the refresher's count
  // and seed under "sparse.k.topology."; dense parameter k: "dense.k.value" and "dense.k.opt.";
  // "trainer.step". The writer and both reader passes walk the same list.
  template <class V>
  void visit_all(V& v, const SafetensorsFile& f) {
    constexpr bool reading = !std::is_same<V, StateWriter<S>>::value;
    for (std::size_t k = 0; k < m_sparse.size(); ++k) {
      SparseEntry& e = m_sparse[k];
      const std::string p = "sparse." + std::to_string(k) + ".";
      if constexpr (reading) {
        read_layer(v, p, *e.layer);
      } else {
        v.file.add(p + "values", e.layer->weight().values);
        v.file.add(p + "indices", e.layer->weight().indices);
        if (e.layer->has_bias()) v.file.add(p + "bias", e.layer->bias(), true);
      }
      v.prefix = p + "opt.";
      std::visit([&](auto& opt) { opt.visit_state(v); }, e.weights);
      if (e.bias) {
        v.prefix = p + "bias_opt.";
        e.bias->visit_state(v);
      }
      if (e.topology) {
        v.prefix = p + "topology.";
        long count = e.topology->refreshes();
        std::uint64_t seed = e.topology->seed();
        if constexpr (reading) {  // the seed is checked in both passes, never assigned
          StateReader<S> peek{f, v.prefix, true};
          peek("refreshes", count);
          peek("seed", seed);
          v.seen += 2;
          SPARSENM_CHECK(seed == e.topology->seed(), "checkpoint: sparse layer ", k,
                         " was refreshed with seed ", seed, " but this trainer's is ",
                         e.topology->seed());
          if (v.assign) e.topology->set_refreshes(count);
        } else {
          v("refreshes", count);
          v("seed", seed);
        }
      }
      v.prefix = "";
    }
    for (std::size_t k = 0; k < m_dense.size(); ++k) {
      DenseEntry& d = m_dense[k];
      const std::string p = "dense." + std::to_string(k) + ".";
      Matrix<S> value = d.value();
      v.prefix = p;
      v("value", value);
      if constexpr (reading)
        if (v.assign) d.value() = value;
      v.prefix = p + "opt.";
      d.adam.visit_state(v);
      v.prefix = "";
    }
    long step = m_step;
    v.prefix = "trainer.";
    v("step", step);
    v.prefix = "";
    if constexpr (reading)
      if (v.assign) m_step = step;
  }

  // Checks (first pass) or restores (second pass) a sparse layer's weight and bias.
  static void read_layer(StateReader<S>& v, const std::string& p, SparseLinear<S>& layer) {
    NMCompressed<S> w = layer.weight();
    v.prefix = p;
    v("values", w.values);
    const Tensor& t = v.get("indices");
    SPARSENM_CHECK(t.dtype == DType::U8 && t.shape.size() == 2 && t.shape[0] == w.rows &&
                       t.shape[1] == w.values.cols(),
                   "checkpoint: tensor '", p, "indices' is ", to_string(t.dtype), " ",
                   StateReader<S>::shape_string(t), " but U8 [", w.rows, ", ", w.values.cols(),
                   "] is expected");
    w.indices = t.to_matrix<std::uint8_t>();
    if (v.assign)
      layer.set_compressed(std::move(w));
    else
      layer.check_weight(w);  // legal indices for the layer's n:m and layout
    if (layer.has_bias()) {
      Matrix<S> b = Eigen::Map<const Matrix<S>>(layer.bias().data(), 1, layer.out());
      const Tensor& bt = v.get("bias");
      SPARSENM_CHECK(
          bt.dtype == dtype_of<S>() && bt.shape.size() == 1 && bt.shape[0] == layer.out(),
          "checkpoint: tensor '", p, "bias' is ", to_string(bt.dtype), " ",
          StateReader<S>::shape_string(bt), " but [", layer.out(), "] is expected");
      if (v.assign) layer.bias() = bt.to_vector<S>();
    }
  }

  SparseTrainerConfig m_cfg;
  std::vector<SparseEntry> m_sparse;
  std::vector<DenseEntry> m_dense;
  std::vector<RefreshResult> m_refreshed;
  long m_step = 0;
};

}  // namespace sparsenm

#endif  // SPARSENM_NN_SPARSE_TRAINER_HPP
