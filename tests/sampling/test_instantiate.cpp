// SPDX-License-Identifier: Apache-2.0
// The sampling module has no class templates; instantiate its function templates for float and
// double so every one compiles in both precisions.
#include <sparsenm/sampling.hpp>

template sparsenm::Matrix<float> sparsenm::frechet_scores<float, sparsenm::Matrix<float>>(
    const Eigen::MatrixBase<sparsenm::Matrix<float>>&, float, const sparsenm::Philox&);
template sparsenm::Matrix<double> sparsenm::frechet_scores<double, sparsenm::Matrix<double>>(
    const Eigen::MatrixBase<sparsenm::Matrix<double>>&, double, const sparsenm::Philox&);
template sparsenm::Matrix<float> sparsenm::uniform_perturb<void, sparsenm::Matrix<float>>(
    const Eigen::MatrixBase<sparsenm::Matrix<float>>&, const sparsenm::Philox&);
template sparsenm::Matrix<double> sparsenm::uniform_perturb<void, sparsenm::Matrix<double>>(
    const Eigen::MatrixBase<sparsenm::Matrix<double>>&, const sparsenm::Philox&);
template std::vector<Eigen::Index> sparsenm::gumbel_topk<sparsenm::Matrix<float>>(
    const Eigen::MatrixBase<sparsenm::Matrix<float>>&, Eigen::Index, const sparsenm::Philox&);
template std::vector<Eigen::Index> sparsenm::gumbel_topk<sparsenm::Matrix<double>>(
    const Eigen::MatrixBase<sparsenm::Matrix<double>>&, Eigen::Index, const sparsenm::Philox&);
