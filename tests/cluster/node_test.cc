#include "cluster/node.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/data_root.h"
#include "engine/engine.h"
#include "storage/fault_fs.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/temp_dir.h"

namespace quiver::cluster {
namespace {

using Clock = std::chrono::steady_clock;

CollectionSchema Schema() {
  CollectionSchema s;
  s.name = "m.x";
  s.dim = 8;
  s.max_history = 50;
  return s;
}

std::vector<ItemRecord> Items(std::mt19937_64& rng, uint64_t first, size_t n) {
  std::normal_distribution<float> g;
  std::vector<ItemRecord> out(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].id = first + i;
    for (int d = 0; d < 8; ++d) out[i].vector.push_back(g(rng));
    out[i].payload = "item " + std::to_string(first + i);
  }
  return out;
}

// One data root, opened as a node of the cluster (or standalone, without a log).
struct Member {
  std::string dir;
  std::unique_ptr<engine::DataRoot> root;
  std::unique_ptr<Node> node;

  engine::Engine& engine() { return *root->engine(); }
};

class NodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Status started = nats_.Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  void Open(Member& m, const std::string& node_id, NodeOptions o = {},
            std::shared_ptr<storage::FaultInjection> faults = nullptr) {
    engine::EngineOptions eo;
    eo.store.faults = std::move(faults);
    auto root = engine::DataRoot::Open(m.dir, eo);
    ASSERT_TRUE(root.ok()) << root.status();
    m.root = std::move(*root);
    if (node_id.empty()) return;
    o.log.servers = {nats_.url()};
    o.node_id = node_id;
    auto node = Node::Start(*m.root, o);
    ASSERT_TRUE(node.ok()) << node.status();
    m.node = std::move(*node);
  }

  static void Close(Member& m) {
    m.node.reset();
    m.root.reset();
  }

  // Every item of the collection, by id (a scan of the engine's items through Get).
  static std::vector<std::optional<ItemRecord>> Contents(Member& m, uint64_t max_id) {
    std::vector<uint64_t> ids(max_id + 1);
    for (uint64_t i = 0; i <= max_id; ++i) ids[i] = i;
    auto got = m.engine().Get(Schema().name, ids);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : std::vector<std::optional<ItemRecord>>{};
  }

  testing::ScopedTempDir dir_;
  testing::NatsServer nats_{dir_.path() + "/nats"};
};

