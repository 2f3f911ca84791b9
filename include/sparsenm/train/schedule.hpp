// SPDX-License-Identifier: Apache-2.0
// The learning-rate schedule of the papers' LLaMA runs (CHTsNM App. H: linear warm-up, then
// cosine decay; warm-up 1,000 of 10,000 steps): lr rises linearly from peak / warmup to peak over
// the first `warmup` steps, then follows a half cosine from peak down to min_ratio · peak at
// `total`.
#ifndef SPARSENM_TRAIN_SCHEDULE_HPP
#define SPARSENM_TRAIN_SCHEDULE_HPP

#include <cmath>

#include "../core/error.hpp"
#include "../core/validate.hpp"

namespace sparsenm {

/// Linear warm-up + cosine decay. Steps count from 1:
///   lr(s) = peak · s / warmup                                    for s <= warmup,
///   lr(s) = peak · (m + (1 − m) · (1 + cos(π (s − warmup) / (total − warmup))) / 2)  after,
/// m = min_ratio. Aggregate-initialise the fields, then validate().
struct WarmupCosine {
  double peak = 1e-3;      ///< largest lr, at step `warmup` (warmup = 0: lr(1) just below it)
  long warmup = 0;         ///< steps of linear warm-up (0: none)
  long total = 1;          ///< last step; lr(total) = min_ratio · peak
  double min_ratio = 0.1;  ///< final lr / peak

  /// Throws sparsenm::Error naming the first bad field.
  void validate() const {
    check_finite_positive(peak, "WarmupCosine::peak");
    check_at_least(total, 1, "WarmupCosine::total");
    SPARSENM_CHECK(warmup >= 0 && warmup <= total, "WarmupCosine::warmup = ", warmup,
                   " must be in [0, total = ", total, "]");
    check_in_range(min_ratio, 0.0, 1.0, "WarmupCosine::min_ratio");
  }
  /// The step size at `step` (1-based; clamped to [1, total]).
  double operator()(long step) const {
    step = step < 1 ? 1 : (step > total ? total : step);
    if (step <= warmup) return peak * double(step) / double(warmup);
    const long span = total - warmup;
    const double progress = span > 0 ? double(step - warmup) / double(span) : 1.0;
    const double pi = 3.14159265358979323846;
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + std::cos(pi * progress)));
  }
};

}  // namespace sparsenm

#endif  // SPARSENM_TRAIN_SCHEDULE_HPP
