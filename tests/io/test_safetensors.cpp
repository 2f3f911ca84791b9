// .safetensors writer/reader: bit-exact round trips with metadata, a hand-written file in the
// format of the specification as the independent reference, and rejection of every cut,
// corrupted header, bad offsets and wrong dtype.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <sparsenm/io/compressed_export.hpp>
#include <sparsenm/io/safetensors.hpp>
#include <sparsenm/mask/rowwise.hpp>

using namespace sparsenm;

namespace {

std::vector<std::uint8_t> to_vec(const std::string& s) { return {s.begin(), s.end()}; }

// A file written by hand from the specification: two tensors, metadata, header padded to 8.
std::string handmade_file() {
  std::string header =
      "{\"__metadata__\":{\"n\":\"1\",\"m\":\"4\",\"layout\":\"rowwise\",\"method\":\"chtsnm\"},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
      "\"mask\":{\"dtype\":\"U8\",\"shape\":[2,2],\"data_offsets\":[16,20]}}";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out;
  for (int k = 0; k < 8; ++k) out.push_back(char((header.size() >> (8 * k)) & 0xff));
  out += header;
  const float w[4] = {1.0f, -2.5f, 0.0f, 3.25f};
  out.append(reinterpret_cast<const char*>(w), 16);
  out.append("\x01\x00\x00\x01", 4);
  return out;
}

SafetensorsFile sample_file() {
  SafetensorsFile f;
  Matrix<float> w(3, 8);
  for (Index i = 0; i < w.size(); ++i) w.data()[i] = std::ldexp(float(i) - 11.7f, int(i % 9) - 4);
  w(2, 7) = std::numeric_limits<float>::quiet_NaN();
  Mask m(3, 8);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = std::uint8_t(i % 4 == 1);
  Vector<double> b(3);
  b << 0.1, -0.2, 1e-300;
  f.add("layer0.weight", w);
  f.add("layer0.mask", m);
  f.add("layer0.bias", b, true);
  set_nm_metadata(f, NMMetadata{NM{1, 4}, Layout::RowWise, "chtsnm \"quoted\" \\ name"});
  return f;
}

}  // namespace

TEST(Safetensors, ReadsHandmadeFile) {
  const auto bytes = to_vec(handmade_file());
  const SafetensorsFile f = parse_safetensors(bytes.data(), bytes.size());
  ASSERT_EQ(f.tensors().size(), 2u);
  const Matrix<float> w = f.at("w").to_matrix<float>();
  EXPECT_EQ(w(0, 1), -2.5f);
  EXPECT_EQ(w(1, 1), 3.25f);
  const Mask m = f.at("mask").to_matrix<std::uint8_t>();
  EXPECT_EQ(int(m(0, 0)), 1);
  EXPECT_EQ(int(m(1, 0)), 0);
  const NMMetadata meta = get_nm_metadata(f);
  EXPECT_EQ(meta.nm, (NM{1, 4}));
  EXPECT_EQ(meta.layout, Layout::RowWise);
  EXPECT_EQ(meta.method, "chtsnm");
  EXPECT_THROW(f.at("missing"), Error);
}

TEST(Safetensors, RoundTripBitExactWithMetadata) {
  const SafetensorsFile f = sample_file();
  const std::string path = testing::TempDir() + "sparsenm_st_roundtrip.safetensors";
  save_safetensors(path, f);
  const SafetensorsFile g = load_safetensors(path);
  std::remove(path.c_str());
  ASSERT_EQ(g.tensors().size(), f.tensors().size());
  for (std::size_t k = 0; k < f.tensors().size(); ++k) {
    EXPECT_EQ(g.tensors()[k].first, f.tensors()[k].first);
    EXPECT_EQ(g.tensors()[k].second.dtype, f.tensors()[k].second.dtype);
    EXPECT_EQ(g.tensors()[k].second.shape, f.tensors()[k].second.shape);
    EXPECT_EQ(g.tensors()[k].second.bytes, f.tensors()[k].second.bytes);  // bit-exact (NaN too)
  }
  EXPECT_EQ(g.metadata, f.metadata);
  const NMMetadata meta = get_nm_metadata(g);
  EXPECT_EQ(meta.method, "chtsnm \"quoted\" \\ name");
  EXPECT_EQ(g.at("layer0.bias").to_vector<double>()(2), 1e-300);
  // The data buffer starts 8-byte aligned.
  const std::string bytes = safetensors_bytes(f);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, EveryCutFileIsRejected) {
  const auto full = to_vec(safetensors_bytes(sample_file()));
  for (std::size_t cut = 0; cut < full.size(); ++cut)
    EXPECT_THROW(parse_safetensors(full.data(), cut), Error) << "cut at " << cut;
  auto longer = full;
  longer.push_back(0);
  EXPECT_THROW(parse_safetensors(longer.data(), longer.size()), Error);
}

