// SPDX-License-Identifier: Apache-2.0
// .safetensors files (https://github.com/huggingface/safetensors#format): an 8-byte little-endian
// header length N, an N-byte UTF-8 JSON object {"name": {"dtype": "F32", "shape": [r, c],
// "data_offsets": [begin, end]}, ..., "__metadata__": {"key": "value"}} (padded with spaces), then
// the byte buffer; offsets are relative to the buffer, tensors are contiguous, C order, and cover
// the buffer without holes or overlaps. sparsenm stores n, m, layout and method in __metadata__.
// The reader validates all of that and returns nothing unless the whole file is valid. Its cost is
// linear in the file size (n log n in the tensor count for the name index and the offset check),
// and it refuses sizes the format allows but no real model needs (detail::SafetensorsLimits), so a
// hostile or corrupted header cannot stall a loader.
#ifndef SPARSENM_IO_SAFETENSORS_HPP
#define SPARSENM_IO_SAFETENSORS_HPP

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "tensor.hpp"

namespace sparsenm {

class SafetensorsFile;

namespace detail {

/// What the reader accepts (and the writer produces). The format sets no limits; these are far
/// above any real model and bound the work and memory a hostile header can ask for. Exceeding one
/// throws sparsenm::Error naming the value and the limit.
struct SafetensorsLimits {
  /// JSON header bytes: 100 MB, the cap of the reference implementation (huggingface/safetensors
  /// MAX_HEADER_SIZE), so every file it reads we read too.
  std::uint64_t max_header_bytes = 100000000;
  /// Tensors in one file (a 100 MB header holds at most ~2 M minimal entries anyway).
  std::size_t max_tensors = 1000000;
  /// Dimensions of one tensor (numpy 2's NPY_MAXDIMS; PyTorch allows fewer).
  std::size_t max_rank = 64;
  /// Bytes of one tensor name after unescaping.
  std::size_t max_name_bytes = 65536;
};

/// parse_safetensors with explicit limits (the tests shrink them to reach each check cheaply).
inline SafetensorsFile parse_safetensors_limited(const std::uint8_t* data, std::size_t size,
                                                 const SafetensorsLimits& limits);

}  // namespace detail

/// An in-memory safetensors file: named tensors in file order plus string metadata.
class SafetensorsFile {
 public:
  /// Adds a tensor; throws on an empty or duplicate name, on a byte size that does not match, or
  /// past a limit of the reader (name length, rank, tensor count), so that whatever we can hold we
  /// can also write and read back. O(log n) in the tensor count.
  void add(const std::string& name, Tensor t);
  /// Adds a 2-D Eigen object (or, with `as_vector`, a 1-D one).
  template <class Derived>
  void add(const std::string& name, const Eigen::DenseBase<Derived>& x, bool as_vector = false) {
    add(name, Tensor::from_eigen(x, as_vector));
  }
  /// True when a tensor called `name` exists. O(log n).
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  /// The tensor called `name`; throws naming the missing tensor.
  const Tensor& at(const std::string& name) const;
  /// All tensors with their names, in file order.
  const std::vector<std::pair<std::string, Tensor>>& tensors() const { return m_tensors; }

  /// The `__metadata__` string map (written sorted by key).
  std::map<std::string, std::string> metadata;

