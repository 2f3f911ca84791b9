// .safetensors reader at scale: a generated file with 100,000 small tensors and one with 20,000
// names of 1 KB sharing a 1000-character prefix parse in time linear in their size, and every
// limit of the reader throws sparsenm::Error naming the value and the limit.
//
// The time bound is relative to a linear pass over the same bytes measured in the same run (a copy
// plus a byte-wise FNV-1a checksum), so it holds on slow machines and under sanitizers, which slow
// both alike: parse < max(1 s, 150 x that pass). Measured on the project machine
// (AMD EPYC Zen 5, 2 vCPU; see bench/RESULTS.md "Fuzzing (io readers)"): the quadratic reader this
// replaced took 25.7 s and 9.5 s on these two files, far over either bound; this one well under.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <sparsenm/io/safetensors.hpp>

using namespace sparsenm;

namespace {

constexpr double kLinearFactor = 150;

// Tensor k of a generated file: even k a float32 [2] {k, -k/2}, odd k an int64 [1, 1] {3k}.
DType gen_dtype(std::size_t k) { return k % 2 ? DType::I64 : DType::F32; }

std::string gen_name(const std::string& prefix, std::size_t k) {
  char digits[16];
  std::snprintf(digits, sizeof(digits), "%06zu", k);  // equal lengths: full-length compares
  return prefix + digits;
}

// Writes the file text by hand (not through SafetensorsFile, whose writer is under test too). The
// buffer holds the tensors in reverse order of the header, so the reader must sort by offset.
std::string generate(std::size_t count, const std::string& prefix) {
  std::vector<std::size_t> begin(count);
  std::size_t total = 0;
  for (std::size_t k = count; k-- > 0;) {
    begin[k] = total;
    total += 8;  // two float32 or one int64
  }
  std::string buffer(total, '\0');
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  header.reserve(count * (prefix.size() + 80));
  for (std::size_t k = 0; k < count; ++k) {
    if (gen_dtype(k) == DType::F32) {
      const float v[2] = {float(k), -float(k) / 2};
      std::memcpy(&buffer[begin[k]], v, 8);
    } else {
      const std::int64_t v = 3 * std::int64_t(k);
      std::memcpy(&buffer[begin[k]], &v, 8);
    }
    header += ",\"" + gen_name(prefix, k) + "\":{\"dtype\":\"" +
              (gen_dtype(k) == DType::F32 ? "F32\",\"shape\":[2]" : "I64\",\"shape\":[1,1]") +
              ",\"data_offsets\":[" + std::to_string(begin[k]) + "," +
              std::to_string(begin[k] + 8) + "]}";
  }
  header += "}";
  std::string out;
  for (int k = 0; k < 8; ++k) out.push_back(char((header.size() >> (8 * k)) & 0xff));
  return out + header + buffer;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best of three linear passes: a copy, then a byte-wise FNV-1a checksum of the copy.
double linear_pass_seconds(const std::string& bytes) {
  std::vector<std::uint8_t> copy(bytes.size());
  double best = std::numeric_limits<double>::infinity();
  volatile std::uint64_t sink = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(copy.data(), bytes.data(), bytes.size());
    std::uint64_t h = 1469598103934665603ull;
    for (const std::uint8_t c : copy) h = (h ^ c) * 1099511628211ull;
    sink = sink + h;
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// Parses `bytes` and checks the time bound; a second attempt only if the first is over it, so a
// moment of load on a shared machine does not fail the test (a quadratic reader fails both).
SafetensorsFile parse_within_linear_bound(const std::string& bytes) {
  const double linear = linear_pass_seconds(bytes);
  const double bound = std::max(1.0, kLinearFactor * linear);
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  double best = std::numeric_limits<double>::infinity();
  SafetensorsFile f;
  for (int attempt = 0; attempt < 2 && best >= bound; ++attempt) {
    const auto t0 = std::chrono::steady_clock::now();
    f = parse_safetensors(data, bytes.size());
    best = std::min(best, seconds_since(t0));
  }
  std::printf("[ info ] %.1f MB: parse %.3f s, linear pass %.4f s, bound %.2f s\n",
              double(bytes.size()) / 1e6, best, linear, bound);
  EXPECT_LT(best, bound) << "parse is not linear in the file size";
  return f;
}

void check_generated(const SafetensorsFile& f, std::size_t count, const std::string& prefix) {
  ASSERT_EQ(f.tensors().size(), count);
  EXPECT_EQ(f.metadata.at("format"), "pt");
  for (const std::size_t k : {std::size_t(0), std::size_t(1), count / 2 + 1, count - 1}) {
    const std::string name = gen_name(prefix, k);
    EXPECT_EQ(f.tensors()[k].first, name);  // file order kept
    ASSERT_TRUE(f.contains(name));
    const Tensor& t = f.at(name);
    EXPECT_EQ(&t, &f.tensors()[k].second);
    if (gen_dtype(k) == DType::F32) {
      const Vector<float> v = t.to_vector<float>();
      EXPECT_EQ(v(0), float(k));
      EXPECT_EQ(v(1), -float(k) / 2);
    } else {
      EXPECT_EQ(t.to_matrix<std::int64_t>()(0, 0), 3 * std::int64_t(k));
    }
  }
  EXPECT_FALSE(f.contains(gen_name(prefix, count)));
  EXPECT_THROW(f.at(prefix), Error);
}

std::string with_length(const std::string& header, const std::string& buffer = "") {
  std::string out;
  for (int k = 0; k < 8; ++k) out.push_back(char((header.size() >> (8 * k)) & 0xff));
  return out + header + buffer;
}

// Parses with `limits`; expects an Error whose message contains every one of `parts`.
void expect_limit_error(const std::string& file, const detail::SafetensorsLimits& limits,
                        std::initializer_list<const char*> parts) {
  try {
    (void)detail::parse_safetensors_limited(reinterpret_cast<const std::uint8_t*>(file.data()),
                                            file.size(), limits);
    ADD_FAILURE() << "no error for a file past a limit";
  } catch (const Error& e) {
    for (const char* p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(SafetensorsScale, HundredThousandTensorsParseInLinearTime) {
  const std::size_t count = 100000;
  const std::string bytes = generate(count, "layers.");
  const SafetensorsFile f = parse_within_linear_bound(bytes);
  check_generated(f, count, "layers.");
  // The index survives a copy and keeps working as the file grows.
  SafetensorsFile g = f;
  g.add("extra", Matrix<float>::Ones(1, 1));
  EXPECT_EQ(g.at("extra").to_matrix<float>()(0, 0), 1.0f);
  EXPECT_EQ(&g.at(gen_name("layers.", 7)), &g.tensors()[7].second);
  EXPECT_THROW(g.add(gen_name("layers.", 7), Matrix<float>::Ones(1, 1)), Error);
  EXPECT_EQ(g.tensors().size(), count + 1);  // a refused add leaves the file as it was
}

TEST(SafetensorsScale, LongSharedPrefixNamesParseInLinearTime) {
  // 20,000 names of 1006 bytes sharing their first 1000: ~21 MB, every name comparison long.
  const std::size_t count = 20000;
  const std::string prefix(1000, 'p');
  const std::string bytes = generate(count, prefix);
  const SafetensorsFile f = parse_within_linear_bound(bytes);
  check_generated(f, count, prefix);
}

TEST(SafetensorsScale, HeaderLengthLimit) {
  const detail::SafetensorsLimits defaults;
  EXPECT_EQ(defaults.max_header_bytes, 100000000u);
  // A length just over 100 MB is refused as such before anything is read (the file is 16 bytes).
  std::string file(16, ' ');
  const std::uint64_t n = 100000001;
  for (int k = 0; k < 8; ++k) file[k] = char((n >> (8 * k)) & 0xff);
  expect_limit_error(file, defaults, {"header length 100000001", "limit of 100000000"});
  detail::SafetensorsLimits small;
  small.max_header_bytes = 8;
  expect_limit_error(with_length("{}        "), small, {"header length 10", "limit of 8"});
}

TEST(SafetensorsScale, TensorCountLimit) {
  detail::SafetensorsLimits limits;
  limits.max_tensors = 2;
  const std::string three = generate(3, "t");
  expect_limit_error(three, limits, {"more than 2 tensors"});
  limits.max_tensors = 3;
  EXPECT_EQ(detail::parse_safetensors_limited(reinterpret_cast<const std::uint8_t*>(three.data()),
                                              three.size(), limits)
                .tensors()
                .size(),
            3u);
  EXPECT_EQ(detail::SafetensorsLimits{}.max_tensors, 1000000u);
}

TEST(SafetensorsScale, RankLimit) {
  auto file_of_rank = [](std::size_t rank) {
    std::string shape;
    for (std::size_t k = 0; k < rank; ++k) shape += k ? ",1" : "1";
    return with_length(
        "{\"t\":{\"dtype\":\"U8\",\"shape\":[" + shape + "],\"data_offsets\":[0,1]}}", "x");
  };
  const std::string ok = file_of_rank(64), over = file_of_rank(65);
  EXPECT_EQ(parse_safetensors(reinterpret_cast<const std::uint8_t*>(ok.data()), ok.size())
                .at("t")
                .shape.size(),
            64u);
  expect_limit_error(over, {}, {"tensor 't'", "shape has more than 64 entries"});
  detail::SafetensorsLimits limits;
  limits.max_rank = 2;
  expect_limit_error(file_of_rank(3), limits, {"shape has more than 2 entries"});
  // The writer side refuses what the reader would.
  Tensor t;
  t.dtype = DType::U8;
  t.shape.assign(65, 1);
  t.bytes.assign(1, 0);
  SafetensorsFile f;
  EXPECT_THROW(f.add("t", t), Error);
  t.shape.assign(64, 1);
  EXPECT_NO_THROW(f.add("t", t));
}

TEST(SafetensorsScale, NameLengthLimit) {
  auto file_with_name = [](const std::string& name) {
    return with_length("{\"" + name + "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
                       "x");
  };
  const std::string ok = file_with_name(std::string(65536, 'n'));
  EXPECT_NO_THROW(parse_safetensors(reinterpret_cast<const std::uint8_t*>(ok.data()), ok.size()));
  expect_limit_error(file_with_name(std::string(65537, 'n')), {},
                     {"tensor name of 65537 bytes", "limit of 65536"});
  detail::SafetensorsLimits limits;
  limits.max_name_bytes = 4;
  expect_limit_error(file_with_name("abcde"), limits, {"name of 5 bytes", "limit of 4"});
  SafetensorsFile f;
  EXPECT_THROW(f.add(std::string(65537, 'n'), Matrix<float>::Ones(1, 1)), Error);
  EXPECT_NO_THROW(f.add(std::string(65536, 'n'), Matrix<float>::Ones(1, 1)));
}

TEST(SafetensorsScale, OversizedIntegersAreRefused) {
  const std::string file = with_length(
      "{\"t\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,1]}}", "x");
  expect_limit_error(file, {}, {"exceeds 2^55"});
}

TEST(TensorConversion, NegativeOrOverflowingShapesAreRefused) {
  // A hand-made tensor whose wrapped element count matches its bytes must not reach Eigen.
  Tensor t;
  t.dtype = DType::F32;
  t.shape = {-1, -1};
  t.bytes.assign(4, 0);
  EXPECT_THROW(t.to_matrix<float>(), Error);
  t.shape = {-1};
  EXPECT_THROW(t.to_vector<float>(), Error);
  t.shape = {std::int64_t(1) << 32, std::int64_t(1) << 32};  // 2^64 elements wrap to 0
  t.bytes.clear();
  EXPECT_THROW(t.to_matrix<float>(), Error);
}
