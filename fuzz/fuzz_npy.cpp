// libFuzzer target: parse_npy must either throw sparsenm::Error or return a tensor whose bytes
// match its shape and dtype, and which re-serialises and re-parses to the same tensor.
#include <cstdint>
#include <cstdlib>

#include <sparsenm/io/npy.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sparsenm::Tensor t;
  try {
    t = sparsenm::parse_npy(data, size);
  } catch (const sparsenm::Error&) {
    return 0;  // rejected: the expected outcome for almost every input
  }
  if (t.bytes.size() != static_cast<std::size_t>(t.numel()) * sparsenm::dtype_size(t.dtype))
    std::abort();
  const std::string again = sparsenm::npy_bytes(t);
  const sparsenm::Tensor u =
      sparsenm::parse_npy(reinterpret_cast<const std::uint8_t*>(again.data()), again.size());
  if (u.dtype != t.dtype || u.shape != t.shape || u.bytes != t.bytes) std::abort();
  return 0;
}
