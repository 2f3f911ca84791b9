// SPDX-License-Identifier: Apache-2.0
// The bodies of the libFuzzer targets as plain functions, so that the suite can run them without
// libFuzzer: fuzz_npy.cpp / fuzz_safetensors.cpp call them from LLVMFuzzerTestOneInput, and
// fuzz/replay.cpp (the ctest io_fuzz_replay, any compiler) feeds them the tracked corpus.
//
// Contract of a harness: a reader either throws sparsenm::Error or returns something that meets
// every invariant below; the file-path loader agrees with the in-memory parser on every input; a
// tensor converts to exactly the Eigen objects its dtype and rank allow. A broken invariant aborts
// and any other exception escapes: libFuzzer and the replay both count either as a crash.
#ifndef SPARSENM_FUZZ_HARNESS_HPP
#define SPARSENM_FUZZ_HARNESS_HPP

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <sparsenm/io/npy.hpp>
#include <sparsenm/io/safetensors.hpp>

namespace sparsenm_fuzz {

[[noreturn]] inline void fail(const char* what, int line) {
  std::fprintf(stderr, "fuzz harness: invariant broken at line %d: %s\n", line, what);
  std::abort();
}

#define SPARSENM_FUZZ_ASSERT(cond)                       \
  do {                                                   \
    if (!(cond)) ::sparsenm_fuzz::fail(#cond, __LINE__); \
  } while (0)

/// A scratch file of this process for the file-path loaders (the pid keeps libFuzzer's -fork and
/// -jobs workers apart; TMPDIR is honoured).
inline std::string scratch_path(const char* ext) {
  return (std::filesystem::temp_directory_path() /
          ("sparsenm_fuzz_" + std::to_string(::getpid()) + ext))
      .string();
}

inline bool same_tensor(const sparsenm::Tensor& a, const sparsenm::Tensor& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.bytes == b.bytes;
}

/// to_matrix<T>(false/true) and to_vector<T>() succeed exactly when the dtype is T's and the rank
/// fits, and then hold the tensor's bytes in its shape.
template <class T>
void check_conversions(const sparsenm::Tensor& t) {
  const bool same_dtype = t.dtype == sparsenm::dtype_of<T>();
  const std::size_t rank = t.shape.size();
  for (const bool allow_vector : {false, true}) {
    const bool ok = same_dtype && (rank == 2 || (allow_vector && rank == 1));
    try {
      const auto m = t.to_matrix<T>(allow_vector);
      SPARSENM_FUZZ_ASSERT(ok);
      SPARSENM_FUZZ_ASSERT(m.rows() == (rank == 2 ? t.shape[0] : 1));
      SPARSENM_FUZZ_ASSERT(m.cols() == t.shape[rank - 1]);
      SPARSENM_FUZZ_ASSERT(static_cast<std::size_t>(m.size()) * sizeof(T) == t.bytes.size());
      if (m.size() > 0)
        SPARSENM_FUZZ_ASSERT(std::memcmp(m.data(), t.bytes.data(), t.bytes.size()) == 0);
    } catch (const sparsenm::Error&) {
      SPARSENM_FUZZ_ASSERT(!ok);
    }
  }
  const bool ok = same_dtype && rank == 1;
  try {
    const auto v = t.to_vector<T>();
    SPARSENM_FUZZ_ASSERT(ok);
    SPARSENM_FUZZ_ASSERT(v.size() == t.shape[0]);
    SPARSENM_FUZZ_ASSERT(static_cast<std::size_t>(v.size()) * sizeof(T) == t.bytes.size());
    if (v.size() > 0)
      SPARSENM_FUZZ_ASSERT(std::memcmp(v.data(), t.bytes.data(), t.bytes.size()) == 0);
  } catch (const sparsenm::Error&) {
    SPARSENM_FUZZ_ASSERT(!ok);
  }
}

inline void check_all_conversions(const sparsenm::Tensor& t) {
  check_conversions<float>(t);
  check_conversions<double>(t);
  check_conversions<std::uint8_t>(t);
  check_conversions<std::int32_t>(t);
  check_conversions<std::int64_t>(t);
}

/// Whether an input also goes through the file-path loader: every input the parser accepted (its
/// file round trip matters), and one in 16 of the rejected ones, picked by a hash of the bytes so
/// the choice is the same each time libFuzzer runs that input. The loader rejects through the same
/// code for all of them, and a file per input cut the exec rate about 4x (7k vs 30k execs/s).
inline bool check_files_for(const std::uint8_t* data, std::size_t size, bool parsed) {
  if (parsed) return true;
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (std::size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 16777619u;
  return h % 16 == 0;
}

/// Writes the raw input to a scratch file and loads it with `load`: it must throw sparsenm::Error
/// exactly when the in-memory parse did, and otherwise give the same result (`same`).
template <class Value, class Load, class Same>
void check_file_loader(const std::string& path, const std::uint8_t* data, std::size_t size,
                       bool parsed, const Value& expected, Load load, Same same) {
  sparsenm::detail::write_file_bytes(path, std::string(reinterpret_cast<const char*>(data), size),
                                     false);
  try {
    const Value loaded = load(path);
    SPARSENM_FUZZ_ASSERT(parsed);
    SPARSENM_FUZZ_ASSERT(same(loaded, expected));
  } catch (const sparsenm::Error&) {
    SPARSENM_FUZZ_ASSERT(!parsed);
  }
}

/// .npy: parse_npy, load_npy, npy_bytes / save_npy round trips, and every conversion.
inline int fuzz_npy_one(const std::uint8_t* data, std::size_t size) {
  sparsenm::Tensor t;
  bool parsed = true;
  try {
    t = sparsenm::parse_npy(data, size);
  } catch (const sparsenm::Error&) {
    parsed = false;  // rejected: the expected outcome for almost every input
  }
  const std::string path = scratch_path(".npy");
  const bool files = check_files_for(data, size, parsed);
  if (files) check_file_loader(path, data, size, parsed, t, sparsenm::load_npy, same_tensor);
  if (parsed) {
    const std::size_t need = sparsenm::detail::checked_byte_size(
        t.shape, sparsenm::dtype_size(t.dtype), std::size_t(1) << 62, "fuzz");
    SPARSENM_FUZZ_ASSERT(t.bytes.size() == need);
    const std::string again = sparsenm::npy_bytes(t);
    const sparsenm::Tensor u =
        sparsenm::parse_npy(reinterpret_cast<const std::uint8_t*>(again.data()), again.size());
    SPARSENM_FUZZ_ASSERT(same_tensor(u, t));
    sparsenm::save_npy(path, t);
    SPARSENM_FUZZ_ASSERT(same_tensor(sparsenm::load_npy(path), t));
    check_all_conversions(t);
  }
  if (files) std::remove(path.c_str());
  return 0;
}

inline bool same_file(const sparsenm::SafetensorsFile& a, const sparsenm::SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors().size() != b.tensors().size()) return false;
  for (std::size_t k = 0; k < a.tensors().size(); ++k)
    if (a.tensors()[k].first != b.tensors()[k].first ||
        !same_tensor(a.tensors()[k].second, b.tensors()[k].second))
      return false;
  return true;
}

/// .safetensors: parse_safetensors, load_safetensors, the name index (contains/at), a rebuild
/// through add() (what the reader accepts the writer must accept), safetensors_bytes /
/// save_safetensors round trips, get_nm_metadata and every conversion of every tensor.
inline int fuzz_safetensors_one(const std::uint8_t* data, std::size_t size) {
  sparsenm::SafetensorsFile f;
  bool parsed = true;
  try {
    f = sparsenm::parse_safetensors(data, size);
  } catch (const sparsenm::Error&) {
    parsed = false;
  }
  const std::string path = scratch_path(".safetensors");
  const bool files = check_files_for(data, size, parsed);
  if (files) check_file_loader(path, data, size, parsed, f, sparsenm::load_safetensors, same_file);
  if (parsed) {
    sparsenm::SafetensorsFile rebuilt;
    rebuilt.metadata = f.metadata;
    for (const auto& [name, t] : f.tensors()) {
      SPARSENM_FUZZ_ASSERT(f.contains(name));
      SPARSENM_FUZZ_ASSERT(&f.at(name) == &t);  // the index points at this very entry
      rebuilt.add(name, t);
      check_all_conversions(t);
    }
    SPARSENM_FUZZ_ASSERT(!f.contains(""));  // empty names are never stored
    const std::string again = sparsenm::safetensors_bytes(f);
    SPARSENM_FUZZ_ASSERT(sparsenm::safetensors_bytes(rebuilt) == again);
    const sparsenm::SafetensorsFile g = sparsenm::parse_safetensors(
        reinterpret_cast<const std::uint8_t*>(again.data()), again.size());
    SPARSENM_FUZZ_ASSERT(same_file(g, f));
    sparsenm::save_safetensors(path, f);
    SPARSENM_FUZZ_ASSERT(same_file(sparsenm::load_safetensors(path), f));
    try {
      (void)sparsenm::get_nm_metadata(f);  // must not crash on arbitrary metadata
    } catch (const sparsenm::Error&) {
    }
  }
  if (files) std::remove(path.c_str());
  return 0;
}

}  // namespace sparsenm_fuzz

#endif  // SPARSENM_FUZZ_HARNESS_HPP
