#include "index/ivf/ivf_pq_index.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>

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

// Queries outside the items' range (scaled up, shifted, noisy: a user tower's vectors against
// an item tower's) are scored by int8 refine rows as well as queries inside it: the query is
// never quantised, so what remains is the rows' own rounding. With every list probed and a
// deep refine, recall@10 of each kind stays within 0.015 of the inside queries' (the symmetric
// scoring of before clamped such queries: recall 0.86 at best on Fashion-MNIST, issue 21).
TEST(IvfPqIndexTest, Int8RefineHoldsForQueriesOutsideTheDataRange) {
  const size_t n = 6000, d = 32, nq = 100;
  auto base = ClusteredVectors(n, d, 30, 0.2f, 15);
  auto ids = Iota(n);
  std::mt19937 rng(16);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct}) {
    auto f32 = MakeIvf(d, metric, 4, 16, 32, true);
    IvfPqOptions o = f32->options();
    o.refine_store = RefineStore::kInt8;
    auto int8 = std::move(IvfPqIndex::Create(d, metric, o)).value();
    ASSERT_TRUE(f32->Add(ids, base).ok());
    ASSERT_TRUE(int8->Add(ids, base).ok());
    const auto inside = ClusteredVectors(nq, d, 30, 0.2f, 17);
    const SearchParams all = {.k = 10, .nprobe = 32, .refine = 20};
    auto recall = [&](const IvfPqIndex& index, const std::vector<float>& queries) {
      return Recall(SearchAll(index, queries, all), BruteForce(base, ids, queries, d, metric, 10));
    };
    const double int8_inside = recall(*int8, inside);
    EXPECT_GE(int8_inside, 0.95);
    for (const char* kind : {"scaled x3", "shifted +2", "noisy"}) {
      std::vector<float> queries = inside;
      for (float& x : queries) {
        if (kind[1] == 'c') x *= 3.0f;
        if (kind[1] == 'h') x += 2.0f;
        if (kind[0] == 'n') x += noise(rng);
      }
      const double int8_rows = recall(*int8, queries), float_rows = recall(*f32, queries);
      const std::string what = std::string(kind) + (metric == Metric::kL2 ? " l2" : " ip");
      EXPECT_GE(int8_rows, int8_inside - 0.015) << what;
      EXPECT_GE(float_rows, 0.99) << what;
    }
  }
}

