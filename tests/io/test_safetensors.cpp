// .safetensors writer/reader: bit-exact round trips with metadata, a hand-written file in the
// format of the specification as the independent reference, and rejection of every cut,
// corrupted header, bad offsets and wrong dtype.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <sparsenm/io/safetensors.hpp>

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
