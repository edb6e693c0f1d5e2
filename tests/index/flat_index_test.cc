#include "index/flat/flat_index.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "index/index_factory.h"
#include "tests/testing/data.h"

namespace quiver::index {
namespace {

using quiver::testing::BruteForce;
using quiver::testing::Iota;
using quiver::testing::RandomVectors;

std::vector<uint64_t> IdsOf(const std::vector<Neighbor>& r) {
  std::vector<uint64_t> ids;
  ids.reserve(r.size());
  for (const auto& n : r) ids.push_back(n.id);
  return ids;
}

class FlatIndexMetricTest : public ::testing::TestWithParam<Metric> {};

TEST_P(FlatIndexMetricTest, MatchesBruteForceExactly) {
  const size_t n = 2000, d = 37, nq = 20, k = 15;
  auto base = RandomVectors(n, d, 1);
  auto ids = Iota(n, 1000);
  auto queries = RandomVectors(nq, d, 2);
  FlatIndex index(d, GetParam());
  ASSERT_TRUE(index.Add(ids, base).ok());
  EXPECT_EQ(index.size(), n);
  auto truth = BruteForce(base, ids, queries, d, GetParam(), k);
  std::vector<Neighbor> out;
  for (size_t q = 0; q < nq; ++q) {
    ASSERT_TRUE(index.Search({&queries[q * d], d}, {.k = k}, &out).ok());
    EXPECT_EQ(IdsOf(out), truth[q]) << "query " << q;
    for (size_t i = 1; i < out.size(); ++i) EXPECT_LE(out[i - 1].distance, out[i].distance);
  }
}

INSTANTIATE_TEST_SUITE_P(Metrics, FlatIndexMetricTest,
                         ::testing::Values(Metric::kL2, Metric::kInnerProduct, Metric::kCosine),
                         [](const auto& info) { return std::string(MetricName(info.param)); });

TEST(FlatIndexTest, DistancesFollowTheMetricDefinitions) {
  FlatIndex l2(2, Metric::kL2), ip(2, Metric::kInnerProduct), cos(2, Metric::kCosine);
  std::vector<uint64_t> ids = {7};
  std::vector<float> v = {3, 4};
  ASSERT_TRUE(l2.Add(ids, v).ok());
  ASSERT_TRUE(ip.Add(ids, v).ok());
  ASSERT_TRUE(cos.Add(ids, v).ok());
  std::vector<float> q = {1, 0};
  std::vector<Neighbor> out;
  ASSERT_TRUE(l2.Search(q, {.k = 1}, &out).ok());
  EXPECT_FLOAT_EQ(out[0].distance, 4 + 16);
  ASSERT_TRUE(ip.Search(q, {.k = 1}, &out).ok());
  EXPECT_FLOAT_EQ(out[0].distance, -3);
  ASSERT_TRUE(cos.Search(q, {.k = 1}, &out).ok());
  EXPECT_NEAR(out[0].distance, 1 - 0.6f, 1e-6f);
  EXPECT_NEAR(DistanceToScore(Metric::kCosine, out[0].distance), 0.6f, 1e-6f);
}

TEST(FlatIndexTest, RemoveAndReplace) {
  const size_t d = 8;
  FlatIndex index(d, Metric::kL2);
  auto base = RandomVectors(100, d, 3);
  ASSERT_TRUE(index.Add(Iota(100), base).ok());
  std::vector<uint64_t> gone = {0, 50, 99};
  ASSERT_TRUE(index.Remove(gone).ok());
  EXPECT_EQ(index.size(), 97u);
  EXPECT_FALSE(index.Contains(50));
  std::vector<Neighbor> out;
  for (uint64_t id : gone) {
    ASSERT_TRUE(index.Search({&base[id * d], d}, {.k = 100}, &out).ok());
    for (const auto& n : out) EXPECT_NE(n.id, id);
  }
  // Removing an absent id fails and removes nothing.
  std::vector<uint64_t> mixed = {1, 50};
  EXPECT_EQ(index.Remove(mixed).code(), StatusCode::kNotFound);
  EXPECT_TRUE(index.Contains(1));
  // Re-adding an id replaces its vector.
  std::vector<float> far(d, 100.0f);
  std::vector<uint64_t> one = {1};
  ASSERT_TRUE(index.Add(one, far).ok());
  EXPECT_EQ(index.size(), 97u);
  ASSERT_TRUE(index.Search(far, {.k = 1}, &out).ok());
  EXPECT_EQ(out[0].id, 1u);
  EXPECT_EQ(out[0].distance, 0.0f);
}

TEST(FlatIndexTest, FilterReturnsOnlyAllowedIds) {
  const size_t n = 500, d = 16;
  FlatIndex index(d, Metric::kL2);
  auto base = RandomVectors(n, d, 4);
  ASSERT_TRUE(index.Add(Iota(n), base).ok());
  PredicateSelector odd([](uint64_t id) { return id % 2 == 1; });
  std::vector<Neighbor> out;
  ASSERT_TRUE(index.Search({&base[0], d}, {.k = 20, .filter = &odd}, &out).ok());
  ASSERT_EQ(out.size(), 20u);
  for (const auto& nb : out) EXPECT_EQ(nb.id % 2, 1u);
}

TEST(FlatIndexTest, RejectsBadInputAndAddsNothing) {
  FlatIndex index(4, Metric::kCosine);
  std::vector<uint64_t> ids = {1, 2};
  std::vector<float> short_batch = {1, 2, 3, 4, 5};
  EXPECT_EQ(index.Add(ids, short_batch).code(), StatusCode::kInvalidArgument);
  std::vector<float> with_nan = {1, 2, 3, 4, 5, std::nanf(""), 7, 8};
  EXPECT_EQ(index.Add(ids, with_nan).code(), StatusCode::kInvalidArgument);
  std::vector<float> with_zero = {1, 2, 3, 4, 0, 0, 0, 0};
  EXPECT_EQ(index.Add(ids, with_zero).code(), StatusCode::kInvalidArgument);
  std::vector<uint64_t> dup = {3, 3};
  std::vector<float> ok = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(index.Add(dup, ok).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(index.size(), 0u);
  ASSERT_TRUE(index.Add(ids, ok).ok());
  std::vector<Neighbor> out;
  std::vector<float> q3 = {1, 2, 3};
  EXPECT_EQ(index.Search(q3, {.k = 1}, &out).code(), StatusCode::kInvalidArgument);
  std::vector<float> q4 = {1, 2, 3, 4};
  EXPECT_EQ(index.Search(q4, {.k = 0}, &out).code(), StatusCode::kInvalidArgument);
  std::vector<float> qz = {0, 0, 0, 0};
  EXPECT_EQ(index.Search(qz, {.k = 1}, &out).code(), StatusCode::kInvalidArgument);
}

TEST(FlatIndexTest, SaveLoadGivesIdenticalResults) {
  const size_t n = 300, d = 12;
  FlatIndex index(d, Metric::kInnerProduct);
  auto base = RandomVectors(n, d, 5);
  ASSERT_TRUE(index.Add(Iota(n, 10), base).ok());
  std::vector<uint64_t> gone = {10, 200};
  ASSERT_TRUE(index.Remove(gone).ok());
  std::string path = ::testing::TempDir() + "/flat_" + std::to_string(::getpid()) + ".qvi";
  ASSERT_TRUE(index.Save(path).ok());
  auto loaded = LoadIndex(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->type_name(), "flat");
  EXPECT_EQ((*loaded)->size(), n - 2);
  auto queries = RandomVectors(10, d, 6);
  std::vector<Neighbor> a, b;
  for (size_t q = 0; q < 10; ++q) {
    ASSERT_TRUE(index.Search({&queries[q * d], d}, {.k = 10}, &a).ok());
    ASSERT_TRUE((*loaded)->Search({&queries[q * d], d}, {.k = 10}, &b).ok());
    EXPECT_EQ(a, b);
  }
  std::remove(path.c_str());
}

TEST(FlatIndexTest, EmptyIndexReturnsNothing) {
  FlatIndex index(3, Metric::kL2);
  std::vector<float> q = {1, 2, 3};
  std::vector<Neighbor> out = {{1, 1}};
  ASSERT_TRUE(index.Search(q, {.k = 5}, &out).ok());
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace quiver::index
