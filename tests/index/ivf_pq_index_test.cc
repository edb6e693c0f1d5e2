#include "index/ivf/ivf_pq_index.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <set>
#include <unistd.h>

#include "tests/testing/data.h"

namespace quiver::index {
namespace {

using quiver::testing::BruteForce;
using quiver::testing::ClusteredVectors;
using quiver::testing::Iota;
using quiver::testing::RandomVectors;
using quiver::testing::Recall;
using quiver::testing::SearchAll;

std::unique_ptr<IvfPqIndex> MakeIvf(size_t d, Metric metric, size_t nbits, size_t m, size_t nlist,
                                    bool store = true) {
  IvfPqOptions o;
  o.nlist = nlist;
  o.m = m;
  o.nbits = nbits;
  o.refine_store = store ? RefineStore::kFloat32 : RefineStore::kNone;
  o.refine = store ? 4 : 0;
  o.threads = 2;
  auto r = IvfPqIndex::Create(d, metric, o);
  QV_CHECK(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

struct Case {
  const char* name;
  Metric metric;
  size_t nbits;
  bool refine;
  double min_recall;  // recall@10 at nprobe 16 of 64 lists
};

class IvfPqRecallTest : public ::testing::TestWithParam<Case> {};

// Stated bounds on 10,000 clustered vectors of dim 32, nlist 64, m 16, nprobe 16: with exact
// re-ranking of 4k candidates >= 0.90 for 8-bit and 4-bit codes; without re-ranking (PQ
// distances only) >= 0.55 (8-bit) and >= 0.40 (4-bit).
TEST_P(IvfPqRecallTest, RecallAgainstExactIsAboveBound) {
  const Case& c = GetParam();
  const size_t n = 10000, d = 32, nq = 200;
  auto base = ClusteredVectors(n, d, 50, 0.2f, 5);
  auto queries = ClusteredVectors(nq, d, 50, 0.2f, 6);
  auto ids = Iota(n, 100);
  auto index = MakeIvf(d, c.metric, c.nbits, 16, 64, c.refine);
  if (std::string(c.name).find("int8") != std::string::npos) {
    IvfPqOptions o = index->options();
    o.refine_store = RefineStore::kInt8;
    index = std::move(IvfPqIndex::Create(d, c.metric, o)).value();
  }
  ASSERT_TRUE(index->Add(ids, base).ok());
  EXPECT_EQ(index->size(), n);
  auto truth = BruteForce(base, ids, queries, d, c.metric, 10);
  double recall = Recall(SearchAll(*index, queries, {.k = 10, .nprobe = 16}), truth);
  EXPECT_GE(recall, c.min_recall) << c.name;
  // All lists with re-ranking is near exact.
  if (c.refine) {
    double all = Recall(SearchAll(*index, queries, {.k = 10, .nprobe = 64, .refine = 10}), truth);
    EXPECT_GE(all, 0.97) << c.name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, IvfPqRecallTest,
    ::testing::Values(Case{"l2_8bit_refine", Metric::kL2, 8, true, 0.90},
                      Case{"l2_4bit_refine", Metric::kL2, 4, true, 0.90},
                      Case{"l2_8bit", Metric::kL2, 8, false, 0.55},
                      Case{"l2_4bit", Metric::kL2, 4, false, 0.40},
                      Case{"ip_4bit_refine", Metric::kInnerProduct, 4, true, 0.85},
                      Case{"cosine_8bit_refine", Metric::kCosine, 8, true, 0.90},
                      Case{"l2_4bit_int8_refine", Metric::kL2, 4, true, 0.88}),
    [](const auto& info) { return std::string(info.param.name); });

// Fast-scan distances (no re-ranking) agree with the float ADC distance to each returned code
// within the table quantisation error: m sub-quantisers, each rounded to half a step.
TEST(IvfPqIndexTest, FastScanDistancesMatchScalarAdcWithinQuantisation) {
  const size_t n = 3000, d = 32, m = 16;
  auto base = ClusteredVectors(n, d, 10, 0.3f, 7);
  auto index = MakeIvf(d, Metric::kL2, 4, m, 8, /*store=*/false);
  ASSERT_TRUE(index->Add(Iota(n), base).ok());
  auto exact8 = MakeIvf(d, Metric::kL2, 4, m, 8, false);
  auto queries = RandomVectors(20, d, 8);
  std::vector<Neighbor> out;
  for (size_t q = 0; q < 20; ++q) {
    ASSERT_TRUE(index->Search({&queries[q * d], d}, {.k = 50, .nprobe = 8}, &out).ok());
    ASSERT_EQ(out.size(), 50u);
    for (size_t i = 1; i < out.size(); ++i) EXPECT_LE(out[i - 1].distance, out[i].distance);
    // The k-th approximate distance is close to the exact distance of that item: PQ error
    // plus table quantisation, bounded loosely by the spread of the data.
    double exact = 0;
    for (size_t t = 0; t < d; ++t) exact += std::pow(queries[q * d + t] - base[out[0].id * d + t], 2);
    EXPECT_NEAR(out[0].distance, exact, 0.5 * exact + 0.5);
  }
}

TEST(IvfPqIndexTest, SearchListsReturnsOnlyItemsOfThoseLists) {
  const size_t n = 4000, d = 16, nlist = 8;
  auto base = ClusteredVectors(n, d, 8, 0.3f, 9);
  auto index = MakeIvf(d, Metric::kL2, 4, 8, nlist);
  // Lists from outside: item i goes to list i % 8, centroids from a k-means of our own.
  std::vector<float> centroids(nlist * d, 0.0f);
  std::vector<uint32_t> lists(n);
  for (size_t i = 0; i < n; ++i) lists[i] = uint32_t(i % nlist);
  for (size_t i = 0; i < n; ++i) {
    for (size_t t = 0; t < d; ++t) centroids[lists[i] * d + t] += base[i * d + t] / (n / nlist);
  }
  ASSERT_TRUE(index->SetCoarseCentroids(centroids).ok());
  ASSERT_TRUE(index->AddToLists(Iota(n), base, lists).ok());
  auto sizes = index->ListSizes();
  for (size_t s : sizes) EXPECT_EQ(s, n / nlist);
  std::vector<ListQuota> quotas = {{2, 5}, {5, 12}, {7, 0}};
  std::vector<std::vector<Neighbor>> out;
  ASSERT_TRUE(index->SearchLists({&base[0], d}, quotas, {}, &out).ok());
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].size(), 5u);
  EXPECT_EQ(out[1].size(), 12u);
  EXPECT_TRUE(out[2].empty());
  for (const auto& nb : out[0]) EXPECT_EQ(nb.id % nlist, 2u);
  for (const auto& nb : out[1]) EXPECT_EQ(nb.id % nlist, 5u);
  std::vector<ListQuota> bad = {{8, 1}};
  EXPECT_EQ(index->SearchLists({&base[0], d}, bad, {}, &out).code(), StatusCode::kInvalidArgument);
  std::vector<uint32_t> bad_lists(n, 9);
  EXPECT_EQ(index->AddToLists(Iota(n), base, bad_lists).code(), StatusCode::kInvalidArgument);
}

TEST(IvfPqIndexTest, RemoveFilterAndReplace) {
  const size_t n = 3000, d = 16;
  auto base = RandomVectors(n, d, 10);
  for (size_t nbits : {4, 8}) {
    auto index = MakeIvf(d, Metric::kL2, nbits, 8, 16);
    ASSERT_TRUE(index->Add(Iota(n), base).ok());
    std::vector<uint64_t> gone;
    for (uint64_t id = 0; id < n; id += 3) gone.push_back(id);
    ASSERT_TRUE(index->Remove(gone).ok());
    EXPECT_EQ(index->size(), n - gone.size());
    std::vector<uint64_t> again = {1, 0};
    EXPECT_EQ(index->Remove(again).code(), StatusCode::kNotFound);
    EXPECT_TRUE(index->Contains(1));
    std::vector<Neighbor> out;
    PredicateSelector even([](uint64_t id) { return id % 2 == 0; });
    for (size_t q = 0; q < n; q += 97) {
      ASSERT_TRUE(index->Search({&base[q * d], d}, {.k = 20, .nprobe = 16}, &out).ok());
      for (const auto& nb : out) EXPECT_NE(nb.id % 3, 0u) << "removed id returned";
      if (q % 3 != 0) {
        ASSERT_FALSE(out.empty());
        EXPECT_EQ(out[0].id, q);  // exact re-rank finds the item itself
      }
      ASSERT_TRUE(index->Search({&base[q * d], d}, {.k = 20, .nprobe = 16, .filter = &even}, &out).ok());
      for (const auto& nb : out) EXPECT_TRUE(nb.id % 2 == 0 && nb.id % 3 != 0);
    }
    // Re-adding moves an id to its new vector.
    std::vector<float> far(d, 9.0f);
    std::vector<uint64_t> one = {1};
    ASSERT_TRUE(index->Add(one, far).ok());
    EXPECT_EQ(index->size(), n - gone.size());
    ASSERT_TRUE(index->Search(far, {.k = 1, .nprobe = 16}, &out).ok());
    EXPECT_EQ(out[0].id, 1u);
  }
}

TEST(IvfPqIndexTest, SaveLoadGivesIdenticalResults) {
  const size_t n = 3000, d = 24;
  auto base = ClusteredVectors(n, d, 12, 0.3f, 11);
  auto queries = ClusteredVectors(30, d, 12, 0.3f, 12);
  for (size_t nbits : {4, 8}) {
    auto index = MakeIvf(d, Metric::kInnerProduct, nbits, 6, 16);
    if (nbits == 4) {  // the 4-bit case also exercises the int8 refine store
      IvfPqOptions o = index->options();
      o.refine_store = RefineStore::kInt8;
      index = std::move(IvfPqIndex::Create(d, Metric::kInnerProduct, o)).value();
    }
    ASSERT_TRUE(index->Add(Iota(n, 7), base).ok());
    std::vector<uint64_t> gone = {7, 100};
    ASSERT_TRUE(index->Remove(gone).ok());
    std::string path = ::testing::TempDir() + "/ivf_" + std::to_string(::getpid()) + ".qvi";
    ASSERT_TRUE(index->Save(path).ok());
    auto loaded = LoadIndex(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_EQ((*loaded)->type_name(), "ivf_pq");
    EXPECT_EQ((*loaded)->size(), n - 2);
    std::vector<Neighbor> a, b;
    for (size_t q = 0; q < 30; ++q) {
      for (size_t refine : {1, 4}) {
        SearchParams p{.k = 10, .nprobe = 4, .refine = refine};
        ASSERT_TRUE(index->Search({&queries[q * d], d}, p, &a).ok());
        ASSERT_TRUE((*loaded)->Search({&queries[q * d], d}, p, &b).ok());
        EXPECT_EQ(a, b);
      }
    }
    std::remove(path.c_str());
  }
}

// Identical vectors give a flat distance table (every entry equal): the fast scan must still
// return k items, all at the same distance.
TEST(IvfPqIndexTest, FlatTablesStillReturnResults) {
  const size_t n = 400, d = 8;
  std::vector<float> same(n * d, 0.5f);
  auto index = MakeIvf(d, Metric::kL2, 4, 4, 4, /*store=*/false);
  ASSERT_TRUE(index->Add(Iota(n), same).ok());
  std::vector<Neighbor> out;
  ASSERT_TRUE(index->Search({same.data(), d}, {.k = 10, .nprobe = 4}, &out).ok());
  ASSERT_EQ(out.size(), 10u);
  for (const auto& nb : out) EXPECT_NEAR(nb.distance, out[0].distance, 1e-6f);
}

TEST(IvfPqIndexTest, RejectsBadOptionsAndTooLittleTrainingData) {
  EXPECT_EQ(IvfPqIndex::Create(30, Metric::kL2, {.m = 7}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(IvfPqIndex::Create(32, Metric::kL2, {.nbits = 6}).status().code(),
            StatusCode::kInvalidArgument);
  auto index = MakeIvf(8, Metric::kL2, 8, 4, 64);
  auto few = RandomVectors(100, 8, 1);
  Status s = index->Add(Iota(100), few);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_EQ(index->size(), 0u);
  std::vector<Neighbor> out;
  ASSERT_TRUE(index->Search({&few[0], 8}, {.k = 3}, &out).ok());
  EXPECT_TRUE(out.empty());
  std::vector<float> wrong_centroids(10, 0.0f);
  EXPECT_EQ(index->SetCoarseCentroids(wrong_centroids).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quiver::index
