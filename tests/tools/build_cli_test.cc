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

int RunCli(const std::string& args) {
  return std::system((std::string(QUIVER_CLI) + " " + args + " > /dev/null 2>&1").c_str());
}

TEST(BuildCliTest, KMeansClustersGroupTheBlobs) {
  quiver::testing::ScopedTempDir dir;
  const std::string vectors = dir.path() + "/v.fvecs", out = dir.path() + "/root/versions/v1";
  WriteBlobs(vectors);
  ASSERT_EQ(
      RunCli("build --out " + out + " --name blobs --vectors " + vectors + " --kmeans-clusters 4"),
      0);
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

// Off a terminal (here a file), the build prints its phases as lines: the vectors read, then
// k-means, the store and the index each ending at 100% with the item count, the snapshot.
TEST(BuildCliTest, ProgressLinesNameEachPhase) {
  quiver::testing::ScopedTempDir dir;
  const std::string vectors = dir.path() + "/v.fvecs", out = dir.path() + "/root/versions/v1";
  WriteBlobs(vectors);
  const std::string log = dir.path() + "/out.txt";
  ASSERT_EQ(std::system((std::string(QUIVER_CLI) + " build --out " + out +
                         " --name blobs --vectors " + vectors + " --kmeans-clusters 4 > " + log)
                            .c_str()),
            0);
  std::ifstream in(log);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  auto find = [&](const std::string& prefix) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].rfind(prefix, 0) == 0) return i;
    }
    return lines.size();
  };
  const size_t read = find("read      200 vectors of dim 4"), kmeans = find("kmeans    100.0%"),
               store = find("store     100.0%  200/200 items"),
               index = find("index     100.0%  200/200 items"), snap = find("snapshot  done");
  ASSERT_LT(snap, lines.size()) << "no snapshot line";
  EXPECT_LT(read, kmeans);
  EXPECT_LT(kmeans, store);
  EXPECT_LT(store, index);
  EXPECT_LT(index, snap);
  EXPECT_NE(lines[index].find("items/s"), std::string::npos) << lines[index];
  EXPECT_EQ(lines[index].find('\r'), std::string::npos) << "a terminal's line off a terminal";
}

TEST(BuildCliTest, BadInputFailsAndLeavesNothing) {
  quiver::testing::ScopedTempDir dir;
  const std::string vectors = dir.path() + "/v.fvecs", out = dir.path() + "/v1";
  WriteBlobs(vectors);
  std::ofstream(dir.path() + "/a.jsonl") << "{\"id\": 1, \"cluster\": 9}\n";
  EXPECT_NE(RunCli("build --out " + out + " --name x --vectors " + vectors + " --attributes " +
                   dir.path() + "/a.jsonl"),
            0);
  EXPECT_NE(RunCli("build --out " + out + " --name x --vectors " + vectors +
                   " --kmeans-clusters 4 --clusters 3"),
            0);
  EXPECT_NE(RunCli("build --out " + out + " --name x --vectors " + dir.path() + "/missing.fvecs"),
            0);
  // --clusters without cluster ids (no attributes, or attributes without a cluster column)
  // would put every item in cluster 0.
  std::ofstream(dir.path() + "/no_cluster.jsonl") << "{\"id\": 1, \"category\": 2}\n";
  EXPECT_NE(RunCli("build --out " + out + " --name x --vectors " + vectors + " --clusters 4"), 0);
  EXPECT_NE(RunCli("build --out " + out + " --name x --vectors " + vectors + " --clusters 4" +
                   " --attributes " + dir.path() + "/no_cluster.jsonl"),
            0);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(out + ".partial"));
}

}  // namespace
}  // namespace quiver::engine

namespace quiver::engine {
namespace {

// Users and plugins in the bulk build: the version holds the users and the lists; a plugin that
// fails (bad config) fails the build and leaves nothing.
TEST(BuildCliTest, UsersAndPluginsAreBuiltIn) {
  quiver::testing::ScopedTempDir dir;
  const std::string vectors = dir.path() + "/v.fvecs", out = dir.path() + "/root/versions/v1";
  WriteBlobs(vectors);
  std::ofstream(dir.path() + "/users.jsonl")
      << R"({"id":1,"vector":[20,0,0,0],"history":[{"item":3,"timestamp":9},{"item":4,"timestamp":8}]})"
      << "\n"
      << R"({"id":2,"vector":[0,20,0,0],"history":[{"item":3,"timestamp":7},{"item":60,"timestamp":6}]})"
      << "\n";
  ASSERT_EQ(RunCli("build --out " + out + " --name blobs --vectors " + vectors + " --users " +
                   dir.path() +
                   "/users.jsonl --plugin i2i_knn:'{\"k\":5}' --plugin itemcf --plugin u2u_knn"),
            0);
  auto e = std::move(Engine::Open(out, {})).value();
  auto user = e->GetUser("blobs", 2);
  ASSERT_TRUE(user.ok() && user->has_value());
  EXPECT_EQ((*user)->history.size(), 2u);
  auto i2i = e->GetList("blobs", "i2i", 0);
  ASSERT_TRUE(i2i.ok() && i2i->has_value());
  EXPECT_EQ((*i2i)->size(), 5u);
  for (const Hit& h : **i2i) EXPECT_LT(h.id, 50u) << "item 0's neighbours are in its blob";
  auto cf = e->GetList("blobs", "i2i_cf", 3);
  ASSERT_TRUE(cf.ok() && cf->has_value());
  EXPECT_EQ((*cf)->size(), 2u);  // 4 and 60 co-occur with 3
  EXPECT_EQ((*e->GetList("blobs", "u2u", 1))->at(0).id, 2u);
  e.reset();
  const std::string out2 = dir.path() + "/root/versions/v2";
  EXPECT_NE(RunCli("build --out " + out2 + " --name blobs --vectors " + vectors +
                   " --plugin i2i_knn:'{\"k\":0}'"),
            0);
  EXPECT_FALSE(std::filesystem::exists(out2));
  EXPECT_FALSE(std::filesystem::exists(out2 + ".partial"));
  EXPECT_NE(RunCli("build --out " + out2 + " --name blobs --vectors " + vectors + " --users " +
                   dir.path() + "/none.jsonl"),
            0);
  EXPECT_FALSE(std::filesystem::exists(out2));
  // The REST body form, {"users": [...]}, in a .json file.
  std::ofstream(dir.path() + "/users.json") << R"({"users":[{"id":7,"vector":[1,2,3,4]}]})";
  const std::string out3 = dir.path() + "/root/versions/v3";
  ASSERT_EQ(RunCli("build --out " + out3 + " --name blobs --vectors " + vectors + " --users " +
                   dir.path() + "/users.json"),
            0);
  e = std::move(Engine::Open(out3, {})).value();
  EXPECT_TRUE(e->GetUser("blobs", 7)->has_value());
}

}  // namespace
}  // namespace quiver::engine
