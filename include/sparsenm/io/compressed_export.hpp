// SPDX-License-Identifier: Apache-2.0
// Deployment export of N:M weights in compressed form: kept values + in-group indices (and, for
// 2:4, NVIDIA sparse-tensor-core metadata) in a .safetensors file that numpy reads without
// sparsenm (docs/file-formats.md, "Compressed N:M export"; docs/algorithms.md "Compressed storage
// and NVIDIA 2:4 metadata").
//
// For a layer called NAME with an (out, in) weight of n:m pattern, the file holds
//   NAME.values   F32/F64 (out, in / m * n)  kept values of each group of m, in column order
//   NAME.indices  U8      (out, in / m * n)  their in-group column offsets, increasing, in [0, m)
//   NAME.nv_meta  U8      (out, in / 8)      2:4 only (and in % 16 == 0): the uint16 metadata
//                                            words of nvidia_metadata_2to4, little-endian bytes
//                                            (numpy: .view('<u2') gives (out, in / 16) words)
// and in __metadata__
//   "sparsenm.format"       "compressed-nm-v1"
//   "sparsenm.compressed"   the compressed layer names, comma-separated, in the order added
//   "NAME.nm"               "n:m"
//   "NAME.shape"            "out,in"   (the dense shape)
// Dense weight column of slot (r, j): (j / n) * m + indices(r, j). Other tensors (biases, dense
// layers) are stored as they are, under their own names. Layer names may not contain ',' and may
// not end in ".values", ".indices" or ".nv_meta".
#ifndef SPARSENM_IO_COMPRESSED_EXPORT_HPP
#define SPARSENM_IO_COMPRESSED_EXPORT_HPP

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
#include "../mask/nvidia_metadata.hpp"
#include "safetensors.hpp"
#include "tensor.hpp"

namespace sparsenm {

/// The value of "sparsenm.format" in files that hold compressed layers.
inline constexpr const char* kCompressedFormat = "compressed-nm-v1";

namespace detail {

inline std::vector<std::string> split_names(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!s.empty()) out.push_back(cur);
  return out;
}

inline const std::string& metadata_at(const SafetensorsFile& file, const std::string& key) {
  const auto it = file.metadata.find(key);
  SPARSENM_CHECK(it != file.metadata.end(), "compressed export: __metadata__ has no '", key, "'");
  return it->second;
}

/// Parses "a<sep>b" with a, b non-negative decimal integers of at most 12 digits.
inline void parse_pair(const std::string& s, char sep, const std::string& key, long long& a,
                       long long& b) {
  const std::size_t p = s.find(sep);
  auto digits = [&](const std::string& t) {
    SPARSENM_CHECK(
        !t.empty() && t.size() <= 12 && t.find_first_not_of("0123456789") == std::string::npos,
        "compressed export: __metadata__ '", key, "' = '", s, "' is malformed");
    return std::stoll(t);
  };
  SPARSENM_CHECK(p != std::string::npos, "compressed export: __metadata__ '", key, "' = '", s,
                 "' is malformed");
  a = digits(s.substr(0, p));
  b = digits(s.substr(p + 1));
}

/// NVIDIA metadata words as little-endian bytes, (rows, 2 * words per row).
inline Tensor nv_meta_tensor(const NvMetadata& meta) {
  Tensor t;
  t.dtype = DType::U8;
  t.shape = {std::int64_t(meta.rows()), std::int64_t(2 * meta.cols())};
  t.bytes.resize(std::size_t(meta.size()) * 2);
  for (Index k = 0; k < meta.size(); ++k) {
    const std::uint16_t w = meta.data()[k];
    t.bytes[2 * std::size_t(k)] = static_cast<std::uint8_t>(w & 0xFF);
    t.bytes[2 * std::size_t(k) + 1] = static_cast<std::uint8_t>(w >> 8);
  }
  return t;
}

}  // namespace detail

