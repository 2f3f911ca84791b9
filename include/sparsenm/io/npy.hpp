// SPDX-License-Identifier: Apache-2.0
// NumPy .npy files (format 1.0 written; 1.0, 2.0 and 3.0 read), little-endian, C order. The format:
// https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
//   "\x93NUMPY" major minor, header length (uint16 LE for 1.0, uint32 LE for 2.0/3.0), an ASCII
//   Python dict {'descr': '<f4', 'fortran_order': False, 'shape': (r, c), } padded with spaces and
//   a final '\n' so the data starts at a multiple of 64 bytes, then the raw data.
// The reader checks magic, version, header syntax, dtype, shape and the exact data size, and
// returns nothing unless the whole file is valid. It costs O(file size) (the header is scanned
// once, in place) and refuses headers over detail::kNpyMaxHeaderBytes and ranks over
// detail::kNpyMaxRank, sizes the format allows but no array of a supported dtype needs.
#ifndef SPARSENM_IO_NPY_HPP
#define SPARSENM_IO_NPY_HPP

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "tensor.hpp"

namespace sparsenm {

/// Serialises a tensor as .npy (format 1.0) bytes.
inline std::string npy_bytes(const Tensor& t);

/// Parses .npy bytes; throws sparsenm::Error on any inconsistency (bad magic, unsupported version,
/// malformed header, unsupported dtype, Fortran order, data size != shape * itemsize) or past a
/// limit (header over 1 MiB, rank over 64). Linear in `size`.
inline Tensor parse_npy(const std::uint8_t* data, std::size_t size);

/// Writes a tensor to `path` (atomically: a temporary file, then a rename).
inline void save_npy(const std::string& path, const Tensor& t);

/// Writes a 2-D Eigen object (any storage order; stored in C order) or, with `as_vector`, a 1-D
/// array.
template <class Derived>
void save_npy(const std::string& path, const Eigen::DenseBase<Derived>& x, bool as_vector = false) {
  save_npy(path, Tensor::from_eigen(x, as_vector));
}

/// Reads a whole .npy file.
inline Tensor load_npy(const std::string& path);

// ---------------------------------------------------------------------------------------------

namespace detail {

/// Header bytes the reader accepts. A header of a supported (plain) dtype holds three keys and at
/// most 64 extents, under 2 KB with numpy's padding; versions 2.0 and 3.0 allow 4 GB headers (for
/// structured dtypes, which we do not read), so the cap keeps a hostile length from costing more
/// than a bounded scan. numpy itself refuses headers over 10,000 bytes unless told otherwise.
inline constexpr std::size_t kNpyMaxHeaderBytes = std::size_t(1) << 20;
/// Dimensions the reader accepts: numpy 2's NPY_MAXDIMS (numpy 1 allowed 32).
inline constexpr std::size_t kNpyMaxRank = 64;

inline const char* npy_descr(DType t) {
  switch (t) {
    case DType::F32:
      return "<f4";
    case DType::F64:
      return "<f8";
    case DType::I32:
      return "<i4";
    case DType::I64:
      return "<i8";
    default:
      return "|u1";
  }
}

/// A tiny cursor over the header dict, read in place; every method throws on malformed input. The
/// cursor only moves forward, so a header costs O(its length).
class NpyHeaderParser {
 public:
  NpyHeaderParser(const char* s, std::size_t n) : m_s(s), m_n(n) {}

