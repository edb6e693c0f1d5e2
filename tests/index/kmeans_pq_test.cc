#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "index/kmeans/kmeans.h"
#include "index/pq/product_quantizer.h"
#include "tests/testing/data.h"

namespace quiver::index {
namespace {

using quiver::testing::ClusteredVectors;
using quiver::testing::RandomVectors;

// Well-separated blobs: every true centre has a centroid within the blob's spread.
TEST(KMeansTest, RecoversPlantedCentres) {
  const size_t d = 8, k = 10, per = 200;
  std::mt19937_64 rng(3);
  std::normal_distribution<float> g(0, 0.05f);
  std::vector<float> centres(k * d), data;
  for (size_t c = 0; c < k; ++c) {
    for (size_t j = 0; j < d; ++j) centres[c * d + j] = float(c * 10 + j % 3);
    for (size_t i = 0; i < per; ++i) {
      for (size_t j = 0; j < d; ++j) data.push_back(centres[c * d + j] + g(rng));
    }
  }
  KMeansOptions o;
  o.k = k;
  o.plus_plus_init = true;
  auto r = TrainKMeans(data, d, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (size_t c = 0; c < k; ++c) {
    float best = 1e30f;
    for (size_t j = 0; j < k; ++j) {
      float dd = 0;
      for (size_t t = 0; t < d; ++t) {
        float e = r->centroids[j * d + t] - centres[c * d + t];
        dd += e * e;
      }
      best = std::min(best, dd);
    }
    EXPECT_LT(best, 0.01f) << "centre " << c;
  }
}

TEST(KMeansTest, DeterministicForASeedAndRejectsTooFewPoints) {
  auto data = ClusteredVectors(3000, 16, 20, 0.1f, 9);
  KMeansOptions o;
  o.k = 32;
  o.iterations = 5;
  auto a = TrainKMeans(data, 16, o), b = TrainKMeans(data, 16, o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->centroids, b->centroids);
  o.k = 5000;
  EXPECT_EQ(TrainKMeans(data, 16, o).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TrainKMeans(std::span<const float>(data).subspan(0, 17), 16, {}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(KMeansTest, RepairsEmptyClustersFromDuplicates) {
  // 90% of the points are one duplicate: naive Lloyd would leave clusters empty.
  const size_t d = 4;
  std::vector<float> data;
  for (int i = 0; i < 900; ++i) data.insert(data.end(), {1, 1, 1, 1});
  auto rest = RandomVectors(100, d, 4);
  data.insert(data.end(), rest.begin(), rest.end());
  KMeansOptions o;
  o.k = 16;
  auto r = TrainKMeans(data, d, o);
  ASSERT_TRUE(r.ok());
  std::vector<uint32_t> labels(1000);
  AssignNearest(data.data(), 1000, r->centroids.data(), 16, d, labels.data(), nullptr, 1);
  std::vector<int> used(16, 0);
  for (uint32_t l : labels) used[l] = 1;
  EXPECT_GE(std::accumulate(used.begin(), used.end(), 0), 12);
}

TEST(KMeansTest, BlasAndDirectAssignmentAgree) {
  const size_t d = 64, k = 100, n = 1000;
  auto data = RandomVectors(n, d, 12);
  auto cents = RandomVectors(k, d, 13);
  std::vector<uint32_t> blas(n), direct(n);
  std::vector<float> dist(n);
  AssignNearest(data.data(), n, cents.data(), k, d, blas.data(), dist.data(), 2);
  for (size_t i = 0; i < n; ++i) {
    float best = 1e30f;
    for (size_t c = 0; c < k; ++c) {
      float dd = 0;
      for (size_t t = 0; t < d; ++t) {
        float e = data[i * d + t] - cents[c * d + t];
        dd += e * e;
      }
      if (dd < best) {
        best = dd;
        direct[i] = uint32_t(c);
      }
    }
    EXPECT_NEAR(dist[i], best, 1e-3f * best);
  }
  size_t same = 0;
  for (size_t i = 0; i < n; ++i) same += blas[i] == direct[i];
  EXPECT_GE(same, n - 2);  // ties within float rounding may differ
}

class PqTest : public ::testing::TestWithParam<size_t> {};

TEST_P(PqTest, TableDistanceEqualsDistanceToDecodedVector) {
  const size_t d = 32, m = 8, nbits = GetParam();
  auto data = ClusteredVectors(4000, d, 30, 0.2f, 21);
  auto pq = ProductQuantizer::Train(data, d, m, nbits);
  ASSERT_TRUE(pq.ok()) << pq.status().ToString();
  EXPECT_EQ(pq->code_size(), nbits == 8 ? m : m / 2);
  auto queries = RandomVectors(20, d, 22);
  std::vector<uint8_t> code(pq->code_size());
  std::vector<float> decoded(d), table(m * pq->ksub());
  double err = 0, var = 0;
  for (size_t i = 0; i < 200; ++i) {
    pq->Encode(&data[i * d], code.data());
    pq->Decode(code.data(), decoded.data());
    for (size_t t = 0; t < d; ++t) {
      err += std::pow(decoded[t] - data[i * d + t], 2);
      var += std::pow(data[i * d + t], 2);
    }
    for (size_t q = 0; q < 20; q += 7) {
      pq->L2Table(&queries[q * d], table.data());
      double want = 0;
      for (size_t t = 0; t < d; ++t) want += std::pow(queries[q * d + t] - decoded[t], 2);
      EXPECT_NEAR(pq->TableDistance(table.data(), code.data()), want, 1e-4 * want + 1e-5);
      pq->IpTable(&queries[q * d], table.data());
      double ip = 0;
      for (size_t t = 0; t < d; ++t) ip += queries[q * d + t] * decoded[t];
      EXPECT_NEAR(pq->TableDistance(table.data(), code.data()), ip, 1e-4 * std::fabs(ip) + 1e-4);
    }
  }
  // Quantisation keeps most of the signal.
  EXPECT_LT(err / var, nbits == 8 ? 0.1 : 0.2);
}

TEST_P(PqTest, SerialisesAndRejectsBadShapes) {
  const size_t nbits = GetParam();
  auto data = RandomVectors(600, 12, 31);
  EXPECT_EQ(ProductQuantizer::Train(data, 12, 5, nbits).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ProductQuantizer::Train(data, 12, 4, 6).status().code(), StatusCode::kInvalidArgument);
  auto pq = ProductQuantizer::Train(data, 12, 4, nbits);
  ASSERT_TRUE(pq.ok());
  std::string s;
  pq->AppendTo(&s);
  std::string_view in(s);
  auto back = ProductQuantizer::Parse(&in);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(back->centroids(), pq->centroids());
  std::string_view cut(s.data(), s.size() - 1);
  EXPECT_EQ(ProductQuantizer::Parse(&cut).status().code(), StatusCode::kDataLoss);
}

INSTANTIATE_TEST_SUITE_P(Bits, PqTest, ::testing::Values(4, 8));

}  // namespace
}  // namespace quiver::index
