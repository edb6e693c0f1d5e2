// Cluster mode's routing end to end (docs/cluster.md, "Membership and routing"): a real etcd,
// a real nats-server and four real quiverd nodes on loopback, 2 shards x 2 replicas, beside a
// single-process quiverd holding the same data. Searches through any node must answer what the
// single node answers; a replica killed (SIGKILL) under a search and write load costs no search
// and no acknowledged write; with etcd stopped, searches go on with the last known map.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/child_process.h"
#include "client/client.h"
#include "cluster/meta_store.h"
#include "tests/testing/etcd_server.h"
#include "tests/testing/http.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/temp_dir.h"

namespace quiver {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kDim = 8, kClusters = 8, kItems = 1200;
constexpr uint64_t kBuilt = 100000;  // the ids of the bulk-built version's items start here

std::vector<float> Vec(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(kDim);
  for (float& x : v) x = g(rng);
  return v;
}

class ClusterRoutingTest : public ::testing::Test {
 protected:
  struct Node {
    std::string id;
    std::string shards;  // "" for the single node
    std::unique_ptr<ChildProcess> process;
    std::unique_ptr<client::Client> client;
    uint16_t http = 0;
  };

  void SetUp() override {
    Status started = nats_.Start();
    ASSERT_TRUE(started.ok()) << started;
    started = etcd_.Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  void Start(Node& n) {
    const std::string data = dir_.path() + "/" + n.id;
    std::vector<std::string> args = {QUIVERD, "--data",        data, "--http-port",
                                     "0",     "--binary-port", "0",  "--snapshot-interval-s",
                                     "0"};
    if (!n.shards.empty()) {
      const std::vector<std::string> cluster = {
          "--log",          nats_.url(), "--node-id",     n.id,
          "--shards",       n.shards,    "--cluster",     "etcd://" + etcd_.url().substr(7),
          "--cluster-name", "t",         "--lease-ttl-s", "2"};
      args.insert(args.end(), cluster.begin(), cluster.end());
    }
    auto p = ChildProcess::Start(args, data + ".log");
    ASSERT_TRUE(p.ok()) << p.status();
    auto line = (*p)->WaitForLine(n.shards.empty() ? "serving" : "joined", std::chrono::minutes(5));
    ASSERT_TRUE(line.ok()) << line.status();
    auto serving = (*p)->WaitForLine("serving", std::chrono::seconds(10));
    ASSERT_TRUE(serving.ok()) << serving.status();
    const std::string rest = "REST http://127.0.0.1:";
    n.http = uint16_t(std::stoi(serving->substr(serving->find(rest) + rest.size())));
    n.process = std::move(*p);
    const std::string marker = n.shards.empty() ? "binary 127.0.0.1:" : "joined as 127.0.0.1:";
    client::ClientOptions o;
    o.port = uint16_t(std::stoi(line->substr(line->find(marker) + marker.size())));
    o.deadline = std::chrono::milliseconds(30000);
    o.max_attempts = 1;  // a failed search is counted, not retried by the client
    auto c = client::Client::Connect(o);
    ASSERT_TRUE(c.ok()) << c.status();
    n.client = std::move(*c);
  }

  static ItemRecord Item(uint64_t id, std::mt19937_64& rng) {
    std::normal_distribution<float> g;
    ItemRecord item;
    item.id = id;
    for (uint32_t d = 0; d < kDim; ++d) item.vector.push_back(g(rng));
    item.cluster = uint32_t(id % kClusters);
    item.category = int64_t(id % 5);
    item.timestamp = 1000 + int64_t(id);
    return item;
  }

  // Two clients searching (k = 20) through `a` and `b`, one at a time each, and one writing
  // batches of 4 new items through `w`, until Stop() (or the end of the test, however it ends).
  class Load {
   public:
    Load(Node& a, uint64_t seed_a, Node& b, uint64_t seed_b, Node& w, uint64_t write_seed,
         uint64_t last_seq)
        : last_seq_(last_seq) {
      threads_.emplace_back([this, &a, seed_a] { Search(a, seed_a, by_a_); });
      threads_.emplace_back([this, &b, seed_b] { Search(b, seed_b, by_b_); });
      threads_.emplace_back([this, &w, write_seed] { Write(w, write_seed); });
    }
    ~Load() { Stop(); }
    void Stop() {
      stop_ = true;
      for (std::thread& t : threads_) {
        if (t.joinable()) t.join();
      }
    }
    // Until each of the two searching clients has had `more` further searches answered (or
    // failed): on a starved machine one client alone may not reach the nodes in that time.
    void Run(uint64_t more) const {
      const uint64_t at_a = by_a_.load(), at_b = by_b_.load();
      while (by_a_.load() < at_a + more || by_b_.load() < at_b + more)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    uint64_t searches() const { return searches_.load(); }
    uint64_t failed() const { return failed_.load(); }
    // Searches answered from the initial version, from a bulk build, and from both at once.
    uint64_t initial() const { return initial_.load(); }
    uint64_t built() const { return built_.load(); }
    uint64_t mixed() const { return mixed_.load(); }
    // The sequence of the last acknowledged write.
    uint64_t last_seq() const { return last_seq_.load(); }
    // Read after Stop: the first failed search, and every acknowledged write (id -> vector).
    const std::string& first_failure() const { return first_failure_; }
    const std::map<uint64_t, std::vector<float>>& acked() const { return acked_; }

   private:
    void Search(Node& n, uint64_t seed, std::atomic<uint64_t>& mine) {
      for (uint64_t i = 0; !stop_.load(); ++i) {
        auto r = n.client->Search("c", Vec(seed + i), {.k = 20});
        searches_.fetch_add(1);
        mine.fetch_add(1);
        if (!r.ok() || r->size() != 20) {
          failed_.fetch_add(1);
          std::lock_guard lock(mu_);
          if (first_failure_.empty()) first_failure_ = n.id + ": " + r.status().ToString();
          continue;
        }
        // Which version answered: ids below kItems are the initial version's alone, ids from
        // kBuilt a bulk build's alone (the writes of this load are in both).
        bool initial = false, built = false;
        for (const Hit& h : *r) {
          initial = initial || h.id < kItems;
          built = built || h.id >= kBuilt;
        }
        (initial && built ? mixed_ : built ? built_ : initial_).fetch_add(1);
      }
    }
    void Write(Node& n, uint64_t seed) {
      std::mt19937_64 rng(seed);
      for (uint64_t id = kItems; !stop_.load();) {
        std::vector<ItemRecord> items;
        items.reserve(4);
        for (int j = 0; j < 4; ++j) items.push_back(Item(id++, rng));
        auto w = n.client->Upsert("c", items);
        if (!w.ok()) continue;
        last_seq_ = w->op_seq;
        std::lock_guard lock(mu_);
        for (const ItemRecord& item : items) acked_[item.id] = item.vector;
      }
    }

    std::atomic<bool> stop_{false};
    std::atomic<uint64_t> searches_{0}, by_a_{0}, by_b_{0}, failed_{0}, initial_{0}, built_{0},
        mixed_{0}, last_seq_;
    std::mutex mu_;
    std::string first_failure_;                     // GUARDED_BY(mu_)
    std::map<uint64_t, std::vector<float>> acked_;  // GUARDED_BY(mu_)
    std::vector<std::thread> threads_;
  };

  static CollectionSchema Schema(const std::string& name = "c") {
    CollectionSchema schema;
    schema.name = name;
    schema.dim = kDim;
    schema.metric = Metric::kInnerProduct;
    schema.index.type = IndexSpec::Type::kFlat;  // exact: answers comparable bit for bit
    schema.clusters = kClusters;
    schema.shards = 2;
    return schema;
  }

  // A counter or gauge of a metrics page (0 if absent).
  static uint64_t MetricValue(const std::string& page, const std::string& name) {
    const size_t at = page.find("\n" + name + " ");
    return at == std::string::npos ? 0 : std::stoull(page.substr(at + name.size() + 2));
  }

  // What the node's quiverd wrote, without the access lines.
  std::string LogOf(const Node& n) const {
    std::ifstream log(dir_.path() + "/" + n.id + ".log");
    std::string out, line;
    while (std::getline(log, line)) {
      if (line.find("access") == std::string::npos) out += line + "\n";
    }
    return out;
  }

  // Until the node has the collection (created there through etcd), up to a minute.
  static Status WaitForCollection(Node& n, const std::string& name, bool present = true) {
    const auto deadline = Clock::now() + std::chrono::minutes(1);
    while (true) {
      auto d = n.client->DescribeCollection(name);
      if (d.ok() == present) return Status::Ok();
      if (Clock::now() > deadline) {
        return Status(StatusCode::kDeadlineExceeded,
                      n.id + (present ? " did not create '" : " did not drop '") + name + "'");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // Four nodes and the single one; the collection created through one node (etcd takes it to
  // the others) and on the single one; kItems written through the first node (and to the
  // single one) and applied everywhere.
  void StartCluster() {
    for (Node* n : {&a0_, &b0_, &a1_, &b1_, &single_}) {
      Start(*n);
      if (HasFatalFailure()) return;
    }
    for (Node* n : {&b1_, &single_}) {
      auto created = n->client->CreateCollection(Schema());
      ASSERT_TRUE(created.ok()) << n->id << ": " << created.status();
    }
    for (Node* n : {&a0_, &b0_, &a1_}) {
      const Status s = WaitForCollection(*n, "c");
      ASSERT_TRUE(s.ok()) << s;
    }
    std::mt19937_64 rng(7);
    std::vector<ItemRecord> items;
    for (uint64_t id = 0; id < kItems; ++id) items.push_back(Item(id, rng));
    auto acked = a0_.client->Upsert("c", items);
    ASSERT_TRUE(acked.ok()) << acked.status();
    ASSERT_TRUE(single_.client->Upsert("c", items).ok());
    last_seq_ = acked->op_seq;
    // Every node answers routed searches once every replica has applied the write.
    net::SearchCall probe;
    probe.collection = "c";
    probe.query.vectors = {std::vector<float>(kDim, 1.0f)};
    probe.min_seq = last_seq_;
    for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
      auto r = n->client->Query(probe);
      ASSERT_TRUE(r.ok()) << n->id << ": " << r.status();
    }
  }

  testing::ScopedTempDir dir_;
  testing::NatsServer nats_{dir_.path() + "/nats"};
  testing::EtcdServer etcd_{dir_.path() + "/etcd"};
  Node a0_{"a0", "0"}, b0_{"b0", "0"}, a1_{"a1", "1"}, b1_{"b1", "1"}, single_{"single", ""};
  Node c0_{"c0", "0"};  // a node that joins later
  uint64_t last_seq_ = 0;
};

TEST_F(ClusterRoutingTest, EveryNodeAnswersWhatASingleNodeHoldingEverythingAnswers) {
  StartCluster();
  if (HasFatalFailure()) return;
  std::vector<std::pair<std::string, net::SearchCall>> cases;
  auto add = [&](std::string name, auto edit) {
    net::SearchCall c;
    c.collection = "c";
    c.query.vectors = {Vec(cases.size() + 1)};
    c.query.k = 25;
    edit(c.query);
    cases.emplace_back(std::move(name), std::move(c));
  };
  add("plain top-k", [](QuerySpec&) {});
  add("multi-vector max", [](QuerySpec& q) { q.vectors.push_back(Vec(100)); });
  add("multi-vector sum", [](QuerySpec& q) {
    q.vectors.push_back(Vec(101));
    q.aggregate = Aggregate::kSum;
  });
  add("multi-vector weighted", [](QuerySpec& q) {
    q.vectors.push_back(Vec(102));
    q.vectors.push_back(Vec(103));
    q.aggregate = Aggregate::kWeighted;
    q.weights = {0.5f, 2.0f, 1.0f};
  });
  add("filter", [](QuerySpec& q) {
    Filter f;
    f.op = Filter::Op::kIn;
    f.field = Filter::Field::kCategory;
    f.values = {1, 3};
    q.filter = f;
  });
  add("exclude", [](QuerySpec& q) { q.exclude = {1, 2, 3, 4, 5, 6, 7, 8}; });
  add("freshness pool", [](QuerySpec& q) { q.fresh = Fresh{.pool = 600, .now = 1000 + kItems}; });
  add("quota over both shards", [](QuerySpec& q) {
    q.quota = QuotaSpec{.p = {1, 2, 3, 4, 0, 1, 0.5f, 2}, .a = 1, .total = 40};
  });
  add("quota needing shard 0 only", [](QuerySpec& q) {
    q.quota = QuotaSpec{.p = {1, 0, 3, 0, 2, 0, 1, 0}, .a = 0.5f, .total = 30};
  });
  add("quota with p auto",
      [](QuerySpec& q) { q.quota = QuotaSpec{.a = 1, .total = 40, .temperature = 0.5f}; });
  add("quota with p auto, two vectors, a = 2", [](QuerySpec& q) {
    q.vectors.push_back(Vec(104));
    q.quota = QuotaSpec{.a = 2, .total = 33, .temperature = 2.0f};
  });
  add("diversity: MMR", [](QuerySpec& q) { q.rerank = Rerank{.mmr_lambda = 0.6f}; });
  add("diversity: category cap and run limit", [](QuerySpec& q) {
    q.rerank = Rerank{.window = 60, .max_consecutive_category = 2, .per_category_cap = 6};
  });
  add("diversity: ComiRec category bonus",
      [](QuerySpec& q) { q.rerank = Rerank{.category_diversity = 0.05f}; });
  add("freshness boost",
      [](QuerySpec& q) { q.fresh = Fresh{.now = 1000 + kItems, .boost = 2.0f, .half_life = 100}; });
  add("freshness pool, boost and MMR", [](QuerySpec& q) {
    q.fresh = Fresh{.pool = 900, .now = 1000 + kItems, .boost = 1.0f, .half_life = 50};
    q.rerank = Rerank{.mmr_lambda = 0.8f};
  });
  add("multi-vector sum with MMR", [](QuerySpec& q) {
    q.vectors.push_back(Vec(105));
    q.aggregate = Aggregate::kSum;
    q.rerank = Rerank{.mmr_lambda = 0.7f, .window = 50};
  });
  add("multi-vector weighted with a boost", [](QuerySpec& q) {
    q.vectors.push_back(Vec(106));
    q.aggregate = Aggregate::kWeighted;
    q.weights = {1.5f, 0.5f};
    q.fresh = Fresh{.now = 1000 + kItems, .boost = 1.0f, .half_life = 80};
  });
  // p "history": user 7's events (on both shards' clusters), weighed by recency.
  const std::vector<Event> events = {{7, 3, 100}, {7, 11, 200}, {7, 19, 300},
                                     {7, 4, 900}, {7, 1, 950},  {7, 6, 960}};
  auto event_ack = a1_.client->AddEvents("c", events);
  ASSERT_TRUE(event_ack.ok()) << event_ack.status();
  ASSERT_TRUE(single_.client->AddEvents("c", events).ok());
  add("quota with p from the user's history",
      [](QuerySpec& q) { q.quota = QuotaSpec{{}, 1, 40, 1, uint64_t{7}, 0}; });
  add("quota with p from the user's history, half-life 100",
      [](QuerySpec& q) { q.quota = QuotaSpec{{}, 0.5f, 40, 1, uint64_t{7}, 100}; });
  for (size_t i = cases.size() - 2; i < cases.size(); ++i)
    cases[i].second.min_seq = event_ack->op_seq;
  add("quota with boost and category cap", [](QuerySpec& q) {
    q.quota = QuotaSpec{.p = {1, 2, 3, 4, 0, 1, 0.5f, 2}, .a = 1, .total = 30};
    q.fresh = Fresh{.now = 1000 + kItems, .boost = 1.5f, .half_life = 200};
    q.rerank = Rerank{.per_category_cap = 8};
  });
  for (const auto& [name, call] : cases) {
    auto want = single_.client->Query(call);
    ASSERT_TRUE(want.ok()) << name << ": " << want.status();
    ASSERT_FALSE(want->hits.empty()) << name;
    for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
      auto got = n->client->Query(call);
      ASSERT_TRUE(got.ok()) << name << " through " << n->id << ": " << got.status();
      EXPECT_EQ(got->hits, want->hits) << name << " through " << n->id;
      EXPECT_EQ(got->hit_cluster, want->hit_cluster) << name << " through " << n->id;
      EXPECT_EQ(got->hit_vector, want->hit_vector) << name << " through " << n->id;
      EXPECT_EQ(got->quotas, want->quotas) << name << " through " << n->id;
      EXPECT_EQ(got->per_cluster, want->per_cluster) << name << " through " << n->id;
      EXPECT_GE(got->seq, last_seq_) << name << " through " << n->id;
    }
  }
  // MVKE (score = sum_k alpha_ik (u_k . t_i), exact per hit; per-topic search run until the
  // threshold bound is met) in a collection of 3 topics, without clusters (hashed shards).
  CollectionSchema topics = Schema("m");
  topics.clusters = 0;
  topics.topics = 3;
  ASSERT_TRUE(a0_.client->CreateCollection(topics).ok());
  ASSERT_TRUE(single_.client->CreateCollection(topics).ok());
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<ItemRecord> weighted;
  for (uint64_t id = 0; id < 600; ++id) {
    ItemRecord item = Item(id, rng);
    item.cluster = 0;
    float sum = 0;
    for (int k = 0; k < 3; ++k) sum += item.topic_weights.emplace_back(unit(rng));
    for (float& w : item.topic_weights) w /= sum;
    weighted.push_back(std::move(item));
  }
  auto acked = a0_.client->Upsert("m", weighted);
  ASSERT_TRUE(acked.ok()) << acked.status();
  ASSERT_TRUE(single_.client->Upsert("m", weighted).ok());
  net::SearchCall mvke;
  mvke.collection = "m";
  mvke.query.k = 20;
  mvke.query.mvke = MvkeSpec{{Vec(201), Vec(202), Vec(203)}, MvkeStrategy::kPerTopic, 20, 600};
  mvke.min_seq = acked->op_seq;
  auto want_mvke = single_.client->Query(mvke);
  ASSERT_TRUE(want_mvke.ok()) << want_mvke.status();
  ASSERT_EQ(want_mvke->hits.size(), 20u);
  for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
    const Status s = WaitForCollection(*n, "m");
    ASSERT_TRUE(s.ok()) << s;
    auto got = n->client->Query(mvke);
    ASSERT_TRUE(got.ok()) << "mvke through " << n->id << ": " << got.status();
    EXPECT_EQ(got->hits, want_mvke->hits) << "mvke through " << n->id;
    EXPECT_EQ(got->hit_vector, want_mvke->hit_vector) << "mvke through " << n->id;
  }
  // A bad query is refused as the single node refuses it.
  net::SearchCall bad = cases[0].second;
  bad.query.vectors[0].pop_back();
  auto bad_single = single_.client->Query(bad);
  auto bad_routed = a1_.client->Query(bad);
  ASSERT_FALSE(bad_routed.ok());
  EXPECT_EQ(bad_routed.status(), bad_single.status());
  // p "learned" needs every cluster's items on one node: refused with a clear error.
  net::SearchCall learned = cases[0].second;
  learned.query.quota = QuotaSpec{{}, 1.0f, 20, 1.0f, uint64_t{7}, 0, true};
  auto refused = a1_.client->Query(learned);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_NE(refused.status().message().find("cluster mode"), std::string::npos);
}

TEST_F(ClusterRoutingTest, CollectionsAreCreatedAndDroppedClusterWide) {
  StartCluster();
  if (HasFatalFailure()) return;
  // One name, one collection: a second create anywhere is refused.
  auto again = a1_.client->CreateCollection(Schema());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists) << again.status();
  // Created through one node, on every node; dropped through another, gone everywhere, also
  // from a node that was down during the drop (it drops its copy when it returns).
  ASSERT_TRUE(a1_.client->CreateCollection(Schema("d")).ok());
  for (Node* n : {&a0_, &b0_, &b1_}) {
    const Status s = WaitForCollection(*n, "d");
    ASSERT_TRUE(s.ok()) << s;
  }
  std::mt19937_64 rng(5);
  std::vector<ItemRecord> old_items;
  for (uint64_t id = 100; id < 108; ++id) old_items.push_back(Item(id, rng));
  ASSERT_TRUE(a1_.client->Upsert("d", old_items).ok());
  b0_.process->Signal(SIGKILL);
  b0_.process->Wait();
  ASSERT_TRUE(a0_.client->DropCollection("d").ok());
  for (Node* n : {&a0_, &a1_, &b1_}) {
    const Status s = WaitForCollection(*n, "d", /*present=*/false);
    ASSERT_TRUE(s.ok()) << s;
  }
  Start(b0_);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_FALSE(b0_.client->DescribeCollection("d").ok());  // dropped before it said "joined"
  auto dropped = b1_.client->DropCollection("d");
  EXPECT_EQ(dropped.code(), StatusCode::kNotFound) << dropped;
  // The name can be used again, with an empty log: none of the dropped collection's items.
  ASSERT_TRUE(b0_.client->CreateCollection(Schema("d")).ok());
  for (Node* n : {&a0_, &a1_, &b1_}) {
    const Status s = WaitForCollection(*n, "d");
    ASSERT_TRUE(s.ok()) << s;
  }
  std::vector<ItemRecord> new_items;
  for (uint64_t id = 0; id < 4; ++id) new_items.push_back(Item(id, rng));
  auto acked = b0_.client->Upsert("d", new_items);
  ASSERT_TRUE(acked.ok()) << acked.status();
  net::SearchCall all;
  all.collection = "d";
  all.query.vectors = {Vec(9)};
  all.query.k = 50;
  all.min_seq = acked->op_seq;
  for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
    auto got = n->client->Query(all);
    ASSERT_TRUE(got.ok()) << n->id << ": " << got.status();
    std::vector<uint64_t> ids;
    for (const Hit& h : got->hits) ids.push_back(h.id);
    std::sort(ids.begin(), ids.end());
    EXPECT_EQ(ids, (std::vector<uint64_t>{0, 1, 2, 3})) << n->id;
  }
  // The collection of the other tests is still everywhere, its items too.
  for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
    auto d = n->client->DescribeCollection("c");
    ASSERT_TRUE(d.ok()) << n->id << ": " << d.status();
  }
}

