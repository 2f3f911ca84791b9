// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/mask/.
#ifndef SPARSENM_MASK_HPP
#define SPARSENM_MASK_HPP

#include "core.hpp"

#endif  // SPARSENM_MASK_HPP
