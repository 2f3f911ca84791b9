// SPDX-License-Identifier: Apache-2.0
// Adam / AdamW with an optional mask (baselines: chtsnm App. H, CoMoLoRA branch; H.1 STE runs).
#ifndef SPARSENM_OPTIM_ADAM_HPP
#define SPARSENM_OPTIM_ADAM_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
#include "../mask/rowwise.hpp"
#include "detail/elementwise.hpp"
#include "detail/sqrt_block.hpp"
#include "nonfinite.hpp"

namespace sparsenm {

/// Adam hyperparameters (Kingma & Ba 2015; AdamW: Loshchilov & Hutter 2019).
///
/// | field                  | meaning                                                | default |
/// |------------------------|--------------------------------------------------------|---------|
/// | lr                     | step size                                              | 1e-3    |
/// | beta1, beta2           | moment decay rates                                     | 0.9, 0.999 |
/// | eps                    | denominator epsilon (added after the bias-corrected sqrt) | 1e-8 |
/// | weight_decay           | L2 (added to the gradient) or decoupled (AdamW)        | 0       |
/// | decoupled_weight_decay | AdamW: W <- (1 - lr wd) W before the Adam step         | false   |
/// | bias_correction        | divide the moments by (1 - beta^t)                     | true    |
/// | nonfinite              | reaction to NaN/Inf gradient entries                   | Throw   |
struct AdamConfig {
  double lr = 1e-3;                     ///< step size
  double beta1 = 0.9;                   ///< decay of the first moment, [0, 1)
  double beta2 = 0.999;                 ///< decay of the second moment, [0, 1)
  double eps = 1e-8;                    ///< denominator epsilon, > 0
  double weight_decay = 0.0;            ///< L2 (Adam) or decoupled (AdamW) weight decay, >= 0
  bool decoupled_weight_decay = false;  ///< AdamW: W <- (1 - lr wd) W instead of g += wd W
  bool bias_correction = true;          ///< divide by 1 - beta^t (PyTorch's arrangement)
  NonFinitePolicy nonfinite = NonFinitePolicy::Throw;  ///< reaction to NaN/Inf gradient entries
  /// N:M check of the masked step: with nm set (n >= 1), step(W, G, mask) throws sparsenm::Error
  /// unless `mask` is row-wise legal for it (a transposable mask is too). The default {0, 0}
  /// accepts any 0/1 mask (masked Adam then just freezes the entries where the mask is 0).
  NM nm{0, 0};

  /// Throws sparsenm::Error naming the first field out of its range.
  void validate() const {
    if (nm.n != 0 || nm.m != 0) check_nm(nm, "AdamConfig::nm");
    check_finite_positive(lr, "AdamConfig::lr");
    check_in_range(beta1, 0.0, 1.0, "AdamConfig::beta1", false, true);
    check_in_range(beta2, 0.0, 1.0, "AdamConfig::beta2", false, true);
    check_finite_positive(eps, "AdamConfig::eps");
    check_finite_nonnegative(weight_decay, "AdamConfig::weight_decay");
    if (decoupled_weight_decay)
      SPARSENM_CHECK(lr * weight_decay <= 1.0,
                     "AdamConfig: lr * weight_decay = ", lr * weight_decay,
                     " must be <= 1 for decoupled weight decay");
  }
};

/// Adam for one row-major parameter matrix, optionally masked. With t counted from 1:
/// \code
///   g' = g + wd W            (L2, unless decoupled)      W <- (1 - lr wd) W   (AdamW)
///   m = b1 m + (1-b1) g';  v = b2 v + (1-b2) g'^2
///   W <- W - (lr / (1-b1^t)) m / (sqrt(v) / sqrt(1-b2^t) + eps)     (PyTorch's arrangement)
/// \endcode
/// With a mask, entries where the mask is 0 are frozen: weight, m and v keep their bits. One
/// read-only pre-scan (finiteness, mask 0/1) and one fused update pass; step() allocates nothing;
/// bit-identical for any thread count.
template <class S>
class Adam {
  static_assert(std::is_floating_point<S>::value, "Adam<S>: S must be float or double");

