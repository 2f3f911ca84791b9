// CH2-L3n / CH3-L3n scores: a worked example of docs/algorithms.md, a scalar implementation written
// from the path definition (CHTs24 App. B), the float-GEMM formulation (Alg. 1 stage 1), the
// scalar reference kernels (bit-identical), thread-count determinism and bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <vector>

#include <sparsenm/core/parallel.hpp>
#include <sparsenm/core/philox.hpp>
#include <sparsenm/mask/project.hpp>
#include <sparsenm/topology/ch_scores.hpp>

using namespace sparsenm;

namespace {

/// A random 0/1 mask of the given density (any structure).
Mask random_mask(Index rows, Index cols, double density, std::uint64_t seed) {
  const Philox rng(seed, 7);
  Mask m(rows, cols);
  for (Index k = 0; k < m.size(); ++k)
    m.data()[k] = rng.uniform(static_cast<std::uint64_t>(k)) < density ? 1 : 0;
  return m;
}

/// A random row-wise N:M mask: in each group the n entries with the smallest random keys.
Mask random_nm(Index rows, Index cols, NM nm, std::uint64_t seed) {
  const Philox rng(seed, 11);
  Mask m = Mask::Zero(rows, cols);
  for (Index r = 0; r < rows; ++r)
    for (Index g = 0; g < cols / nm.m; ++g) {
      std::vector<std::pair<double, int>> keys;
      for (int q = 0; q < nm.m; ++q)
        keys.push_back({rng.uniform(static_cast<std::uint64_t>(r * cols + g * nm.m + q)), q});
      std::sort(keys.begin(), keys.end());
      for (int t = 0; t < nm.n; ++t) m(r, g * nm.m + keys[t].second) = 1;
    }
  return m;
}

/// Scores written from the path definition (CHTs24 App. B, Eq. (1)): for an absent link (i, c)
/// between output i and input c, enumerate the L3 paths i - b - j - c; the local community is
/// the set of their intermediate nodes; each intermediate node z adds (1 + di_z) / (1 + de_z)
/// (CH2) or 1 / (1 + de_z) (CH3), where di_z counts z's links to community nodes (the internal
/// local-community links) and de_z its remaining links other than the one to the seed (external
/// links). The "+1" is the default increment of both terms.
Matrix<double> path_scores(const Mask& m, ChRule rule) {
  const Index R = m.rows(), C = m.cols();
  Matrix<double> s = Matrix<double>::Zero(R, C);
  for (Index i = 0; i < R; ++i)
    for (Index c = 0; c < C; ++c) {
      if (m(i, c)) continue;
      std::set<Index> out_nodes, in_nodes;  // intermediates: j (outputs) and b (inputs)
      for (Index b = 0; b < C; ++b) {
        if (!m(i, b)) continue;
        for (Index j = 0; j < R; ++j)
          if (j != i && m(j, b) && m(j, c)) {  // the L3 path i - b - j - c
            in_nodes.insert(b);
            out_nodes.insert(j);
          }
      }
      double score = 0;
      for (Index j : out_nodes) {
        int deg = 0, internal = 0;
        for (Index b = 0; b < C; ++b)
          if (m(j, b)) {
            ++deg;
            internal += in_nodes.count(b) ? 1 : 0;
          }
        const int external = deg - internal - 1;  // minus the link to the seed c
        score +=
            rule == ChRule::Ch2L3n ? (1.0 + internal) / (1.0 + external) : 1.0 / (1.0 + external);
      }
      for (Index b : in_nodes) {
        int deg = 0, internal = 0;
        for (Index j = 0; j < R; ++j)
          if (m(j, b)) {
            ++deg;
            internal += out_nodes.count(j) ? 1 : 0;
          }
        const int external = deg - internal - 1;  // minus the link to the seed i
        score +=
            rule == ChRule::Ch2L3n ? (1.0 + internal) / (1.0 + external) : 1.0 / (1.0 + external);
      }
      s(i, c) = score;
    }
  return s;
}

/// `m` with each active entry cleared with probability `fraction` (a mask after removal: its
/// groups may hold fewer than n ones).
Mask after_removal(Mask m, double fraction, std::uint64_t seed) {
  const Philox rng(seed, 13);
  for (Index k = 0; k < m.size(); ++k)
    if (m.data()[k] && rng.uniform(static_cast<std::uint64_t>(k)) < fraction) m.data()[k] = 0;
  return m;
}

/// The N:M masks the refresher scores: row-wise and transposable 1:4 and 2:4, as drawn and after
/// a removal of 30 % of their links.
std::vector<Mask> nm_masks(Index rows, Index cols, std::uint64_t seed) {
  std::vector<Mask> out;
  for (NM nm : {NM{1, 4}, NM{2, 4}})
    for (Layout layout : {Layout::RowWise, Layout::Transposable}) {
      const Mask m = sparsenm::random_mask(rows, cols, nm, layout, Philox(seed++));
      out.push_back(m);
      out.push_back(after_removal(m, 0.3, seed++));
    }
  return out;
}

/// ch_l3n_scores with the Groups2of4 tables allowed from `min_columns_2of4` columns on (0: on any
/// mask whose groups hold at most two ones, to cover them on small masks).
template <class S>
Matrix<S> scores_with(const Mask& m, ChRule rule, Index min_columns_2of4) {
  Matrix<S> out;
  detail::ChWorkspace<S> ws;
  ws.min_columns_2of4 = min_columns_2of4;
  ch_l3n_scores_into(m, rule, out, ws);
  return out;
}

template <class A, class B>
double max_rel_diff(const A& a, const B& b) {
  double worst = 0;
  for (Index i = 0; i < a.rows(); ++i)
    for (Index j = 0; j < a.cols(); ++j) {
      const double x = static_cast<double>(a(i, j)), y = static_cast<double>(b(i, j));
      worst =
          std::max(worst, std::abs(x - y) / std::max(1e-30, std::max(std::abs(x), std::abs(y))));
    }
  return worst;
}

}  // namespace

