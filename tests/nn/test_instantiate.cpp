// SPDX-License-Identifier: Apache-2.0
// Explicit instantiation of every class template of nn/ for float and double, so members that no
// test calls still compile.
#include <gtest/gtest.h>

#include <sparsenm/nn.hpp>

template class sparsenm::SparseLinear<float>;
template class sparsenm::SparseLinear<double>;
template class sparsenm::CoMoLoRA<float>;
template class sparsenm::CoMoLoRA<double>;

TEST(NnInstantiate, Compiles) { SUCCEED(); }
