// Cluster mode end to end (docs/cluster.md): a real nats-server and two real quiverd nodes on
// loopback, both following one collection, written through both over the binary protocol
// while one of them is killed (SIGKILL) and restarted. Every acknowledged write must be on
// both nodes afterwards, and the nodes must hold identical items.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/child_process.h"
#include "client/client.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/temp_dir.h"

namespace quiver {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kDim = 8;
constexpr uint64_t kIds = 400;

class ClusterServerTest : public ::testing::Test {
 protected:
  struct Node {
    std::string id;
    std::unique_ptr<ChildProcess> process;
    uint16_t binary = 0;
    std::unique_ptr<client::Client> client;
  };

  void SetUp() override {
    const Status started = nats_.Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  // Starts (or restarts) quiverd for the node, its data under the test's directory; `log`: the
  // NATS servers (default: the test's one server).
  void Start(Node& n, std::string log = "", int replicas = 1,
             const std::vector<std::string>& extra = {}) {
    if (log.empty()) log = nats_.url();
    const std::string data = dir_.path() + "/" + n.id;
    std::vector<std::string> args = {QUIVERD,
                                     "--data",
                                     data,
                                     "--http-port",
                                     "0",
                                     "--binary-port",
                                     "0",
                                     "--log",
                                     log,
                                     "--log-replicas",
                                     std::to_string(replicas),
                                     "--node-id",
                                     n.id,
                                     "--snapshot-interval-s",
                                     "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto p = ChildProcess::Start(args, data + ".log");
    ASSERT_TRUE(p.ok()) << p.status();
    auto line = (*p)->WaitForLine("serving", std::chrono::minutes(5));
    ASSERT_TRUE(line.ok()) << line.status();
    const std::string marker = "binary 127.0.0.1:";
    n.binary = uint16_t(std::stoi(line->substr(line->find(marker) + marker.size())));
    n.process = std::move(*p);
    client::ClientOptions o;
    o.port = n.binary;
    o.deadline = std::chrono::milliseconds(20000);
    auto c = client::Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    n.client = std::move(*c);
  }

  static std::vector<std::optional<ItemRecord>> All(client::Client& c) {
    std::vector<uint64_t> ids(kIds);
    for (uint64_t i = 0; i < kIds; ++i) ids[i] = i;
    auto got = c.Get("c", ids);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? *got : std::vector<std::optional<ItemRecord>>{};
  }

  // What the node's quiverd wrote to stdout and stderr.
  std::string LogOf(const Node& n) const {
    std::ifstream log(dir_.path() + "/" + n.id + ".log");
    std::stringstream text;
    text << log.rdbuf();
    return text.str();
  }

  testing::ScopedTempDir dir_;
  testing::NatsServer nats_{dir_.path() + "/nats"};
};

TEST_F(ClusterServerTest, AKilledNodeCatchesUpAndBothHoldEveryAcknowledgedWrite) {
  Node a{"a"}, b{"b"};
  Start(a);
  Start(b);
  CollectionSchema schema;
  schema.name = "c";
  schema.dim = kDim;
  ASSERT_TRUE(a.client->CreateCollection(schema).ok());
  ASSERT_TRUE(b.client->CreateCollection(schema).ok());

  // Two writers, one per node; each owns half the ids, so the expected state of an id is the
  // last write of its owner that was acknowledged (a write whose answer was lost may or may not
  // be applied: such ids are left out of the comparison with the expected state).
  std::mutex mu;
  std::map<uint64_t, std::optional<std::vector<float>>> expected;
  std::map<uint64_t, bool> uncertain;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> acked{0};
  auto writer = [&](Node& n, uint64_t first_id, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> g;
    while (!stop.load()) {
      std::vector<uint64_t> ids;
      ids.reserve(4);
      for (int i = 0; i < 4; ++i) ids.push_back(first_id + rng() % (kIds / 2));
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      const bool del = rng() % 5 == 0;
      std::vector<ItemRecord> items;
      items.reserve(ids.size());
      for (uint64_t id : ids) {
        ItemRecord item;
        item.id = id;
        for (uint32_t d = 0; d < kDim; ++d) item.vector.push_back(g(rng));
        items.push_back(std::move(item));
      }
      Status s = del ? n.client->Delete("c", ids).status() : n.client->Upsert("c", items).status();
      std::lock_guard lock(mu);
      for (size_t i = 0; i < ids.size(); ++i) {
        if (s.ok()) {
          expected[ids[i]] = del ? std::nullopt : std::optional(items[i].vector);
          uncertain.erase(ids[i]);
        } else {
          uncertain[ids[i]] = true;
        }
      }
      if (s.ok()) acked.fetch_add(1);
    }
  };
  std::thread wa(writer, std::ref(a), 0, 1);
  std::thread wb;
  {
    std::thread first(writer, std::ref(b), kIds / 2, 2);
    while (acked.load() < 100) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    // Kill b in the middle of its writes; its writer sees errors meanwhile.
    b.process->Signal(SIGKILL);
    b.process->Wait();
    const uint64_t at_kill = acked.load();
    while (acked.load() < at_kill + 100) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stop = true;
    first.join();
  }
  wa.join();
  stop = false;
  Start(b);  // restarts: replays what it missed
  wb = std::thread(writer, std::ref(b), kIds / 2, 3);
  const uint64_t at_restart = acked.load();
  while (acked.load() < at_restart + 100) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  stop = true;
  wb.join();

  // Both nodes converge (applied asynchronously: poll until equal, bounded).
  std::vector<std::optional<ItemRecord>> on_a, on_b;
  const auto deadline = Clock::now() + std::chrono::minutes(3);
  do {
    on_a = All(*a.client);
    on_b = All(*b.client);
    if (on_a == on_b) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (Clock::now() < deadline);
  ASSERT_EQ(on_a.size(), kIds);
  ASSERT_TRUE(on_a == on_b) << "the nodes did not converge";
  size_t checked = 0, wrong = 0;
  for (const auto& [id, want] : expected) {
    if (uncertain.count(id) != 0) continue;
    ++checked;
    if (want) {
      EXPECT_TRUE(on_a[id].has_value()) << "acknowledged item " << id << " is missing";
      if (!on_a[id]) {
        ++wrong;
        continue;
      }
      EXPECT_EQ(on_a[id]->vector, *want) << "item " << id;
      wrong += on_a[id]->vector != *want;
    } else {
      EXPECT_FALSE(on_a[id].has_value()) << "acknowledged delete of " << id << " is undone";
      wrong += on_a[id].has_value();
    }
  }
  // Seen twice, in fresh roots (2026-12-01): the nodes agreed on a state that lacked a few of
  // b's acknowledged writes, every one written after b's restart. The nodes' logs (a publish
  // JetStream took for a duplicate is logged), to tell why if it comes back.
  if (wrong > 0) ADD_FAILURE() << "a's log:\n" << LogOf(a) << "\nb's log:\n" << LogOf(b);
  EXPECT_GT(checked, kIds / 2);
  // Searches agree too.
  std::vector<float> q(kDim, 0.25f);
  auto ha = a.client->Search("c", q, {.k = 10, .ef = 400});
  auto hb = b.client->Search("c", q, {.k = 10, .ef = 400});
  ASSERT_TRUE(ha.ok() && hb.ok());
  EXPECT_EQ(*ha, *hb);
}

// Three NATS servers, streams with three replicas: one server killed (SIGKILL) in the middle of
// the writes, and the writes go on; nothing acknowledged is lost on either node.
TEST_F(ClusterServerTest, WritesGoOnWhenOneOfThreeNatsServersIsKilled) {
  testing::NatsCluster nats(dir_.path() + "/nats3");
  const Status started = nats.Start();
  ASSERT_TRUE(started.ok()) << started;
  Node a{"a"}, b{"b"};
  Start(a, nats.url_list(), 3);
  Start(b, nats.url_list(), 3);
  CollectionSchema schema;
  schema.name = "c";
  schema.dim = kDim;
  ASSERT_TRUE(a.client->CreateCollection(schema).ok());
  ASSERT_TRUE(b.client->CreateCollection(schema).ok());

  std::map<uint64_t, std::vector<float>> expected;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> g;
  uint64_t acked = 0, failed = 0;
  auto write_until = [&](uint64_t target) {
    const auto deadline = Clock::now() + std::chrono::minutes(2);
    while (acked < target) {
      ASSERT_LT(Clock::now(), deadline) << "writes stopped: " << acked << " acknowledged";
      ItemRecord item;
      item.id = rng() % kIds;
      for (uint32_t d = 0; d < kDim; ++d) item.vector.push_back(g(rng));
      Node& via = acked % 2 == 0 ? a : b;
      if (via.client->Upsert("c", {item}).ok()) {
        expected[item.id] = item.vector;
        ++acked;
      } else {
        expected.erase(item.id);  // may or may not be stored: not compared
        ++failed;
      }
    }
  };
  write_until(100);
  nats.server(0).Kill();
  write_until(300);
  // How many writes fail while the clients and the streams move off the killed server depends
  // on timing (leader elections): reported, not asserted; that writes go on is.
  std::printf("writes refused around the kill: %llu\n", static_cast<unsigned long long>(failed));

  const auto deadline = Clock::now() + std::chrono::minutes(3);
  std::vector<std::optional<ItemRecord>> on_a, on_b;
  do {
    on_a = All(*a.client);
    on_b = All(*b.client);
    if (on_a == on_b && !on_a.empty()) {
      bool all = true;
      for (const auto& [id, v] : expected) all = all && on_a[id] && on_a[id]->vector == v;
      if (all) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (Clock::now() < deadline);
  ASSERT_TRUE(on_a == on_b) << "the nodes did not converge";
  for (const auto& [id, v] : expected) {
    ASSERT_TRUE(on_a[id].has_value()) << "acknowledged item " << id << " is missing";
    EXPECT_EQ(on_a[id]->vector, v) << "item " << id;
  }
}

// Retention and bootstrap (docs/cluster.md): the log keeps only its newest bytes, so a node
// down for longer cannot replay what it missed. Restarted, it fetches a peer's copy of the
// collection over the binary protocol, then follows the log from the copy's position, and
// ends with every write; a node that joins later does the same.
TEST_F(ClusterServerTest, ANodeDownLongerThanTheLogKeepsTakesAPeersCopy) {
  Node a{"a"}, b{"b"}, c{"c"};
  // About 30 writes kept; a's writes wait while a is more than 8 behind, so the log is never
  // trimmed past a itself.
  Start(a, "", 1, {"--log-max-bytes", "32768", "--log-max-lag", "8"});
  const std::vector<std::string> peers = {"--peers", "127.0.0.1:" + std::to_string(a.binary)};
  Start(b, "", 1, peers);
  CollectionSchema schema;
  schema.name = "c";
  schema.dim = kDim;
  ASSERT_TRUE(a.client->CreateCollection(schema).ok());
  ASSERT_TRUE(b.client->CreateCollection(schema).ok());
  std::mt19937_64 rng(4);
  std::normal_distribution<float> g;
  uint64_t last = 0, next = 0;
  auto write = [&](int batches) {
    for (int i = 0; i < batches; ++i) {
      std::vector<ItemRecord> items(20);
      for (ItemRecord& item : items) {
        item.id = (next++ * 7) % kIds;  // 20 distinct ids a batch
        for (uint32_t d = 0; d < kDim; ++d) item.vector.push_back(g(rng));
      }
      auto r = a.client->Upsert("c", items);
      ASSERT_TRUE(r.ok()) << r.status();
      last = r->op_seq;
    }
  };
  // Waits until the node answers a search that has seen the log up to `last`.
  auto caught_up = [&](Node& n) {
    net::SearchCall call{"c", {.vectors = {std::vector<float>(kDim, 0.f)}, .k = 1}};
    call.min_seq = last;
    const auto deadline = Clock::now() + std::chrono::minutes(3);
    Result<net::SearchResult> r = n.client->Query(call);
    while (!r.ok() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      r = n.client->Query(call);
    }
    if (!r.ok()) FAIL() << n.id << ": " << r.status() << "\n" << n.id << "'s log:\n" << LogOf(n);
    EXPECT_GE(r->seq, last);
  };
  write(20);
  caught_up(b);
  b.process->Signal(SIGKILL);
  b.process->Wait();
  write(150);  // about 150 KB of log: the first messages b missed are trimmed
  ASSERT_TRUE(a.client->Snapshot("c").ok());
  write(5);  // after the snapshot: carried by the copy's op log or followed from the log

  Start(b, "", 1, peers);
  caught_up(b);
  caught_up(a);
  const auto on_a = All(*a.client);
  size_t present = 0;
  for (const auto& item : on_a) present += item.has_value();
  EXPECT_GT(present, kIds / 2);
  EXPECT_TRUE(All(*b.client) == on_a) << "b does not hold what a holds";
  auto health = b.client->Health();
  ASSERT_TRUE(health.ok());
  EXPECT_EQ(health->status, "serving");
  const std::string copied = "copy_fetched collection=c from=127.0.0.1:" + std::to_string(a.binary);
  EXPECT_NE(LogOf(b).find("trimmed"), std::string::npos) << LogOf(b);
  EXPECT_NE(LogOf(b).find(copied), std::string::npos) << LogOf(b);

  // A new node: the log alone could not rebuild the collection either.
  Start(c, "", 1, peers);
  ASSERT_TRUE(c.client->CreateCollection(schema).ok());
  write(3);
  caught_up(c);
  caught_up(a);
  EXPECT_TRUE(All(*c.client) == All(*a.client)) << "c does not hold what a holds";
  EXPECT_NE(LogOf(c).find(copied), std::string::npos) << LogOf(c);
}

TEST_F(ClusterServerTest, WithoutTheLogWritesFailAtOnceAndSearchesGoOn) {
  Node a{"a"};
  Start(a);
  CollectionSchema schema;
  schema.name = "c";
  schema.dim = kDim;
  ASSERT_TRUE(a.client->CreateCollection(schema).ok());
  std::vector<ItemRecord> items(20);
  for (uint64_t i = 0; i < items.size(); ++i) {
    items[i].id = i;
    items[i].vector.assign(kDim, float(i));
  }
  auto w = a.client->Upsert("c", items);
  ASSERT_TRUE(w.ok()) << w.status();
  // Applied asynchronously: wait until the node has it.
  const auto deadline = Clock::now() + std::chrono::minutes(1);
  while (!(*a.client->Get("c", std::vector<uint64_t>{19}))[0].has_value()) {
    ASSERT_LT(Clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Read-your-writes on another node: written through a, searched on b with min_seq.
  Node b{"b"};
  Start(b, "", 1, {"--max-seq-wait-ms", "300"});
  ASSERT_TRUE(b.client->CreateCollection(schema).ok());
  std::vector<ItemRecord> fresh(1);
  fresh[0].id = 500;
  fresh[0].vector.assign(kDim, 77.f);
  auto ack = a.client->Upsert("c", fresh);
  ASSERT_TRUE(ack.ok()) << ack.status();
  net::SearchCall ryw{"c", {.vectors = {std::vector<float>(kDim, 77.f)}, .k = 1}};
  ryw.min_seq = ack->op_seq;
  auto seen = b.client->Query(ryw);
  ASSERT_TRUE(seen.ok()) << seen.status();
  ASSERT_EQ(seen->hits.size(), 1u);
  EXPECT_EQ(seen->hits[0].id, 500u);
  EXPECT_GE(seen->seq, ack->op_seq);
  // User events too: their acknowledgement carries their log sequence.
  auto events = a.client->AddEvents("c", {Event{42, 7, 1000}, Event{42, 8, 1001}});
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_GT(events->op_seq, ack->op_seq);
  EXPECT_EQ(events->changed, 2u);
  ryw.min_seq = events->op_seq;
  ASSERT_TRUE(b.client->Query(ryw).ok());
  auto user = b.client->GetUser("c", 42);
  ASSERT_TRUE(user.ok() && user->has_value()) << user.status();
  EXPECT_EQ((*user)->history.size(), 2u);
  ryw.min_seq = events->op_seq + 1000;  // never written: the wait ends with the limit
  auto too_far = b.client->Query(ryw);
  ASSERT_FALSE(too_far.ok());
  EXPECT_EQ(too_far.status().code(), StatusCode::kDeadlineExceeded) << too_far.status();

  nats_.Kill();
  auto refused = a.client->Upsert("c", items);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable) << refused.status();
  auto hits = a.client->Search("c", std::vector<float>(kDim, 3.f), {.k = 1});
  ASSERT_TRUE(hits.ok()) << hits.status();
  EXPECT_EQ((*hits)[0].id, 3u);
  // Versions cannot switch on one node alone.
  EXPECT_EQ(a.client->Reload("initial").code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace quiver
