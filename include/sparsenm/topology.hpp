// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/topology/.
#ifndef SPARSENM_TOPOLOGY_HPP
#define SPARSENM_TOPOLOGY_HPP

#include "core.hpp"
#include "topology/ch_scores.hpp"
#include "topology/refresh.hpp"

#endif  // SPARSENM_TOPOLOGY_HPP
