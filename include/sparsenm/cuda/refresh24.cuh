// SPDX-License-Identifier: Apache-2.0
// The CHTs24 / CHTsNM topology refresh of a 2:4 layer on the device (CHTs24 Alg. 1, Sec.
// 3.2.2-3.2.5; CHTsNM Sec. 3.4, App. E.3), the counterpart of
// TopologyRefresher<float>::refresh(NMCompressed<float>&, step) (topology/refresh.hpp) on the
// compressed device state of cuda::SparseLinear24. Step for step:
//   1. removal: Fréchet scores |W|·(−ln U)^(−1/T) of the active entries (soft; |W| if hard) with
//      the CPU's Philox stream rng.split(1) (counter = dense linear index, frechet_math.hpp's
//      float pipeline: bit-identical), then the floor(active · ζ_t) smallest (score, linear index)
//      pairs — a stable radix sort (cub) of order-preserving keys: exactly the CPU's selection;
//   2. CH2-L3n (or CH3-L3n) scores of the mask after removal (cuda::ChScores: exact bf16 count
//      GEMMs, fp32 weight GEMMs), times U(0,1) from rng.split(2) in the units (4x4 tiles, or 1x4
//      row groups) that lost a link (refresh.hpp's arithmetic: S(double(s) · uniform(k)));
//   3.-4. survivor boosting and the legal projection. Transposable: Ŝ = S̃ + Γ [survivor] in
//      double, Γ the CPU's power of two above 32 (max S̃ + 1), and per refreshed tile the legal
//      pattern with the largest sum (best_tile4: the CPU's project_transposable search, same sums
//      and tie rule). Row-wise: survivors kept, free slots to the best non-survivors (ties to the
//      lower index), MPR with probability mpr_rho from rng.split(3) (group index as counter);
//   5. survivors keep their value and optimizer state, removed / regrown / revived entries start
//      at 0; the SlotMap says where each new slot's state comes from.
// Same seeds and schedule as the CPU (Philox(seed).split(step), temperature, ζ_t, due()), so the
// result equals the CPU engine's except where float summation order differs: the CH scores are
// sums of the same terms in another order (fp32 GEMM vs the CPU's table products), so a unit
// whose best choices lie within a few float ulps of each other may pick the other one
// (tests/cuda/test_cuda_refresh24.cu bounds how close). Removal, noise, Γ, projection and move
// are bit-identical given equal scores (checked off the device with the CPU's scores).
//
// Supported: NM{2,4} (the layout of cuda::SparseLinear24), transposable and row-wise (with MPR),
// soft/hard removal and regrowth, adaptive ζ, both CH rules; other N:M throw sparsenm::Error (use
// the CPU engine, SparseLinear24::refresh).
//
// Cost: one cuBLAS handle, ChScores buffers (about 7 rows·cols + rows² + cols² floats) and the
// sort buffers live in the refresher (allocated at construction, reused every refresh); a
// refresh synchronises three times (checks, Γ, counts) and downloads the new indices and the
// SlotMap (2 bytes per slot): the host copies feed SparseLinear24's rebuild and the optimizers'
// remap(SlotMap) (bench/RESULTS.md: refresh24 timings).
#ifndef SPARSENM_CUDA_REFRESH24_CUH
#define SPARSENM_CUDA_REFRESH24_CUH

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <utility>

#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime.h>

#include "../core/philox.hpp"
#include "../core/types.hpp"
#include "../core/validate.hpp"
#include "../mask/compress.hpp"
#include "../topology/refresh.hpp"
#include "ch_scores.cuh"
#include "detail/refresh_kernels.cuh"
#include "error.cuh"
#include "memory.cuh"
#if defined(SPARSENM_HAS_CUSPARSELT)
#include "sparse_linear24.cuh"
#endif

