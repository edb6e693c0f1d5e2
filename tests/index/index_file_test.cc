// Index files: corruption and truncation at many offsets give kDataLoss, never a crash.
#include "index/io/index_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "index/flat/flat_index.h"
#include "index/hnsw/hnsw_index.h"
#include "index/index_factory.h"
#include "index/ivf/ivf_pq_index.h"
#include "tests/testing/data.h"

namespace quiver::index {
namespace {

using quiver::testing::Iota;
using quiver::testing::RandomVectors;

std::string TempPath(const std::string& name) {
  return ::testing::TempDir() + "/" + name + "_" + std::to_string(::getpid());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string SavedIndex(const std::string& kind) {
  const size_t n = 300, d = 8;
  auto base = RandomVectors(n, d, 99);
  std::unique_ptr<VectorIndex> index;
  if (kind == "flat") {
    index = std::make_unique<FlatIndex>(d, Metric::kL2);
  } else if (kind.rfind("ivf_pq", 0) == 0) {
    IvfPqOptions o;
    o.nlist = 8;
    o.m = 4;
    o.nbits = kind == "ivf_pq4" ? 4 : 8;
    o.refine_store = kind == "ivf_pq4" ? RefineStore::kInt8 : RefineStore::kFloat32;
    index = std::move(IvfPqIndex::Create(d, Metric::kL2, o)).value();
  } else {
    HnswOptions o;
    o.m = 8;
    o.ef_construction = 40;
    o.quantization = kind == "hnsw_sq8" ? HnswQuantization::kSq8 : HnswQuantization::kNone;
    index = std::move(HnswIndex::Create(d, Metric::kL2, o)).value();
  }
  QV_CHECK(index->Add(Iota(n), base).ok());
  std::string path = TempPath(kind);
  QV_CHECK(index->Save(path).ok());
  auto bytes = ReadFileToString(path);
  QV_CHECK(bytes.ok());
  std::remove(path.c_str());
  return *bytes;
}

class CorruptionTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CorruptionTest, FlippedBytesAreDataLoss) {
  const std::string good = SavedIndex(GetParam());
  const std::string path = TempPath("flip_" + GetParam());
  WriteBytes(path, good);
  ASSERT_TRUE(LoadIndex(path).ok());
  // Every byte of the header region, then a spread of offsets through the payload.
  std::vector<size_t> offsets;
  for (size_t i = 0; i < 200 && i < good.size(); ++i) offsets.push_back(i);
  for (size_t i = 200; i < good.size(); i += 97) offsets.push_back(i);
  offsets.push_back(good.size() - 1);
  for (size_t off : offsets) {
    std::string bad = good;
    bad[off] ^= 0x5A;
    WriteBytes(path, bad);
    auto r = LoadIndex(path);
    ASSERT_FALSE(r.ok()) << "flip at " << off << " was accepted";
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << off << ": " << r.status().ToString();
  }
  std::remove(path.c_str());
}

TEST_P(CorruptionTest, TruncationsAreDataLoss) {
  const std::string good = SavedIndex(GetParam());
  const std::string path = TempPath("trunc_" + GetParam());
  std::vector<size_t> lengths;
  for (size_t i = 0; i < 64; ++i) lengths.push_back(i);
  for (size_t i = 64; i < good.size(); i += 131) lengths.push_back(i);
  lengths.push_back(good.size() - 1);
  for (size_t len : lengths) {
    WriteBytes(path, good.substr(0, len));
    auto r = LoadIndex(path);
    ASSERT_FALSE(r.ok()) << "truncation to " << len << " was accepted";
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << len;
  }
  WriteBytes(path, good + "extra");
  EXPECT_EQ(LoadIndex(path).status().code(), StatusCode::kDataLoss);
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Kinds, CorruptionTest,
                         ::testing::Values("flat", "hnsw", "hnsw_sq8", "ivf_pq4", "ivf_pq8"));

TEST(IndexFileTest, MissingFileIsNotFound) {
  EXPECT_EQ(LoadIndex(TempPath("does_not_exist")).status().code(), StatusCode::kNotFound);
}

// A file whose checksums are valid but whose structure lies (a link to a node that does not
// exist) is still refused.
TEST(IndexFileTest, ValidChecksumsWithBadStructureAreDataLoss) {
  const size_t d = 4;
  HnswOptions o;
  o.m = 4;
  auto index = std::move(HnswIndex::Create(d, Metric::kL2, o)).value();
  auto base = RandomVectors(50, d, 5);
  ASSERT_TRUE(index->Add(Iota(50), base).ok());
  const std::string path = TempPath("structure");
  ASSERT_TRUE(index->Save(path).ok());
  auto file = IndexFileReader::Open(path);
  ASSERT_TRUE(file.ok());
  // Rebuild the file with node 0's first level-0 link pointing past the end.
  IndexFileWriter w(path, IndexType::kHnsw);
  for (uint32_t tag = 1; tag <= 4; ++tag) {
    std::string payload(*file->Section(tag));
    if (tag == 2) {
      // Node 0's block (docs/file-formats.md): 4 floats of vector, then link count, flags, links.
      const size_t links = d * sizeof(float);
      uint32_t count = 1, bogus = 1000000;
      std::memcpy(&payload[links], &count, 4);
      std::memcpy(&payload[links + 8], &bogus, 4);
    }
    w.AddSection(tag, payload);
  }
  ASSERT_TRUE(w.Finish().ok());
  auto r = LoadIndex(path);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace quiver::index
