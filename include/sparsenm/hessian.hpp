// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/hessian/.
#ifndef SPARSENM_HESSIAN_HPP
#define SPARSENM_HESSIAN_HPP

#include "core.hpp"

#endif  // SPARSENM_HESSIAN_HPP
