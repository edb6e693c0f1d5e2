// cluster_search_bench: what routing a search across shards costs (bench/results/cluster.md).
//
// Starts, in one invocation, etcd, a nats-server, a single-process quiverd holding every item,
// and a cluster of three quiverd nodes on the same items in 2 shards: r (shard 0, the node the
// searches are sent to), s1 and s2 (shard 1, replicas). Then, interleaved over --rounds:
//   - plain top-k searches (HNSW, ef --ef) sent one at a time: p50 / p99 through r (its own
//     shard plus one replica of shard 1, merged) beside the single node; recall@k of both
//     against the exact top k (computed here);
//   - quota searches whose clusters are all on shard 0: answered by r alone (shard 1 is not
//     contacted), beside the same query on the single node.
// Last, the replica of shard 1 that r uses is killed (SIGKILL) while one client searches
// through r: the longest search across the kill and the errors (0 expected: another replica
// answers).
//
//   cluster_search_bench --quiverd build/tools/quiverd [--items 20000] [--dim 64] [--k 100]
//                        [--queries 400] [--ef 128] [--rounds 2]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/child_process.h"
#include "base/main.h"
#include "bench/bench_util.h"
#include "client/client.h"
#include "tests/testing/etcd_server.h"
#include "tests/testing/nats_server.h"