 public:
  /// Adam for a dense (rows, cols) weight; validates `cfg`.
  Adam(Index rows, Index cols, AdamConfig cfg = {}) : m_cfg(cfg), m_rows(rows), m_cols(cols) {
    m_cfg.validate();
    SPARSENM_CHECK(rows > 0 && cols > 0, "Adam: shape ", rows, "x", cols, " must be positive");
    m_m = Matrix<S>::Zero(rows, cols);
    m_v = Matrix<S>::Zero(rows, cols);
    m_scratch.resize(rows * cols);
  }

  /// Compressed route (sparse-to-sparse training): moments for the active entries only, in the
  /// layout of `weight.values`. Adam is elementwise, so the compressed step gives bit for bit the
  /// numbers of the masked dense step on the decompressed weight. Follow a refresh with
  /// remap(result.slots).
  template <class T>
  explicit Adam(const NMCompressed<T>& weight, AdamConfig cfg = {})
      : Adam(weight.values.rows(), weight.values.cols(), cfg) {}

  /// Compressed step: `grad_values` is dW on the active entries (SparseLinear::grad_values()).
  template <class Derived>
  void step(NMCompressed<S>& weight, const Eigen::MatrixBase<Derived>& grad_values) {
    step_impl(weight.values, grad_values, nullptr);
  }

  /// After a topology refresh of the weight this Adam steps in compressed form: kept entries keep
  /// their moments, regrown ones start from zero (the step counter, and so the bias correction,
  /// is the optimizer's: a regrown entry's first update is Adam's usual first update).
  void remap(const SlotMap& slots) {
    check_shape(slots.source, m_rows, m_cols, "Adam::remap: slots");
    remap_slots<S>(m_m, slots);
    remap_slots<S>(m_v, slots);
  }

  /// Bytes of persistent optimizer state (the two moments).
  std::size_t state_bytes() const { return std::size_t(m_m.size() + m_v.size()) * sizeof(S); }

  /// Calls f(name, object) for every piece of persistent state, for checkpoints.
  template <class F>
  void visit_state(F&& f) {
    f("exp_avg", m_m);
    f("exp_avg_sq", m_v);
    f("steps", m_t);
    f("skipped", m_skipped);
  }

  /// Dense step.
  template <class Derived>
  void step(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad) {
    step_impl(weight, grad, nullptr);
  }
  /// Masked step: entries with mask 0 are frozen (weight and moments untouched). With
  /// AdamConfig::nm set, a mask that is not row-wise legal for it throws sparsenm::Error.
  template <class Derived>
  void step(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad,
            const Mask& mask) {
    check_shape(mask, m_rows, m_cols, "Adam::step: mask");
    if (m_cfg.nm.n != 0) check_rowwise_legal(mask, m_cfg.nm, "Adam::step: mask");
    step_impl(weight, grad, mask.data());
  }

  /// The settings.
  const AdamConfig& config() const { return m_cfg; }
  /// Changes the step size (finite, > 0), e.g. for a schedule.
  void set_lr(double lr) {
    check_finite_positive(lr, "Adam::set_lr: lr");
    m_cfg.lr = lr;
  }
  const Matrix<S>& exp_avg() const { return m_m; }     ///< first moment m
  const Matrix<S>& exp_avg_sq() const { return m_v; }  ///< second moment v
  long steps() const { return m_t; }                   ///< steps taken (t)
  long skipped_steps() const { return m_skipped; }     ///< steps skipped (SkipStep)
  Index rows() const { return m_rows; }                ///< rows of the weight
  Index cols() const { return m_cols; }                ///< columns (or compressed slots)

