// SPDX-License-Identifier: Apache-2.0
// Explicit instantiation of every class template of kernels/ for float and double, so members that
// no test calls still compile.
#include <gtest/gtest.h>

#include <sparsenm/kernels.hpp>

template class sparsenm::PackedTokens<float>;
template class sparsenm::PackedTokens<double>;
template class sparsenm::TransposedWeight<float>;
template class sparsenm::TransposedWeight<double>;

TEST(KernelsInstantiate, Compiles) { SUCCEED(); }
