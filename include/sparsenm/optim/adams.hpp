// SPDX-License-Identifier: Apache-2.0
// AdamS with learnable weight scaling (CAST, arXiv 2509.25996, Algorithm 1; chtsnm App. H.3).
#ifndef SPARSENM_OPTIM_ADAMS_HPP
#define SPARSENM_OPTIM_ADAMS_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/rowwise.hpp"
#include "detail/elementwise.hpp"
#include "detail/sqrt_block.hpp"
#include "nonfinite.hpp"

namespace sparsenm {

// clang-format off
/// AdamS hyperparameters (docs/algorithms.md "AdamS and weight scaling").
///
/// | field          | meaning                                                   | default    | source      |
/// |----------------|-----------------------------------------------------------|------------|-------------|
/// | lr             | step size                                                 | 1e-3       | chtsnm H    |
/// | beta1, beta2   | moment decay rates                                        | 0.9, 0.999 | CAST Alg. 1 |
/// | eps            | denominator epsilon                                       | 1e-8       | CAST Alg. 1 |
/// | lambda         | proportional L1 decay strength on pruned coordinates      | 2e-4       | chtsnm H.3  |
/// | total_steps    | T of alpha_t = t / T (t = 0 .. T-1; alpha = 1 afterwards) | 10000      | chtsnm H    |
/// | mask_interval  | recompute the magnitude top-n mask every this many steps  | 10         | CAST, H.3   |
/// | nm             | N:M pattern of the mask (row-wise)                        | {2, 4}     | CAST        |
/// | scaling_groups | column blocks per row of the learnable scaling (0 = off)  | 2          | chtsnm H.3  |
/// | scaling_lr     | Adam step size of the scaling factors                     | 1e-3       | -           |
/// | nonfinite      | reaction to NaN/Inf gradient entries                      | Throw      | -           |
// clang-format on
struct AdamSConfig {
  double lr = 1e-3;          ///< step size
  double beta1 = 0.9;        ///< first-moment decay
  double beta2 = 0.999;      ///< second-moment decay
  double eps = 1e-8;         ///< denominator epsilon
  double lambda = 2e-4;      ///< proportional L1 decay strength on pruned coordinates
  long total_steps = 10000;  ///< T of alpha_t = t / T
  int mask_interval = 10;    ///< recompute the magnitude mask every this many steps
  NM nm{2, 4};               ///< N:M pattern of the mask (row-wise)
  int scaling_groups = 2;    ///< column blocks per row of the learnable scaling (0 = off)
  double scaling_lr = 1e-3;  ///< Adam step size of the scaling factors
  NonFinitePolicy nonfinite = NonFinitePolicy::Throw;  ///< reaction to NaN/Inf gradient entries

  /// Throws sparsenm::Error naming the first field out of its range.
  void validate() const {
    check_finite_positive(lr, "AdamSConfig::lr");
    check_in_range(beta1, 0.0, 1.0, "AdamSConfig::beta1", false, true);
    check_in_range(beta2, 0.0, 1.0, "AdamSConfig::beta2", false, true);
    check_finite_positive(eps, "AdamSConfig::eps");
    check_finite_nonnegative(lambda, "AdamSConfig::lambda");
    check_at_least(total_steps, 1, "AdamSConfig::total_steps");
    check_at_least(mask_interval, 1, "AdamSConfig::mask_interval");
    check_nm(nm, "AdamSConfig::nm");
    check_at_least(scaling_groups, 0, "AdamSConfig::scaling_groups");
    check_finite_positive(scaling_lr, "AdamSConfig::scaling_lr");
  }
};

/// AdamS (CAST Algorithm 1) for one dense-forward (out, in) weight Theta with per-row, per-block
/// learnable scaling A (rows x G, init 1; the forward weight is W = Theta . A expanded over G
/// contiguous column blocks). With t counted from 1 and the current mask M:
/// \code
///   g      = dL/dW . A;   dL/dA(r, b) = sum_{j in block b} dL/dW(r, j) Theta(r, j)
///   mu     = b1 mu + (1-b1) g                              (raw gradient, never overwritten)
///   alpha  = min(1, (t-1) / T)
///   mu~    = M ? mu : (1-alpha) mu + alpha lambda sign(Theta_{t-1})     (sign(0) = 0)
///   v      = b2 v + (1-b2) mu~^2
///   Theta <- Theta - lr (mu~ / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
/// \endcode
/// A is updated by plain Adam (scaling_lr, same betas and eps). The mask is the row-wise magnitude
/// top-n of the scaled weight |Theta . A|, recomputed before every step whose 0-based index is a
/// multiple of mask_interval (so before the first step). The forward stays dense during training;
/// finalize() folds the scaling into Theta, computes the final legal mask from the scaled weight
/// and zeroes the rest (chtsnm H.3 finalisation). step() allocates only when the mask is
/// recomputed; results are bit-identical for any thread count (row-parallel, fixed order).
/// The first step moves by about lr * 10 (v is built from mu~^2, CAST Alg. 1): expected.
/// No compressed route (unlike Adam, Tans, Muon): AdamS is dense-to-sparse by design, every latent
/// weight keeps moving (the inactive ones decay toward 0 through lambda sign(Theta)) and may enter
/// the mask at the next recomputation, so Theta, mu, v and the gradient are dense (out, in).
template <class S>
class AdamS {
  static_assert(std::is_floating_point<S>::value, "AdamS<S>: S must be float or double");

