// SPDX-License-Identifier: Apache-2.0
// Fashion-MNIST with N:M sparse hidden layers: a custom training loop that compares dense training
// with the sparse-training methods of sparsenm, shows progress, writes a table, a CSV, SVG plots,
// and exports every trained model so numpy can evaluate it without sparsenm.
//
//   build/examples/fashion_mnist                       # the default comparison (scripts/demo)
//   build/examples/fashion_mnist --method all --nm 2:4 --epochs 10 --seeds 3
//
// Model: 784 -> 1024 -> 1024 -> 10 MLP, ReLU, softmax cross-entropy, mini-batches. The two hidden
// layers are N:M sparse (except for `dense`); the 10-way output layer stays dense, as usual.
// Methods (--method, a comma list or `all`):
//   dense        Adam, no sparsity (the reference)
//   ste          dense latent weights, magnitude N:M mask each step, straight-through (chtsnm H.1)
//   srste        STE + lambda_w W (1 - m) on the gradient (SR-STE; chtsnm H.2)
//   adams        AdamS with learnable weight scaling (CAST Alg. 1; chtsnm H.3)
//   chts24       transposable 4x4 dynamic sparse training: CH2-L3n soft regrowth + Adam (chts24)
//   chtsnm       TANS optimizer + topology refresh (row-wise with MPR, or block-wise) (chtsnm)
//   chtsnm-lora  chtsnm plus a CoMoLoRA branch of about 1% of each hidden layer's parameters
//   edsrt        train dense, prune to the legal N:M mask, then dynamic retraining (refresh + Adam)
//   sparseforge  Hutchinson-guided soft-mask annealing from dense to N:M (SparseForge Alg. 1)
#include <sparsenm/sparsenm.hpp>

#include "example_util.hpp"
#include <sparsenm/train/idx.hpp>  // IDX + gzip reader (needs zlib)

#include <malloc.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace sparsenm;
using Mat = Matrix<float>;
using example_util::fmt;
using example_util::json_number;
using example_util::make_dirs;
using example_util::split;

// =============================================================================================
// 1. Command line
// =============================================================================================
const std::vector<std::string> kAllMethods = {
    "dense", "ste", "srste", "adams", "chts24", "chtsnm", "chtsnm-lora", "edsrt", "sparseforge"};
const std::vector<std::string> kDefaultMethods = {"dense", "ste",    "srste",
                                                  "adams", "chts24", "chtsnm-lora"};

struct Options {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string out = "fashion_mnist_out";
  std::vector<std::string> methods = kDefaultMethods;
  NM nm{1, 4};
  Layout layout = Layout::RowWise;
  int epochs = 4;
  int batch = 128;
  // TANS runs Newton-Schulz on every (1024 x 1024) hidden weight each step, ~30 times the cost of
  // the step itself at batch 128 on a CPU; the TANS methods therefore take bigger batches (fewer
  // steps) by default. 0 = the same as --batch.
  int tans_batch = 512;
  double lr = 1e-3;  // Adam / AdamS / TANS step size (cosine-decayed to 5% over the run)
  std::uint64_t seed = 1;
  int seeds = 1;
  int threads = 0;        // 0: keep the OpenMP default
  Index train_limit = 0;  // 0: all 60,000 training images
  Index test_limit = 0;   // 0: all 10,000 test images
  bool export_models = true;
};

void usage() {
  std::printf(
      "usage: fashion_mnist [--method LIST|all] [--nm 1:4|2:4] [--layout row|block] [--epochs E]\n"
      "                     [--batch B] [--tans-batch B] [--lr LR] [--seed S] [--seeds K]\n"
      "                     [--threads T] [--out DIR] [--data DIR] [--train-limit N]\n"
      "                     [--test-limit N] [--no-export]\n"
      "methods: dense ste srste adams chts24 chtsnm chtsnm-lora edsrt sparseforge\n"
      "default: --method dense,ste,srste,adams,chts24,chtsnm-lora --nm 1:4 --layout row\n");
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      SPARSENM_CHECK(i + 1 < argc, "option ", a, " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else if (a == "--method") {
      const std::string v = value();
      o.methods = v == "all" ? kAllMethods : split(v, ',');
      for (const std::string& m : o.methods)
        SPARSENM_CHECK(std::find(kAllMethods.begin(), kAllMethods.end(), m) != kAllMethods.end(),
                       "--method: unknown method '", m, "'");
    } else if (a == "--nm") {
      const auto p = split(value(), ':');
      SPARSENM_CHECK(p.size() == 2, "--nm must look like 1:4 or 2:4");
      o.nm = NM{std::stoi(p[0]), std::stoi(p[1])};
      check_nm(o.nm, "--nm");
    } else if (a == "--layout") {
      const std::string v = value();
      SPARSENM_CHECK(v == "row" || v == "block", "--layout = ", v, " must be row or block");
      o.layout = v == "row" ? Layout::RowWise : Layout::Transposable;
    } else if (a == "--epochs") {
      o.epochs = std::stoi(value());
    } else if (a == "--batch") {
      o.batch = std::stoi(value());
    } else if (a == "--tans-batch") {
      o.tans_batch = std::stoi(value());
    } else if (a == "--lr") {
      o.lr = std::stod(value());
    } else if (a == "--seed") {
      o.seed = std::stoull(value());
    } else if (a == "--seeds") {
      o.seeds = std::stoi(value());
    } else if (a == "--threads") {
      o.threads = std::stoi(value());
    } else if (a == "--out") {
      o.out = value();
    } else if (a == "--data") {
      o.data = value();
    } else if (a == "--train-limit") {
      o.train_limit = std::stol(value());
    } else if (a == "--test-limit") {
      o.test_limit = std::stol(value());
    } else if (a == "--no-export") {
      o.export_models = false;
    } else {
      usage();
      SPARSENM_CHECK(false, "unknown option '", a, "'");
    }
  }
  check_at_least(o.epochs, 1, "--epochs");
  check_at_least(o.batch, 1, "--batch");
  check_at_least(o.tans_batch, 0, "--tans-batch");
  check_at_least(o.seeds, 1, "--seeds");
  check_finite_positive(o.lr, "--lr");
  SPARSENM_CHECK(!o.methods.empty(), "--method: empty list");
  return o;
}