// Two nodes following one collection, written through both, converge to the same contents, the
// same users and the same search answers as a standalone engine given the same writes; a
// restarted node applies what it missed exactly once.
TEST_F(NodeTest, NodesConvergeWithAStandaloneEngineAndReplayExactlyOnce) {
  Member a{dir_.path() + "/a"}, b{dir_.path() + "/b"}, alone{dir_.path() + "/alone"};
  Open(a, "a");
  Open(b, "b");
  Open(alone, "");
  for (Member* m : {&a, &b, &alone}) ASSERT_TRUE(m->engine().CreateCollection(Schema()).ok());
  ASSERT_TRUE(a.node->Follow(Schema().name).ok());
  ASSERT_TRUE(b.node->Follow(Schema().name).ok());
  const std::string name = Schema().name;

  std::mt19937_64 rng(3);
  uint64_t last_seq = 0;
  // Writes alternate between the nodes; the standalone engine gets them in the log's order
  // (one writer at a time here, so the order of acknowledgement).
  auto write = [&](int step) {
    Member& via = step % 2 == 0 ? a : b;
    Result<WriteResult> r = WriteResult{};
    if (step % 5 == 4) {
      std::vector<uint64_t> ids = {uint64_t(rng() % 300), uint64_t(rng() % 300) + 300};
      r = via.node->Delete(name, ids);
      ASSERT_TRUE(alone.engine().Delete(name, ids).ok());
    } else if (step % 7 == 6) {
      std::vector<Event> events = {{7, rng() % 600, int64_t(step)}, {8, rng() % 600, 1}};
      r = via.node->AddEvents(name, events);
      ASSERT_TRUE(alone.engine().AddEvents(name, events).ok());
    } else {
      auto items = Items(rng, rng() % 550, 20);
      r = via.node->Upsert(name, items);
      ASSERT_TRUE(alone.engine().Upsert(name, items).ok());
    }
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_GT(r->op_seq, last_seq);
    last_seq = r->op_seq;
  };
  for (int step = 0; step < 40; ++step) write(step);
  const auto deadline = Clock::now() + std::chrono::minutes(2);
  ASSERT_TRUE(a.node->WaitApplied(name, last_seq, deadline).ok());
  ASSERT_TRUE(b.node->WaitApplied(name, last_seq, deadline).ok());

  // b goes down; writes go on through a; b comes back and catches up.
  Close(b);
  for (int step = 40; step < 70; step += 2) write(step);
  Open(b, "b");
  ASSERT_TRUE(b.node->WaitApplied(name, last_seq, Clock::now() + std::chrono::minutes(2)).ok());
  ASSERT_TRUE(a.node->WaitApplied(name, last_seq, Clock::now() + std::chrono::minutes(2)).ok());

  const auto want = Contents(alone, 600);
  size_t present = 0;
  uint64_t want_first_present = 0;
  for (uint64_t id = 0; id < want.size(); ++id) {
    if (want[id].has_value() && present++ == 0) want_first_present = id;
  }
  ASSERT_GT(present, 100u);
  EXPECT_EQ(Contents(a, 600), want);
  EXPECT_EQ(Contents(b, 600), want);
  for (uint64_t user : {7, 8}) {
    auto u = alone.engine().GetUser(name, user);
    ASSERT_TRUE(u.ok() && u->has_value());
    EXPECT_EQ(*a.engine().GetUser(name, user), *u);  // events applied once each
    EXPECT_EQ(*b.engine().GetUser(name, user), *u);
  }
  index::SearchParams p;
  p.k = 10;
  p.ef = 200;
  for (uint64_t id : {1, 50, 333}) {
    std::vector<float> q(8, 0.1f * float(id % 7));
    auto want_hits = alone.engine().Search(name, q, p);
    ASSERT_TRUE(want_hits.ok());
    EXPECT_EQ(*a.engine().Search(name, q, p), *want_hits);
    EXPECT_EQ(*b.engine().Search(name, q, p), *want_hits);
  }
  EXPECT_EQ(a.engine().LogPositions(name)->at(0), last_seq);
  EXPECT_EQ(b.engine().LogPositions(name)->at(0), last_seq);

  // A plugin run goes through the log: asked of a, made by a and b alike over the same items.
  const auto long_wait = Clock::now() + std::chrono::minutes(5);
  auto run = a.node->RunPlugin(name, "i2i_knn", R"({"k": 5})", false, long_wait);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_GT(run->lists, 100u);
  EXPECT_EQ(a.node->RunPlugin(name, "no_such_plugin", "", false, long_wait).status().code(),
            StatusCode::kNotFound);
  // A config the plugin refuses is refused on every node, and the log goes on.
  auto bad = a.node->RunPlugin(name, "i2i_knn", R"({"k": "five"})", false, long_wait);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << bad.status();
  auto after = a.node->Delete(name, std::vector<uint64_t>{100000});
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_TRUE(b.node->WaitApplied(name, after->op_seq, long_wait).ok());
  auto infos_a = a.engine().ListInfos(name), infos_b = b.engine().ListInfos(name);
  ASSERT_TRUE(infos_a.ok() && infos_b.ok());
  ASSERT_EQ(infos_b->size(), 1u);
  EXPECT_EQ(infos_b->at(0).kind, infos_a->at(0).kind);
  EXPECT_EQ(infos_b->at(0).config, infos_a->at(0).config);
  EXPECT_EQ(infos_b->at(0).keys, infos_a->at(0).keys);
  EXPECT_EQ(infos_b->at(0).keys, present);
  const auto list_b = b.engine().GetList(name, "i2i", want_first_present);
  ASSERT_TRUE(list_b.ok() && list_b->has_value());
  EXPECT_EQ((*list_b)->size(), 5u);
}