namespace {

using namespace quiver;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Node {
  std::unique_ptr<ChildProcess> process;
  std::unique_ptr<client::Client> client;
};

Node StartNode(const std::string& quiverd, const std::string& data,
               const std::vector<std::string>& flags, const char* ready, const char* marker) {
  std::vector<std::string> args = {quiverd, "--data",        data, "--http-port",
                                   "0",     "--binary-port", "0",  "--snapshot-interval-s",
                                   "0"};
  args.insert(args.end(), flags.begin(), flags.end());
  Node n;
  n.process = bench::Check(ChildProcess::Start(args, data + ".log"), "starting quiverd");
  const std::string line =
      bench::Check(n.process->WaitForLine(ready, std::chrono::seconds(120)), "quiverd start");
  client::ClientOptions co;
  co.port = uint16_t(std::stoi(line.substr(line.find(marker) + std::string(marker).size())));
  co.pool_size = 4;
  co.max_attempts = 1;
  co.deadline = std::chrono::milliseconds(60000);
  n.client = bench::Check(client::Client::Connect(co), "connecting");
  return n;
}

struct Stats {
  std::vector<double> ms;
  double recall = 0;
};

int Main(int argc, char** argv) {
  std::string quiverd;
  uint32_t items = 20000, dim = 64, k = 100, queries = 400, ef = 128, clusters = 16;
  int rounds = 2;
  CLI::App app{"cluster_search_bench: searches routed across shards beside one node"};
  app.add_option("--quiverd", quiverd, "the quiverd executable")->required();
  app.add_option("--items", items)->capture_default_str();
  app.add_option("--dim", dim)->capture_default_str();
  app.add_option("--k", k)->capture_default_str();
  app.add_option("--queries", queries, "per mode and round")->capture_default_str();
  app.add_option("--ef", ef)->capture_default_str();
  app.add_option("--rounds", rounds)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const bench::TempDir scratch("quiver_cluster_search");
  const std::string& dir = scratch.path();
  testing::EtcdServer etcd(dir + "/etcd");
  bench::Check(etcd.Start(), "starting etcd");
  testing::NatsServer nats(dir + "/nats");
  bench::Check(nats.Start(), "starting nats-server");
  const std::string etcd_url = "etcd://" + etcd.url().substr(7);
  auto cluster_flags = [&](const std::string& id, const std::string& shards) {
    return std::vector<std::string>{"--log",          nats.url(), "--node-id",     id,
                                    "--shards",       shards,     "--cluster",     etcd_url,
                                    "--cluster-name", "bench",    "--lease-ttl-s", "2"};
  };
  Node single = StartNode(quiverd, dir + "/single", {}, "serving", "binary 127.0.0.1:");
  Node r =
      StartNode(quiverd, dir + "/r", cluster_flags("r", "0"), "joined", "joined as 127.0.0.1:");
  Node s1 =
      StartNode(quiverd, dir + "/s1", cluster_flags("s1", "1"), "joined", "joined as 127.0.0.1:");
  Node s2 =
      StartNode(quiverd, dir + "/s2", cluster_flags("s2", "1"), "joined", "joined as 127.0.0.1:");

  CollectionSchema schema;
  schema.name = "c";
  schema.dim = dim;
  schema.metric = Metric::kInnerProduct;
  schema.clusters = clusters;
  schema.shards = 2;
  // Created through r, the collection reaches s1 and s2 through etcd.
  for (Node* n : {&single, &r}) bench::Check(n->client->CreateCollection(schema), "create");
  for (Node* n : {&s1, &s2}) {
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (!n->client->DescribeCollection("c").ok()) {
      if (Clock::now() > deadline) bench::Check(UnavailableError("no collection"), "etcd");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  std::mt19937_64 rng(42);
  std::normal_distribution<float> g;
  std::vector<std::vector<float>> vectors(items);
  uint64_t seq = 0;
  for (uint32_t start = 0; start < items; start += 1000) {
    std::vector<ItemRecord> batch;
    for (uint32_t id = start; id < std::min(items, start + 1000); ++id) {
      ItemRecord it;
      it.id = id;
      for (uint32_t d = 0; d < dim; ++d) it.vector.push_back(g(rng));
      it.cluster = id % clusters;
      vectors[id] = it.vector;
      batch.push_back(std::move(it));
    }
    bench::Check(single.client->Upsert("c", batch), "upsert single");
    seq = bench::Check(r.client->Upsert("c", std::move(batch)), "upsert cluster").op_seq;
  }
  std::vector<std::vector<float>> qs(queries);
  for (auto& q : qs) {
    for (uint32_t d = 0; d < dim; ++d) q.push_back(g(rng));
  }
  // Exact top k per query, for recall.
  std::vector<std::set<uint64_t>> truth(queries);
  for (uint32_t i = 0; i < queries; ++i) {
    std::vector<std::pair<float, uint64_t>> all(items);
    for (uint32_t id = 0; id < items; ++id) {
      float dot = 0;
      for (uint32_t d = 0; d < dim; ++d) dot += qs[i][d] * vectors[id][d];
      all[id] = {-dot, id};
    }
    std::partial_sort(all.begin(), all.begin() + k, all.end());
    for (uint32_t j = 0; j < k; ++j) truth[i].insert(all[j].second);
  }
  // Every node has applied every write.
  for (Node* n : {&r, &s1, &s2}) {
    net::SearchCall wait;
    wait.collection = "c";
    wait.query.vectors = {qs[0]};
    wait.query.shards = {n == &r ? 0u : 1u};
    wait.min_seq = seq;
    bench::Check(n->client->Query(wait), "waiting for the log");
  }

  auto plain = [&](Node& n, uint32_t i, uint32_t e = 0) {
    net::SearchCall c;
    c.collection = "c";
    c.query.vectors = {qs[i]};
    c.query.k = k;
    c.query.ef = e ? e : ef;
    return c;
  };
  auto recall = [&](Node& n, uint32_t e) {
    size_t found = 0;
    for (uint32_t i = 0; i < queries; ++i) {
      for (const Hit& h : bench::Check(n.client->Query(plain(n, i, e)), "search").hits)
        found += truth[i].count(h.id);
    }
    return double(found) / double(size_t(queries) * k);
  };
  // Two graphs of half the items searched with ef each find more than one graph with ef: the
  // single node is also measured at the smallest ef (in steps of ef/4) reaching the routed
  // search's recall.
  const double routed_recall = recall(r, ef);
  uint32_t same_ef = ef;
  while (same_ef < 16 * ef && recall(single, same_ef) < routed_recall) same_ef += ef / 4;
  auto quota = [&](Node& n, uint32_t i) {
    net::SearchCall c = plain(n, i);
    std::vector<float> p(clusters, 0.0f);
    for (uint32_t j = 0; j < clusters; j += 2) p[j] = 1.0f + float(j);  // shard 0's clusters
    c.query.quota = QuotaSpec{.p = p, .a = 1.0f, .total = k};
    return c;
  };
  struct Mode {
    std::string name;
    Node* node;
    bool quota;
    uint32_t ef;
    std::vector<Stats> rounds;
  };
  std::vector<Mode> modes = {
      {"plain, single node, ef " + std::to_string(ef), &single, false, ef, {}},
      {"plain, routed to 2 shards, ef " + std::to_string(ef), &r, false, ef, {}},
      {"quota on shard 0's clusters, single node", &single, true, ef, {}},
      {"quota on shard 0's clusters, routed", &r, true, ef, {}},
      {"plain, single node, ef " + std::to_string(same_ef) + " (the routed recall)",
       &single,
       false,
       same_ef,
       {}}};
  for (int round = 0; round < rounds; ++round) {
    for (Mode& m : modes) {
      Stats st;
      size_t found = 0, wanted = 0;
      for (uint32_t i = 0; i < queries; ++i) {
        const net::SearchCall c = m.quota ? quota(*m.node, i) : plain(*m.node, i, m.ef);
        const auto t0 = Clock::now();
        const net::SearchResult res = bench::Check(m.node->client->Query(c), "search");
        st.ms.push_back(Ms(Clock::now() - t0));
        if (!m.quota) {
          for (const Hit& h : res.hits) found += truth[i].count(h.id);
          wanted += k;
        }
      }
      st.recall = wanted ? double(found) / double(wanted) : 0;
      m.rounds.push_back(std::move(st));
    }
  }
  std::printf("\nCommand: %s\n\n", bench::CommandLine(argc, argv).c_str());
  std::printf("| mode | round | p50 ms | p99 ms | recall@%u |\n|---|---|---|---|---|\n", k);
  for (Mode& m : modes) {
    for (size_t i = 0; i < m.rounds.size(); ++i) {
      Stats& st = m.rounds[i];
      std::printf("| %s | %zu | %.3f | %.3f | %s |\n", m.name.c_str(), i + 1,
                  bench::Percentile(st.ms, 0.5), bench::Percentile(st.ms, 0.99),
                  m.quota ? "-" : std::to_string(st.recall).substr(0, 5).c_str());
    }
  }
  for (size_t i = 0; i < modes[0].rounds.size(); ++i) {
    std::printf(
        "round %zu: routed/single p50 %.2fx p99 %.2fx (same ef); at the routed recall p50 %.2fx "
        "p99 %.2fx; quota one shard routed/single p50 %.2fx p99 %.2fx\n",
        i + 1,
        bench::Percentile(modes[1].rounds[i].ms, 0.5) /
            bench::Percentile(modes[0].rounds[i].ms, 0.5),
        bench::Percentile(modes[1].rounds[i].ms, 0.99) /
            bench::Percentile(modes[0].rounds[i].ms, 0.99),
        bench::Percentile(modes[1].rounds[i].ms, 0.5) /
            bench::Percentile(modes[4].rounds[i].ms, 0.5),
        bench::Percentile(modes[1].rounds[i].ms, 0.99) /
            bench::Percentile(modes[4].rounds[i].ms, 0.99),
        bench::Percentile(modes[3].rounds[i].ms, 0.5) /
            bench::Percentile(modes[2].rounds[i].ms, 0.5),
        bench::Percentile(modes[3].rounds[i].ms, 0.99) /
            bench::Percentile(modes[2].rounds[i].ms, 0.99));
  }

  // Failover: r sends shard 1 to s1 (fewest outstanding, then the lower id); kill s1.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> done{0}, errors{0};
  std::vector<std::pair<double, double>> spans;  // (start ms since kill-phase start, ms)
  const auto phase = Clock::now();
  std::thread searcher([&] {
    for (uint32_t i = 0; !stop.load(); ++i) {
      const auto t0 = Clock::now();
      auto res = r.client->Query(plain(r, i % queries));
      spans.emplace_back(Ms(t0 - phase), Ms(Clock::now() - t0));
      if (!res.ok()) errors.fetch_add(1);
      done.fetch_add(1);
    }
  });
  while (done.load() < 200) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double kill_at = Ms(Clock::now() - phase);
  s1.process->Signal(SIGKILL);
  s1.process->Wait();
  const uint64_t at_kill = done.load();
  while (done.load() < at_kill + 400) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stop = true;
  searcher.join();
  double worst = 0, normal = 0;
  std::vector<double> before;
  for (const auto& [start, ms] : spans) {
    if (start + ms >= kill_at) worst = std::max(worst, ms);
    if (start + ms < kill_at) before.push_back(ms);
  }
  normal = bench::Percentile(before, 0.5);
  std::printf(
      "\nfailover: s1 killed under one searching client: %llu searches after the kill, "
      "%llu errors; slowest search across the kill %.2f ms (p50 before it %.3f ms)\n",
      static_cast<unsigned long long>(done.load() - at_kill),
      static_cast<unsigned long long>(errors.load()), worst, normal);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("cluster_search_bench", [&] { return Main(argc, argv); });
}
