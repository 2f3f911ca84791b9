// SPDX-License-Identifier: Apache-2.0
// The small synthetic task every recipe trains on (docs/recipes.md): a teacher-student regression
// y = x Tᵀ with an N:M-sparse teacher T, so a sparse student can fit it, and the pass/fail rule
// the recipes share: exit 0 only when the loss fell to below half its first value and every mask
// is legal.
#ifndef SPARSENM_RECIPES_TASK_HPP
#define SPARSENM_RECIPES_TASK_HPP

#include <cstdio>

// The headers the recipes use (a program may include <sparsenm/sparsenm.hpp> for everything).
#include <sparsenm/hessian.hpp>
#include <sparsenm/io.hpp>
#include <sparsenm/mask.hpp>
#include <sparsenm/nn/comolora.hpp>
#include <sparsenm/nn/sparse_linear.hpp>
#include <sparsenm/nn/sparse_trainer.hpp>
#include <sparsenm/optim.hpp>
#include <sparsenm/topology.hpp>
#include <sparsenm/train/dense_linear.hpp>

namespace recipe {

using sparsenm::Index;
using Mat = sparsenm::Matrix<float>;

struct Task {
  Index batch = 256, in = 128, out = 64;
  Mat x, y;  // x: (batch, in), y: (batch, out)

  explicit Task(sparsenm::NM teacher_nm, std::uint64_t seed = 42) {
    const sparsenm::Philox rng(seed);
    x = sparsenm::uniform_matrix<float>(batch, in, rng.split(1)).array() - 0.5f;
    Mat teacher = sparsenm::uniform_matrix<float>(out, in, rng.split(2)).array() - 0.5f;
    sparsenm::apply_mask(teacher, sparsenm::random_rowwise(out, in, teacher_nm, rng.split(3)));
    y = x * teacher.transpose();
  }
  /// L = |pred - y|² / 2B.
  double loss(const Mat& pred) const { return 0.5 * (pred - y).squaredNorm() / double(batch); }
  /// dL/dpred.
  Mat grad(const Mat& pred) const { return (pred - y) / float(batch); }
};

/// Prints the outcome; the exit code of a recipe.
inline int report(const char* method, double first_loss, double final_loss, bool masks_legal) {
  const bool fell = final_loss < 0.5 * first_loss;
  std::printf("%s: loss %.4g -> %.4g (%s), masks %s\n", method, first_loss, final_loss,
              fell ? "fell" : "did NOT fall enough", masks_legal ? "legal" : "ILLEGAL");
  return fell && masks_legal ? 0 : 1;
}

}  // namespace recipe

#endif  // SPARSENM_RECIPES_TASK_HPP