  void skip_ws() {
    while (m_i < m_n && (m_s[m_i] == ' ' || m_s[m_i] == '\t' || m_s[m_i] == '\n')) ++m_i;
  }
  bool peek(char c) {
    skip_ws();
    return m_i < m_n && m_s[m_i] == c;
  }
  void expect(char c) {
    SPARSENM_CHECK(peek(c), "npy: malformed header: expected '", c, "' at offset ", m_i);
    ++m_i;
  }
  std::string quoted() {
    skip_ws();
    SPARSENM_CHECK(m_i < m_n && (m_s[m_i] == '\'' || m_s[m_i] == '"'),
                   "npy: malformed header: expected a string at offset ", m_i);
    const char q = m_s[m_i++];
    const void* end = std::memchr(m_s + m_i, q, m_n - m_i);
    SPARSENM_CHECK(end != nullptr, "npy: malformed header: unterminated string");
    const std::size_t len = static_cast<std::size_t>(static_cast<const char*>(end) - (m_s + m_i));
    std::string out(m_s + m_i, len);
    m_i += len + 1;
    return out;
  }
  bool boolean() {
    skip_ws();
    if (next_is("True")) {
      m_i += 4;
      return true;
    }
    SPARSENM_CHECK(next_is("False"), "npy: malformed header: expected True or False at offset ",
                   m_i);
    m_i += 5;
    return false;
  }
  std::int64_t integer() {
    skip_ws();
    SPARSENM_CHECK(m_i < m_n && m_s[m_i] >= '0' && m_s[m_i] <= '9',
                   "npy: malformed header: expected a non-negative integer at offset ", m_i);
    std::int64_t v = 0;
    while (m_i < m_n && m_s[m_i] >= '0' && m_s[m_i] <= '9') {
      v = v * 10 + (m_s[m_i++] - '0');  // v <= 2^55 before, so no overflow here
      SPARSENM_CHECK(v <= (std::int64_t(1) << 55), "npy: shape extent at offset ", m_i,
                     " exceeds 2^55 (the limit)");
    }
    if (m_i < m_n && m_s[m_i] == 'L') ++m_i;  // Python 2 long suffix
    return v;
  }
  std::vector<std::int64_t> tuple() {
    expect('(');
    std::vector<std::int64_t> out;
    while (!peek(')')) {
      SPARSENM_CHECK(out.size() < kNpyMaxRank, "npy: shape has more than ", kNpyMaxRank,
                     " dimensions (the limit)");
      out.push_back(integer());
      if (peek(',')) {
        expect(',');
      } else {
        SPARSENM_CHECK(peek(')'), "npy: malformed shape tuple at offset ", m_i);
      }
    }
    expect(')');
    return out;
  }
  bool at_end() {
    skip_ws();
    return m_i == m_n;
  }

