// cluster_log_bench: what the replicated write log costs a write (bench/results/cluster-log.md).
//
// Runs, in one invocation and in turn, a real quiverd three ways: single process (its synced
// RocksDB WAL acknowledges), in cluster mode on one nats-server (streams with 1 replica), and
// on three clustered nats-servers (3 replicas). In each, --writers clients upsert --batch-item
// batches over the binary protocol for --seconds, one at a time each, and the benchmark
// reports acknowledged batches per second and the acknowledgement latency (p50 / p99 / max).
// In the two cluster modes a second node then starts empty and replays the collection's whole
// log: its catch-up rate is the items it applied per second.
//
//   cluster_log_bench --quiverd build/tools/quiverd [--seconds 15] [--writers 4] [--batch 16]
//                     [--dim 64] [--rounds 1]
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/child_process.h"
#include "base/main.h"
#include "bench/bench_util.h"
#include "client/client.h"
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
               const std::vector<std::string>& flags) {
  std::vector<std::string> args = {quiverd, "--data",        data, "--http-port",
                                   "0",     "--binary-port", "0"};
  args.insert(args.end(), flags.begin(), flags.end());
  Node n;
  n.process = bench::Check(ChildProcess::Start(args, data + ".log"), "starting quiverd");
  const std::string line =
      bench::Check(n.process->WaitForLine("serving", std::chrono::seconds(120)), "quiverd start");
  const std::string marker = "binary 127.0.0.1:";
  client::ClientOptions co;
  co.port = uint16_t(std::stoi(line.substr(line.find(marker) + marker.size())));
  co.pool_size = 16;
  co.deadline = std::chrono::milliseconds(60000);
  n.client = bench::Check(client::Client::Connect(co), "connecting");
  return n;
}

void StopNode(Node& n) {
  n.client.reset();
  n.process->Signal(SIGTERM);
  n.process->Wait();
}

struct Run {
  std::string mode;
  size_t batches = 0, errors = 0;
  std::vector<double> ms;
  double seconds = 0;
  double catch_up_s = 0;
  uint64_t catch_up_items = 0;
  uint64_t applied_at_stop = 0;  // items node a had applied when the writers stopped
  double drain_s = 0;            // then until it had applied them all
};

