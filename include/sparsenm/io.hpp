// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/io/: .npy and .safetensors readers and writers.
#ifndef SPARSENM_IO_HPP
#define SPARSENM_IO_HPP

#include "core.hpp"
#include "io/tensor.hpp"
#include "io/npy.hpp"
#include "io/safetensors.hpp"
#include "io/compressed_export.hpp"

#endif  // SPARSENM_IO_HPP
