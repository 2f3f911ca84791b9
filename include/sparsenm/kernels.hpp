// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/kernels/.
#ifndef SPARSENM_KERNELS_HPP
#define SPARSENM_KERNELS_HPP

#include "core.hpp"
#include "mask.hpp"
#include "kernels/packed_tokens.hpp"
#include "kernels/transposed_weight.hpp"
#include "kernels/spmm.hpp"
#include "kernels/sddmm.hpp"

#endif  // SPARSENM_KERNELS_HPP
