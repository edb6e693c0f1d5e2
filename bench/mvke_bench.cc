// mvke_bench: MVKE retrieval against exact MVKE, beside a single-vector search of the same
// collection.
//
//   mvke_bench [--n 100000] [--dim 64] [--topics 4] [--nq 200] [--threshold 0.02]
//              [--index hnsw|ivf_pq] [--out DIR]
//
// Synthetic data with structure: item vectors t around 256 centres; topic weights
// alpha = softmax(t . kernel_k / tau) over K random "virtual kernels" (as MVKE computes them);
// each user has one vector per topic, near a centre of their own. The collection is HNSW
// (M 16, efC 200, inner product) with K topic sub-indexes and the concat index; with --index
// ivf_pq it is IVF-PQ (nlist 1024, 4-bit codes, m = dim / 2, float32 refine rows) with the K
// (HNSW) topic sub-indexes and no concat index, and the weighted scan is measured too
// (ivf_pq_mvke.md / .csv). The ef column is nprobe for IVF-PQ rows.
// For each strategy and setting: recall@100 against the exact top-100 of
// score(i) = sum_k alpha_ik (u_k . t_i) (brute force), wall time and CPU time per query (queries
// one at a time; a query's sub-searches run on the engine's pool over both cores). Baseline: one
// single-vector top-100 search of the global index (u_1, ef 100). Writes mvke.md and mvke.csv.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>

#include "base/main.h"
#include "base/version.h"
#include "bench/bench_util.h"
#include "engine/engine.h"

