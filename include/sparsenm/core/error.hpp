// SPDX-License-Identifier: Apache-2.0
#ifndef SPARSENM_CORE_ERROR_HPP
#define SPARSENM_CORE_ERROR_HPP

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "../config.hpp"

namespace sparsenm {

/// Every misuse of a public entry point (bad shape, bad parameter, NaN where none is allowed)
/// throws this. It derives from std::invalid_argument so callers can catch either.
struct Error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

namespace detail {

/// One cold, out-of-line throw site keeps the checks in hot paths small (manif's raise()).
[[noreturn]] SPARSENM_COLD SPARSENM_NOINLINE inline void raise(const std::string& message) {
  throw Error("sparsenm: " + message);
}

/// Builds a message from any streamable parts: detail::concat("cols = ", c, " ...").
template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream os;
  os.precision(17);
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}

}  // namespace detail
}  // namespace sparsenm

/// Always-on check (not compiled out in release): throws sparsenm::Error with the streamed parts.
#define SPARSENM_CHECK(cond, ...)                                                    \
  do {                                                                               \
    if (!(cond)) ::sparsenm::detail::raise(::sparsenm::detail::concat(__VA_ARGS__)); \
  } while (0)

#endif  // SPARSENM_CORE_ERROR_HPP
