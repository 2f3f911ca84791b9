// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/sampling/.
#ifndef SPARSENM_SAMPLING_HPP
#define SPARSENM_SAMPLING_HPP

#include "core.hpp"
#include "sampling/frechet.hpp"
#include "sampling/gumbel.hpp"

#endif  // SPARSENM_SAMPLING_HPP
