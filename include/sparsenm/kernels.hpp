// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/kernels/.
#ifndef SPARSENM_KERNELS_HPP
#define SPARSENM_KERNELS_HPP

#include "core.hpp"

#endif  // SPARSENM_KERNELS_HPP
