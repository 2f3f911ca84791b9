// SPDX-License-Identifier: Apache-2.0
// Explicit instantiation of every class template of the mask module (members no test calls still
// compile).
#include <sparsenm/mask.hpp>

template struct sparsenm::NMCompressed<float>;
template struct sparsenm::NMCompressed<double>;
template struct sparsenm::TransposablePatterns<4, 1>;
template struct sparsenm::TransposablePatterns<4, 2>;
template struct sparsenm::TransposablePatterns<4, 3>;
template struct sparsenm::TransposablePatterns<6, 3>;
template struct sparsenm::detail::ScalarTileOps<float>;
template struct sparsenm::detail::ScalarTileOps<double>;
template struct sparsenm::RowWiseFamily<4, 2>;
template struct sparsenm::TransposableTableFamily<4, 2>;
template struct sparsenm::TransposableTableFamily<5, 2>;
template struct sparsenm::TransposableExactFamily<8, 4>;
