// Checks the models examples/fashion_mnist exported under OUT_DIR/<method>/: model.safetensors
// loads, its __metadata__ names a valid N:M and layout, every "*.mask" tensor is a legal N:M mask
// of that layout (sparsenm::is_legal), the weight next to it is exactly zero off the mask, and
// each tensor's .npy file holds bit-identical data. Exit 0 when every model passes.
//   check_export OUT_DIR METHOD [METHOD ...]
#include <cstdio>
#include <string>

#include <sparsenm/io.hpp>
#include <sparsenm/mask.hpp>

using namespace sparsenm;

int check(const std::string& dir) {
  const SafetensorsFile st = load_safetensors(dir + "/model.safetensors");
  const NMMetadata meta = get_nm_metadata(st);
  int masks = 0;
  for (const auto& [name, tensor] : st.tensors()) {
    const Tensor npy = load_npy(dir + "/" + name + ".npy");
    SPARSENM_CHECK(
        npy.dtype == tensor.dtype && npy.shape == tensor.shape && npy.bytes == tensor.bytes, dir,
        ": ", name, ".npy differs from the safetensors tensor");
    const std::string suffix = ".mask";
    if (name.size() <= suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const Mask mask = tensor.to_matrix<std::uint8_t>();
    check_binary(mask, name.c_str());
    SPARSENM_CHECK(is_legal(mask, meta.nm, meta.layout), dir, ": ", name, " is not a legal ",
                   meta.nm, " ", to_string(meta.layout), " mask");
    const std::string wname = name.substr(0, name.size() - suffix.size()) + ".weight";
    const Matrix<float> w = st.at(wname).to_matrix<float>();
    check_same_shape(w, mask, wname.c_str(), name.c_str());
    for (Index i = 0; i < w.size(); ++i)
      SPARSENM_CHECK(mask.data()[i] || w.data()[i] == 0.0f, dir, ": ", wname,
                     " is nonzero off the mask at linear index ", i);
    ++masks;
  }
  std::printf("%s: %s %d:%d %s, %d legal mask(s), npy == safetensors\n", dir.c_str(),
              meta.method.c_str(), meta.nm.n, meta.nm.m, to_string(meta.layout), masks);
  return masks;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: check_export OUT_DIR METHOD [METHOD ...]\n");
    return 2;
  }
  try {
    for (int i = 2; i < argc; ++i) {
      const std::string method = argv[i];
      const int masks = check(std::string(argv[1]) + "/" + method);
      SPARSENM_CHECK(method == "dense" || masks == 2, method, ": expected 2 masks, found ", masks);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAILED: %s\n", e.what());
    return 1;
  }
  return 0;
}