// =============================================================================================
// 2. Data: the IDX files of Debian's dataset-fashion-mnist package
// =============================================================================================
struct Data {
  IdxDataset train, test;
};

Data load_data(const Options& o) {
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    const std::string path = o.data + "/" + f;
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      std::fprintf(stderr,
                   "error: Fashion-MNIST file '%s' not found.\n"
                   "Install the dataset with:  sudo apt-get install dataset-fashion-mnist\n"
                   "or point --data at a directory holding the four *-ubyte.gz files.\n",
                   path.c_str());
      std::exit(2);
    }
  }
  Data d;
  d.train = load_idx_dataset(o.data + "/train-images-idx3-ubyte.gz",
                             o.data + "/train-labels-idx1-ubyte.gz", o.train_limit);
  d.test = load_idx_dataset(o.data + "/t10k-images-idx3-ubyte.gz",
                            o.data + "/t10k-labels-idx1-ubyte.gz", o.test_limit);
  return d;
}

// =============================================================================================
// 3. The model: two N:M hidden layers and a dense output layer
// =============================================================================================
// A hidden layer runs in one of two ways:
//  - methods whose weights live on a legal N:M mask (chts24, chtsnm, edsrt after pruning) train
//    sparse-to-sparse: a SparseLinear holds the only copy of W (compressed values + indices; SpMM
//    forward, SpMM dX, SDDMM for the active dW only), and one SparseTrainer per model steps its
//    values (Adam or TANS, state for the active entries only), its bias, the dense head and any
//    CoMoLoRA branch, and refreshes its topology with the optimizer state following each weight;
//  - dense training and the methods with dense latent weights (ste, srste, adams, sparseforge),
//    which need the dense gradient by design, run it as a DenseLinear (OpenBLAS GEMMs) with their
//    own optimizers (and so does eDSrT before pruning).
struct HiddenLayer {
  Index in, out;
  std::unique_ptr<DenseLinear<float>> linear;   // dense and dense-latent methods
  std::unique_ptr<SparseLinear<float>> sparse;  // sparse-to-sparse methods (with its bias)
  Mask mask;                                    // dense-latent methods: the N:M mask (dense: ones)

  // Dense route: one of these drives the weight, depending on the method.
  std::unique_ptr<Adam<float>> adam, bias_adam;
  std::unique_ptr<AdamS<float>> adams;
  std::unique_ptr<Ste<float>> ste;
  std::unique_ptr<CoMoLoRA<float>> lora;
  std::unique_ptr<HutchinsonDiagonal<float>> hessian;
  std::unique_ptr<SoftMaskAnnealer<float>> annealer;
  Mat theta;      // AdamS / SparseForge: the dense latent weight behind the forward weight
  Mat soft_mask;  // SparseForge: m_eff of the current step

  HiddenLayer(Index in_, Index out_) : in(in_), out(out_) {}
  Mask current_mask() const { return sparse ? sparse->mask() : mask; }
};

struct Model {
  std::vector<HiddenLayer> hidden;
  DenseLinear<float> head;
  Relu<float> relu[2];

  const Philox rng;  // hidden layer k is initialised from rng.split(1 + k)

  explicit Model(const Philox& r) : head(1024, 10, r.split(3)), rng(r) {
    hidden.emplace_back(784, 1024);
    hidden.emplace_back(1024, 1024);
  }

  // logits = head(relu(h2(relu(h1(x))))) with h = x Wᵀ + b (+ CoMoLoRA branch).
  Mat forward(const Mat& x) {
    Mat a = x;
    for (int k = 0; k < 2; ++k) {
      HiddenLayer& l = hidden[k];
      Mat y = l.sparse ? l.sparse->forward(a) : l.linear->forward(a);
      if (l.lora) y += l.lora->forward(a);
      relu[k].forward(y);
      a = std::move(y);
    }
    return head.forward(a);
  }

