// ann_bench: recall@10 / QPS sweeps of Quiver's indexes against peers compiled into the same
// binary, on one thread, one query at a time (the serving pattern of a recommendation service).
//
//   ann_bench --dataset fashion-mnist|NAME [--data DIR] [--metric l2|ip] [--out DIR] [--libs a,..]
//             [--efs 10,20,..] [--reps 3] [--threads 2] [--m 16] [--efc 200] [--nq N]
//             [--nprobes 1,2,..] [--nlist 256] [--pq-m M] [--refine 4[,6,..]] [--index-dir DIR]
//             [--query-noise F]  (queries + N(0, (F std_j)^2): out of the items' distribution)
//             [--search-threads N]  (throughput: N threads searching at once, every library)
//             [--filter-selectivity S]  (filtered search: a filter passing the share S of items)
// Libraries: quiver-hnsw-sq8, quiver-hnsw, quiver-ivfpq4, quiver-ivfpq8 (float32 refine),
// quiver-ivfpq4-int8, quiver-ivfpq8-int8 (int8 refine store), hnswlib, and
// faiss:<index_factory string with '+' for ','> (Debian's FAISS, or its AVX2 build with
// -DQUIVER_FAISS_AVX2: bench/faiss_avx2.sh), e.g. faiss:IVF256+PQ196x4fs+RFlat.
// A data set other than fashion-mnist is DIR's base.fvecs and query.fvecs (bench/data/
// gen_synth.py makes them), named NAME in the results.
//
// Writes <out>/ann-<dataset>.csv (library,index,params,build_s,recall_at_10,qps,memory_mb) and
// <out>/ann-<dataset>.md (QPS ratio Quiver/hnswlib at recall@10 0.90/0.95/0.99, Quiver's best
// against the best peer at each, command, CPU),
// and prints the markdown.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/large_buffer.h"
#include "base/main.h"
#include "base/version.h"
#include "bench/ann/datasets.h"
#include "bench/ann/peer.h"
#include "bench/bench_util.h"
#include "bench/read_bandwidth.h"
#include "index/flat/flat_index.h"
#include "index/hnsw/hnsw_index.h"
#include "index/index_factory.h"
#include "index/ivf/ivf_pq_index.h"
#include "index/simd/kernels.h"