TEST(ChScores, WorkedExample) {
  Mask m(5, 6);
  m << 1, 1, 0, 1, 0, 0,  //
      0, 1, 1, 0, 1, 0,   //
      1, 0, 1, 1, 0, 1,   //
      0, 1, 0, 1, 1, 1,   //
      1, 0, 0, 0, 1, 0;
  Matrix<double> expected(5, 6);
  expected << 0, 0, 5.5, 0, 9.5, 8.0,                                    //
      7.666666666666667, 0, 0, 9.166666666666667, 0, 6.166666666666667,  //
      0, 13.5, 0, 0, 10.5, 0,                                            //
      13.5, 0, 9.5, 0, 0, 0,                                             //
      0, 6.666666666666667, 3.666666666666667, 6.333333333333333, 0, 3.333333333333333;
  const Matrix<double> d = ch2_l3n_scores<double>(m);
  const Matrix<float> f = ch2_l3n_scores<float>(m);
  for (Index i = 0; i < 5; ++i)
    for (Index j = 0; j < 6; ++j) {
      EXPECT_NEAR(d(i, j), expected(i, j), 1e-12) << i << "," << j;
      EXPECT_NEAR(f(i, j), expected(i, j), 1e-5) << i << "," << j;
    }
  EXPECT_LT(max_rel_diff(path_scores(m, ChRule::Ch2L3n), expected), 1e-12);
  EXPECT_LT(max_rel_diff(detail::ch_l3n_scores_gemm<double>(m), expected), 1e-12);
}

TEST(ChScores, EqualsPathDefinitionOnRandomMasks) {
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    const Index rows = 3 + static_cast<Index>(seed % 9),
                cols = 4 + static_cast<Index>(seed * 5 % 11);
    const Mask m = random_mask(rows, cols, 0.25 + 0.05 * static_cast<double>(seed % 7), seed);
    for (ChRule rule : {ChRule::Ch2L3n, ChRule::Ch3L3n}) {
      const Matrix<double> ref = path_scores(m, rule);
      EXPECT_LT(max_rel_diff(ch_l3n_scores<double>(m, rule), ref), 1e-12) << "seed " << seed;
      EXPECT_LT(max_rel_diff(ch_l3n_scores<float>(m, rule), ref), 2e-6) << "seed " << seed;
    }
  }
}

TEST(ChScores, EqualsGemmFormulationOnNMMasks) {
  for (NM nm : {NM{2, 4}, NM{1, 4}}) {
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
      const Index rows = 37 + 9 * static_cast<Index>(seed),
                  cols = 4 * (13 + 5 * static_cast<Index>(seed));
      const Mask m = random_nm(rows, cols, nm, seed);
      for (ChRule rule : {ChRule::Ch2L3n, ChRule::Ch3L3n}) {
        EXPECT_LT(max_rel_diff(ch_l3n_scores<double>(m, rule),
                               detail::ch_l3n_scores_gemm<double>(m, rule)),
                  1e-12);
        EXPECT_LT(
            max_rel_diff(ch_l3n_scores<float>(m, rule), detail::ch_l3n_scores_gemm<float>(m, rule)),
            1e-6)
            << nm << " seed " << seed;
      }
    }
  }
}