  // Backpropagates dL/dlogits; every layer keeps its own parameter gradients.
  void backward(const Mat& grad_logits) {
    Mat g = head.backward(grad_logits);
    for (int k = 1; k >= 0; --k) {
      HiddenLayer& l = hidden[k];
      relu[k].backward(g);
      if (k == 0 && !l.lora) {
        // The images need no gradient: the first layer computes its parameters' gradients only.
        if (l.sparse)
          l.sparse->backward_params(g);
        else
          l.linear->backward_params(g);
        break;
      }
      Mat gx = l.sparse ? l.sparse->backward(g) : l.linear->backward(g);
      if (l.lora) gx += l.lora->backward(g);
      g = std::move(gx);
    }
  }
};

// Inference in batches: returns the test accuracy in percent.
double evaluate(Model& model, const IdxDataset& data) {
  Index correct = 0;
  const Index bs = 1000;
  for (Index b = 0; b < data.images.rows(); b += bs) {
    const Index n = std::min(bs, data.images.rows() - b);
    const Mat x = data.images.middleRows(b, n);
    const std::vector<int> y(data.labels.begin() + b, data.labels.begin() + b + n);
    correct += count_correct(model.forward(x), y);
  }
  return 100.0 * double(correct) / double(data.images.rows());
}

// Bias (or any vector) viewed as a 1 x n row-major matrix, which is what the optimizers take.
Eigen::Map<Mat> as_row(Vector<float>& v) { return Eigen::Map<Mat>(v.data(), 1, v.size()); }
Eigen::Map<const Mat> as_row(const Vector<float>& v) {
  return Eigen::Map<const Mat>(v.data(), 1, v.size());
}

// =============================================================================================
// 4. One run of one method
// =============================================================================================
struct RunResult {
  std::string method;
  double test_accuracy = 0, train_seconds = 0, samples_per_second = 0;
  std::size_t state_bytes = 0, peak_rss_bytes = 0;
  std::vector<double> epoch_test_accuracy;
  std::vector<double> flip_rates;  // mask-flip rate at each refresh (dynamic methods)
  long refreshed_groups = 0, changed_groups = 0;
  long long trainable = 0, nonzeros = 0;
  int batch = 0;
  long steps = 0;
  Index test_samples = 0;
};

// The recipe of a method, as flags the loop reads.
struct Recipe {
  bool sparse_static_mask = false;  // chts24 / chtsnm / edsrt: weights live on a legal mask
  bool refresh = false;             // dynamic topology (CHTs refresh)
  bool tans = false, lora = false, ste = false, srste = false, adams = false, forge = false;
  bool dense_warmup = false;  // edsrt: dense first, then prune
  Layout layout = Layout::RowWise;
};

Recipe recipe_for(const std::string& method, const Options& o) {
  Recipe r;
  r.layout = o.layout;
  if (method == "ste" || method == "srste") {
    r.ste = true;
    r.srste = method == "srste";
    r.layout = Layout::RowWise;  // the magnitude mask of STE / SR-STE is row-wise
  } else if (method == "adams") {
    r.adams = true;
    r.layout = Layout::RowWise;
  } else if (method == "chts24") {
    r.sparse_static_mask = r.refresh = true;
    r.layout = Layout::Transposable;  // CHTs24 is the transposable method by definition
  } else if (method == "chtsnm" || method == "chtsnm-lora") {
    r.sparse_static_mask = r.refresh = r.tans = true;
    r.lora = method == "chtsnm-lora";
  } else if (method == "edsrt") {
    r.sparse_static_mask = r.refresh = r.dense_warmup = true;
  } else if (method == "sparseforge") {
    r.forge = true;
  }
  return r;
}

void export_model(Model& model, const std::string& method, const Options& o,
                  const RunResult& result, std::uint64_t seed);

// Peak resident set size of the process in bytes (VmHWM), and its reset (Linux: writing 5 to
// /proc/self/clear_refs restarts VmHWM from the current RSS), so each method reports its own peak.
std::size_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}
void reset_peak_rss() {
  malloc_trim(0);  // give the previous method's freed memory back first
  std::ofstream("/proc/self/clear_refs") << "5";
}

