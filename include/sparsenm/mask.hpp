// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/mask/.
#ifndef SPARSENM_MASK_HPP
#define SPARSENM_MASK_HPP

#include "core.hpp"
#include "mask/patterns.hpp"
#include "mask/rowwise.hpp"
#include "mask/transposable.hpp"
#include "mask/project.hpp"
#include "mask/families.hpp"
#include "mask/stats.hpp"
#include "mask/compress.hpp"
#include "mask/nvidia_metadata.hpp"

#endif  // SPARSENM_MASK_HPP
