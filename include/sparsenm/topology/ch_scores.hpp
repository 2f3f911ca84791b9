// SPDX-License-Identifier: Apache-2.0
// Cannistraci-Hebb CH2-L3n link-prediction scores on a layer's bipartite graph (CHTs24 Sec. 3.2.3,
// App. B, Alg. 1 stage 1; docs/algorithms.md "CH2-L3n scores on a layer").
#ifndef SPARSENM_TOPOLOGY_CH_SCORES_HPP
#define SPARSENM_TOPOLOGY_CH_SCORES_HPP

#include <algorithm>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/ch_kernels.hpp"

namespace sparsenm {

/// \defgroup topology Topology engine (CHTs24 / CHTsNM dynamic sparse training)

/// CH-L3n scores of every absent link of the layer whose mask is `mask` (R x C, rows = outputs,
/// cols = inputs). With rule Ch2L3n this is CHTs24 Alg. 1 stage 1 exactly (matrix form of the
/// reference code):
/// \code
///   DD = M Mᵀ, TT = Mᵀ M, dR = M 1, dC = Mᵀ 1, BD = [DD != 0], BT = [TT != 0]
///   E_D[i,j] = max((dR[j] - DD[i,j]) BD[i,j], 1) - 1     (degree of the LAST index)
///   F_D = (DD + BD) ⊘ (E_D + 1)       (Ch3L3n: BD ⊘ (E_D + 1)), F_T likewise
///   result = (F_D M + M F_Tᵀ) ⊙ (1 - M)
/// \endcode
/// In path terms: for an absent link (i, c), every intermediate node z of the L3 paths
/// i - b - j - c adds (1 + di_z) / (1 + de_z), di_z = links of z into the local community,
/// de_z = its other links except the one to the seed; Ch3L3n adds 1 / (1 + de_z).
///
/// Active entries score 0. Any shape works (the mask need not be N:M legal: the refresh calls it
/// after removal). The mask must hold only 0 and 1 (sparsenm::Error otherwise).
///
/// Cost: the float-GEMM formulation runs 4 R·C·(R + C) flops through GEMM. Here DD and TT are
/// bit-packed AND + POPCNT products turned into the weights tile by tile, and the two projections
/// are four-Russians lookups in L1-resident tables (one 64-byte load + add per 16 rows x 6 inner
/// indices of any mask; x 12 where every aligned group of 4 holds at most one 1, x 8 for at most
/// two: the column stream of row-wise 1:4 / 2:4 masks, also after removal, and both streams of
/// transposable ones), see detail/ch_kernels.hpp and detail/table_product.hpp; memory about
/// 2·R·C + max(R,C)² scalars.
/// Deterministic: every output is summed in a fixed order by one thread, so results are
/// bit-identical for any thread count.
template <class S>
Matrix<S> ch_l3n_scores(const Mask& mask, ChRule rule = ChRule::Ch2L3n);

/// CHTs24 Alg. 1 stage 1: (S_row + S_colᵀ) ⊙ (1 − M) with the CH2-L3n rule (API contract).
template <class S>
Matrix<S> ch2_l3n_scores(const Mask& mask) {
  return ch_l3n_scores<S>(mask, ChRule::Ch2L3n);
}

/// CH3-L3n variant (each intermediate node adds 1 / (1 + de_z)).
template <class S>
Matrix<S> ch3_l3n_scores(const Mask& mask) {
  return ch_l3n_scores<S>(mask, ChRule::Ch3L3n);
}

/// Same as ch_l3n_scores, reusing `out` and the buffers of `ws` (the refresher calls this every
/// refresh, so the ~6 large buffers are allocated once).
template <class S>
void ch_l3n_scores_into(const Mask& mask, ChRule rule, Matrix<S>& out, detail::ChWorkspace<S>& ws);

namespace detail {

/// Plain-loop C = op(A) op(B) (the default product of ch_l3n_scores_gemm; small sizes only).
struct NaiveGemm {
  template <class S>
  void operator()(const Matrix<S>& a, bool trans_a, const Matrix<S>& b, bool trans_b,
                  Matrix<S>& c) const {
    const Index n = trans_a ? a.cols() : a.rows();
    const Index k = trans_a ? a.rows() : a.cols();
    const Index p = trans_b ? b.rows() : b.cols();
    c.setZero(n, p);
    for (Index i = 0; i < n; ++i)
      for (Index t = 0; t < k; ++t) {
        const S x = trans_a ? a(t, i) : a(i, t);
        if (x == S(0)) continue;
        for (Index j = 0; j < p; ++j) c(i, j) += x * (trans_b ? b(j, t) : b(t, j));
      }
  }
};

/// The float-GEMM formulation of CHTs24 Alg. 1 stage 1, written as the reference code does it:
/// four dense products of the 0/1 matrix (`gemm(A, trans_a, B, trans_b, C)`: C = op(A) op(B);
/// bench_topology passes cblas_sgemm) and elementwise degree penalties. Kept as the reference for
/// tests and the baseline of bench_topology.
template <class S, class Gemm = NaiveGemm>
Matrix<S> ch_l3n_scores_gemm(const Mask& mask, ChRule rule = ChRule::Ch2L3n, Gemm&& gemm = Gemm()) {
  const Index R = mask.rows(), C = mask.cols();
  const Matrix<S> m = mask.template cast<S>();
  Matrix<S> dd, tt;
  gemm(m, false, m, true, dd);  // DD = M Mᵀ
  gemm(m, true, m, false, tt);  // TT = Mᵀ M
  std::vector<S> d_r(static_cast<std::size_t>(R), S(0)), d_c(static_cast<std::size_t>(C), S(0));
  for (Index i = 0; i < R; ++i)
    for (Index j = 0; j < C; ++j) {
      d_r[static_cast<std::size_t>(i)] += m(i, j);
      d_c[static_cast<std::size_t>(j)] += m(i, j);
    }
  auto weights = [rule](Matrix<S>& p, const std::vector<S>& deg) {  // in place: P -> F
    for (Index i = 0; i < p.rows(); ++i)
      for (Index j = 0; j < p.cols(); ++j) {
        const S v = p(i, j);
        const S b = v != S(0) ? S(1) : S(0);
        // E[i,j] = max((deg[j] - P[i,j]) B[i,j], 1) - 1: the degree of the LAST index.
        const S e = std::max((deg[static_cast<std::size_t>(j)] - v) * b, S(1)) - S(1);
        p(i, j) = (rule == ChRule::Ch2L3n ? v + b : b) / (e + S(1));
      }
  };
  weights(dd, d_r);  // F_D
  weights(tt, d_c);  // F_T
  Matrix<S> s_row, s_col;
  gemm(dd, false, m, false, s_row);  // F_D M
  gemm(m, false, tt, true, s_col);   // M F_Tᵀ  (= S_colᵀ of Alg. 1)
  Matrix<S> out(R, C);
  for (Index i = 0; i < R; ++i)
    for (Index j = 0; j < C; ++j) out(i, j) = mask(i, j) ? S(0) : s_row(i, j) + s_col(i, j);
  return out;
}

/// The fast route with the scalar reference kernels (tests compare it with the SIMD kernels).
template <class S>
Matrix<S> ch_l3n_scores_scalar(const Mask& mask, ChRule rule = ChRule::Ch2L3n,
                               Index min_columns_2of4 = kMinColumnsGroups2of4) {
  check_binary(mask, "ch_l3n_scores: mask");
  Matrix<S> out = Matrix<S>::Zero(mask.rows(), mask.cols());
  ChWorkspace<S> ws;
  ws.min_columns_2of4 = min_columns_2of4;
  ch_l3n_fast(mask, rule, ws, out.data(), true);
  return out;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------

template <class S>
void ch_l3n_scores_into(const Mask& mask, ChRule rule, Matrix<S>& out, detail::ChWorkspace<S>& ws) {
  static_assert(std::is_floating_point<S>::value,
                "ch_l3n_scores: the score type S must be float or double");
  check_binary(mask, "ch_l3n_scores: mask");
  out.resize(mask.rows(), mask.cols());
  if (out.size() > 0 && (mask.rows() == 0 || mask.cols() == 0)) out.setZero();
  SPARSENM_DISPATCH(ch_l3n_fast)(mask, rule, ws, out.data(), false);
}

template <class S>
Matrix<S> ch_l3n_scores(const Mask& mask, ChRule rule) {
  Matrix<S> out;
  detail::ChWorkspace<S> ws;
  ch_l3n_scores_into(mask, rule, out, ws);
  return out;
}

}  // namespace sparsenm

#endif  // SPARSENM_TOPOLOGY_CH_SCORES_HPP
