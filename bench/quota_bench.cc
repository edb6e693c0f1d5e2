// quota_bench: what a cluster-quota query costs beside one whole-collection search.
//
//   quota_bench --data /tmp/synth [--n 200000] [--nq 300] [--clusters 16] [--total 200]
//               [--temperature 1] [--efs 200,250,300,400,600,800] [--out DIR]
//
// Items get cluster ids from k-means (C clusters); the collection is bulk-built with HNSW
// (M 16, efC 200) and one sub-index per cluster. For each ef: (a) one top-`total` search of
// the global index, recall against the exact top-`total`; (b) a quota query (auto intent,
// total M), recall against the exact top-M_k of every cluster for the same quotas. Cost is read
// at equal recall: for each quota point, the global search's time at that recall (interpolated
// along its sweep). Writes quota.md and quota.csv to --out (default build/results).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "base/main.h"
#include "base/version.h"
#include "bench/ann/datasets.h"
#include "bench/bench_util.h"
#include "engine/engine.h"
#include "index/flat/flat_index.h"
#include "index/kmeans/kmeans.h"

namespace {

namespace fs = std::filesystem;
using namespace quiver;
using bench::Check;
using Clock = std::chrono::steady_clock;

struct Point {
  uint32_t ef;
  double recall, us_per_query;
};

// Time per query at `recall` along a sweep (linear between the two points around it).
double TimeAtRecall(const std::vector<Point>& sweep, double recall) {
  for (size_t i = 1; i < sweep.size(); ++i) {
    if (sweep[i].recall >= recall) {
      const Point& a = sweep[i - 1];
      const Point& b = sweep[i];
      if (b.recall <= a.recall) return b.us_per_query;
      const double t = std::clamp((recall - a.recall) / (b.recall - a.recall), 0.0, 1.0);
      return a.us_per_query + t * (b.us_per_query - a.us_per_query);
    }
  }
  return -1;  // the global sweep never reached that recall
}

int Main(int argc, char** argv) {
  std::string data = "/tmp/synth", out = "build/results";
  size_t n = 200000, nq = 300, clusters = 16;
  uint32_t total = 200;
  float temperature = 1.0f;
  std::vector<uint32_t> efs = {200, 250, 300, 400, 600, 800};
  CLI::App app{"quota_bench: cluster quotas against one global search (see quota_bench.cc)"};
  app.add_option("--data", data, "directory of base.fvecs and query.fvecs");
  app.add_option("--n", n, "items");
  app.add_option("--nq", nq, "queries");
  app.add_option("--clusters", clusters);
  app.add_option("--total", total, "M, results across clusters");
  app.add_option("--temperature", temperature, "of the automatic intent");
  app.add_option("--out", out, "directory of quota.md and quota.csv");
  app.add_option("--efs", efs, "ef sweep of the global search")->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  auto ds = Check(bench::LoadFvecsDir(data, "synth"), "loading data");
  n = std::min(n, ds.n);
  nq = std::min(nq, ds.nq);
  const size_t dim = ds.dim;
  ds.base.resize(n * dim);

  index::KMeansOptions ko;
  ko.k = clusters;
  ko.plus_plus_init = true;
  auto km = Check(index::TrainKMeans(ds.base, dim, ko), "k-means");
  std::vector<uint32_t> label(n);
  index::AssignNearest(ds.base.data(), n, km.centroids.data(), clusters, dim, label.data(), nullptr,
                       0);

  std::vector<ItemRecord> items(n);
  for (size_t i = 0; i < n; ++i) {
    items[i].id = i;
    items[i].cluster = label[i];
    items[i].vector.assign(ds.base.begin() + i * dim, ds.base.begin() + (i + 1) * dim);
  }
  const std::string dir = "/tmp/quiver_quota_bench";
  fs::remove_all(dir);
  auto e = Check(engine::Engine::Open(dir, {}), "open");
  CollectionSchema s;
  s.name = "q";
  s.dim = uint32_t(dim);
  s.clusters = uint32_t(clusters);
  const auto tb = Clock::now();
  Check(e->BulkLoad(s, items), "bulk load");
  std::fprintf(stderr, "built %zu items, %zu clusters in %.1f s\n", n, clusters,
               std::chrono::duration<double>(Clock::now() - tb).count());

  // Exact references: global top-total, and flat indexes per cluster for the quota references.
  index::FlatIndex flat(dim, Metric::kL2);
  std::vector<uint64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = i;
  if (!flat.Add(ids, ds.base).ok()) return 1;
  std::vector<std::unique_ptr<index::FlatIndex>> per(clusters);
  for (size_t k = 0; k < clusters; ++k) {
    per[k] = std::make_unique<index::FlatIndex>(dim, Metric::kL2);
    std::vector<uint64_t> kid;
    std::vector<float> kv;
    for (size_t i = 0; i < n; ++i) {
      if (label[i] != k) continue;
      kid.push_back(i);
      kv.insert(kv.end(), items[i].vector.begin(), items[i].vector.end());
    }
    if (!per[k]->Add(kid, kv).ok()) return 1;
  }
  items.clear();
  std::vector<std::set<uint64_t>> global_truth(nq), quota_truth(nq);
  for (size_t q = 0; q < nq; ++q) {
    std::vector<index::Neighbor> nb;
    const std::span<const float> query(&ds.queries[q * dim], dim);
    if (!flat.Search(query, {.k = total}, &nb).ok()) return 1;
    for (const auto& x : nb) global_truth[q].insert(x.id);
    QuerySpec spec;
    spec.vectors = {std::vector<float>(query.begin(), query.end())};
    spec.quota = QuotaSpec{{}, 1.0f, total, temperature};
    spec.ef = 4000;  // quotas do not depend on ef
    auto r = Check(e->Query("q", spec), "quota query");
    for (size_t k = 0; k < clusters; ++k) {
      if (r.quotas[k] == 0) continue;
      if (!per[k]->Search(query, {.k = r.quotas[k]}, &nb).ok()) return 1;
      for (const auto& x : nb) quota_truth[q].insert(x.id);
    }
  }

  std::vector<Point> global, quota;
  for (uint32_t ef : efs) {
    size_t hit = 0, want = 0;
    auto t0 = Clock::now();
    std::vector<std::vector<uint64_t>> got(nq);
    for (size_t q = 0; q < nq; ++q) {
      auto hits =
          Check(e->Search("q", {&ds.queries[q * dim], dim}, {.k = total, .ef = ef}), "search");
      for (const auto& h : hits) got[q].push_back(h.id);
    }
    const double tg =
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / double(nq);
    for (size_t q = 0; q < nq; ++q) {
      for (uint64_t id : got[q]) hit += global_truth[q].count(id);
      want += global_truth[q].size();
    }
    global.push_back({ef, double(hit) / double(want), tg});
    hit = want = 0;
    t0 = Clock::now();
    for (size_t q = 0; q < nq; ++q) {
      QuerySpec spec;
      spec.vectors = {std::vector<float>(&ds.queries[q * dim], &ds.queries[(q + 1) * dim])};
      spec.quota = QuotaSpec{{}, 1.0f, total, temperature};
      spec.ef = ef;
      auto r = Check(e->Query("q", spec), "quota query");
      got[q].clear();
      for (const auto& h : r.hits) got[q].push_back(h.id);
    }
    const double tq =
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / double(nq);
    for (size_t q = 0; q < nq; ++q) {
      for (uint64_t id : got[q]) hit += quota_truth[q].count(id);
      want += quota_truth[q].size();
    }
    quota.push_back({ef, double(hit) / double(want), tq});
    std::fprintf(stderr, "ef %4u: global recall %.4f %7.0f us | quota recall %.4f %7.0f us\n", ef,
                 global.back().recall, tg, quota.back().recall, tq);
  }
  fs::remove_all(dir);

  fs::create_directories(out);
  const std::string cmd = bench::CommandLine(argc, argv);
  std::ofstream md(out + "/quota.md"), csv(out + "/quota.csv");
  csv << "kind,ef,recall,us_per_query\n";
  md << "# Quota query cost: C = " << clusters << ", M = " << total << ", " << n << " x " << dim
     << " synthetic items, HNSW M 16 efC 200\n\nCommand: `" << cmd << "`  \nQuiver " << Version()
     << "; one thread issuing queries (a quota query's sub-searches run on the shared pool, 2 "
        "cores); "
     << nq << " queries; auto intent with temperature " << temperature << ".\n\n| ef | global top-"
     << total
     << " recall | us/query | quota recall | us/query | global us at the quota's recall | cost "
        "ratio |\n"
     << "|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < efs.size(); ++i) {
    csv << "global," << global[i].ef << "," << global[i].recall << "," << global[i].us_per_query
        << "\n";
    csv << "quota," << quota[i].ef << "," << quota[i].recall << "," << quota[i].us_per_query
        << "\n";
    const double at = TimeAtRecall(global, quota[i].recall);
    char line[256];
    if (at > 0) {
      std::snprintf(line, sizeof(line), "| %u | %.4f | %.0f | %.4f | %.0f | %.0f | %.2fx |\n",
                    efs[i], global[i].recall, global[i].us_per_query, quota[i].recall,
                    quota[i].us_per_query, at, quota[i].us_per_query / at);
    } else {
      std::snprintf(line, sizeof(line), "| %u | %.4f | %.0f | %.4f | %.0f | (not reached) | - |\n",
                    efs[i], global[i].recall, global[i].us_per_query, quota[i].recall,
                    quota[i].us_per_query);
    }
    md << line;
  }
  md << "\nTarget: a quota query costs at most 1.3x one whole-collection top-" << total
     << " search at the same recall.\n";
  md.close();
  std::ifstream back(out + "/quota.md");
  std::printf("%s", std::string(std::istreambuf_iterator<char>(back), {}).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("quota_bench", [&] { return Main(argc, argv); });
}