 private:
  friend SafetensorsFile detail::parse_safetensors_limited(const std::uint8_t*, std::size_t,
                                                           const detail::SafetensorsLimits&);
  const Tensor* find(const std::string& name) const {
    const auto it = m_index.find(name);
    return it == m_index.end() ? nullptr : &m_tensors[it->second].second;
  }
  std::vector<std::pair<std::string, Tensor>> m_tensors;  // file order
  // Name -> position in m_tensors, so add/find/at/contains cost O(log n), not a scan: a linear
  // duplicate check made reading n tensors O(n^2) (100k tensors: 25 s). An ordered map rather than
  // a hash table: std::hash<std::string> is unseeded, so a hostile file could choose colliding
  // names; string comparisons keep the worst case at O(name length * log n) per lookup. Positions
  // (not pointers) stay valid when the vector grows or the file is copied.
  std::map<std::string, std::size_t, std::less<>> m_index;
};

/// The N:M description sparsenm writes into __metadata__ ("n", "m", "layout", "method").
struct NMMetadata {
  /// The N:M pattern ("n", "m").
  NM nm{2, 4};
  /// The layout ("layout": "rowwise" or "transposable").
  Layout layout = Layout::RowWise;
  /// The training method ("method", free text).
  std::string method;
};

/// Stores n, m, layout ("rowwise" / "transposable") and method in `file.metadata`.
inline void set_nm_metadata(SafetensorsFile& file, const NMMetadata& meta);
/// Reads them back; throws if a key is missing or a value is malformed (check_nm on n, m).
inline NMMetadata get_nm_metadata(const SafetensorsFile& file);

/// Serialises to safetensors bytes (header padded with spaces to a multiple of 8).
inline std::string safetensors_bytes(const SafetensorsFile& file);
/// Parses safetensors bytes; throws sparsenm::Error on any inconsistency or past a limit: header
/// over 100 MB, more than 1,000,000 tensors, rank over 64, a name over 65,536 bytes. Linear in
/// `size` (n log n in the tensor count).
inline SafetensorsFile parse_safetensors(const std::uint8_t* data, std::size_t size);
/// Writes atomically (a temporary file, then a rename).
inline void save_safetensors(const std::string& path, const SafetensorsFile& file);
/// Reads and validates a whole file.
inline SafetensorsFile load_safetensors(const std::string& path);

// ---------------------------------------------------------------------------------------------

namespace detail {

inline DType safetensors_parse_dtype(const std::string& s) {
  if (s == "F32") return DType::F32;
  if (s == "F64") return DType::F64;
  if (s == "U8") return DType::U8;
  if (s == "I32") return DType::I32;
  if (s == "I64") return DType::I64;
  raise(concat("safetensors: unsupported dtype '", s, "' (supported: F32, F64, U8, I32, I64)"));
}

/// JSON string escaping for names and metadata values.
inline std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      static const char* hex = "0123456789abcdef";
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

/// A strict recursive-descent parser for the subset of JSON a safetensors header uses: objects,
/// arrays of non-negative integers, and strings. Depth is bounded (objects nest at most twice).
/// Every byte is looked at a bounded number of times (the cursor only moves forward), so a header
/// costs O(its length).
class JsonCursor {
 public:
  JsonCursor(const char* s, std::size_t n) : m_s(s), m_n(n) {}
  void ws() {
    while (m_i < m_n &&
           (m_s[m_i] == ' ' || m_s[m_i] == '\t' || m_s[m_i] == '\n' || m_s[m_i] == '\r'))
      ++m_i;
  }
  bool peek(char c) {
    ws();
    return m_i < m_n && m_s[m_i] == c;
  }
  void expect(char c) {
    SPARSENM_CHECK(peek(c), "safetensors: malformed JSON header: expected '", c, "' at offset ",
                   m_i);
    ++m_i;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      // Copy each run of plain characters in one append (a whole name, usually): same linear
      // cost as per-character appends, a smaller constant on long names.
      std::size_t k = m_i;
      while (k < m_n) {
        const unsigned char c = static_cast<unsigned char>(m_s[k]);
        if (c == '"' || c == '\\' || c < 0x20) break;
        ++k;
      }
      out.append(m_s + m_i, k - m_i);
      m_i = k;
      SPARSENM_CHECK(m_i < m_n, "safetensors: malformed JSON header: unterminated string");
      const unsigned char c = static_cast<unsigned char>(m_s[m_i++]);
      if (c == '"') break;
      SPARSENM_CHECK(c >= 0x20, "safetensors: malformed JSON header: control character in string");
      SPARSENM_CHECK(m_i < m_n, "safetensors: malformed JSON header: bad escape");
      const char e = m_s[m_i++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          SPARSENM_CHECK(m_n - m_i >= 4, "safetensors: malformed JSON header: bad \\u escape");
          unsigned v = 0;
          for (int k = 0; k < 4; ++k) {
            const char h = m_s[m_i++];
            v <<= 4;
            if (h >= '0' && h <= '9')
              v |= unsigned(h - '0');
            else if (h >= 'a' && h <= 'f')
              v |= unsigned(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F')
              v |= unsigned(h - 'A' + 10);
            else
              raise("safetensors: malformed JSON header: bad \\u escape");
          }
          // UTF-8 encode the code unit (surrogate pairs are kept as two 3-byte sequences; names
          // with them are exotic and still round-trip through our writer, which never escapes).
          if (v < 0x80) {
            out += char(v);
          } else if (v < 0x800) {
            out += char(0xC0 | (v >> 6));
            out += char(0x80 | (v & 0x3F));
          } else {
            out += char(0xE0 | (v >> 12));
            out += char(0x80 | ((v >> 6) & 0x3F));
            out += char(0x80 | (v & 0x3F));
          }
          break;
        }
        default:
          raise("safetensors: malformed JSON header: bad escape");
      }
    }
    return out;
  }
  std::int64_t integer() {
    ws();
    SPARSENM_CHECK(m_i < m_n && m_s[m_i] >= '0' && m_s[m_i] <= '9',
                   "safetensors: malformed JSON header: expected a non-negative integer at offset ",
                   m_i);
    std::int64_t v = 0;
    while (m_i < m_n && m_s[m_i] >= '0' && m_s[m_i] <= '9') {
      v = v * 10 + (m_s[m_i++] - '0');  // v <= 2^55 before, so no overflow here
      SPARSENM_CHECK(v <= (std::int64_t(1) << 55), "safetensors: integer at offset ", m_i,
                     " of the header exceeds 2^55 (the limit)");
    }
    return v;
  }
  /// An array of at most `max_len` integers: the field `field` of tensor `key` (for messages).
  std::vector<std::int64_t> int_array(std::size_t max_len, const std::string& key,
                                      const char* field) {
    expect('[');
    std::vector<std::int64_t> out;
    if (peek(']')) {
      ++m_i;
      return out;
    }
    while (true) {
      SPARSENM_CHECK(out.size() < max_len, "safetensors: tensor '", key, "': ", field,
                     " has more than ", max_len, " entries (the limit)");
      out.push_back(integer());
      if (peek(',')) {
        ++m_i;
        continue;
      }
      expect(']');
      return out;
    }
  }
  bool at_end() {
    ws();
    return m_i == m_n;
  }