namespace quiver::bench {
namespace {

index::Metric MetricOf(const Dataset& ds) {
  return ds.inner_product ? index::Metric::kInnerProduct : index::Metric::kL2;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Args {
  std::string dataset = "fashion-mnist";
  bool inner_product = false;  // --metric ip
  std::string data_dir;
  std::string out_dir = "bench/results";
  std::string cache_dir;
  std::string index_dir;  // reuse Quiver indexes saved here by an earlier run
  std::vector<std::string> libs = {"quiver-hnsw-sq8", "quiver-hnsw", "hnswlib"};
  std::vector<size_t> efs = {10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512};
  std::vector<size_t> nprobes = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
  size_t nlist = 256;
  size_t pq_m = 0;                    // 0: dim / 4 (4-bit) or dim / 14-ish (8-bit): see PqM()
  std::vector<size_t> refines = {4};  // IVF: each value is swept (one contender per value)
  size_t refine = 4;                  // the first of refines: peers' refine factor
  int reps = 3;
  int threads = 2;
  size_t m = 16;
  size_t efc = 200;
  size_t nq = 0;
  bool flat = true;
  // Out-of-distribution queries: each query plus Gaussian noise of this fraction of the
  // base's per-dimension standard deviation (seeded; the ground truth is of the noisy queries).
  double query_noise = 0;
  int search_threads = 1;  // throughput mode: searches in flight at once
  // Filtered search: the share of items a filter passes (0: no filter). The allowed items are a
  // fixed pseudo-random subset; the ground truth is the exact top 10 among them.
  double filter_selectivity = 0;
  std::shared_ptr<const std::vector<uint64_t>> allowed;  // bit i: item i passes (set by Main)
  std::string command;
};

// Flags as the header says; lists are comma-separated.
int ParseArgs(int argc, char** argv, Args* a) {
  a->command = CommandLine(argc, argv);
  CLI::App app{"ann_bench: recall@10 / QPS sweeps against peers (see the header of ann_bench.cc)"};
  app.add_option("--dataset", a->dataset,
                 "fashion-mnist, or the name of the set in --data (letters, digits, '-', '_')")
      ->check([](const std::string& name) {
        const bool ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        });
        return ok ? std::string() : "a data set name is letters, digits, '-' and '_'";
      });
  std::string metric = "l2";
  app.add_option("--metric", metric, "l2, or ip (inner product, largest first)")
      ->check(CLI::IsMember({"l2", "ip"}));
  app.add_option("--data", a->data_dir, "the dataset's directory");
  app.add_option("--out", a->out_dir, "directory of the .md and .csv");
  app.add_option("--cache", a->cache_dir, "ground truth cache (default ~/.cache/quiver)");
  app.add_option("--index-dir", a->index_dir, "reuse indexes saved here by an earlier run");
  app.add_option("--libs", a->libs)->delimiter(',');
  app.add_option("--efs", a->efs, "HNSW ef sweep")->delimiter(',');
  app.add_option("--nprobes", a->nprobes, "IVF nprobe sweep")->delimiter(',');
  app.add_option("--nlist", a->nlist);
  app.add_option("--pq-m", a->pq_m, "PQ sub-quantisers (0: from dim)");
  app.add_option("--refine", a->refines,
                 "IVF refine factors, one contender each (FAISS with RFlat too)")
      ->delimiter(',');
  app.add_option("--reps", a->reps, "passes; QPS is their median");
  app.add_option("--threads", a->threads, "build threads");
  app.add_option("--m", a->m, "HNSW M");
  app.add_option("--efc", a->efc, "HNSW ef_construction");
  app.add_option("--nq", a->nq, "queries (0: all)");
  app.add_flag("!--no-flat", a->flat, "skip the flat-scan bandwidth line");
  app.add_option("--search-threads", a->search_threads,
                 "throughput mode: this many threads search at once, each one query at a time "
                 "(every library alike); QPS is the whole's")
      ->check(CLI::Range(1, 256));
  app.add_option("--filter-selectivity", a->filter_selectivity,
                 "filtered search: a filter passing this share of the items (Quiver's filters, "
                 "FAISS's IDSelectorBitmap, hnswlib post-filtering: Debian's 0.6.2 has no filter "
                 "functor)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--query-noise", a->query_noise,
                 "add Gaussian noise of this fraction of each dimension's std to the queries "
                 "(queries out of the items' distribution)")
      ->check(CLI::Range(0.0, 100.0));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  a->inner_product = metric == "ip";
  if (a->refines.empty()) a->refines = {0};
  a->refine = a->refines.front();
  if (a->cache_dir.empty()) {
    const char* home = std::getenv("HOME");
    a->cache_dir = std::string(home ? home : "/tmp") + "/.cache/quiver";
  }
  return -1;
}

struct Row {
  std::string library, index, params;
  double build_s, recall, qps, memory_mb;
};

std::string CpuName() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

double RecallAt10(const Dataset& ds, size_t q, const int64_t* found, size_t nfound) {
  size_t hit = 0;
  for (size_t i = 0; i < nfound; ++i) {
    for (size_t j = 0; j < 10; ++j) {
      if (ds.truth[q * ds.truth_k + j] == found[i]) {
        ++hit;
        break;
      }
    }
  }
  return hit / 10.0;
}

// One library under test, built and ready: how to search it at each setting of its knob.
struct Contender {
  std::string library, index_kind, params, knob_name;
  double build_s = 0, memory_mb = 0;
  std::vector<size_t> knobs;
  // Sets the knob (before a pass) and searches one query; returns ids found.
  std::function<void(size_t knob)> set_knob;
  std::function<size_t(const float* q, size_t knob, int64_t* found)> search;
  std::shared_ptr<void> owner;  // keeps the index alive
};

// One pass of all queries; returns (recall@10, QPS). With threads > 1 (throughput mode), that
// many threads take the queries from one counter, each one at a time: QPS of the whole.
std::pair<double, double> Pass(const Dataset& ds, size_t nq, Contender& c, size_t knob,
                               int threads = 1) {
  c.set_knob(knob);
  std::atomic<size_t> next{0};
  std::vector<double> sums(size_t(std::max(1, threads)), 0.0);
  auto work = [&](size_t t) {
    int64_t ids[10];
    for (size_t q = next.fetch_add(1); q < nq; q = next.fetch_add(1)) {
      const size_t n = c.search(&ds.queries[q * ds.dim], knob, ids);
      sums[t] += RecallAt10(ds, q, ids, n);
    }
  };
  const double t0 = Now();
  std::vector<std::thread> pool;
  for (size_t t = 1; t < sums.size(); ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& t : pool) t.join();
  const double took = Now() - t0;
  double sum = 0;
  for (double s : sums) sum += s;
  return {sum / nq, nq / took};
}

// Every contender is built before any is timed; then each repetition sweeps all of them in
// turn, so slow drifts of the machine (this is a shared VM) fall on every library alike.
// QPS per (library, knob) is the median over repetitions.
void Measure(const Dataset& ds, const Args& a, std::vector<Contender>& contenders,
             std::vector<Row>* rows) {
  const size_t nq = a.nq ? std::min(a.nq, ds.nq) : ds.nq;
  std::vector<std::vector<std::vector<double>>> qps(contenders.size());
  std::vector<std::vector<double>> recall(contenders.size());
  for (size_t c = 0; c < contenders.size(); ++c) {
    qps[c].resize(contenders[c].knobs.size());
    recall[c].resize(contenders[c].knobs.size());
  }
  for (int r = 0; r < std::max(1, a.reps); ++r) {
    for (size_t c = 0; c < contenders.size(); ++c) {
      for (size_t k = 0; k < contenders[c].knobs.size(); ++k) {
        auto [rec, q] = Pass(ds, nq, contenders[c], contenders[c].knobs[k], a.search_threads);
        recall[c][k] = rec;
        qps[c][k].push_back(q);
      }
    }
    std::fprintf(stderr, "repetition %d of %d done\n", r + 1, std::max(1, a.reps));
  }
  for (size_t c = 0; c < contenders.size(); ++c) {
    const Contender& ct = contenders[c];
    std::fprintf(stderr, "%s %s (built in %.1f s):\n", ct.library.c_str(), ct.params.c_str(),
                 ct.build_s);
    for (size_t k = 0; k < ct.knobs.size(); ++k) {
      std::vector<double>& v = qps[c][k];
      std::sort(v.begin(), v.end());
      const double median = v[v.size() / 2];
      std::fprintf(stderr, "  %s %4zu  recall %.4f  qps %8.0f\n", ct.knob_name.c_str(), ct.knobs[k],
                   recall[c][k], median);
      rows->push_back({ct.library, ct.index_kind,
                       ct.params + " " + ct.knob_name + "=" + std::to_string(ct.knobs[k]),
                       ct.build_s, recall[c][k], median, ct.memory_mb});
    }
  }
}

std::vector<uint64_t> Ids(size_t n) {
  std::vector<uint64_t> ids(n);
  for (size_t i = 0; i < n; ++i) ids[i] = i;
  return ids;
}

// Wraps a Quiver index; `make_params` turns the knob into SearchParams.
Contender QuiverContender(const std::shared_ptr<index::VectorIndex>& index, const Dataset& ds,
                          const Args& a,
                          const std::function<index::SearchParams(size_t)>& make_params) {
  Contender c;
  c.set_knob = [](size_t) {};
  std::shared_ptr<index::BitsetSelector> filter;
  if (a.allowed) filter = std::make_shared<index::BitsetSelector>(a.allowed->data(), ds.n);
  c.search = [index, make_params, filter, allowed = a.allowed, dim = ds.dim](
                 const float* q, size_t knob, int64_t* found) {
    thread_local std::vector<index::Neighbor> out;  // --search-threads: one per thread
    index::SearchParams p = make_params(knob);
    p.filter = filter.get();
    (void)index->Search({q, dim}, p, &out);
    for (size_t i = 0; i < out.size(); ++i) found[i] = int64_t(out[i].id);
    return out.size();
  };
  c.memory_mb = index->memory_bytes() / 1048576.0;
  c.owner = index;
  return c;
}

Contender BuildQuiverHnsw(const Dataset& ds, const Args& a, const std::string& lib) {
  index::HnswOptions o;
  o.m = a.m;
  o.ef_construction = a.efc;
  o.build_threads = a.threads;
  o.quantization =
      lib == "quiver-hnsw-sq8" ? index::HnswQuantization::kSq8 : index::HnswQuantization::kNone;
  std::shared_ptr<index::VectorIndex> index;
  double build = 0;
  // --index-dir: reuse an index saved by an earlier run with the same parameters (for search
  // tuning); its build time is read back from the side file.
  const std::string saved = a.index_dir.empty()
                                ? ""
                                : a.index_dir + "/" + ds.name + "-" + lib + "-m" +
                                      std::to_string(a.m) + "-efc" + std::to_string(a.efc) + ".qvi";
  if (!saved.empty()) {
    auto loaded = index::LoadIndex(saved);
    std::ifstream side(saved + ".build_s");
    if (loaded.ok() && (side >> build)) {
      index = std::move(loaded).value();
      std::fprintf(stderr, "%s: loaded %s (built in %.1f s)\n", lib.c_str(), saved.c_str(), build);
    }
  }
  if (!index) {
    index = std::move(index::HnswIndex::Create(ds.dim, MetricOf(ds), o)).value();
    const double t0 = Now();
    Status s = index->Add(Ids(ds.n), ds.base);
    build = Now() - t0;
    QV_CHECK(s.ok()) << s.ToString();
    std::fprintf(stderr, "%s: built in %.1f s\n", lib.c_str(), build);
    if (!saved.empty() && index->Save(saved).ok()) std::ofstream(saved + ".build_s") << build;
  }
  Contender c = QuiverContender(index, ds, a,
                                [](size_t ef) { return index::SearchParams{.k = 10, .ef = ef}; });
  c.library = lib;
  c.index_kind = "hnsw";
  c.params = "M=" + std::to_string(a.m) + " efC=" + std::to_string(a.efc);
  c.knob_name = "ef";
  c.knobs = a.efs;
  c.build_s = build;
  return c;
}

// PQ sub-quantisers: 4-bit codes with 4 components per sub-vector (FAISS's fast-scan setting
// for Fashion-MNIST: m 196), 8-bit with 14 (m 56), unless --pq-m says otherwise.
size_t PqM(const Args& a, size_t dim, size_t nbits) {
  if (a.pq_m) return a.pq_m;
  const size_t want = nbits == 4 ? 4 : 14;
  for (size_t dsub = want; dsub > 0; --dsub) {
    if (dim % dsub == 0) return dim / dsub;
  }
  return dim;
}

// One index, one contender per refine factor (they share the index).
std::vector<Contender> BuildIvf(const Dataset& ds, const Args& a, const std::string& lib) {
  index::IvfPqOptions o;
  o.nlist = a.nlist;
  o.nbits = lib.rfind("quiver-ivfpq4", 0) == 0 ? 4 : 8;
  o.m = PqM(a, ds.dim, o.nbits);
  o.threads = a.threads;
  o.refine = a.refine;
  const size_t max_refine = *std::max_element(a.refines.begin(), a.refines.end());
  o.refine_store = max_refine == 0 ? index::RefineStore::kNone
                   : lib.size() > 5 && lib.substr(lib.size() - 5) == "-int8"
                       ? index::RefineStore::kInt8
                       : index::RefineStore::kFloat32;
  std::shared_ptr<index::VectorIndex> index =
      std::move(index::IvfPqIndex::Create(ds.dim, MetricOf(ds), o)).value();
  const double t0 = Now();
  Status s = index->Add(Ids(ds.n), ds.base);
  const double build = Now() - t0;
  QV_CHECK(s.ok()) << s.ToString();
  std::fprintf(stderr, "%s (nlist %zu, m %zu, %zu-bit): trained and added in %.1f s\n", lib.c_str(),
               o.nlist, o.m, o.nbits, build);
  std::vector<Contender> out;
  for (size_t refine : a.refines) {
    Contender c = QuiverContender(index, ds, a, [refine](size_t nprobe) {
      return index::SearchParams{.k = 10, .nprobe = nprobe, .refine = refine};
    });
    c.library = lib;
    c.index_kind = "ivf_pq";
    char params[128];
    std::snprintf(params, sizeof(params), "nlist=%zu m=%zu nbits=%zu refine=%zu", o.nlist, o.m,
                  o.nbits, refine);
    c.params = params;
    c.knob_name = "nprobe";
    for (size_t nprobe : a.nprobes) {
      if (nprobe <= o.nlist) c.knobs.push_back(nprobe);
    }
    c.build_s = build;
    out.push_back(std::move(c));
  }
  return out;
}

// One contender, or for an index with a refine stage one per --refine value (sharing the index,
// as Quiver's IVF contenders do).
std::vector<Contender> BuildPeer(const Dataset& ds, const Args& a,
                                 const std::shared_ptr<PeerIndex>& peer) {
  const std::string saved = a.index_dir.empty()
                                ? ""
                                : a.index_dir + "/" + ds.name + "-" + peer->name() + "-m" +
                                      std::to_string(a.m) + "-efc" + std::to_string(a.efc) + ".bin";
  double build = 0;
  std::ifstream side(saved + ".build_s");
  if (!saved.empty() && (side >> build) && peer->Load(saved, ds.n)) {
    std::fprintf(stderr, "%s: loaded %s (built in %.1f s)\n", peer->name().c_str(), saved.c_str(),
                 build);
  } else {
    const double t0 = Now();
    peer->Build(ds.base.data(), ds.n, a.threads);
    build = Now() - t0;
    std::fprintf(stderr, "%s: built in %.1f s\n", peer->name().c_str(), build);
    if (!saved.empty() && peer->Save(saved)) std::ofstream(saved + ".build_s") << build;
  }
  Contender c;
  c.library = peer->name();
  const bool ivf = peer->is_ivf();
  c.index_kind = ivf ? "ivf_pq" : "hnsw";
  c.params = ivf ? "refine=" + std::to_string(a.refine)
                 : "M=" + std::to_string(a.m) + " efC=" + std::to_string(a.efc);
  c.knob_name = ivf ? "nprobe" : "ef";
  c.knobs = ivf ? a.nprobes : a.efs;
  c.build_s = build;
  c.memory_mb = peer->memory_bytes() / 1048576.0;
  c.set_knob = [peer, ivf](size_t knob) { peer->SetKnob(ivf ? knob : std::max<size_t>(knob, 10)); };
  if (a.allowed) {
    c.search = [peer, allowed = a.allowed, n = ds.n, s = a.filter_selectivity](
                   const float* q, size_t knob, int64_t* found) {
      return peer->SearchFiltered(q, 10, *allowed, n, s, found);
    };
  } else {
    c.search = [peer](const float* q, size_t, int64_t* found) {
      peer->Search(q, 10, found);
      return size_t(10);
    };
  }
  c.owner = peer;
  std::vector<Contender> out;
  if (!ivf || !peer->SetRefine(float(std::max<size_t>(a.refine, 1)))) {
    out.push_back(std::move(c));
    return out;
  }
  for (size_t refine : a.refines) {
    Contender r = c;
    const float factor = float(std::max<size_t>(refine, 1));
    r.params = "refine=" + std::to_string(refine);
    r.set_knob = [peer, factor](size_t knob) {
      peer->SetRefine(factor);
      peer->SetKnob(knob);
    };
    out.push_back(std::move(r));
  }
  return out;
}

// QPS at a target recall: on the library's upper envelope (points no other point beats in both
// recall and QPS, over all its settings), interpolated between the two envelope points around
// the target; NaN if the library never reaches it.
double QpsAtRecall(const std::vector<Row>& rows, const std::string& lib, double target) {
  std::vector<std::pair<double, double>> pts;
  for (const Row& r : rows) {
    if (r.library == lib) pts.push_back({r.recall, r.qps});
  }
  std::sort(pts.begin(), pts.end(), std::greater<>());  // recall descending
  std::vector<std::pair<double, double>> envelope;
  for (const auto& p : pts) {
    if (envelope.empty() || p.second > envelope.back().second) envelope.push_back(p);
  }
  std::reverse(envelope.begin(), envelope.end());  // recall ascending, QPS descending
  for (size_t i = 0; i < envelope.size(); ++i) {
    if (envelope[i].first < target) continue;
    if (i == 0 || envelope[i].first == envelope[i - 1].first) return envelope[i].second;
    const double t = (target - envelope[i - 1].first) / (envelope[i].first - envelope[i - 1].first);
    return envelope[i - 1].second + t * (envelope[i].second - envelope[i - 1].second);
  }
  return std::nan("");
}

// Single-thread read bandwidth (GB/s) over a buffer far larger than the caches, allocated the
// way the indexes allocate theirs (LargeBuffer: huge pages where available).
double ReadBandwidth() {
  const size_t n = (512u << 20) / sizeof(uint64_t);
  LargeBuffer storage;
  storage.Resize(n * sizeof(uint64_t));
  uint64_t* buf = reinterpret_cast<uint64_t*>(storage.data());
  for (size_t i = 0; i < n; ++i) buf[i] = i;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int r = 0; r < 5; ++r) {
    double t0 = Now();
    sink = sink + SumWords(buf, n);
    best = std::max(best, n * 8.0 / (Now() - t0) / 1e9);
  }
  return best;
}