TEST(ChScores, EqualsGemmFormulationOnStructuredMasks) {
  // Row-wise and transposable N:M masks, as drawn and after removal: these take the N:M-structured
  // table products (12 / 8 inner indices per lookup) in one or both streams.
  for (const Mask& m : nm_masks(48, 80, 21)) {
    for (ChRule rule : {ChRule::Ch2L3n, ChRule::Ch3L3n})
      for (Index min2of4 : {Index(0), detail::kMinColumnsGroups2of4}) {
        EXPECT_LT(max_rel_diff(scores_with<double>(m, rule, min2of4),
                               detail::ch_l3n_scores_gemm<double>(m, rule)),
                  1e-12);
        EXPECT_LT(max_rel_diff(scores_with<float>(m, rule, min2of4),
                               detail::ch_l3n_scores_gemm<float>(m, rule)),
                  1e-6);
      }
  }
}

TEST(ChScores, TableKindFollowsTheGroupStructure) {
  // table_kind against a plain count of the ones in every aligned group of 4 bits.
  auto expected = [](const Mask& m) {
    int most = 0;
    for (Index r = 0; r < m.rows(); ++r)
      for (Index g = 0; g * 4 < m.cols(); ++g) {
        int ones = 0;
        for (Index c = 4 * g; c < std::min(m.cols(), 4 * g + 4); ++c) ones += m(r, c) != 0;
        most = std::max(most, ones);
      }
    return most <= 1   ? detail::TableKind::Groups1of4
           : most <= 2 ? detail::TableKind::Groups2of4
                       : detail::TableKind::Bits6;
  };
  // (min_columns_2of4 = 0: the group structure alone decides.)
  std::vector<Mask> masks = nm_masks(24, 136, 5);
  masks.push_back(random_mask(9, 70, 0.1, 3));
  masks.push_back(random_mask(9, 70, 0.5, 4));
  masks.push_back(Mask::Zero(3, 5));
  masks.push_back(random_mask(130, 200, 0.5, 6));  // partial 64 x 64 bit blocks
  for (const Mask& m : masks) {
    detail::BitRows rows, cols, plain;
    detail::pack_rows(m, rows);
    detail::pack_cols(rows, cols);
    EXPECT_EQ(detail::table_kind(rows, 0), expected(m));
    EXPECT_EQ(detail::table_kind(cols, 0), expected(m.transpose()));
    // pack_cols (64 x 64 bit-block transposes) equals packing the rows of Mᵀ.
    detail::pack_rows(Mask(m.transpose()), plain);
    EXPECT_EQ(cols.data, plain.data);
  }
  // Row-wise N:M: the rows are structured (the column stream's B), the columns are not.
  detail::BitRows rows, cols;
  detail::pack_rows(sparsenm::random_mask(16, 64, NM{1, 4}, Layout::RowWise, Philox(1)), rows);
  EXPECT_EQ(detail::table_kind(rows), detail::TableKind::Groups1of4);
  detail::pack_cols(rows, cols);
  EXPECT_EQ(detail::table_kind(cols, 0), detail::TableKind::Bits6);
  detail::pack_rows(sparsenm::random_mask(16, 64, NM{2, 4}, Layout::RowWise, Philox(1)), rows);
  EXPECT_EQ(detail::table_kind(rows, 0), detail::TableKind::Groups2of4);
  // Groups2of4 only from min_columns_2of4 columns (rows of the packed B) on; Bits6 below.
  EXPECT_EQ(detail::table_kind(rows, 16), detail::TableKind::Groups2of4);
  EXPECT_EQ(detail::table_kind(rows, 17), detail::TableKind::Bits6);
  EXPECT_EQ(detail::table_kind(rows), detail::TableKind::Bits6);
}

