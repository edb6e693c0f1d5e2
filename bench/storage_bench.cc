// storage_bench: what durability and bulk builds cost on top of the index.
//
//   storage_bench --vectors base.fvecs [--n 1000000] [--dir /tmp/qsb] [--m 16] [--efc 200]
//                 [--upserts 100000] [--out DIR]
//
// Measures, on the same vectors, in one run:
//   1. index build alone: HnswIndex::Add of every vector (the floor);
//   2. bulk build: Engine::BulkLoad (SST write and ingestion, the same index build, snapshot,
//      flush): overhead = bulk / index - 1;
//   3. restart from the snapshot, and restart with the snapshot removed (rebuild from items);
//   4. upsert throughput in batches of 1,000 items with synced WAL (the default), with
//      unsynced WAL, and the index's own Add in batches of 1,000 for reference.
// Writes storage.md and storage.csv to --out (default build/results).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/main.h"
#include "base/version.h"
#include "bench/bench_util.h"
#include "engine/engine.h"
#include "formats/bulk_input.h"
#include "index/hnsw/hnsw_index.h"
#include "index/simd/kernels.h"
#include "index/simd/simd_level.h"

namespace {

namespace fs = std::filesystem;
using namespace quiver;
using namespace quiver::engine;
using namespace quiver::formats;
using bench::Check;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Args {
  std::string vectors, dir = "/tmp/quiver_storage_bench", out = "build/results";
  size_t n = 1000000, m = 16, efc = 200, upserts = 100000;
};

CollectionSchema Schema(const Args& a, uint32_t dim) {
  CollectionSchema s;
  s.name = "bench";
  s.dim = dim;
  s.metric = index::Metric::kL2;
  s.index.type = IndexSpec::Type::kHnsw;
  s.index.hnsw_m = uint32_t(a.m);
  s.index.hnsw_ef_construction = uint32_t(a.efc);
  return s;
}

// Upserts the first `count` items in batches of 1,000 into a fresh engine; items per second.
double UpsertRate(const Args& a, const std::vector<ItemRecord>& items, size_t count,
                  storage::Durability d, const std::string& dir) {
  fs::remove_all(dir);
  EngineOptions o;
  o.store.durability = d;
  auto e = Check(Engine::Open(dir, o), "open");
  Check(e->CreateCollection(Schema(a, uint32_t(items[0].vector.size()))), "create");
  const auto t0 = Clock::now();
  for (size_t i = 0; i < count; i += 1000) {
    const size_t n = std::min<size_t>(1000, count - i);
    Check(e->Upsert("bench", std::span(items).subspan(i, n)).status(), "upsert");
  }
  return double(count) / Since(t0);
}

int Main(int argc, char** argv) {
  Args a;
  CLI::App app{"storage_bench: what durability and bulk builds cost (see storage_bench.cc)"};
  app.add_option("--vectors", a.vectors, "the vectors (.fvecs, .npy)")->required();
  app.add_option("--n", a.n, "items");
  app.add_option("--dir", a.dir, "scratch directory");
  app.add_option("--out", a.out, "directory of storage.md and storage.csv");
  app.add_option("--m", a.m, "HNSW M");
  app.add_option("--efc", a.efc, "HNSW ef_construction");
  app.add_option("--upserts", a.upserts, "items upserted one batch at a time");
  CLI11_PARSE(app, argc, argv);
  auto file = Check(ReadVectors(a.vectors), "reading vectors");
  const size_t n = std::min(a.n, file.n), dim = file.dim;
  file.data.resize(n * dim);
  file.n = n;
  std::vector<float> flat = file.data;
  auto items = Check(AssembleItems(std::move(file), {}), "assembling items");
  std::fprintf(stderr, "%zu x %zu vectors from %s\n", n, dim, a.vectors.c_str());
  fs::remove_all(a.dir);
  fs::create_directories(a.dir);

  // 1. The index alone.
  std::vector<uint64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = i;
  index::HnswOptions ho;
  ho.m = a.m;
  ho.ef_construction = a.efc;
  double t_index;
  size_t index_bytes;
  {
    auto idx = Check(index::HnswIndex::Create(dim, index::Metric::kL2, ho), "create index");
    const auto t0 = Clock::now();
    Check(idx->Add(ids, flat), "index add");
    t_index = Since(t0);
    index_bytes = idx->memory_bytes();
  }
  std::fprintf(stderr, "index alone: %.1f s\n", t_index);

  // 2. Bulk build.
  const std::string v1 = a.dir + "/v1";
  double t_bulk;
  {
    auto e = Check(Engine::Open(v1, {}), "open");
    const auto t0 = Clock::now();
    Check(e->BulkLoad(Schema(a, uint32_t(dim)), items).status(), "bulk load");
    t_bulk = Since(t0);
  }
  std::fprintf(stderr, "bulk build: %.1f s\n", t_bulk);

  // 3. Restarts.
  double t_restart_snapshot, t_restart_rebuild;
  {
    const auto t0 = Clock::now();
    auto e = Check(Engine::Open(v1, {}), "restart");
    t_restart_snapshot = Since(t0);
    if (Check(e->DescribeCollection("bench"), "describe").snapshot_seq == 0) {
      std::fprintf(stderr, "storage_bench: the restart did not use the snapshot\n");
      return 1;
    }
  }
  fs::remove_all(v1 + "/snapshots");
  {
    const auto t0 = Clock::now();
    auto e = Check(Engine::Open(v1, {}), "restart without snapshot");
    t_restart_rebuild = Since(t0);
  }
  std::fprintf(stderr, "restart: %.1f s from the snapshot, %.1f s rebuilding\n", t_restart_snapshot,
               t_restart_rebuild);
  fs::remove_all(v1);

  // 4. Upserts.
  const size_t up = std::min(a.upserts, n);
  double index_rate;
  {
    auto idx = Check(index::HnswIndex::Create(dim, index::Metric::kL2, ho), "create index");
    const auto t0 = Clock::now();
    for (size_t i = 0; i < up; i += 1000) {
      const size_t b = std::min<size_t>(1000, up - i);
      Check(idx->Add(std::span(ids).subspan(i, b), std::span(flat).subspan(i * dim, b * dim)),
            "index add");
    }
    index_rate = double(up) / Since(t0);
  }
  const double sync_rate = UpsertRate(a, items, up, storage::Durability::kSync, a.dir + "/up_sync");
  const double nosync_rate =
      UpsertRate(a, items, up, storage::Durability::kNoSync, a.dir + "/up_nosync");
  std::fprintf(stderr, "upserts: %.0f items/s synced, %.0f unsynced, index alone %.0f\n", sync_rate,
               nosync_rate, index_rate);
  fs::remove_all(a.dir);

  fs::create_directories(a.out);
  const std::string cmd = bench::CommandLine(argc, argv);
  std::ofstream csv(a.out + "/storage.csv");
  csv << "measure,value,unit\n"
      << "index_build," << t_index << ",s\n"
      << "bulk_build," << t_bulk << ",s\n"
      << "bulk_overhead," << (t_bulk / t_index - 1) * 100 << ",%\n"
      << "restart_snapshot," << t_restart_snapshot << ",s\n"
      << "restart_rebuild," << t_restart_rebuild << ",s\n"
      << "upsert_sync," << sync_rate << ",items/s\n"
      << "upsert_nosync," << nosync_rate << ",items/s\n"
      << "index_add_1000," << index_rate << ",items/s\n";
  std::ofstream md(a.out + "/storage.md");
  char buf[2048];
  std::snprintf(
      buf, sizeof(buf),
      "# Storage benchmark (%zu x %zu, HNSW M %zu, efC %zu)\n\n"
      "Command: `%s`  \nQuiver %s, SIMD %s, 2 cores.\n\n"
      "| measure | value |\n|---|---|\n"
      "| index build alone (HnswIndex::Add of all items) | %.1f s |\n"
      "| bulk build (SST ingestion + the same index build + snapshot + flush) | %.1f s |\n"
      "| **storage overhead of the bulk build** | **%.1f%%** (target <= 20%%) |\n"
      "| index memory | %.0f MB |\n"
      "| restart from the snapshot | %.1f s |\n"
      "| restart rebuilding from the stored items | %.1f s |\n"
      "| upsert, batches of 1,000, synced WAL (default) | %.0f items/s |\n"
      "| upsert, batches of 1,000, unsynced WAL | %.0f items/s |\n"
      "| HnswIndex::Add alone, batches of 1,000 | %.0f items/s |\n\n"
      "Upserts: the first %zu items into an empty collection.\n",
      n, dim, a.m, a.efc, cmd.c_str(), std::string(Version()).c_str(),
      std::string(simd::SimdLevelName(simd::GetKernels().level)).c_str(), t_index, t_bulk,
      (t_bulk / t_index - 1) * 100, double(index_bytes) / 1e6, t_restart_snapshot,
      t_restart_rebuild, sync_rate, nosync_rate, index_rate, up);
  md << buf;
  std::printf("%s", buf);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("storage_bench", [&] { return Main(argc, argv); });
}