/// Adds layer `name` to `file` in compressed form (see the file comment): NAME.values,
/// NAME.indices and, when `w` is 2:4 with cols % 16 == 0, NAME.nv_meta; records n:m, shape and the
/// name in __metadata__. Throws sparsenm::Error for an inconsistent `w` (check_compressed), a bad
/// name, or a name already present.
template <class S>
void add_compressed(SafetensorsFile& file, const std::string& name, const NMCompressed<S>& w) {
  check_compressed(w, "add_compressed: w");
  SPARSENM_CHECK(!name.empty() && name.find(',') == std::string::npos, "add_compressed: name '",
                 name, "' must be non-empty and contain no ','");
  std::vector<std::string> names;
  if (file.metadata.count("sparsenm.compressed"))
    names = detail::split_names(file.metadata.at("sparsenm.compressed"));
  for (const std::string& n : names)
    SPARSENM_CHECK(n != name, "add_compressed: layer '", name, "' is already in the file");
  file.add(name + ".values", Tensor::from_eigen(w.values));
  file.add(name + ".indices", Tensor::from_eigen(w.indices));
  if (w.nm.n == 2 && w.nm.m == 4 && w.cols % 16 == 0)
    file.add(name + ".nv_meta", detail::nv_meta_tensor(nvidia_metadata_2to4(w)));
  file.metadata["sparsenm.format"] = kCompressedFormat;
  names.push_back(name);
  std::string list;
  for (std::size_t i = 0; i < names.size(); ++i) list += (i ? "," : "") + names[i];
  file.metadata["sparsenm.compressed"] = list;
  file.metadata[name + ".nm"] = std::to_string(w.nm.n) + ":" + std::to_string(w.nm.m);
  file.metadata[name + ".shape"] = std::to_string(w.rows) + "," + std::to_string(w.cols);
}

/// Same for a dense weight under a row-wise legal mask (compress(weight, mask, nm) first).
template <class Derived>
void add_compressed(SafetensorsFile& file, const std::string& name,
                    const Eigen::MatrixBase<Derived>& weight, const Mask& mask, NM nm) {
  add_compressed(file, name, compress(weight, mask, nm));
}

/// The names of the compressed layers of `file`, in the order they were added (empty if none).
inline std::vector<std::string> compressed_names(const SafetensorsFile& file) {
  const auto it = file.metadata.find("sparsenm.compressed");
  return it == file.metadata.end() ? std::vector<std::string>{} : detail::split_names(it->second);
}

/// Reads layer `name` back. Checks everything a consumer relies on and throws sparsenm::Error
/// naming the problem: metadata present and well formed, dtype S, shapes consistent with n:m and
/// the dense shape, indices in [0, m) and increasing within each group, and NAME.nv_meta (when
/// present) equal to the metadata of the indices.
template <class S>
NMCompressed<S> get_compressed(const SafetensorsFile& file, const std::string& name) {
  long long n = 0, m = 0, rows = 0, cols = 0;
  detail::parse_pair(detail::metadata_at(file, name + ".nm"), ':', name + ".nm", n, m);
  detail::parse_pair(detail::metadata_at(file, name + ".shape"), ',', name + ".shape", rows, cols);
  SPARSENM_CHECK(n >= 1 && m <= kMaxGroupSize && n <= m, "get_compressed: ", name, ".nm = ", n, ":",
                 m, " is not a valid n:m");
  NMCompressed<S> c;
  c.nm = NM{int(n), int(m)};
  c.rows = Index(rows);
  c.cols = Index(cols);
  check_divisible(c.cols, c.nm.m, "get_compressed: shape[1]", "m");
  const Tensor& v = file.at(name + ".values");
  const Tensor& i = file.at(name + ".indices");
  const Index k = c.cols / c.nm.m * c.nm.n;
  SPARSENM_CHECK(v.shape.size() == 2 && v.shape[0] == rows && v.shape[1] == k,
                 "get_compressed: ", name, ".values must be ", rows, "x", k);
  SPARSENM_CHECK(i.shape.size() == 2 && i.shape[0] == rows && i.shape[1] == k,
                 "get_compressed: ", name, ".indices must be ", rows, "x", k);
  c.values = v.to_matrix<S>();
  c.indices = i.to_matrix<std::uint8_t>();
  check_compressed(c, ("get_compressed: " + name).c_str());
  if (file.contains(name + ".nv_meta")) {
    const Tensor& t = file.at(name + ".nv_meta");
    const bool two_four = c.nm.n == 2 && c.nm.m == 4;
    SPARSENM_CHECK(two_four && c.cols % 16 == 0, "get_compressed: ", name,
                   ".nv_meta is only defined for 2:4 with in % 16 == 0");
    const Tensor expect = detail::nv_meta_tensor(nvidia_metadata_2to4(c));
    SPARSENM_CHECK(t.dtype == DType::U8 && t.shape == expect.shape && t.bytes == expect.bytes,
                   "get_compressed: ", name, ".nv_meta does not match ", name, ".indices");
  }
  return c;
}

}  // namespace sparsenm

#endif  // SPARSENM_IO_COMPRESSED_EXPORT_HPP
