// SPDX-License-Identifier: Apache-2.0
// What an optimizer does when a gradient holds NaN or Inf. The default throws before any state or
// weight is touched, so a bad gradient never silently corrupts a model; SkipStep leaves weights and
// optimizer state bit-for-bit unchanged, does not count the step, and increments skipped_steps().
#ifndef SPARSENM_OPTIM_NONFINITE_HPP
#define SPARSENM_OPTIM_NONFINITE_HPP

namespace sparsenm {

/// Reaction of every optimizer in optim/ to a non-finite gradient entry.
enum class NonFinitePolicy {
  Throw,    ///< throw sparsenm::Error naming the first offending entry (default)
  SkipStep  ///< skip the whole step: weights, moments and step counters stay as they are
};

inline const char* to_string(NonFinitePolicy p) {
  return p == NonFinitePolicy::Throw ? "throw" : "skip_step";
}

}  // namespace sparsenm

#endif  // SPARSENM_OPTIM_NONFINITE_HPP
