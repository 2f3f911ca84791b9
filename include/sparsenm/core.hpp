// SPDX-License-Identifier: Apache-2.0
#ifndef SPARSENM_CORE_HPP
#define SPARSENM_CORE_HPP

#include "config.hpp"
#include "version.hpp"
#include "core/blas.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "core/philox.hpp"
#include "core/random_fill.hpp"
#include "core/simd.hpp"
#include "core/types.hpp"
#include "core/validate.hpp"

#endif  // SPARSENM_CORE_HPP