/// Every table kind against a plain product: a (rows x K, real, in panels) times a binary B (K x n)
/// drawn with the kind's group structure; SIMD and scalar kernels bit for bit, both within
/// rounding of the plain double product.
template <detail::TableKind Kd, class S>
void check_table_product(Index rows, Index k, Index n, std::uint64_t seed) {
  using G = detail::TableGeometry<Kd>;
  constexpr Index L = detail::tab_lanes<S>();
  const Index kp = detail::round_up(k, G::pass), panels = (rows + L - 1) / L;
  const Philox rng(seed, 17);
  Matrix<double> a(rows, k);
  for (Index i = 0; i < a.size(); ++i) a.data()[i] = rng.uniform(std::uint64_t(i)) - 0.25;
  std::vector<S> panel(static_cast<std::size_t>(panels * kp * L), S(0));
  for (Index r = 0; r < rows; ++r)
    for (Index j = 0; j < k; ++j)
      panel[static_cast<std::size_t>(((r / L) * kp + j) * L + r % L)] = static_cast<S>(a(r, j));
  // B's columns: per aligned group of 4 inner indices, a random legal group pattern.
  const int cap = Kd == detail::TableKind::Groups1of4   ? 1
                  : Kd == detail::TableKind::Groups2of4 ? 2
                                                        : 4;
  Mask bt = Mask::Zero(n, k);  // rows = columns of B
  for (Index c = 0; c < n; ++c)
    for (Index j = 0; j < k; ++j) {
      int in_group = 0;
      for (Index t = j - j % 4; t < j; ++t) in_group += bt(c, t);
      const double u = rng.uniform(std::uint64_t(1000000 + c * k + j));
      if (in_group < cap && u < 0.4) bt(c, j) = 1;
    }
  detail::BitRows cols;
  detail::pack_rows(bt, cols);
  const detail::TableKind drawn = detail::table_kind(cols, 0);  // B must suit kind Kd
  ASSERT_TRUE(Kd == detail::TableKind::Bits6 || drawn == Kd ||
              drawn == detail::TableKind::Groups1of4);
  std::vector<std::uint16_t> offsets;
  detail::table_offsets<Kd>(cols, kp, offsets);
  std::vector<S> fast(static_cast<std::size_t>(panels * n * L)), ref(fast.size());
  detail::table_product<Kd>(panel.data(), rows, kp, offsets.data(), n, fast.data());
  detail::scalar::table_product<Kd>(panel.data(), rows, kp, offsets.data(), n, ref.data());
  EXPECT_TRUE(fast == ref) << rows << "x" << k << "x" << n << " kind " << int(Kd) << " "
                           << sizeof(S);
  double worst = 0;
  for (Index r = 0; r < rows; ++r)
    for (Index c = 0; c < n; ++c) {
      double plain = 0, scale = 0;
      for (Index j = 0; j < k; ++j)
        if (bt(c, j)) {
          plain += static_cast<double>(static_cast<S>(a(r, j)));
          scale += std::abs(a(r, j));
        }
      const double got =
          static_cast<double>(ref[static_cast<std::size_t>(((r / L) * n + c) * L + r % L)]);
      worst = std::max(worst, std::abs(got - plain) / std::max(scale, 1e-300));
    }
  const double tol = std::is_same<S, float>::value ? 2e-6 : 1e-14;
  EXPECT_LT(worst, tol) << rows << "x" << k << "x" << n;
}

TEST(ChScores, TableProductsOfEveryKindEqualPlainProducts) {
  // Shapes with partial panels, partial passes (K not a multiple of 40, 48 or 60) and odd n.
  const Index shapes[][3] = {{1, 4, 1}, {17, 61, 9}, {40, 120, 33}, {23, 250, 64}};
  std::uint64_t seed = 1;
  for (const auto& sh : shapes) {
    check_table_product<detail::TableKind::Bits6, float>(sh[0], sh[1], sh[2], ++seed);
    check_table_product<detail::TableKind::Groups1of4, float>(sh[0], sh[1], sh[2], ++seed);
    check_table_product<detail::TableKind::Groups2of4, float>(sh[0], sh[1], sh[2], ++seed);
    check_table_product<detail::TableKind::Bits6, double>(sh[0], sh[1], sh[2], ++seed);
    check_table_product<detail::TableKind::Groups1of4, double>(sh[0], sh[1], sh[2], ++seed);
    check_table_product<detail::TableKind::Groups2of4, double>(sh[0], sh[1], sh[2], ++seed);
  }
}