std::string FlatScan(const Dataset& ds) {
  index::FlatIndex flat(ds.dim, MetricOf(ds));
  std::vector<uint64_t> ids(ds.n);
  for (size_t i = 0; i < ds.n; ++i) ids[i] = i;
  (void)flat.Add(ids, ds.base);
  std::vector<index::Neighbor> out;
  const size_t nq = std::min<size_t>(ds.nq, 50);
  double t0 = Now();
  for (size_t q = 0; q < nq; ++q)
    (void)flat.Search({&ds.queries[q * ds.dim], ds.dim}, {.k = 10}, &out);
  double gbps = nq * double(ds.n) * ds.dim * 4 / (Now() - t0) / 1e9;
  double bw = ReadBandwidth();
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "Flat scan, one query against all %zu vectors, one thread: %.1f GB/s of vectors "
                "= %.0f%% of the measured single-thread read bandwidth (%.1f GB/s).\n",
                ds.n, gbps, 100 * gbps / bw, bw);
  return buf;
}

std::string Markdown(const Dataset& ds, const Args& a, const std::vector<Row>& rows,
                     const std::string& flat_line) {
  std::ostringstream md;
  md << "# ANN benchmark: " << ds.name << " (" << ds.n << " x " << ds.dim << ", " << ds.nq
     << " queries, " << (ds.inner_product ? "inner product" : "L2") << ", recall@10)\n\n";
  md << "Command: `" << a.command << "`  \nCPU: " << CpuName() << "; Quiver " << Version()
     << ", SIMD " << simd::SimdLevelName(simd::GetKernels().level)
     << (a.search_threads > 1
             ? "; " + std::to_string(a.search_threads) +
                   " search threads at once (each one query at a time), QPS of all of them"
             : std::string("; one thread, one query at a time"))
     << "; QPS is the median of " << a.reps << " passes, the libraries' passes interleaved.\n\n";
  std::vector<std::string> libs;
  for (const Row& r : rows) {
    if (std::find(libs.begin(), libs.end(), r.library) == libs.end()) libs.push_back(r.library);
  }
  md << "| library | build s | memory MB | QPS @0.90 | QPS @0.95 | QPS @0.99 "
        "|\n|---|---|---|---|---|---|\n";
  for (const auto& lib : libs) {
    const Row* first = nullptr;
    for (const Row& r : rows) {
      if (r.library == lib && !first) first = &r;
    }
    char line[256];
    std::snprintf(line, sizeof(line), "| %s | %.1f | %.0f | %.0f | %.0f | %.0f |\n", lib.c_str(),
                  first->build_s, first->memory_mb, QpsAtRecall(rows, lib, 0.90),
                  QpsAtRecall(rows, lib, 0.95), QpsAtRecall(rows, lib, 0.99));
    md << line;
  }
  if (std::find(libs.begin(), libs.end(), "hnswlib") != libs.end()) {
    md << "\nQPS ratio to hnswlib at the same recall@10:\n\n| library | @0.90 | @0.95 | @0.99 | "
          "build time ratio |\n|---|---|---|---|---|\n";
    double hb = 0;
    for (const Row& r : rows) {
      if (r.library == "hnswlib") hb = r.build_s;
    }
    for (const auto& lib : libs) {
      if (lib == "hnswlib") continue;
      double b = 0;
      for (const Row& r : rows) {
        if (r.library == lib) b = r.build_s;
      }
      auto ratio = [&](double target) {
        const double r = QpsAtRecall(rows, lib, target) / QpsAtRecall(rows, "hnswlib", target);
        char text[32];
        std::snprintf(text, sizeof(text), std::isnan(r) ? "–" : "%.2fx", r);
        return std::string(text);
      };
      char line[256];
      std::snprintf(line, sizeof(line), "| %s | %s | %s | %s | %.2fx |\n", lib.c_str(),
                    ratio(0.90).c_str(), ratio(0.95).c_str(), ratio(0.99).c_str(), b / hb);
      md << line;
    }
  }
  // Quiver's best contender against the best peer at each recall (the targets).
  bool quiver = false, peer = false;
  for (const auto& lib : libs) (lib.rfind("quiver", 0) == 0 ? quiver : peer) = true;
  if (quiver && peer) {
    md << "\nQuiver's best against the best peer at the same recall@10:\n\n| recall | Quiver's "
          "best | QPS | best peer | QPS | ratio |\n|---|---|---|---|---|---|\n";
    for (double target : {0.90, 0.95, 0.99}) {
      std::string best[2];
      double qps[2] = {0, 0};
      for (const auto& lib : libs) {
        const int side = lib.rfind("quiver", 0) == 0 ? 0 : 1;
        const double q = QpsAtRecall(rows, lib, target);
        if (q > qps[side]) {  // nan (not reached) never compares greater
          qps[side] = q;
          best[side] = lib;
        }
      }
      char ratio[64];
      if (qps[0] > 0 && qps[1] > 0) {
        std::snprintf(ratio, sizeof(ratio), "%.2fx", qps[0] / qps[1]);
      } else {
        std::snprintf(ratio, sizeof(ratio), "%s",
                      qps[0] > 0   ? "only Quiver reached it"
                      : qps[1] > 0 ? "only a peer reached it"
                                   : "neither reached it");
      }
      char line[512];
      std::snprintf(line, sizeof(line), "| %.2f | %s | %.0f | %s | %.0f | %s |\n", target,
                    best[0].empty() ? "none" : best[0].c_str(), qps[0],
                    best[1].empty() ? "none" : best[1].c_str(), qps[1], ratio);
      md << line;
    }
  }
  md << "\nnan: the library did not reach that recall within the ef sweep.\n";
  if (!flat_line.empty()) md << "\n" << flat_line;
  return md.str();
}

