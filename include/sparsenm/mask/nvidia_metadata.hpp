// SPDX-License-Identifier: Apache-2.0
// NVIDIA sparse-tensor-core 2:4 metadata (cuSPARSELt / CUTLASS / PyTorch
// to_sparse_semi_structured), docs/algorithms.md "Compressed storage and NVIDIA 2:4 metadata".
//
// Bit layout (the contract):
//  - every group of 4 columns holding 2 kept entries at in-group indices idx0 < idx1 is one 4-bit
//    nibble  idx0 | (idx1 << 2);  the six legal groups
//      1100 -> 0x4, 1010 -> 0x8, 0110 -> 0x9, 1001 -> 0xC, 0101 -> 0xD, 0011 -> 0xE
//    (written as mask columns 0..3 left to right);
//  - four consecutive groups of a row share one uint16: group q of the word (columns 16w + 4q ..
//    16w + 4q + 3) sits at bits 4q .. 4q+3, LSB first;
//  - the result is (rows, cols / 16), row-major, one word per 16 columns.
// CUTLASS additionally interleaves metadata rows (ColumnMajorInterleaved<2>); that reordering is a
// separate step, not done here.
#ifndef SPARSENM_MASK_NVIDIA_METADATA_HPP
#define SPARSENM_MASK_NVIDIA_METADATA_HPP

#include <cstdint>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "compress.hpp"

namespace sparsenm {

/// 16-bit metadata words, row-major (rows, cols / 16).
using NvMetadata = Eigen::Matrix<std::uint16_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Nibble of one 2:4 group from its two in-group indices (idx0 < idx1).
constexpr std::uint16_t nvidia_nibble(int idx0, int idx1) {
  return std::uint16_t(idx0 | (idx1 << 2));
}

/// Encodes a row-wise 2:4 mask (exactly 2 ones per group of 4; cols a multiple of 16). Throws
/// sparsenm::Error for other masks.
inline NvMetadata nvidia_metadata_2to4(const Mask& mask) {
  check_divisible(mask.cols(), 16, "nvidia_metadata_2to4: mask.cols()", "16");
  NvMetadata meta(mask.rows(), mask.cols() / 16);
  for (Index i = 0; i < mask.rows(); ++i)
    for (Index w = 0; w < meta.cols(); ++w) {
      std::uint16_t word = 0;
      for (int q = 0; q < 4; ++q) {
        int idx[2] = {0, 0}, cnt = 0;
        for (int c = 0; c < 4; ++c) {
          const std::uint8_t v = mask(i, 16 * w + 4 * q + c);
          SPARSENM_CHECK(v <= 1, "nvidia_metadata_2to4: mask(", i, ", ", 16 * w + 4 * q + c,
                         ") = ", int(v), " must be 0 or 1");
          if (v) {
            if (cnt < 2) idx[cnt] = c;
            ++cnt;
          }
        }
        SPARSENM_CHECK(cnt == 2, "nvidia_metadata_2to4: mask row ", i, " group ", 4 * w + q,
                       " has ", cnt, " ones; NVIDIA metadata needs exactly 2 of 4");
        word = std::uint16_t(word | (nvidia_nibble(idx[0], idx[1]) << (4 * q)));
      }
      meta(i, w) = word;
    }
  return meta;
}

/// Same from compressed 2:4 storage (its in-group indices).
template <class S>
NvMetadata nvidia_metadata_2to4(const NMCompressed<S>& c) {
  SPARSENM_CHECK(c.nm.n == 2 && c.nm.m == 4, "nvidia_metadata_2to4: c.nm = ", c.nm,
                 " must be NM{2,4}");
  check_divisible(c.cols, 16, "nvidia_metadata_2to4: c.cols", "16");
  check_shape(c.indices, c.rows, c.cols / 2, "nvidia_metadata_2to4: c.indices");
  NvMetadata meta(c.rows, c.cols / 16);
  for (Index i = 0; i < c.rows; ++i)
    for (Index w = 0; w < meta.cols(); ++w) {
      std::uint16_t word = 0;
      for (int q = 0; q < 4; ++q) {
        const int a = c.indices(i, 8 * w + 2 * q), b = c.indices(i, 8 * w + 2 * q + 1);
        SPARSENM_CHECK(a < b && b < 4, "nvidia_metadata_2to4: c.indices row ", i, " group ",
                       4 * w + q, " = (", a, ", ", b, ") must satisfy idx0 < idx1 < 4");
        word = std::uint16_t(word | (nvidia_nibble(a, b) << (4 * q)));
      }
      meta(i, w) = word;
    }
  return meta;
}

/// Decodes metadata back to the (rows, 16 * meta.cols()) 2:4 mask. Throws for a nibble that is not
/// one of the six legal codes (idx0 < idx1).
inline Mask mask_from_nvidia_metadata(const NvMetadata& meta) {
  Mask mask = Mask::Zero(meta.rows(), meta.cols() * 16);
  for (Index i = 0; i < meta.rows(); ++i)
    for (Index w = 0; w < meta.cols(); ++w)
      for (int q = 0; q < 4; ++q) {
        const int nib = (meta(i, w) >> (4 * q)) & 0xF;
        const int a = nib & 3, b = nib >> 2;
        SPARSENM_CHECK(a < b, "mask_from_nvidia_metadata: meta(", i, ", ", w, ") nibble ", q,
                       " = 0x", std::hex, nib, " is not a legal 2:4 code (idx0 < idx1)");
        mask(i, 16 * w + 4 * q + a) = 1;
        mask(i, 16 * w + 4 * q + b) = 1;
      }
  return mask;
}

}  // namespace sparsenm

#endif  // SPARSENM_MASK_NVIDIA_METADATA_HPP