 protected:
  /// The update of the class comment; `mask` may be nullptr (dense step).
  template <class Derived>
  void step_impl(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad,
                 const std::uint8_t* mask);

  AdamConfig m_cfg;                ///< settings
  Index m_rows;                    ///< rows of the weight
  Index m_cols;                    ///< columns (or compressed slots per row)
  Matrix<S> m_m;                   ///< first moment
  Matrix<S> m_v;                   ///< second moment
  Matrix<S> m_gbuf;                ///< contiguous copy of a strided gradient
  detail::ChunkScratch m_scratch;  ///< per-chunk scratch of the pre-scan
  long m_t = 0;                    ///< steps taken
  long m_skipped = 0;              ///< steps skipped
};

/// AdamW: Adam with decoupled weight decay (default weight_decay 0.01 as in PyTorch).
template <class S>
class AdamW : public Adam<S> {
 public:
  /// AdamConfig with decoupled_weight_decay = true and weight_decay = 0.01 (PyTorch's AdamW).
  static AdamConfig defaults() {
    AdamConfig c;
    c.weight_decay = 0.01;
    c.decoupled_weight_decay = true;
    return c;
  }
  /// cfg.decoupled_weight_decay is forced to true.
  AdamW(Index rows, Index cols, AdamConfig cfg = defaults()) : Adam<S>(rows, cols, force(cfg)) {}

 private:
  static AdamConfig force(AdamConfig c) {
    c.decoupled_weight_decay = true;
    return c;
  }
};

}  // namespace sparsenm

#define SPARSENM_ISA_BODY "../../optim/detail/adam_body.inc"
#include "../core/detail/isa_passes.inc"

namespace sparsenm {

template <class S>
template <class Derived>
void Adam<S>::step_impl(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad,
                        const std::uint8_t* mask) {
  check_shape(weight, m_rows, m_cols, "Adam::step: weight");
  check_shape(grad, m_rows, m_cols, "Adam::step: grad");
  const Eigen::Ref<const Matrix<S>> gref(grad.template cast<S>());
  const S* g = detail::contiguous_data<S>(gref, m_gbuf);
  if (!detail::admit_gradient("Adam::step", g, mask, m_rows, m_cols, m_cfg.nonfinite, m_scratch)) {
    ++m_skipped;
    return;
  }
  ++m_t;
  const double bc1 = m_cfg.bias_correction ? 1.0 - std::pow(m_cfg.beta1, double(m_t)) : 1.0;
  const double bc2 = m_cfg.bias_correction ? 1.0 - std::pow(m_cfg.beta2, double(m_t)) : 1.0;
  const S step = S(m_cfg.lr / bc1), inv = S(1.0 / std::sqrt(bc2));
  const S l2 = m_cfg.decoupled_weight_decay ? S(0) : S(m_cfg.weight_decay);
  const S decay = m_cfg.decoupled_weight_decay ? S(1.0 - m_cfg.lr * m_cfg.weight_decay) : S(1);
  // 1 - beta is formed in double: float(1 - 0.999) is 1e-3 to 7 digits, 1 - float(0.999) is not.
  const S b1 = S(m_cfg.beta1), b2 = S(m_cfg.beta2), eps = S(m_cfg.eps);
  const S ob1 = S(1.0 - m_cfg.beta1), ob2 = S(1.0 - m_cfg.beta2);
  S* M = m_m.data();
  S* V = m_v.data();
  detail::for_each_weight_span<S>(weight, [&](Index b, Index e, S* w) {
    if (mask) SPARSENM_DISPATCH(adam_update<true>)
    (g, mask, M, V, w, b, e, b1, b2, ob1, ob2, step, inv, eps, l2, decay);
    else SPARSENM_DISPATCH(adam_update<false>)(g, mask, M, V, w, b, e, b1, b2, ob1, ob2, step, inv,
                                               eps, l2, decay);
  });
}

}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_ADAM_HPP
