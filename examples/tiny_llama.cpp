// SPDX-License-Identifier: Apache-2.0
// The papers' main experiment at CPU scale: a byte-level LLaMA-style decoder pre-trained with N:M
// sparse projections (CHTsNM Tables 1-2, CHTs24), and a dense model post-trained to 2:4 (CAST,
// SparseForge), in a plain C++ loop. Prints progress with tokens/s, validation perplexity tables,
// writes CSV and SVG curves, and exports every model (safetensors + .npy + manifest.json).
//
//   build/examples/tiny_llama                                  # dense, STE, CHTs24, CHTsNM 1:4
//   build/examples/tiny_llama --method all --steps 600 --seeds 3
//
// Model (LLaMA, pre-norm): bytes -> embedding (dense) -> L x [x += Attn(RMSNorm(x));
// x += SwiGLU(RMSNorm(x))] -> RMSNorm -> head (dense) -> 256 logits. Attention: causal, RoPE,
// heads of d_model / heads. All seven projections q, k, v, o, gate, up, down are N:M sparse for
// the sparse methods (CHTsNM App. H: "the same target linear layers"), no biases.
// Pre-training methods (--method):
//   dense         Adam on everything (the reference; CHTsNM App. H, weight decay 0)
//   ste, srste    dense latent weights, magnitude N:M mask every step (CHTsNM App. H.1-H.2)
//   chts24        sparse-to-sparse: Adam + CHTs topology refresh (CHTs24; CHTsNM App. H.4)
//   chtsnm        sparse-to-sparse: TANS + refresh, MPR for row-wise (CHTsNM Sec. 3)
//   chtsnm-lora   chtsnm plus a ~1% CoMoLoRA branch on every projection (CHTsNM App. H.5)
//   chtsnm-adam   the TANS ablation: chtsnm's topology engine (MPR included) with Adam
//   chtsnm-nompr  the MPR ablation: chtsnm without Motif Pattern Revisitation
// Post-training from the dense model of the same seed to --post-nm (2:4 row-wise by default),
// --post-steps steps each (the same token budget for every method):
//   post-magnitude  one-shot magnitude pruning, no training
//   post-ste        STE retraining with Adam
//   post-cast       AdamS + weight scaling + distillation (KL + CE, eta) from the dense teacher
//   post-sparseforge Hutchinson Hessian diagonal + soft-mask annealing (SparseForge Alg. 1)
// Data parallel (built with MPI, SPARSENM_EXAMPLE_MPI): `mpiexec -n K build/examples/tiny_llama
// ...` trains the same model on K ranks, each on its slice of every global batch of --batch
// sequences (K must divide it), the gradients averaged by MpiDataParallel (sparsenm/mpi.hpp) before
// the trainer's step, the refreshes computed by every rank alike and checked; rank 0 prints and
// exports. Same global batch and hyperparameters for any K. (post-cast and post-sparseforge step
// optimizers outside the trainer and run on one rank only.)
#include <sparsenm/sparsenm.hpp>
#if defined(SPARSENM_EXAMPLE_MPI)
#include <mpi.h>

#include <sparsenm/mpi.hpp>
#endif

#include "example_util.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
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
const std::vector<std::string> kPretrain = {"dense",  "ste",         "srste",       "chts24",
                                            "chtsnm", "chtsnm-lora", "chtsnm-adam", "chtsnm-nompr"};
const std::vector<std::string> kPost = {"post-magnitude", "post-ste", "post-cast",
                                        "post-sparseforge"};

struct Options {
  std::string corpus = "/usr/share/games/fortunes";
  std::string out = "tiny_llama_out";
  std::vector<std::string> methods = {"dense", "ste", "chts24", "chtsnm", "chtsnm-lora"};
  NM nm{1, 4};
  NM post_nm{2, 4};
  Layout layout = Layout::RowWise;
  Index d_model = 128, layers = 4, heads = 4, hidden = 352, context = 128;
  long steps = 300, post_steps = 100;
  int batch = 8;                     // sequences per step
  double lr = 2e-3, post_lr = 3e-4;  // peak step sizes (warm-up 10%, cosine to 10%)
  double eta = 1.0;                  // CAST distillation coefficient
  Index eval_tokens = 16384;         // validation tokens per evaluation (0: all)
  int evals = 6;                     // evaluations per run (curves)
  std::uint64_t seed = 1;
  int seeds = 1;
  int threads = 0;
  bool export_models = true;
};

bool is_post(const std::string& m) { return m.rfind("post-", 0) == 0; }

// This process's rank and the number of ranks (1 without MPI).
int g_rank = 0, g_ranks = 1;

void usage() {
  std::printf(
      "usage: tiny_llama [--method LIST|all|pretrain|post] [--nm 1:4|2:4] [--layout row|block]\n"
      "                  [--post-nm 2:4] [--steps S] [--post-steps S] [--batch B] [--lr LR]\n"
      "                  [--post-lr LR] [--eta ETA] [--d-model D] [--layers L] [--heads H]\n"
      "                  [--hidden F] [--context T] [--eval-tokens N] [--evals K] [--seed S]\n"
      "                  [--seeds K] [--threads T] [--corpus FILE|DIR] [--out DIR] [--no-export]\n"
      "pre-training: dense ste srste chts24 chtsnm chtsnm-lora chtsnm-adam chtsnm-nompr\n"
      "post-training (from the dense model of the same seed): post-magnitude post-ste post-cast\n"
      "                post-sparseforge\n");
}