TEST(Safetensors, CorruptedHeadersAreRejected) {
  const std::string good = handmade_file();
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    s.replace(at, from.size(), to);
    EXPECT_EQ(s.size(), good.size()) << "replacements keep the length";
    return s;
  };
  auto reject = [](const std::string& s, const char* why) {
    const auto b = to_vec(s);
    EXPECT_THROW(parse_safetensors(b.data(), b.size()), Error) << why;
  };
  {
    const auto b = to_vec(good);
    EXPECT_NO_THROW(parse_safetensors(b.data(), b.size()));
  }
  reject(replace("\"F32\"", "\"F16\""), "unsupported dtype");
  reject(replace("\"U8\"", "\"I8\""), "unsupported dtype");
  reject(replace("\"F32\",\"shape\":[2,2]", "\"F64\",\"shape\":[2,2]"), "dtype/size mismatch");
  reject(replace("[2,2],\"data_offsets\":[0,16]", "[2,3],\"data_offsets\":[0,16]"),
         "shape mismatch");
  reject(replace("[16,20]", "[12,16]"), "overlapping offsets");
  reject(replace("[0,16]", "[0,99]"), "offset beyond buffer");
  reject(replace("{\"__metadata__\"", "[\"__metadata__\""), "not an object");
  reject(replace("\"data_offsets\":[0,16]", "\"data_offsets\":[0 16]"), "missing comma");
  reject(replace("\"dtype\":\"F32\"", "\"dtypf\":\"F32\""), "unknown field");
  reject(replace("\"mask\"", "\"w\"   "), "duplicate name");
  {
    std::string s = good;
    s[0] = char(0xff);  // header length beyond the file
    reject(s, "header length");
  }
  {
    std::string s = good;
    s[7] = char(0x80);  // enormous header length
    reject(s, "header length");
  }
}

TEST(Safetensors, MetadataIsValidated) {
  SafetensorsFile f;
  f.metadata["n"] = "5";
  f.metadata["m"] = "4";
  f.metadata["layout"] = "rowwise";
  f.metadata["method"] = "x";
  EXPECT_THROW(get_nm_metadata(f), Error);  // n > m
  f.metadata["n"] = "2";
  f.metadata["layout"] = "diagonal";
  EXPECT_THROW(get_nm_metadata(f), Error);
  f.metadata["layout"] = "transposable";
  EXPECT_EQ(get_nm_metadata(f).layout, Layout::Transposable);
  f.metadata.erase("method");
  EXPECT_THROW(get_nm_metadata(f), Error);
  EXPECT_THROW(set_nm_metadata(f, NMMetadata{NM{0, 4}, Layout::RowWise, "x"}), Error);
}

TEST(Safetensors, AddRejectsBadTensors) {
  SafetensorsFile f;
  f.add("a", Matrix<float>::Zero(2, 2));
  EXPECT_THROW(f.add("a", Matrix<float>::Zero(2, 2)), Error);
  EXPECT_THROW(f.add("", Matrix<float>::Zero(2, 2)), Error);
  EXPECT_THROW(f.add("__metadata__", Matrix<float>::Zero(2, 2)), Error);
  Tensor t;
  t.shape = {3};
  t.bytes.resize(5);
  EXPECT_THROW(f.add("b", t), Error);
}

// ---- Compressed N:M export (io/compressed_export.hpp) -------------------------------------------
namespace {

// A dense (rows, cols) weight on a random row-wise legal mask, zeros elsewhere.
Matrix<float> masked_weight(Index rows, Index cols, NM nm, std::uint64_t seed, Mask& mask) {
  mask = random_rowwise(rows, cols, nm, Philox(seed));
  Matrix<float> w(rows, cols);
  for (Index k = 0; k < w.size(); ++k) w.data()[k] = mask.data()[k] ? float(k % 97) - 48.5f : 0.0f;
  return w;
}

}  // namespace

