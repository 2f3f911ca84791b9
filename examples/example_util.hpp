// SPDX-License-Identifier: Apache-2.0
// Small helpers the example programs share (text and files, nothing of the library's own).
#ifndef SPARSENM_EXAMPLES_EXAMPLE_UTIL_HPP
#define SPARSENM_EXAMPLES_EXAMPLE_UTIL_HPP

#include <sys/stat.h>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

namespace example_util {

/// The non-empty fields of `s` between separators `sep`.
inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

/// printf-style formatting of one number (`f` holds one conversion for a double).
inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// A JSON number with 10 significant digits.
inline std::string json_number(double v) { return fmt("%.10g", v); }

/// mkdir -p: creates every missing directory of `path` (existing ones are left alone).
inline void make_dirs(const std::string& path) {
  std::string acc;
  for (const std::string& part : split(path, '/')) {
    acc += (acc.empty() && path[0] != '/') ? part : "/" + part;
    mkdir(acc.c_str(), 0755);
  }
}

}  // namespace example_util

#endif  // SPARSENM_EXAMPLES_EXAMPLE_UTIL_HPP
