// SPDX-License-Identifier: Apache-2.0
// Sparse-to-sparse training: slot maps against brute force on dense matrices; the compressed
// refresh against the dense refresh (same seed); the compressed optimizer routes against the
// masked dense routes (Adam bit for bit, TANS / Muon within a stated bound); state remapping
// (regrown entries start from zero, kept entries keep their exact state); SparseTrainer
// checkpoints (round trip, bit-identical resume, bad and truncated files rejected, interrupted
// saves), 1 vs 2 threads, and the memory target (1:4 state <= 40 % of the dense layer's).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>

#include <sparsenm/nn.hpp>
#include <sparsenm/train/dense_linear.hpp>

#include "common/tiny_model.hpp"

namespace {

using namespace sparsenm;

using sparsenm_test::random_matrix;

template <class S>
NMCompressed<S> random_compressed(Index rows, Index cols, NM nm, Layout layout,
                                  std::uint64_t seed) {
  const Mask mask = random_mask(rows, cols, nm, layout, Philox(seed));
  return compress<S>(random_matrix<S>(rows, cols, seed + 1), mask, nm);
}

// ---- slot maps -------------------------------------------------------------------------------

TEST(SlotMap, MoveToMaskMatchesDenseBruteForce) {
  for (const NM nm : {NM{1, 4}, NM{2, 4}, NM{2, 8}, NM{3, 8}}) {
    const auto old = random_compressed<float>(12, 32, nm, Layout::RowWise, 3);
    const Matrix<float> dense_old = decompress(old);
    const Mask new_mask = random_mask(12, 32, nm, Layout::RowWise, Philox(9));
    auto moved = old;
    const SlotMap map = move_to_mask(moved, new_mask);
    // Brute force on dense matrices: kept entries keep their value, the others are 0.
    const Mask old_mask = mask_of(old);
    Matrix<float> expect = Matrix<float>::Zero(12, 32);
    Index kept = 0;
    for (Index i = 0; i < 12; ++i)
      for (Index j = 0; j < 32; ++j)
        if (new_mask(i, j) && old_mask(i, j)) {
          expect(i, j) = dense_old(i, j);
          ++kept;
        }
    EXPECT_TRUE(decompress(moved) == expect) << nm;
    EXPECT_TRUE(mask_of(moved) == new_mask);
    EXPECT_EQ(map.kept(), kept);
    EXPECT_EQ(map.fresh(), new_mask.cast<Index>().sum() - kept);
    // remap_slots carries any per-slot state the same way (here: the old values themselves).
    Matrix<float> state = old.values;
    remap_slots<float>(state, map);
    EXPECT_TRUE(state == moved.values);
  }
}

TEST(SlotMap, FreshEntriesRestartAndBadMapsThrow) {
  const NM nm{2, 4};
  const auto old = random_compressed<double>(4, 16, nm, Layout::RowWise, 5);
  const Mask same = mask_of(old);
  Mask fresh = Mask::Zero(4, 16);
  for (Index j = 0; j < 16; ++j)
    if (same(1, j)) fresh(1, j) = 1;  // row 1 "revived": active before and after, restarts
  auto moved = old;
  const SlotMap map = move_to_mask(moved, same, &fresh);
  EXPECT_EQ(map.fresh(), 8);
  EXPECT_TRUE(moved.values.row(1).isZero());
  EXPECT_TRUE(moved.values.row(0) == old.values.row(0));
  // Illegal masks and mismatched state are rejected.
  Mask bad = same;
  bad(0, 0) = 1, bad(0, 1) = 1, bad(0, 2) = 1;
  EXPECT_THROW(slot_map(old, bad), Error);
  Matrix<double> wrong(3, 8);
  EXPECT_THROW(remap_slots<double>(wrong, map), Error);
}

// ---- compressed refresh ----------------------------------------------------------------------

class CompressedRefresh : public ::testing::TestWithParam<Layout> {};

TEST_P(CompressedRefresh, EqualsDenseRefreshAndMapsSlots) {
  const Layout layout = GetParam();
  for (const NM nm : {NM{1, 4}, NM{2, 4}}) {
    RefreshConfig cfg;
    cfg.layout = layout;
    cfg.nm = nm;
    cfg.zeta = 0.3;
    cfg.mpr_rho = layout == Layout::RowWise ? 0.5 : 0.0;
    cfg.interval = 1;
    cfg.total_steps = 100;
    auto comp = random_compressed<float>(64, 96, nm, layout, 11);
    Matrix<float> dense = decompress(comp);
    Mask mask = mask_of(comp);
    const auto before = comp;
    TopologyRefresher<float> a(cfg, 77), b(cfg, 77);
    for (long step = 1; step <= 3; ++step) {
      const auto prev = comp;
      const RefreshResult rd = a.refresh(dense, mask, step);
      const RefreshResult rc = b.refresh(comp, step);
      ASSERT_TRUE(mask_of(comp) == mask) << "step " << step;
      ASSERT_TRUE(decompress(comp) == dense) << "step " << step;  // bit for bit
      EXPECT_TRUE(rc.changed == rd.changed);
      EXPECT_EQ(rc.stats.regrown, rd.stats.regrown);
      // Every new slot: kept -> the value of its source slot; fresh -> 0 (regrown or revived).
      ASSERT_EQ(rc.slots.rows(), 64);
      EXPECT_EQ(rc.slots.fresh(), rd.stats.regrown);
      for (Index i = 0; i < 64; ++i)
        for (Index j = 0; j < comp.values.cols(); ++j) {
          const int src = rc.slots.source(i, j);
          if (src < 0) {
            EXPECT_EQ(comp.values(i, j), 0.0f);
          } else {
            const Index g = j / nm.n;
            EXPECT_EQ(comp.indices(i, j), prev.indices(i, g * nm.n + src));
            EXPECT_EQ(comp.values(i, j), prev.values(i, g * nm.n + src));
          }
        }
    }
    EXPECT_FALSE(mask_of(comp) == mask_of(before));
    EXPECT_TRUE(is_legal(mask_of(comp), nm, layout));
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, CompressedRefresh,
                         ::testing::Values(Layout::RowWise, Layout::Transposable));

TEST(CompressedRefresh, RejectsMismatchedConfig) {
  RefreshConfig cfg;
  cfg.layout = Layout::RowWise;
  cfg.nm = {2, 4};
  TopologyRefresher<float> r(cfg, 1);
  auto w = random_compressed<float>(8, 16, NM{1, 4}, Layout::RowWise, 2);
  EXPECT_THROW(r.refresh(w, 1), Error);
  SparseLinear<float> layer(16, 8, {2, 4}, Layout::Transposable, Philox(3));
  EXPECT_THROW(layer.refresh(r, 1), Error);  // layout differs
}

// ---- compressed optimizer routes -------------------------------------------------------------

TEST(CompressedOptimizers, AdamIsBitIdenticalToTheMaskedDenseStep) {
  const NM nm{1, 4};
  auto comp = random_compressed<float>(40, 64, nm, Layout::RowWise, 21);
  Matrix<float> dense = decompress(comp);
  const Mask mask = mask_of(comp);
  AdamConfig cfg;
  cfg.lr = 1e-2;
  cfg.weight_decay = 0.01;
  Adam<float> ad(40, 64, cfg), ac(comp, cfg);
  for (int t = 0; t < 5; ++t) {
    const Matrix<float> g = random_matrix<float>(40, 64, 100 + t);
    ad.step(dense, g, mask);
    Matrix<float> gv(comp.values.rows(), comp.values.cols());
    gather_slots(comp, g.data(), gv.data());
    ac.step(comp, gv);
  }
  EXPECT_TRUE(decompress(comp) == dense);
  Matrix<float> m(comp.values.rows(), comp.values.cols());
  gather_slots(comp, ad.exp_avg().data(), m.data());
  EXPECT_TRUE(m == ac.exp_avg());
}

// TANS and Muon: the compressed route sums the norms in another order, so the Newton-Schulz
// input scale differs by a few ulp; in double the weights agree to 1e-12 relative.
TEST(CompressedOptimizers, TansMatchesTheMaskedDenseStep) {
  for (const RmsMatch rms : {RmsMatch::PostMaskActive, RmsMatch::PreMaskGlobal, RmsMatch::None})
    for (const Layout layout : {Layout::RowWise, Layout::Transposable}) {
      const NM nm{2, 4};
      auto comp = random_compressed<double>(32, 48, nm, layout, 31);
      Matrix<double> dense = decompress(comp);
      const Mask mask = mask_of(comp);
      TansConfig cfg;
      cfg.lr = 1e-2;
      cfg.weight_decay = 0.1;
      cfg.ramp_steps = 2;
      cfg.rms = rms;
      Tans<double> td(32, 48, cfg), tc(comp, cfg);
      for (int t = 0; t < 6; ++t) {
        const Matrix<double> g = random_matrix<double>(32, 48, 200 + t);
        td.step(dense, g, mask);
        Matrix<double> gv(comp.values.rows(), comp.values.cols());
        gather_slots(comp, g.data(), gv.data());
        tc.step(comp, gv);
      }
      const Matrix<double> got = decompress(comp);
      EXPECT_LT((got - dense).norm() / dense.norm(), 1e-12);
      EXPECT_TRUE(mask_of(comp) == mask);
      EXPECT_NEAR(tc.last_rms_scale(), td.last_rms_scale(), 1e-10 * td.last_rms_scale());
    }
}

TEST(CompressedOptimizers, MuonMatchesTheMaskedDenseStep) {
  const NM nm{1, 4};
  auto comp = random_compressed<double>(24, 64, nm, Layout::RowWise, 41);
  Matrix<double> dense = decompress(comp);
  const Mask mask = mask_of(comp);
  MuonConfig cfg;
  cfg.weight_decay = 0.1;
  Muon<double> md(24, 64, cfg), mc(comp, cfg);
  for (int t = 0; t < 4; ++t) {
    const Matrix<double> g = random_matrix<double>(24, 64, 300 + t);
    md.step(dense, g, mask);
    Matrix<double> gv(comp.values.rows(), comp.values.cols());
    gather_slots(comp, g.data(), gv.data());
    mc.step(comp, gv);
  }
  EXPECT_LT((decompress(comp) - dense).norm() / dense.norm(), 1e-12);
}

TEST(CompressedOptimizers, StateFollowsEachWeightAcrossARefresh) {
  SparseLinear<float> layer(64, 32, {1, 4}, Layout::Transposable, Philox(5));
  Adam<float> adam(layer.weight());
  TansConfig tcfg;
  Tans<float> tans(layer.weight(), tcfg);
  const Matrix<float> x = random_matrix<float>(16, 64, 6);
  for (int t = 0; t < 3; ++t) {
    layer.forward(x);
    layer.backward(random_matrix<float>(16, 32, 7 + t));
    auto w = layer.weight();
    adam.step(w, layer.grad_values());  // on a copy: only the optimizer state matters here
    tans.step(w, layer.grad_values());
  }
  const Matrix<float> m0 = adam.exp_avg(), v0 = adam.exp_avg_sq(), p0 = tans.momentum();
  RefreshConfig rc;
  rc.layout = Layout::Transposable;
  rc.nm = {1, 4};
  rc.zeta = 0.5;
  TopologyRefresher<float> topo(rc, 8);
  const RefreshResult r = layer.refresh(topo, 100);
  ASSERT_GT(r.slots.fresh(), 0);
  adam.remap(r.slots);
  tans.remap(r.slots);
  EXPECT_EQ(tans.steps_since_refresh(), 0);
  for (Index i = 0; i < r.slots.rows(); ++i)
    for (Index j = 0; j < r.slots.cols(); ++j) {
      const int src = r.slots.source(i, j);
      if (src < 0) {  // regrown: zero moments
        EXPECT_EQ(adam.exp_avg()(i, j), 0.0f);
        EXPECT_EQ(adam.exp_avg_sq()(i, j), 0.0f);
        EXPECT_EQ(tans.momentum()(i, j), 0.0f);
      } else {  // kept: the exact state of its source slot (1:4: one slot per group, j itself)
        ASSERT_EQ(src, 0);
        EXPECT_EQ(adam.exp_avg()(i, j), m0(i, j));
        EXPECT_EQ(adam.exp_avg_sq()(i, j), v0(i, j));
        EXPECT_EQ(tans.momentum()(i, j), p0(i, j));
      }
    }
  // A dense-route call on a compressed optimizer (and the reverse) is a clear error.
  EXPECT_THROW(tans.on_refresh(Mask::Zero(32, 64)), Error);
  Tans<float> dense_tans(32, 64);
  auto w = layer.weight();
  EXPECT_THROW(dense_tans.step(w, layer.grad_values()), Error);
  EXPECT_THROW(dense_tans.remap(r.slots), Error);
}

// ---- SparseTrainer ---------------------------------------------------------------------------

// TinyModel (common/tiny_model.hpp): sparse hidden (bias) -> relu -> dense head.
using sparsenm_test::TinyModel;

class TrainerResume : public ::testing::TestWithParam<std::tuple<WeightOptimizer, Layout>> {};

TEST_P(TrainerResume, ResumeIsBitIdenticalToAnUninterruptedRun) {
  const auto [opt, layout] = GetParam();
  TinyModel full(opt, layout, 3), first(opt, layout, 3);
  full.train(1, 20);
  first.train(1, 8);  // a refresh at 3 and 6; the next one (9) happens after the resume
  const std::string path = sparsenm_test::scratch_file("resume");
  first.trainer.save(path);
  TinyModel resumed(opt, layout, 99);  // other initial weights: all replaced by load()
  resumed.trainer.load(path);
  EXPECT_EQ(resumed.trainer.last_step(), 8);
  EXPECT_EQ(resumed.trainer.refresher(0)->refreshes(), 2);
  resumed.train(9, 20);
  EXPECT_TRUE(resumed.same_as(full));
  EXPECT_GE(full.trainer.refresher(0)->refreshes(), 6);
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    All, TrainerResume,
    ::testing::Combine(::testing::Values(WeightOptimizer::Adam, WeightOptimizer::Tans,
                                         WeightOptimizer::Muon),
                       ::testing::Values(Layout::RowWise, Layout::Transposable)));

TEST(Trainer, BadCheckpointsAreRejectedAndLoadNothing) {
  TinyModel a(WeightOptimizer::Adam, Layout::Transposable, 3);
  a.train(1, 4);
  const SafetensorsFile good = a.trainer.checkpoint();
  TinyModel b(WeightOptimizer::Adam, Layout::Transposable, 5);
  b.train(1, 2);
  const TinyModel& reference = b;
  const auto values = b.hidden.weight().values;
  const auto head = b.head.weight();
  auto expect_rejected = [&](const SafetensorsFile& f, const char* what) {
    EXPECT_THROW(b.trainer.restore(f), Error) << what;
    EXPECT_TRUE(b.hidden.weight().values == values) << what;  // nothing loaded
    EXPECT_TRUE(b.head.weight() == head) << what;
    EXPECT_EQ(b.trainer.last_step(), 2) << what;
  };
  // A missing tensor (each one in turn).
  for (std::size_t skip = 0; skip < good.tensors().size(); ++skip) {
    SafetensorsFile f;
    f.metadata = good.metadata;
    for (std::size_t i = 0; i < good.tensors().size(); ++i)
      if (i != skip) f.add(good.tensors()[i].first, good.tensors()[i].second);
    expect_rejected(f, good.tensors()[skip].first.c_str());
  }
  // An extra tensor (a checkpoint of a larger model).
  {
    SafetensorsFile f = good;
    f.add("dense.9.value", Matrix<float>::Zero(2, 2));
    expect_rejected(f, "extra tensor");
  }
  // Illegal indices (not transposable, or out of range).
  {
    SafetensorsFile f;
    f.metadata = good.metadata;
    for (const auto& [name, t] : good.tensors()) {
      Tensor c = t;
      if (name == "sparse.0.indices") c.bytes[0] = std::uint8_t(c.bytes[0] == 0 ? 1 : 0);
      f.add(name, c);
    }
    expect_rejected(f, "indices");
  }
  // Counters past half their type's range (they keep counting after a resume; fuzzing found a
  // restored TANS tau of INT_MAX overflowing at the next step) or negative.
  {
    TinyModel t(WeightOptimizer::Tans, Layout::RowWise, 3);
    t.train(1, 2);
    const SafetensorsFile tg = t.trainer.checkpoint();
    const auto with_counter = [&](const std::string& key, std::int64_t v) {
      SafetensorsFile f;
      f.metadata = tg.metadata;
      for (const auto& [name, tensor] : tg.tensors()) {
        Tensor c = tensor;
        if (name == key) std::memcpy(c.bytes.data(), &v, sizeof v);
        f.add(name, c);
      }
      return f;
    };
    const std::int64_t int_half = std::numeric_limits<int>::max() / 2;
    const std::int64_t long_half = std::numeric_limits<long>::max() / 2;
    for (const std::int64_t bad :
         {std::int64_t(std::numeric_limits<int>::max()), int_half + 1, std::int64_t(-1)})
      EXPECT_THROW(t.trainer.restore(with_counter("sparse.0.opt.tau", bad)), Error) << bad;
    EXPECT_THROW(t.trainer.restore(with_counter("sparse.0.opt.steps", long_half + 1)), Error);
    EXPECT_THROW(t.trainer.restore(with_counter("trainer.step", -5)), Error);
    EXPECT_EQ(t.trainer.last_step(), 2);
    t.trainer.restore(with_counter("sparse.0.opt.tau", int_half));  // the limit itself is legal
    t.train(3, 3);  // and counts on without overflow
  }
  // Wrong optimizer, wrong shape, wrong n:m / layout.
  {
    TinyModel t(WeightOptimizer::Tans, Layout::Transposable, 3);
    EXPECT_THROW(t.trainer.restore(good), Error);
    TinyModel r(WeightOptimizer::Adam, Layout::RowWise, 3);
    EXPECT_THROW(r.trainer.restore(good), Error);
    SparseLinear<float> other(64, 24, {1, 4}, Layout::Transposable, Philox(1), true);
    SparseTrainer<float> tr(TinyModel::config(WeightOptimizer::Adam, Layout::Transposable));
    tr.add(other);
    EXPECT_THROW(tr.restore(good), Error);
  }
  // The good one loads.
  b.trainer.restore(good);
  EXPECT_TRUE(b.same_as(a));
  (void)reference;
}

TEST(Trainer, TruncatedCheckpointsAreRejectedAndInterruptedSavesKeepTheOldFile) {
  TinyModel a(WeightOptimizer::Tans, Layout::RowWise, 3);
  a.train(1, 4);
  const std::string bytes = safetensors_bytes(a.trainer.checkpoint());
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  std::uint64_t header = 0;
  std::memcpy(&header, data, 8);
  // Every offset through the header, every tensor boundary, and every 3rd byte of the data.
  std::vector<std::size_t> cuts;
  for (std::size_t k = 0; k < 8 + header + 16 && k < bytes.size(); ++k) cuts.push_back(k);
  for (std::size_t k = 8 + header; k < bytes.size(); k += 3) cuts.push_back(k);
  const SafetensorsFile whole = parse_safetensors(data, bytes.size());
  std::size_t offset = 8 + header;
  for (const auto& [name, t] : whole.tensors()) {
    offset += t.bytes.size();
    if (offset < bytes.size()) cuts.push_back(offset);
  }
  for (const std::size_t cut : cuts) EXPECT_THROW(parse_safetensors(data, cut), Error) << cut;

  // An interrupted save: the previous checkpoint stays loadable.
  const std::string path = sparsenm_test::scratch_file("interrupted");
  a.trainer.save(path);
  {
    std::ofstream partial(path + ".tmp", std::ios::binary);  // a writer killed mid-file
    partial.write(bytes.data(), std::streamsize(bytes.size() / 2));
  }
  TinyModel b(WeightOptimizer::Tans, Layout::RowWise, 8);
  b.trainer.load(path);
  EXPECT_TRUE(b.same_as(a));
  a.train(5, 6);
  a.trainer.save(path);  // a later save replaces it whole
  b.trainer.load(path);
  EXPECT_TRUE(b.same_as(a));
  std::remove(path.c_str());
  std::remove((path + ".tmp").c_str());
}

TEST(Trainer, OneAndTwoThreadsAreBitIdentical) {
  const int saved = thread_count();
  auto run = [](int threads) {
    set_thread_count(threads);
    auto m = std::make_unique<TinyModel>(WeightOptimizer::Tans, Layout::RowWise, 4);
    m->train(1, 12);
    return m;
  };
  const auto one = run(1), two = run(2);
  set_thread_count(saved);
  EXPECT_TRUE(one->same_as(*two));
}

// Persistent training state of a 1:4 layer (values, indices, transposed structure, gradient, Adam
// moments) against the dense layer's W, dW, m, v: 16 bytes per entry. Closed form per active
// entry: 4 (value) + 1 (index) + 4 (gradient) + 8 (moments) + the transposed copy (4 + 1 for a
// transposable mask, 4 + 4 CSR columns for a row-wise one), plus the row pointers.
TEST(Trainer, OneToFourStateIsAtMostFortyPercentOfDense) {
  for (const Layout layout : {Layout::Transposable, Layout::RowWise}) {
    const Index in = 1024, out = 1024;
    SparseLinear<float> layer(in, out, {1, 4}, layout, Philox(1));
    Adam<float> adam(layer.weight());
    const double active = double(in * out) / 4;
    const double per_active = 4 + 1 + 4 + 8 + (layout == Layout::Transposable ? 5 : 8);
    const double expect = active * per_active + double(in + 1) * sizeof(Index);
    const double got = double(layer.state_bytes() + adam.state_bytes());
    EXPECT_EQ(got, expect) << to_string(layout);
    const double dense = 16.0 * double(in * out);
    EXPECT_LE(got / dense, 0.40) << to_string(layout) << ": " << got / dense;
  }
}

}  // namespace
