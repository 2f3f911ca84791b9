// SPDX-License-Identifier: Apache-2.0
// A small RFC 4180 CSV writer (fields with a comma, quote or newline are quoted, quotes doubled).
#ifndef SPARSENM_TRAIN_CSV_HPP
#define SPARSENM_TRAIN_CSV_HPP

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "../core/error.hpp"

namespace sparsenm {

/// Quotes a field if it needs it.
inline std::string csv_escape(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

/// Collects rows with a fixed number of columns; `str()` gives the text, `save()` writes it.
class CsvWriter {
 public:
  /// Starts the table with its header row, which fixes the column count; throws sparsenm::Error
  /// on an empty header.
  explicit CsvWriter(std::vector<std::string> header) : m_columns(header.size()) {
    SPARSENM_CHECK(!header.empty(), "CsvWriter: header must not be empty");
    add_row(header);
  }
  /// Appends a row; throws unless it has as many fields as the header.
  void add_row(const std::vector<std::string>& fields) {
    SPARSENM_CHECK(fields.size() == m_columns, "CsvWriter: row has ", fields.size(),
                   " fields but the header has ", m_columns);
    for (std::size_t k = 0; k < fields.size(); ++k)
      m_text << (k ? "," : "") << csv_escape(fields[k]);
    m_text << "\n";
  }
  /// The CSV text so far: header and rows, each line ending in "\n".
  std::string str() const { return m_text.str(); }
  /// Writes str() to `path` (created or truncated); throws sparsenm::Error naming the path if it
  /// cannot be opened or written.
  void save(const std::string& path) const {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    SPARSENM_CHECK(f != nullptr, "cannot open '", path, "' for writing");
    const std::string s = str();
    const bool ok = std::fwrite(s.data(), 1, s.size(), f) == s.size();
    SPARSENM_CHECK(std::fclose(f) == 0 && ok, "error while writing '", path, "'");
  }

 private:
  std::size_t m_columns;
  std::ostringstream m_text;
};

}  // namespace sparsenm

#endif  // SPARSENM_TRAIN_CSV_HPP