RunResult run_method(const std::string& method, const Options& o, const Data& data,
                     std::uint64_t seed) {
  reset_peak_rss();
  const Recipe recipe = recipe_for(method, o);
  const NM nm = o.nm;
  const Philox rng(seed);
  Model model(rng.split(10));
  const int batch = recipe.tans && o.tans_batch > 0 ? o.tans_batch : o.batch;
  // A bigger batch takes fewer steps: scale the step size by sqrt(batch ratio) (capped at 2x).
  const double base_lr = o.lr * std::min(2.0, std::sqrt(double(batch) / double(o.batch)));
  BatchSampler sampler(data.train.images.rows(), batch, rng.split(20));
  const long steps_per_epoch = static_cast<long>(sampler.batches_per_epoch());
  const long total_steps = steps_per_epoch * o.epochs;
  // eDSrT spends its first third dense, then prunes and retrains sparse.
  const long prune_step = recipe.dense_warmup ? total_steps / 3 : 0;

  // ---- setup --------------------------------------------------------------------------------
  AdamConfig adam_cfg;
  adam_cfg.lr = base_lr;
  // The sparse-to-sparse methods: one trainer for the whole model (sparse values with Adam or
  // TANS, biases, head and CoMoLoRA with Adam, topology refresh with state remapping).
  SparseTrainerConfig tcfg;
  tcfg.weights = recipe.tans ? WeightOptimizer::Tans : WeightOptimizer::Adam;
  tcfg.adam = adam_cfg;
  tcfg.tans.lr = base_lr;
  tcfg.topology.layout = recipe.layout;
  tcfg.topology.nm = nm;
  tcfg.topology.interval = int(std::clamp<long>(total_steps / 40, 2, 100));  // ~30 refreshes
  tcfg.topology.total_steps = total_steps - prune_step;
  // MPR (chtsnm App. E.3): 0.5 for row-wise 1:4, 0.75 for row-wise 2:4; none for tiles.
  tcfg.topology.mpr_rho =
      recipe.layout == Layout::RowWise && recipe.tans ? (nm.n == 1 ? 0.5 : 0.75) : 0.0;
  tcfg.seed = seed * 1000;
  std::unique_ptr<SparseTrainer<float>> trainer;
  // Registers the sparse model (after pruning, for eDSrT) with a new trainer.
  auto start_sparse_training = [&]() {
    trainer = std::make_unique<SparseTrainer<float>>(tcfg);
    for (HiddenLayer& l : model.hidden) {
      trainer->add(*l.sparse);
      if (l.lora) trainer->add(*l.lora);
    }
    trainer->add(model.head.weight(), model.head.grad_weight());
    trainer->add(model.head.bias(), model.head.grad_bias());
  };
  Adam<float> head_adam(10, 1024, adam_cfg), head_bias_adam(1, 10, adam_cfg);  // dense route
  for (int k = 0; k < 2; ++k) {
    HiddenLayer& l = model.hidden[k];
    const Index out = l.out, in = l.in;
    const Philox lrng = rng.split(100 + k);
    if (recipe.sparse_static_mask && !recipe.dense_warmup) {
      // Dynamic sparse training starts from a random legal mask (chts24 Sec. 3; chtsnm Sec. 3)
      // with nn.Linear's initial values on it; the dense W never exists.
      l.sparse = std::make_unique<SparseLinear<float>>(in, out, nm, recipe.layout, lrng, true);
    } else {
      l.linear = std::make_unique<DenseLinear<float>>(in, out, model.rng.split(1 + k));
      l.mask = Mask::Ones(out, in);
      l.bias_adam = std::make_unique<Adam<float>>(1, out, adam_cfg);
    }
    if (recipe.adams) {
      AdamSConfig ac;
      ac.lr = base_lr;
      ac.nm = nm;
      ac.total_steps = total_steps;
      l.adams = std::make_unique<AdamS<float>>(out, in, ac);
      l.theta = l.linear->weight();
    } else if (l.linear) {
      l.adam = std::make_unique<Adam<float>>(out, in, adam_cfg);
    }
    if (recipe.ste) {
      SteConfig sc;
      sc.nm = nm;
      sc.lambda_w = recipe.srste ? 2e-4 : 0.0;  // SR-STE decay (chts24 form; chtsnm H.2 uses 1e-4)
      l.ste = std::make_unique<Ste<float>>(out, in, sc);
    }
    if (recipe.lora) {
      // About 1% of the layer: rank r with r (in + out) ~ 0.01 in out (r = 5 for both layers).
      const int rank = std::max(1, int(std::lround(0.01 * double(in * out) / double(in + out))));
      l.lora =
          std::make_unique<CoMoLoRA<float>>(in, out, rank, 2, 0.5f, float(rank), lrng.split(7));
    }
    if (recipe.forge) {
      SoftMaskConfig sc = SoftMaskConfig::for_steps(std::max(20L, total_steps));
      sc.nm = nm;
      sc.layout = o.layout;
      l.annealer = std::make_unique<SoftMaskAnnealer<float>>(out, in, sc);
      l.hessian = std::make_unique<HutchinsonDiagonal<float>>(out, in, 0.99);
      l.theta = l.linear->weight();
    }
  }
  if (recipe.sparse_static_mask && !recipe.dense_warmup) start_sparse_training();

  RunResult result;
  result.method = method;
  Stopwatch clock;
  Mat x, grad_logits;
  std::vector<int> y;
  long step = 0;

  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    sampler.begin(static_cast<std::uint64_t>(epoch));
    char label[64];
    std::snprintf(label, sizeof label, "%-12s epoch %d/%d", method.c_str(), epoch + 1, o.epochs);
    ProgressBar bar(data.train.images.rows(), label);
    double loss_sum = 0;
    Index seen = 0, correct = 0;

    while (sampler.next(data.train.images, data.train.labels, x, y)) {
      // Cosine learning-rate decay to 5% of the initial value over the whole run.
      const double lr =
          base_lr * (0.05 + 0.95 * 0.5 * (1 + std::cos(M_PI * double(step) / double(total_steps))));

      // ---- (a) the weights the forward pass sees (dense-latent methods) -----------------------
      for (HiddenLayer& l : model.hidden) {
        if (l.ste) {  // magnitude N:M mask of the dense latent weight, recomputed every step
          l.ste->forward(l.linear->weight());
          l.linear->set_forward_mask(&l.ste->mask());
        }
        if (l.adams) l.linear->weight() = l.adams->scaled_weight(l.theta);  // Θ ⊙ A
        if (l.annealer) {  // W ⊙ m_eff with the annealed soft mask
          l.soft_mask = l.annealer->effective_mask(step + 1);
          l.linear->weight() = l.theta.cwiseProduct(l.soft_mask);
        }
      }

      // ---- (b) forward, loss, backward --------------------------------------------------------
      const Mat logits = model.forward(x);
      const float loss = softmax_cross_entropy(logits, y, &grad_logits);
      model.backward(grad_logits);
      loss_sum += double(loss) * double(y.size());
      correct += count_correct(logits, y);
      seen += static_cast<Index>(y.size());

      // ---- (c) optimizer steps (and, sparse-to-sparse, the due topology refreshes) ------------
      if (trainer) {
        trainer->set_lr(lr);
        for (const RefreshResult& r : trainer->step(step + 1 - prune_step)) {
          result.flip_rates.push_back(r.stats.flip_rate);
          result.refreshed_groups += r.stats.refreshed_groups;
          result.changed_groups += r.stats.changed_groups;
        }
      } else {
        for (HiddenLayer& l : model.hidden) {
          Mat& w = l.linear->weight();
          const Mat& g = l.linear->grad_weight();
          if (l.adams) {
            l.adams->set_lr(lr);
            l.adams->step(l.theta, g);  // CAST Alg. 1 on the latent weight
          } else if (l.ste) {
            l.adam->set_lr(lr);
            l.adam->step(w, l.ste->backward(g, w));  // straight-through (+ SR-STE decay)
          } else if (l.annealer) {
            l.adam->set_lr(lr);
            l.adam->step(l.theta, g);  // SparseForge: straight-through gradient for W
          } else {
            l.adam->set_lr(lr);
            l.adam->step(w, g);
          }
          l.bias_adam->set_lr(lr);
          l.bias_adam->step(as_row(l.linear->bias()), as_row(l.linear->grad_bias()));
        }
        head_adam.set_lr(lr);
        head_adam.step(model.head.weight(), model.head.grad_weight());
        head_bias_adam.set_lr(lr);
        head_bias_adam.step(as_row(model.head.bias()), as_row(model.head.grad_bias()));
      }

      // ---- (d) pruning (eDSrT), soft-mask annealing (SparseForge) -----------------------------
      if (recipe.dense_warmup && step + 1 == prune_step) {
        for (int k = 0; k < 2; ++k) {  // CHTs24 Sec. 3.3.1: magnitude onto the legal set
          HiddenLayer& l = model.hidden[k];
          const Mask mask = edsrt_prune<float>(l.linear->weight(), nm, recipe.layout);
          l.sparse = std::make_unique<SparseLinear<float>>(l.in, l.out, nm, recipe.layout,
                                                           rng.split(100 + k), true);
          l.sparse->set_weight(l.linear->weight(), mask);
          l.sparse->bias() = l.linear->bias();
          l.linear.reset();  // from here on the compressed layer is the only copy
          l.adam.reset();
          l.bias_adam.reset();
          l.mask = Mask();
        }
        start_sparse_training();
      }
      if (recipe.forge) {
        for (int k = 0; k < 2; ++k) {
          HiddenLayer& l = model.hidden[k];
          if (!l.annealer->due(step + 1)) continue;
          // Hutchinson probe of this layer's Hessian diagonal with a finite-difference
          // Hessian-vector product on the current batch (two extra gradient evaluations).
          auto grad_at = [&](const Mat& w) {
            const Mat saved = l.linear->weight();
            l.linear->weight() = w;
            Mat gl;
            softmax_cross_entropy(model.forward(x), y, &gl);
            model.backward(gl);
            l.linear->weight() = saved;
            return Mat(l.linear->grad_weight());
          };
          const Mat w_eff = l.linear->weight();
          l.hessian->update(
              [&](const Mat& v) { return finite_difference_hvp<float>(grad_at, w_eff, v); },
              rng.split(500 + k).split(static_cast<std::uint64_t>(step)));
          // s = (H + ε) ⊙ W², standardised; soft gates, blend, penalty, mask EMA (Alg. 1 8-13).
          l.annealer->update(l.hessian->diagonal(), l.theta, step + 1);
        }
      }

      ++step;
      bar.update(seen, loss_sum / double(seen), double(correct) / double(seen));
    }

    result.epoch_test_accuracy.push_back(evaluate(model, data.test));
    char extra[64];
    std::snprintf(extra, sizeof extra, "test %.2f%%", result.epoch_test_accuracy.back());
    bar.finish(extra);
  }

  // ---- finalisation: every sparse method ends with a hard, legal N:M mask ------------------
  for (HiddenLayer& l : model.hidden) {
    if (l.ste) {
      l.ste->forward(l.linear->weight());
      l.mask = l.ste->mask();
      apply_mask(l.linear->weight(), l.mask);
      l.linear->set_forward_mask(nullptr);
    } else if (l.adams) {
      l.mask = l.adams->finalize(l.theta);  // folds the scaling, projects, zeroes the rest
      l.linear->weight() = l.theta;
    } else if (l.annealer) {
      l.mask = l.annealer->finalize();
      l.linear->weight() = l.theta;
      apply_mask(l.linear->weight(), l.mask);
    }
  }
  result.train_seconds = clock.seconds();
  result.samples_per_second = double(step) * double(batch) / result.train_seconds;
  // Training state between steps: weights, gradients and optimizer state of the whole model (the
  // sparse-to-sparse methods: as SparseTrainer counts it; dense route: W, dW, and the optimizer's
  // moments / latent weights of every layer).
  if (trainer) {
    result.state_bytes = trainer->state_bytes();
  } else {
    std::size_t b = 4 * sizeof(float) * std::size_t(model.head.weight().size() + 10);
    for (const HiddenLayer& l : model.hidden) {
      const std::size_t e = std::size_t(l.in * l.out) * sizeof(float);
      b += 4 * e + 4 * sizeof(float) * std::size_t(l.out);  // W, dW, two moments (or theta, A, ..)
      if (l.ste || l.annealer) b += e;                      // the mask / soft mask
      if (l.adams || l.annealer) b += e;                    // the latent weight theta
      if (l.hessian) b += e;                                // the Hessian diagonal EMA
    }
    result.state_bytes = b;
  }
  result.peak_rss_bytes = peak_rss_bytes();
  // The accuracy of the final (hard-masked) model; only STE, AdamS and SparseForge change it.
  result.test_accuracy = result.epoch_test_accuracy.back();
  if (recipe.ste || recipe.adams || recipe.forge) {
    result.test_accuracy = evaluate(model, data.test);
    result.epoch_test_accuracy.back() = result.test_accuracy;
  }
  result.batch = batch;
  result.steps = total_steps;
  result.test_samples = data.test.images.rows();

  // Parameter counts: trainable = what the optimizer updates, nonzeros = what inference needs.
  for (HiddenLayer& l : model.hidden) {
    const long long active = static_cast<long long>(l.current_mask().cast<int>().sum());
    result.nonzeros += active + l.out;
    result.trainable += (method == "dense" || l.ste || l.adams || l.annealer) ? l.in * l.out + l.out
                                                                              : active + l.out;
    if (l.lora) {
      result.trainable += l.lora->parameter_count();
      result.nonzeros += l.lora->parameter_count();
    }
  }
  result.trainable += model.head.weight().size() + 10;
  result.nonzeros += model.head.weight().size() + 10;

  if (o.export_models) export_model(model, method, o, result, seed);
  return result;
}