 private:
  bool next_is(const char* word) const {
    const std::size_t len = std::strlen(word);
    return m_n - m_i >= len && std::memcmp(m_s + m_i, word, len) == 0;
  }
  const char* m_s;
  std::size_t m_n;
  std::size_t m_i = 0;
};

inline DType npy_parse_descr(const std::string& d) {
  // '=' and '<' are little-endian on our (checked) little-endian host; '|' for single bytes.
  if (d == "<f4" || d == "=f4") return DType::F32;
  if (d == "<f8" || d == "=f8") return DType::F64;
  if (d == "<i4" || d == "=i4") return DType::I32;
  if (d == "<i8" || d == "=i8") return DType::I64;
  if (d == "|u1" || d == "<u1" || d == "=u1" || d == "u1" || d == "|b1") return DType::U8;
  raise(concat("npy: unsupported dtype descr '", d, "' (supported: <f4, <f8, <i4, <i8, |u1, |b1)"));
}

}  // namespace detail

inline std::string npy_bytes(const Tensor& t) {
  detail::check_little_endian();
  const std::size_t need =
      detail::checked_byte_size(t.shape, dtype_size(t.dtype), std::size_t(1) << 62, "npy_bytes");
  SPARSENM_CHECK(t.bytes.size() == need, "npy_bytes: tensor holds ", t.bytes.size(),
                 " bytes but its shape needs ", need);
  SPARSENM_CHECK(t.shape.size() <= detail::kNpyMaxRank, "npy_bytes: rank ", t.shape.size(),
                 " exceeds the limit of ", detail::kNpyMaxRank, " (readers would refuse the file)");
  std::string dict = std::string("{'descr': '") + detail::npy_descr(t.dtype) +
                     "', 'fortran_order': False, 'shape': (";
  for (std::size_t k = 0; k < t.shape.size(); ++k) {
    dict += std::to_string(t.shape[k]);
    if (t.shape.size() == 1 || k + 1 < t.shape.size()) dict += ",";
    if (k + 1 < t.shape.size()) dict += " ";
  }
  dict += "), }";
  // Pad with spaces so that magic(6) + version(2) + length(2) + header is a multiple of 64.
  std::size_t total = 10 + dict.size() + 1;
  const std::size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict += '\n';
  SPARSENM_CHECK(dict.size() <= 65535, "npy_bytes: header too long for format 1.0");
  std::string out;
  out.reserve(10 + dict.size() + t.bytes.size());
  out.append("\x93NUMPY", 6);
  out.push_back(char(1));
  out.push_back(char(0));
  out.push_back(char(dict.size() & 0xff));
  out.push_back(char((dict.size() >> 8) & 0xff));
  out += dict;
  out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  return out;
}

inline Tensor parse_npy(const std::uint8_t* data, std::size_t size) {
  detail::check_little_endian();
  SPARSENM_CHECK(size >= 10, "npy: file is ", size, " bytes, shorter than the 10-byte preamble");
  SPARSENM_CHECK(std::memcmp(data, "\x93NUMPY", 6) == 0, "npy: bad magic (not a .npy file)");
  const int major = data[6];
  const int minor = data[7];
  SPARSENM_CHECK((major == 1 || major == 2 || major == 3) && minor == 0,
                 "npy: unsupported version ", major, ".", minor);
  std::size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = std::size_t(data[8]) | (std::size_t(data[9]) << 8);
    offset = 10;
  } else {
    SPARSENM_CHECK(size >= 12, "npy: file is too short for a version ", major, " preamble");
    header_len = std::size_t(data[8]) | (std::size_t(data[9]) << 8) |
                 (std::size_t(data[10]) << 16) | (std::size_t(data[11]) << 24);
    offset = 12;
  }
  SPARSENM_CHECK(header_len <= detail::kNpyMaxHeaderBytes, "npy: header length ", header_len,
                 " exceeds the limit of ", detail::kNpyMaxHeaderBytes, " bytes");
  SPARSENM_CHECK(header_len <= size - offset, "npy: header length ", header_len,
                 " exceeds the file size ", size);
  const char* header = reinterpret_cast<const char*>(data + offset);
  SPARSENM_CHECK(std::memchr(header, '\0', header_len) == nullptr,
                 "npy: malformed header: contains a NUL byte");
  detail::NpyHeaderParser p(header, header_len);
  bool have_descr = false, have_order = false, have_shape = false, fortran = false;
  Tensor t;
  p.expect('{');
  while (!p.peek('}')) {
    const std::string key = p.quoted();
    p.expect(':');
    if (key == "descr") {
      SPARSENM_CHECK(!have_descr, "npy: duplicate key 'descr'");
      t.dtype = detail::npy_parse_descr(p.quoted());
      have_descr = true;
    } else if (key == "fortran_order") {
      SPARSENM_CHECK(!have_order, "npy: duplicate key 'fortran_order'");
      fortran = p.boolean();
      have_order = true;
    } else if (key == "shape") {
      SPARSENM_CHECK(!have_shape, "npy: duplicate key 'shape'");
      t.shape = p.tuple();
      have_shape = true;
    } else {
      detail::raise(detail::concat("npy: unexpected header key '", key, "'"));
    }
    if (p.peek(',')) {
      p.expect(',');
    } else {
      SPARSENM_CHECK(p.peek('}'), "npy: malformed header: expected ',' or '}'");
    }
  }
  p.expect('}');
  SPARSENM_CHECK(p.at_end(), "npy: malformed header: trailing characters after the dict");
  SPARSENM_CHECK(have_descr && have_order && have_shape,
                 "npy: header must contain 'descr', 'fortran_order' and 'shape'");
  SPARSENM_CHECK(!fortran, "npy: Fortran-order arrays are not supported (save in C order)");
  const std::size_t data_offset = offset + header_len;
  const std::size_t need =
      detail::checked_byte_size(t.shape, dtype_size(t.dtype), std::size_t(1) << 62, "npy");
  SPARSENM_CHECK(size - data_offset == need, "npy: data section is ", size - data_offset,
                 " bytes but shape and dtype need ", need, " (truncated or corrupted file)");
  t.bytes.assign(data + data_offset, data + size);
  return t;
}

inline void save_npy(const std::string& path, const Tensor& t) {
  detail::write_file_bytes(path, npy_bytes(t));
}

inline Tensor load_npy(const std::string& path) {
  const std::vector<std::uint8_t> bytes = detail::read_file_bytes(path);
  try {
    return parse_npy(bytes.data(), bytes.size());
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " [file '" + path + "']");
  }
}

}  // namespace sparsenm

#endif  // SPARSENM_IO_NPY_HPP
