// SPDX-License-Identifier: Apache-2.0
// Aggregator for include/sparsenm/train/: reusable parts of a training loop (losses, distillation,
// learning-rate schedules, batching, a dense layer for baselines, progress bar, CSV and SVG
// output). train/idx.hpp (IDX / gzip reader) needs zlib and is therefore not included here: include
// it yourself and link -lz.
#ifndef SPARSENM_TRAIN_HPP
#define SPARSENM_TRAIN_HPP

#include "core.hpp"
#include "train/loss.hpp"
#include "train/distill.hpp"
#include "train/schedule.hpp"
#include "train/batching.hpp"
#include "train/dense_linear.hpp"
#include "train/progress.hpp"
#include "train/csv.hpp"
#include "train/svg_plot.hpp"

#endif  // SPARSENM_TRAIN_HPP