// int8 refine rows of data off the integer grid get a scale per row (fitted to the row's own
// range): on Gaussian rows of norms varying 4x, one scale for all (the whole sample's range,
// long rows' tails included) cost recall@10 0.95 here where float32 rows give 1.0; per-row
// rows stay within 0.01 of float32, also after a save and load.
TEST(IvfPqIndexTest, Int8RowsOffTheIntegerGridKeepFloatRecall) {
  const size_t n = 20000, d = 97, nq = 200;
  auto gaussian = [&](size_t rows, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> g;
    std::uniform_real_distribution<float> norm(0.5f, 2.0f);
    std::vector<float> v(rows * d);
    for (size_t i = 0; i < rows; ++i) {
      const float scale = norm(rng);
      for (size_t t = 0; t < d; ++t) v[i * d + t] = scale * g(rng);
    }
    return v;
  };
  const auto base = gaussian(n, 61), queries = gaussian(nq, 62);
  const auto ids = Iota(n);
  const SearchParams all = {.k = 10, .nprobe = 16, .refine = 10};
  auto f32 = MakeIvf(d, Metric::kL2, 4, 97, 16);
  IvfPqOptions o = f32->options();
  o.refine_store = RefineStore::kInt8;
  auto int8 = std::move(IvfPqIndex::Create(d, Metric::kL2, o)).value();
  ASSERT_TRUE(f32->Add(ids, base).ok());
  ASSERT_TRUE(int8->Add(ids, base).ok());
  const auto truth = BruteForce(base, ids, queries, d, Metric::kL2, 10);
  const double float_rows = Recall(SearchAll(*f32, queries, all), truth);
  const double int8_rows = Recall(SearchAll(*int8, queries, all), truth);
  EXPECT_GE(int8_rows, float_rows - 0.01) << "float32 " << float_rows;
  const std::string path = ::testing::TempDir() + "/ivf8_" + std::to_string(::getpid()) + ".qvi";
  ASSERT_TRUE(int8->Save(path).ok());
  auto loaded = LoadIndex(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(SearchAll(**loaded, queries, all), SearchAll(*int8, queries, all));
  std::vector<float> back(d);
  ASSERT_TRUE((*loaded)->GetVector(5, back.data()).ok());
  // Within half a step of the row's own scale.
  const auto [lo, hi] = std::minmax_element(&base[5 * d], &base[6 * d]);
  for (size_t t = 0; t < d; ++t) EXPECT_NEAR(back[t], base[5 * d + t], (*hi - *lo) / 510 + 1e-6f);
  std::remove(path.c_str());
}

// Unit rows (embeddings trained with a cosine loss, searched by inner product): the index's
// lists are L2 cells of the items lifted to dim + 1 (IvfPqIndex::lift_e_), probed in the lifted
// space's L2 order, so an inner-product index answers as an L2 index of the same rows does
// (the same order on unit rows). Lists by the largest dot to unlifted centroids, as before,
// gave 0.80 at 16 of 128 lists here where L2 gives 0.85 (the 300-dim set of issue 21: 0.87
// against 0.94 at 32 of 256).
TEST(IvfPqIndexTest, InnerProductOnUnitRowsIsAsGoodAsL2) {
  const size_t n = 20000, d = 64, nq = 200;
  auto base = ClusteredVectors(n, d, 400, 0.3f, 51);
  auto queries = ClusteredVectors(nq, d, 400, 0.3f, 52);
  for (size_t i = 0; i < n; ++i) {
    float s2 = 0;
    for (size_t t = 0; t < d; ++t) s2 += base[i * d + t] * base[i * d + t];
    for (size_t t = 0; t < d; ++t) base[i * d + t] /= std::sqrt(s2);
  }
  auto ids = Iota(n);
  const SearchParams p = {.k = 10, .nprobe = 16, .refine = 10};
  auto recall = [&](Metric metric) {
    auto index = MakeIvf(d, metric, 4, 32, 128);
    QV_CHECK(index->Add(ids, base).ok());
    return Recall(SearchAll(*index, queries, p), BruteForce(base, ids, queries, d, metric, 10));
  };
  const double ip = recall(Metric::kInnerProduct), l2 = recall(Metric::kL2);
  EXPECT_GE(ip, l2 - 0.02) << "l2 " << l2;
  EXPECT_GE(ip, 0.83);
}

// Items of very different norms (popular items' vectors are longer): the lifted query is
// scaled to the items' sphere, so the probe order follows the query's direction whatever its
// norm (without that scaling recall here was 0.91; 0.97 with it). Items added after training,
// longer than any the lists were trained on (they lift to 0), are found too.
TEST(IvfPqIndexTest, InnerProductOverItemsOfManyNorms) {
  const size_t n = 10000, d = 32, nq = 200;
  auto base = ClusteredVectors(n, d, 50, 0.2f, 41);
  auto queries = ClusteredVectors(nq, d, 50, 0.2f, 42);
  std::mt19937 rng(43);
  std::uniform_real_distribution<float> norm(0.3f, 3.0f);
  for (size_t i = 0; i < n; ++i) {
    const float scale = norm(rng);
    for (size_t t = 0; t < d; ++t) base[i * d + t] *= scale;
  }
  auto ids = Iota(n);
  const SearchParams p = {.k = 10, .nprobe = 4, .refine = 10};
  auto ip = MakeIvf(d, Metric::kInnerProduct, 4, 16, 64);
  ASSERT_TRUE(ip->Add(ids, base).ok());
  EXPECT_GE(Recall(SearchAll(*ip, queries, p),
                   BruteForce(base, ids, queries, d, Metric::kInnerProduct, 10)),
            0.95);
  // The same queries 10x longer: the same answers.
  std::vector<float> longer_queries = queries;
  for (float& x : longer_queries) x *= 10.0f;
  const auto a = SearchAll(*ip, longer_queries, p), b = SearchAll(*ip, queries, p);
  size_t same = 0;
  for (size_t q = 0; q < nq; ++q) {
    bool equal = a[q].size() == b[q].size();
    for (size_t i = 0; equal && i < a[q].size(); ++i) equal = a[q][i].id == b[q][i].id;
    same += equal;
  }
  EXPECT_EQ(same, nq);
  std::vector<float> longer(base.begin(), base.begin() + 500 * d);
  for (float& x : longer) x *= 4.0f;
  ASSERT_TRUE(ip->Add(Iota(500, n), longer).ok());
  std::vector<float> all = base;
  all.insert(all.end(), longer.begin(), longer.end());
  EXPECT_GE(Recall(SearchAll(*ip, queries, {.k = 10, .nprobe = 8, .refine = 10}),
                   BruteForce(all, Iota(n + 500), queries, d, Metric::kInnerProduct, 10)),
            0.70);
}

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
    for (size_t t = 0; t < d; ++t)
      exact += std::pow(queries[q * d + t] - base[out[0].id * d + t], 2);
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
    for (size_t t = 0; t < d; ++t)
      centroids[lists[i] * d + t] += base[i * d + t] / (float(n) / float(nlist));
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
      ASSERT_TRUE(
          index->Search({&base[q * d], d}, {.k = 20, .nprobe = 16, .filter = &even}, &out).ok());
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

// Asking for k gives k when the collection holds k: lists past nprobe are scanned while fewer
// than k candidates were found (k near the size, or a filter passing few).
TEST(IvfPqIndexTest, KNearTheCollectionSizeReturnsKItems) {
  const size_t n = 3000, d = 16;
  auto base = RandomVectors(n, d, 43);
  for (size_t nbits : {4, 8}) {
    auto index = MakeIvf(d, Metric::kInnerProduct, nbits, 8, 32);
    ASSERT_TRUE(index->Add(Iota(n), base).ok());
    std::vector<Neighbor> out;
    for (size_t k : {n - 10, n, n + 50}) {
      ASSERT_TRUE(index->Search({&base[0], d}, {.k = k, .nprobe = 1}, &out).ok());
      EXPECT_EQ(out.size(), std::min(k, n)) << "k " << k << ", nbits " << nbits;
    }
    PredicateSelector few([](uint64_t id) { return id % 100 == 0; });
    ASSERT_TRUE(index->Search({&base[0], d}, {.k = 50, .nprobe = 1, .filter = &few}, &out).ok());
    EXPECT_EQ(out.size(), 30u);
    for (const Neighbor& nb : out) EXPECT_EQ(nb.id % 100, 0u);
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
  EXPECT_EQ(IvfPqIndex::Create(30, Metric::kL2, {.m = 7}).status().code(),
            StatusCode::kInvalidArgument);
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

namespace quiver::index {
namespace {

// Items with W convex weights (MVKE's alpha); the exact weighted score sum_k w_ik (q_k . x_i).
struct Weighted {
  size_t n, d, w;
  std::vector<float> base, weights;
  std::vector<uint64_t> ids;
};

Weighted MakeWeighted(size_t n, size_t d, size_t w, uint64_t seed) {
  Weighted x{n,  d,
             w,  quiver::testing::ClusteredVectors(n, d, 20, 0.3f, seed),
             {}, quiver::testing::Iota(n, 1000)};
  auto raw = quiver::testing::RandomVectors(n, w, seed + 1);
  for (size_t i = 0; i < n; ++i) {
    float sum = 0;
    for (size_t k = 0; k < w; ++k) sum += (raw[i * w + k] = std::exp(3.0f * raw[i * w + k]));
    for (size_t k = 0; k < w; ++k) x.weights.push_back(raw[i * w + k] / sum);
  }
  return x;
}

std::vector<uint64_t> WeightedTruth(const Weighted& x, const float* q, size_t k,
                                    const std::set<uint64_t>& skip = {}) {
  std::vector<std::pair<double, uint64_t>> all;
  for (size_t i = 0; i < x.n; ++i) {
    if (skip.count(x.ids[i])) continue;
    double s = 0;
    for (size_t t = 0; t < x.w; ++t) {
      double dot = 0;
      for (size_t j = 0; j < x.d; ++j) dot += double(q[t * x.d + j]) * x.base[i * x.d + j];
      s += x.weights[i * x.w + t] * dot;
    }
    all.emplace_back(-s, x.ids[i]);
  }
  std::partial_sort(all.begin(), all.begin() + k, all.end());
  std::vector<uint64_t> out;
  for (size_t i = 0; i < k; ++i) out.push_back(all[i].second);
  return out;
}

// exact: float32 rows, so that SearchWeighted rescores its candidates exactly.
std::unique_ptr<IvfPqIndex> MakeWeightedIvf(size_t d, size_t nbits, size_t w, bool exact = true) {
  IvfPqOptions o;
  o.nlist = 32;
  o.m = d / 2;
  o.nbits = nbits;
  o.weights = w;
  o.refine_store = exact ? RefineStore::kFloat32 : RefineStore::kNone;
  o.refine = exact ? 4 : 0;
  o.threads = 2;
  return std::move(IvfPqIndex::Create(d, Metric::kInnerProduct, o)).value();
}

// With every list probed, the weighted scan ranks by the PQ reconstruction's weighted score:
// close to the float truth (8-bit tables are exact; 4-bit ones quantised). With float32 rows
// the 4k best by it are rescored exactly: nearly the truth, with the true scores.
TEST(IvfPqWeightedTest, WeightedScanFindsTheWeightedTopK) {
  const size_t n = 4000, d = 32, w = 3, nq = 40, k = 20;
  Weighted x = MakeWeighted(n, d, w, 21);
  auto queries = quiver::testing::RandomVectors(nq, w * d, 22);
  auto score = [&](const float* q, uint64_t id) {
    const size_t i = id - 1000;
    double s = 0;
    for (size_t t = 0; t < w; ++t) {
      double dot = 0;
      for (size_t j = 0; j < d; ++j) dot += double(q[t * d + j]) * x.base[i * d + j];
      s += x.weights[i * w + t] * dot;
    }
    return s;
  };
  for (auto [nbits, exact] : {std::pair{8, false}, {4, false}, {8, true}, {4, true}}) {
    auto index = MakeWeightedIvf(d, size_t(nbits), w, exact);
    ASSERT_TRUE(index->AddWeighted(x.ids, x.base, x.weights).ok());
    double hit = 0, hit_some = 0;
    std::vector<Neighbor> out;
    for (size_t q = 0; q < nq; ++q) {
      auto truth = WeightedTruth(x, &queries[q * w * d], k);
      ASSERT_TRUE(
          index->SearchWeighted({&queries[q * w * d], w * d}, {.k = k, .nprobe = 32}, &out).ok());
      ASSERT_EQ(out.size(), k);
      for (size_t i = 1; i < out.size(); ++i) EXPECT_LE(out[i - 1].distance, out[i].distance);
      if (exact) {
        for (const auto& nb : out)
          EXPECT_NEAR(-nb.distance, score(&queries[q * w * d], nb.id), 1e-4);
      }
      std::set<uint64_t> got;
      for (const auto& nb : out) got.insert(nb.id);
      for (uint64_t id : truth) hit += got.count(id);
      ASSERT_TRUE(
          index->SearchWeighted({&queries[q * w * d], w * d}, {.k = k, .nprobe = 8}, &out).ok());
      for (const auto& nb : out) hit_some += std::count(truth.begin(), truth.end(), nb.id);
    }
    const double recall = hit / double(nq * k), recall8 = hit_some / double(nq * k);
    std::printf("nbits %d%s: weighted recall@%zu %.3f (all 32 lists), %.3f (8 lists)\n", nbits,
                exact ? " + exact rescoring" : "", k, recall, recall8);
    EXPECT_GE(recall, exact ? 0.97 : nbits == 8 ? 0.85 : 0.75) << nbits;
    EXPECT_GE(recall8, nbits == 8 ? 0.6 : 0.5) << nbits;
  }
}

// Each item's own weights count: with one-hot weights and only q_0 non-zero, every item
// weighted on another query scores 0, so the top k (all positive) carry weight on query 0.
TEST(IvfPqWeightedTest, EachItemsOwnWeightsAreUsed) {
  const size_t n = 2000, d = 16, w = 2, k = 30;
  Weighted x = MakeWeighted(n, d, w, 31);
  // Odd items: all weight on query 0; even items: all on query 1 (which is zero).
  for (size_t i = 0; i < n; ++i)
    x.weights[i * w] = float(i % 2), x.weights[i * w + 1] = float(1 - i % 2);
  std::vector<float> q(w * d, 0.0f);
  for (size_t j = 0; j < d; ++j) q[j] = x.base[7 * d + j];  // along item 7 (odd)
  for (size_t nbits : {8, 4}) {
    auto index = MakeWeightedIvf(d, nbits, w, /*exact=*/false);  // the scan's own weighting
    ASSERT_TRUE(index->AddWeighted(x.ids, x.base, x.weights).ok());
    std::vector<Neighbor> out;
    ASSERT_TRUE(index->SearchWeighted(q, {.k = k, .nprobe = 32}, &out).ok());
    ASSERT_EQ(out.size(), k);
    for (const auto& nb : out) EXPECT_EQ((nb.id - 1000) % 2, 1u) << nb.id << " nbits " << nbits;
    EXPECT_EQ(out[0].id, 1007u);
  }
}

// Removal moves the last item of a list into the gap: its weights must move with it; a
// re-added item takes its new weights; both survive a save and a load; filters apply.
TEST(IvfPqWeightedTest, RemoveReplaceFilterAndSaveLoad) {
  const size_t n = 3000, d = 16, w = 2, nq = 20, k = 10;
  Weighted x = MakeWeighted(n, d, w, 41);
  auto queries = quiver::testing::RandomVectors(nq, w * d, 42);
  for (size_t nbits : {8, 4}) {
    auto index = MakeWeightedIvf(d, nbits, w);
    ASSERT_TRUE(index->AddWeighted(x.ids, x.base, x.weights).ok());
    std::vector<uint64_t> gone;
    for (size_t i = 0; i < n; i += 3) gone.push_back(x.ids[i]);
    ASSERT_TRUE(index->Remove(gone).ok());
    // Re-add item 1001 with all weight on query 1.
    std::vector<float> w1001 = {0.0f, 1.0f};
    ASSERT_TRUE(index->AddWeighted(std::vector<uint64_t>{1001}, {&x.base[1 * d], d}, w1001).ok());
    x.weights[1 * w] = 0.0f, x.weights[1 * w + 1] = 1.0f;
    std::set<uint64_t> skip(gone.begin(), gone.end());
    PredicateSelector odd([](uint64_t id) { return id % 2 == 1; });
    double hit = 0;
    std::vector<Neighbor> out, filtered;
    for (size_t q = 0; q < nq; ++q) {
      const float* qv = &queries[q * w * d];
      auto truth = WeightedTruth(x, qv, k, skip);
      ASSERT_TRUE(index->SearchWeighted({qv, w * d}, {.k = k, .nprobe = 32}, &out).ok());
      for (const auto& nb : out) {
        EXPECT_FALSE(skip.count(nb.id)) << nb.id << " was removed";
        hit += std::count(truth.begin(), truth.end(), nb.id);
      }
      ASSERT_TRUE(
          index->SearchWeighted({qv, w * d}, {.k = k, .nprobe = 32, .filter = &odd}, &filtered)
              .ok());
      ASSERT_EQ(filtered.size(), k);
      for (const auto& nb : filtered) EXPECT_EQ(nb.id % 2, 1u);
    }
    EXPECT_GE(hit / double(nq * k), nbits == 8 ? 0.85 : 0.75) << nbits;
    std::string path = ::testing::TempDir() + "/ivfw_" + std::to_string(::getpid()) + ".qvi";
    ASSERT_TRUE(index->Save(path).ok());
    auto loaded = LoadIndex(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    const auto& back = static_cast<const IvfPqIndex&>(**loaded);
    EXPECT_EQ(back.options().weights, w);
    std::vector<Neighbor> again;
    for (size_t q = 0; q < nq; ++q) {
      ASSERT_TRUE(
          index->SearchWeighted({&queries[q * w * d], w * d}, {.k = k, .nprobe = 8}, &out).ok());
      ASSERT_TRUE(
          back.SearchWeighted({&queries[q * w * d], w * d}, {.k = k, .nprobe = 8}, &again).ok());
      EXPECT_EQ(out, again);
    }
    std::remove(path.c_str());
  }
}

TEST(IvfPqWeightedTest, BadCallsGetClearErrors) {
  auto plain = MakeIvf(8, Metric::kInnerProduct, 4, 4, 4);
  ASSERT_TRUE(
      plain->Add(quiver::testing::Iota(200), quiver::testing::RandomVectors(200, 8, 1)).ok());
  std::vector<Neighbor> out;
  std::vector<float> q(16, 0.5f);
  EXPECT_EQ(plain->SearchWeighted(q, {.k = 5}, &out).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(plain
                ->AddWeighted(std::vector<uint64_t>{1}, std::vector<float>(8, 0.0f),
                              std::vector<float>{1})
                .code(),
            StatusCode::kFailedPrecondition);
  auto index = MakeWeightedIvf(8, 4, 2);
  auto base = quiver::testing::RandomVectors(200, 8, 2);
  EXPECT_EQ(
      index->AddWeighted(quiver::testing::Iota(200), base, std::vector<float>(399, 0.5f)).code(),
      StatusCode::kInvalidArgument);
  std::vector<float> bad_weights(400, 0.5f);
  bad_weights[7] = NAN;
  EXPECT_EQ(index->AddWeighted(quiver::testing::Iota(200), base, bad_weights).code(),
            StatusCode::kInvalidArgument);
  ASSERT_TRUE(
      index->AddWeighted(quiver::testing::Iota(200), base, std::vector<float>(400, 0.5f)).ok());
  EXPECT_EQ(index->SearchWeighted(std::vector<float>(8, 0.5f), {.k = 5}, &out).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(index->SearchWeighted(q, {.k = 0}, &out).code(), StatusCode::kInvalidArgument);
  q[3] = NAN;
  EXPECT_EQ(index->SearchWeighted(q, {.k = 5}, &out).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quiver::index
