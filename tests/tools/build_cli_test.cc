// `quiver build` end to end: writes a .fvecs file and a JSONL file, runs the CLI, and opens the
// version directory it made.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <set>

#include "base/coding.h"
#include "engine/engine.h"
#include "tests/testing/temp_dir.h"

namespace quiver::engine {
namespace {

// 4 well-separated blobs of 50 items in dim 4: blob b is centred at 20 * e_b.
void WriteBlobs(const std::string& path) {
  std::mt19937 rng(9);
  std::normal_distribution<float> g;
  std::string out;
  for (int b = 0; b < 4; ++b) {
    for (int i = 0; i < 50; ++i) {
      PutFixed<int32_t>(&out, 4);
      for (int d = 0; d < 4; ++d) PutFixed<float>(&out, g(rng) + (d == b ? 20.0f : 0.0f));
    }
  }
  std::ofstream(path, std::ios::binary) << out;
}

int RunCli(const std::string& args) { return std::system((std::string(QUIVER_CLI) + " " + args + " > /dev/null 2>&1").c_str()); }

TEST(BuildCliTest, KMeansClustersGroupTheBlobs) {
  quiver::testing::ScopedTempDir dir;
  const std::string vectors = dir.path() + "/v.fvecs", out = dir.path() + "/root/versions/v1";
  WriteBlobs(vectors);
  ASSERT_EQ(RunCli("build --out " + out + " --name blobs --vectors " + vectors + " --kmeans-clusters 4"), 0);
  EXPECT_FALSE(std::filesystem::exists(out + ".partial"));
  auto e = std::move(Engine::Open(out, {})).value();
  auto info = e->DescribeCollection("blobs");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->schema.clusters, 4u);
  EXPECT_EQ(info->items, 200u);
  EXPECT_TRUE(e->CheckConsistency("blobs").ok());
  std::vector<uint64_t> ids(200);
  for (uint64_t i = 0; i < 200; ++i) ids[i] = i;
  auto items = std::move(e->Get("blobs", ids)).value();
  std::set<uint32_t> seen;
  for (int b = 0; b < 4; ++b) {
    const uint32_t c = items[size_t(b) * 50]->cluster;
    for (int i = 0; i < 50; ++i) EXPECT_EQ(items[size_t(b * 50 + i)]->cluster, c) << "blob " << b;
    seen.insert(c);
  }
  EXPECT_EQ(seen.size(), 4u);  // one cluster per blob
}

TEST(BuildCliTest, BadInputFailsAndLeavesNothing) {
  quiver::testing::ScopedTempDir dir;
  const std::string vectors = dir.path() + "/v.fvecs", out = dir.path() + "/v1";
  WriteBlobs(vectors);
  std::ofstream(dir.path() + "/a.jsonl") << "{\"id\": 1, \"cluster\": 9}\n";
  EXPECT_NE(RunCli("build --out " + out + " --name x --vectors " + vectors + " --attributes " + dir.path() + "/a.jsonl"), 0);
  EXPECT_NE(RunCli("build --out " + out + " --name x --vectors " + vectors + " --kmeans-clusters 4 --clusters 3"), 0);
  EXPECT_NE(RunCli("build --out " + out + " --name x --vectors " + dir.path() + "/missing.fvecs"), 0);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".partial"));
}

}  // namespace
}  // namespace quiver::engine
