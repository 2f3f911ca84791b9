// SPDX-License-Identifier: Apache-2.0
// Umbrella header: everything except the CUDA backend (include <sparsenm/cuda.cuh> for that).
// The layers follow a training step: core -> mask -> kernels -> sampling -> topology -> optim ->
// hessian -> nn -> train; io needs only core and mask.
#ifndef SPARSENM_SPARSENM_HPP
#define SPARSENM_SPARSENM_HPP

#include "core.hpp"
#include "mask.hpp"
#include "kernels.hpp"
#include "sampling.hpp"
#include "topology.hpp"
#include "optim.hpp"
#include "hessian.hpp"
#include "nn.hpp"
#include "train.hpp"
#include "io.hpp"

#endif  // SPARSENM_SPARSENM_HPP
