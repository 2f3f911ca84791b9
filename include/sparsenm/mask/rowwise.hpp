// SPDX-License-Identifier: Apache-2.0
// Row-wise N:M masks: projection (top-n per group), legality check, uniform random masks.
// docs/algorithms.md "Layouts and masks"; chts24 eq. (2) restricted to 1 x m tiles.
#ifndef SPARSENM_MASK_ROWWISE_HPP
#define SPARSENM_MASK_ROWWISE_HPP

#include <atomic>
#include <cstdint>

#include <Eigen/Core>

#include "../core/error.hpp"
#include "../core/parallel.hpp"
#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "detail/common.hpp"
#include "detail/dispatch.hpp"
#include "detail/rowwise_kernels.hpp"

namespace sparsenm {

/// Row-wise N:M projection: in every group of m contiguous entries of a row, keeps the n largest
/// scores (the legal mask maximising the kept score sum, chts24 eq. (2) on 1 x m tiles).
///
/// Ties go to the lower column index. +-Inf are ordinary ordered values (e.g. -Inf excludes an
/// entry unless the group needs it); NaN anywhere throws sparsenm::Error naming the entry.
/// `scores`: (rows, cols) with cols % m == 0; any float/double expression. 1 <= n <= m <= 32.
/// Empty input returns an empty mask. Cost: O(rows * cols * m) compares; m = 4 and m = 8 use
/// AVX-512/AVX2 kernels (float). Deterministic and independent of the thread count.
/// `project_rowwise_into` writes into `out` (resized; no allocation when it already has the shape),
/// for refresh loops that must not allocate.
template <class Derived>
void project_rowwise_into(const Eigen::MatrixBase<Derived>& scores, NM nm, Mask& out) {
  detail::static_check_scores<Derived>();
  using S = typename Derived::Scalar;
  check_nm(nm, "project_rowwise: nm");
  check_divisible(scores.cols(), nm.m, "project_rowwise: scores.cols()", "m");
  out.resize(scores.rows(), scores.cols());  // no reallocation when the shape is unchanged
  if (out.size() == 0) return;
  const Eigen::Ref<const Matrix<S>> s(scores.derived());
  const Index rows = s.rows(), cols = s.cols();
  std::atomic<bool> nan{false};
  detail::with_nm(nm, [&](auto mc, auto nc) {
    constexpr int M = decltype(mc)::value;
    [[maybe_unused]] constexpr int N = decltype(nc)::value;
    const bool contiguous = s.outerStride() == cols;
    // A contiguous matrix is one long run (groups never straddle rows since cols % m == 0).
    auto run = [&](const S* p, Index len, std::uint8_t* o) {
      if constexpr (M > 0)
        return SPARSENM_DISPATCH(rowwise_run_simd<M, N>)(p, len, o);
      else
        return detail::scalar::rowwise_run(p, len, nm.m, nm.n, o);
    };
    if (contiguous) {
      const Index total = rows * cols;
      const Index grain = Index(1) << 16;  // multiple of 16 and of every m <= 32 that divides it
      const Index gm = (grain / nm.m) * nm.m;
      parallel_for_chunks(total, gm, [&](Index b, Index e) {
        if (run(s.data() + b, e - b, out.data() + b)) nan.store(true, std::memory_order_relaxed);
      });
    } else {
      parallel_for_chunks(rows, detail::row_grain(cols), [&](Index b, Index e) {
        for (Index i = b; i < e; ++i)
          if (run(s.data() + i * s.outerStride(), cols, out.data() + i * cols))
            nan.store(true, std::memory_order_relaxed);
      });
    }
  });
  if (nan.load()) detail::raise_nonfinite<S>(s, "project_rowwise", true);
}

/// Row-wise N:M projection returning a new mask; see project_rowwise_into.
template <class Derived>
Mask project_rowwise(const Eigen::MatrixBase<Derived>& scores, NM nm) {
  Mask out;
  project_rowwise_into(scores, nm, out);
  return out;
}

/// True iff every group of m contiguous entries of every row holds exactly n ones and every entry
/// is 0 or 1. Throws if nm is invalid or cols % m != 0.
inline bool is_rowwise_legal(const Mask& mask, NM nm) {
  check_nm(nm, "is_rowwise_legal: nm");
  check_divisible(mask.cols(), nm.m, "is_rowwise_legal: mask.cols()", "m");
  const std::uint8_t* p = mask.data();
  const Index cols = mask.cols();
  std::atomic<bool> bad{false};
  parallel_for(
      0, mask.rows(),
      [&](Index i) {
        const std::uint8_t* r = p + i * cols;
        bool ok = true;
        for (Index g = 0; g < cols; g += nm.m) {
          int cnt = 0;
          for (int k = 0; k < nm.m; ++k) {
            ok &= r[g + k] <= 1;
            cnt += r[g + k];
          }
          ok &= cnt == nm.n;
        }
        if (!ok) bad.store(true, std::memory_order_relaxed);
      },
      64);
  return !bad.load();
}

/// Throws sparsenm::Error naming `name`, n:m and the first bad group (row, group, count of ones)
/// unless is_rowwise_legal(mask, nm). A transposable mask is row-wise legal too.
inline void check_rowwise_legal(const Mask& mask, NM nm, const char* name = "mask") {
  check_nm(nm, name);
  check_divisible(mask.cols(), nm.m, name, "m");
  if (is_rowwise_legal(mask, nm)) return;
  for (Index i = 0; i < mask.rows(); ++i)
    for (Index g = 0; g < mask.cols(); g += nm.m) {
      int cnt = 0;
      for (int k = 0; k < nm.m; ++k) {
        SPARSENM_CHECK(mask(i, g + k) <= 1, name, "(", i, ", ", g + k, ") = ", int(mask(i, g + k)),
                       " must be 0 or 1");
        cnt += mask(i, g + k);
      }
      SPARSENM_CHECK(cnt == nm.n, name, " is not a legal ", nm, " mask: row ", i, " group ",
                     g / nm.m, " (columns ", g, "..", g + nm.m - 1, ") has ", cnt,
                     " ones, expected n = ", nm.n);
    }
}

/// A uniformly random row-wise N:M mask: each group keeps the n entries with the largest Philox
/// bits, counter = the entry's linear index (row-major), so every n-subset of a group is equally
/// likely (up to 32-bit ties, broken to the lower index) and the result ignores the thread count.
inline Mask random_rowwise(Index rows, Index cols, NM nm, const Philox& rng) {
  check_nm(nm, "random_rowwise: nm");
  SPARSENM_CHECK(rows >= 0, "random_rowwise: rows = ", rows, " must be >= 0");
  check_divisible(cols, nm.m, "random_rowwise: cols", "m");
  Mask out(rows, cols);
  if (out.size() == 0) return out;
  const Index total = rows * cols;
  const Index grain = (Index(1 << 15) / nm.m) * nm.m;
  parallel_for_chunks(total, grain, [&](Index b, Index e) {
    std::uint32_t key[kMaxGroupSize];
    for (Index g = b; g < e; g += nm.m) {
      for (int k = 0; k < nm.m; ++k) key[k] = rng.bits(std::uint64_t(g + k));
      detail::scalar::rowwise_group(key, nm.m, nm.n, out.data() + g);
    }
  });
  return out;
}

}  // namespace sparsenm

#endif  // SPARSENM_MASK_ROWWISE_HPP
