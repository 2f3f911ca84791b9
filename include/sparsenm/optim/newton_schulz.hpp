// SPDX-License-Identifier: Apache-2.0
// Quintic Newton-Schulz orthogonalisation (chtsnm Sec. 3.2, App. C Table A4; Muon's fixed triple).
#ifndef SPARSENM_OPTIM_NEWTON_SCHULZ_HPP
#define SPARSENM_OPTIM_NEWTON_SCHULZ_HPP

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/simd.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../kernels/detail/dense_gemm.hpp"
#include "../kernels/detail/simd_vec.hpp"
#include "detail/elementwise.hpp"
#include "detail/ns_kernels.hpp"

/// 1 (default): whenever the running ISA route is AVX-512 (compiled with -march, or chosen at run
/// time by the dispatch of core/simd.hpp in a plain build), the Newton-Schulz products run on the
/// library's packed register-blocked GEMM (kernels/detail/dense_gemm.hpp), which reads symmetric
/// factors from their lower triangle, computes symmetric results as half products, and is
/// bit-identical for any thread count. On other routes, or with 0: BLAS ?syrk/?symm/?gemm (with
/// EIGEN_USE_BLAS) or Eigen's products (the packed GEMM is tuned for 16-wide vectors only).
#ifndef SPARSENM_NS_PACKED_GEMM
#define SPARSENM_NS_PACKED_GEMM 1
#endif

#define SPARSENM_ISA_BODY "../../optim/detail/ns_packed_body.inc"
#include "../core/detail/isa_passes.inc"

