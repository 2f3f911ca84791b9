// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/nn/.
#ifndef SPARSENM_NN_HPP
#define SPARSENM_NN_HPP

#include "core.hpp"
#include "mask.hpp"
#include "kernels.hpp"
#include "nn/sparse_linear.hpp"
#include "nn/embedding.hpp"
#include "nn/rmsnorm.hpp"
#include "nn/rope.hpp"
#include "nn/attention.hpp"
#include "nn/swiglu.hpp"
#include "nn/comolora.hpp"
#include "nn/checkpoint.hpp"
#include "nn/sparse_trainer.hpp"

#endif  // SPARSENM_NN_HPP