namespace sparsenm {
namespace cuda {

/// Device CHTs24 / CHTsNM refresher for one 2:4 layer of shape (rows x cols): the same
/// RefreshConfig, seed and schedule as TopologyRefresher<float> (see the file comment). Not
/// thread-safe; one per layer (it owns the scratch of its shape).
class DeviceRefresher24 {
 public:
  /// Validates `cfg` (RefreshConfig::validate) and the shape; throws sparsenm::Error for nm
  /// other than 2:4, cols not a multiple of 4, or (transposable) rows not a multiple of 4.
  DeviceRefresher24(RefreshConfig cfg, std::uint64_t seed, Index rows, Index cols)
      : m_schedule(cfg, seed), m_rng(seed), m_rows(rows), m_cols(cols) {
    SPARSENM_CHECK(cfg.nm == (NM{2, 4}), "cuda::DeviceRefresher24: cfg.nm = ", cfg.nm,
                   " is not supported: the device refresh implements 2:4 (the layout of "
                   "cuda::SparseLinear24); use the CPU TopologyRefresher for other N:M");
    SPARSENM_CHECK(rows > 0 && cols > 0, "cuda::DeviceRefresher24: shape ", rows, "x", cols,
                   " must be positive");
    if (!rowwise()) check_divisible(rows, 4, "cuda::DeviceRefresher24: rows", "4");
    check_divisible(cols, 4, "cuda::DeviceRefresher24: cols", "4");
    SPARSENM_CHECK(double(rows) * double(cols) < 4.0e9, "cuda::DeviceRefresher24: ", rows, "x",
                   cols, " exceeds the 32-bit slot indices of the sort");
    const std::size_t n = nnz(), dense = std::size_t(rows) * std::size_t(cols);
    m_key.resize(n);
    m_key_sorted.resize(n);
    m_slot.resize(n);
    m_slot_sorted.resize(n);
    m_lost.resize(n);
    m_after.resize(dense);
    m_scores.resize(dense);
    m_refreshed.resize(units());
    m_counts.resize(1);
    m_new_values.resize(n);
    m_new_idx.resize(n);
    m_source.resize(n);
    std::size_t temp = 0;
    SPARSENM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp, m_key.data(),
                                                        m_key_sorted.data(), m_slot.data(),
                                                        m_slot_sorted.data(), static_cast<int>(n)));
    m_sort_temp.resize(std::max<std::size_t>(temp, 1));
    m_ch = std::make_unique<ChScores<float>>(rows, cols);
  }

  DeviceRefresher24(const DeviceRefresher24&) = delete;
  DeviceRefresher24& operator=(const DeviceRefresher24&) = delete;

  /// True when a refresh is scheduled at `step` (TopologyRefresher::due).
  bool due(long step) const { return m_schedule.due(step); }
  const RefreshConfig& config() const { return m_schedule.config(); }
  std::uint64_t seed() const { return m_rng.seed(); }
  long refreshes() const { return m_count; }
  const RefreshStats& last_stats() const { return m_stats; }
  Index rows() const { return m_rows; }
  Index cols() const { return m_cols; }

