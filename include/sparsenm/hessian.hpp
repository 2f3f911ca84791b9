// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/hessian/: Hutchinson Hessian-diagonal estimator, Hessian-vector
// products without autodiff, OBD scores and SparseForge soft-mask annealing.
#ifndef SPARSENM_HESSIAN_HPP
#define SPARSENM_HESSIAN_HPP

#include "core.hpp"
#include "hessian/hutchinson.hpp"
#include "hessian/hvp.hpp"
#include "hessian/obd.hpp"
#include "hessian/soft_mask.hpp"

#endif  // SPARSENM_HESSIAN_HPP
