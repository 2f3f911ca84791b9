// SPDX-License-Identifier: Apache-2.0
// One whole training step, dense vs sparse, in the same binary: the example's MLP
// 784 -> 1024 -> 1024 -> 10 (ReLU, softmax cross-entropy; forward, backward, optimizer, and for the
// sparse models the topology refresh every 100 steps, amortised over the iterations as in a
// training run), at batch 32 / 128 / 512, and a single 4096 x 4096 layer (squared loss, batch 128).
//   dense             DenseLinear (OpenBLAS GEMMs) + Adam on every parameter
//   chts24 n:4        transposable SparseLinear + compressed Adam + CHTs24 refresh (CHTs24 Alg. 1)
//   rowwise-adam n:4  row-wise SparseLinear + compressed Adam + row-wise refresh with MPR
//   chtsnm n:4        row-wise SparseLinear + compressed TANS + refresh with MPR (CHTsNM Sec. 3)
// every model through one SparseTrainer (the dense one registers its matrices as dense
// parameters), so the optimizer code is the same on both sides. The ratio table at the end is
// dense step time / sparse step time; for CHTsNM it also prints its step time against the
// Newton-Schulz time of its two hidden weights + 1.2x the Adam sparse step (the bound).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <sparsenm/sparsenm.hpp>

#include "bench_util.hpp"

namespace {

using sparsenm_bench::random_matrix;
using namespace sparsenm;

enum class Kind { Dense, Chts24, RowAdam, Chtsnm };

const char* kind_name(Kind k) {
  return k == Kind::Dense     ? "dense"
         : k == Kind::Chts24  ? "chts24"
         : k == Kind::RowAdam ? "rowwise-adam"
                              : "chtsnm";
}

SparseTrainerConfig trainer_config(Kind kind, NM nm) {
  SparseTrainerConfig c;
  c.weights = kind == Kind::Chtsnm ? WeightOptimizer::Tans : WeightOptimizer::Adam;
  c.refresh = kind != Kind::Dense;
  c.topology.nm = nm;
  c.topology.layout = kind == Kind::Chts24 ? Layout::Transposable : Layout::RowWise;
  c.topology.mpr_rho = kind == Kind::Chts24 ? 0.0 : (nm.n == 1 ? 0.5 : 0.75);
  c.topology.interval = 100;
  c.topology.total_steps = 1L << 40;  // the refresh window stays open for the whole benchmark
  c.seed = 7;
  return c;
}

/// A stack of linear layers (hidden ones dense or sparse, the last one dense) with ReLU between.
struct Net {
  Kind kind;
  std::vector<std::unique_ptr<DenseLinear<float>>> dense;    // dense hidden layers
  std::vector<std::unique_ptr<SparseLinear<float>>> sparse;  // sparse hidden layers
  std::unique_ptr<DenseLinear<float>> head;
  std::vector<Relu<float>> relu;
  SparseTrainer<float> trainer;

  Net(Kind k, NM nm, const std::vector<Index>& widths, bool with_head)
      : kind(k), trainer(trainer_config(k, nm)) {
    const Philox rng(3);
    const Index hidden = Index(widths.size()) - (with_head ? 2 : 1);
    for (Index i = 0; i < hidden; ++i) {
      if (k == Kind::Dense) {
        dense.push_back(
            std::make_unique<DenseLinear<float>>(widths[i], widths[i + 1], rng.split(i)));
        trainer.add(dense.back()->weight(), dense.back()->grad_weight());
        trainer.add(dense.back()->bias(), dense.back()->grad_bias());
      } else {
        const Layout layout = k == Kind::Chts24 ? Layout::Transposable : Layout::RowWise;
        sparse.push_back(std::make_unique<SparseLinear<float>>(widths[i], widths[i + 1], nm, layout,
                                                               rng.split(i), true));
        trainer.add(*sparse.back());
      }
    }
    relu.resize(std::size_t(hidden));
    if (with_head) {
      head =
          std::make_unique<DenseLinear<float>>(widths[hidden], widths[hidden + 1], rng.split(99));
      trainer.add(head->weight(), head->grad_weight());
      trainer.add(head->bias(), head->grad_bias());
    }
  }

  Index hidden() const { return Index(relu.size()); }

  Matrix<float> forward(const Matrix<float>& x) {
    Matrix<float> a = x;
    for (Index i = 0; i < hidden(); ++i) {
      Matrix<float> y = kind == Kind::Dense ? dense[i]->forward(a) : sparse[i]->forward(a);
      if (head) relu[i].forward(y);
      a = std::move(y);
    }
    return head ? head->forward(a) : a;
  }