  /// One refresh of the compressed device weight (`values`, `indices`: rows x cols/2 slots, the
  /// layout of NMCompressed<float>, indices ascending within each group). The new values,
  /// indices and per-slot sources (old slot in the group, or -1) are left in new_values(),
  /// new_indices(), sources() on the device; the result carries the statistics and, with
  /// `host_maps` (default), the SlotMap in `slots` and the new indices in `indices` (host copies:
  /// what SparseLinear24's rebuild and the optimizers' remap take). `changed` stays empty (no
  /// dense host mask is formed). Synchronises `stream`. Throws sparsenm::Error for step < 0, a
  /// non-finite value, malformed indices or (transposable) a mask whose tiles are not
  /// transposable 2:4 (like the CPU).
  struct Result {
    RefreshResult refresh;  ///< statistics; refresh.slots filled with host_maps
    Mask indices;           ///< new indices (rows x cols/2) with host_maps, else empty
  };
  Result refresh(const float* values, const std::uint8_t* indices, long step,
                 cudaStream_t stream = nullptr, bool host_maps = true) {
    SPARSENM_CHECK(step >= 0, "cuda::DeviceRefresher24::refresh: step = ", step, " must be >= 0");
    SPARSENM_CHECK(values && indices,
                   "cuda::DeviceRefresher24::refresh: values and indices must be device pointers");
    const std::size_t n = nnz(), R = std::size_t(m_rows), C = std::size_t(m_cols);
    const Philox rng = m_rng.split(static_cast<std::uint64_t>(step));
    RefreshStats st;
    st.step = step;
    st.temperature = m_schedule.temperature(step);
    st.zeta = m_schedule.zeta_at(step);
    st.groups = Index(units());
    st.active = Index(n);
    const RefreshConfig& c = m_schedule.config();
    m_counts.fill_bytes(0, stream);
    detail::Refresh24Counts* counts = m_counts.data();

    // 0.-1. Checks and removal keys (the CPU's frechet_scores_into(weight, float(T), ...)).
    const float inv_t = float(1.0 / double(float(st.temperature)));
    const auto fc = sparsenm::detail::frechet_constants(inv_t);
    detail::removal_keys_kernel<0><<<detail::grid_for(n, 256), 256, 0, stream>>>(
        values, indices, R, C, c.soft_remove, inv_t, fc, rng.split(1), m_key.data(), m_slot.data(),
        counts);
    SPARSENM_CUDA_CHECK_LAUNCH("removal_keys_kernel");
    if (!rowwise()) {
      detail::tile_check_kernel<0>
          <<<detail::grid_for(tiles(), 256), 256, 0, stream>>>(indices, R, C, counts);
      SPARSENM_CUDA_CHECK_LAUNCH("tile_check_kernel");
    }
    detail::Refresh24Counts h = download_counts(stream);
    SPARSENM_CHECK(h.bad_index == 0,
                   "cuda::DeviceRefresher24::refresh: indices are not ascending in-group indices "
                   "in [0, 4) (not a compressed 2:4 layout)");
    SPARSENM_CHECK(h.bad_tile == 0,
                   "cuda::DeviceRefresher24::refresh: mask is not a legal transposable 2:4 mask");
    SPARSENM_CHECK(h.bad_value == 0,
                   "cuda::DeviceRefresher24::refresh: a value is not finite (NaN or Inf)");
    st.removed = static_cast<Index>(std::floor(double(n) * st.zeta));

    if (st.removed == 0) {  // nothing removed: nothing can change (refresh.hpp)
      SPARSENM_CUDA_CHECK(cudaMemcpyAsync(m_new_values.data(), values, n * sizeof(float),
                                          cudaMemcpyDeviceToDevice, stream));
      SPARSENM_CUDA_CHECK(
          cudaMemcpyAsync(m_new_idx.data(), indices, n, cudaMemcpyDeviceToDevice, stream));
      detail::identity_source_kernel<0>
          <<<detail::grid_for(n, 256), 256, 0, stream>>>(n, m_source.data());
      SPARSENM_CUDA_CHECK_LAUNCH("identity_source_kernel");
      return finish(st, detail::Refresh24Counts{}, host_maps, stream);
    }

    // 1. The removed slots: the st.removed smallest (key, slot) pairs.
    std::size_t temp = m_sort_temp.size();
    SPARSENM_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        m_sort_temp.data(), temp, m_key.data(), m_key_sorted.data(), m_slot.data(),
        m_slot_sorted.data(), static_cast<int>(n), 0, 32, stream));
    m_lost.fill_bytes(0, stream);
    detail::mark_removed_kernel<0>
        <<<detail::grid_for(std::size_t(st.removed), 256), 256, 0, stream>>>(
            m_slot_sorted.data(), std::size_t(st.removed), m_lost.data());
    SPARSENM_CUDA_CHECK_LAUNCH("mark_removed_kernel");
    m_after.fill_bytes(0, stream);
    m_refreshed.fill_bytes(0, stream);
    detail::after_mask_kernel<0><<<detail::grid_for(n, 256), 256, 0, stream>>>(
        indices, m_lost.data(), R, C, rowwise(), m_after.data(), m_refreshed.data());
    SPARSENM_CUDA_CHECK_LAUNCH("after_mask_kernel");

    // 2. Regrowth scores on the mask after removal, soft: ⊙ U(0,1) in refreshed tiles; max.
    m_ch->run(m_after.data(), m_scores.data(), m_blas, stream, c.rule);
    detail::perturb_and_max_kernel<0><<<detail::grid_for(R * C, 256), 256, 0, stream>>>(
        m_scores.data(), m_after.data(), m_refreshed.data(), R, C, rowwise(), c.soft_regrow,
        rng.split(2), counts);
    SPARSENM_CUDA_CHECK_LAUNCH("perturb_and_max_kernel");
    if (rowwise()) {
      // 3.-5. Survivors kept, best non-survivors, MPR from rng.split(3); move; counts.
      detail::rowwise_move_kernel<0><<<detail::grid_for(units(), 256), 256, 0, stream>>>(
          m_scores.data(), m_lost.data(), c.mpr_rho, rng.split(3), values, indices, R, C,
          m_new_values.data(), m_new_idx.data(), m_source.data(), counts);
      SPARSENM_CUDA_CHECK_LAUNCH("rowwise_move_kernel");
      return finish(st, download_counts(stream), host_maps, stream);
    }
    h = download_counts(stream);
    float smax_f = 0.f;
    std::memcpy(&smax_f, &h.score_max_bits, sizeof(float));
    const double smax = double(smax_f);
    // 3. Γ exactly as refresh.hpp's project_tiles computes it (host libm, m = 4).
    const double gamma = std::exp2(std::ceil(std::log2((smax + 1.0) * 4.0 * 4.0 * 2.0)));

    // 3.-5. Projection of the refreshed tiles, move to the new mask, counts.
    detail::project_move_kernel<0><<<detail::grid_for(tiles(), 128), 128, 0, stream>>>(
        m_scores.data(), m_after.data(), m_refreshed.data(), gamma, values, indices, R, C,
        m_new_values.data(), m_new_idx.data(), m_source.data(), counts);
    SPARSENM_CUDA_CHECK_LAUNCH("project_move_kernel");
    return finish(st, download_counts(stream), host_maps, stream);
  }

