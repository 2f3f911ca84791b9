// .npy writer/reader: byte-exact agreement with files numpy 1.24 wrote (embedded below as the
// independent reference), bit-exact round trips, and rejection of every cut, corrupted header and
// wrong dtype.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include <sparsenm/io/npy.hpp>

using namespace sparsenm;

namespace {

std::vector<std::uint8_t> to_vec(const std::string& s) { return {s.begin(), s.end()}; }

std::string hex_bytes(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(char(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// np.save(np.array([[1.5, -2.0, 0.25], [3.0, 4.0, -0.0]], dtype=np.float32)) with numpy 1.24.2.
std::string numpy_f32_file() {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  header.append(118 - 1 - header.size(), ' ');
  header += '\n';
  return std::string("\x93NUMPY\x01\x00\x76\x00", 10) + header +
         hex_bytes("0000c03f000000c00000803e000040400000804000000080");
}

std::string temp_path(const char* name) {
  return testing::TempDir() + "sparsenm_npy_" + name + "_" +
         std::to_string(reinterpret_cast<std::uintptr_t>(&name) & 0xffff);
}

}  // namespace

TEST(Npy, WriterMatchesNumpyBytes) {
  Matrix<float> a(2, 3);
  a << 1.5f, -2.0f, 0.25f, 3.0f, 4.0f, -0.0f;
  EXPECT_EQ(npy_bytes(Tensor::from_eigen(a)), numpy_f32_file());
  // 1-D uint8, also as numpy writes it: shape "(3,)".
  Eigen::Matrix<std::uint8_t, Eigen::Dynamic, 1> v(3);
  v << 7, 0, 255;
  const std::string b = npy_bytes(Tensor::from_eigen(v, true));
  EXPECT_EQ(b.size(), 131u);
  EXPECT_NE(b.find("'shape': (3,), }"), std::string::npos);
  EXPECT_EQ(b.substr(128), std::string("\x07\x00\xff", 3));
}

TEST(Npy, ReaderParsesNumpyFile) {
  const auto bytes = to_vec(numpy_f32_file());
  const Tensor t = parse_npy(bytes.data(), bytes.size());
  ASSERT_EQ(t.dtype, DType::F32);
  ASSERT_EQ(t.shape, (std::vector<std::int64_t>{2, 3}));
  const Matrix<float> m = t.to_matrix<float>();
  EXPECT_EQ(m(0, 0), 1.5f);
  EXPECT_EQ(m(0, 1), -2.0f);
  EXPECT_EQ(m(1, 2), 0.0f);
  EXPECT_TRUE(std::signbit(m(1, 2)));
}

template <class T>
void round_trip_bit_exact(
    const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>& a) {
  const std::string path = temp_path(typeid(T).name());
  save_npy(path, a);
  const Tensor t = load_npy(path);
  std::remove(path.c_str());
  const auto b = t.template to_matrix<T>();
  ASSERT_EQ(b.rows(), a.rows());
  ASSERT_EQ(b.cols(), a.cols());
  if (a.size()) {
    EXPECT_EQ(std::memcmp(a.data(), b.data(), sizeof(T) * a.size()), 0);
  }
}

TEST(Npy, RoundTripBitExactEveryDtype) {
  Matrix<float> f(3, 5);
  for (Index i = 0; i < f.size(); ++i) f.data()[i] = std::ldexp(float(i) - 7.3f, int(i) - 5);
  f(0, 0) = std::numeric_limits<float>::quiet_NaN();
  f(0, 1) = -std::numeric_limits<float>::infinity();
  f(0, 2) = std::numeric_limits<float>::denorm_min();
  round_trip_bit_exact<float>(f);
  round_trip_bit_exact<double>(f.cast<double>() / 3.0);
  Mask m(4, 8);
  for (Index i = 0; i < m.size(); ++i) m.data()[i] = std::uint8_t((i * 37) & 0xff);
  round_trip_bit_exact<std::uint8_t>(m);
  Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> i32(2, 2);
  i32 << -1, 2147483647, -2147483647 - 1, 0;
  round_trip_bit_exact<std::int32_t>(i32);
  Eigen::Matrix<std::int64_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> i64(1, 2);
  i64 << std::numeric_limits<std::int64_t>::min(), 42;
  round_trip_bit_exact<std::int64_t>(i64);
  round_trip_bit_exact<float>(Matrix<float>(0, 4));  // empty arrays are legal
}

TEST(Npy, ColumnMajorSourceIsStoredInCOrder) {
  Eigen::MatrixXd c(2, 3);
  c << 1, 2, 3, 4, 5, 6;
  const Tensor t = Tensor::from_eigen(c);
  const auto bytes = to_vec(npy_bytes(t));
  const Matrix<double> back = parse_npy(bytes.data(), bytes.size()).to_matrix<double>();
  EXPECT_EQ(back, Matrix<double>(c));
}

TEST(Npy, EveryCutFileIsRejected) {
  const auto full = to_vec(numpy_f32_file());
  for (std::size_t cut = 0; cut < full.size(); ++cut)
    EXPECT_THROW(parse_npy(full.data(), cut), Error) << "cut at " << cut;
  auto longer = full;
  longer.push_back(0);
  EXPECT_THROW(parse_npy(longer.data(), longer.size()), Error);  // trailing garbage
}

TEST(Npy, CorruptedHeadersAreRejected) {
  const std::string good = numpy_f32_file();
  auto reject = [](std::string s, const char* why) {
    const auto b = to_vec(s);
    EXPECT_THROW(parse_npy(b.data(), b.size()), Error) << why;
  };
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const auto at = s.find(from);
    EXPECT_NE(at, std::string::npos);
    s.replace(at, from.size(), to);
    return s;
  };
  {
    std::string s = good;
    s[0] = 'X';
    reject(s, "magic");
  }
  {
    std::string s = good;
    s[6] = 9;
    reject(s, "version");
  }
  {
    std::string s = good;
    s[9] = 0x70;  // header length far beyond the file
    reject(s, "header length");
  }
  reject(replace("'shape'", "'shapf'"), "unknown key");
  reject(replace("(2, 3)", "(2, 4)"), "shape does not match data");
  reject(replace("(2, 3)", "(2,-3)"), "negative extent");
  reject(replace("(2, 3)", "(2 3) "), "missing comma");
  reject(replace("False", "True "), "fortran order");
  reject(replace("'<f4'", "'<f2'"), "unsupported dtype");
  reject(replace("'<f4'", "'>f4'"), "big endian");
  reject(replace("{'descr'", "['descr'"), "not a dict");
  reject(replace(", }", ",  "), "unterminated dict");
  reject(replace("(2, 3)", "(9999999999999999999, 3)"), "overflowing shape");
  reject(replace("(2, 3)", "(4611686018427387904, 4)"), "overflowing byte size");
}

TEST(Npy, WrongDtypeOrRankIsRejectedOnConversion) {
  const auto bytes = to_vec(numpy_f32_file());
  const Tensor t = parse_npy(bytes.data(), bytes.size());
  EXPECT_THROW(t.to_matrix<double>(), Error);
  EXPECT_THROW(t.to_matrix<std::uint8_t>(), Error);
  EXPECT_THROW(t.to_vector<float>(), Error);  // rank 2 is not a vector
  EXPECT_NO_THROW(t.to_matrix<float>());
}

TEST(Npy, MissingFileNamesThePath) {
  try {
    load_npy("/nonexistent/dir/x.npy");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.npy"), std::string::npos);
  }
}

TEST(Npy, HeaderAndRankLimits) {
  auto npy_v2 = [](const std::string& dict, const std::string& data) {
    std::string out("\x93NUMPY\x02\x00", 8);
    for (int k = 0; k < 4; ++k) out.push_back(char((dict.size() >> (8 * k)) & 0xff));
    return out + dict + data;
  };
  auto message_of = [](const std::string& s) -> std::string {
    const auto b = to_vec(s);
    try {
      parse_npy(b.data(), b.size());
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  // A version-2 header length just over 1 MiB is refused as such, before anything is read.
  std::string huge("\x93NUMPY\x02\x00\x01\x00\x10\x00", 12);  // 0x100001 = 2^20 + 1
  EXPECT_NE(message_of(huge).find("header length 1048577 exceeds the limit of 1048576"),
            std::string::npos)
      << message_of(huge);
  // A 1 MiB header (mostly padding) is still read.
  std::string dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }";
  dict.append((std::size_t(1) << 20) - 1 - dict.size(), ' ');
  dict += '\n';
  EXPECT_EQ(message_of(npy_v2(dict, "x")), "(no error)");
  // Rank 64 (numpy 2's limit) is read, rank 65 refused with the limit in the message.
  auto of_rank = [&](std::size_t rank) {
    std::string shape;
    for (std::size_t k = 0; k < rank; ++k) shape += "1,";
    return npy_v2("{'descr': '|u1', 'fortran_order': False, 'shape': (" + shape + "), }\n", "x");
  };
  EXPECT_EQ(message_of(of_rank(64)), "(no error)");
  EXPECT_NE(message_of(of_rank(65)).find("more than 64 dimensions"), std::string::npos);
  // The writer refuses what the reader would.
  Tensor t;
  t.dtype = DType::U8;
  t.shape.assign(65, 1);
  t.bytes.assign(1, 0);
  EXPECT_THROW(npy_bytes(t), Error);
}