// Shards: a node holds the items of the shards it hosts (by a hash of the id, or by cluster),
// the node hosting every shard holds what a standalone engine holds, users and events reach
// every node, an item moved to another cluster leaves its old shard, and a node that hosts none
// of a collection's shards does not follow it.
TEST_F(NodeTest, NodesHoldTheirShardsAndTogetherEverything) {
  Member a{dir_.path() + "/a"}, b{dir_.path() + "/b"}, all{dir_.path() + "/all"},
      alone{dir_.path() + "/alone"};
  NodeOptions only0, only12;
  only0.shards = {0};
  only12.shards = {1, 2};
  Open(a, "a", only0);
  Open(b, "b", only12);
  Open(all, "all");
  Open(alone, "");
  CollectionSchema hashed = Schema();
  hashed.shards = 3;
  for (Member* m : {&a, &b, &all, &alone}) ASSERT_TRUE(m->engine().CreateCollection(hashed).ok());
  const std::string name = hashed.name;
  for (Member* m : {&a, &b, &all}) ASSERT_TRUE(m->node->Follow(name).ok());
  std::mt19937_64 rng(11);
  uint64_t last = 0;
  for (int step = 0; step < 30; ++step) {
    Member& via = step % 2 == 0 ? a : b;
    Result<WriteResult> r = WriteResult{};
    if (step % 6 == 5) {
      std::vector<uint64_t> ids = {uint64_t(rng() % 200), uint64_t(rng() % 200) + 200};
      r = via.node->Delete(name, ids);
      ASSERT_TRUE(alone.engine().Delete(name, ids).ok());
    } else if (step % 7 == 6) {
      std::vector<Event> events = {{7, rng() % 400, int64_t(step)}};
      r = via.node->AddEvents(name, events);
      ASSERT_TRUE(alone.engine().AddEvents(name, events).ok());
    } else {
      auto items = Items(rng, rng() % 380, 20);
      r = via.node->Upsert(name, items);
      ASSERT_TRUE(alone.engine().Upsert(name, items).ok());
    }
    ASSERT_TRUE(r.ok()) << r.status();
    last = std::max(last, r->op_seq);
  }
  const auto deadline = Clock::now() + std::chrono::minutes(2);
  for (Member* m : {&a, &b, &all}) ASSERT_TRUE(m->node->WaitApplied(name, last, deadline).ok());
  const auto want = Contents(alone, 400);
  EXPECT_EQ(Contents(all, 400), want);
  const auto on_a = Contents(a, 400), on_b = Contents(b, 400);
  size_t held_a = 0, held_b = 0;
  for (uint64_t id = 0; id <= 400; ++id) {
    const uint32_t shard = IdShard(hashed, id);
    EXPECT_EQ(on_a[id], shard == 0 ? want[id] : std::nullopt) << "a, item " << id;
    EXPECT_EQ(on_b[id], shard != 0 ? want[id] : std::nullopt) << "b, item " << id;
    held_a += on_a[id].has_value();
    held_b += on_b[id].has_value();
  }
  EXPECT_GT(held_a, 30u);     // about a third of the items each way
  EXPECT_GT(held_b, held_a);  // two shards of three
  for (Member* m : {&a, &b, &all}) {
    EXPECT_EQ(*m->engine().GetUser(name, 7), *alone.engine().GetUser(name, 7));
  }
  // a stores the position it reached over the other shards' messages once idle: a restart goes
  // on from there.
  const auto stored = Clock::now() + std::chrono::minutes(1);
  while (a.engine().LogPositions(name)->at(0) < last && Clock::now() < stored) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(a.engine().LogPositions(name)->at(0), last);

  // By cluster: an item re-written in another cluster moves to that cluster's shard.
  CollectionSchema clustered = Schema();
  clustered.name = "by_cluster";
  clustered.shards = 2;
  clustered.clusters = 4;
  for (Member* m : {&a, &b, &all}) ASSERT_TRUE(m->engine().CreateCollection(clustered).ok());
  for (Member* m : {&a, &b, &all}) ASSERT_TRUE(m->node->Follow(clustered.name).ok());
  auto item = Items(rng, 5, 1);
  item[0].cluster = 1;  // shard 1: b
  ASSERT_TRUE(a.node->Upsert(clustered.name, item).ok());
  item[0].cluster = 2;  // shard 0: a
  auto moved = b.node->Upsert(clustered.name, item);
  ASSERT_TRUE(moved.ok()) << moved.status();
  for (Member* m : {&a, &b, &all}) {
    ASSERT_TRUE(m->node->WaitApplied(clustered.name, moved->op_seq, deadline).ok());
  }
  auto get = [&](Member& m) {
    return (*m.engine().Get(clustered.name, std::vector<uint64_t>{5}))[0];
  };
  ASSERT_TRUE(get(a).has_value());
  EXPECT_EQ(get(a)->cluster, 2u);
  EXPECT_FALSE(get(b).has_value());
  EXPECT_EQ(get(all), get(a));

  // A new node hosting shard 0 starts from a copy of that shard's items (here taken from the
  // node hosting everything), then follows the log.
  Member d{dir_.path() + "/d"};
  NodeOptions fetching = only0;
  std::atomic<int> fetched{0};
  fetching.fetch = [&](const std::string& collection, const std::vector<uint32_t>& shards,
                       const std::string& dir) -> Status {
    if (collection != name) return NotFoundError("only " + name + " is copied here");
    EXPECT_EQ(shards, std::vector<uint32_t>{0});
    ++fetched;
    return all.engine()
        .ExportCollection(collection, dir,
                          [&](const ItemRecord& item) { return ItemShard(hashed, item) == 0; })
        .status();
  };
  Open(d, "d", fetching);
  ASSERT_TRUE(d.engine().CreateCollection(hashed).ok());
  ASSERT_TRUE(d.node->Follow(name).ok());
  auto later = Items(rng, 390, 10);
  auto w = b.node->Upsert(name, later);
  ASSERT_TRUE(w.ok()) << w.status();
  ASSERT_TRUE(alone.engine().Upsert(name, later).ok());
  ASSERT_TRUE(d.node->WaitApplied(name, w->op_seq, deadline).ok());
  ASSERT_TRUE(a.node->WaitApplied(name, w->op_seq, deadline).ok());
  EXPECT_EQ(fetched.load(), 1);
  EXPECT_EQ(Contents(d, 400), Contents(a, 400));
  EXPECT_TRUE(d.engine().CheckConsistency(name).ok());
  EXPECT_EQ(*d.engine().GetUser(name, 7), *alone.engine().GetUser(name, 7));

  // A node hosting none of the shards does not follow.
  Member c{dir_.path() + "/c"};
  NodeOptions only5;
  only5.shards = {5};
  Open(c, "c", only5);
  ASSERT_TRUE(c.engine().CreateCollection(hashed).ok());
  EXPECT_EQ(c.node->Follow(name).code(), StatusCode::kFailedPrecondition);
}