Options parse_options(int argc, char** argv) {
  Options o;
  auto parse_nm = [](const std::string& v, const char* name) {
    const auto p = split(v, ':');
    SPARSENM_CHECK(p.size() == 2, name, " must look like 1:4 or 2:4, not '", v, "'");
    const NM nm{std::stoi(p[0]), std::stoi(p[1])};
    check_nm(nm, name);
    return nm;
  };
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
      std::vector<std::string> all = kPretrain;
      all.insert(all.end(), kPost.begin(), kPost.end());
      o.methods = v == "all"        ? all
                  : v == "pretrain" ? kPretrain
                  : v == "post"     ? kPost
                                    : split(v, ',');
      for (const std::string& m : o.methods)
        SPARSENM_CHECK(std::find(all.begin(), all.end(), m) != all.end(),
                       "--method: unknown method '", m, "'");
    } else if (a == "--nm") {
      o.nm = parse_nm(value(), "--nm");
    } else if (a == "--post-nm") {
      o.post_nm = parse_nm(value(), "--post-nm");
    } else if (a == "--layout") {
      const std::string v = value();
      SPARSENM_CHECK(v == "row" || v == "block", "--layout = ", v, " must be row or block");
      o.layout = v == "row" ? Layout::RowWise : Layout::Transposable;
    } else if (a == "--steps") {
      o.steps = std::stol(value());
    } else if (a == "--post-steps") {
      o.post_steps = std::stol(value());
    } else if (a == "--batch") {
      o.batch = std::stoi(value());
    } else if (a == "--lr") {
      o.lr = std::stod(value());
    } else if (a == "--post-lr") {
      o.post_lr = std::stod(value());
    } else if (a == "--eta") {
      o.eta = std::stod(value());
    } else if (a == "--d-model") {
      o.d_model = std::stol(value());
    } else if (a == "--layers") {
      o.layers = std::stol(value());
    } else if (a == "--heads") {
      o.heads = std::stol(value());
    } else if (a == "--hidden") {
      o.hidden = std::stol(value());
    } else if (a == "--context") {
      o.context = std::stol(value());
    } else if (a == "--eval-tokens") {
      o.eval_tokens = std::stol(value());
    } else if (a == "--evals") {
      o.evals = std::stoi(value());
    } else if (a == "--seed") {
      o.seed = std::stoull(value());
    } else if (a == "--seeds") {
      o.seeds = std::stoi(value());
    } else if (a == "--threads") {
      o.threads = std::stoi(value());
    } else if (a == "--corpus") {
      o.corpus = value();
    } else if (a == "--out") {
      o.out = value();
    } else if (a == "--no-export") {
      o.export_models = false;
    } else {
      usage();
      SPARSENM_CHECK(false, "unknown option '", a, "'");
    }
  }
  check_at_least(o.steps, 10, "--steps");
  check_at_least(o.post_steps, 20, "--post-steps");
  check_at_least(o.batch, 1, "--batch");
  check_at_least(o.seeds, 1, "--seeds");
  check_at_least(o.evals, 1, "--evals");
  check_at_least(o.layers, 1, "--layers");
  check_at_least(o.context, 2, "--context");
  check_finite_positive(o.lr, "--lr");
  check_finite_positive(o.post_lr, "--post-lr");
  check_finite_nonnegative(o.eta, "--eta");
  check_divisible(o.d_model, o.heads, "--d-model", "--heads");
  SPARSENM_CHECK((o.d_model / o.heads) % 2 == 0, "--d-model / --heads = ", o.d_model / o.heads,
                 " must be even (RoPE rotates pairs)");
  const int m = std::max(o.nm.m, o.post_nm.m);
  check_divisible(o.d_model, m, "--d-model", "M of --nm / --post-nm");
  check_divisible(o.hidden, m, "--hidden", "M of --nm / --post-nm");
  SPARSENM_CHECK(!o.methods.empty(), "--method: empty list");
  return o;
}

// =============================================================================================
// 2. Corpus: bytes, split 90/10 by a fixed rule
// =============================================================================================
struct Corpus {
  std::vector<std::uint8_t> train, val;
  std::string source;
};

// The text is cut into consecutive 4 KiB blocks; block i goes to validation when i % 10 == 9
// (so the split is a fixed function of the text, and both halves span every source file).
Corpus load_corpus(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    std::fprintf(stderr,
                 "error: corpus '%s' not found.\n"
                 "Install Debian's fortunes text with:  sudo apt-get install fortunes\n"
                 "or pass --corpus FILE (any text file).\n",
                 path.c_str());
    std::exit(2);
  }
  std::vector<std::string> files;
  if (S_ISDIR(st.st_mode)) {  // fortunes: every file without an extension (not .dat / .u8)
    DIR* d = opendir(path.c_str());
    SPARSENM_CHECK(d != nullptr, "cannot open directory '", path, "'");
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.empty() || name[0] == '.' || name.find('.') != std::string::npos) continue;
      struct stat fs;
      const std::string full = path + "/" + name;
      if (stat(full.c_str(), &fs) == 0 && S_ISREG(fs.st_mode)) files.push_back(full);
    }
    closedir(d);
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  std::vector<std::uint8_t> text;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    SPARSENM_CHECK(in.good(), "cannot read corpus file '", f, "'");
    text.insert(text.end(), std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  Corpus c;
  c.source = path + " (" + std::to_string(files.size()) + " file(s))";
  const std::size_t block = 4096;
  for (std::size_t i = 0; i * block < text.size(); ++i) {
    auto& dst = i % 10 == 9 ? c.val : c.train;
    dst.insert(dst.end(), text.begin() + long(i * block),
               text.begin() + long(std::min(text.size(), (i + 1) * block)));
  }
  return c;
}

// =============================================================================================
// 3. The model
// =============================================================================================
// A projection (bias-free, like LLaMA's) in one of two forms:
//  - sparse-to-sparse methods: a SparseLinear holds the only copy of W (compressed values and
//    indices; SpMM forward and dX, SDDMM for the active dW), trained by the SparseTrainer;
//  - dense and dense-latent methods (dense, STE, SR-STE, post-training): a dense latent W (or
//    Theta) with the forward weight `weff` = W, W ⊙ m(W), Θ ⊙ A or Θ ⊙ m_eff, OpenBLAS GEMMs.
struct Proj {
  Index n_in, n_out;
  std::string name;
  std::unique_ptr<SparseLinear<float>> sparse;
  Mat w, weff, grad, x;  // dense route
  Mask mask;             // dense route of a sparse method: the current hard mask
  std::unique_ptr<CoMoLoRA<float>> lora;
  std::unique_ptr<Ste<float>> ste;
  std::unique_ptr<AdamS<float>> adams;
  std::unique_ptr<Adam<float>> theta_adam;  // SparseForge: Adam on Θ
  std::unique_ptr<SoftMaskAnnealer<float>> annealer;
  std::unique_ptr<HutchinsonDiagonal<float>> hessian;

  Proj(Index in_, Index out_, std::string n) : n_in(in_), n_out(out_), name(std::move(n)) {}
  Index in() const { return n_in; }
  Index out() const { return n_out; }

  Mat forward(const Mat& xin) {
    Mat y;
    if (sparse) {
      y = sparse->forward(xin);
    } else {
      x = xin;
      y.resize(xin.rows(), n_out);
      parallel_product(y, x, weff.transpose());
    }
    if (lora) y += lora->forward(xin);
    return y;
  }
  Mat backward(const Mat& dy) {
    Mat dx;
    if (sparse) {
      dx = sparse->backward(dy);
    } else {
      grad.resize(n_out, n_in);
      parallel_product(grad, dy.transpose(), x);  // dL/dweff (straight-through for the masks)
      dx.resize(dy.rows(), n_in);
      parallel_product(dx, dy, weff);
    }
    if (lora) dx += lora->backward(dy);
    return dx;
  }
  // The weight the forward pass uses, dense (out, in) with zeros off the mask (export, pruning).
  Mat dense_weight() const { return sparse ? sparse->dense_weight() : weff; }
};

