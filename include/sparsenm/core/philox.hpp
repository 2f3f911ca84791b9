// SPDX-License-Identifier: Apache-2.0
// Counter-based Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as
// 1, 2, 3", SC'11). A generator holds only its key and stream: the value for a counter is a pure
// function of (seed, stream, counter), so filling a matrix with the element index as the counter
// gives the same numbers for any thread count and on the GPU (the functions are host/device).
#ifndef SPARSENM_CORE_PHILOX_HPP
#define SPARSENM_CORE_PHILOX_HPP

#include <array>
#include <cmath>
#include <cstdint>

#include "../config.hpp"

namespace sparsenm {

/// Philox4x32-10 with a 64-bit key (the seed) and a 128-bit counter.
///
/// Mapping (the contract; CPU and CUDA agree on it):
///  - key = {seed & 0xffffffff, seed >> 32};
///  - one Philox block is computed for counter word vector
///    {c & 0xffffffff, c >> 32, stream & 0xffffffff, stream >> 32} with c = counter / 4;
///  - `bits(counter)` is word `counter % 4` of that block, so four consecutive counters share one
///    block and a sequential fill costs one block per four values.
///  - `uniform(counter) = (bits(counter) + 0.5) * 2^-32`: strictly inside (0, 1) in double, with
///    32 bits of resolution. `uniform_float` clamps the float conversion into (0, 1) as well, since
///    (2^32 - 0.5) * 2^-32 rounds to exactly 1.0f.
class Philox {
 public:
  /// Philox4x32 round multiplier 0 (Random123).
  static constexpr std::uint32_t kM0 = 0xD2511F53u;
  /// Philox4x32 round multiplier 1 (Random123).
  static constexpr std::uint32_t kM1 = 0xCD9E8D57u;
  /// Key increment 0 (the golden ratio, Random123).
  static constexpr std::uint32_t kW0 = 0x9E3779B9u;
  /// Key increment 1 (sqrt(3) - 1, Random123).
  static constexpr std::uint32_t kW1 = 0xBB67AE85u;

  /// Four 32-bit words: one counter, or one output block.
  using Block = std::array<std::uint32_t, 4>;

  /// A generator for `seed` (the key) and `stream` (the high counter words); cheap to copy.
  SPARSENM_HOST_DEVICE explicit Philox(std::uint64_t seed, std::uint64_t stream = 0)
      : m_seed(seed), m_stream(stream) {}

  /// The raw Philox4x32-10 bijection: 10 rounds on `ctr` under `key` (Random123's
  /// philox4x32_R(10)).
  SPARSENM_HOST_DEVICE static Block philox4x32_10(Block ctr, std::array<std::uint32_t, 2> key) {
    // Scalars, not the array, inside the rounds: on the GPU an indexed std::array may be placed in
    // local memory, and nvcc keeps 64-bit products as 64-bit multiplies unless asked for the high
    // word (__umulhi), which costs the CUDA sampling kernels ~40 % of their bandwidth.
    std::uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    std::uint32_t k0 = key[0], k1 = key[1];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 += kW0;
        k1 += kW1;
      }
#if defined(__CUDA_ARCH__)
      const std::uint32_t hi0 = __umulhi(kM0, c0), lo0 = kM0 * c0;
      const std::uint32_t hi1 = __umulhi(kM1, c2), lo1 = kM1 * c2;
#else
      const std::uint64_t p0 = std::uint64_t(kM0) * c0;
      const std::uint64_t p1 = std::uint64_t(kM1) * c2;
      const std::uint32_t hi0 = std::uint32_t(p0 >> 32), lo0 = std::uint32_t(p0);
      const std::uint32_t hi1 = std::uint32_t(p1 >> 32), lo1 = std::uint32_t(p1);
#endif
      const std::uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
      c0 = n0;
      c1 = lo1;
      c2 = n2;
      c3 = lo0;
    }
    return Block{c0, c1, c2, c3};
  }

  /// The four words of block `block_index` (= counter / 4) of this stream.
  SPARSENM_HOST_DEVICE Block block(std::uint64_t block_index) const {
    return philox4x32_10(Block{std::uint32_t(block_index), std::uint32_t(block_index >> 32),
                               std::uint32_t(m_stream), std::uint32_t(m_stream >> 32)},
                         {std::uint32_t(m_seed), std::uint32_t(m_seed >> 32)});
  }

  /// 32 random bits for `counter`; deterministic, no state.
  SPARSENM_HOST_DEVICE std::uint32_t bits(std::uint64_t counter) const {
    return block(counter >> 2)[counter & 3u];
  }

  /// Uniform in the open interval (0, 1).
  SPARSENM_HOST_DEVICE double uniform(std::uint64_t counter) const {
    return to_uniform(bits(counter));
  }

  /// Uniform in the open interval (0, 1) as float (never 0 or 1 after rounding).
  SPARSENM_HOST_DEVICE float uniform_float(std::uint64_t counter) const {
    return to_uniform_float(bits(counter));
  }

  /// +1 or -1 with probability 1/2 each (Rademacher), from the lowest bit.
  SPARSENM_HOST_DEVICE int rademacher(std::uint64_t counter) const {
    return (bits(counter) & 1u) ? 1 : -1;
  }

  /// Independent sub-stream: the new stream id is a Philox hash of (this stream, `stream`) under a
  /// fixed key, so split(a).split(b) and split(b).split(a) differ and nest without collisions in
  /// practice (a 64-bit hash of a 128-bit input).
  SPARSENM_HOST_DEVICE Philox split(std::uint64_t stream) const {
    const Block h = philox4x32_10(Block{std::uint32_t(stream), std::uint32_t(stream >> 32),
                                        std::uint32_t(m_stream), std::uint32_t(m_stream >> 32)},
                                  {0x243F6A88u, 0x85A308D3u});
    return Philox(m_seed, (std::uint64_t(h[1]) << 32) | h[0]);
  }

  /// The seed given to the constructor.
  SPARSENM_HOST_DEVICE std::uint64_t seed() const { return m_seed; }
  /// The stream given to the constructor (split() derives new ones).
  SPARSENM_HOST_DEVICE std::uint64_t stream() const { return m_stream; }

  /// (bits + 0.5) * 2^-32 in double: in [2^-33, 1 - 2^-33].
  SPARSENM_HOST_DEVICE static double to_uniform(std::uint32_t bits) {
    return (double(bits) + 0.5) * (1.0 / 4294967296.0);
  }

  /// Float version, clamped below 1: the largest float < 1 is 1 - 2^-24.
  SPARSENM_HOST_DEVICE static float to_uniform_float(std::uint32_t bits) {
    const float u = float(to_uniform(bits));
    return u < 0.99999994f ? u : 0.99999994f;
  }

 private:
  std::uint64_t m_seed;
  std::uint64_t m_stream;
};

}  // namespace sparsenm

#endif  // SPARSENM_CORE_PHILOX_HPP