namespace {

namespace fs = std::filesystem;
using namespace quiver;
using bench::Check;
using bench::CpuSeconds;
using Clock = std::chrono::steady_clock;

struct Args {
  size_t n = 100000, nq = 200;
  uint32_t dim = 64, topics = 4;
  float threshold = 0.02f;
  std::string index = "hnsw", out = "build/results", dir = "/tmp/quiver_mvke_bench";
};

struct Row {
  std::string strategy;
  uint32_t ef, candidates;
  double recall, wall_us, cpu_us;
};

int Main(int argc, char** argv) {
  Args a;
  CLI::App app{"mvke_bench: MVKE retrieval against exact MVKE (see the header of mvke_bench.cc)"};
  app.add_option("--n", a.n, "items");
  app.add_option("--dim", a.dim);
  app.add_option("--topics", a.topics);
  app.add_option("--nq", a.nq, "users");
  app.add_option("--threshold", a.threshold, "topic threshold");
  app.add_option("--out", a.out, "directory of mvke.md and mvke.csv");
  app.add_option("--index", a.index)->check(CLI::IsMember({"hnsw", "ivf_pq"}));
  CLI11_PARSE(app, argc, argv);
  const bool ivf = a.index == "ivf_pq";
  const uint32_t dim = a.dim, kt = a.topics;
  const size_t centres = 256;
  std::mt19937 rng(42);
  std::normal_distribution<float> g;
  std::vector<float> centre(centres * dim);
  for (float& x : centre) x = g(rng);
  std::vector<float> kernel(size_t(kt) * dim);
  for (float& x : kernel) x = g(rng);
  const float tau = std::sqrt(float(dim)) / 2;  // alpha neither uniform nor one-hot
  std::vector<ItemRecord> items(a.n);
  for (size_t i = 0; i < a.n; ++i) {
    ItemRecord& it = items[i];
    it.id = i;
    const float* c = &centre[(rng() % centres) * dim];
    it.vector.resize(dim);
    for (uint32_t d = 0; d < dim; ++d) it.vector[d] = c[d] + 0.5f * g(rng);
    std::vector<double> l(kt);
    double top = -1e30, sum = 0;
    for (uint32_t k = 0; k < kt; ++k) {
      double dot = 0;
      for (uint32_t d = 0; d < dim; ++d) dot += double(it.vector[d]) * kernel[k * dim + d];
      top = std::max(top, l[k] = dot / tau);
    }
    for (double& x : l) sum += (x = std::exp(x - top));
    float s = 0;
    for (uint32_t k = 0; k < kt; ++k) {
      it.topic_weights.push_back(k + 1 < kt ? float(l[k] / sum) : std::max(0.0f, 1.0f - s));
      s += it.topic_weights.back();
    }
  }
  // Users: one vector per topic, each near a centre of its own.
  std::vector<std::vector<std::vector<float>>> users(
      a.nq, std::vector<std::vector<float>>(kt, std::vector<float>(dim)));
  for (auto& u : users) {
    for (auto& v : u) {
      const float* c = &centre[(rng() % centres) * dim];
      for (uint32_t d = 0; d < dim; ++d) v[d] = c[d] + 0.5f * g(rng);
    }
  }
  // Exact MVKE top-100 per user.
  const size_t topn = 100;
  std::vector<std::set<uint64_t>> truth(a.nq);
  for (size_t q = 0; q < a.nq; ++q) {
    std::vector<std::pair<double, uint64_t>> all(a.n);
    for (size_t i = 0; i < a.n; ++i) {
      double s = 0;
      for (uint32_t k = 0; k < kt; ++k) {
        double dot = 0;
        for (uint32_t d = 0; d < dim; ++d) dot += double(users[q][k][d]) * items[i].vector[d];
        s += items[i].topic_weights[k] * dot;
      }
      all[i] = {s, i};
    }
    std::partial_sort(all.begin(), all.begin() + topn, all.end(), std::greater<>());
    for (size_t i = 0; i < topn; ++i) truth[q].insert(all[i].second);
  }
  std::fprintf(stderr, "exact MVKE top-%zu for %zu users computed\n", topn, a.nq);

  fs::remove_all(a.dir);
  engine::EngineOptions eo;
  eo.store.durability = storage::Durability::kNoSync;
  auto eng = Check(engine::Engine::Open(a.dir, eo), "open");
  CollectionSchema s;
  s.name = "mvke";
  s.dim = dim;
  s.metric = Metric::kInnerProduct;
  s.index.type = ivf ? IndexSpec::Type::kIvfPq : IndexSpec::Type::kHnsw;
  s.index.hnsw_m = 16;
  s.index.hnsw_ef_construction = 200;
  s.index.ivf_nlist = 1024;
  s.index.ivf_m = dim / 2;
  s.index.ivf_nbits = 4;
  s.index.ivf_refine = 4;
  s.topics = kt;
  s.topic_threshold = a.threshold;
  s.topic_concat = !ivf;
  const auto b0 = Clock::now();
  Check(eng->BulkLoad(s, items), "bulk load");
  const double build_s = std::chrono::duration<double>(Clock::now() - b0).count();
  std::fprintf(stderr, "built in %.1f s\n", build_s);

  std::vector<Row> rows;
  auto run = [&](const std::string& name, uint32_t ef, uint32_t cand, auto one) {
    double recall = 0;
    for (size_t q = 0; q < std::min<size_t>(20, a.nq); ++q) one(q);  // warm
    const double c0 = CpuSeconds();
    const auto t0 = Clock::now();
    for (size_t q = 0; q < a.nq; ++q) {
      const std::vector<uint64_t> got = one(q);
      size_t hit = 0;
      for (uint64_t id : got) hit += truth[q].count(id);
      recall += double(hit) / double(topn) / double(a.nq);
    }
    const double wall =
        std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / double(a.nq);
    const double cpu = (CpuSeconds() - c0) * 1e6 / double(a.nq);
    rows.push_back({name, ef, cand, recall, wall, cpu});
    std::fprintf(stderr, "%-10s ef %4u cand %4u  recall@100 %.3f  %8.0f us wall  %8.0f us cpu\n",
                 name.c_str(), ef, cand, recall, wall, cpu);
  };
  for (uint32_t ef : ivf ? std::vector<uint32_t>{16, 32, 64} : std::vector<uint32_t>{100, 200}) {
    run("single", ef, 0, [&](size_t q) {
      index::SearchParams sp{.k = topn};
      (ivf ? sp.nprobe : sp.ef) = ef;
      auto hits = Check(eng->Search("mvke", users[q][0], sp), "search");
      std::vector<uint64_t> ids;
      ids.reserve(hits.size());
      for (const Hit& h : hits) ids.push_back(h.id);
      return ids;
    });
  }
  auto mvke = [&](MvkeStrategy st, uint32_t ef, uint32_t cand, uint32_t max_cand = 0) {
    return [&, st, ef, cand, max_cand](size_t q) {
      QuerySpec spec;
      spec.k = topn;
      (ivf ? spec.nprobe : spec.ef) = ef;
      spec.mvke = MvkeSpec{users[q], st, cand, max_cand};
      auto r = Check(eng->Query("mvke", spec), "query");
      std::vector<uint64_t> ids;
      for (const auto& h : r.hits) ids.push_back(h.id);
      return ids;
    };
  };
  if (ivf) {
    for (uint32_t nprobe : {16u, 32u, 48u, 64u}) {
      for (uint32_t cand : {200u, 400u}) {
        run("weighted_scan", nprobe, cand, mvke(MvkeStrategy::kWeightedScan, nprobe, cand));
      }
    }
    // The topic sub-indexes are HNSW even here (ef = candidates); rescore uses the IVF-PQ.
    for (uint32_t cand : {100u, 300u}) {
      run("per_topic", cand, cand, [&, cand](size_t q) {
        QuerySpec spec;
        spec.k = topn;
        spec.ef = cand;
        spec.mvke = MvkeSpec{users[q], MvkeStrategy::kPerTopic, cand, 0};
        std::vector<uint64_t> ids;
        for (const auto& h : Check(eng->Query("mvke", spec), "query").hits) ids.push_back(h.id);
        return ids;
      });
    }
    for (uint32_t cand : {200u, 400u})
      run("rescore", 32, cand, mvke(MvkeStrategy::kRescore, 32, cand));
  } else {
    for (uint32_t cand : {100u, 150u, 200u, 300u}) {
      run("per_topic", cand, cand, mvke(MvkeStrategy::kPerTopic, cand, cand));
    }
    run("per_topic+TA", 100, 100, mvke(MvkeStrategy::kPerTopic, 100, 100, 800));
    for (uint32_t cand : {100u, 200u, 400u, 800u})
      run("concat", cand, cand, mvke(MvkeStrategy::kConcat, cand, cand));
    for (uint32_t cand : {100u, 200u, 400u})
      run("rescore", cand, cand, mvke(MvkeStrategy::kRescore, cand, cand));
  }

  fs::create_directories(a.out);
  const std::string stem = ivf ? "/ivf_pq_mvke" : "/mvke";
  std::ofstream csv(a.out + stem + ".csv");
  csv << "strategy,ef_or_nprobe,candidates,recall_at_100,wall_us,cpu_us\n";
  for (const Row& r : rows)
    csv << r.strategy << "," << r.ef << "," << r.candidates << "," << r.recall << "," << r.wall_us
        << "," << r.cpu_us << "\n";
  const std::string cmd = bench::CommandLine(argc, argv);
  const Row& base = rows[0];
  std::ofstream md(a.out + stem + ".md");
  md << "# MVKE retrieval vs exact MVKE: " << a.n << " items, dim " << dim << ", K = " << kt
     << " topics, threshold " << a.threshold << "\n\nCommand: `" << cmd << "`  \nQuiver "
     << Version() << "; "
     << (ivf ? "IVF-PQ nlist 1024, 4-bit, m = dim/2, float32 refine x4" : "HNSW M 16, efC 200")
     << ", inner product; " << a.nq << " users, queries one at a time; build (global + " << kt
     << " topic indexes" << (ivf ? "" : " + concat") << ") " << int(build_s)
     << " s.\nRatios are to the single-vector top-100 search at " << (ivf ? "nprobe 16" : "ef 100")
     << " (" << int(base.wall_us) << " us wall).\n\n"
     << "| strategy | " << (ivf ? "nprobe (ef for per_topic)" : "ef")
     << " | candidates | recall@100 | wall us | cpu us | wall / single "
        "|\n|---|---|---|---|---|---|---|\n";
  char buf[256];
  for (const Row& r : rows) {
    std::snprintf(buf, sizeof(buf), "| %s | %u | %u | %.3f | %.0f | %.0f | %.2fx |\n",
                  r.strategy.c_str(), r.ef, r.candidates, r.recall, r.wall_us, r.cpu_us,
                  r.wall_us / base.wall_us);
    md << buf;
  }
  fs::remove_all(a.dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("mvke_bench", [&] { return Main(argc, argv); });
}
