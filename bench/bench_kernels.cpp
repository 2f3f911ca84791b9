// Sparse N:M kernels next to their dense baselines, same binary, same shapes, same threads:
//   SpMM  Y = X W^T        vs cblas_sgemm (X: T x K, W: O x K)         and Eigen CSR x dense
//   SpMM^T dX = dY W       vs cblas_sgemm (dY: T x O)
//   SDDMM dW_active        vs cblas_sgemm dY^T X (dense dW)
//   Layer step fwd+dX+dW   vs the three dense sgemms
// Weight shapes (out x in) are the LLaMA-60M/130M/1B projections, T = 2048 tokens, plus skinny
// batches (1, 4, 16 tokens). The sparse timings include packing the activations (a layer has to).
// GFLOP/s counters count useful flops only (2 * T * O * K * n / m for sparse, 2 * T * O * K dense).
// After the runs a table of time ratios (dense / sparse) is printed.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/SparseCore>
#include <sparsenm/kernels.hpp>

#include "bench_util.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace {

using sparsenm_bench::random_matrix;

using sparsenm::Index;
using sparsenm::Layout;
using sparsenm::Matrix;
using sparsenm::NM;

struct Shape {
  Index out, in;
};
const Shape kShapes[] = {{512, 512},   {1280, 512},  {512, 1280},  {768, 768},
                         {2048, 2048}, {4096, 4096}, {11008, 4096}};

struct Weight {
  sparsenm::NMCompressed<float> c;
  sparsenm::TransposedWeight<float> t;
  Matrix<float> dense;  // decompressed (zeros included): what the dense baseline multiplies
};

const Weight& weight(Shape s, NM nm, Layout layout) {
  static std::map<std::string, std::unique_ptr<Weight>> cache;
  const std::string key = std::to_string(s.out) + "x" + std::to_string(s.in) + "/" +
                          std::to_string(nm.n) + ":" + std::to_string(nm.m) +
                          (layout == Layout::RowWise ? "r" : "t");
  auto& slot = cache[key];
  if (!slot) {
    slot = std::make_unique<Weight>();
    const sparsenm::Philox rng(7);
    const sparsenm::Mask mask = layout == Layout::RowWise
                                    ? sparsenm::random_rowwise(s.out, s.in, nm, rng)
                                    : sparsenm::random_transposable(s.out, s.in, nm, rng);
    slot->dense = random_matrix(s.out, s.in, 3);
    slot->c = sparsenm::compress<float>(slot->dense, mask, nm);
    slot->dense = sparsenm::decompress(slot->c);
    slot->t.rebuild(slot->c);
  }
  return *slot;
}

const Matrix<float>& activations(Index rows, Index cols, std::uint64_t seed) {
  static std::map<std::string, std::unique_ptr<Matrix<float>>> cache;
  const std::string key =
      std::to_string(rows) + "x" + std::to_string(cols) + "/" + std::to_string(seed);
  auto& slot = cache[key];
  if (!slot) slot = std::make_unique<Matrix<float>>(random_matrix(rows, cols, seed));
  return *slot;
}

void set_flops(benchmark::State& state, double flops) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * double(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

// --- dense baselines -------------------------------------------------------------------------
enum class Op { Fwd, Dx, Dw, Step };

void dense_op(Op op, const Matrix<float>& x, const Matrix<float>& w, const Matrix<float>& dy,
              Matrix<float>& y, Matrix<float>& dx, Matrix<float>& dw) {
  const int T = int(x.rows()), K = int(w.cols()), O = int(w.rows());
  if (op == Op::Fwd || op == Op::Step)  // Y = X W^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, O, K, 1.f, x.data(), K, w.data(), K,
                0.f, y.data(), O);
  if (op == Op::Dx || op == Op::Step)  // dX = dY W
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, K, O, 1.f, dy.data(), O, w.data(), K,
                0.f, dx.data(), K);
  if (op == Op::Dw || op == Op::Step)  // dW = dY^T X
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, K, T, 1.f, dy.data(), O, x.data(), K,
                0.f, dw.data(), K);
}