 public:
  /// AdamS for a (rows, cols) latent weight; validates `cfg`.
  AdamS(Index rows, Index cols, AdamSConfig cfg = {}) : m_cfg(cfg), m_rows(rows), m_cols(cols) {
    m_cfg.validate();
    SPARSENM_CHECK(rows > 0 && cols > 0, "AdamS: shape ", rows, "x", cols, " must be positive");
    check_divisible(cols, cfg.nm.m, "AdamS: cols", "nm.m");
    if (cfg.scaling_groups > 0)
      check_divisible(cols, cfg.scaling_groups, "AdamS: cols", "scaling_groups");
    m_mu = Matrix<S>::Zero(rows, cols);
    m_v = Matrix<S>::Zero(rows, cols);
    m_scores.resize(rows, cols);
    const Index G = std::max(cfg.scaling_groups, 1);
    m_scale = Matrix<S>::Ones(rows, G);
    m_scale_grad = Matrix<S>::Zero(rows, G);
    m_scale_m = Matrix<S>::Zero(rows, G);
    m_scale_v = Matrix<S>::Zero(rows, G);
    m_scratch.resize(rows * cols);
  }

  /// One step. `grad` is the gradient with respect to the forward weight scaled_weight(weight)
  /// (with scaling_groups = 0: with respect to weight itself).
  template <class Derived>
  void step(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad);

  /// The forward weight Theta . A (dense; what the model multiplies with during training).
  template <class Derived>
  Matrix<S> scaled_weight(const Eigen::MatrixBase<Derived>& weight) const {
    check_shape(weight, m_rows, m_cols, "AdamS::scaled_weight: weight");
    Matrix<S> out = weight.template cast<S>();
    if (m_cfg.scaling_groups == 0) return out;
    const Index bw = m_cols / m_cfg.scaling_groups;
    for (Index r = 0; r < m_rows; ++r)
      for (int b = 0; b < m_cfg.scaling_groups; ++b)
        out.row(r).segment(b * bw, bw) *= m_scale(r, b);
    return out;
  }

  /// Theta <- Theta . A, A <- 1 (and its moments reset): the forward weight is unchanged.
  void fold_scaling(Eigen::Ref<Matrix<S>> weight) {
    check_shape(weight, m_rows, m_cols, "AdamS::fold_scaling: weight");
    if (m_cfg.scaling_groups > 0) {
      const Index bw = m_cols / m_cfg.scaling_groups;
      for (Index r = 0; r < m_rows; ++r)
        for (int b = 0; b < m_cfg.scaling_groups; ++b)
          weight.row(r).segment(b * bw, bw) *= m_scale(r, b);
    }
    m_scale.setOnes();
    m_scale_m.setZero();
    m_scale_v.setZero();
  }

  /// Final hard projection: fold_scaling(), then the legal row-wise N:M mask of |Theta| (= the
  /// scaled weight), zero the pruned entries; returns that mask (chtsnm H.3).
  Mask finalize(Eigen::Ref<Matrix<S>> weight) {
    fold_scaling(weight);
    m_mask = project_rowwise(weight.cwiseAbs(), m_cfg.nm);
    for (Index r = 0; r < m_rows; ++r)
      for (Index c = 0; c < m_cols; ++c)
        if (!m_mask(r, c)) weight(r, c) = S(0);
    return m_mask;
  }

