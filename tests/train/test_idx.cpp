// IDX reader: a handmade file (raw and gzip-compressed through zlib itself), and truncated or
// corrupted files rejected with sparsenm::Error.
#include <gtest/gtest.h>

#include <zlib.h>

#include <cstdio>
#include <string>
#include <vector>

#include <sparsenm/train/idx.hpp>

using namespace sparsenm;

namespace {

// 3 images of 2 x 2 pixels, and 3 labels, written byte by byte from the IDX description.
std::vector<std::uint8_t> images_idx() {
  return {0, 0,   8,   3, 0, 0, 0, 3, 0,  0,  0,  2, 0, 0, 0, 2,  // magic, dims 3 x 2 x 2
          0, 255, 128, 1, 2, 3, 4, 5, 10, 20, 30, 40};
}
std::vector<std::uint8_t> labels_idx() { return {0, 0, 8, 1, 0, 0, 0, 3, 7, 0, 9}; }

std::string write_file(const std::string& name, const std::vector<std::uint8_t>& bytes, bool gz) {
  const std::string path = testing::TempDir() + "sparsenm_idx_" + name;
  if (gz) {
    gzFile f = gzopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
    gzclose(f);
  } else {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  return path;
}

std::vector<std::uint8_t> read_raw(const std::string& path) {
  std::vector<std::uint8_t> out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  int c;
  while ((c = std::fgetc(f)) != EOF) out.push_back(std::uint8_t(c));
  std::fclose(f);
  return out;
}

}  // namespace

TEST(Idx, ParsesHandmadeFile) {
  const auto b = images_idx();
  const IdxArray a = parse_idx(b.data(), b.size());
  EXPECT_EQ(a.dims, (std::vector<std::int64_t>{3, 2, 2}));
  ASSERT_EQ(a.data.size(), 12u);
  EXPECT_EQ(a.data[1], 255);
  EXPECT_EQ(a.data[11], 40);
}

TEST(Idx, ReadsGzipAndPlainAndScalesImages) {
  for (bool gz : {true, false}) {
    const std::string ip = write_file(gz ? "img.gz" : "img", images_idx(), gz);
    const std::string lp = write_file(gz ? "lab.gz" : "lab", labels_idx(), gz);
    const IdxDataset d = load_idx_dataset(ip, lp);
    EXPECT_EQ(d.rows, 2);
    EXPECT_EQ(d.cols, 2);
    ASSERT_EQ(d.images.rows(), 3);
    ASSERT_EQ(d.images.cols(), 4);
    EXPECT_FLOAT_EQ(d.images(0, 1), 1.0f);
    EXPECT_FLOAT_EQ(d.images(0, 2), 128.0f / 255.0f);
    EXPECT_FLOAT_EQ(d.images(2, 3), 40.0f / 255.0f);
    EXPECT_EQ(d.labels, (std::vector<int>{7, 0, 9}));
    const IdxDataset two = load_idx_dataset(ip, lp, 2);
    EXPECT_EQ(two.images.rows(), 2);
    EXPECT_EQ(two.labels.size(), 2u);
    std::remove(ip.c_str());
    std::remove(lp.c_str());
  }
}

TEST(Idx, TruncatedFilesAreRejected) {
  const auto full = images_idx();
  for (std::size_t cut = 0; cut < full.size(); ++cut)
    EXPECT_THROW(parse_idx(full.data(), cut), Error) << "cut at " << cut;
  auto longer = full;
  longer.push_back(1);
  EXPECT_THROW(parse_idx(longer.data(), longer.size()), Error);
  // A gzip stream cut in the middle: zlib reports it, and read_idx throws.
  std::vector<std::uint8_t> big = {0, 0, 8, 1, 0, 0, 0x10, 0};  // 4096 bytes of data
  for (int i = 0; i < 4096; ++i) big.push_back(std::uint8_t((i * 7919) >> 3));
  const std::string gz = write_file("big.gz", big, true);
  auto compressed = read_raw(gz);
  ASSERT_GT(compressed.size(), 40u);
  EXPECT_EQ(read_idx(gz).data.size(), 4096u);
  compressed.resize(compressed.size() / 2);
  const std::string cut = write_file("cut.gz", compressed, false);
  EXPECT_THROW(read_idx(cut), Error);
  std::remove(gz.c_str());
  std::remove(cut.c_str());
}

TEST(Idx, CorruptedOrMismatchedFilesAreRejected) {
  auto b = images_idx();
  b[2] = 0x0D;  // float data: unsupported
  EXPECT_THROW(parse_idx(b.data(), b.size()), Error);
  b = images_idx();
  b[0] = 1;
  EXPECT_THROW(parse_idx(b.data(), b.size()), Error);
  b = images_idx();
  b[3] = 0;
  EXPECT_THROW(parse_idx(b.data(), b.size()), Error);
  const std::string ip = write_file("img2", images_idx(), false);
  const std::string lp = write_file("lab2", {0, 0, 8, 1, 0, 0, 0, 2, 1, 2}, false);
  EXPECT_THROW(load_idx_dataset(ip, lp), Error);  // 3 images, 2 labels
  EXPECT_THROW(load_idx_dataset(lp, ip), Error);  // swapped ranks
  std::remove(ip.c_str());
  std::remove(lp.c_str());
}

TEST(Idx, MissingFileNamesThePath) {
  try {
    read_idx("/nonexistent/train-images-idx3-ubyte.gz");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/train-images-idx3-ubyte.gz"),
              std::string::npos);
  }
}