TEST(ChScores, SimdKernelsMatchScalarBitForBit) {
  // Shapes that exercise every padding path (rows/cols not multiples of 5, 8, 16, 20, 64).
  const Index shapes[][2] = {{1, 1}, {2, 3}, {17, 23}, {65, 130}, {130, 66}, {203, 97}};
  std::uint64_t seed = 5;
  for (const auto& sh : shapes) {
    const Mask m = random_mask(sh[0], sh[1], 0.3, ++seed);
    for (ChRule rule : {ChRule::Ch2L3n, ChRule::Ch3L3n}) {
      EXPECT_TRUE((ch_l3n_scores<float>(m, rule).array() ==
                   detail::ch_l3n_scores_scalar<float>(m, rule).array())
                      .all())
          << sh[0] << "x" << sh[1];
      EXPECT_TRUE((ch_l3n_scores<double>(m, rule).array() ==
                   detail::ch_l3n_scores_scalar<double>(m, rule).array())
                      .all());
    }
  }
  // Weight panels and results written with non-temporal stores (the route of large masks) give
  // the same bits (the results only where C is a multiple of 16: whole 64-byte lines).
  const Index streamed_shapes[][2] = {{17, 23}, {130, 66}, {40, 96}, {33, 64}};
  for (const auto& sh : streamed_shapes) {
    const Mask m = random_mask(sh[0], sh[1], 0.3, ++seed);
    Matrix<float> streamed;
    detail::ChWorkspace<float> ws;
    ws.stream_above_bytes = 0;
    ch_l3n_scores_into(m, ChRule::Ch2L3n, streamed, ws);
    EXPECT_TRUE(
        (streamed.array() == detail::ch_l3n_scores_scalar<float>(m, ChRule::Ch2L3n).array()).all())
        << sh[0] << "x" << sh[1];
  }
  // N:M masks take the structured table kinds (odd shapes: partial panels and passes).
  const Index nm_shapes[][2] = {{132, 68}, {204, 100}};
  for (const auto& sh : nm_shapes)
    for (const Mask& m : nm_masks(sh[0], sh[1], ++seed))
      for (Index min2of4 : {Index(0), detail::kMinColumnsGroups2of4}) {
        EXPECT_TRUE((scores_with<float>(m, ChRule::Ch2L3n, min2of4).array() ==
                     detail::ch_l3n_scores_scalar<float>(m, ChRule::Ch2L3n, min2of4).array())
                        .all())
            << sh[0] << "x" << sh[1];
        EXPECT_TRUE((scores_with<double>(m, ChRule::Ch2L3n, min2of4).array() ==
                     detail::ch_l3n_scores_scalar<double>(m, ChRule::Ch2L3n, min2of4).array())
                        .all());
      }
}

TEST(ChScores, SameForOneAndTwoThreads) {
  // Large enough to run in parallel; every table kind: row-wise 2:4 (Groups2of4 allowed on any
  // width) and 1:4 column streams, 6-bit tables for their row streams and a random mask.
  for (const Mask& m : {random_nm(256, 320, NM{2, 4}, 3), random_nm(256, 320, NM{1, 4}, 4),
                        random_mask(200, 300, 0.3, 5)}) {
    set_thread_count(1);
    const Matrix<float> a = scores_with<float>(m, ChRule::Ch2L3n, 0);
    set_thread_count(2);
    const Matrix<float> b = scores_with<float>(m, ChRule::Ch2L3n, 0);
    EXPECT_TRUE((a.array() == b.array()).all());
  }
}

TEST(ChScores, EdgeCasesAndBadInput) {
  EXPECT_EQ(ch2_l3n_scores<float>(Mask(0, 4)).rows(), 0);
  EXPECT_EQ(ch2_l3n_scores<float>(Mask(3, 0)).cols(), 0);
  // Empty and full masks have no L3 paths to an absent link: all scores 0.
  EXPECT_TRUE(ch2_l3n_scores<double>(Mask::Zero(4, 8)).isZero());
  EXPECT_TRUE(ch2_l3n_scores<double>(Mask::Ones(4, 8)).isZero());
  Mask bad = Mask::Zero(2, 2);
  bad(1, 0) = 2;
  EXPECT_THROW(ch2_l3n_scores<float>(bad), Error);
  // Scores are non-negative and zero exactly on the active entries.
  const Mask m = random_mask(20, 24, 0.4, 99);
  const Matrix<double> s = ch2_l3n_scores<double>(m);
  for (Index k = 0; k < s.size(); ++k) {
    EXPECT_GE(s.data()[k], 0.0);
    if (m.data()[k]) {
      EXPECT_EQ(s.data()[k], 0.0);
    }
  }
}
