// SPDX-License-Identifier: Apache-2.0
// Explicit instantiation of every class template of the hessian module for float and double, so
// members that no test calls still compile.
#include <sparsenm/hessian.hpp>

template class sparsenm::HutchinsonDiagonal<float>;
template class sparsenm::HutchinsonDiagonal<double>;
template class sparsenm::SoftMaskAnnealer<float>;
template class sparsenm::SoftMaskAnnealer<double>;
template class sparsenm::LinearSquaredLossHvp<float>;
template class sparsenm::LinearSquaredLossHvp<double>;
template class sparsenm::LinearSoftmaxCeHvp<float>;
template class sparsenm::LinearSoftmaxCeHvp<double>;
