// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/train/.
#ifndef SPARSENM_TRAIN_HPP
#define SPARSENM_TRAIN_HPP

#include "core.hpp"

#endif  // SPARSENM_TRAIN_HPP