TEST(CompressedExport, RoundTripReproducesTheDenseWeightAndNvidiaMetadataBytes) {
  Mask mask;
  const Matrix<float> w = masked_weight(8, 32, NM{2, 4}, 3, mask);
  SafetensorsFile f;
  add_compressed(f, "layer0", w, mask, NM{2, 4});
  f.add("layer0.bias", Tensor::from_eigen(Matrix<float>::Ones(1, 8)));
  const std::string bytes = safetensors_bytes(f);
  const SafetensorsFile g =
      parse_safetensors(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  EXPECT_EQ(compressed_names(g), std::vector<std::string>{"layer0"});
  EXPECT_EQ(g.metadata.at("sparsenm.format"), "compressed-nm-v1");
  EXPECT_EQ(g.metadata.at("layer0.nm"), "2:4");
  EXPECT_EQ(g.metadata.at("layer0.shape"), "8,32");
  const NMCompressed<float> c = get_compressed<float>(g, "layer0");
  EXPECT_TRUE((decompress(c).array() == w.array()).all());
  // NVIDIA metadata written out from the contract: per group of 4 the nibble idx0 | idx1 << 2,
  // four groups per uint16 (group q at bits 4q..4q+3), little-endian bytes.
  const Tensor& meta = g.at("layer0.nv_meta");
  ASSERT_EQ(meta.shape, (std::vector<std::int64_t>{8, 4}));
  for (Index r = 0; r < 8; ++r)
    for (Index word = 0; word < 2; ++word) {
      unsigned expect = 0;
      for (int q = 0; q < 4; ++q) {
        std::vector<int> idx;
        for (int k = 0; k < 4; ++k)
          if (mask(r, 16 * word + 4 * q + k)) idx.push_back(k);
        ASSERT_EQ(idx.size(), 2u);
        expect |= unsigned(idx[0] | (idx[1] << 2)) << (4 * q);
      }
      const std::size_t at = std::size_t(r * 4 + 2 * word);
      EXPECT_EQ(unsigned(meta.bytes[at]) | (unsigned(meta.bytes[at + 1]) << 8), expect);
    }
}

TEST(CompressedExport, OneToFourHasNoNvidiaMetadataAndDoubleValues) {
  Mask mask;
  const Matrix<double> w = masked_weight(4, 12, NM{1, 4}, 5, mask).cast<double>();
  SafetensorsFile f;
  add_compressed(f, "a", compress(w, mask, NM{1, 4}));
  add_compressed(f, "b", compress(w, mask, NM{1, 4}));
  EXPECT_FALSE(f.contains("a.nv_meta"));
  EXPECT_EQ(compressed_names(f), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(f.at("a.values").dtype, DType::F64);
  EXPECT_TRUE((decompress(get_compressed<double>(f, "b")).array() == w.array()).all());
  EXPECT_THROW(get_compressed<float>(f, "a"), Error);  // dtype F64, not F32
}

TEST(CompressedExport, InconsistentFilesAndBadNamesThrow) {
  Mask mask;
  const Matrix<float> w = masked_weight(4, 16, NM{2, 4}, 7, mask);
  SafetensorsFile f;
  add_compressed(f, "w", w, mask, NM{2, 4});
  EXPECT_THROW(add_compressed(f, "w", w, mask, NM{2, 4}), Error);    // duplicate
  EXPECT_THROW(add_compressed(f, "x,y", w, mask, NM{2, 4}), Error);  // ',' in the name
  EXPECT_THROW(add_compressed(f, "z", w, mask, NM{1, 4}), Error);    // mask is not 1:4
  EXPECT_THROW(get_compressed<float>(f, "missing"), Error);
  auto rebuilt = [&](const std::string& skip, const Tensor* replace) {
    SafetensorsFile g;
    g.metadata = f.metadata;
    for (const auto& [name, t] : f.tensors())
      if (name != skip) g.add(name, t);
    if (replace) g.add(skip, *replace);
    return g;
  };
  Tensor idx = f.at("w.indices");
  std::swap(idx.bytes[0], idx.bytes[1]);  // group 0 no longer increasing
  EXPECT_THROW(get_compressed<float>(rebuilt("w.indices", &idx), "w"), Error);
  Tensor meta = f.at("w.nv_meta");
  meta.bytes[0] ^= 0x1;  // 0x4 <-> 0x5 etc.: disagrees with the indices
  EXPECT_THROW(get_compressed<float>(rebuilt("w.nv_meta", &meta), "w"), Error);
  EXPECT_NO_THROW(get_compressed<float>(rebuilt("w.nv_meta", nullptr), "w"));  // optional
  SafetensorsFile bad_meta = f;
  bad_meta.metadata["w.shape"] = "4,15";
  EXPECT_THROW(get_compressed<float>(bad_meta, "w"), Error);
  bad_meta.metadata["w.shape"] = "4;16";
  EXPECT_THROW(get_compressed<float>(bad_meta, "w"), Error);
  bad_meta = f;
  bad_meta.metadata["w.nm"] = "5:4";
  EXPECT_THROW(get_compressed<float>(bad_meta, "w"), Error);
}