struct Arch {
  Index vocab = 256, d_model, layers, heads, hidden, context;
  double rope_base = 10000.0, norm_eps = 1e-5;
};

struct Block {
  RmsNorm<float> attn_norm, ffn_norm;
  Proj q, k, v, o, gate, up, down;
  std::unique_ptr<MultiHeadAttention<float, Proj>> attn;
  std::unique_ptr<SwiGluMlp<float, Proj>> mlp;
  Block(const Arch& a, int i)
      : attn_norm(a.d_model, a.norm_eps),
        ffn_norm(a.d_model, a.norm_eps),
        q(a.d_model, a.d_model, pname(i, "attention.wq")),
        k(a.d_model, a.d_model, pname(i, "attention.wk")),
        v(a.d_model, a.d_model, pname(i, "attention.wv")),
        o(a.d_model, a.d_model, pname(i, "attention.wo")),
        gate(a.d_model, a.hidden, pname(i, "feed_forward.w1")),
        up(a.d_model, a.hidden, pname(i, "feed_forward.w3")),
        down(a.hidden, a.d_model, pname(i, "feed_forward.w2")) {
    attn = std::make_unique<MultiHeadAttention<float, Proj>>(q, k, v, o, a.heads, a.context,
                                                             a.rope_base);
    mlp = std::make_unique<SwiGluMlp<float, Proj>>(gate, up, down);
  }
  static std::string pname(int i, const char* n) { return "layers." + std::to_string(i) + "." + n; }
  std::vector<Proj*> projections() { return {&q, &k, &v, &o, &gate, &up, &down}; }
};

struct Model {
  Arch arch;
  Embedding<float> emb;
  std::vector<std::unique_ptr<Block>> blocks;
  RmsNorm<float> norm;
  Mat head, head_grad, hn;

  Model(const Arch& a, const Philox& rng)
      : arch(a), emb(a.vocab, a.d_model, rng.split(1), 0.02), norm(a.d_model, a.norm_eps) {
    for (int i = 0; i < a.layers; ++i) blocks.push_back(std::make_unique<Block>(a, i));
    // Head: nn.Linear's default init, U(-1/sqrt(d), 1/sqrt(d)).
    head.resize(a.vocab, a.d_model);
    const Philox hr = rng.split(2);
    const double bound = 1.0 / std::sqrt(double(a.d_model));
    for (Index i = 0; i < head.size(); ++i)
      head.data()[i] = float((2 * hr.uniform(std::uint64_t(i)) - 1) * bound);
    head_grad = Mat::Zero(head.rows(), head.cols());
  }
  std::vector<Proj*> projections() {
    std::vector<Proj*> p;
    for (auto& b : blocks)
      for (Proj* x : b->projections()) p.push_back(x);
    return p;
  }
  Mat forward(const std::vector<int>& tokens) {
    Mat h = emb.forward(tokens);
    for (auto& b : blocks) {
      h += b->attn->forward(b->attn_norm.forward(h));
      h += b->mlp->forward(b->ffn_norm.forward(h));
    }
    hn = norm.forward(h);
    Mat logits(hn.rows(), arch.vocab);
    parallel_product(logits, hn, head.transpose());
    return logits;
  }
  void backward(const Mat& grad_logits) {
    parallel_product(head_grad, grad_logits.transpose(), hn);
    Mat gh(grad_logits.rows(), arch.d_model);
    parallel_product(gh, grad_logits, head);
    Mat dh = norm.backward(gh);
    for (int i = int(blocks.size()) - 1; i >= 0; --i) {
      Block& b = *blocks[std::size_t(i)];
      dh += b.ffn_norm.backward(b.mlp->backward(dh));
      dh += b.attn_norm.backward(b.attn->backward(dh));
    }
    emb.backward(dh);
  }
};

// A batch of `count` windows of context + 1 bytes: tokens = window[0, T), labels = window[1, T].
void make_batch(const std::vector<std::uint8_t>& text, const std::vector<std::size_t>& starts,
                Index context, std::vector<int>& tokens, std::vector<int>& labels) {
  tokens.clear();
  labels.clear();
  for (std::size_t s : starts)
    for (Index t = 0; t < context; ++t) {
      tokens.push_back(text[s + std::size_t(t)]);
      labels.push_back(text[s + std::size_t(t) + 1]);
    }
}

// Validation: non-overlapping windows from the start of the validation text (at most
// eval_tokens tokens); returns exp(mean cross-entropy).
double evaluate(Model& m, const std::vector<std::uint8_t>& val, Index eval_tokens, int batch,
                Index max_windows = -1) {
  const Index t = m.arch.context;
  Index windows = Index((val.size() - 1) / std::size_t(t));
  if (eval_tokens > 0) windows = std::min(windows, std::max<Index>(1, eval_tokens / t));
  if (max_windows > 0) windows = std::min(windows, max_windows);
  double total = 0;
  std::vector<int> tokens, labels;
  for (Index w = 0; w < windows; w += batch) {
    std::vector<std::size_t> starts;
    for (Index k = w; k < std::min(windows, w + batch); ++k) starts.push_back(std::size_t(k * t));
    make_batch(val, starts, t, tokens, labels);
    total += double(softmax_cross_entropy(m.forward(tokens), labels)) * double(labels.size());
  }
  return std::exp(total / double(windows * t));
}

// =============================================================================================
// 4. One run
// =============================================================================================
struct RunResult {
  std::string method;
  std::uint64_t seed = 0;
  // tokens/s over the whole run, and of the fastest step (robust to other load on the machine)
  double val_ppl = 0, train_seconds = 0, tokens_per_second = 0, best_tokens_per_second = 0;
  double sample_ppl = 0;
  long steps = 0;
  long long tokens = 0, active_params = 0;
  std::vector<double> curve_steps, curve_ppl, loss_steps, loss_values;
};

struct Recipe {
  bool sparse = false;  // sparse-to-sparse (SparseLinear + SparseTrainer)
  bool tans = false, lora = false, mpr = false;
  bool ste = false, srste = false;
  bool post = false, magnitude = false, cast = false, forge = false;
  NM nm{1, 4};
  Layout layout = Layout::RowWise;
};

