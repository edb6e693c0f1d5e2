// isolation_bench: whether searches wait behind other work (bench/results/isolation.md).
//
// Starts a real quiverd with its default flags (only the data directory and free ports are
// given), fills two HNSW collections, then measures searches on one of them ("quiet"), paced
// at --rate per second, twice: with the server otherwise idle, and while --writers clients
// upsert batches into the other ("busy") as fast as they are acknowledged and one more client
// snapshots "busy" and runs the i2i_knn plugin over it, back to back, for the whole window.
// Prints each phase's search latency (p50 / p99 / max), the loaded/idle p99 ratio, and how
// much work the other clients got done meanwhile. The load-generating clients run at nice 10:
// they stand for other machines, and their CPU use on this one is not the server's doing; the
// measured client runs at the default priority.
//
//   isolation_bench --quiverd build/tools/quiverd [--items 20000] [--dim 64] [--seconds 20]
//                   [--writers 3] [--batch 16] [--rate 500] [--k 100]
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
#include "base/work_pool.h"
#include "bench/bench_util.h"
#include "client/client.h"

namespace {

using namespace quiver;
using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Latencies {
  std::vector<double> ms;
  size_t errors = 0;
  std::string first_error;
  double Percentile(double p) const {
    std::vector<double> v = ms;
    return bench::Percentile(v, p);
  }
  double Max() const { return ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end()); }
};

std::vector<ItemRecord> RandomItems(std::mt19937_64& rng, uint32_t dim, uint64_t first, size_t n) {
  std::normal_distribution<float> g;
  std::vector<ItemRecord> items(n);
  for (size_t i = 0; i < n; ++i) {
    items[i].id = first + i;
    items[i].vector.resize(dim);
    for (float& x : items[i].vector) x = g(rng);
  }
  return items;
}

// Searches `collection` at `rate` per second (each one sent at its slot, or at once when late)
// until `stop` is set or `seconds` have passed.
Latencies Measure(client::Client& c, const std::string& collection, uint32_t dim, uint32_t k,
                  double rate, double seconds, const std::atomic<bool>* stop) {
  Latencies out;
  std::mt19937_64 rng(7);
  std::normal_distribution<float> g;
  std::vector<float> q(dim);
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  const auto interval =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / rate));
  auto next = start;
  while (Clock::now() < end && !(stop && stop->load())) {
    std::this_thread::sleep_until(next);
    next += interval;
    for (float& x : q) x = g(rng);
    const auto t0 = Clock::now();
    auto r = c.Search(collection, q, {.k = k});
    out.ms.push_back(Ms(Clock::now() - t0));
    if (!r.ok() && out.errors++ == 0) out.first_error = r.status().ToString();
  }
  return out;
}

