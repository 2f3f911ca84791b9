// SPDX-License-Identifier: Apache-2.0
// A typed, shaped byte buffer shared by the .npy and .safetensors readers and writers. Conversions
// to Eigen check the dtype and the rank exactly: a float64 file never silently becomes float32.
#ifndef SPARSENM_IO_TENSOR_HPP
#define SPARSENM_IO_TENSOR_HPP

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>  // fsync
#endif

#include "../core/error.hpp"
#include "../core/types.hpp"

namespace sparsenm {

/// Element types the readers and writers support (little-endian on disk).
enum class DType { F32, F64, U8, I32, I64 };

/// Bytes per element.
inline std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F64:
    case DType::I64:
      return 8;
    default:
      return 1;
  }
}

/// The safetensors spelling ("F32", "F64", "U8", "I32", "I64").
inline const char* to_string(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
    default:
      return "U8";
  }
}

/// The dtype of a C++ element type (compile error for unsupported types).
template <class T>
constexpr DType dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> ||
                    std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::int32_t> ||
                    std::is_same_v<T, std::int64_t>,
                "sparsenm io supports float, double, uint8_t, int32_t and int64_t elements");
  if constexpr (std::is_same_v<T, float>) return DType::F32;
  if constexpr (std::is_same_v<T, double>) return DType::F64;
  if constexpr (std::is_same_v<T, std::uint8_t>) return DType::U8;
  if constexpr (std::is_same_v<T, std::int32_t>) return DType::I32;
  return DType::I64;
}

namespace detail {

/// The on-disk formats are little-endian; a big-endian host would need byte swaps we do not do.
inline void check_little_endian() {
  const std::uint16_t probe = 1;
  unsigned char first = 0;
  std::memcpy(&first, &probe, 1);
  SPARSENM_CHECK(first == 1, "sparsenm io: only little-endian hosts are supported");
}

/// Product of the extents; throws if any extent is negative or the byte size overflows `limit`.
inline std::size_t checked_byte_size(const std::vector<std::int64_t>& shape, std::size_t item,
                                     std::size_t limit, const char* what) {
  std::size_t count = 1;
  for (std::int64_t d : shape) {
    SPARSENM_CHECK(d >= 0, what, ": negative extent ", d);
    const auto ud = static_cast<std::size_t>(d);
    SPARSENM_CHECK(ud == 0 || count <= limit / ud, what, ": shape is too large");
    count *= ud;
  }
  SPARSENM_CHECK(count <= limit / item, what, ": shape is too large");
  return count * item;
}

}  // namespace detail

/// A named-free tensor: dtype, shape (C order) and the raw little-endian bytes.
struct Tensor {
  /// Element type.
  DType dtype = DType::F32;
  /// Extents, C order (row-major); empty for a scalar.
  std::vector<std::int64_t> shape;
  /// The elements, little-endian, C order: numel() * dtype_size(dtype) bytes.
  std::vector<std::uint8_t> bytes;

  /// Number of elements (product of the shape; 1 for a scalar).
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : shape) n *= d;
    return n;
  }

  /// Copies a 1-D or 2-D Eigen object (any storage order) into C order.
  template <class Derived>
  static Tensor from_eigen(const Eigen::DenseBase<Derived>& x, bool as_vector = false);

  /// A (rows, cols) row-major matrix; throws unless the dtype is exactly T's and the rank is 2
  /// (a rank-1 tensor of length k is accepted as 1 x k only when `allow_vector`).
  template <class T>
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> to_matrix(
      bool allow_vector = false) const;

  /// A column vector; throws unless the dtype is T's and the rank is 1.
  template <class T>
  Eigen::Matrix<T, Eigen::Dynamic, 1> to_vector() const;

 private:
  template <class T>
  void check_dtype() const {
    SPARSENM_CHECK(dtype == dtype_of<T>(), "tensor dtype is ", to_string(dtype), " but ",
                   to_string(dtype_of<T>()), " was requested");
    // checked_byte_size rather than numel(): a hand-made Tensor may carry a negative or overflowing
    // shape whose wrapped product matches its bytes (e.g. {-1, -1} with one element).
    const std::size_t need =
        detail::checked_byte_size(shape, sizeof(T), std::size_t(1) << 62, "tensor");
    SPARSENM_CHECK(bytes.size() == need, "tensor holds ", bytes.size(),
                   " bytes but its shape needs ", need);
  }
};

