#include "cluster/meta_store.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "tests/testing/etcd_server.h"
#include "tests/testing/temp_dir.h"

namespace quiver::cluster {
namespace {

using Clock = std::chrono::steady_clock;

class MetaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Status started = etcd_.Start();
    ASSERT_TRUE(started.ok()) << started;
    auto m = MetaStore::Connect({.endpoints = {etcd_.url()}});
    ASSERT_TRUE(m.ok()) << m.status();
    meta_ = std::move(*m);
  }

  testing::ScopedTempDir dir_;
  testing::EtcdServer etcd_{dir_.path() + "/etcd"};
  std::unique_ptr<MetaStore> meta_;
};

TEST_F(MetaStoreTest, KeysRoundTripAndListByPrefix) {
  // Any bytes, in keys and values (base64 on the wire).
  const std::string binary("a\0\xff\n\"{}", 7);
  ASSERT_TRUE(meta_->Put("/q/c1/nodes/a", "127.0.0.1:7701").ok());
  ASSERT_TRUE(meta_->Put("/q/c1/nodes/b", binary).ok());
  ASSERT_TRUE(meta_->Put("/q/c1/nodes/" + binary, "x").ok());
  ASSERT_TRUE(meta_->Put("/q/c10/nodes/z", "other cluster").ok());
  auto a = meta_->Get("/q/c1/nodes/a");
  ASSERT_TRUE(a.ok() && a->has_value()) << a.status();
  EXPECT_EQ((*a)->value, "127.0.0.1:7701");
  EXPECT_GT((*a)->mod_revision, 0);
  auto b = meta_->Get("/q/c1/nodes/b");
  ASSERT_TRUE(b.ok() && b->has_value());
  EXPECT_EQ((*b)->value, binary);
  EXPECT_GT((*b)->mod_revision, (*a)->mod_revision);
  EXPECT_FALSE(meta_->Get("/q/c1/nodes/c")->has_value());
  int64_t revision = 0;
  auto nodes = meta_->List("/q/c1/", &revision);
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  ASSERT_EQ(nodes->size(), 3u);                 // not /q/c10/...
  EXPECT_EQ((*nodes)[0].key, "/q/c1/nodes/a");  // in key order: "a" < "a\0..." < "b"
  EXPECT_EQ((*nodes)[1].key, "/q/c1/nodes/" + binary);
  EXPECT_EQ((*nodes)[1].value, "x");
  EXPECT_EQ((*nodes)[2].key, "/q/c1/nodes/b");
  EXPECT_GE(revision, (*nodes)[1].mod_revision);
  ASSERT_TRUE(meta_->Delete("/q/c1/nodes/a").ok());
  EXPECT_FALSE(meta_->Get("/q/c1/nodes/a")->has_value());
  EXPECT_EQ(meta_->List("/q/c1/")->size(), 2u);
}

// Changes that depend on what was there are compare-and-swap: exactly one of two writers that
// read the same revision wins.
TEST_F(MetaStoreTest, SwapsTakeEffectOnlyOnTheRevisionExpected) {
  auto created = meta_->Swap("/q/version/movies", 0, "v1");
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(*created);
  EXPECT_FALSE(*meta_->Swap("/q/version/movies", 0, "v1b"));  // exists already
  const int64_t seen = (*meta_->Get("/q/version/movies"))->mod_revision;
  EXPECT_TRUE(*meta_->Swap("/q/version/movies", seen, "v2"));
  EXPECT_FALSE(*meta_->Swap("/q/version/movies", seen, "v3"));  // stale: someone swapped first
  EXPECT_EQ((*meta_->Get("/q/version/movies"))->value, "v2");
  EXPECT_FALSE(*meta_->SwapDelete("/q/version/movies", seen));
  EXPECT_TRUE(
      *meta_->SwapDelete("/q/version/movies", (*meta_->Get("/q/version/movies"))->mod_revision));
  EXPECT_FALSE(meta_->Get("/q/version/movies")->has_value());
}

// A key under a lease is removed once the lease is not kept alive: a dead node's registration
// goes away by itself.
TEST_F(MetaStoreTest, KeysUnderALeaseGoWhenItExpires) {
  auto lease = meta_->GrantLease(std::chrono::seconds(2));
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(meta_->Put("/q/nodes/a", "alive", *lease).ok());
  EXPECT_EQ((*meta_->Get("/q/nodes/a"))->lease, *lease);
  auto ttl = meta_->KeepAlive(*lease);
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_EQ(*ttl, 2);
  // Not kept alive: gone within about its TTL (waited for, bounded).
  const auto deadline = Clock::now() + std::chrono::minutes(1);
  while (meta_->Get("/q/nodes/a")->has_value() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(meta_->Get("/q/nodes/a")->has_value());
  EXPECT_EQ(meta_->KeepAlive(*lease).status().code(), StatusCode::kNotFound);
  // Revoked: its keys go at once.
  auto other = meta_->GrantLease(std::chrono::seconds(60));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(meta_->Put("/q/nodes/b", "alive", *other).ok());
  ASSERT_TRUE(meta_->Revoke(*other).ok());
  EXPECT_FALSE(meta_->Get("/q/nodes/b")->has_value());
  EXPECT_EQ(meta_->GrantLease(std::chrono::seconds(0)).status().code(),
            StatusCode::kInvalidArgument);
}

// Without etcd: kUnavailable, at once rather than after retries; a second endpoint that
// answers is used instead.
TEST_F(MetaStoreTest, AnUnreachableEtcdIsUnavailableAndAnotherEndpointIsTried) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(testing::FreeLoopbackPort());
  auto both = MetaStore::Connect({.endpoints = {dead, etcd_.url()}});
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_TRUE((*both)->Put("/q/k", "v").ok());
  etcd_.Kill();
  auto put = (*both)->Put("/q/k", "w");
  EXPECT_EQ(put.status().code(), StatusCode::kUnavailable) << put.status();
  EXPECT_EQ(MetaStore::Connect({.endpoints = {dead}}).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(MetaStore::Connect({.endpoints = {"127.0.0.1:2379"}}).status().code(),
            StatusCode::kInvalidArgument);
  // Back (same data): the value written before is there.
  ASSERT_TRUE(etcd_.Start().ok());
  EXPECT_EQ((*(*both)->Get("/q/k"))->value, "v");
}

}  // namespace
}  // namespace quiver::cluster