#if defined(SPARSENM_HAS_CUSPARSELT)
  /// One refresh of a SparseLinear24 layer entirely on the device (its shape must be this
  /// refresher's): the values move to the new mask, the layer's Adam moments follow (remap), its
  /// gradient is zeroed and the packed weights are rebuilt when the mask changed
  /// (SparseLinear24::apply_topology). Returns the CPU engine's result shape (changed empty);
  /// pass result.slots to any other optimizer of the values (e.g. cuda::TansCompressed::remap).
  RefreshResult refresh(SparseLinear24& layer, long step, cudaStream_t stream = nullptr) {
    SPARSENM_CHECK(layer.out() == m_rows && layer.in() == m_cols,
                   "cuda::DeviceRefresher24::refresh: layer is ", layer.out(), "x", layer.in(),
                   " but the refresher is ", m_rows, "x", m_cols);
    Result r = refresh(layer.values_data(), layer.indices_data(), step, stream, true);
    layer.apply_topology(m_new_values.data(), r.indices, r.refresh.slots, stream);
    return std::move(r.refresh);
  }
#endif

  /// The device results of the last refresh (rows x cols/2 slots each).
  const float* new_values() const { return m_new_values.data(); }
  const std::uint8_t* new_indices() const { return m_new_idx.data(); }
  const std::int8_t* sources() const { return m_source.data(); }

 private:
  std::size_t nnz() const { return std::size_t(m_rows) * std::size_t(m_cols / 2); }
  std::size_t tiles() const { return std::size_t(m_rows / 4) * std::size_t(m_cols / 4); }
  bool rowwise() const { return m_schedule.config().layout == Layout::RowWise; }
  /// Refresh units: 4x4 tiles (transposable) or 1x4 row groups (row-wise).
  std::size_t units() const {
    return rowwise() ? std::size_t(m_rows) * std::size_t(m_cols / 4) : tiles();
  }

  detail::Refresh24Counts download_counts(cudaStream_t stream) {
    detail::Refresh24Counts h{};
    m_counts.download(&h, 1, stream);
    return h;
  }

  Result finish(RefreshStats& st, const detail::Refresh24Counts& h, bool host_maps,
                cudaStream_t stream) {
    st.refreshed_groups = Index(h.refreshed);
    st.changed_groups = Index(h.changed_tiles);
    st.mpr_excluded = Index(h.mpr_excluded);
    st.changed_count = Index(h.changed);
    st.regrown = Index(h.regrown);
    st.revived = Index(h.revived);
    st.effective_refresh_rate =
        st.refreshed_groups > 0 ? double(st.changed_groups) / double(st.refreshed_groups) : 0.0;
    st.flip_rate = double(st.changed_count) / (double(m_rows) * double(m_cols));
    Result r;
    if (host_maps) {
      r.indices.resize(m_rows, m_cols / 2);
      m_new_idx.download(r.indices.data(), nnz(), stream);
      r.refresh.slots.nm = NM{2, 4};
      r.refresh.slots.source.resize(m_rows, m_cols / 2);
      m_source.download(r.refresh.slots.source.data(), nnz(), stream);
    }
    SPARSENM_CUDA_CHECK(cudaStreamSynchronize(stream));
    r.refresh.removed = st.removed;
    r.refresh.regrown = st.regrown;
    r.refresh.changed_count = st.changed_count;
    r.refresh.stats = st;
    m_stats = st;
    ++m_count;
    return r;
  }

  TopologyRefresher<float> m_schedule;  ///< config, due(), temperature(), zeta_at() (no refresh)
  Philox m_rng;
  Index m_rows, m_cols;
  long m_count = 0;
  RefreshStats m_stats;
  CublasHandle m_blas;
  std::unique_ptr<ChScores<float>> m_ch;
  DeviceBuffer<std::uint32_t> m_key, m_key_sorted, m_slot, m_slot_sorted;
  DeviceBuffer<unsigned char> m_sort_temp;
  DeviceBuffer<std::uint8_t> m_lost, m_after, m_refreshed, m_new_idx;
  DeviceBuffer<float> m_scores, m_new_values;
  DeviceBuffer<std::int8_t> m_source;
  DeviceBuffer<detail::Refresh24Counts> m_counts;
};

}  // namespace cuda
}  // namespace sparsenm

#endif  // SPARSENM_CUDA_REFRESH24_CUH