 private:
  const char* m_s;
  std::size_t m_n;
  std::size_t m_i = 0;
};

}  // namespace detail

inline void SafetensorsFile::add(const std::string& name, Tensor t) {
  const detail::SafetensorsLimits limits;
  SPARSENM_CHECK(!name.empty(), "SafetensorsFile::add: empty tensor name");
  SPARSENM_CHECK(name != "__metadata__", "SafetensorsFile::add: '__metadata__' is reserved");
  SPARSENM_CHECK(name.size() <= limits.max_name_bytes, "SafetensorsFile::add: tensor name of ",
                 name.size(), " bytes exceeds the limit of ", limits.max_name_bytes);
  SPARSENM_CHECK(m_tensors.size() < limits.max_tensors, "SafetensorsFile::add: already ",
                 m_tensors.size(), " tensors, the limit");
  SPARSENM_CHECK(t.shape.size() <= limits.max_rank, "SafetensorsFile::add: tensor '", name,
                 "' has rank ", t.shape.size(), ", over the limit of ", limits.max_rank);
  const std::size_t need =
      detail::checked_byte_size(t.shape, dtype_size(t.dtype), std::size_t(1) << 62, name.c_str());
  SPARSENM_CHECK(t.bytes.size() == need, "SafetensorsFile::add: tensor '", name, "' holds ",
                 t.bytes.size(), " bytes but its shape needs ", need);
  // Insert into the index first: it is the duplicate check, and if it throws nothing has changed.
  const auto [it, inserted] = m_index.emplace(name, m_tensors.size());
  SPARSENM_CHECK(inserted, "SafetensorsFile::add: duplicate tensor name '", name, "'");
  try {
    m_tensors.emplace_back(name, std::move(t));
  } catch (...) {
    m_index.erase(it);  // keep index and vector in step if the vector cannot grow
    throw;
  }
}

inline const Tensor& SafetensorsFile::at(const std::string& name) const {
  const Tensor* t = find(name);
  SPARSENM_CHECK(t != nullptr, "safetensors: no tensor named '", name, "'");
  return *t;
}

inline void set_nm_metadata(SafetensorsFile& file, const NMMetadata& meta) {
  check_nm(meta.nm, "meta.nm");
  file.metadata["n"] = std::to_string(meta.nm.n);
  file.metadata["m"] = std::to_string(meta.nm.m);
  file.metadata["layout"] = to_string(meta.layout);
  file.metadata["method"] = meta.method;
}

inline NMMetadata get_nm_metadata(const SafetensorsFile& file) {
  auto get = [&](const char* key) -> const std::string& {
    const auto it = file.metadata.find(key);
    SPARSENM_CHECK(it != file.metadata.end(), "safetensors: __metadata__ has no '", key, "'");
    return it->second;
  };
  auto to_int = [&](const char* key) {
    const std::string& s = get(key);
    SPARSENM_CHECK(!s.empty() && s.size() <= 4 &&
                       std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }),
                   "safetensors: __metadata__ '", key, "' = '", s, "' is not a small integer");
    return std::stoi(s);
  };
  NMMetadata meta;
  meta.nm = NM{to_int("n"), to_int("m")};
  check_nm(meta.nm, "__metadata__ n:m");
  const std::string& layout = get("layout");
  if (layout == "rowwise") {
    meta.layout = Layout::RowWise;
  } else {
    SPARSENM_CHECK(layout == "transposable", "safetensors: __metadata__ layout = '", layout,
                   "' must be 'rowwise' or 'transposable'");
    meta.layout = Layout::Transposable;
  }
  meta.method = get("method");
  return meta;
}