int Main(int argc, char** argv) {
  std::string quiverd;
  double seconds = 15;
  int writers = 4, rounds = 1;
  size_t batch = 16;
  uint32_t dim = 64;
  CLI::App app{"cluster_log_bench: acknowledged writes through the replicated log"};
  app.add_option("--quiverd", quiverd, "the quiverd executable")->required();
  app.add_option("--seconds", seconds, "length of each write phase")->capture_default_str();
  app.add_option("--writers", writers, "concurrent writing clients")->capture_default_str();
  app.add_option("--batch", batch, "items per upsert")->capture_default_str();
  app.add_option("--dim", dim)->capture_default_str();
  app.add_option("--rounds", rounds, "times each mode runs (interleaved)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const bench::TempDir scratch("quiver_cluster_log");
  const std::string& dir = scratch.path();

  std::vector<Run> runs;
  int serial = 0;
  for (int round = 0; round < rounds; ++round) {
    for (const std::string mode :
         {"single process (synced WAL)", "log R=1 (1 nats-server)", "log R=3 (3 nats-servers)"}) {
      const std::string base = dir + "/" + std::to_string(serial++);
      std::filesystem::create_directories(base);
      std::unique_ptr<testing::NatsServer> one;
      std::unique_ptr<testing::NatsCluster> three;
      std::vector<std::string> flags;
      if (mode.starts_with("log R=1")) {
        one = std::make_unique<testing::NatsServer>(base + "/nats");
        bench::Check(one->Start(), "starting nats-server");
        flags = {"--log", one->url(), "--log-replicas", "1"};
      } else if (mode.starts_with("log R=3")) {
        three = std::make_unique<testing::NatsCluster>(base + "/nats");
        bench::Check(three->Start(), "starting 3 nats-servers");
        flags = {"--log", three->url_list(), "--log-replicas", "3"};
      }
      const bool cluster = !flags.empty();
      if (cluster) flags.insert(flags.end(), {"--node-id", "a"});
      Node a = StartNode(quiverd, base + "/a", flags);
      CollectionSchema schema;
      schema.name = "bench";
      schema.dim = dim;
      bench::Check(a.client->CreateCollection(schema), "creating the collection");

      Run run;
      run.mode = mode;
      std::atomic<bool> stop{false};
      std::vector<std::vector<double>> ms(static_cast<size_t>(writers));
      std::vector<size_t> errors(static_cast<size_t>(writers), 0);
      std::vector<std::thread> threads;
      threads.reserve(size_t(writers));
      const auto start = Clock::now();
      for (int w = 0; w < writers; ++w) {
        threads.emplace_back([&, w] {
          std::mt19937_64 rng(uint64_t(w) + 1);
          std::normal_distribution<float> g;
          uint64_t next_id = uint64_t(w) << 40;
          while (!stop.load()) {
            std::vector<ItemRecord> items(batch);
            for (ItemRecord& item : items) {
              item.id = next_id++;
              item.vector.resize(dim);
              for (float& x : item.vector) x = g(rng);
            }
            const auto t0 = Clock::now();
            const bool ok = a.client->Upsert("bench", std::move(items)).ok();
            if (ok) {
              ms[size_t(w)].push_back(Ms(Clock::now() - t0));
            } else {
              ++errors[size_t(w)];
            }
          }
        });
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
      stop = true;
      for (auto& t : threads) t.join();
      run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      for (int w = 0; w < writers; ++w) {
        run.ms.insert(run.ms.end(), ms[size_t(w)].begin(), ms[size_t(w)].end());
        run.errors += errors[size_t(w)];
      }
      run.batches = run.ms.size();

      if (cluster) {
        // Node a applies the log behind the acknowledgements: how far it was when the writers
        // stopped, then until it has everything.
        const uint64_t items = uint64_t(run.batches) * batch;  // every id is written once
        auto applied = [&](Node& n) {
          return bench::Check(n.client->DescribeCollection("bench"), "describe").items;
        };
        run.applied_at_stop = applied(a);
        const auto drain = Clock::now();
        while (applied(a) < items) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        run.drain_s = std::chrono::duration<double>(Clock::now() - drain).count();
        // A second node starts empty and replays the whole log.
        flags.back() = "b";
        Node b = StartNode(quiverd, base + "/b", flags);
        const auto t0 = Clock::now();
        bench::Check(b.client->CreateCollection(schema), "creating the collection on b");
        while (applied(b) < items) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        run.catch_up_s = std::chrono::duration<double>(Clock::now() - t0).count();
        run.catch_up_items = items;
        StopNode(b);
      }
      StopNode(a);
      std::fprintf(stderr, "%s: %zu batches\n", mode.c_str(), run.batches);
      runs.push_back(std::move(run));
    }
  }

  std::printf("cluster_log_bench: %s\n", bench::CommandLine(argc, argv).c_str());
  std::printf(
      "%d writers, upserts of %zu items of dim %u, one at a time each, for %.0f s per mode\n\n",
      writers, batch, dim, seconds);
  std::printf(
      "| mode | acked upserts/s | items/s | p50 ms | p99 ms | max ms | errors | applied when the "
      "writers stopped | catch-up of a new node |\n|---|---|---|---|---|---|---|---|---|\n");
  for (Run& r : runs) {
    const double per_s = double(r.batches) / r.seconds;
    std::string catch_up = "-", lag = "all (applied before the answer)";
    if (r.catch_up_s > 0) {
      char l[96];
      std::snprintf(l, sizeof(l), "%llu of %llu; the rest %.2f s later",
                    static_cast<unsigned long long>(r.applied_at_stop),
                    static_cast<unsigned long long>(r.catch_up_items), r.drain_s);
      lag = l;
      char buf[96];
      std::snprintf(buf, sizeof(buf), "%llu items in %.2f s: %.0f items/s",
                    static_cast<unsigned long long>(r.catch_up_items), r.catch_up_s,
                    double(r.catch_up_items) / r.catch_up_s);
      catch_up = buf;
    }
    std::printf("| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %zu | %s | %s |\n", r.mode.c_str(),
                per_s, per_s * double(batch), bench::Percentile(r.ms, 0.5),
                bench::Percentile(r.ms, 0.99),
                r.ms.empty() ? 0.0 : *std::max_element(r.ms.begin(), r.ms.end()), r.errors,
                lag.c_str(), catch_up.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("cluster_log_bench", [&] { return Main(argc, argv); });
}
