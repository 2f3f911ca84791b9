// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the .safetensors reader; the checks live in harness.hpp
// (fuzz_safetensors_one), which the suite also runs over the tracked corpus without libFuzzer
// (ctest io_fuzz_replay).
#include <cstddef>
#include <cstdint>

#include "harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return sparsenm_fuzz::fuzz_safetensors_one(data, size);
}