inline std::string safetensors_bytes(const SafetensorsFile& file) {
  detail::check_little_endian();
  std::string header = "{";
  bool first = true;
  if (!file.metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [k, v] : file.metadata) {
      if (!first) header += ",";
      first = false;
      header += detail::json_quote(k) + ":" + detail::json_quote(v);
    }
    header += "}";
  }
  std::size_t offset = 0;
  for (const auto& [name, t] : file.tensors()) {
    if (header.size() > 1) header += ",";
    header += detail::json_quote(name) + ":{\"dtype\":\"" + to_string(t.dtype) + "\",\"shape\":[";
    for (std::size_t k = 0; k < t.shape.size(); ++k)
      header += (k ? "," : "") + std::to_string(t.shape[k]);
    header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(offset + t.bytes.size()) + "]}";
    offset += t.bytes.size();
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');  // keeps the buffer 8-byte aligned
  const detail::SafetensorsLimits limits;
  SPARSENM_CHECK(header.size() <= limits.max_header_bytes, "safetensors_bytes: header of ",
                 header.size(), " bytes exceeds the limit of ", limits.max_header_bytes,
                 " (too much metadata); readers would refuse the file");
  std::string out;
  out.reserve(8 + header.size() + offset);
  const std::uint64_t n = header.size();
  for (int k = 0; k < 8; ++k) out.push_back(char((n >> (8 * k)) & 0xff));
  out += header;
  for (const auto& [name, t] : file.tensors())
    out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  return out;
}

inline SafetensorsFile parse_safetensors(const std::uint8_t* data, std::size_t size) {
  return detail::parse_safetensors_limited(data, size, detail::SafetensorsLimits{});
}

