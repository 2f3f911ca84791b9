// SPDX-License-Identifier: Apache-2.0
// Hutchinson estimator of the Hessian diagonal (SparseForge Sec. 4.2; Hutchinson 1990, Bekas et
// al. 2007): diag(H) = E[(Hv) ⊙ v] for a Rademacher vector v, because E[v_i v_j] = δ_ij. The
// estimator keeps an exponential moving average of (Hv) ⊙ v with Adam-style bias correction, so
// diagonal() is an unbiased estimate of diag(H) from the first sample on (docs/algorithms.md,
// "Hutchinson and SparseForge").
//
// Randomness (the contract, so a user can reproduce every probe): probe number k (counted over the
// estimator's life, starting at 0) uses the stream rng.split(k) and element (i, j) of the probe is
// v(i, j) = rng.split(k).rademacher(i * cols + j), i.e. the row-major linear index is the Philox
// counter. Passing the same `rng` to every update() therefore still gives a fresh, independent
// probe each time, and the result never depends on the number of threads.
#ifndef SPARSENM_HESSIAN_HUTCHINSON_HPP
#define SPARSENM_HESSIAN_HUTCHINSON_HPP

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/philox.hpp"
#include "../core/simd.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/finite.hpp"

// Silences GCC bug 105593 false positives in AVX-512 code (see core/simd.hpp).
SPARSENM_SIMD_WARNINGS_PUSH

namespace sparsenm {

/// Online estimate of the diagonal of a Hessian H (shaped like a weight matrix) from Hessian-vector
/// products, as an EMA of Hutchinson samples (Hv) ⊙ v with Rademacher v.
///
/// Update rule (one call of `update(hvp, rng, probes)`, t = number of updates so far, including
/// this one, β = `ema`):
///   x_t  = (1/P) Σ_{p=1..P} (H v_p) ⊙ v_p          (P = probes, independent Rademacher v_p)
///   e_t  = β e_{t-1} + (1 − β) x_t,  e_0 = 0
///   diag = e_t / (1 − β^t)                           (bias correction: E[diag] = diag(H))
/// `ema = 0` keeps only the last update's samples. Before the first update diagonal() is all ones,
/// as in the SparseForge release ("H initialised to 1 so early OBD scores are magnitude-like").
///
/// Variance: Var[((Hv) ⊙ v)_i] = Σ_{j≠i} H_ij², so a diagonal H is recovered exactly by one probe,
/// and the error of the P-probe mean falls like 1/sqrt(P).
///
/// Non-finite values: if the user's hvp returns a matrix with a NaN or Inf entry (or the wrong
/// shape), update() throws sparsenm::Error naming the entry and leaves the estimate unchanged.
template <class S>
class HutchinsonDiagonal {
  static_assert(std::is_floating_point<S>::value,
                "HutchinsonDiagonal<S>: S must be float or double");

 public:
  /// rows x cols = the weight's shape (>= 1 each); ema = β in [0, 1) (reference default 0.99).
  HutchinsonDiagonal(Index rows, Index cols, double ema = 0.99);

  /// Draws `probes` (>= 1) Rademacher vectors from `rng` (see the file comment for the exact
  /// counters), calls hvp(v) for each and folds their mean into the EMA. The callable takes a
  /// rows x cols matrix of S and returns one (or anything convertible to it).
  template <class Hvp>
  void update(Hvp&& hvp, const Philox& rng, int probes = 1);

  /// Bias-corrected estimate of diag(H), shaped rows x cols (all ones before the first update).
  const Matrix<S>& diagonal() const { return m_diag; }

  /// Rademacher probes drawn so far (sum of `probes` over all updates).
  long samples() const { return m_samples; }

  /// update() calls so far.
  long updates() const { return m_updates; }

  double ema() const { return m_ema_decay; }    ///< the EMA decay β
  Index rows() const { return m_diag.rows(); }  ///< rows of the weight
  Index cols() const { return m_diag.cols(); }  ///< columns of the weight

  /// Forgets every sample (diagonal() back to ones, counters to 0).
  void reset();

  /// The probe the estimator draws as sample number `k` (for tests and for users who reproduce a
  /// probe outside the estimator): v(i, j) = rng.split(k).rademacher(i * cols + j). v keeps its
  /// shape (size it to the weight first); every entry is overwritten.
  static void rademacher_probe(const Philox& rng, long k, Matrix<S>& v);

 private:
  double m_ema_decay;
  double m_decay_pow = 1.0;  // β^t, for the bias correction
  long m_samples = 0;
  long m_updates = 0;
  Matrix<S> m_ema;   // e_t
  Matrix<S> m_diag;  // e_t / (1 − β^t)
  Matrix<S> m_v;     // current probe (handed to hvp by const reference)
  Matrix<S> m_acc;   // Σ_p (H v_p) ⊙ v_p for multi-probe updates
};

namespace detail {
namespace scalar {

/// Reference fill: out[k] = ±1 from rng.bits(k) & 1 (Philox::rademacher), k in [begin, end).
template <class S>
inline void fill_rademacher(const Philox& rng, S* out, Index begin, Index end) {
  for (Index k = begin; k < end; ++k) out[k] = S(rng.rademacher(std::uint64_t(k)));
}

}  // namespace scalar

}  // namespace detail
}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../hessian/hutchinson_body.inc"
#include "../core/detail/isa_passes.inc"

