// sparsenm: N:M semi-structured sparse training on Eigen.
// SPDX-License-Identifier: Apache-2.0
#ifndef SPARSENM_VERSION_HPP
#define SPARSENM_VERSION_HPP

// CMake parses these three lines to produce sparsenmConfigVersion.cmake.
#define SPARSENM_VERSION_MAJOR 0
#define SPARSENM_VERSION_MINOR 1
#define SPARSENM_VERSION_PATCH 0

#define SPARSENM_VERSION_STRING "0.1.0"

#endif  // SPARSENM_VERSION_HPP