TEST_F(NodeTest, BadWritesAreRefusedBeforeTheLogAndAnUnreachableLogFailsWrites) {
  Member a{dir_.path() + "/a"};
  Open(a, "a");
  ASSERT_TRUE(a.engine().CreateCollection(Schema()).ok());
  ASSERT_TRUE(a.node->Follow(Schema().name).ok());
  std::mt19937_64 rng(1);
  auto items = Items(rng, 1, 5);
  items[3].vector.pop_back();  // wrong dimension
  auto bad = a.node->Upsert(Schema().name, items);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  auto twice = a.node->Delete(Schema().name, {4, 4});
  EXPECT_EQ(twice.status().code(), StatusCode::kInvalidArgument);
  auto unknown = a.node->Upsert("nope", Items(rng, 1, 1));
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);

  auto good = a.node->Upsert(Schema().name, Items(rng, 1, 5));
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->op_seq, 1u);  // the refused ones never reached the log
  ASSERT_TRUE(a.node->WaitApplied(Schema().name, 1, Clock::now() + std::chrono::minutes(1)).ok());

  nats_.Kill();
  auto down = a.node->Upsert(Schema().name, Items(rng, 10, 5));
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), StatusCode::kUnavailable) << down.status();
  // Reads go on from the node's own engine.
  index::SearchParams p;
  p.k = 3;
  auto hits = a.engine().Search(Schema().name, std::vector<float>(8, 0.f), p);
  ASSERT_TRUE(hits.ok());
  EXPECT_EQ(hits->size(), 3u);
  // Waiting for a sequence never written times out with how far the node got.
  auto wait = a.node->WaitApplied(Schema().name, 2, Clock::now() + std::chrono::milliseconds(50));
  EXPECT_EQ(wait.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(wait.message().find("up to 1"), std::string::npos) << wait;
}