  const Mask& mask() const { return m_mask; }           ///< current mask (empty before step 1)
  const Matrix<S>& scaling() const { return m_scale; }  ///< A (rows x max(1, G))
  const Matrix<S>& scaling_gradient() const { return m_scale_grad; }  ///< dL/dA of the last step
  const Matrix<S>& exp_avg() const { return m_mu; }                   ///< first moment mu
  const Matrix<S>& exp_avg_sq() const { return m_v; }                 ///< second moment v
  const AdamSConfig& config() const { return m_cfg; }                 ///< the settings
  /// Changes the step size (finite, > 0), e.g. for a schedule.
  void set_lr(double lr) {
    check_finite_positive(lr, "AdamS::set_lr: lr");
    m_cfg.lr = lr;
  }
  long steps() const { return m_t; }                ///< steps taken (t)
  long skipped_steps() const { return m_skipped; }  ///< steps skipped (SkipStep)
  /// alpha used by the next step: min(1, t / T) with t = steps().
  double next_alpha() const { return std::min(1.0, double(m_t) / double(m_cfg.total_steps)); }

 private:
  AdamSConfig m_cfg;
  Index m_rows, m_cols;
  Matrix<S> m_mu, m_v, m_scores, m_gbuf;
  Matrix<S> m_scale, m_scale_grad, m_scale_m, m_scale_v;
  Mask m_mask;
  detail::ChunkScratch m_scratch;
  long m_t = 0, m_skipped = 0;
};

}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../optim/detail/adams_body.inc"
#include "../core/detail/isa_passes.inc"

namespace sparsenm {

template <class S>
template <class Derived>
void AdamS<S>::step(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad) {
  check_shape(weight, m_rows, m_cols, "AdamS::step: weight");
  check_shape(grad, m_rows, m_cols, "AdamS::step: grad");
  const Eigen::Ref<const Matrix<S>> gref(grad.template cast<S>());
  const S* g = detail::contiguous_data<S>(gref, m_gbuf);
  if (!detail::admit_gradient("AdamS::step", g, static_cast<const std::uint8_t*>(nullptr), m_rows,
                              m_cols, m_cfg.nonfinite, m_scratch)) {
    ++m_skipped;
    return;
  }
  const int G = m_cfg.scaling_groups;
  if (m_t % m_cfg.mask_interval == 0) {
    // Magnitude top-n of the scaled weight, recomputed before the step (CAST: every 10 steps).
    const Index bw = G > 0 ? m_cols / G : m_cols;
    detail::for_each_row(m_rows, m_cols, [&](Index r) {
      for (Index c = 0; c < m_cols; ++c)
        m_scores(r, c) = std::abs(weight(r, c) * (G > 0 ? m_scale(r, c / bw) : S(1)));
    });
    m_mask = project_rowwise(m_scores, m_cfg.nm);
  }
  const double alpha = next_alpha();
  ++m_t;
  const double bc1 = 1.0 - std::pow(m_cfg.beta1, double(m_t));
  const double bc2 = 1.0 - std::pow(m_cfg.beta2, double(m_t));
  // 1 - beta is formed in double (see Adam).
  const S b1 = S(m_cfg.beta1), b2 = S(m_cfg.beta2), eps = S(m_cfg.eps);
  const S ob1 = S(1.0 - m_cfg.beta1), ob2 = S(1.0 - m_cfg.beta2);
  const S step = S(m_cfg.lr / bc1), inv = S(1.0 / std::sqrt(bc2));
  const S al = S(alpha), lam = S(m_cfg.lambda);
  const Index blocks = G > 0 ? G : 1;
  const Index bw = m_cols / blocks;
  const Index stride = weight.outerStride();
  S* W = weight.data();
  detail::for_each_row(m_rows, m_cols, [&](Index r) {
    for (Index b = 0; b < blocks; ++b) {
      const Index o = r * m_cols + b * bw;
      const S a = G > 0 ? m_scale(r, b) : S(1);
      const double ga = SPARSENM_DISPATCH(adams_block)(
          g + o, m_mask.data() + o, m_mu.data() + o, m_v.data() + o, W + r * stride + b * bw, bw, a,
          b1, b2, ob1, ob2, al, lam, step, inv, eps);
      m_scale_grad(r, b) = S(ga);
    }
  });
  if (G > 0) {
    // Plain Adam on the scaling factors (same t, betas, eps; step size scaling_lr).
    const S sstep = S(m_cfg.scaling_lr / bc1);
    for (Index i = 0; i < m_scale.size(); ++i) {
      const S gg = m_scale_grad.data()[i];
      S& m = m_scale_m.data()[i];
      S& v = m_scale_v.data()[i];
      m = b1 * m + ob1 * gg;
      v = b2 * v + ob2 * gg * gg;
      m_scale.data()[i] -= sstep * m / (std::sqrt(v) * inv + eps);
    }
  }
}

}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_ADAMS_HPP