  void backward(const Matrix<float>& grad_out) {
    Matrix<float> g = head ? head->backward(grad_out) : grad_out;
    for (Index i = hidden() - 1; i >= 0; --i) {
      if (head) relu[i].backward(g);
      g = kind == Kind::Dense ? dense[i]->backward(g) : sparse[i]->backward(g);
    }
  }
};

std::string nm_name(NM nm) { return std::to_string(nm.n) + ":" + std::to_string(nm.m); }

std::string bench_name(const char* model, Kind kind, NM nm, Index batch) {
  return std::string(model) + "/" + kind_name(kind) +
         (kind == Kind::Dense ? "" : " " + nm_name(nm)) + "/batch:" + std::to_string(batch);
}

// The example's MLP: one step = forward, softmax cross-entropy, backward, trainer.step (every
// optimizer, refresh when due). Labels and inputs are fixed; the step counter runs on, so a
// refresh falls on every 100th iteration as in training.
void BM_MlpStep(benchmark::State& state, Kind kind, NM nm, Index batch) {
  Net net(kind, nm, {784, 1024, 1024, 10}, true);
  const Matrix<float> x = (random_matrix(batch, 784, 11).array() * 0.5f + 0.5f).matrix();
  std::vector<int> labels(static_cast<std::size_t>(batch));
  for (Index i = 0; i < batch; ++i) labels[std::size_t(i)] = int((i * 7) % 10);
  Matrix<float> grad;
  long step = 0;
  for (auto _ : state) {
    const Matrix<float> logits = net.forward(x);
    softmax_cross_entropy(logits, labels, &grad);
    net.backward(grad);
    net.trainer.step(++step);
  }
  state.counters["samples/s"] =
      benchmark::Counter(double(batch) * double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["state_MB"] = double(net.trainer.state_bytes()) / 1e6;
}

// One 4096 x 4096 layer (bias), squared loss against zero: dY = Y / batch.
void BM_LayerStep(benchmark::State& state, Kind kind, NM nm, Index batch) {
  Net net(kind, nm, {4096, 4096}, false);
  const Matrix<float> x = random_matrix(batch, 4096, 12);
  long step = 0;
  for (auto _ : state) {
    const Matrix<float> y = net.forward(x);
    net.backward(y / float(batch));
    net.trainer.step(++step);
  }
  state.counters["state_MB"] = double(net.trainer.state_bytes()) / 1e6;
}

// Newton-Schulz of a dense (out, in) matrix (TANS's per-step orthogonalisation, Table A4).
void BM_NewtonSchulz(benchmark::State& state, Index out, Index in) {
  const Matrix<float> g = random_matrix(out, in, 13);
  NsWorkspace<float> ws;  // reused, as inside Tans
  const float scale = 1.0f / g.norm();
  for (auto _ : state)
    benchmark::DoNotOptimize(
        detail::newton_schulz_run(g.data(), out, in, scale, 5, NsCoefficients::TansTableA4, ws)
            .data());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, std::string>> ratios;  // sparse, dense
  std::vector<std::string> chtsnm;
  auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseRealTime()->Unit(benchmark::kMillisecond);
  };
  for (const Index batch : {32, 128, 512}) {
    const std::string dn = bench_name("mlp", Kind::Dense, {}, batch);
    reg(dn, [=](benchmark::State& s) { BM_MlpStep(s, Kind::Dense, {}, batch); });
    for (const NM nm : {NM{1, 4}, NM{2, 4}})
      for (const Kind k : {Kind::Chts24, Kind::RowAdam, Kind::Chtsnm}) {
        const std::string sn = bench_name("mlp", k, nm, batch);
        reg(sn, [=](benchmark::State& s) { BM_MlpStep(s, k, nm, batch); });
        ratios.emplace_back(sn, dn);
        if (k == Kind::Chtsnm) chtsnm.push_back(sn);
      }
  }
  {
    const std::string dn = bench_name("layer4096", Kind::Dense, {}, 128);
    reg(dn, [=](benchmark::State& s) { BM_LayerStep(s, Kind::Dense, {}, 128); });
    for (const NM nm : {NM{1, 4}, NM{2, 4}})
      for (const Kind k : {Kind::Chts24, Kind::RowAdam}) {
        const std::string sn = bench_name("layer4096", k, nm, 128);
        reg(sn, [=](benchmark::State& s) { BM_LayerStep(s, k, nm, 128); });
        ratios.emplace_back(sn, dn);
      }
  }
  reg("newton_schulz/1024x784", [](benchmark::State& s) { BM_NewtonSchulz(s, 1024, 784); });
  reg("newton_schulz/1024x1024", [](benchmark::State& s) { BM_NewtonSchulz(s, 1024, 1024); });

  benchmark::Initialize(&argc, argv);
  sparsenm_bench::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  auto& t = reporter.times;
  std::printf("\nspeed-up = dense step time / sparse step time (OMP %d, real time, SIMD %s)\n",
              thread_count(), to_string(compiled_isa()));
  for (const auto& r : ratios)
    if (t.count(r.first) && t.count(r.second))
      std::printf("%-40s %7.2fx\n", r.first.c_str(), t[r.second] / t[r.first]);
  const std::string ns1 = "newton_schulz/1024x784", ns2 = "newton_schulz/1024x1024";
  if (t.count(ns1) && t.count(ns2)) {
    std::printf("\nCHTsNM step vs bound = NS(1024x784) + NS(1024x1024) + 1.2 x Adam sparse step\n");
    for (const std::string& c : chtsnm) {
      std::string adam = c;
      adam.replace(adam.find("chtsnm"), 6, "rowwise-adam");
      if (!t.count(c) || !t.count(adam)) continue;
      const double bound = t[ns1] + t[ns2] + 1.2 * t[adam];
      std::printf("%-40s %7.2f ms  bound %7.2f ms  (%.2f of the bound)\n", c.c_str(), 1e3 * t[c],
                  1e3 * bound, t[c] / bound);
    }
  }
  benchmark::Shutdown();
  return 0;
}
