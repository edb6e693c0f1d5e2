// plugin_bench: what building i2i lists costs beside a plain batch kNN through the same index.
//
//   plugin_bench [--n 1000000] [--dim 64] [--k 50] [--updates 1000] [--out DIR]
//
// Synthetic items around 1,024 centres (inner product), bulk-loaded into an HNSW collection
// (M 16, efC 100, ef_search 100). Then, in the same run:
//   batch kNN   every item's k + 1 nearest through the collection's index (Engine::Search from
//               one thread per core): the floor for any i2i list build;
//   i2i_knn     the plugin's full run (k = L): read every item from RocksDB, the same searches,
//               and the lists written to RocksDB in one batch;
//   incremental --updates new items upserted, then the plugin's incremental run (their lists,
//               and their insertion into the lists they now belong to).
// Writes plugins.md and plugins.csv.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "base/main.h"
#include "base/version.h"
#include "bench/bench_util.h"
#include "engine/engine.h"

namespace {

namespace fs = std::filesystem;
using namespace quiver;
using bench::Check;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

int Main(int argc, char** argv) {
  size_t n = 1000000, updates = 1000;
  uint32_t dim = 64, k = 50;
  std::string out = "build/results", dir = "/tmp/quiver_plugin_bench";
  CLI::App app{"plugin_bench: i2i lists beside a batch kNN (see the header of plugin_bench.cc)"};
  app.add_option("--n", n, "items");
  app.add_option("--dim", dim);
  app.add_option("--k", k, "list length");
  app.add_option("--updates", updates, "new items before the incremental run");
  app.add_option("--out", out, "directory of plugins.md and plugins.csv");
  CLI11_PARSE(app, argc, argv);
  std::mt19937 rng(7);
  std::normal_distribution<float> g;
  const size_t centres = 1024;
  std::vector<float> centre(centres * dim);
  for (float& x : centre) x = g(rng);
  auto make = [&](size_t count, uint64_t first) {
    std::vector<ItemRecord> items(count);
    for (size_t i = 0; i < count; ++i) {
      items[i].id = first + i;
      const float* c = &centre[(rng() % centres) * dim];
      for (uint32_t d = 0; d < dim; ++d) items[i].vector.push_back(c[d] + 0.5f * g(rng));
    }
    return items;
  };
  std::vector<ItemRecord> items = make(n, 0);

  fs::remove_all(dir);
  engine::EngineOptions eo;
  eo.store.durability = storage::Durability::kNoSync;
  auto eng = Check(engine::Engine::Open(dir, eo), "open");
  CollectionSchema s;
  s.name = "items";
  s.dim = dim;
  s.metric = Metric::kInnerProduct;
  s.index.type = IndexSpec::Type::kHnsw;
  s.index.hnsw_m = 16;
  s.index.hnsw_ef_construction = 100;
  s.index.hnsw_ef_search = 100;
  auto t0 = Clock::now();
  Check(eng->BulkLoad(s, items), "bulk load");
  const double build_s = Seconds(t0);
  std::fprintf(stderr, "built %zu items in %.1f s\n", n, build_s);

  // Batch kNN: the same searches the plugin makes, without storage.
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  t0 = Clock::now();
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      index::SearchParams p;
      p.k = k + 1;
      p.ef = std::max<size_t>(100, k + 1);
      for (size_t i; (i = next++) < n;) Check(eng->Search("items", items[i].vector, p), "search");
    });
  }
  for (auto& t : pool) t.join();
  const double batch_s = Seconds(t0);
  std::fprintf(stderr, "batch kNN (k %u): %.1f s\n", k + 1, batch_s);

  const std::string config = "{\"k\":" + std::to_string(k) + "}";
  t0 = Clock::now();
  auto run = Check(eng->RunPlugin("items", "i2i_knn", config, false), "i2i_knn");
  const double plugin_s = Seconds(t0);
  std::fprintf(stderr, "i2i_knn full run: %.1f s, %llu lists\n", plugin_s,
               (unsigned long long)run.lists);

  auto fresh = make(updates, n);
  Check(eng->Upsert("items", fresh), "upsert");
  t0 = Clock::now();
  auto inc = Check(eng->RunPlugin("items", "i2i_knn", config, true), "i2i_knn incremental");
  const double inc_s = Seconds(t0);
  std::fprintf(
      stderr,
      "incremental run after %zu new items: %.2f s, %llu lists rewritten (incremental %d)\n",
      updates, inc_s, (unsigned long long)inc.lists, int(inc.incremental));

  fs::create_directories(out);
  std::ofstream csv(out + "/plugins.csv");
  csv << "n,dim,k,build_s,batch_knn_s,i2i_full_s,updates,i2i_incremental_s,lists_rewritten\n"
      << n << "," << dim << "," << k << "," << build_s << "," << batch_s << "," << plugin_s << ","
      << updates << "," << inc_s << "," << inc.lists << "\n";
  const std::string cmd = bench::CommandLine(argc, argv);
  std::ofstream md(out + "/plugins.md");
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "| step | seconds | per item |\n|---|---|---|\n"
                "| bulk load + HNSW build | %.1f | |\n"
                "| batch kNN, k %u, %u threads (Engine::Search) | %.1f | %.1f us |\n"
                "| i2i_knn full run, L %u (read, search, write lists) | %.1f | %.1f us |\n"
                "| i2i_knn incremental run after %zu new items (%llu lists rewritten) | %.2f | |\n",
                build_s, k + 1, threads, batch_s, batch_s * 1e6 / double(n), k, plugin_s,
                plugin_s * 1e6 / double(n), updates, (unsigned long long)inc.lists, inc_s);
  md << "# i2i lists for " << n << " items beside a plain batch kNN\n\nCommand: `" << cmd
     << "`  \nQuiver " << Version() << "; dim " << dim
     << ", inner product, HNSW M 16, efC 100, ef 100; " << threads
     << " cores, both runs in the same process.\n\n"
     << buf << "\nThe full run costs " << plugin_s / batch_s << "x the batch kNN.\n";
  fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("plugin_bench", [&] { return Main(argc, argv); });
}