namespace sparsenm {
namespace detail {

/// Entries per parallel chunk for element-wise passes (a multiple of 32 keeps SIMD blocks whole).
inline constexpr Index kHessianGrain = Index(1) << 14;

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Implementation

template <class S>
HutchinsonDiagonal<S>::HutchinsonDiagonal(Index rows, Index cols, double ema) : m_ema_decay(ema) {
  check_at_least(rows, 1, "HutchinsonDiagonal: rows");
  check_at_least(cols, 1, "HutchinsonDiagonal: cols");
  check_in_range(ema, 0.0, 1.0, "HutchinsonDiagonal: ema", false, true);
  m_ema.setZero(rows, cols);
  m_diag.setOnes(rows, cols);
  m_v.resize(rows, cols);
}

template <class S>
void HutchinsonDiagonal<S>::reset() {
  m_decay_pow = 1.0;
  m_samples = 0;
  m_updates = 0;
  m_ema.setZero();
  m_diag.setOnes();
}

template <class S>
void HutchinsonDiagonal<S>::rademacher_probe(const Philox& rng, long k, Matrix<S>& v) {
  SPARSENM_CHECK(k >= 0, "HutchinsonDiagonal::rademacher_probe: k = ", k, " must be >= 0");
  const Philox stream = rng.split(std::uint64_t(k));
  S* out = v.data();
  parallel_for_chunks(v.size(), detail::kHessianGrain, [&](Index b, Index e) {
    SPARSENM_DISPATCH(fill_rademacher)(stream, out, b, e);
  });
}

namespace detail {

/// Calls hvp(v) and hands the result to f as a `const Matrix<S>&` without a copy when the callable
/// already returns a Matrix<S> (by value or by reference); any other return type (an Eigen
/// expression, another storage order) is evaluated into a Matrix<S> first.
template <class S, class Hvp, class F>
void with_hvp_result(Hvp& hvp, const Matrix<S>& v, F&& f) {
  using R = decltype(hvp(v));
  if constexpr (std::is_same<std::decay_t<R>, Matrix<S>>::value) {
    auto&& hv = hvp(v);
    f(static_cast<const Matrix<S>&>(hv));
  } else {
    const Matrix<S> hv = hvp(v);
    f(hv);
  }
}

}  // namespace detail

template <class S>
template <class Hvp>
void HutchinsonDiagonal<S>::update(Hvp&& hvp, const Philox& rng, int probes) {
  check_at_least(probes, 1, "HutchinsonDiagonal::update: probes");
  const Index n = m_diag.size();
  const double pow_next = m_decay_pow * m_ema_decay;
  const S beta = S(m_ema_decay);
  const S corr = S(1.0 / (1.0 - pow_next));  // bias correction 1 / (1 − β^t)
  for (int p = 0; p < probes; ++p) {
    rademacher_probe(rng, m_samples + p, m_v);
    detail::with_hvp_result<S>(hvp, m_v, [&](const Matrix<S>& hv) {
      SPARSENM_CHECK(hv.rows() == m_v.rows() && hv.cols() == m_v.cols(),
                     "HutchinsonDiagonal::update: hvp(v) returned ", hv.rows(), "x", hv.cols(),
                     " but the weight is ", m_v.rows(), "x", m_v.cols());
      // Checked before any state changes, so a throwing update leaves the estimate as it was.
      detail::check_all_finite_fast(hv, "HutchinsonDiagonal::update: hvp(v)");
      const S* h = hv.data();
      const S* v = m_v.data();
      if (probes == 1) {
        // Fused single-probe path: e ← β e + (1 − β) (Hv ⊙ v); diag ← e / (1 − β^t).
        const S one_minus = S(1.0 - m_ema_decay);
        S* e = m_ema.data();
        S* d = m_diag.data();
        parallel_for_chunks(n, detail::kHessianGrain, [&](Index b, Index end) {
          for (Index i = b; i < end; ++i) {
            const S ei = beta * e[i] + one_minus * (h[i] * v[i]);
            e[i] = ei;
            d[i] = ei * corr;
          }
        });
        return;
      }
      if (p == 0) m_acc.resize(m_v.rows(), m_v.cols());
      S* a = m_acc.data();
      const bool first = p == 0;
      parallel_for_chunks(n, detail::kHessianGrain, [&](Index b, Index end) {
        if (first) {
          for (Index i = b; i < end; ++i) a[i] = h[i] * v[i];
        } else {
          for (Index i = b; i < end; ++i) a[i] += h[i] * v[i];
        }
      });
    });
  }
  if (probes > 1) {
    // Fold the mean of the P samples into the EMA (state untouched until here).
    const S w = S((1.0 - m_ema_decay) / probes);
    const S* a = m_acc.data();
    S* e = m_ema.data();
    S* d = m_diag.data();
    parallel_for_chunks(n, detail::kHessianGrain, [&](Index b, Index end) {
      for (Index i = b; i < end; ++i) {
        const S ei = beta * e[i] + w * a[i];
        e[i] = ei;
        d[i] = ei * corr;
      }
    });
  }
  m_decay_pow = pow_next;
  m_samples += probes;
  ++m_updates;
}

}  // namespace sparsenm

SPARSENM_SIMD_WARNINGS_POP

#endif  // SPARSENM_HESSIAN_HUTCHINSON_HPP
