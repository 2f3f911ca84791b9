// SPDX-License-Identifier: Apache-2.0
// Muon (Keller Jordan et al. 2024): momentum + Newton-Schulz orthogonalisation; the dense
// matrix-geometry baseline of chtsnm App. J (Table A9).
#ifndef SPARSENM_OPTIM_MUON_HPP
#define SPARSENM_OPTIM_MUON_HPP

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/elementwise.hpp"
#include "newton_schulz.hpp"
#include "nonfinite.hpp"

namespace sparsenm {

/// Muon hyperparameters (ALGORITHMS.md "Muon (baseline)").
///
/// | field        | meaning                                                  | default |
/// |--------------|----------------------------------------------------------|---------|
/// | lr           | step size                                                | 0.02    |
/// | momentum     | beta of m = beta m + (1 - beta) g                        | 0.95    |
/// | nesterov     | update (1 - beta) g + beta m instead of m                | true    |
/// | weight_decay | decoupled: W <- (1 - lr wd) W                            | 0       |
/// | ns_steps     | Newton-Schulz steps                                      | 5       |
/// | coefficients | NS schedule                                              | Muon (3.4445,
/// -4.7750, 2.0315) | | nonfinite    | reaction to NaN/Inf gradient entries                     |
/// Throw   |
struct MuonConfig {
  double lr = 0.02, momentum = 0.95;
  bool nesterov = true;
  double weight_decay = 0.0;
  int ns_steps = 5;
  NsCoefficients coefficients = NsCoefficients::Muon;
  NonFinitePolicy nonfinite = NonFinitePolicy::Throw;

  void validate() const {
    check_finite_positive(lr, "MuonConfig::lr");
    check_in_range(momentum, 0.0, 1.0, "MuonConfig::momentum", false, true);
    check_finite_nonnegative(weight_decay, "MuonConfig::weight_decay");
    SPARSENM_CHECK(lr * weight_decay <= 1.0, "MuonConfig: lr * weight_decay = ", lr * weight_decay,
                   " must be <= 1");
    check_in_range(ns_steps, 0, 1000, "MuonConfig::ns_steps");
  }
};

/// Muon on one row-major (out, in) weight:
/// \code
///   m = beta m + (1-beta) g;  u = nesterov ? (1-beta) g + beta m : m
///   O = NS_K(u / (||u||_F + 1e-7));  W <- (1 - lr wd) W - lr max(1, rows/cols)^0.5 O
/// \endcode
/// With a mask, g and u are masked, and W entries with mask 0 are frozen (the orthogonalised
/// update is projected to the mask; this is the "Muon on a sparse backbone" baseline, without
/// TANS's RMS matching and ramp). step() allocates nothing; deterministic for any thread count.
template <class S>
class Muon {
  static_assert(std::is_floating_point<S>::value, "Muon<S>: S must be float or double");

 public:
  Muon(Index rows, Index cols, MuonConfig cfg = {}) : m_cfg(cfg), m_rows(rows), m_cols(cols) {
    m_cfg.validate();
    SPARSENM_CHECK(rows > 0 && cols > 0, "Muon: shape ", rows, "x", cols, " must be positive");
    m_m = Matrix<S>::Zero(rows, cols);
    m_u = Matrix<S>::Zero(rows, cols);
    m_ws.resize(rows, cols);
    m_scratch.resize(rows * cols);
  }

  template <class Derived>
  void step(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad) {
    step_impl(weight, grad, nullptr);
  }
  template <class Derived>
  void step(Eigen::Ref<Matrix<S>> weight, const Eigen::MatrixBase<Derived>& grad,
            const Mask& mask) {
    check_shape(mask, m_rows, m_cols, "Muon::step: mask");
    step_impl(weight, grad, mask.data());
  }

  const MuonConfig& config() const { return m_cfg; }
  void set_lr(double lr) {
    check_finite_positive(lr, "Muon::set_lr: lr");
    m_cfg.lr = lr;
  }
  const Matrix<S>& momentum_buffer() const { return m_m; }
  long steps() const { return m_t; }
  long skipped_steps() const { return m_skipped; }

 private:
  template <class Derived>
  void step_impl(Eigen::Ref<Matrix<S>>& weight, const Eigen::MatrixBase<Derived>& grad,
                 const std::uint8_t* mask);

  MuonConfig m_cfg;
  Index m_rows, m_cols;
  Matrix<S> m_m, m_u, m_gbuf;
  NsWorkspace<S> m_ws;
  detail::ChunkScratch m_scratch;
  long m_t = 0, m_skipped = 0;
};

template <class S>
template <class Derived>
void Muon<S>::step_impl(Eigen::Ref<Matrix<S>>& weight, const Eigen::MatrixBase<Derived>& grad,
                        const std::uint8_t* mask) {
  check_shape(weight, m_rows, m_cols, "Muon::step: weight");
  check_shape(grad, m_rows, m_cols, "Muon::step: grad");
  const Eigen::Ref<const Matrix<S>> gref(grad.template cast<S>());
  const S* g = detail::contiguous_data<S>(gref, m_gbuf);
  const bool par = m_rows * m_cols > detail::kSerialAfterBlas;  // see kSerialAfterBlas
  if (!detail::admit_gradient("Muon::step", g, mask, m_rows, m_cols, m_cfg.nonfinite, m_scratch,
                              nullptr, par)) {
    ++m_skipped;
    return;
  }
  ++m_t;
  const Index n = m_rows * m_cols;
  const S beta = S(m_cfg.momentum), ob = S(1.0 - m_cfg.momentum);
  const bool nest = m_cfg.nesterov;
  S* M = m_m.data();
  S* U = m_u.data();
  const double ss = detail::chunk_sum(
      n, m_scratch.a,
      [&](Index b, Index e) {
        S acc[detail::kLanes] = {};
        auto one = [&](Index i, S& a) {
          const S gm = (mask && !mask[i]) ? S(0) : g[i];
          const S mn = beta * M[i] + ob * gm;
          const S u = nest ? ob * gm + beta * mn : mn;
          M[i] = mn;
          U[i] = (mask && !mask[i]) ? S(0) : u;
          a += U[i] * U[i];
        };
        Index i = b;
        for (; i + detail::kLanes <= e; i += detail::kLanes)
          for (int l = 0; l < detail::kLanes; ++l) one(i + l, acc[l]);
        for (; i < e; ++i) one(i, acc[0]);
        double s = 0;
        for (int l = 0; l < detail::kLanes; ++l) s += double(acc[l]);
        return s;
      },
      par);
  const S scale = S(1.0 / (std::sqrt(ss) + kNsNormEps));
  const Matrix<S>& Om =
      detail::newton_schulz_run(U, m_rows, m_cols, scale, m_cfg.ns_steps, m_cfg.coefficients, m_ws);
  const S* O = Om.data();
  const S lr_eff = S(m_cfg.lr * std::sqrt(std::max(1.0, double(m_rows) / double(m_cols))));
  const S decay = S(1.0 - m_cfg.lr * m_cfg.weight_decay);
  detail::for_each_weight_span<S>(
      weight,
      [&](Index b, Index e, S* w) {
        for (Index i = b; i < e; ++i) {
          const S wo = w[i - b];
          const S wn = decay * wo - lr_eff * O[i];
          w[i - b] = (mask && !mask[i]) ? wo : wn;
        }
      },
      detail::parallel_after_ns(par));
}

}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_MUON_HPP
