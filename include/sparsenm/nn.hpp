// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/nn/.
#ifndef SPARSENM_NN_HPP
#define SPARSENM_NN_HPP

#include "core.hpp"

#endif  // SPARSENM_NN_HPP