TEST_F(ClusterRoutingTest, AReplicaKilledUnderLoadFailsNoSearchAndLosesNoAcknowledgedWrite) {
  StartCluster();
  if (HasFatalFailure()) return;
  // a1 and b1 send shard 0's part to a0 (fewest outstanding, then the lower id): kill a0.
  Load load(a1_, 1000, b1_, 2000, a1_, 11, last_seq_);
  load.Run(100);
  a0_.process->Signal(SIGKILL);
  a0_.process->Wait();
  load.Run(200);
  // a0 restarts, catches up, and is taken back into rotation; searches still all answer.
  Start(a0_);
  ASSERT_FALSE(HasFatalFailure());
  load.Run(200);
  load.Stop();
  EXPECT_EQ(load.failed(), 0u) << "of " << load.searches() << "; first: " << load.first_failure();
  const std::map<uint64_t, std::vector<float>>& acked = load.acked();
  // The routers' metrics say so: routed searches, and a replica that failed (a0, asked again
  // elsewhere) on a1 or b1; which of the two met the dead a0 first depends on their views.
  const testing::HttpAnswer metrics = testing::Http(a1_.http, "GET", "/metrics");
  ASSERT_EQ(metrics.status, 200);
  const testing::HttpAnswer metrics_b1 = testing::Http(b1_.http, "GET", "/metrics");
  ASSERT_EQ(metrics_b1.status, 200);
  auto value = [&](const std::string& name) { return MetricValue(metrics.body, name); };
  EXPECT_GT(value("quiver_router_routed_total"), 0u) << metrics.body;
  EXPECT_GE(value("quiver_router_subrequests_total"), 2 * value("quiver_router_routed_total"));
  EXPECT_GT(value("quiver_router_replica_failures_total") +
                MetricValue(metrics_b1.body, "quiver_router_replica_failures_total"),
            0u)
      << "a1's log:\n"
      << LogOf(a1_) << "\nb1's log:\n"
      << LogOf(b1_);
  EXPECT_EQ(value("quiver_cluster_members"), 4u);
  EXPECT_EQ(value("quiver_cluster_etcd_up"), 1u);
  // Every acknowledged write is on both replicas of its shard.
  ASSERT_GT(acked.size(), 0u);
  std::mt19937_64 rng(3);
  auto last = a1_.client->Upsert("c", {Item(kItems + 1000000, rng)});
  ASSERT_TRUE(last.ok()) << last.status();
  const uint64_t seq = last->op_seq;
  net::SearchCall sync;
  sync.collection = "c";
  sync.query.vectors = {Vec(1)};
  sync.min_seq = seq;
  for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
    sync.query.shards = {n->shards == "0" ? 0u : 1u};
    auto r = n->client->Query(sync);
    ASSERT_TRUE(r.ok()) << n->id << ": " << r.status();
    std::vector<uint64_t> ids;
    for (const auto& [id, v] : acked) {
      if (id % kClusters % 2 == sync.query.shards[0]) ids.push_back(id);
    }
    auto got = n->client->Get("c", ids);
    ASSERT_TRUE(got.ok()) << got.status();
    for (size_t i = 0; i < ids.size(); ++i) {
      ASSERT_TRUE((*got)[i].has_value())
          << "acknowledged item " << ids[i] << " missing on " << n->id;
      EXPECT_EQ((*got)[i]->vector, acked.at(ids[i]));
    }
  }
}

