// SPDX-License-Identifier: Apache-2.0
// Checkpoint pieces: the state an object lists through its visit_state(f) (optimizers, the
// topology refresher) written to and read back from a SafetensorsFile under a name prefix.
// Reading runs in two passes over the same visit: the first only checks (every tensor present,
// dtype and shape as the object expects, counters in range), the second assigns, so a corrupted or
// mismatched checkpoint throws sparsenm::Error and changes nothing.
#ifndef SPARSENM_NN_CHECKPOINT_HPP
#define SPARSENM_NN_CHECKPOINT_HPP

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../io/safetensors.hpp"

namespace sparsenm {

/// A visit_state() callback that adds every piece of state to `file` as `prefix + name`:
/// matrices as 2-D tensors of S, integer counters as one-element I64 tensors, reals as F64.
template <class S>
/// Used by SparseTrainer::checkpoint(); usable for any object with visit_state():
/// \code
///   SafetensorsFile f;
///   StateWriter<float> w{f, "opt."};
///   adam.visit_state(w);           // -> "opt.exp_avg", "opt.exp_avg_sq", "opt.steps", ...
///   save_safetensors("adam.safetensors", f);
/// \endcode
struct StateWriter {
  SafetensorsFile& file;  ///< the file the tensors are added to (held by reference)
  std::string prefix;     ///< prepended to every state name (e.g. "sparse.0.opt.")

  /// Adds matrix `m` as the 2-D tensor `prefix + name` (dtype of S, shape [rows, cols]). Throws
  /// sparsenm::Error if the file already holds that name.
  void operator()(const char* name, const Matrix<S>& m) { file.add(prefix + name, m); }
  /// Adds a scalar as the one-element tensor `prefix + name`: integers (step counters, seeds) as
  /// I64 (a uint64 seed keeps all 64 bits, two's complement), floating point as F64. Throws
  /// sparsenm::Error if the file already holds that name.
  template <class T, class = std::enable_if_t<std::is_arithmetic<T>::value>>
  void operator()(const char* name, const T& v) {
    if constexpr (std::is_integral<T>::value) {
      Eigen::Matrix<std::int64_t, 1, 1> x;
      x(0) = static_cast<std::int64_t>(v);
      file.add(prefix + name, Tensor::from_eigen(x, true));
    } else {
      Eigen::Matrix<double, 1, 1> x;
      x(0) = static_cast<double>(v);
      file.add(prefix + name, Tensor::from_eigen(x, true));
    }
  }
};

/// A visit_state() callback that reads the state back: with `assign` false it only checks that
/// every tensor exists with the dtype and shape of the object's current state (and that counters
/// fit their type); with `assign` true it copies. Throws sparsenm::Error naming the tensor.
template <class S>
/// Restoring is two visits, so a bad file changes nothing:
/// \code
///   StateReader<float> check{f, "opt.", false};
///   adam.visit_state(check);       // throws on a missing or mismatched tensor
///   StateReader<float> apply{f, "opt.", true};
///   adam.visit_state(apply);       // copies
/// \endcode
struct StateReader {
  const SafetensorsFile& file;   ///< the checkpoint read from (held by reference)
  std::string prefix;            ///< prepended to every state name (e.g. "sparse.0.opt.")
  bool assign = false;           ///< false: check only; true: check and copy into the object
  mutable std::size_t seen = 0;  ///< tensors read (a loader compares it with the file's count)

  /// The tensor `prefix + name`, counted in `seen`; throws sparsenm::Error if it is missing.
  const Tensor& get(const char* name) const {
    const std::string key = prefix + name;
    ++seen;
    SPARSENM_CHECK(file.contains(key), "checkpoint: tensor '", key, "' is missing");
    return file.at(key);
  }

  /// Checks that `prefix + name` is a 2-D tensor of S with m's current shape (the object's shapes
  /// are authoritative: a checkpoint never resizes state) and, with `assign`, copies it into m.
  /// Throws sparsenm::Error naming the tensor, its dtype and shape, and the expected ones.
  void operator()(const char* name, Matrix<S>& m) const {
    const Tensor& t = get(name);
    SPARSENM_CHECK(t.dtype == dtype_of<S>() && t.shape.size() == 2 && t.shape[0] == m.rows() &&
                       t.shape[1] == m.cols(),
                   "checkpoint: tensor '", prefix, name, "' is ", to_string(t.dtype), " ",
                   shape_string(t), " but ", to_string(dtype_of<S>()), " [", m.rows(), ", ",
                   m.cols(), "] is expected");
    if (assign) m = t.to_matrix<S>();
  }

  /// Reads a scalar written by StateWriter: a one-element I64 tensor for integers, F64 for
  /// floating point. Integer counters must lie in [0, max(T) / 2] (so they can keep
  /// counting after a resume); a std::uint64_t (a seed) takes all 64 bits; reals must be finite.
  /// With `assign` the value is stored into v. Throws sparsenm::Error naming the tensor otherwise.
  template <class T, class = std::enable_if_t<std::is_arithmetic<T>::value>>
  void operator()(const char* name, T& v) const {
    const Tensor& t = get(name);
    constexpr bool integral = std::is_integral<T>::value;
    const DType want = integral ? DType::I64 : DType::F64;
    SPARSENM_CHECK(t.dtype == want && t.shape.size() == 1 && t.shape[0] == 1,
                   "checkpoint: tensor '", prefix, name, "' is ", to_string(t.dtype), " ",
                   shape_string(t), " but ", to_string(want), " [1] is expected");
    if constexpr (std::is_same<T, std::uint64_t>::value) {  // seeds: all 64 bits, two's complement
      const std::int64_t x = t.to_vector<std::int64_t>()(0);
      if (assign) v = static_cast<std::uint64_t>(x);
    } else if constexpr (integral) {
      const std::int64_t x = t.to_vector<std::int64_t>()(0);
      // Half the type's range: the counters keep counting after a resume (found by fuzzing: a
      // restored TANS tau of INT_MAX overflowed at the next step).
      const std::uint64_t limit = static_cast<std::uint64_t>(std::numeric_limits<T>::max()) / 2;
      SPARSENM_CHECK(x >= 0 && static_cast<std::uint64_t>(x) <= limit, "checkpoint: counter '",
                     prefix, name, "' = ", x, " is out of range [0, ", limit, "]");
      if (assign) v = static_cast<T>(x);
    } else {
      const double x = t.to_vector<double>()(0);
      SPARSENM_CHECK(std::isfinite(x), "checkpoint: '", prefix, name, "' = ", x, " is not finite");
      if (assign) v = static_cast<T>(x);
    }
  }

  /// "[d0, d1, ...]": a tensor's shape for error messages.
  static std::string shape_string(const Tensor& t) {
    std::string s = "[";
    for (std::size_t i = 0; i < t.shape.size(); ++i)
      s += (i ? ", " : "") + std::to_string(t.shape[i]);
    return s + "]";
  }
};

}  // namespace sparsenm

#endif  // SPARSENM_NN_CHECKPOINT_HPP