Recipe recipe_for(const std::string& m, const Options& o) {
  Recipe r;
  r.nm = o.nm;
  r.layout = o.layout;
  if (m == "ste" || m == "srste") {
    r.ste = true;
    r.srste = m == "srste";
  } else if (m == "chts24") {
    r.sparse = true;
  } else if (m.rfind("chtsnm", 0) == 0) {
    r.sparse = true;
    r.tans = m != "chtsnm-adam";
    r.lora = m == "chtsnm-lora";
    r.mpr = m != "chtsnm-nompr" && o.layout == Layout::RowWise;
  } else if (is_post(m)) {
    r.post = true;
    r.nm = o.post_nm;
    r.layout = Layout::RowWise;  // CAST / SparseForge are row-wise methods (CHTsNM App. H.3)
    r.magnitude = m == "post-magnitude";
    r.ste = m == "post-ste";
    r.cast = m == "post-cast";
    r.forge = m == "post-sparseforge";
  }
  return r;
}

Arch arch_of(const Options& o) {
  Arch a;
  a.d_model = o.d_model;
  a.layers = o.layers;
  a.heads = o.heads;
  a.hidden = o.hidden;
  a.context = o.context;
  return a;
}

// Tensor names of the dense parameters (export and loading).
template <class F>
void visit_dense_params(Model& m, F&& f) {
  f("tok_embeddings.weight", m.emb.weight());
  for (std::size_t i = 0; i < m.blocks.size(); ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    Mat a = m.blocks[i]->attn_norm.weight().transpose(),
        b = m.blocks[i]->ffn_norm.weight().transpose();
    f(p + "attention_norm.weight", a);
    f(p + "ffn_norm.weight", b);
    m.blocks[i]->attn_norm.weight() = a.transpose();
    m.blocks[i]->ffn_norm.weight() = b.transpose();
  }
  Mat nf = m.norm.weight().transpose();
  f("norm.weight", nf);
  m.norm.weight() = nf.transpose();
  f("output.weight", m.head);
}

// Dense model -> safetensors (for post-training; the same names as the export).
SafetensorsFile dense_state(Model& m) {
  SafetensorsFile f;
  visit_dense_params(m, [&](const std::string& n, Mat& v) { f.add(n, v, v.rows() == 1); });
  for (Proj* p : m.projections()) f.add(p->name + ".weight", p->dense_weight());
  return f;
}

// Loads dense_state() / an exported dense model into a dense-route model (shapes checked).
void load_dense(Model& m, const SafetensorsFile& f) {
  auto get = [&](const std::string& n, Index rows, Index cols) {
    const Tensor& t = f.at(n);
    const Mat v =
        t.shape.size() == 1 ? Mat(t.to_vector<float>().transpose()) : t.to_matrix<float>();
    SPARSENM_CHECK(v.rows() == rows && v.cols() == cols, "dense model: tensor '", n, "' is ",
                   v.rows(), "x", v.cols(), " but the model needs ", rows, "x", cols);
    return v;
  };
  visit_dense_params(m, [&](const std::string& n, Mat& v) { v = get(n, v.rows(), v.cols()); });
  for (Proj* p : m.projections()) {
    p->w = get(p->name + ".weight", p->out(), p->in());
    p->weff = p->w;
  }
}

void export_model(Model& m, const RunResult& r, const Recipe& rc, const Options& o,
                  const std::string& dir);