// The items a filter of the given selectivity passes: a fixed pseudo-random subset (a hash of
// the id, so that it is independent of the data's order), as bits.
std::shared_ptr<const std::vector<uint64_t>> AllowedItems(size_t n, double selectivity) {
  auto words = std::make_shared<std::vector<uint64_t>>((n + 63) / 64, 0);
  const uint64_t cut = uint64_t(selectivity * double(UINT32_MAX));
  size_t passed = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t z = i + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    if ((z & UINT32_MAX) <= cut) {
      (*words)[i >> 6] |= uint64_t{1} << (i & 63);
      ++passed;
    }
  }
  std::fprintf(stderr, "filter: %zu of %zu items pass (selectivity %g)\n", passed, n, selectivity);
  return words;
}

// The exact top 10 of each of the first nq queries among the allowed items (a flat scan with
// the filter), as the data set's ground truth.
void FilteredTruth(Dataset* ds, const std::vector<uint64_t>& allowed, size_t nq, int threads) {
  index::FlatIndex flat(ds->dim, MetricOf(*ds));
  QV_CHECK(flat.Add(Ids(ds->n), ds->base).ok());
  index::BitsetSelector filter(allowed.data(), ds->n);
  std::vector<std::vector<index::Neighbor>> found;
  const std::span<const float> queries(ds->queries.data(), nq * ds->dim);
  QV_CHECK(flat.SearchBatch(queries, {.k = 10, .filter = &filter}, &found, threads).ok());
  ds->truth_k = 10;
  ds->truth.assign(ds->nq * 10, -1);
  for (size_t q = 0; q < nq; ++q) {
    for (size_t i = 0; i < found[q].size(); ++i) ds->truth[q * 10 + i] = int32_t(found[q][i].id);
  }
}