void BM_Dense(benchmark::State& state, Shape s, Index tokens, Op op) {
  const Weight& w = weight(s, {2, 4}, Layout::RowWise);
  const Matrix<float>& x = activations(tokens, s.in, 1);
  const Matrix<float>& dy = activations(tokens, s.out, 2);
  Matrix<float> y(tokens, s.out), dx(tokens, s.in),
      dw(op == Op::Dw || op == Op::Step ? s.out : 0, s.in);
  for (auto _ : state) {
    dense_op(op, x, w.dense, dy, y, dx, dw);
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * double(tokens) * double(s.out) * double(s.in) * (op == Op::Step ? 3 : 1));
}

// --- sparse kernels --------------------------------------------------------------------------
void BM_Sparse(benchmark::State& state, Shape s, Index tokens, NM nm, Layout layout, Op op) {
  const Weight& w = weight(s, nm, layout);
  const Matrix<float>& x = activations(tokens, s.in, 1);
  const Matrix<float>& dy = activations(tokens, s.out, 2);
  Matrix<float> y(tokens, s.out), dx(tokens, s.in), dv(s.out, w.c.values.cols());
  sparsenm::PackedTokens<float> xp, dyp;
  sparsenm::TransposedWeight<float> wt = w.t;
  if (op == Op::Dw) xp.pack(x);  // SDDMM alone reuses X packed by the forward pass
  for (auto _ : state) {
    if (op == Op::Fwd || op == Op::Step) {
      xp.pack(x);
      sparsenm::spmm(xp, w.c, y);
    }
    if (op != Op::Fwd) dyp.pack(dy);
    if (op == Op::Dx || op == Op::Step) {
      if (op == Op::Step) wt.update_values(w.c);  // values change every optimizer step
      sparsenm::spmm_transposed(dyp, wt, dx);
    }
    if (op == Op::Dw || op == Op::Step) sparsenm::sddmm(dyp, xp, w.c, dv);
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * double(tokens) * double(s.out) * double(s.in) * nm.n / nm.m *
                       (op == Op::Step ? 3 : 1));
}

void BM_EigenCsr(benchmark::State& state, Shape s, Index tokens, NM nm) {
  // Eigen's best layout here: RowMajor sparse times RowMajor dense, Y^T = W X^T.
  const Weight& w = weight(s, nm, Layout::RowWise);
  const Eigen::SparseMatrix<float, Eigen::RowMajor> sp = w.dense.sparseView();
  const Matrix<float> xt = activations(tokens, s.in, 1).transpose();
  Matrix<float> yt(s.out, tokens);
  for (auto _ : state) {
    yt.noalias() = sp * xt;
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * double(tokens) * double(s.out) * double(s.in) * nm.n / nm.m);
}

// Per optimizer step the layer copies W's new values into W^T's layout (TransposedWeight::
// update_values: for transposable masks a tiled gather). Baseline: the row-wise scatter through
// detail::for_each_transposed_entry, which update_values used before (and still uses for CSR).
void BM_UpdateValues(benchmark::State& state, Shape s, NM nm, bool scatter) {
  const Weight& w = weight(s, nm, Layout::Transposable);
  sparsenm::TransposedWeight<float> t = w.t;
  std::vector<float> out(std::size_t(w.c.values.size()));
  const float* src = w.c.values.data();
  const Index* ptr = t.row_ptr().data();
  for (auto _ : state) {
    if (scatter)
      sparsenm::detail::for_each_transposed_entry(w.c, [&](Index, Index k, Index slot, Index r) {
        out[std::size_t(ptr[k] + r)] = src[slot];
      });
    else
      t.update_values(w.c);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(w.c.values.size()) * 2 *
                          int64_t(sizeof(float)));
}

// --- ratio table -----------------------------------------------------------------------------
using sparsenm_bench::RatioReporter;

