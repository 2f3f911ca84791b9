// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/optim/.
#ifndef SPARSENM_OPTIM_HPP
#define SPARSENM_OPTIM_HPP

#include "core.hpp"

#endif  // SPARSENM_OPTIM_HPP