namespace sparsenm {

/// Coefficient schedule of the Newton-Schulz polynomial X <- a X + (b A + c A^2) X, A = X X^T.
enum class NsCoefficients {
  TansTableA4,  ///< chtsnm App. C Table A4: five different triples, one per step (default)
  Muon          ///< Muon's fixed (3.4445, -4.7750, 2.0315) for every step
};

/// One (a, b, c) triple.
struct NsTriple {
  double a;  ///< coefficient of X in X <- a X + (b A + c A^2) X
  double b;  ///< coefficient of A X
  double c;  ///< coefficient of A^2 X
};

/// The triple of 0-based step `step`. Table A4 has five rows; later steps reuse the last row.
inline NsTriple ns_coefficients(NsCoefficients c, int step) {
  static constexpr NsTriple kTableA4[5] = {{4.0848, -6.8946, 2.9270},
                                           {3.9505, -6.3029, 2.6377},
                                           {3.7418, -5.5913, 2.3037},
                                           {2.8769, -3.1427, 1.2046},
                                           {2.8366, -3.0525, 1.2012}};
  if (c == NsCoefficients::Muon) return {3.4445, -4.7750, 2.0315};
  return kTableA4[std::min(std::max(step, 0), 4)];
}

/// Frobenius normalisation constant: X0 = X / (||X||_F + 1e-7) (Muon's constant, independent of
/// any optimizer epsilon; docs/algorithms.md conventions).
constexpr double kNsNormEps = 1e-7;

/// Preallocated buffers for repeated Newton-Schulz runs on one shape (optimizers keep one, so a
/// step allocates nothing).
template <class S>
struct NsWorkspace {
  Matrix<S> x[2];     ///< ping-pong iterates, rows x cols row-major
  std::vector<S> a;   ///< Gram matrix, g x g column-major (g = min(rows, cols))
  std::vector<S> a2;  ///< A^2 / B, g x g column-major
  std::vector<S> p;   ///< Gram path only: P_k (g x g)
  std::vector<S> q;   ///< Gram path only: the product Q_k (g x g)
  std::vector<S> t;   ///< Gram path only: a temporary (g x g)
  Matrix<S> flushed;  ///< the input with its negligible entries zeroed (see flush_negligible)
  /// Sizes the buffers for a (rows, cols) input (no allocation when the shape is unchanged).
  void resize(Index rows, Index cols) {
    x[0].resize(rows, cols);
    x[1].resize(rows, cols);
    const auto g = static_cast<std::size_t>(std::min(rows, cols));
    a.assign(g * g, S(0));
    a2.assign(g * g, S(0));
    if (std::max(rows, cols) >= 2 * std::min(rows, cols)) {
      p.assign(g * g, S(0));
      q.assign(g * g, S(0));
      t.assign(g * g, S(0));
    }
  }
};

namespace detail {

/// Whether Newton-Schulz runs on the packed GEMM in this process: SPARSENM_NS_PACKED_GEMM and an
/// AVX-512 route (compiled, or the active route of a runtime-dispatch build; SPARSENM_FORCE_ISA /
/// set_active_isa() below AVX-512 select the BLAS / Eigen products).
inline bool ns_packed_route() {
#if !SPARSENM_NS_PACKED_GEMM
  return false;
#elif SPARSENM_HAS_AVX512
  return true;
#elif SPARSENM_RUNTIME_DISPATCH
  return active_isa() == SimdIsa::Avx512;
#else
  return false;
#endif
}

/// Whether an optimizer's elementwise passes after newton_schulz_run may run in parallel, given
/// `par` for the passes before it (see kSerialAfterBlas): the packed-GEMM route runs on OpenMP, so
/// no BLAS pool is left spinning when it returns.
inline bool parallel_after_ns(bool par) { return par || ns_packed_route(); }

// The O(g^2) passes between the BLAS calls of the iteration run on the calling thread only.
// OpenBLAS (pthreads) keeps its worker threads spinning for a while after each call; an OpenMP
// region started then competes with them for the cores, and on 2 cores the 1024 x 1024
// iteration took 112 ms instead of 83 ms. Serially these passes cost ~0.5 ms per step at 1024
// and under 1 % of a step at 4096.

/// Copies the lower triangle of the n x n column-major matrix m into its upper triangle, through
/// 16 x 16 tiles transposed in registers (the kernels' VecOps::transpose_block where the ISA has a
/// 16-wide one: AVX-512 float) or in a local buffer (both the reads
/// and the writes are contiguous runs of 16).
template <class S>
void mirror_lower(S* m, Index n) {
  constexpr Index kT = 16;
  const Index tiles = (n + kT - 1) / kT;
  S t[kT][kT];
  for (Index tj = 0; tj < tiles; ++tj) {
    const Index j0 = tj * kT, jn = std::min(kT, n - j0);
    for (Index ti = tj; ti < tiles; ++ti) {
      const Index i0 = ti * kT, in = std::min(kT, n - i0);
      if (ti == tj) {
        for (Index j = 0; j < jn; ++j)
          for (Index i = j + 1; i < in; ++i)
            m[(j0 + j) + (i0 + i) * n] = m[(i0 + i) + (j0 + j) * n];
        continue;
      }
      if (in == kT && jn == kT) {
        // Column j of the source tile (m + i0 + (j0 + j) n) becomes row j of the mirrored tile.
        if constexpr (VecOps<S>::kHasTranspose && VecOps<S>::kWidth == kT) {
          VecOps<S>::transpose_block(m + i0 + j0 * n, n, m + j0 + i0 * n, n);
        } else {
          for (Index j = 0; j < kT; ++j)
            for (Index i = 0; i < kT; ++i) t[i][j] = m[(i0 + i) + (j0 + j) * n];
          for (Index i = 0; i < kT; ++i)
            for (Index j = 0; j < kT; ++j) m[(j0 + j) + (i0 + i) * n] = t[i][j];
        }
      } else {
        for (Index j = 0; j < jn; ++j)
          for (Index i = 0; i < in; ++i) m[(j0 + j) + (i0 + i) * n] = m[(i0 + i) + (j0 + j) * n];
      }
    }
  }
}

/// B' = a I + b A + c A2 on the lower triangle (written into A2). The upper triangle is never
/// formed: the product with B' reads only the lower triangle (?symm, or the packed GEMM's
/// symmetric read). In parallel only where no BLAS pool is spinning (the packed-GEMM route).
template <class S>
void ns_combine(const S* A, S* A2, Index n, S a, S b, S c, bool parallel = false) {
  auto columns = [&](Index j0, Index j1) {
    for (Index j = j0; j < j1; ++j) {
      S* SPARSENM_RESTRICT out = A2 + j * n;
      const S* SPARSENM_RESTRICT in = A + j * n;
      for (Index i = j; i < n; ++i) out[i] = c * out[i] + b * in[i];
      out[j] += a;
    }
  };
  if (parallel)
    parallel_for_chunks(n, 32, columns);
  else
    columns(0, n);
}

/// Gram-matrix form of the same iteration for strongly rectangular inputs (long side k >= 2 g).
/// Every P_k = a_k I + b_k A_k + c_k A_k^2 is a polynomial in A_0 = X0 X0^T, so all of them commute
/// and X_k = Q_k X0 with Q_k = P_{k-1} ... P_0, and A_{k+1} = P_k A_k P_k = P_k^2 A_k. The loop
/// then runs on g x g matrices only, and the long side is touched twice (A_0 and X_K = Q_K X0): 3
/// g^2 k + ~25 g^3 flops instead of 15 g^2 k + 5 g^3 (Dao-AILab "Gram Newton-Schulz"; DeepSpeed).
/// Same result up to rounding; in fp32 it matches the long-double reference to 1e-4 (tested).
template <class S>
const Matrix<S>& newton_schulz_gram(const S* in, Index rows, Index cols, S scale, int steps,
                                    NsCoefficients coeffs, NsWorkspace<S>& ws) {
  const bool col_side = rows > cols;
  const int g = static_cast<int>(col_side ? cols : rows);
  const int k = static_cast<int>(col_side ? rows : cols);
  const int ld = static_cast<int>(cols);
  const Index gg = Index(g) * g;
  S* A = ws.a.data();
  S* A2 = ws.a2.data();
  S* P = ws.p.data();
  S* Q = ws.q.data();
  S* T = ws.t.data();
  S* out = ws.x[0].data();
  // The products of the loop. Every g x g matrix here is symmetric (polynomials in A_0). Packed
  // GEMM: symmetric factors are read from their lower triangle and products of these commuting
  // matrices are computed as lower triangles only, so nothing is ever mirrored. BLAS / Eigen:
  // squares are ?syrk (lower), other products full ?gemm, and a lower triangle is mirrored
  // wherever the next product reads the whole matrix.
  const bool packed = ns_packed_route();
  const bool par_combine = packed;
  auto gram0 = [&] {
    if (packed) {
      SPARSENM_DISPATCH(ns_gram_packed<S>)
      (col_side, Index(g), Index(k), scale * scale, in, Index(ld), A);
    } else {
      ns_backend::syrk_lower(!col_side, g, k, scale * scale, in, ld, A, g);
    }
  };
  auto square = [&](const S* x, S* o) {
    if (packed) {
      SPARSENM_DISPATCH(ns_sym_product_packed<S>)(Index(g), x, x, o);
    } else {
      ns_backend::syrk_lower(false, g, g, S(1), x, g, o, g);
    }
  };
  auto product = [&](const S* x, const S* y, S* o) {
    if (packed) {
      SPARSENM_DISPATCH(ns_sym_product_packed<S>)(Index(g), x, y, o);
    } else {
      ns_backend::gemm_nn(g, g, g, S(1), x, g, y, g, o, g);
    }
  };
  auto full = [&](S* m) {
    if (!packed) mirror_lower(m, g);
  };
  auto apply = [&] {  // Y_K = Y Q (rows side) or Q Y (cols side), alpha = scale
    const int R = static_cast<int>(rows), C = static_cast<int>(cols);
    if (packed) {
      SPARSENM_DISPATCH(ns_apply_packed<S>)(col_side, rows, cols, scale, Q, in, out);
    } else if (!col_side) {
      ns_backend::gemm_nn(C, R, R, scale, in, ld, Q, g, out, ld);
    } else {
      ns_backend::gemm_nn(C, R, C, scale, Q, g, in, ld, out, ld);
    }
  };
  gram0();  // A_0
  full(A);
  for (int t = 0; t < steps; ++t) {
    const NsTriple tr = ns_coefficients(coeffs, t);
    square(A, A2);                                                        // A_t^2
    ns_combine(A, A2, Index(g), S(tr.a), S(tr.b), S(tr.c), par_combine);  // P_t (lower) in A2
    full(A2);
    std::swap(A2, P);  // P holds P_t; A2 is free
    if (t == 0) {
      std::copy(P, P + gg, Q);  // Q_1 = P_0
    } else {
      product(P, Q, T);  // Q_{t+1} = P_t Q_t
      std::swap(Q, T);
    }
    if (t + 1 < steps) {
      square(P, A2);  // P_t^2
      full(A2);
      product(A2, A, T);  // A_{t+1} = P_t^2 A_t
      full(T);            // exactly symmetric (the next square reads all of it)
      std::swap(A, T);
    }
  }
  apply();  // X_K = Q_K X0 (Q_K symmetric)
  return ws.x[0];
}

/// Zeroes the entries of X0 = scale * in below min_normal^(1/4) (3.3e-10 in float, 1.2e-77 in
/// double) when there are any, into ws.flushed, and returns the matrix the iteration should read.
/// Why: A^2 X multiplies four entries of X0, and once such products fall into the subnormal range
/// x86 FMA units take microcode assists (~100x slower). This happens in real training: TANS's
/// momentum decays geometrically on rows whose gradient is exactly 0 (dead ReLU units), and the
/// Newton-Schulz step of an MLP layer became ~5x slower after a few hundred steps. The zeroed
/// entries change the output by less than float rounding (their contribution is a_k * 3e-10 against
/// entries of order 1/sqrt(min(rows, cols))), and zero rows stay zero through the iteration.
template <class S>
const S* flush_negligible(const S* in, Index rows, Index cols, S scale, NsWorkspace<S>& ws) {
  const S limit = S(std::pow(double(std::numeric_limits<S>::min()), 0.25) / double(scale));
  const Index n = rows * cols;
  // Branch-free scan in blocks (vectorises; the common answer is "none").
  constexpr Index kBlock = 4096;
  bool any = false;
  for (Index b = 0; b < n && !any; b += kBlock) {
    const Index e = std::min(n, b + kBlock);
    unsigned hit = 0;
    for (Index i = b; i < e; ++i) hit |= unsigned((in[i] != S(0)) & (std::abs(in[i]) < limit));
    any = hit != 0;
  }
  if (!any) return in;
  ws.flushed.resize(rows, cols);
  S* out = ws.flushed.data();
  for (Index i = 0; i < n; ++i) out[i] = std::abs(in[i]) < limit ? S(0) : in[i];
  return out;
}

/// K Newton-Schulz steps on X0 = scale * in, where `in` is a rows x cols row-major matrix.
/// The iteration runs on the lower-dimensional side: A = X X^T when rows <= cols, otherwise
/// A = X^T X with X <- X (a I + b A + c A^2), which equals transposing, iterating and transposing
/// back, without any transpose. The scale is folded into the first SYRK (alpha = scale^2) and the
/// first GEMM (alpha = scale), so the normalisation costs no pass over memory. Returns the buffer
/// that holds X_K (one of ws.x). Must not be called inside an OpenMP parallel region.
template <class S>
const Matrix<S>& newton_schulz_run(const S* in, Index rows, Index cols, S scale, int steps,
                                   NsCoefficients coeffs, NsWorkspace<S>& ws) {
  if (ws.x[0].rows() != rows || ws.x[0].cols() != cols) ws.resize(rows, cols);
  Matrix<S>& first = ws.x[0];
  if (steps <= 0 || rows == 0 || cols == 0) {
    const Index n = rows * cols;
    S* out = first.data();
    for_each_chunk(n, [&](Index b, Index e, Index) {
      for (Index i = b; i < e; ++i) out[i] = scale * in[i];
    });
    return first;
  }
  in = flush_negligible(in, rows, cols, scale, ws);
  const bool gram = std::max(rows, cols) >= 2 * std::min(rows, cols) && steps >= 2;
  if (gram && ws.p.size() != ws.a.size()) ws.resize(rows, cols);
  if (gram) return newton_schulz_gram(in, rows, cols, scale, steps, coeffs, ws);
  // Column-major view of the row-major data: Y = X^T, cols x rows, leading dimension cols.
  const bool col_side = rows > cols;
  const int g = static_cast<int>(col_side ? cols : rows);
  const int k = static_cast<int>(col_side ? rows : cols);
  const int ld = static_cast<int>(cols);
  S* A = ws.a.data();
  S* A2 = ws.a2.data();
  const S* cur = in;
  S alpha = scale;
  int which = 0;
  const bool packed = ns_packed_route();
  for (int t = 0; t < steps; ++t) {
    const NsTriple tr = ns_coefficients(coeffs, t);
    S* out = ws.x[which].data();
    if (packed) {
      SPARSENM_DISPATCH(ns_gram_packed<S>)
      (col_side, Index(g), Index(k), alpha * alpha, cur, Index(ld), A);  // X X^T
      SPARSENM_DISPATCH(ns_sym_product_packed<S>)(Index(g), A, A, A2);   // A^2
      ns_combine(A, A2, Index(g), S(tr.a), S(tr.b), S(tr.c), true);      // B' = a I + b A + c A^2
      SPARSENM_DISPATCH(ns_apply_packed<S>)
      (col_side, rows, cols, alpha, A2, cur, out);  // X <- B' X
    } else {
      // A = X X^T (rows side: Y^T Y) or X^T X (cols side: Y Y^T): symmetric, half the flops.
      ns_backend::syrk_lower(!col_side, g, k, alpha * alpha, cur, ld, A, g);
      mirror_lower(A, g);
      // A^2 = A A^T since A is symmetric: a second rank-k update instead of a GEMM.
      ns_backend::syrk_lower(false, g, g, S(1), A, g, A2, g);
      ns_combine(A, A2, Index(g), S(tr.a), S(tr.b), S(tr.c));
      // X <- (a I + B) X: the a X term is folded into the symmetric factor (one product, no
      // pass), which is read from its lower triangle only (?symm).
      const int R = static_cast<int>(rows), C = static_cast<int>(cols);
      if (!col_side)
        ns_backend::symm_lower(true, C, R, alpha, A2, g, cur, ld, out, ld);  // Y <- Y B'
      else
        ns_backend::symm_lower(false, C, R, alpha, A2, g, cur, ld, out, ld);  // Y <- B' Y
    }
    cur = out;
    which ^= 1;
    alpha = S(1);
  }
  return ws.x[which ^ 1];
}

}  // namespace detail

/// Orthogonalises x with `steps` quintic Newton-Schulz iterations (chtsnm Sec. 3.2, App. C):
///   X0 = x / (||x||_F + 1e-7),  A_k = X_k X_k^T,  X_{k+1} = a_k X_k + (b_k A_k + c_k A_k^2) X_k,
/// run on the lower-dimensional side (rows > cols is handled as the transpose). Coefficients:
/// Table A4 (default) or Muon's fixed triple; steps beyond the table reuse its last row.
/// A zero matrix returns zeros. The singular vectors of x are kept and each singular value s of
/// X0 becomes p_K(...p_1(s)) with p_k(s) = a_k s + b_k s^3 + c_k s^5; for Table A4 and
/// normalised singular values in [0.01, 1] the result lies in [0.978, 1.032].
///
/// Both Gram products are symmetric rank-k updates (A = X X^T and A^2 = A A^T, lower triangle
/// only), the a X term is folded into the symmetric factor, and X <- B' X reads B' from its lower
/// triangle: a step costs g^2 k + g^3 + 2 g^2 k flops (g = short side, k = long side) instead of
/// 4 g^2 k + 2 g^3 for three GEMMs. When k >= 2 g the iteration runs on g x g Gram matrices only
/// (see detail::newton_schulz_gram): 3 g^2 k + ~25 g^3 flops in total (~17 g^3 with the packed
/// GEMM's half products). Products: on the AVX-512 route (compiled, or picked at run time in a
/// plain build) the library's packed GEMM (SPARSENM_NS_PACKED_GEMM, default), bit-identical for any
/// OpenMP thread count and safe inside a parallel region (it then runs serially); otherwise BLAS
/// ?syrk/?symm/?gemm when EIGEN_USE_BLAS is defined (deterministic for a fixed BLAS thread count;
/// not inside a parallel region) or Eigen's products. Programs that alternate OpenBLAS (pthreads)
/// calls and OpenMP code at millisecond granularity pay a hand-over cost either way: OpenBLAS's
/// workers keep spinning for a while after each call (see bench/RESULTS.md, optim). Throws
/// sparsenm::Error for non-finite entries or steps outside [0, 1000].
///
/// `S` may be given explicitly (newton_schulz<float>(x)) or deduced from x.
template <class S = void, class Derived>
Matrix<std::conditional_t<std::is_void<S>::value, typename Derived::Scalar, S>> newton_schulz(
    const Eigen::MatrixBase<Derived>& x, int steps = 5,
    NsCoefficients c = NsCoefficients::TansTableA4) {
  using T = std::conditional_t<std::is_void<S>::value, typename Derived::Scalar, S>;
  static_assert(std::is_floating_point<T>::value,
                "newton_schulz: the scalar must be float or double");
  check_in_range(steps, 0, 1000, "newton_schulz: steps");
  // A contiguous row-major T matrix is read in place; anything else (other scalar, column-major,
  // a block with a row stride) is evaluated once into a contiguous copy.
  const Eigen::Ref<const Matrix<T>> ref(x.template cast<T>());
  Matrix<T> copy;
  const Eigen::Map<const Matrix<T>> in(detail::contiguous_data<T>(ref, copy), ref.rows(),
                                       ref.cols());
  check_all_finite(in, "newton_schulz: x");
  if (in.size() == 0) return Matrix<T>(in.rows(), in.cols());
  std::vector<double> partial(static_cast<std::size_t>(detail::optim_chunk_count(in.size())));
  const T* p = in.data();
  const double ss = detail::chunk_sum(
      in.size(), partial, [&](Index b, Index e) { return detail::sum_squares(p, b, e); }, false);
  const T scale = static_cast<T>(1.0 / (std::sqrt(ss) + kNsNormEps));
  NsWorkspace<T> ws;
  ws.resize(in.rows(), in.cols());
  const Matrix<T>& out = detail::newton_schulz_run(p, in.rows(), in.cols(), scale, steps, c, ws);
  return out;
}

}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_NEWTON_SCHULZ_HPP