int Main(int argc, char** argv) {
  std::string quiverd;
  size_t items = 20000, batch = 16;
  uint32_t dim = 64, k = 100;
  int writers = 3;
  bool maintenance = true;
  std::vector<std::string> server_flags;
  double seconds = 20, rate = 500;
  CLI::App app{"isolation_bench: search latency beside writes, snapshots and plugin runs"};
  app.add_option("--quiverd", quiverd, "the quiverd executable")->required();
  app.add_option("--items", items, "items in each collection")->capture_default_str();
  app.add_option("--dim", dim)->capture_default_str();
  app.add_option("--seconds", seconds, "length of each measured phase")->capture_default_str();
  app.add_option("--writers", writers, "clients upserting into the busy collection")
      ->capture_default_str();
  app.add_option("--server-flag", server_flags, "a flag passed on to quiverd (repeatable)");
  app.add_flag("!--no-maintenance", maintenance,
               "no snapshots and plugin runs in the loaded phase");
  app.add_option("--batch", batch, "items per upsert")->capture_default_str();
  app.add_option("--rate", rate, "searches per second")->capture_default_str();
  app.add_option("--k", k)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const bench::TempDir scratch("quiver_isolation");
  const std::string& dir = scratch.path();
  std::vector<std::string> args = {quiverd,         "--data", dir + "/data", "--http-port", "0",
                                   "--binary-port", "0"};
  args.insert(args.end(), server_flags.begin(), server_flags.end());
  auto server = bench::Check(ChildProcess::Start(args, dir + "/quiverd.log"), "starting quiverd");
  const std::string line =
      bench::Check(server->WaitForLine("serving", std::chrono::seconds(120)), "quiverd start");
  const size_t at = line.find("binary 127.0.0.1:");
  if (at == std::string::npos) {
    std::fprintf(stderr, "isolation_bench: no binary port in '%s'\n", line.c_str());
    return 1;
  }
  client::ClientOptions co;
  co.port = uint16_t(std::stoi(line.substr(at + 17)));
  co.pool_size = size_t(writers) + 2;
  co.deadline = std::chrono::milliseconds(600000);
  auto cl = bench::Check(client::Client::Connect(co), "connecting");

  std::mt19937_64 rng(1);
  for (const char* name : {"quiet", "busy"}) {
    CollectionSchema s;
    s.name = name;
    s.dim = dim;
    bench::Check(cl->CreateCollection(s), "creating a collection");
    for (size_t i = 0; i < items; i += 1000) {
      bench::Check(cl->Upsert(name, RandomItems(rng, dim, i, std::min<size_t>(1000, items - i))),
                   "loading items");
    }
  }
  bench::Check(cl->Snapshot(), "snapshotting");
  Measure(*cl, "quiet", dim, k, rate, 1.0, nullptr);  // warm-up

  Latencies idle = Measure(*cl, "quiet", dim, k, rate, seconds, nullptr);

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0}, snapshots{0}, plugin_runs{0}, other_errors{0};
  std::vector<double> snapshot_ms, plugin_ms;
  std::vector<std::thread> load;
  load.reserve(size_t(writers) + 1);
  for (int w = 0; w < writers; ++w) {
    load.emplace_back([&, w] {
      SetThreadPriority(CpuPriority::kLow);  // stands for a client on another machine
      std::mt19937_64 wrng(100 + w);
      while (!stop.load()) {
        auto batch_items = RandomItems(wrng, dim, wrng() % (2 * items), 1);
        for (size_t i = 1; i < batch; ++i) {
          auto one = RandomItems(wrng, dim, wrng() % (2 * items), 1);
          batch_items.push_back(std::move(one[0]));
        }
        std::sort(batch_items.begin(), batch_items.end(),
                  [](const auto& a, const auto& b) { return a.id < b.id; });
        batch_items.erase(std::unique(batch_items.begin(), batch_items.end(),
                                      [](const auto& a, const auto& b) { return a.id == b.id; }),
                          batch_items.end());
        if (cl->Upsert("busy", std::move(batch_items)).ok()) {
          writes.fetch_add(1);
        } else {
          other_errors.fetch_add(1);
        }
      }
    });
  }
  if (maintenance)
    load.emplace_back([&] {
      SetThreadPriority(CpuPriority::kLow);
      while (!stop.load()) {
        auto t0 = Clock::now();
        if (cl->Snapshot("busy").ok()) {
          snapshots.fetch_add(1);
          snapshot_ms.push_back(Ms(Clock::now() - t0));
        } else {
          other_errors.fetch_add(1);
        }
        if (stop.load()) break;
        t0 = Clock::now();
        if (cl->RunPlugin("busy", "i2i_knn", R"({"k":20})").ok()) {
          plugin_runs.fetch_add(1);
          plugin_ms.push_back(Ms(Clock::now() - t0));
        } else {
          other_errors.fetch_add(1);
        }
      }
    });
  // The measured window opens once the writers' first batches are acknowledged.
  while (writes.load() < uint64_t(writers) && snapshots.load() == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Latencies loaded = Measure(*cl, "quiet", dim, k, rate, seconds, nullptr);
  const uint64_t window_writes = writes.load();
  stop = true;
  for (auto& t : load) t.join();

  std::printf("isolation_bench: %s\n", bench::CommandLine(argc, argv).c_str());
  std::printf(
      "%zu items per collection, dim %u, HNSW defaults; searches k %u at %.0f/s for %.0f s "
      "per phase\n\n",
      items, dim, k, rate, seconds);
  std::printf(
      "| phase | searches | errors | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|---|\n");
  for (auto [name, l] : {std::pair{"idle", &idle}, {"loaded", &loaded}}) {
    std::printf("| %s | %zu | %zu | %.3f | %.3f | %.2f |\n", name, l->ms.size(), l->errors,
                l->Percentile(0.5), l->Percentile(0.99), l->Max());
  }
  const double ratio = loaded.Percentile(0.99) / std::max(1e-9, idle.Percentile(0.99));
  std::printf(
      "\nloaded/idle p99: %.2fx; loaded max %.2f ms (target: p99 ratio <= 2, max < 20 ms: "
      "%s)\n",
      ratio, loaded.Max(), ratio <= 2 && loaded.Max() < 20 ? "met" : "NOT met");
  std::printf(
      "during the loaded phase: %llu upserts of up to %zu items by %d writers, %llu "
      "snapshots, %llu i2i_knn runs, %llu errors\n",
      (unsigned long long)window_writes, batch, writers, (unsigned long long)snapshots.load(),
      (unsigned long long)plugin_runs.load(), (unsigned long long)other_errors.load());
  std::printf("snapshot of busy: %.0f ms, i2i_knn run: %.0f ms (medians)\n",
              bench::Percentile(snapshot_ms, 0.5), bench::Percentile(plugin_ms, 0.5));
  if (idle.errors || loaded.errors) {
    std::printf("first search error: %s\n",
                (idle.errors ? idle.first_error : loaded.first_error).c_str());
  }
  server->Signal(SIGTERM);
  const int status = server->Wait();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "isolation_bench: quiverd ended with %s\n",
                 DescribeWaitStatus(status).c_str());
    return 1;
  }
  return idle.errors + loaded.errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("isolation_bench", [&] { return Main(argc, argv); });
}
