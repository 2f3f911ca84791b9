// libFuzzer target: parse_safetensors must either throw sparsenm::Error or return tensors that
// re-serialise and re-parse identically (names, dtypes, shapes, bytes and metadata).
#include <cstdint>
#include <cstdlib>

#include <sparsenm/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sparsenm::SafetensorsFile f;
  try {
    f = sparsenm::parse_safetensors(data, size);
  } catch (const sparsenm::Error&) {
    return 0;
  }
  const std::string again = sparsenm::safetensors_bytes(f);
  const sparsenm::SafetensorsFile g = sparsenm::parse_safetensors(
      reinterpret_cast<const std::uint8_t*>(again.data()), again.size());
  if (g.metadata != f.metadata || g.tensors().size() != f.tensors().size()) std::abort();
  for (std::size_t k = 0; k < f.tensors().size(); ++k) {
    const auto& a = f.tensors()[k];
    const auto& b = g.tensors()[k];
    if (a.first != b.first || a.second.dtype != b.second.dtype ||
        a.second.shape != b.second.shape || a.second.bytes != b.second.bytes)
      std::abort();
  }
  try {
    (void)sparsenm::get_nm_metadata(f);  // must not crash on arbitrary metadata
  } catch (const sparsenm::Error&) {
  }
  return 0;
}