inline SafetensorsFile detail::parse_safetensors_limited(const std::uint8_t* data, std::size_t size,
                                                         const SafetensorsLimits& limits) {
  check_little_endian();
  SPARSENM_CHECK(size >= 8, "safetensors: file is ", size,
                 " bytes, shorter than the 8-byte header length");
  std::uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= std::uint64_t(data[k]) << (8 * k);
  // The cap first: a garbage length is then reported as what it is whatever the file size.
  SPARSENM_CHECK(n <= limits.max_header_bytes, "safetensors: header length ", n,
                 " exceeds the limit of ", limits.max_header_bytes, " bytes");
  SPARSENM_CHECK(n >= 2 && n <= size - 8, "safetensors: header length ", n,
                 " does not fit the file size ", size, " (truncated or corrupted file)");
  const char* hdr = reinterpret_cast<const char*>(data + 8);
  const std::size_t buffer_size = size - 8 - static_cast<std::size_t>(n);
  const std::uint8_t* buffer = data + 8 + n;

  struct Entry {
    std::string name;
    Tensor tensor;
    std::int64_t begin, end;
  };
  std::vector<Entry> entries;
  // Name -> position in `entries`: the duplicate check (O(log n) each), then the file's index.
  std::map<std::string, std::size_t, std::less<>> index;
  SafetensorsFile out;
  bool have_meta = false;
  JsonCursor j(hdr, static_cast<std::size_t>(n));
  j.expect('{');
  if (j.peek('}')) {
    j.expect('}');
  } else {
    while (true) {
      std::string key = j.string();
      j.expect(':');
      j.expect('{');
      if (key == "__metadata__") {
        SPARSENM_CHECK(!have_meta, "safetensors: duplicate '__metadata__'");
        have_meta = true;
        if (!j.peek('}')) {
          while (true) {
            std::string k = j.string();
            j.expect(':');
            std::string v = j.string();
            const auto [it, fresh] = out.metadata.emplace(std::move(k), std::move(v));
            SPARSENM_CHECK(fresh, "safetensors: duplicate metadata key '", it->first, "'");
            if (j.peek(',')) {
              j.expect(',');
              continue;
            }
            break;
          }
        }
        j.expect('}');
      } else {
        SPARSENM_CHECK(!key.empty(), "safetensors: empty tensor name");
        SPARSENM_CHECK(key.size() <= limits.max_name_bytes, "safetensors: tensor name of ",
                       key.size(), " bytes exceeds the limit of ", limits.max_name_bytes);
        SPARSENM_CHECK(entries.size() < limits.max_tensors, "safetensors: more than ",
                       limits.max_tensors, " tensors (the limit)");
        SPARSENM_CHECK(index.emplace(key, entries.size()).second,
                       "safetensors: duplicate tensor name '", key, "'");
        Entry e{std::move(key), Tensor{}, 0, 0};
        const std::string& name = e.name;
        bool have_dtype = false, have_shape = false, have_offsets = false;
        while (true) {
          const std::string field = j.string();
          j.expect(':');
          if (field == "dtype" && !have_dtype) {
            e.tensor.dtype = safetensors_parse_dtype(j.string());
            have_dtype = true;
          } else if (field == "shape" && !have_shape) {
            e.tensor.shape = j.int_array(limits.max_rank, name, "shape");
            have_shape = true;
          } else if (field == "data_offsets" && !have_offsets) {
            const std::vector<std::int64_t> o = j.int_array(2, name, "data_offsets");
            SPARSENM_CHECK(o.size() == 2, "safetensors: tensor '", name,
                           "': data_offsets must have two entries");
            e.begin = o[0];
            e.end = o[1];
            have_offsets = true;
          } else {
            raise(concat("safetensors: tensor '", name, "': unexpected or duplicate field '", field,
                         "'"));
          }
          if (j.peek(',')) {
            j.expect(',');
            continue;
          }
          break;
        }
        j.expect('}');
        SPARSENM_CHECK(have_dtype && have_shape && have_offsets, "safetensors: tensor '", name,
                       "' needs dtype, shape and data_offsets");
        SPARSENM_CHECK(e.begin <= e.end && static_cast<std::uint64_t>(e.end) <= buffer_size,
                       "safetensors: tensor '", name, "': data_offsets [", e.begin, ", ", e.end,
                       "] outside the ", buffer_size, "-byte buffer (truncated or corrupted file)");
        const std::size_t need = checked_byte_size(e.tensor.shape, dtype_size(e.tensor.dtype),
                                                   std::size_t(1) << 62, name.c_str());
        SPARSENM_CHECK(static_cast<std::size_t>(e.end - e.begin) == need, "safetensors: tensor '",
                       name, "': ", e.end - e.begin, " bytes but dtype ", to_string(e.tensor.dtype),
                       " and its shape need ", need);
        entries.push_back(std::move(e));
      }
      if (j.peek(',')) {
        j.expect(',');
        continue;
      }
      break;
    }
    j.expect('}');
  }
  SPARSENM_CHECK(j.at_end(), "safetensors: malformed JSON header: trailing characters");
  // The tensors must tile the buffer exactly (the format forbids holes and overlaps). Checked
  // before any byte is copied: overlapping offsets could otherwise ask for n copies of the buffer.
  std::vector<const Entry*> by_offset;
  by_offset.reserve(entries.size());
  for (const Entry& e : entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin < b->begin || (a->begin == b->begin && a->end < b->end);
  });
  std::int64_t cursor = 0;
  for (const Entry* e : by_offset) {
    SPARSENM_CHECK(e->begin == cursor, "safetensors: tensor '", e->name, "' starts at ", e->begin,
                   " but the previous tensor ends at ", cursor, " (holes/overlaps are invalid)");
    cursor = e->end;
  }
  SPARSENM_CHECK(static_cast<std::uint64_t>(cursor) == buffer_size, "safetensors: tensors cover ",
                 cursor, " bytes but the buffer has ", buffer_size,
                 " (truncated or corrupted file)");
  // Every entry was validated as add() would (name, limits, byte size, no duplicate), so the
  // tensors and the index built above move in as they are: no second lookup per tensor.
  out.m_tensors.reserve(entries.size());
  for (Entry& e : entries) {
    e.tensor.bytes.assign(buffer + e.begin, buffer + e.end);
    out.m_tensors.emplace_back(std::move(e.name), std::move(e.tensor));
  }
  out.m_index = std::move(index);
  return out;
}

inline void save_safetensors(const std::string& path, const SafetensorsFile& file) {
  detail::write_file_bytes(path, safetensors_bytes(file));
}

inline SafetensorsFile load_safetensors(const std::string& path) {
  const std::vector<std::uint8_t> bytes = detail::read_file_bytes(path);
  try {
    return parse_safetensors(bytes.data(), bytes.size());
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + " [file '" + path + "']");
  }
}

}  // namespace sparsenm

#endif  // SPARSENM_IO_SAFETENSORS_HPP