// A plugin run in the cluster (through the log, run by every node) builds each item's neighbor
// list against every shard: on the nodes holding the item, the list equals the single node's.
TEST_F(ClusterRoutingTest, NeighborListsCoverEveryShard) {
  StartCluster();
  if (HasFatalFailure()) return;
  auto want = single_.client->RunPlugin("c", "i2i_knn", R"({"k":12})", false,
                                        std::chrono::milliseconds(120000));
  ASSERT_TRUE(want.ok()) << want.status();
  auto run = a1_.client->RunPlugin("c", "i2i_knn", R"({"k":12})", false,
                                   std::chrono::milliseconds(120000));
  ASSERT_TRUE(run.ok()) << run.status();
  size_t crossing = 0;  // lists holding items of the other shard
  for (uint64_t id = 0; id < kItems; id += 37) {
    auto expected = single_.client->GetList("c", "i2i", id);
    ASSERT_TRUE(expected.ok() && expected->has_value()) << id;
    for (const Hit& h : **expected) crossing += h.id % 2 != id % 2;
    for (Node* n : id % 2 == 0 ? std::vector<Node*>{&a0_, &b0_} : std::vector<Node*>{&a1_, &b1_}) {
      // Every node runs the plugin when it applies it: wait for this one's lists.
      Result<std::optional<std::vector<Hit>>> got = std::optional<std::vector<Hit>>();
      for (const auto deadline = Clock::now() + std::chrono::minutes(2); Clock::now() < deadline;) {
        got = n->client->GetList("c", "i2i", id);
        if (!got.ok() || got->has_value()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      ASSERT_TRUE(got.ok() && got->has_value()) << n->id << " has no list for " << id;
      EXPECT_EQ(**got, **expected) << n->id << ", item " << id;
    }
  }
  EXPECT_GT(crossing, 0u);  // neighbors from the other shard are there
}

// Candidate channels (u2i, u2i2i, u2u2i merged MIC-style) through every node answer what the
// single node answers: users and events written through one node, i2i and u2u lists built by
// plugin runs through the log.
TEST_F(ClusterRoutingTest, ChannelsAnswerAsOneNode) {
  StartCluster();
  if (HasFatalFailure()) return;
  std::mt19937_64 rng(31);
  std::vector<UserRecord> users;
  std::vector<Event> events;
  for (uint64_t u = 0; u < 40; ++u) {
    users.push_back(UserRecord{u, Vec(500 + u), {}});
    for (int e = 0; e < 12; ++e) events.push_back(Event{u, rng() % kItems, int64_t(100 + e)});
  }
  for (Node* n : {&a0_, &single_}) {
    ASSERT_TRUE(n->client->PutUsers("c", users).ok());
    ASSERT_TRUE(n->client->AddEvents("c", events).ok());
    for (const char* plugin : {"i2i_knn", "u2u_knn"}) {
      auto run = n->client->RunPlugin("c", plugin, R"({"k":15})", false,
                                      std::chrono::milliseconds(120000));
      ASSERT_TRUE(run.ok()) << n->id << " " << plugin << ": " << run.status();
    }
  }
  // Every node has run both plugins (the u2u run comes after the i2i one in the log).
  for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
    Result<std::optional<std::vector<Hit>>> got = std::optional<std::vector<Hit>>();
    for (const auto deadline = Clock::now() + std::chrono::minutes(2); Clock::now() < deadline;) {
      got = n->client->GetList("c", "u2u", 0);
      if (!got.ok() || got->has_value()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(got.ok() && got->has_value()) << n->id << " has no u2u list";
  }
  std::vector<std::pair<std::string, net::SearchCall>> cases;
  auto add = [&](std::string name, auto edit) {
    net::SearchCall c;
    c.collection = "c";
    c.query.k = 30;
    edit(c.query);
    cases.emplace_back(std::move(name), std::move(c));
  };
  add("a user's three channels", [](QuerySpec& q) { q.channels = Channels{.user = 3}; });
  add("a user's channels, filtered", [](QuerySpec& q) {
    q.channels = Channels{.user = 5, .per_seed = 8};
    Filter f;
    f.op = Filter::Op::kIn;
    f.field = Filter::Field::kCategory;
    f.values = {1, 2};
    q.filter = f;
  });
  add("seed items and a query vector", [](QuerySpec& q) {
    q.vectors = {Vec(77)};
    q.channels = Channels{.seed_items = {10, 11, 12, 13}, .u2u2i = false};
  });
  add("u2u2i alone, history kept", [](QuerySpec& q) {
    q.channels = Channels{.user = 9, .u2i = false, .u2i2i = false, .exclude_seen = false};
  });
  for (const auto& [name, call] : cases) {
    auto want = single_.client->Query(call);
    ASSERT_TRUE(want.ok()) << name << ": " << want.status();
    ASSERT_GT(want->hits.size(), 5u) << name;
    for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
      auto got = n->client->Query(call);
      ASSERT_TRUE(got.ok()) << name << " through " << n->id << ": " << got.status();
      EXPECT_EQ(got->hits, want->hits) << name << " through " << n->id;
      EXPECT_EQ(got->hit_channels, want->hit_channels) << name << " through " << n->id;
      EXPECT_EQ(got->hit_cluster, want->hit_cluster) << name << " through " << n->id;
      EXPECT_EQ(got->per_cluster, want->per_cluster) << name << " through " << n->id;
    }
  }
}

// Moving shard 0 from a0 and b0 to a new node c0 under a search and write load: c0 joins
// (a copy from a peer, then the log); once it has caught up, shard 0's assignment in etcd is
// flipped to c0 alone (refused before, and for nodes that do not hold the shard); then a0 and b0
// are killed (SIGKILL: no lease revoked, routers must have stopped sending to them already).
// No search fails; c0 holds every acknowledged write of shard 0.
TEST_F(ClusterRoutingTest, AShardMovesToANewNodeUnderLoadWithoutAFailedSearch) {
  StartCluster();
  if (HasFatalFailure()) return;
  Load load(a1_, 3000, b1_, 4000, a1_, 23, last_seq_);
  load.Run(100);
  EXPECT_EQ(a1_.client->AssignShard(0, {"c0"}).code(), StatusCode::kFailedPrecondition)
      << "c0 is not a member yet";
  EXPECT_EQ(a1_.client->AssignShard(0, {"a1"}).code(), StatusCode::kFailedPrecondition)
      << "a1 does not hold shard 0";
  Start(c0_);
  ASSERT_FALSE(HasFatalFailure());
  net::SearchCall caught_up;
  caught_up.collection = "c";
  caught_up.query.vectors = {Vec(1)};
  caught_up.query.shards = {0};
  caught_up.min_seq = load.last_seq();
  // c0 serves the collection once its copy from a peer is in and it has caught up with what was
  // acknowledged before it joined (min_seq).
  Result<net::SearchResult> got = UnavailableError("not asked yet");
  for (const auto deadline = Clock::now() + std::chrono::minutes(2); Clock::now() < deadline;) {
    got = c0_.client->Query(caught_up);
    if (got.ok() || got.status().code() != StatusCode::kUnavailable) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(got.ok()) << got.status();
  load.Run(100);
  // The flip (c0 may still be catching up with the load's newest writes: asked again).
  Status assigned = UnavailableError("not asked yet");
  for (const auto deadline = Clock::now() + std::chrono::minutes(1); Clock::now() < deadline;) {
    assigned = b1_.client->AssignShard(0, {"c0"});
    if (assigned.code() != StatusCode::kFailedPrecondition) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(assigned.ok()) << assigned;
  // Every router's view has it once its cluster listing does.
  for (Node* router : {&a1_, &b1_, &c0_}) {
    Result<net::ClusterInfo> view = router->client->Cluster();
    for (const auto deadline = Clock::now() + std::chrono::minutes(1);
         view.ok() && view->assignment[0] != std::vector<std::string>{"c0"} &&
         Clock::now() < deadline;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      view = router->client->Cluster();
    }
    ASSERT_TRUE(view.ok()) << view.status();
    ASSERT_EQ(view->assignment[0], std::vector<std::string>{"c0"}) << router->id;
    for (const net::ClusterMember& m : view->members) {
      const bool serves_shard_0 = std::count(m.assigned.begin(), m.assigned.end(), 0u) > 0;
      EXPECT_EQ(serves_shard_0, m.id == "c0") << m.id << " through " << router->id;
    }
  }
  load.Run(100);
  // No router sends to a0 or b0 any more: killing them fails no request sent to them.
  auto failures = [](Node& n) {
    return MetricValue(testing::Http(n.http, "GET", "/metrics").body,
                       "quiver_router_replica_failures_total");
  };
  const uint64_t failed_a1 = failures(a1_), failed_b1 = failures(b1_);
  for (Node* leaving : {&a0_, &b0_}) {
    leaving->process->Signal(SIGKILL);
    leaving->process->Wait();
    load.Run(150);
  }
  load.Stop();
  EXPECT_EQ(failures(a1_), failed_a1) << "a1 still sent shard 0 to a killed node";
  EXPECT_EQ(failures(b1_), failed_b1) << "b1 still sent shard 0 to a killed node";
  EXPECT_EQ(load.failed(), 0u) << "of " << load.searches() << "; first: " << load.first_failure();
  const std::map<uint64_t, std::vector<float>>& acked = load.acked();
  // Every acknowledged write of shard 0 is on c0.
  caught_up.min_seq = load.last_seq();
  ASSERT_TRUE(c0_.client->Query(caught_up).ok());
  std::vector<uint64_t> ids;
  for (const auto& [id, v] : acked) {
    if (id % kClusters % 2 == 0) ids.push_back(id);
  }
  for (uint64_t id = 0; id < kItems; id += 2) ids.push_back(id);
  ASSERT_GT(ids.size(), kItems / 2);
  auto items = c0_.client->Get("c", ids);
  ASSERT_TRUE(items.ok()) << items.status();
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_TRUE((*items)[i].has_value()) << "item " << ids[i] << " missing on c0";
    if (acked.count(ids[i]) > 0) {
      EXPECT_EQ((*items)[i]->vector, acked.at(ids[i]));
    }
  }
}

// A bulk build goes live on every shard at once (docs/cluster.md, "Bulk builds and versions"):
// `quiver build --shards 2` writes the parts, a node publishes them, every replica loads its
// shard, and the collection's active version flips in etcd once each shard has a loaded
// replica; a replica killed while this goes on delays nothing and no search sees a mix of
// versions; the writes acknowledged after the build's watermark are in the new version; rollback
// returns to the old one, which has kept following the log.
TEST_F(ClusterRoutingTest, ABulkBuildFlipsEveryShardAtOnceAndRollsBack) {
  StartCluster();
  if (HasFatalFailure()) return;
  // The build: kItems other items (ids from kBuilt), as a recsys pipeline would dump them.
  std::mt19937_64 rng(99);
  std::map<uint64_t, std::vector<float>> built;
  {
    std::ofstream vectors(dir_.path() + "/v2.fvecs", std::ios::binary);
    std::ofstream attributes(dir_.path() + "/v2.csv");
    attributes << "id,cluster,category,timestamp\n";
    for (uint64_t i = 0; i < kItems; ++i) {
      const ItemRecord item = Item(kBuilt + i, rng);
      const int32_t dim = kDim;
      vectors.write(reinterpret_cast<const char*>(&dim), sizeof(dim));
      vectors.write(reinterpret_cast<const char*>(item.vector.data()),
                    std::streamsize(kDim * sizeof(float)));
      attributes << item.id << "," << item.cluster << "," << *item.category << "," << item.timestamp
                 << "\n";
      built[item.id] = item.vector;
    }
  }
  const std::string out = dir_.path() + "/builds/v2";
  auto build = ChildProcess::Start(
      {QUIVER, "build", "--out", out, "--name", "c", "--vectors", dir_.path() + "/v2.fvecs",
       "--attributes", dir_.path() + "/v2.csv", "--metric", "ip", "--index", "flat", "--clusters",
       std::to_string(kClusters), "--shards", "2"},
      dir_.path() + "/build.log");
  ASSERT_TRUE(build.ok()) << build.status();
  ASSERT_EQ((*build)->Wait(), 0) << "quiver build failed; see " << dir_.path() << "/build.log";

  // A wrong build is refused before anything changes.
  EXPECT_EQ(a0_.client->PublishVersion("c", "v2", dir_.path() + "/nowhere").code(),
            StatusCode::kNotFound);
  EXPECT_EQ(a0_.client->PublishVersion("c", "bad name", out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a0_.client->PublishVersion("c", "initial", out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(single_.client->PublishVersion("c", "v2", out).code(),
            StatusCode::kFailedPrecondition);  // no cluster: whole data versions only

  Load load(a1_, 1000, b1_, 2000, a1_, 11, last_seq_);
  load.Run(100);
  // The build holds none of the writes so far (nor the load's, which all come after).
  Status published = a0_.client->PublishVersion("c", "v2", out, last_seq_);
  ASSERT_TRUE(published.ok()) << published;
  // A replica of shard 0 dies while the version loads: a0 is left to load it for the shard.
  b0_.process->Signal(SIGKILL);
  b0_.process->Wait();
  const auto deadline = Clock::now() + std::chrono::minutes(2);
  Result<VersionsInfo> versions = a1_.client->CollectionVersions("c");
  while (versions.ok() && versions->current != "v2" && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    versions = a1_.client->CollectionVersions("c");
  }
  ASSERT_TRUE(versions.ok()) << versions.status();
  if (versions->current != "v2") {
    for (const char* id : {"a0", "a1", "b1"}) {
      std::ifstream log(dir_.path() + "/" + id + ".log");
      std::stringstream text;
      text << log.rdbuf();
      ADD_FAILURE() << id << "'s log:\n" << text.str();
    }
  }
  ASSERT_EQ(versions->current, "v2") << "the version never became active";
  EXPECT_EQ(versions->previous, "initial");
  EXPECT_EQ(versions->pending, "");
  load.Run(150);
  load.Stop();
  EXPECT_EQ(load.failed(), 0u) << "of " << load.searches() << "; first: " << load.first_failure();
  EXPECT_EQ(load.mixed(), 0u) << "searches answered from both versions at once";
  EXPECT_GT(load.initial(), 0u);
  EXPECT_GT(load.built(), 0u);

  // b0 comes back, loads the active version (and keeps the previous one) and serves again.
  Start(b0_);
  ASSERT_FALSE(HasFatalFailure());
  auto has = [](const VersionsInfo& v, const std::string& version, uint32_t shard,
                const std::string& node) {
    for (const VersionReplicas& r : v.replicas) {
      if (r.version == version && r.shard == shard &&
          std::find(r.nodes.begin(), r.nodes.end(), node) != r.nodes.end())
        return true;
    }
    return false;
  };
  versions = a1_.client->CollectionVersions("c");
  while (versions.ok() && !(has(*versions, "v2", 0, "b0") && has(*versions, "initial", 0, "b0")) &&
         Clock::now() < deadline + std::chrono::minutes(1)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    versions = a1_.client->CollectionVersions("c");
  }
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_TRUE(has(*versions, "v2", 0, "b0")) << "b0 did not load v2 after its restart";

  // The new version: the build and every write acknowledged after its watermark, nothing of
  // the writes before it.
  std::map<uint64_t, std::vector<float>> expected = built;
  for (const auto& [id, v] : load.acked()) expected[id] = v;
  ASSERT_GT(load.acked().size(), 0u);
  net::SearchCall q;
  q.collection = "c";
  q.query.k = 20;
  q.min_seq = load.last_seq();
  for (uint64_t probe = 0; probe < 5; ++probe) {
    q.query.vectors = {Vec(5000 + probe)};
    std::vector<std::pair<float, uint64_t>> scored;
    for (const auto& [id, v] : expected) {
      float dot = 0;
      for (uint32_t d = 0; d < kDim; ++d) dot += v[d] * q.query.vectors[0][d];
      scored.emplace_back(-dot, id);
    }
    std::sort(scored.begin(), scored.end());
    std::optional<std::vector<Hit>> first;
    for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
      auto r = n->client->Query(q);
      ASSERT_TRUE(r.ok()) << n->id << ": " << r.status();
      if (!first) first = r->hits;
      EXPECT_EQ(r->hits, *first) << "through " << n->id;
      std::set<uint64_t> got;
      for (const Hit& h : r->hits) got.insert(h.id);
      for (size_t i = 0; i < 10; ++i) {
        EXPECT_EQ(got.count(scored[i].second), 1u)
            << "item " << scored[i].second << " (rank " << i << ") missing through " << n->id;
      }
    }
  }
  // Each replica holds its shard's acknowledged writes (and only the build's own items).
  for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
    const uint32_t shard = n->shards == "0" ? 0 : 1;
    std::vector<uint64_t> ids;
    for (const auto& [id, v] : load.acked()) {
      if (id % kClusters % 2 == shard) ids.push_back(id);
    }
    ids.push_back(shard);  // an item of the initial version only
    auto got = n->client->Get("c", ids);
    ASSERT_TRUE(got.ok()) << n->id << ": " << got.status();
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      ASSERT_TRUE((*got)[i].has_value()) << "write " << ids[i] << " missing on " << n->id;
      EXPECT_EQ((*got)[i]->vector, load.acked().at(ids[i]));
    }
    EXPECT_FALSE(got->back().has_value()) << n->id << " still answers from the initial version";
  }

  // Rollback: the initial version again, with the writes it followed meanwhile.
  Status rolled = b1_.client->RollbackCollection("c");
  ASSERT_TRUE(rolled.ok()) << rolled;
  for (Node* n : {&a0_, &b0_, &a1_, &b1_}) {
    bool back = false;
    const auto until = Clock::now() + std::chrono::minutes(1);
    while (!back && Clock::now() < until) {
      auto r = n->client->Search("c", Vec(1), {.k = 20});
      ASSERT_TRUE(r.ok()) << n->id << ": " << r.status();
      back = std::none_of(r->begin(), r->end(), [](const Hit& h) { return h.id >= kBuilt; });
      if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(back) << n->id << " still answers from v2 after the rollback";
    auto got = n->client->Get("c", {load.acked().rbegin()->first});
    ASSERT_TRUE(got.ok()) << got.status();
  }
  versions = a0_.client->CollectionVersions("c");
  ASSERT_TRUE(versions.ok()) << versions.status();
  EXPECT_EQ(versions->current, "initial");
  EXPECT_EQ(versions->previous, "v2");
  // Rolling back twice returns to v2 (the previous version is kept loaded).
  EXPECT_TRUE(a0_.client->RollbackCollection("c").ok());
  // A node holding two versions stops cleanly.
  a1_.process->Signal(SIGTERM);
  EXPECT_EQ(a1_.process->Wait(), 0) << "a1 did not stop cleanly";
}

TEST_F(ClusterRoutingTest, WithEtcdStoppedSearchesGoOnWithTheLastKnownMap) {
  StartCluster();
  if (HasFatalFailure()) return;
  net::SearchCall call;
  call.collection = "c";
  call.query.vectors = {Vec(5)};
  call.query.k = 30;
  auto want = single_.client->Query(call);
  ASSERT_TRUE(want.ok());
  etcd_.Kill();
  // For longer than the lease TTL (2 s): the map the nodes hold is what etcd last said.
  const auto until = Clock::now() + std::chrono::seconds(4);
  uint64_t answered = 0;
  while (Clock::now() < until) {
    for (Node* n : {&a0_, &b1_}) {
      auto got = n->client->Query(call);
      ASSERT_TRUE(got.ok()) << n->id << ": " << got.status();
      EXPECT_EQ(got->hits, want->hits);
      ++answered;
    }
  }
  EXPECT_GT(answered, 0u);
  // Once etcd is back, every node stores its key again.
  ASSERT_TRUE(etcd_.Start().ok());
  auto meta = cluster::MetaStore::Connect({.endpoints = {etcd_.url()}});
  ASSERT_TRUE(meta.ok()) << meta.status();
  size_t members = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    auto nodes = (*meta)->List("/quiver/t/nodes/");
    members = nodes.ok() ? nodes->size() : 0;
    if (members == 4) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(members, 4u);
  auto got = b0_.client->Query(call);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->hits, want->hits);
}

}  // namespace
}  // namespace quiver