// A node that joins after the log was trimmed cannot replay the collection's history: it says
// so and refuses to serve the collection (rather than serving what is left as if whole).
TEST_F(NodeTest, ANodeThatCannotReplayTheWholeLogDoesNotServeTheCollection) {
  Member a{dir_.path() + "/a"}, b{dir_.path() + "/b"};
  NodeOptions o;
  o.log.max_messages = 4;  // the stream keeps the last 4 writes
  Open(a, "a", o);
  const std::string name = Schema().name;
  ASSERT_TRUE(a.engine().CreateCollection(Schema()).ok());
  ASSERT_TRUE(a.node->Follow(name).ok());
  std::mt19937_64 rng(6);
  uint64_t last = 0;
  for (int i = 0; i < 10; ++i) {  // a applies each before the next (it keeps up)
    auto r = a.node->Upsert(name, Items(rng, 10 * uint64_t(i), 3));
    ASSERT_TRUE(r.ok()) << r.status();
    last = r->op_seq;
    ASSERT_TRUE(a.node->WaitApplied(name, last, Clock::now() + std::chrono::minutes(1)).ok());
  }
  EXPECT_TRUE(a.node->CheckServing(name).ok());
  EXPECT_EQ(a.engine().DescribeCollection(name)->items, 30u);

  Open(b, "b", o);
  ASSERT_TRUE(b.engine().CreateCollection(Schema()).ok());
  ASSERT_TRUE(b.node->Follow(name).ok());
  // The follower finds the log starting after its position (0): blocked, reads refused.
  Status serving = Status::Ok();
  const auto deadline = Clock::now() + std::chrono::minutes(1);
  while (serving.ok() && Clock::now() < deadline) {
    serving = b.node->CheckServing(name);
    if (serving.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(serving.code(), StatusCode::kUnavailable) << serving;
  EXPECT_NE(serving.message().find("trimmed"), std::string::npos) << serving;
  bool reported = false;
  for (const FollowerState& f : b.node->Followers()) reported |= !f.blocked.empty();
  EXPECT_TRUE(reported);
  EXPECT_EQ(b.engine().DescribeCollection(name)->items, 0u);  // nothing half-applied
}

// A node the log was trimmed past takes a peer's copy of the collection (its records, its
// index snapshot and the op log after it) and follows the log from the copy's position: it
// ends up with every write, the ones before the trim included. While no copy can be had (the
// peer unreachable), the collection stays unserved and the copy is tried again.
TEST_F(NodeTest, ANodeTrimmedPastTakesAPeersCopyAndThenFollowsTheLog) {
  Member a{dir_.path() + "/a"}, b{dir_.path() + "/b"};
  NodeOptions o;
  o.log.max_messages = 4;
  Open(a, "a", o);
  const std::string name = Schema().name;
  ASSERT_TRUE(a.engine().CreateCollection(Schema()).ok());
  ASSERT_TRUE(a.node->Follow(name).ok());
  std::mt19937_64 rng(9);
  uint64_t last = 0;
  auto write = [&](int i) {
    auto r = a.node->Upsert(name, Items(rng, 10 * uint64_t(i), 5));
    ASSERT_TRUE(r.ok()) << r.status();
    last = r->op_seq;
    ASSERT_TRUE(a.node->WaitApplied(name, last, Clock::now() + std::chrono::minutes(1)).ok());
  };
  for (int i = 0; i < 6; ++i) write(i);
  ASSERT_TRUE(a.engine().Snapshot(name).ok());  // the copy carries an index snapshot ...
  for (int i = 6; i < 10; ++i) write(i);        // ... and op log after it

  std::atomic<int> fetches{0};
  std::atomic<bool> peer_up{false};
  o.bootstrap_retry = std::chrono::milliseconds(50);
  o.fetch = [&](const std::string& collection, const std::vector<uint32_t>&,
                const std::string& dir) -> Status {
    ++fetches;
    if (!peer_up) return UnavailableError("peer a is down");
    return a.engine().ExportCollection(collection, dir).status();
  };
  Open(b, "b", o);
  ASSERT_TRUE(b.engine().CreateCollection(Schema()).ok());
  ASSERT_TRUE(b.node->Follow(name).ok());
  // No copy to be had: not served, and tried again.
  const auto deadline = Clock::now() + std::chrono::minutes(1);
  while (fetches < 3 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_GE(fetches.load(), 3);
  EXPECT_EQ(b.node->CheckServing(name).code(), StatusCode::kUnavailable);
  EXPECT_EQ(b.engine().DescribeCollection(name)->items, 0u);

  peer_up = true;
  ASSERT_TRUE(b.node->WaitApplied(name, last, Clock::now() + std::chrono::minutes(1)).ok());
  for (int i = 10; i < 13; ++i) write(i);  // followed from the log after the copy
  ASSERT_TRUE(b.node->WaitApplied(name, last, Clock::now() + std::chrono::minutes(1)).ok());
  EXPECT_TRUE(b.node->CheckServing(name).ok()) << b.node->CheckServing(name);
  EXPECT_EQ(b.engine().DescribeCollection(name)->items, 65u);
  EXPECT_EQ(Contents(b, 200), Contents(a, 200));
  EXPECT_TRUE(b.engine().CheckConsistency(name).ok());
  EXPECT_GT(b.engine().DescribeCollection(name)->snapshot_seq, 0u);  // the peer's snapshot
  const std::vector<FollowerState> states = b.node->Followers();
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0].bootstraps, 1u);
  EXPECT_TRUE(states[0].blocked.empty());
  // After a restart b goes on from its own copy (no second bootstrap).
  Close(b);
  const int before = fetches;
  Open(b, "b", o);
  write(13);
  ASSERT_TRUE(b.node->WaitApplied(name, last, Clock::now() + std::chrono::minutes(1)).ok());
  EXPECT_EQ(fetches.load(), before);
  EXPECT_EQ(Contents(b, 200), Contents(a, 200));
}

// A node that falls behind while it follows (here: its disk refuses writes) and finds the log
// trimmed past it when it can apply again stops there: it does not apply what is left as if
// nothing were missing.
TEST_F(NodeTest, AFollowerTrimmedPastWhileBehindStopsAndSaysSo) {
  auto faults = std::make_shared<storage::FaultInjection>();
  Member a{dir_.path() + "/a"};
  NodeOptions o;
  o.log.max_messages = 4;
  o.max_lag = 0;  // no backpressure: let it fall behind
  Open(a, "a", o, faults);
  const std::string name = Schema().name;
  ASSERT_TRUE(a.engine().CreateCollection(Schema()).ok());
  ASSERT_TRUE(a.node->Follow(name).ok());
  std::mt19937_64 rng(8);
  auto first = a.node->Upsert(name, Items(rng, 0, 3));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(
      a.node->WaitApplied(name, first->op_seq, Clock::now() + std::chrono::minutes(1)).ok());
  faults->no_space = true;
  for (int i = 1; i < 10; ++i)
    ASSERT_TRUE(a.node->Upsert(name, Items(rng, 10 * uint64_t(i), 3)).ok());
  faults->no_space = false;
  Status serving = Status::Ok();
  const auto deadline = Clock::now() + std::chrono::minutes(1);
  while (serving.ok() && Clock::now() < deadline) {
    serving = a.node->CheckServing(name);
    if (serving.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(serving.code(), StatusCode::kUnavailable) << serving;
  EXPECT_NE(serving.message().find("trimmed"), std::string::npos) << serving;
  // Nothing after the gap was applied.
  EXPECT_EQ(a.engine().LogPositions(name)->at(0), first->op_seq);
  EXPECT_EQ(a.engine().DescribeCollection(name)->items, 3u);
}

// Backpressure: while this node cannot apply the log (its disk refuses writes), writes through
// it are acknowledged up to max_lag messages ahead, then refused with UNAVAILABLE; once it
// applies again, they are accepted again, and nothing acknowledged is missing.
TEST_F(NodeTest, WritesWaitWhileTheNodeIsTooFarBehindItsLog) {
  auto faults = std::make_shared<storage::FaultInjection>();
  Member a{dir_.path() + "/a"};
  NodeOptions o;
  o.max_lag = 3;
  o.lag_wait = std::chrono::milliseconds(300);
  Open(a, "a", o, faults);
  const std::string name = Schema().name;
  ASSERT_TRUE(a.engine().CreateCollection(Schema()).ok());
  ASSERT_TRUE(a.node->Follow(name).ok());
  std::mt19937_64 rng(4);
  auto first = a.node->Upsert(name, Items(rng, 0, 5));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(
      a.node->WaitApplied(name, first->op_seq, Clock::now() + std::chrono::minutes(1)).ok());

  faults->no_space = true;  // the follower's writes now fail, and are retried
  uint64_t accepted = 0;
  Status refused = Status::Ok();
  for (int i = 0; i < 20 && refused.ok(); ++i) {
    auto r = a.node->Upsert(name, Items(rng, 100 + 10 * uint64_t(i), 5));
    if (r.ok()) {
      ++accepted;
    } else {
      refused = r.status();
    }
  }
  EXPECT_EQ(accepted, o.max_lag);  // the head may run max_lag ahead of the applied sequence
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused;
  EXPECT_NE(refused.message().find("retry later"), std::string::npos) << refused;

  faults->no_space = false;  // the follower catches up; writes are accepted again
  Result<WriteResult> next = UnavailableError("not tried");
  const auto deadline = Clock::now() + std::chrono::minutes(2);
  while (!next.ok() && Clock::now() < deadline) next = a.node->Upsert(name, Items(rng, 500, 5));
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(a.node->WaitApplied(name, next->op_seq, Clock::now() + std::chrono::minutes(1)).ok());
  EXPECT_EQ(a.engine().DescribeCollection(name)->items, 5 + 5 * accepted + 5);
}

}  // namespace
}  // namespace quiver::cluster