RunResult run_method(const std::string& method, const Options& o, const Corpus& data,
                     std::uint64_t seed, std::map<std::uint64_t, SafetensorsFile>& dense_ckpt) {
  const Recipe rc = recipe_for(method, o);
  const Arch arch = arch_of(o);
  SPARSENM_CHECK(g_ranks == 1 || !(rc.cast || rc.forge), "--method ", method,
                 " steps optimizers outside the trainer: run it on one rank (", g_ranks,
                 " ranks given)");
  // This rank's sequences of every global batch (throws unless the ranks divide --batch).
  const Shard mine = shard_of(o.batch, g_rank, g_ranks);
#if defined(SPARSENM_EXAMPLE_MPI)
  MpiDataParallel<float> dp;  // rank-ordered sums: the same bits on every rank
#endif
  const Philox rng(seed);
  Model model(arch, rng.split(10));
  const long steps = rc.post ? (rc.magnitude ? 0 : o.post_steps) : o.steps;
  const double peak = rc.post ? o.post_lr : o.lr;
  const WarmupCosine sched{peak, std::max(1L, steps / 10), std::max(1L, steps), 0.1};

  // ---- projections ----------------------------------------------------------------------------
  int k = 0;
  for (Proj* p : model.projections()) {
    const Philox prng = rng.split(100 + std::uint64_t(k++));
    if (rc.sparse) {
      // Dynamic sparse training starts from a random legal mask (CHTs24 Sec. 3; CHTsNM Sec. 3).
      p->sparse = std::make_unique<SparseLinear<float>>(p->in(), p->out(), rc.nm, rc.layout, prng);
    } else {
      DenseLinear<float> init(p->in(), p->out(), prng);  // nn.Linear's initial values
      p->w = init.weight();
      p->weff = p->w;
    }
    if (rc.lora) {
      // About 1% of the dense layer: rank r with r (in + out) ~ 0.01 in out (CHTsNM App. H.5).
      const double in = double(p->in()), out = double(p->out());
      const int rank = std::max(1, int(std::lround(0.01 * in * out / (in + out))));
      p->lora = std::make_unique<CoMoLoRA<float>>(p->in(), p->out(), rank, 2, 0.5f, float(rank),
                                                  prng.split(7));
    }
  }
  // Post-training starts from the dense model of this seed (its weights, nothing else).
  std::unique_ptr<Model> teacher;
  if (rc.post) {
    load_dense(model, dense_ckpt.at(seed));
    if (rc.cast) {
      teacher = std::make_unique<Model>(arch, rng.split(10));
      load_dense(*teacher, dense_ckpt.at(seed));
    }
  }
  for (Proj* p : model.projections()) {
    if (rc.ste) {
      SteConfig sc;
      sc.nm = rc.nm;
      sc.layout = rc.layout;
      sc.lambda_w = rc.srste ? 2e-4 : 0.0;  // SR-STE decay (CHTs24's form; CHTsNM App. H.2)
      p->ste = std::make_unique<Ste<float>>(p->out(), p->in(), sc);
    }
    if (rc.magnitude) {
      p->mask = edsrt_prune<float>(p->w, rc.nm, rc.layout);  // zeroes the pruned entries of w
      p->weff = p->w;
    }
    if (rc.cast) {
      AdamSConfig ac;
      ac.lr = peak;
      ac.nm = rc.nm;
      ac.total_steps = steps;
      p->adams = std::make_unique<AdamS<float>>(p->out(), p->in(), ac);
    }
    if (rc.forge) {
      SoftMaskConfig sc = SoftMaskConfig::for_steps(steps);
      sc.nm = rc.nm;
      sc.layout = rc.layout;
      p->annealer = std::make_unique<SoftMaskAnnealer<float>>(p->out(), p->in(), sc);
      p->hessian = std::make_unique<HutchinsonDiagonal<float>>(p->out(), p->in(), 0.99);
      AdamConfig a;
      a.lr = peak;
      p->theta_adam = std::make_unique<Adam<float>>(p->out(), p->in(), a);
    }
  }

  // ---- one trainer for the model: sparse values (Adam / TANS) with topology refresh, and Adam for
  //      every dense parameter (embedding, norms, head, CoMoLoRA, dense / STE projections) --------
  SparseTrainerConfig tcfg;
  tcfg.weights = rc.tans ? WeightOptimizer::Tans : WeightOptimizer::Adam;
  tcfg.adam.lr = peak;
  tcfg.adam.eps = 1e-5;  // CHTsNM App. H: adam eps 1e-5, weight decay 0
  tcfg.tans.lr = peak;
  tcfg.refresh = rc.sparse;
  tcfg.topology.nm = rc.nm;
  tcfg.topology.layout = rc.layout;
  tcfg.topology.zeta = 0.1;
  // CHTsNM App. H.4: refresh every 100 of 10,000 steps until 75% of training: scaled to the
  // budget (at least every 4 steps, so that a short run is not all refreshes).
  tcfg.topology.interval = int(std::max(4L, steps / 100));
  tcfg.topology.total_steps = std::max(1L, steps);
  tcfg.topology.stop_fraction = 0.75;
  tcfg.topology.mpr_rho = rc.mpr ? (rc.nm.n == 1 ? 0.5 : 0.75) : 0.0;  // CHTsNM App. H.5
  tcfg.seed = seed * 1000;
  SparseTrainer<float> trainer(tcfg);
  for (Proj* p : model.projections()) {
    if (p->sparse) trainer.add(*p->sparse);
    if (p->lora) trainer.add(*p->lora);
    if (!p->sparse && !p->adams && !p->annealer) {
      p->grad = Mat::Zero(p->out(), p->in());
      trainer.add(p->w, p->grad);
    }
  }
  trainer.add(model.emb.weight(), model.emb.grad_weight());
  for (auto& b : model.blocks) {
    trainer.add(b->attn_norm.weight(), b->attn_norm.grad_weight());
    trainer.add(b->ffn_norm.weight(), b->ffn_norm.grad_weight());
  }
  trainer.add(model.norm.weight(), model.norm.grad_weight());
  trainer.add(model.head, model.head_grad);

  // Forward weights of the dense-latent methods for the coming step.
  auto set_forward_weights = [&](long step) {
    for (Proj* p : model.projections()) {
      if (p->ste) p->weff = p->ste->forward(p->w);  // W ⊙ m(W), the mask recomputed every step
      if (p->adams) p->weff = p->adams->scaled_weight(p->w);  // Θ ⊙ A (dense forward, CAST)
      if (p->annealer) p->weff = p->w.cwiseProduct(p->annealer->effective_mask(step));
      if (!p->sparse && !p->ste && !p->adams && !p->annealer) p->weff = p->w;  // dense, magnitude
    }
  };

  RunResult result;
  result.method = method;
  result.seed = seed;
  const Index t = arch.context;
  const std::size_t span = data.train.size() - std::size_t(t) - 1;
  const Philox batch_rng = rng.split(20);
  std::vector<int> tokens, labels;
  Mat grad_logits;
  const long eval_every = std::max(1L, steps / o.evals);
  double train_seconds = 0, best_step = 1e30;
  char label[64];
  std::snprintf(label, sizeof label, "%-16s seed %llu", method.c_str(),
                static_cast<unsigned long long>(seed));
  // Rank 0 reports; the others write their (identical-model) progress nowhere.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> devnull(
      g_rank == 0 ? nullptr : std::fopen("/dev/null", "w"),
      [](std::FILE* f) { return f ? std::fclose(f) : 0; });
  ProgressBar bar(std::max(1L, steps) * o.batch * t, label, devnull ? devnull.get() : stdout,
                  steps > 0 && g_rank == 0 ? -1 : 0);
  double loss_ema = 0, acc_ema = 0;
  for (long step = 1; step <= steps; ++step) {
    Stopwatch clock;
    std::vector<std::size_t> starts;
    for (int b = 0; b < o.batch; ++b)
      starts.push_back(std::min(
          span, std::size_t(batch_rng.uniform(std::uint64_t(step * o.batch + b)) * double(span))));
    if (g_ranks > 1)  // the global batch is the same on every rank; this rank trains on its slice
      starts = std::vector<std::size_t>(starts.begin() + mine.begin,
                                        starts.begin() + mine.begin + mine.count);
    make_batch(data.train, starts, t, tokens, labels);
    const double lr = sched(step);
    set_forward_weights(step);
    const Mat logits = model.forward(tokens);
    double loss;
    if (teacher) {  // CAST: KL(teacher ‖ student) + CE (CAST Sec. 3)
      const Mat tl = teacher->forward(tokens);
      loss = distillation_loss(logits, tl, labels, o.eta, &grad_logits).ce;
    } else {
      loss = softmax_cross_entropy(logits, labels, &grad_logits);
    }
    model.backward(grad_logits);
    for (Proj* p : model.projections()) {
      if (p->ste) p->grad = p->ste->backward(p->grad, p->w);  // straight-through (+ SR-STE)
      if (p->adams) {
        p->adams->set_lr(lr);
        p->adams->step(p->w, p->grad);  // CAST Alg. 1 on Θ
      }
      if (p->theta_adam) {
        p->theta_adam->set_lr(lr);
        p->theta_adam->step(p->w, p->grad);  // SparseForge: straight-through gradient for Θ
      }
    }
    trainer.set_lr(lr);
#if defined(SPARSENM_EXAMPLE_MPI)
    // Every rank's gradients (the mean over its slice) averaged into the global batch's mean;
    // then every rank takes the same step and the same refresh, checked by a 16-byte hash.
    if (dp.size() > 1) {
      dp.all_reduce_gradients(trainer);
      if (!trainer.step(step).empty()) dp.check_agreement(trainer);
    } else {
      trainer.step(step);
    }
#else
    trainer.step(step);
#endif
    if (rc.forge) {
      // Hutchinson probe of every projection's Hessian diagonal at once: one Rademacher v per
      // layer, H v by a central difference of the whole model's gradient (two extra passes; the
      // cross-layer terms vanish in expectation), then soft gates, blend and mask EMA (Alg. 1).
      bool due = false;
      for (Proj* p : model.projections()) due = due || p->annealer->due(step);
      if (due) {
        const Philox hr = rng.split(500).split(std::uint64_t(step));
        std::vector<Mat> vs, w0, gp;
        std::vector<double> hs;
        for (Proj* p : model.projections()) {
          Mat v(p->out(), p->in());
          HutchinsonDiagonal<float>::rademacher_probe(hr, p->hessian->samples(), v);
          const double h = 1e-2 * std::max(1e-6, double(p->weff.norm()) / double(v.norm()));
          vs.push_back(v);
          hs.push_back(h);
          w0.push_back(p->weff);
        }
        auto grads_at = [&](double sign) {
          std::size_t i = 0;
          for (Proj* p : model.projections()) {
            p->weff = w0[i] + float(sign * hs[i]) * vs[i];
            ++i;
          }
          Mat gl;
          softmax_cross_entropy(model.forward(tokens), labels, &gl);
          model.backward(gl);
          std::vector<Mat> g;
          for (Proj* p : model.projections()) g.push_back(p->grad);
          return g;
        };
        const std::vector<Mat> g_plus = grads_at(1), g_minus = grads_at(-1);
        std::size_t i = 0;
        for (Proj* p : model.projections()) {
          p->weff = w0[i];
          if (p->annealer->due(step)) {
            const Mat hv = (g_plus[i] - g_minus[i]) / float(2 * hs[i]);
            p->hessian->update(
                [&](const Mat& v) {
                  SPARSENM_CHECK(v == vs[i], "SparseForge probe mismatch");
                  return hv;
                },
                hr);
            p->annealer->update(p->hessian->diagonal(), p->w, step);
          }
          ++i;
        }
      }
    }
    const double step_seconds = clock.seconds();
    train_seconds += step_seconds;
    best_step = std::min(best_step, step_seconds);
    const double acc = double(count_correct(logits, labels)) / double(labels.size());
    loss_ema = step == 1 ? loss : 0.95 * loss_ema + 0.05 * loss;
    acc_ema = step == 1 ? acc : 0.95 * acc_ema + 0.05 * acc;
    if (step % 10 == 0 || step == steps) {
      result.loss_steps.push_back(double(step));
      result.loss_values.push_back(loss_ema);
    }
    bar.update(step * o.batch * t, loss_ema, acc_ema);  // next-byte accuracy; samples = tokens
    if (step % eval_every == 0 && step != steps) {
      set_forward_weights(step);
      result.curve_steps.push_back(double(step));
      result.curve_ppl.push_back(evaluate(model, data.val, o.eval_tokens, o.batch));
    }
  }

  // ---- every sparse method ends with a hard, legal N:M mask ------------------------------------
  set_forward_weights(std::max(1L, steps));
  for (Proj* p : model.projections()) {
    if (p->ste) {
      p->weff = p->ste->forward(p->w);
      p->mask = p->ste->mask();
    } else if (p->adams) {
      p->mask = p->adams->finalize(p->w);  // folds the scaling, projects, zeroes the rest
      p->weff = p->w;
    } else if (p->annealer) {
      p->mask = p->annealer->finalize();
      p->weff = p->w.cwiseProduct(p->mask.cast<float>());
    }
    if (!p->sparse && p->mask.size() > 0)
      SPARSENM_CHECK(is_legal(p->mask, rc.nm, rc.layout), "final mask of ", p->name,
                     " is not legal");
  }