// ---------------------------------------------------------------------------------------------

template <class Derived>
Tensor Tensor::from_eigen(const Eigen::DenseBase<Derived>& x, bool as_vector) {
  using T = typename Derived::Scalar;
  Tensor t;
  t.dtype = dtype_of<T>();
  if (as_vector) {
    SPARSENM_CHECK(x.rows() == 1 || x.cols() == 1, "Tensor::from_eigen: as_vector needs a ",
                   "vector but got ", x.rows(), "x", x.cols());
    t.shape = {static_cast<std::int64_t>(x.size())};
  } else {
    t.shape = {static_cast<std::int64_t>(x.rows()), static_cast<std::int64_t>(x.cols())};
  }
  t.bytes.resize(static_cast<std::size_t>(x.size()) * sizeof(T));
  // Evaluate into C order (row-major) whatever the source layout is.
  const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> c = x.derived();
  if (c.size() > 0) std::memcpy(t.bytes.data(), c.data(), t.bytes.size());
  return t;
}

template <class T>
Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> Tensor::to_matrix(
    bool allow_vector) const {
  check_dtype<T>();
  Index rows = 0, cols = 0;
  if (shape.size() == 2) {
    rows = shape[0];
    cols = shape[1];
  } else {
    SPARSENM_CHECK(allow_vector && shape.size() == 1, "tensor has rank ", shape.size(),
                   " but a matrix (rank 2) was requested");
    rows = 1;
    cols = shape[0];
  }
  Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> m(rows, cols);
  if (m.size() > 0) std::memcpy(m.data(), bytes.data(), bytes.size());
  return m;
}

template <class T>
Eigen::Matrix<T, Eigen::Dynamic, 1> Tensor::to_vector() const {
  check_dtype<T>();
  SPARSENM_CHECK(shape.size() == 1, "tensor has rank ", shape.size(),
                 " but a vector (rank 1) was requested");
  Eigen::Matrix<T, Eigen::Dynamic, 1> v(shape[0]);
  if (v.size() > 0) std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

namespace detail {

/// Reads a whole file into memory (so a parse error never leaves anything half-loaded).
inline std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  SPARSENM_CHECK(f != nullptr, "cannot open '", path, "' for reading");
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  std::size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof(buf), f)) > 0) out.insert(out.end(), buf, buf + got);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  SPARSENM_CHECK(!failed, "error while reading '", path, "'");
  return out;
}

/// Writes bytes to `path` through a temporary file and a rename, so readers never see a half file
/// and an interruption at any point leaves the previous file intact. With `durable` (the default;
/// POSIX) the data is fsync'ed before the rename, so after a power loss the path holds the old or
/// the new contents, never a renamed file whose blocks were not yet written. Scratch writes (the
/// fuzz harnesses) pass false.
inline void write_file_bytes(const std::string& path, const std::string& bytes,
                             bool durable = true) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  SPARSENM_CHECK(f != nullptr, "cannot open '", tmp, "' for writing");
  const std::size_t put = std::fwrite(bytes.data(), 1, bytes.size(), f);
  bool ok = put == bytes.size() && std::fflush(f) == 0;
#if defined(__unix__) || defined(__APPLE__)
  if (ok && durable) ok = ::fsync(::fileno(f)) == 0;
#else
  (void)durable;
#endif
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(tmp.c_str());
    detail::raise(concat("error while writing '", tmp, "'"));
  }
  SPARSENM_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename '", tmp, "' to '",
                 path, "'");
}

}  // namespace detail
}  // namespace sparsenm

#endif  // SPARSENM_IO_TENSOR_HPP
