// SPDX-License-Identifier: Apache-2.0
// libFuzzer target for the checkpoint reader (SparseTrainer::restore); the checks live in
// checkpoint_harness.hpp, which the suite also runs over the tracked corpus (ctest io_fuzz_replay).
#include <cstddef>
#include <cstdint>

#include "checkpoint_harness.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return sparsenm_fuzz::fuzz_checkpoint_one(data, size);
}