std::string shape_name(Shape s) { return std::to_string(s.out) + "x" + std::to_string(s.in); }
std::string nm_name(NM nm) { return std::to_string(nm.n) + ":" + std::to_string(nm.m); }
const char* op_name(Op op) {
  return op == Op::Fwd ? "spmm" : op == Op::Dx ? "spmm_t" : op == Op::Dw ? "sddmm" : "step";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> ratios;  // "label|sparse name|baseline name"
  auto reg = [](const std::string& name, auto fn) {
    benchmark::RegisterBenchmark(name.c_str(), fn)->UseRealTime()->Unit(benchmark::kMillisecond);
  };
  const Index kTokens = 2048;
  for (const Shape s : kShapes) {
    const std::string sh = shape_name(s) + "/T" + std::to_string(kTokens);
    for (const Op op : {Op::Fwd, Op::Dx, Op::Dw, Op::Step}) {
      const std::string dn = std::string("dense_") + op_name(op) + "/" + sh;
      reg(dn, [=](benchmark::State& st) { BM_Dense(st, s, kTokens, op); });
      for (const NM nm : {NM{1, 4}, NM{2, 4}})
        for (const Layout layout : {Layout::RowWise, Layout::Transposable}) {
          if (layout == Layout::Transposable && op != Op::Dx && op != Op::Step) continue;
          const std::string sn = std::string(op_name(op)) + "/" + nm_name(nm) +
                                 (layout == Layout::RowWise ? "r/" : "t/") + sh;
          reg(sn, [=](benchmark::State& st) { BM_Sparse(st, s, kTokens, nm, layout, op); });
          ratios.push_back(sn + "|" + dn);
        }
    }
    for (const NM nm : {NM{1, 4}, NM{2, 4}}) {
      const std::string en = "eigen_csr/" + nm_name(nm) + "/" + sh;
      reg(en, [=](benchmark::State& st) { BM_EigenCsr(st, s, kTokens, nm); });
      ratios.push_back("spmm/" + nm_name(nm) + "r/" + sh + "|" + en);
    }
  }
  for (const Shape s : {Shape{1024, 784}, Shape{4096, 4096}, Shape{11008, 4096}})
    for (const NM nm : {NM{1, 4}, NM{2, 4}}) {
      const std::string sh = nm_name(nm) + "t/" + shape_name(s);
      reg("update_values/" + sh, [=](benchmark::State& st) { BM_UpdateValues(st, s, nm, false); });
      reg("scatter_values/" + sh, [=](benchmark::State& st) { BM_UpdateValues(st, s, nm, true); });
      ratios.push_back("update_values/" + sh + "|scatter_values/" + sh);
    }
  for (const Shape s : {Shape{4096, 4096}, Shape{11008, 4096}})
    for (const Index t : {1, 4, 16}) {
      const std::string sh = shape_name(s) + "/T" + std::to_string(t);
      const std::string dn = "dense_spmm/" + sh;
      reg(dn, [=](benchmark::State& st) { BM_Dense(st, s, t, Op::Fwd); });
      for (const NM nm : {NM{1, 4}, NM{2, 4}}) {
        const std::string sn = "spmm/" + nm_name(nm) + "r/" + sh;
        reg(sn, [=](benchmark::State& st) { BM_Sparse(st, s, t, nm, Layout::RowWise, Op::Fwd); });
        ratios.push_back(sn + "|" + dn);
      }
    }
  benchmark::Initialize(&argc, argv);
  RatioReporter reporter;
  reporter.use_cpu = sparsenm::thread_count() == 1;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\nspeed-up = baseline time / sparse time (threads: OMP %d; %s time)\n",
              sparsenm::thread_count(), reporter.use_cpu ? "thread CPU" : "real");
  std::printf("%-40s %-34s %8s\n", "sparse", "baseline", "speedup");
  for (const std::string& r : ratios) {
    const auto bar = r.find('|');
    const std::string sn = r.substr(0, bar), bn = r.substr(bar + 1);
    if (!reporter.times.count(sn) || !reporter.times.count(bn)) continue;
    std::printf("%-40s %-34s %7.2fx\n", sn.c_str(), bn.c_str(),
                reporter.times[bn] / reporter.times[sn]);
  }
  benchmark::Shutdown();
  return 0;
}
