// SPDX-License-Identifier: Apache-2.0
#ifndef SPARSENM_CORE_TYPES_HPP
#define SPARSENM_CORE_TYPES_HPP

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <ostream>

#include <Eigen/Core>

#include "../config.hpp"

namespace sparsenm {

using Index = Eigen::Index;

/// Dense matrices are row-major: a weight is (out, in) like PyTorch nn.Linear.weight, and N:M
/// groups run along each row, so a group is m contiguous values in memory.
template <class S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class S>
using Vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;

/// A 0/1 mask with the weight's shape (1 = active). Any other value is a usage error.
using Mask = Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Keep n of every m. 1 <= n <= m; validated where used (check_nm).
struct NM {
  /// Kept entries per group (1 <= n <= m).
  int n;
  /// Group size (1 <= m <= 32).
  int m;
};

constexpr bool operator==(NM a, NM b) { return a.n == b.n && a.m == b.m; }
constexpr bool operator!=(NM a, NM b) { return !(a == b); }

inline std::ostream& operator<<(std::ostream& os, NM nm) {
  return os << "NM{" << nm.n << ',' << nm.m << '}';
}

/// RowWise: groups of m contiguous entries of a row hold n active entries.
/// Transposable: m x m tiles hold n active entries per tile-row and per tile-column (CHTs24
/// Sec. 3.1), so both W and W^T are row-wise N:M.
enum class Layout { RowWise, Transposable };

inline const char* to_string(Layout layout) {
  return layout == Layout::RowWise ? "rowwise" : "transposable";
}

inline std::ostream& operator<<(std::ostream& os, Layout layout) { return os << to_string(layout); }

namespace detail {
/// std::allocator with 64-byte (cache line, one AVX-512 vector) alignment, whatever the
/// translation unit's flags. Eigen::aligned_allocator aligns to EIGEN_MAX_ALIGN_BYTES, 16 in a
/// build without -march: the runtime-dispatched AVX-512 kernels then split every 64-byte load of
/// their packed buffers across two cache lines (measured 1.8x slower SpMM).
template <class T>
struct CacheAlignedAllocator {
  using value_type = T;
  static constexpr std::size_t kAlignment = 64;
  CacheAlignedAllocator() = default;
  template <class U>
  CacheAlignedAllocator(const CacheAlignedAllocator<U>&) noexcept {}
  // malloc + manual alignment (as Eigen's handmade_aligned_malloc), not aligned operator new:
  // glibc serves large aligned requests from fresh mmaps, and per-call buffers (PackedTokens in
  // the convenience kernels) then page-fault on every call.
  T* allocate(std::size_t n) {
    if (n > (std::numeric_limits<std::size_t>::max() - kAlignment) / sizeof(T))
      throw std::bad_alloc();
    void* raw = std::malloc(n * sizeof(T) + kAlignment);
    if (raw == nullptr) throw std::bad_alloc();
    const std::uintptr_t at =
        (reinterpret_cast<std::uintptr_t>(raw) + kAlignment) & ~std::uintptr_t(kAlignment - 1);
    void* aligned = reinterpret_cast<void*>(at);
    static_cast<void**>(aligned)[-1] = raw;  // malloc aligns to 16, so at - raw >= 16
    return static_cast<T*>(aligned);
  }
  void deallocate(T* p, std::size_t) noexcept {
    if (p != nullptr) std::free(reinterpret_cast<void**>(p)[-1]);
  }
  template <class U>
  bool operator==(const CacheAlignedAllocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const CacheAlignedAllocator<U>&) const noexcept {
    return false;
  }
};
}  // namespace detail

}  // namespace sparsenm

#endif  // SPARSENM_CORE_TYPES_HPP