#if defined(SPARSENM_EXAMPLE_MPI)
  // The run takes as long as its slowest rank.
  MPI_Allreduce(MPI_IN_PLACE, &train_seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  MPI_Allreduce(MPI_IN_PLACE, &best_step, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
#endif
  result.steps = steps;
  result.tokens = (long long)steps * o.batch * t;
  result.train_seconds = train_seconds;
  result.tokens_per_second = train_seconds > 0 ? double(result.tokens) / train_seconds : 0;
  result.best_tokens_per_second = steps > 0 ? double(o.batch * t) / best_step : 0;
  result.val_ppl = evaluate(model, data.val, o.eval_tokens, o.batch);
  result.sample_ppl = evaluate(model, data.val, 0, o.batch, 4);
  result.curve_steps.push_back(double(steps));
  result.curve_ppl.push_back(result.val_ppl);
  char extra[64];
  std::snprintf(extra, sizeof extra, "val ppl %.3f  %.0f tok/s (best step %.0f)", result.val_ppl,
                result.tokens_per_second, result.best_tokens_per_second);
  bar.finish(extra);
  for (Proj* p : model.projections()) {
    const Mat w = p->dense_weight();
    result.active_params += (long long)(w.array() != 0.0f).count();
    if (p->lora) result.active_params += p->lora->parameter_count();
  }
  if (method == "dense") dense_ckpt[seed] = dense_state(model);
  if (o.export_models && g_rank == 0)
    export_model(model, result, rc, o, o.out + "/" + method + "/seed" + std::to_string(seed));
  return result;
}

// =============================================================================================
// 5. Export: model.safetensors + one .npy per tensor + manifest.json (numpy needs nothing else)
// =============================================================================================
void export_model(Model& m, const RunResult& r, const Recipe& rc, const Options&,
                  const std::string& dir) {
  make_dirs(dir);
  SafetensorsFile st;
  set_nm_metadata(st, NMMetadata{rc.nm, rc.layout, r.method});
  std::ostringstream tensors;
  bool first = true;
  auto add = [&](const std::string& name, Tensor t) {
    std::ostringstream shape;
    for (std::size_t i = 0; i < t.shape.size(); ++i) shape << (i ? ", " : "") << t.shape[i];
    tensors << (first ? "" : ",\n") << "    {\"name\": \"" << name << "\", \"file\": \"" << name
            << ".npy\", \"dtype\": \"" << to_string(t.dtype) << "\", \"shape\": [" << shape.str()
            << "]}";
    first = false;
    save_npy(dir + "/" + name + ".npy", t);
    st.add(name, std::move(t));
  };
  visit_dense_params(
      m, [&](const std::string& n, Mat& v) { add(n, Tensor::from_eigen(v, v.rows() == 1)); });
  std::string lora_json = "null";
  const bool sparse = r.method != "dense";
  for (Proj* p : m.projections()) {
    add(p->name + ".weight", Tensor::from_eigen(p->dense_weight()));
    if (sparse) {
      const Mask mk = p->sparse ? p->sparse->mask() : p->mask;
      add(p->name + ".mask", Tensor::from_eigen(mk));
    }
    if (p->lora) {
      CoMoLoRA<float>& l = *p->lora;
      add(p->name + ".lora_A", Tensor::from_eigen(l.A()));
      add(p->name + ".lora_B", Tensor::from_eigen(l.B()));
      add(p->name + ".gate_W1", Tensor::from_eigen(l.W1()));
      add(p->name + ".gate_b1", Tensor::from_eigen(l.b1(), true));
      add(p->name + ".gate_W2", Tensor::from_eigen(l.W2()));
      add(p->name + ".gate_b2", Tensor::from_eigen(l.b2(), true));
      lora_json = "{\"rank\": " + std::to_string(l.rank()) +
                  ", \"gate_hidden\": " + std::to_string(l.hidden()) +
                  ", \"gamma\": " + json_number(l.gamma()) +
                  ", \"alpha\": " + json_number(l.alpha()) +
                  ", \"output\": \"P(x) += (alpha / rank) * ((1 + gamma * tanh(silu(x @ "
                  "gate_W1.T + gate_b1) @ gate_W2.T + gate_b2)) * (x @ lora_A.T)) @ lora_B.T\"}";
    }
  }
  save_safetensors(dir + "/model.safetensors", st);
  const Arch& a = m.arch;
  std::ofstream man(dir + "/manifest.json");
  man << "{\n  \"format\": \"sparsenm-llama-v1\",\n  \"method\": \"" << r.method
      << "\",\n  \"seed\": " << r.seed << ",\n  \"n\": " << rc.nm.n << ", \"m\": " << rc.nm.m
      << ", \"layout\": \"" << to_string(rc.layout)
      << "\", \"sparse\": " << (sparse ? "true" : "false")
      << ",\n  \"architecture\": {\"vocab\": " << a.vocab << ", \"d_model\": " << a.d_model
      << ", \"layers\": " << a.layers << ", \"heads\": " << a.heads
      << ", \"head_dim\": " << a.d_model / a.heads << ", \"hidden\": " << a.hidden
      << ", \"context\": " << a.context << ",\n    \"rope_base\": " << json_number(a.rope_base)
      << ", \"rope_pairing\": \"rotate_half: (x[i], x[i + head_dim/2]) rotated by pos * "
         "rope_base^(-2i/head_dim), i < head_dim/2, pos = index in the sequence\""
      << ",\n    \"norm\": \"rmsnorm: y = x / sqrt(mean(x^2, last axis) + eps) * weight\", "
         "\"norm_eps\": "
      << json_number(a.norm_eps)
      << ",\n    \"activation\": \"silu\", \"bias\": false, \"tied_embeddings\": false,\n"
      << "    \"input\": \"token ids = bytes of UTF-8 text, (batch, context)\",\n"
      << "    \"linear\": \"P(x) = x @ weight.T; weight (out, in) row-major float32, exact zeros "
         "off the mask\",\n"
      << "    \"block\": \"h = x + wo(attention(rope(wq(attention_norm(x))), "
         "rope(wk(attention_norm(x))), wv(attention_norm(x)))); out = h + w2(silu(w1(ffn_norm(h))) "
         "* w3(ffn_norm(h)))\",\n"
      << "    \"attention\": \"per head: softmax(q k^T / sqrt(head_dim) + causal mask) v; heads "
         "are consecutive column blocks of head_dim\",\n"
      << "    \"output\": \"logits = norm(h_last) @ output.weight.T; next-byte distribution\",\n"
      << "    \"lora\": " << lora_json << "},\n"
      << "  \"steps\": " << r.steps << ", \"tokens\": " << r.tokens
      << ",\n  \"val_perplexity\": " << json_number(r.val_ppl)
      << ",\n  \"val_sample\": \"../../val_sample.npy\", \"val_sample_perplexity\": "
      << json_number(r.sample_ppl) << ",\n  \"safetensors\": \"model.safetensors\",\n"
      << "  \"tensors\": [\n"
      << tensors.str() << "\n  ]\n}\n";
}

// =============================================================================================
// 6. Reporting: tables shaped like the papers', results.csv, curves.csv, SVG
// =============================================================================================
struct Summary {
  std::string method;
  std::vector<RunResult> runs;
  double mean(double RunResult::*f) const {
    double s = 0;
    for (const RunResult& r : runs) s += r.*f;
    return s / double(runs.size());
  }
  double max(double RunResult::*f) const {
    double m = 0;
    for (const RunResult& r : runs) m = std::max(m, r.*f);
    return m;
  }
  double stddev(double RunResult::*f) const {
    if (runs.size() < 2) return 0;
    const double mu = mean(f);
    double s = 0;
    for (const RunResult& r : runs) s += (r.*f - mu) * (r.*f - mu);
    return std::sqrt(s / double(runs.size() - 1));
  }
};

std::string nm_string(NM nm) { return std::to_string(nm.n) + ":" + std::to_string(nm.m); }

void report(const std::vector<Summary>& all, const Options& o, bool print) {
  double dense_ppl = std::nan(""), dense_tps = std::nan("");
  for (const Summary& s : all)
    if (s.method == "dense") {
      dense_ppl = s.mean(&RunResult::val_ppl);
      dense_tps = s.max(&RunResult::best_tokens_per_second);
    }
  CsvWriter csv({"method", "stage", "nm", "layout", "seeds", "val_ppl", "val_ppl_std",
                 "gap_to_dense_pct", "tokens_per_second", "best_step_tokens_per_second",
                 "best_step_speed_vs_dense", "train_seconds", "steps", "tokens",
                 "active_projection_params"});
  CsvWriter curves({"method", "seed", "step", "tokens", "val_ppl"});
  CsvWriter losses({"method", "seed", "step", "train_loss_ema"});
  for (int stage = 0; stage < 2; ++stage) {
    const bool post = stage == 1;
    bool any = false;
    for (const Summary& s : all) any = any || is_post(s.method) == post;
    if (!any) continue;
    if (print) {
      const std::string regime = post ? nm_string(o.post_nm) + " row-wise (from the dense model)"
                                      : nm_string(o.nm) + " " + to_string(o.layout);
      std::printf("\n%s, %s: validation perplexity (mean ± std over seeds)\n",
                  post ? "Post-training" : "Pre-training", regime.c_str());
      std::printf(
          "| method | branch | PPL | gap to dense | tokens/s (run) | tokens/s (best step) | vs "
          "dense (best step) | steps | tokens |\n");
      std::printf("|---|---|---|---|---|---|---|---|---|\n");
    }
    for (const Summary& s : all) {
      if (is_post(s.method) != post) continue;
      const Recipe rc = recipe_for(s.method, o);
      const double ppl = s.mean(&RunResult::val_ppl), sd = s.stddev(&RunResult::val_ppl);
      const double gap = 100.0 * (ppl - dense_ppl) / dense_ppl;
      const double tps = s.mean(&RunResult::tokens_per_second);
      const double best = s.max(&RunResult::best_tokens_per_second);
      const std::string nm = s.method == "dense" ? "-" : nm_string(rc.nm);
      const std::string ppl_s = fmt("%.3f", ppl) + (s.runs.size() > 1 ? fmt(" ± %.3f", sd) : "");
      const bool has_speed = !rc.magnitude;
      if (print)
        std::printf(
            "| %s | %s | %s | %s | %s | %s | %s | %ld | %lld |\n", s.method.c_str(),
            rc.lora ? "~1%" : "0%", ppl_s.c_str(),
            s.method == "dense" || std::isnan(gap) ? "-" : fmt("%+.1f%%", gap).c_str(),
            has_speed ? fmt("%.0f", tps).c_str() : "-", has_speed ? fmt("%.0f", best).c_str() : "-",
            has_speed && !std::isnan(dense_tps) ? fmt("%.2fx", best / dense_tps).c_str() : "-",
            s.runs.front().steps, s.runs.front().tokens);
      csv.add_row(
          {s.method, post ? "post" : "pre", nm, s.method == "dense" ? "-" : to_string(rc.layout),
           std::to_string(s.runs.size()), fmt("%.4f", ppl), fmt("%.4f", sd),
           std::isnan(gap) ? "" : fmt("%.2f", gap), fmt("%.1f", tps), fmt("%.1f", best),
           std::isnan(dense_tps) ? "" : fmt("%.3f", best / dense_tps),
           fmt("%.2f", s.mean(&RunResult::train_seconds)), std::to_string(s.runs.front().steps),
           std::to_string(s.runs.front().tokens), std::to_string(s.runs.front().active_params)});
    }
  }
  LinePlot plot("Validation perplexity (" + nm_string(o.nm) + " " + to_string(o.layout) +
                    ", mean over seeds)",
                "training step", "validation perplexity");
  LinePlot loss_plot("Training loss (EMA, first seed)", "training step", "cross-entropy (nats)");
  for (const Summary& s : all) {
    std::vector<double> ys(s.runs.front().curve_ppl.size(), 0.0);
    for (const RunResult& r : s.runs) {
      for (std::size_t i = 0; i < r.curve_ppl.size() && i < ys.size(); ++i)
        ys[i] += r.curve_ppl[i] / double(s.runs.size());
      for (std::size_t i = 0; i < r.curve_ppl.size(); ++i)
        curves.add_row({s.method, std::to_string(r.seed), fmt("%.0f", r.curve_steps[i]),
                        fmt("%.0f", r.curve_steps[i] * o.batch * double(o.context)),
                        fmt("%.4f", r.curve_ppl[i])});
      for (std::size_t i = 0; i < r.loss_values.size(); ++i)
        losses.add_row({s.method, std::to_string(r.seed), fmt("%.0f", r.loss_steps[i]),
                        fmt("%.4f", r.loss_values[i])});
    }
    if (!is_post(s.method)) plot.add_series(s.method, s.runs.front().curve_steps, ys);
    if (!s.runs.front().loss_values.empty())
      loss_plot.add_series(s.method, s.runs.front().loss_steps, s.runs.front().loss_values);
  }
  csv.save(o.out + "/results.csv");
  curves.save(o.out + "/curves.csv");
  losses.save(o.out + "/train_loss.csv");
  if (plot.series_count() > 0) plot.save(o.out + "/val_perplexity.svg");
  if (loss_plot.series_count() > 0) loss_plot.save(o.out + "/train_loss.svg");
  if (print)
    std::printf(
        "\nwrote %s/results.csv, curves.csv, train_loss.csv, val_perplexity.svg, "
        "train_loss.svg and the models under %s/<method>/seed<k>/\n",
        o.out.c_str(), o.out.c_str());
}

// =============================================================================================
// 7. main
// =============================================================================================
int run(int argc, char** argv) {
  try {
    const Stopwatch total;
    Options o = parse_options(argc, argv);
    if (o.threads > 0) set_thread_count(o.threads);
    make_dirs(o.out);
    const Corpus data = load_corpus(o.corpus);
    SPARSENM_CHECK(data.train.size() > std::size_t(o.context) + 1 &&
                       data.val.size() > std::size_t(o.context) + 1,
                   "corpus ", data.source, " is too small for --context ", o.context);
    // Post-training needs the dense model of each seed: train it first when not asked for.
    bool post = false, dense = false;
    for (const std::string& m : o.methods) {
      post = post || is_post(m);
      dense = dense || m == "dense";
    }
    if (post && !dense) o.methods.insert(o.methods.begin(), "dense");
    std::stable_partition(o.methods.begin(), o.methods.end(),
                          [](const std::string& m) { return !is_post(m); });
    {  // the validation windows numpy re-evaluates (tests/examples/llama_numpy.py)
      const Index w = std::min<Index>(4, Index((data.val.size() - 1) / std::size_t(o.context)));
      Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> s(w,
                                                                                     o.context + 1);
      for (Index i = 0; i < w; ++i)
        for (Index j = 0; j <= o.context; ++j) s(i, j) = data.val[std::size_t(i * o.context + j)];
      if (o.export_models && g_rank == 0)
        save_npy(o.out + "/val_sample.npy", Tensor::from_eigen(s));
    }
    if (g_rank == 0)
      std::printf(
          "tiny_llama: corpus %s: %zu train / %zu validation bytes; d_model %ld, %ld layers, %ld "
          "heads, SwiGLU %ld, context %ld, batch %d x %ld tokens; pre-training %s %s, %ld steps; "
          "post-training %s, %ld steps; %d thread(s), SIMD %s\n",
          data.source.c_str(), data.train.size(), data.val.size(), long(o.d_model), long(o.layers),
          long(o.heads), long(o.hidden), long(o.context), o.batch, long(o.context),
          nm_string(o.nm).c_str(), to_string(o.layout), o.steps, nm_string(o.post_nm).c_str(),
          o.post_steps, thread_count(), to_string(compiled_isa()));
    if (g_rank == 0 && g_ranks > 1)
      std::printf("data parallel: %d ranks, %d sequences each per global batch of %d\n", g_ranks,
                  o.batch / std::max(1, g_ranks), o.batch);
    std::vector<Summary> all;
    std::map<std::uint64_t, SafetensorsFile> dense_ckpt;
    for (const std::string& method : o.methods) {
      Summary s{method, {}};
      for (int k = 0; k < o.seeds; ++k)
        s.runs.push_back(run_method(method, o, data, o.seed + std::uint64_t(k), dense_ckpt));
      all.push_back(std::move(s));
      if (g_rank == 0) report(all, o, false);
    }
    if (g_rank == 0) {
      report(all, o, true);
      std::printf("total wall time %.0f s\n", total.seconds());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
#if defined(SPARSENM_EXAMPLE_MPI)
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_ranks);
  const int rc = run(argc, argv);
  if (rc != 0 && g_ranks > 1) MPI_Abort(MPI_COMM_WORLD, rc);
  MPI_Finalize();
  return rc;
#else
  return run(argc, argv);
#endif
}
