// SPDX-License-Identifier: Apache-2.0
// STE and SR-STE helpers (chtsnm App. H.1-H.2; Zhou et al. 2021 for SR-STE).
#ifndef SPARSENM_OPTIM_STE_HPP
#define SPARSENM_OPTIM_STE_HPP

#include <cstdint>
#include <type_traits>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/project.hpp"

namespace sparsenm {

/// SR-STE gradient (chtsnm App. H.2): grad + lambda_w W . (1 - M). Active entries get the task
/// gradient unchanged; pruned entries are pulled towards zero. lambda_w = 1e-4 in chtsnm.
/// Throws for shape mismatches, a non-0/1 mask, or a negative / non-finite lambda_w.
template <class S, class DG, class DW>
Matrix<S> srste_gradient(const Eigen::MatrixBase<DG>& grad, const Eigen::MatrixBase<DW>& weight,
                         const Mask& mask, S lambda_w) {
  static_assert(std::is_floating_point<S>::value, "srste_gradient: S must be float or double");
  check_same_shape(grad, weight, "srste_gradient: grad", "weight");
  check_same_shape(grad, mask, "srste_gradient: grad", "mask");
  check_binary(mask, "srste_gradient: mask");
  check_finite_nonnegative(double(lambda_w), "srste_gradient: lambda_w");
  Matrix<S> out = grad.template cast<S>();
  const Matrix<S> w = weight.template cast<S>();
  const std::uint8_t* m = mask.data();
  S* o = out.data();
  const S* pw = w.data();
  parallel_for_chunks(out.size(), Index(1) << 15, [&](Index b, Index e) {
    for (Index i = b; i < e; ++i) o[i] += m[i] ? S(0) : lambda_w * pw[i];
  });
  return out;
}

/// STE / SR-STE configuration (chtsnm App. H.1-H.2).
struct SteConfig {
  NM nm{2, 4};                      ///< N:M pattern of the forward mask
  double lambda_w = 0.0;            ///< 0: plain STE; > 0: SR-STE (chtsnm uses 1e-4)
  Layout layout = Layout::RowWise;  ///< row-wise, or transposable (block-wise, chtsnm H.1)
  /// Throws sparsenm::Error naming the first bad field.
  void validate() const {
    check_nm(nm, "SteConfig::nm");
    check_finite_nonnegative(lambda_w, "SteConfig::lambda_w");
  }
};

/// Straight-through estimator over dense latent weights W (chtsnm App. H.1): each step the mask
/// m(W) is recomputed as the legal N:M projection of |W| (row-wise top-n per group, or the exact
/// transposable projection), the forward uses W . m(W), and the
/// dense W receives the task gradient (plus lambda_w W . (1 - m) for SR-STE). Pair it with any
/// dense optimizer (the papers use Adam):
/// \code
///   sparsenm::Ste<float> ste(out, in, cfg);  sparsenm::Adam<float> adam(out, in);
///   const Matrix<float>& Wf = ste.forward(W);          // mask from |W|, W . m
///   ... backprop through Wf -> dWf ...
///   adam.step(W, ste.backward(dWf, W));                // straight-through (+ SR-STE term)
/// \endcode
template <class S>
class Ste {
 public:
  /// Ste for a (rows, cols) weight; validates `cfg`.
  Ste(Index rows, Index cols, SteConfig cfg = {}) : m_cfg(cfg), m_rows(rows), m_cols(cols) {
    m_cfg.validate();
    check_divisible(cols, cfg.nm.m, "Ste: cols", "nm.m");
    if (cfg.layout == Layout::Transposable) check_divisible(rows, cfg.nm.m, "Ste: rows", "nm.m");
    m_forward.resize(rows, cols);
  }

  /// Recomputes the mask from |W| and returns W . m(W) (kept in the object).
  template <class Derived>
  const Matrix<S>& forward(const Eigen::MatrixBase<Derived>& weight) {
    check_shape(weight, m_rows, m_cols, "Ste::forward: weight");
    m_forward = weight.template cast<S>();
    m_mask = project(m_forward.cwiseAbs(), m_cfg.nm, m_cfg.layout);
    const std::uint8_t* m = m_mask.data();
    S* f = m_forward.data();
    for (Index i = 0; i < m_forward.size(); ++i) f[i] = m[i] ? f[i] : S(0);
    return m_forward;
  }

  /// The gradient for the dense latent weight: grad_forward (+ lambda_w W . (1 - m) for SR-STE).
  template <class DG, class DW>
  Matrix<S> backward(const Eigen::MatrixBase<DG>& grad_forward,
                     const Eigen::MatrixBase<DW>& weight) const {
    SPARSENM_CHECK(m_mask.size() == m_rows * m_cols, "Ste::backward: call forward() first");
    return srste_gradient(grad_forward, weight, m_mask, S(m_cfg.lambda_w));
  }

  /// The mask of the last forward() (empty before the first).
  const Mask& mask() const { return m_mask; }
  /// The settings.
  const SteConfig& config() const { return m_cfg; }

 private:
  SteConfig m_cfg;
  Index m_rows, m_cols;
  Matrix<S> m_forward;
  Mask m_mask;
};

}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_STE_HPP
