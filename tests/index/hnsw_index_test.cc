#include "index/hnsw/hnsw_index.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <future>
#include <thread>
#include <unordered_set>

#include "index/flat/flat_index.h"
#include "index/index_factory.h"
#include "tests/testing/data.h"

namespace quiver::index {
namespace {

using quiver::testing::BruteForce;
using quiver::testing::ClusteredVectors;
using quiver::testing::Iota;
using quiver::testing::RandomVectors;
using quiver::testing::Recall;
using quiver::testing::SearchAll;

std::unique_ptr<HnswIndex> MakeHnsw(size_t d, Metric metric, HnswQuantization quant,
                                    int threads = 2) {
  HnswOptions o;
  o.m = 16;
  o.ef_construction = 100;
  o.quantization = quant;
  o.build_threads = threads;
  auto r = HnswIndex::Create(d, metric, o);
  QV_CHECK(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

struct RecallCase {
  const char* name;
  Metric metric;
  HnswQuantization quant;
  bool clustered;
  double min_recall;     // recall@10 at ef 100 against exact search
  double min_recall_hi;  // recall@10 at ef 400
};

class HnswRecallTest : public ::testing::TestWithParam<RecallCase> {};

// Stated bounds at M 16, ef_construction 100, on 8,000 vectors of dim 32: recall@10 at ef 100
// and ef 400 against exact search. Clustered data (40 tight blobs) is harder; inner product
// on it is hardest (HNSW's pruning assumes a metric): hnswlib 0.6.2 reaches 0.918 / 0.9995
// (L2) and 0.665 / 0.768 (IP) on this exact data, and the bounds sit just under those.
TEST_P(HnswRecallTest, RecallAgainstExactIsAboveBound) {
  const RecallCase& c = GetParam();
  const size_t n = 8000, d = 32, nq = 200;
  auto base = c.clustered ? ClusteredVectors(n, d, 40, 0.15f, 11) : RandomVectors(n, d, 11);
  auto queries =
      c.clustered ? ClusteredVectors(nq, d, 40, 0.15f, 11 + 7) : RandomVectors(nq, d, 12);
  auto ids = Iota(n, 500);
  // One build thread: the same graph on every run (a two-thread build varies by scheduling, and
  // under a loaded machine dipped 0.002 under a bound).
  auto index = MakeHnsw(d, c.metric, c.quant, 1);
  ASSERT_TRUE(index->Add(ids, base).ok());
  EXPECT_EQ(index->size(), n);
  auto truth = BruteForce(base, ids, queries, d, c.metric, 10);
  double recall = Recall(SearchAll(*index, queries, {.k = 10, .ef = 100}), truth);
  EXPECT_GE(recall, c.min_recall) << c.name;
  double recall_hi = Recall(SearchAll(*index, queries, {.k = 10, .ef = 400}), truth);
  EXPECT_GE(recall_hi, c.min_recall_hi) << c.name;
  EXPECT_GE(recall_hi, recall - 0.01) << c.name;
  std::printf("%s: recall@10 %.3f (ef 100), %.3f (ef 400)\n", c.name, recall, recall_hi);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, HnswRecallTest,
    ::testing::Values(
        RecallCase{"l2_random", Metric::kL2, HnswQuantization::kNone, false, 0.95, 0.99},
        RecallCase{"l2_clustered", Metric::kL2, HnswQuantization::kNone, true, 0.90, 0.99},
        RecallCase{"ip_clustered", Metric::kInnerProduct, HnswQuantization::kNone, true, 0.63,
                   0.74},
        RecallCase{"cosine_random", Metric::kCosine, HnswQuantization::kNone, false, 0.95, 0.99},
        RecallCase{"l2_random_sq8", Metric::kL2, HnswQuantization::kSq8, false, 0.93, 0.98},
        RecallCase{"l2_clustered_sq8", Metric::kL2, HnswQuantization::kSq8, true, 0.89, 0.98},
        RecallCase{"cosine_clustered_sq8", Metric::kCosine, HnswQuantization::kSq8, true, 0.89,
                   0.98}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(HnswIndexTest, ReturnsExactDistancesSortedAndTheQueryItself) {
  const size_t n = 2000, d = 24;
  auto base = RandomVectors(n, d, 21);
  for (auto quant : {HnswQuantization::kNone, HnswQuantization::kSq8}) {
    auto index = MakeHnsw(d, Metric::kL2, quant);
    ASSERT_TRUE(index->Add(Iota(n), base).ok());
    std::vector<Neighbor> out;
    SearchStats stats;
    ASSERT_TRUE(index->Search({&base[7 * d], d}, {.k = 5, .ef = 50}, &out, &stats).ok());
    ASSERT_EQ(out.size(), 5u);
    EXPECT_EQ(out[0].id, 7u);
    EXPECT_EQ(out[0].distance, 0.0f);
    EXPECT_GT(stats.distances, 0u);
    for (size_t i = 1; i < out.size(); ++i) {
      EXPECT_LE(out[i - 1].distance, out[i].distance);
      double exact = 0;
      for (size_t j = 0; j < d; ++j) {
        double t = base[out[i].id * d + j] - base[7 * d + j];
        exact += t * t;
      }
      EXPECT_NEAR(out[i].distance, exact, 1e-4 * exact);
    }
  }
}

TEST(HnswIndexTest, FilterReturnsOnlyAllowedIds) {
  const size_t n = 5000, d = 16;
  auto base = ClusteredVectors(n, d, 20, 0.2f, 31);
  auto index = MakeHnsw(d, Metric::kL2, HnswQuantization::kNone);
  ASSERT_TRUE(index->Add(Iota(n), base).ok());
  std::vector<uint64_t> words((n + 63) / 64, 0);
  std::vector<float> allowed_base;
  std::vector<uint64_t> allowed_ids;
  for (uint64_t id = 0; id < n; id += 3) {
    words[id >> 6] |= uint64_t{1} << (id & 63);
    allowed_ids.push_back(id);
    allowed_base.insert(allowed_base.end(), &base[id * d], &base[id * d] + d);
  }
  BitsetSelector every_third(words.data(), n);
  auto queries = ClusteredVectors(100, d, 20, 0.2f, 32);
  auto found = SearchAll(*index, queries, {.k = 10, .ef = 100, .filter = &every_third});
  for (const auto& r : found) {
    ASSERT_EQ(r.size(), 10u);
    for (const auto& nb : r) EXPECT_EQ(nb.id % 3, 0u);
  }
  auto truth = BruteForce(allowed_base, allowed_ids, queries, d, Metric::kL2, 10);
  EXPECT_GE(Recall(found, truth), 0.9);
  PredicateSelector none([](uint64_t) { return false; });
  std::vector<Neighbor> out;
  ASSERT_TRUE(index->Search({&queries[0], d}, {.k = 10, .filter = &none}, &out).ok());
  EXPECT_TRUE(out.empty());
}

// Asking for k gives k when the collection holds k. With inner product, items of low norm lie
// in no search beam (issue 20: k 10,000 on 8,239 movies returned 7,322), so a search that
// reaches fewer than k scores every item.
TEST(HnswIndexTest, KNearTheCollectionSizeReturnsKItems) {
  const size_t n = 3000, d = 16;
  auto base = RandomVectors(n, d, 41);
  for (size_t i = 0; i < n; ++i) {  // norms from 0.001 to 10
    const float scale = std::pow(10.0f, -3.0f + 4.0f * float(i % 97) / 96.0f);
    for (size_t j = 0; j < d; ++j) base[i * d + j] *= scale;
  }
  for (auto quant : {HnswQuantization::kNone, HnswQuantization::kSq8}) {
    auto index = MakeHnsw(d, Metric::kInnerProduct, quant, 1);
    ASSERT_TRUE(index->Add(Iota(n), base).ok());
    auto queries = RandomVectors(5, d, 42);
    for (size_t k : {n - 10, n, n + 50}) {
      for (size_t q = 0; q < 5; ++q) {
        std::vector<Neighbor> out;
        ASSERT_TRUE(index->Search({&queries[q * d], d}, {.k = k}, &out).ok());
        ASSERT_EQ(out.size(), std::min(k, n)) << "k " << k;
        const std::vector<float> query(&queries[q * d], &queries[q * d] + d);
        auto truth = BruteForce(base, Iota(n), query, d, Metric::kInnerProduct, std::min(k, n));
        EXPECT_GE(Recall({out}, truth), 0.999) << "k " << k;  // (float and double may swap ties)
      }
    }
    // The same through a filter passing a third of the items, and k below half the size (the
    // graph is searched first).
    PredicateSelector third([](uint64_t id) { return id % 3 == 0; });
    for (size_t q = 0; q < 5; ++q) {
      std::vector<Neighbor> out;
      ASSERT_TRUE(
          index->Search({&queries[q * d], d}, {.k = 1200, .ef = 1200, .filter = &third}, &out)
              .ok());
      EXPECT_EQ(out.size(), n / 3);
      for (const Neighbor& nb : out) EXPECT_EQ(nb.id % 3, 0u);
    }
    // Deleted items stay out of the full scan.
    std::vector<uint64_t> gone;
    for (uint64_t id = 0; id < n; id += 2) gone.push_back(id);
    ASSERT_TRUE(index->Remove(gone).ok());
    std::vector<Neighbor> out;
    ASSERT_TRUE(index->Search({&queries[0], d}, {.k = n}, &out).ok());
    EXPECT_EQ(out.size(), n / 2);
    for (const Neighbor& nb : out) EXPECT_EQ(nb.id % 2, 1u);
  }
}

TEST(HnswIndexTest, DeletedIdsNeverComeBack) {
  const size_t n = 4000, d = 16;
  auto base = RandomVectors(n, d, 41);
  auto index = MakeHnsw(d, Metric::kL2, HnswQuantization::kSq8);
  ASSERT_TRUE(index->Add(Iota(n), base).ok());
  std::vector<uint64_t> gone;
  for (uint64_t id = 0; id < n; id += 2) gone.push_back(id);
  ASSERT_TRUE(index->Remove(gone).ok());
  EXPECT_EQ(index->size(), n / 2);
  EXPECT_FALSE(index->Contains(0));
  EXPECT_TRUE(index->Contains(1));
  std::vector<Neighbor> out;
  for (uint64_t id : gone) {
    if (id % 40) continue;
    ASSERT_TRUE(index->Search({&base[id * d], d}, {.k = 20, .ef = 60}, &out).ok());
    ASSERT_EQ(out.size(), 20u);
    for (const auto& nb : out) EXPECT_EQ(nb.id % 2, 1u) << "deleted id " << nb.id << " returned";
  }
  std::vector<uint64_t> again = {1, 0};
  EXPECT_EQ(index->Remove(again).code(), StatusCode::kNotFound);
  EXPECT_TRUE(index->Contains(1));
  // Recall over the survivors stays high: tombstones still route.
  std::vector<float> live_base;
  std::vector<uint64_t> live_ids;
  for (uint64_t id = 1; id < n; id += 2) {
    live_ids.push_back(id);
    live_base.insert(live_base.end(), &base[id * d], &base[id * d] + d);
  }
  auto queries = RandomVectors(100, d, 42);
  auto truth = BruteForce(live_base, live_ids, queries, d, Metric::kL2, 10);
  EXPECT_GE(Recall(SearchAll(*index, queries, {.k = 10, .ef = 100}), truth), 0.93);
}

TEST(HnswIndexTest, ReAddingAnIdReplacesItsVector) {
  const size_t n = 1000, d = 8;
  auto base = RandomVectors(n, d, 51);
  auto index = MakeHnsw(d, Metric::kL2, HnswQuantization::kNone);
  ASSERT_TRUE(index->Add(Iota(n), base).ok());
  std::vector<float> far(d, 5.0f);
  std::vector<uint64_t> id = {3};
  ASSERT_TRUE(index->Add(id, far).ok());
  EXPECT_EQ(index->size(), n);
  std::vector<Neighbor> out;
  ASSERT_TRUE(index->Search(far, {.k = 1}, &out).ok());
  EXPECT_EQ(out[0].id, 3u);
  EXPECT_EQ(out[0].distance, 0.0f);
  ASSERT_TRUE(index->Search({&base[3 * d], d}, {.k = 50}, &out).ok());
  for (const auto& nb : out) EXPECT_NE(nb.id, 3u) << "old vector of id 3 still found";
}

TEST(HnswIndexTest, SearchesRunWhileAdding) {
  const size_t n = 12000, d = 16, batch = 500;
  auto base = RandomVectors(n, d, 61);
  auto index = MakeHnsw(d, Metric::kL2, HnswQuantization::kNone, 1);
  std::atomic<bool> done{false};
  std::atomic<size_t> searches{0};
  std::atomic<size_t> bad{0};
  std::thread reader([&] {
    std::vector<Neighbor> out;
    auto queries = RandomVectors(50, d, 62);
    while (!done.load()) {
      for (size_t q = 0; q < 50; ++q) {
        Status s = index->Search({&queries[q * d], d}, {.k = 10, .ef = 40}, &out);
        if (!s.ok()) ++bad;
        std::unordered_set<uint64_t> seen;
        for (const auto& nb : out) {
          if (nb.id >= n || !seen.insert(nb.id).second) ++bad;
        }
        ++searches;
      }
    }
  });
  auto ids = Iota(n);
  for (size_t i = 0; i < n; i += batch) {
    ASSERT_TRUE(index->Add({&ids[i], batch}, {&base[i * d], batch * d}).ok());
  }
  done = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(searches.load(), 0u);
  EXPECT_EQ(index->size(), n);
  auto queries = RandomVectors(100, d, 63);
  auto truth = BruteForce(base, ids, queries, d, Metric::kL2, 10);
  EXPECT_GE(Recall(SearchAll(*index, queries, {.k = 10, .ef = 100}), truth), 0.95);
}

TEST(HnswIndexTest, SaveThenLoadGivesIdenticalResults) {
  const size_t n = 3000, d = 20;
  auto base = ClusteredVectors(n, d, 10, 0.3f, 71);
  for (auto quant : {HnswQuantization::kNone, HnswQuantization::kSq8}) {
    auto index = MakeHnsw(d, Metric::kCosine, quant);
    ASSERT_TRUE(index->Add(Iota(n, 1u << 20), base).ok());
    std::vector<uint64_t> gone = {1u << 20, (1u << 20) + 5};
    ASSERT_TRUE(index->Remove(gone).ok());
    std::string path = ::testing::TempDir() + "/hnsw_" + std::to_string(::getpid()) + ".qvi";
    ASSERT_TRUE(index->Save(path).ok());
    auto loaded = LoadIndex(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_EQ((*loaded)->type_name(), "hnsw");
    EXPECT_EQ((*loaded)->size(), index->size());
    EXPECT_FALSE((*loaded)->Contains(1u << 20));
    auto queries = ClusteredVectors(50, d, 10, 0.3f, 72);
    std::vector<Neighbor> a, b;
    for (size_t q = 0; q < 50; ++q) {
      ASSERT_TRUE(index->Search({&queries[q * d], d}, {.k = 10, .ef = 32}, &a).ok());
      ASSERT_TRUE((*loaded)->Search({&queries[q * d], d}, {.k = 10, .ef = 32}, &b).ok());
      EXPECT_EQ(a, b);
    }
    // The loaded index keeps accepting inserts.
    auto more = ClusteredVectors(10, d, 10, 0.3f, 73);
    ASSERT_TRUE((*loaded)->Add(Iota(10, 7), more).ok());
    EXPECT_EQ((*loaded)->size(), index->size() + 10);
    std::remove(path.c_str());
  }
}

// Searches do not wait for a save's disk I/O: the save below blocks opening its file (a FIFO
// with no reader yet, in place of the temporary file), and searches and inserts still run.
// (Before, the save held the graph's lock across the write: the search waited for the reader.)
TEST(HnswIndexTest, SearchesAndInsertsRunWhileASaveWritesItsFile) {
  const size_t n = 2000, d = 16;
  auto index = MakeHnsw(d, Metric::kL2, HnswQuantization::kNone);
  auto base = RandomVectors(n, d, 81);
  ASSERT_TRUE(index->Add(Iota(n, 1), base).ok());
  const std::string path =
      ::testing::TempDir() + "/hnsw_fifo_" + std::to_string(::getpid()) + ".qvi";
  ASSERT_EQ(::mkfifo((path + ".tmp").c_str(), 0600), 0);
  std::atomic<pid_t> saver{0};
  std::thread save([&] {
    saver = pid_t(::syscall(SYS_gettid));
    index->Save(path).IgnoreError();  // fsync of a FIFO fails; only the waiting matters here
  });
  // Wait for the saver to block opening the FIFO: its current system call is openat.
  while (true) {
    const pid_t tid = saver.load();
    if (tid != 0) {
      std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/syscall");
      long nr = -1;
      if (in >> nr && nr == SYS_openat) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // The search and the insert run on their own thread, so that a failure is a failed wait, not
  // a hung test.
  std::vector<Neighbor> out;
  Status searched, added;
  auto more = RandomVectors(10, d, 82);
  auto work = std::async(std::launch::async, [&] {
    searched = index->Search({&base[0], d}, {.k = 5}, &out);
    added = index->Add(Iota(10, 100000), more);
  });
  const bool done = work.wait_for(std::chrono::minutes(2)) == std::future_status::ready;
  // Let the save go: read and drop what it writes.
  const int fd = ::open((path + ".tmp").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  char buf[1 << 16];
  while (::read(fd, buf, sizeof(buf)) > 0) {
  }
  ::close(fd);
  save.join();
  work.wait();
  EXPECT_TRUE(done) << "the search and the insert waited for the save's file write";
  EXPECT_TRUE(searched.ok()) << searched;
  EXPECT_TRUE(added.ok()) << added;
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].id, 1u);
  std::remove((path + ".tmp").c_str());
  std::remove(path.c_str());
}

TEST(HnswIndexTest, QuantiserTrainsOnceBeforeTheFirstItem) {
  const size_t d = 8;
  auto index = MakeHnsw(d, Metric::kL2, HnswQuantization::kSq8);
  std::vector<float> bad_sample = {1, 2, 3};
  EXPECT_EQ(index->Train(bad_sample).code(), StatusCode::kInvalidArgument);
  // A sample spanning [-10, 10] fixes the range; later data outside it is clamped in the codes
  // but re-ranking with float32 keeps the returned distances exact.
  std::vector<float> sample(d * 2, -10.0f);
  std::fill(sample.begin() + d, sample.end(), 10.0f);
  ASSERT_TRUE(index->Train(sample).ok());
  auto base = RandomVectors(500, d, 81);
  for (float& x : base) x *= 20.0f;
  ASSERT_TRUE(index->Add(Iota(500), base).ok());
  EXPECT_EQ(index->Train(sample).code(), StatusCode::kFailedPrecondition);
  std::vector<Neighbor> out;
  ASSERT_TRUE(index->Search({&base[9 * d], d}, {.k = 1, .ef = 100}, &out).ok());
  EXPECT_EQ(out[0].id, 9u);
  EXPECT_EQ(out[0].distance, 0.0f);
}

TEST(HnswIndexTest, RejectsBadOptionsAndQueries) {
  HnswOptions o;
  o.m = 1;
  EXPECT_EQ(HnswIndex::Create(8, Metric::kL2, o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(HnswIndex::Create(0, Metric::kL2, {}).status().code(), StatusCode::kInvalidArgument);
  auto index = MakeHnsw(4, Metric::kL2, HnswQuantization::kNone);
  std::vector<float> q = {1, 2, std::numeric_limits<float>::infinity(), 4};
  std::vector<Neighbor> out;
  EXPECT_EQ(index->Search(q, {.k = 1}, &out).code(), StatusCode::kInvalidArgument);
  std::vector<float> ok = {1, 2, 3, 4};
  ASSERT_TRUE(index->Search(ok, {.k = 3}, &out).ok());
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace quiver::index
