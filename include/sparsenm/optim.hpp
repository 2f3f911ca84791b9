// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/optim/.
#ifndef SPARSENM_OPTIM_HPP
#define SPARSENM_OPTIM_HPP

#include "core.hpp"
#include "optim/nonfinite.hpp"
#include "optim/newton_schulz.hpp"
#include "optim/tans.hpp"
#include "optim/adam.hpp"
#include "optim/adams.hpp"
#include "optim/muon.hpp"
#include "optim/ste.hpp"

#endif  // SPARSENM_OPTIM_HPP