// =============================================================================================
// 5. Export: model.safetensors + one .npy per tensor + manifest.json (numpy needs nothing else)
// =============================================================================================
void export_model(Model& model, const std::string& method, const Options& o,
                  const RunResult& result, std::uint64_t seed) {
  const std::string dir =
      o.out + "/" + method + (o.seeds > 1 ? "/seed" + std::to_string(seed) : "");
  make_dirs(dir);
  const Recipe recipe = recipe_for(method, o);
  const bool sparse = method != "dense";
  // A dense model is 1:1 (every group of one keeps its entry), not the --nm of the sparse runs.
  const NM nm = sparse ? o.nm : NM{1, 1};
  SafetensorsFile st;
  set_nm_metadata(st, NMMetadata{nm, recipe.layout, method});
  std::ostringstream layers;
  auto add = [&](const std::string& name, Tensor t, std::vector<std::string>& names) {
    save_npy(dir + "/" + name + ".npy", t);
    st.add(name, std::move(t));
    names.push_back(name);
  };
  for (int k = 0; k < 3; ++k) {
    const bool is_head = k == 2;
    const std::string prefix = is_head ? "output" : "hidden" + std::to_string(k);
    std::vector<std::string> names;
    const HiddenLayer* h = is_head ? nullptr : &model.hidden[k];
    const Index in = is_head ? model.head.in() : h->in, out = is_head ? model.head.out() : h->out;
    // The weight as trained: dense (out, in) float32 with exact zeros off the mask (a compressed
    // layer is decompressed here, for export only).
    const Mat weight = is_head     ? model.head.effective_weight()
                       : h->sparse ? h->sparse->dense_weight()
                                   : h->linear->effective_weight();
    const Vector<float>& bias = is_head     ? model.head.bias()
                                : h->sparse ? h->sparse->bias()
                                            : h->linear->bias();
    add(prefix + ".weight", Tensor::from_eigen(weight), names);
    add(prefix + ".bias", Tensor::from_eigen(bias, true), names);
    std::string formula = "y = x @ weight.T + bias";
    std::string lora_json;
    if (!is_head && sparse) add(prefix + ".mask", Tensor::from_eigen(h->current_mask()), names);
    if (!is_head && model.hidden[k].lora) {
      CoMoLoRA<float>& lr = *model.hidden[k].lora;
      add(prefix + ".lora_A", Tensor::from_eigen(lr.A()), names);
      add(prefix + ".lora_B", Tensor::from_eigen(lr.B()), names);
      add(prefix + ".gate_W1", Tensor::from_eigen(lr.W1()), names);
      add(prefix + ".gate_b1", Tensor::from_eigen(lr.b1(), true), names);
      add(prefix + ".gate_W2", Tensor::from_eigen(lr.W2()), names);
      add(prefix + ".gate_b2", Tensor::from_eigen(lr.b2(), true), names);
      formula +=
          " + (alpha / rank) * ((1 + gamma * tanh(silu(x @ gate_W1.T + gate_b1) @ gate_W2.T + "
          "gate_b2)) * (x @ lora_A.T)) @ lora_B.T";
      lora_json = ", \"lora\": {\"rank\": " + std::to_string(lr.rank()) +
                  ", \"gate_hidden\": " + std::to_string(lr.hidden()) +
                  ", \"gamma\": " + json_number(lr.gamma()) +
                  ", \"alpha\": " + json_number(lr.alpha()) + "}";
    }
    layers << (k ? ",\n" : "") << "    {\"name\": \"" << prefix << "\", \"in\": " << in
           << ", \"out\": " << out << ", \"sparse\": " << (!is_head && sparse ? "true" : "false")
           << ", \"activation\": \"" << (is_head ? "none" : "relu") << "\",\n     \"output\": \""
           << formula << (is_head ? "" : "; then relu(y)") << "\"" << lora_json
           << ",\n     \"tensors\": {";
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::string key = names[i].substr(prefix.size() + 1);
      layers << (i ? ", " : "") << "\"" << key << "\": \"" << names[i] << ".npy\"";
    }
    layers << "}}";
  }
  save_safetensors(dir + "/model.safetensors", st);
  std::ofstream man(dir + "/manifest.json");
  man << "{\n  \"format\": \"sparsenm-mlp-v1\",\n  \"method\": \"" << method
      << "\",\n  \"n\": " << nm.n << ", \"m\": " << nm.m << ", \"layout\": \""
      << to_string(recipe.layout) << "\",\n  \"seed\": " << seed
      << ",\n  \"test_accuracy\": " << json_number(result.test_accuracy)
      << ",\n  \"test_samples\": " << result.test_samples
      << ",\n  \"input\": \"x: (batch, 784) float32 = image pixels (row by row) / 255\",\n"
      << "  \"output\": \"logits of the last layer; prediction = argmax\",\n"
      << "  \"safetensors\": \"model.safetensors (same tensors, same names)\",\n"
      << "  \"layers\": [\n"
      << layers.str() << "\n  ]\n}\n";
}