// Queries moved out of the items' distribution: each component plus N(0, (f * std_j)^2), std_j
// the base's standard deviation in dimension j. The data set is renamed (its ground truth is
// cached apart).
void AddQueryNoise(Dataset* ds, double f) {
  std::vector<double> mean(ds->dim, 0), sq(ds->dim, 0);
  for (size_t i = 0; i < ds->n; ++i) {
    for (size_t j = 0; j < ds->dim; ++j) {
      const double x = ds->base[i * ds->dim + j];
      mean[j] += x;
      sq[j] += x * x;
    }
  }
  std::mt19937_64 rng(20261201);
  std::normal_distribution<double> g;
  for (size_t j = 0; j < ds->dim; ++j) {
    mean[j] /= double(ds->n);
    const double sd = std::sqrt(std::max(0.0, sq[j] / double(ds->n) - mean[j] * mean[j]));
    for (size_t q = 0; q < ds->nq; ++q) ds->queries[q * ds->dim + j] += float(f * sd * g(rng));
  }
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "-noise%g", f);
  ds->name += suffix;
}

int Main(int argc, char** argv) {
  Args a;
  if (const int exit = ParseArgs(argc, argv, &a); exit >= 0) return exit;
  Result<Dataset> loaded = DataLossError("unset");
  if (a.dataset == "fashion-mnist") {
    loaded =
        LoadFashionMnist(a.data_dir.empty() ? "/usr/share/datasets/fashion-mnist" : a.data_dir);
  } else {
    if (a.data_dir.empty()) {
      std::fprintf(stderr,
                   "ann_bench: --dataset %s needs --data DIR with base.fvecs and query.fvecs\n",
                   a.dataset.c_str());
      return 2;
    }
    loaded = LoadFvecsDir(a.data_dir, a.dataset);
  }
  if (!loaded.ok()) {
    std::fprintf(stderr, "ann_bench: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  Dataset ds = std::move(loaded).value();
  ds.inner_product = a.inner_product;
  if (a.inner_product) ds.name += "-ip";
  if (a.query_noise > 0) AddQueryNoise(&ds, a.query_noise);
  if (a.filter_selectivity > 0) {
    a.allowed = AllowedItems(ds.n, a.filter_selectivity);
    FilteredTruth(&ds, *a.allowed, a.nq ? std::min(a.nq, ds.nq) : ds.nq, a.threads);
    char suffix[40];
    std::snprintf(suffix, sizeof(suffix), "-filter%g", a.filter_selectivity);
    ds.name += suffix;
  }
  std::error_code ec;
  std::filesystem::create_directories(a.cache_dir, ec);
  std::filesystem::create_directories(a.out_dir, ec);
  std::string gt_path = a.cache_dir + "/" + ds.name + "-" + std::to_string(ds.n) + "x" +
                        std::to_string(ds.dim) + "-gt100.ivecs";
  if (Status s = a.allowed ? Status::Ok() : EnsureGroundTruth(&ds, 100, gt_path, a.threads);
      !s.ok()) {
    std::fprintf(stderr, "ann_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "%s: %zu x %zu, %zu queries; simd %s\n", ds.name.c_str(), ds.n, ds.dim,
               ds.nq, std::string(simd::SimdLevelName(simd::GetKernels().level)).c_str());

  std::vector<Contender> contenders;
  for (const auto& lib : a.libs) {
    if (lib == "quiver-hnsw" || lib == "quiver-hnsw-sq8") {
      contenders.push_back(BuildQuiverHnsw(ds, a, lib));
    } else if (lib == "quiver-ivfpq4" || lib == "quiver-ivfpq8" || lib == "quiver-ivfpq4-int8" ||
               lib == "quiver-ivfpq8-int8") {
      for (Contender& c : BuildIvf(ds, a, lib)) contenders.push_back(std::move(c));
    } else if (lib == "hnswlib") {
      for (Contender& c : BuildPeer(ds, a, MakeHnswlibPeer(ds.dim, a.m, a.efc, ds.inner_product)))
        contenders.push_back(std::move(c));
    } else if (lib.rfind("faiss:", 0) == 0) {  // faiss:<index_factory string, '+' for ','>
      std::string factory = lib.substr(6);
      std::replace(factory.begin(), factory.end(), '+', ',');
      for (Contender& c :
           BuildPeer(ds, a,
                     MakeFaissPeer(ds.dim, factory, float(std::max<size_t>(a.refine, 1)),
                                   ds.inner_product)))
        contenders.push_back(std::move(c));
    } else {
      std::fprintf(stderr, "ann_bench: unknown library %s\n", lib.c_str());
      return 2;
    }
  }
  std::vector<Row> rows;
  Measure(ds, a, contenders, &rows);
  contenders.clear();
  std::string flat_line = a.flat ? FlatScan(ds) : "";

  std::ofstream csv(a.out_dir + "/ann-" + ds.name + ".csv");
  csv << "library,index,params,build_s,recall_at_10,qps,memory_mb\n";
  for (const Row& r : rows) {
    char line[512];
    std::snprintf(line, sizeof(line), "%s,%s,%s,%.2f,%.4f,%.1f,%.1f\n", r.library.c_str(),
                  r.index.c_str(), r.params.c_str(), r.build_s, r.recall, r.qps, r.memory_mb);
    csv << line;
  }
  std::string md = Markdown(ds, a, rows, flat_line);
  std::ofstream(a.out_dir + "/ann-" + ds.name + ".md") << md;
  std::printf("%s", md.c_str());
  return 0;
}

}  // namespace
}  // namespace quiver::bench

int main(int argc, char** argv) {
  return quiver::RunMain("ann_bench", [&] { return quiver::bench::Main(argc, argv); });
}
