// load_bench: a load generator on the C++ client library (binary protocol) for the mixed load
// run (bench/load/run.sh): each thread, until the time is up, sends a search (k 50, a random
// vector) or, with probability --write-ratio, an upsert of 10 items (ids drawn from a fixed
// range, so they replace each other), and records every call's latency and status.
//
//   load_bench --port P [--seconds 600] [--threads 1] [--collection movies] [--dim 32]
//              [--clusters 16] [--topics 4] [--write-ratio 0.1] [--id-base 1000000] [--id-range
//              10000]
//
// Prints one line per operation: calls, errors, p50 / p99 / max in ms; the first error message.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/main.h"
#include "bench/bench_util.h"
#include "client/client.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace quiver;

struct Stats {
  std::vector<double> ms;
  size_t errors = 0;
  std::string first_error;
};

int Main(int argc, char** argv) {
  uint16_t port = 0;
  int seconds = 600, threads = 1;
  uint32_t dim = 32, clusters = 16, topics = 4;
  double write_ratio = 0.1;
  uint64_t id_base = 1000000, id_range = 10000;
  std::string collection = "movies";
  CLI::App app{"load_bench: the mixed load's binary-protocol generator (see load_bench.cc)"};
  app.add_option("--port", port, "quiverd's binary port")->required();
  app.add_option("--seconds", seconds);
  app.add_option("--threads", threads);
  app.add_option("--collection", collection);
  app.add_option("--dim", dim);
  app.add_option("--clusters", clusters);
  app.add_option("--topics", topics);
  app.add_option("--write-ratio", write_ratio, "share of calls that upsert")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--id-base", id_base, "first id upserted");
  app.add_option("--id-range", id_range, "ids upserted: [id-base, id-base + id-range)");
  CLI11_PARSE(app, argc, argv);
  client::ClientOptions o;
  o.port = port;
  o.pool_size = size_t(threads);
  auto c = client::Client::Connect(o);
  if (!c.ok()) {
    std::fprintf(stderr, "load_bench: %s\n", c.status().ToString().c_str());
    return 1;
  }
  client::Client& cl = **c;
  std::mutex mu;
  Stats search, upsert;
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  std::vector<std::thread> pool;
  pool.reserve(size_t(threads));
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(1234 + t);
      std::normal_distribution<float> g;
      std::uniform_real_distribution<double> u;
      Stats s, w;
      while (Clock::now() < deadline) {
        const bool write = u(rng) < write_ratio;
        const auto t0 = Clock::now();
        Status st;
        if (write) {
          std::vector<ItemRecord> items(10);
          for (ItemRecord& item : items) {
            item.id = id_base + rng() % id_range;
            item.cluster = uint32_t(rng() % clusters);
            item.topic_weights.assign(topics, 1.0f / float(topics));
            item.category = int64_t(rng() % 20);
            item.timestamp = 1537000000 + int64_t(rng() % 1000);
            for (uint32_t d = 0; d < dim; ++d) item.vector.push_back(g(rng));
          }
          std::sort(items.begin(), items.end(), [](auto& a, auto& b) { return a.id < b.id; });
          items.erase(std::unique(items.begin(), items.end(),
                                  [](auto& a, auto& b) { return a.id == b.id; }),
                      items.end());
          st = cl.Upsert(collection, std::move(items)).status();
        } else {
          std::vector<float> v(dim);
          for (float& x : v) x = g(rng);
          st = cl.Search(collection, v, {.k = 50}).status();
        }
        Stats& into = write ? w : s;
        into.ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (!st.ok()) {
          if (into.errors++ == 0) into.first_error = st.ToString();
        }
      }
      std::lock_guard lock(mu);
      for (auto [from, to] : {std::pair{&s, &search}, {&w, &upsert}}) {
        to->ms.insert(to->ms.end(), from->ms.begin(), from->ms.end());
        if (to->errors == 0 && from->errors) to->first_error = from->first_error;
        to->errors += from->errors;
      }
    });
  }
  for (auto& t : pool) t.join();
  for (auto [name, s] : {std::pair{"search", &search}, {"upsert", &upsert}}) {
    const size_t n = s->ms.size();
    const double p50 = bench::Percentile(s->ms, 0.5), p99 = bench::Percentile(s->ms, 0.99);
    const double mx = n ? *std::max_element(s->ms.begin(), s->ms.end()) : 0;
    std::printf("%s: %zu calls, %zu errors, p50 %.3f ms, p99 %.3f ms, max %.1f ms%s%s\n", name, n,
                s->errors, p50, p99, mx, s->errors ? "; first error: " : "",
                s->first_error.c_str());
  }
  return search.errors + upsert.errors == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("load_bench", [&] { return Main(argc, argv); });
}