// =============================================================================================
// 6. Reporting: table, results.csv, SVG plots
// =============================================================================================
struct Summary {
  std::string method;
  std::vector<RunResult> runs;
  double mean(double RunResult::*field) const {
    double s = 0;
    for (const RunResult& r : runs) s += r.*field;
    return s / double(runs.size());
  }
  double stddev(double RunResult::*field) const {
    if (runs.size() < 2) return 0;
    const double m = mean(field);
    double s = 0;
    for (const RunResult& r : runs) s += (r.*field - m) * (r.*field - m);
    return std::sqrt(s / double(runs.size() - 1));
  }
  double refresh_rate() const {  // refreshed groups whose pattern changed / refreshed groups
    long refreshed = 0, changed = 0;
    for (const RunResult& r : runs) {
      refreshed += r.refreshed_groups;
      changed += r.changed_groups;
    }
    return refreshed ? double(changed) / double(refreshed) : std::nan("");
  }
};

// Writes results.csv and the plots; prints the table when `print` (called after every method, so
// a long run leaves usable files behind even if it is interrupted).
void report(const std::vector<Summary>& all, const Options& o, bool print) {
  double dense_acc = std::nan("");
  for (const Summary& s : all)
    if (s.method == "dense") dense_acc = s.mean(&RunResult::test_accuracy);
  const std::string nm = std::to_string(o.nm.n) + ":" + std::to_string(o.nm.m);
  CsvWriter csv({"method", "nm", "layout", "seeds", "test_accuracy", "test_accuracy_std",
                 "gap_to_dense", "trainable_params", "nonzeros", "train_seconds",
                 "samples_per_second", "state_mb", "peak_rss_mb", "training_route",
                 "effective_refresh_rate"});
  double dense_sps = std::nan("");
  for (const Summary& s : all)
    if (s.method == "dense") dense_sps = s.mean(&RunResult::samples_per_second);
  if (print)
    std::printf(
        "\n| method | N:M | layout | test accuracy (%%) | gap to dense | trainable params | "
        "nonzeros | train time (s) | samples/s | vs dense | training state (MB) | peak RSS (MB) "
        "| weights trained as | eff. refresh rate |\n");
  if (print) std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const Summary& s : all) {
    const RunResult& r0 = s.runs.front();
    const bool sparse = s.method != "dense";
    const Recipe rc = recipe_for(s.method, o);
    const double acc = s.mean(&RunResult::test_accuracy), sd = s.stddev(&RunResult::test_accuracy);
    const double gap = acc - dense_acc, rate = s.refresh_rate();
    const double sps = s.mean(&RunResult::samples_per_second);
    double state_mb = 0, rss_mb = 0;
    for (const RunResult& r : s.runs) {
      state_mb += double(r.state_bytes) / 1e6 / double(s.runs.size());
      rss_mb = std::max(rss_mb, double(r.peak_rss_bytes) / 1e6);
    }
    const std::string route =
        !sparse ? "dense"
        : rc.sparse_static_mask
            ? (rc.dense_warmup ? "dense, then compressed" : "compressed (sparse-to-sparse)")
            : "dense latent W (by design)";
    const std::string layout = sparse ? to_string(rc.layout) : "-";
    const std::string acc_s = fmt("%.2f", acc) + (o.seeds > 1 ? fmt(" ± %.2f", sd) : "");
    if (print)
      std::printf(
          "| %s | %s | %s | %s | %s | %lld | %lld | %.0f | %.0f | %s | %.1f | %.0f | %s | %s |\n",
          s.method.c_str(), sparse ? nm.c_str() : "-", layout.c_str(), acc_s.c_str(),
          std::isnan(gap) ? "-" : fmt("%+.2f", gap).c_str(), r0.trainable, r0.nonzeros,
          s.mean(&RunResult::train_seconds), sps,
          std::isnan(dense_sps) ? "-" : fmt("%.2fx", sps / dense_sps).c_str(), state_mb, rss_mb,
          route.c_str(), std::isnan(rate) ? "-" : fmt("%.2f", rate).c_str());
    csv.add_row({s.method, sparse ? nm : "-", layout, std::to_string(s.runs.size()),
                 fmt("%.4f", acc), fmt("%.4f", sd), std::isnan(gap) ? "" : fmt("%.4f", gap),
                 std::to_string(r0.trainable), std::to_string(r0.nonzeros),
                 fmt("%.2f", s.mean(&RunResult::train_seconds)), fmt("%.1f", sps),
                 fmt("%.3f", state_mb), fmt("%.1f", rss_mb), route,
                 std::isnan(rate) ? "" : fmt("%.4f", rate)});
  }
  csv.save(o.out + "/results.csv");

  LinePlot acc_plot("Fashion-MNIST test accuracy (" + nm + ", mean over seeds)", "epoch",
                    "test accuracy (%)");
  LinePlot flip_plot("Mask-flip rate per refresh (" + nm + ")", "refresh", "flip rate");
  for (const Summary& s : all) {
    std::vector<double> xs, ys;
    for (std::size_t e = 0; e < s.runs.front().epoch_test_accuracy.size(); ++e) {
      double m = 0;
      for (const RunResult& r : s.runs) m += r.epoch_test_accuracy[e];
      xs.push_back(double(e + 1));
      ys.push_back(m / double(s.runs.size()));
    }
    acc_plot.add_series(s.method, xs, ys);
    const std::vector<double>& f = s.runs.front().flip_rates;
    if (!f.empty()) {
      std::vector<double> fx;
      for (std::size_t i = 0; i < f.size(); ++i) fx.push_back(double(i + 1));
      flip_plot.add_series(s.method + " (seed " + std::to_string(o.seed) + ")", fx, f);
    }
  }
  acc_plot.save(o.out + "/accuracy.svg");
  if (flip_plot.series_count() > 0) flip_plot.save(o.out + "/mask_flip_rate.svg");
  if (print)
    std::printf("\nwrote %s/results.csv, %s/accuracy.svg%s and the models under %s/<method>/\n",
                o.out.c_str(), o.out.c_str(),
                flip_plot.series_count() ? (", " + o.out + "/mask_flip_rate.svg").c_str() : "",
                o.out.c_str());
}

// =============================================================================================
// 7. main
// =============================================================================================
int main(int argc, char** argv) {
  try {
    const Stopwatch total;
    const Options o = parse_options(argc, argv);
    if (o.threads > 0) set_thread_count(o.threads);
    make_dirs(o.out);
    const Data data = load_data(o);
    std::printf(
        "Fashion-MNIST: %ld train / %ld test images; MLP 784-1024-1024-10; N:M %d:%d; "
        "%d epoch(s), batch %d, %d thread(s), SIMD %s\n",
        long(data.train.images.rows()), long(data.test.images.rows()), o.nm.n, o.nm.m, o.epochs,
        o.batch, thread_count(), to_string(compiled_isa()));
    std::vector<Summary> all;
    for (const std::string& method : o.methods) {
      Summary s{method, {}};
      for (int k = 0; k < o.seeds; ++k) s.runs.push_back(run_method(method, o, data, o.seed + k));
      all.push_back(std::move(s));
      report(all, o, false);
    }
    report(all, o, true);
    std::printf("total wall time %.0f s (data loading included)\n", total.seconds());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
