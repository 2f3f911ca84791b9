// SPDX-License-Identifier: Apache-2.0
// IDX files (the MNIST / Fashion-MNIST container), plain or gzip-compressed. NEEDS ZLIB: link with
// -lz (CMake: ZLIB::ZLIB). This is the only sparsenm header with a dependency beyond Eigen; it is
// not included by train.hpp or sparsenm.hpp.
//
// Format: a big-endian magic 0x0000 <type> <ndims>, ndims big-endian uint32 extents, then the
// data. Only unsigned-byte data (type 0x08), which every MNIST-style file uses, is supported.
#ifndef SPARSENM_TRAIN_IDX_HPP
#define SPARSENM_TRAIN_IDX_HPP

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/types.hpp"

namespace sparsenm {

/// An unsigned-byte IDX array: its extents and its data in C order.
struct IdxArray {
  std::vector<std::int64_t> dims;  ///< extents, outermost first (e.g. {count, rows, cols})
  std::vector<std::uint8_t> data;  ///< the product of dims bytes, last extent fastest
};

/// Parses IDX bytes (already decompressed); throws sparsenm::Error on a bad magic, an unsupported
/// element type, or a size that does not match the extents (truncated or padded file).
inline IdxArray parse_idx(const std::uint8_t* bytes, std::size_t size);

/// Reads a plain or gzip-compressed IDX file through zlib (gzread reads both); throws naming the
/// path when it is missing, when the gzip stream is corrupt or cut, or when parse_idx fails.
inline IdxArray read_idx(const std::string& path);

/// Images and labels of an MNIST-style split: images (count, rows*cols) scaled to [0, 1].
struct IdxDataset {
  Matrix<float> images;     ///< (count, rows*cols), pixel / 255, each image row-major
  std::vector<int> labels;  ///< count class labels as stored (0..9 for MNIST-style files)
  /// Image height in pixels.
  Index rows = 0, cols = 0;  ///< image width in pixels
};

/// Reads an image file (3-D IDX) and a label file (1-D IDX) of the same length; keeps the first
/// `limit` samples when limit > 0.
inline IdxDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                   Index limit = 0);

// ---------------------------------------------------------------------------------------------

inline IdxArray parse_idx(const std::uint8_t* bytes, std::size_t size) {
  SPARSENM_CHECK(size >= 4, "idx: ", size, " bytes is shorter than the 4-byte magic");
  SPARSENM_CHECK(bytes[0] == 0 && bytes[1] == 0, "idx: bad magic (first two bytes must be 0)");
  SPARSENM_CHECK(bytes[2] == 0x08, "idx: element type 0x", std::hex, int(bytes[2]),
                 " is not supported (only 0x08 = unsigned byte)");
  const int ndims = bytes[3];
  SPARSENM_CHECK(ndims >= 1 && ndims <= 8, "idx: ndims = ", ndims, " must be in [1, 8]");
  SPARSENM_CHECK(size >= 4 + 4 * std::size_t(ndims), "idx: file is truncated inside the extents");
  IdxArray out;
  std::size_t count = 1;
  for (int d = 0; d < ndims; ++d) {
    const std::uint8_t* p = bytes + 4 + 4 * d;
    const std::uint32_t e = (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) |
                            (std::uint32_t(p[2]) << 8) | std::uint32_t(p[3]);
    SPARSENM_CHECK(e == 0 || count <= (std::size_t(1) << 40) / e, "idx: extents are too large");
    count *= e;
    out.dims.push_back(e);
  }
  const std::size_t offset = 4 + 4 * std::size_t(ndims);
  SPARSENM_CHECK(size - offset == count, "idx: data section is ", size - offset,
                 " bytes but the extents need ", count, " (truncated or corrupted file)");
  out.data.assign(bytes + offset, bytes + size);
  return out;
}

inline IdxArray read_idx(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  SPARSENM_CHECK(f != nullptr, "cannot open '", path, "'");
  std::vector<std::uint8_t> bytes;
  std::vector<std::uint8_t> buf(1 << 20);
  int got = 0;
  while ((got = gzread(f, buf.data(), static_cast<unsigned>(buf.size()))) > 0)
    bytes.insert(bytes.end(), buf.begin(), buf.begin() + got);
  int errnum = Z_OK;
  const char* msg = gzerror(f, &errnum);
  const std::string why = msg ? msg : "";
  gzclose(f);
  // A cut gzip stream reads as Z_BUF_ERROR ("unexpected end of file"); a corrupt one as an error.
  SPARSENM_CHECK(got == 0 && (errnum == Z_OK || errnum == Z_STREAM_END), "error reading '", path,
                 "': ", why.empty() ? "gzip stream is corrupt or truncated" : why);
  try {
    return parse_idx(bytes.data(), bytes.size());
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " [file '" + path + "']");
  }
}

inline IdxDataset load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                   Index limit) {
  SPARSENM_CHECK(limit >= 0, "limit = ", limit, " must be >= 0");
  const IdxArray images = read_idx(images_path);
  const IdxArray labels = read_idx(labels_path);
  SPARSENM_CHECK(images.dims.size() == 3, "'", images_path, "' has ", images.dims.size(),
                 " dimensions but an image file has 3");
  SPARSENM_CHECK(labels.dims.size() == 1, "'", labels_path, "' has ", labels.dims.size(),
                 " dimensions but a label file has 1");
  SPARSENM_CHECK(images.dims[0] == labels.dims[0], "'", images_path, "' holds ", images.dims[0],
                 " images but '", labels_path, "' holds ", labels.dims[0], " labels");
  IdxDataset out;
  out.rows = images.dims[1];
  out.cols = images.dims[2];
  const Index n = limit > 0 ? std::min<Index>(limit, images.dims[0]) : images.dims[0];
  const Index pixels = out.rows * out.cols;
  out.images.resize(n, pixels);
  for (Index i = 0; i < n * pixels; ++i) out.images.data()[i] = images.data[i] * (1.0f / 255.0f);
  out.labels.assign(labels.data.begin(), labels.data.begin() + n);
  return out;
}

}  // namespace sparsenm

#endif  // SPARSENM_TRAIN_IDX_HPP
