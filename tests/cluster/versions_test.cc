// Collection versions' names, etcd record and build description (cluster/versions.h).
#include "cluster/versions.h"

#include <gtest/gtest.h>

#include <fstream>

#include "cluster/membership.h"
#include "tests/testing/temp_dir.h"

namespace quiver::cluster {
namespace {

TEST(VersionsTest, NamesMapVersionsToEngineCollections) {
  EXPECT_EQ(EngineName("movies", "initial"), "movies");
  EXPECT_EQ(EngineName("movies", "v2"), "movies@v2");
  EXPECT_EQ(PinnedName("movies", "initial"), "movies@initial");
  EXPECT_EQ(LocalName("movies@initial"), "movies");
  EXPECT_EQ(LocalName("movies@v2"), "movies@v2");
  EXPECT_EQ(LocalName("movies"), "movies");
  EXPECT_EQ(LogName("movies@v2"), "movies");
  EXPECT_EQ(VersionOf("movies@v2"), "v2");
  EXPECT_EQ(VersionOf("movies"), "initial");
  EXPECT_TRUE(CheckVersionName("2026-11-30.1_b").ok());
  EXPECT_EQ(CheckVersionName("").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckVersionName("a@b").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckVersionName(std::string(65, 'v')).code(), StatusCode::kInvalidArgument);
}

TEST(VersionsTest, TheRecordRoundTripsAndKeepsActivePreviousAndPending) {
  VersionsRecord r;
  EXPECT_EQ(r.Kept(), std::vector<std::string>{"initial"});
  r.active = "v2";
  r.previous = "initial";
  r.pending = "v3";
  r.builds["v2"] = {"/b/v2", 10};
  r.builds["v3"] = {"/b/\"quoted\" v3", 42};
  EXPECT_EQ(r.Kept(), (std::vector<std::string>{"v2", "initial", "v3"}));
  auto back = DecodeVersions(EncodeVersions(r));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, r);
  EXPECT_EQ(DecodeVersions("{").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(
      DecodeVersions(R"({"active":"v2","previous":"","pending":"","builds":{}})").status().code(),
      StatusCode::kDataLoss);  // an active version without its build
}

TEST(VersionsTest, ABuildFitsOnlyTheCollectionItWasBuiltFor) {
  testing::ScopedTempDir dir;
  const BuildManifest m{"movies", 2, 16, "ip", 8, 0, 1000};
  EXPECT_EQ(ReadManifest(dir.path()).status().code(), StatusCode::kNotFound);
  {
    std::ofstream out(BuildManifestPath(dir.path()));
    out << EncodeManifest(m);
  }
  auto read = ReadManifest(dir.path());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->items, 1000u);
  CollectionSchema s;
  s.name = "movies";
  s.dim = 16;
  s.metric = Metric::kInnerProduct;
  s.clusters = 8;
  s.shards = 2;
  s.index.type = IndexSpec::Type::kHnsw;  // index parameters may differ
  EXPECT_TRUE(CheckBuildFits(*read, s).ok());
  for (auto edit : std::vector<void (*)(CollectionSchema&)>{
           [](CollectionSchema& x) { x.name = "books"; }, [](CollectionSchema& x) { x.shards = 4; },
           [](CollectionSchema& x) { x.dim = 8; },
           [](CollectionSchema& x) { x.metric = Metric::kL2; },
           [](CollectionSchema& x) { x.clusters = 0; },
           [](CollectionSchema& x) { x.topics = 2; }}) {
    CollectionSchema other = s;
    edit(other);
    EXPECT_EQ(CheckBuildFits(*read, other).code(), StatusCode::kFailedPrecondition);
  }
  {
    std::ofstream out(BuildManifestPath(dir.path()));
    out << R"({"collection":"movies"})";
  }
  EXPECT_EQ(ReadManifest(dir.path()).status().code(), StatusCode::kDataLoss);
}

// The shard assignment (cluster/membership.h): its etcd value and who is sent a shard.
TEST(ShardAssignmentTest, RoundTripsAndListsOnlyAssignedHosts) {
  const ShardAssignment a{{0, {"c0"}}, {3, {"a1", "b1"}}};
  auto back = DecodeAssignment(EncodeAssignment(a));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, a);
  EXPECT_EQ(DecodeAssignment(R"({"x":["a"]})").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeAssignment(R"({"0":"a"})").status().code(), StatusCode::kDataLoss);
  MemberInfo a0{.id = "a0", .shards = {0}}, c0{.id = "c0", .shards = {0, 1}},
      all{.id = "x", .shards = {}};
  EXPECT_FALSE(Membership::Assigned(a, a0, 0));  // holds it, not listed
  EXPECT_TRUE(Membership::Assigned(a, c0, 0));
  EXPECT_TRUE(Membership::Assigned(a, c0, 1));   // no entry: every holder
  EXPECT_FALSE(Membership::Assigned(a, a0, 1));  // does not hold it
  EXPECT_TRUE(Membership::Assigned({}, all, 7));
  EXPECT_FALSE(Membership::Assigned(a, all, 3));
}

}  // namespace
}  // namespace quiver::cluster
