// MVKE: every strategy against a brute-force evaluation of score(i) = sum_k alpha_ik (u_k . t_i).
// Exact strategies on exact indexes must match it exactly; on HNSW they must keep a stated
// recall, and every returned score must be exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "engine/engine.h"
#include "engine/partitions.h"
#include "tests/testing/temp_dir.h"

namespace quiver::engine {
namespace {

constexpr uint32_t kTopics = 4;

// Items with random t and alpha = softmax(t . kernel_k / 2) over K random kernels (as MVKE
// computes them), categories 0..9.
std::vector<ItemRecord> TopicItems(size_t n, uint32_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<std::vector<float>> kernels(kTopics, std::vector<float>(dim));
  for (auto& k : kernels) {
    for (float& x : k) x = g(rng);
  }
  std::vector<ItemRecord> items(n);
  for (size_t i = 0; i < n; ++i) {
    ItemRecord& item = items[i];
    item.id = 1000 + i;
    item.category = int64_t(i % 10);
    for (uint32_t d = 0; d < dim; ++d) item.vector.push_back(g(rng));
    std::vector<double> logit(kTopics);
    double top = -1e30, sum = 0;
    for (uint32_t k = 0; k < kTopics; ++k) {
      double dot = 0;
      for (uint32_t d = 0; d < dim; ++d) dot += double(item.vector[d]) * kernels[k][d];
      logit[k] = dot / 2;
      top = std::max(top, logit[k]);
    }
    for (double& l : logit) sum += (l = std::exp(l - top));
    for (double l : logit) item.topic_weights.push_back(float(l / sum));
    // Make them sum to 1 in float as well.
    float s = 0;
    for (uint32_t k = 0; k + 1 < kTopics; ++k) s += item.topic_weights[k];
    item.topic_weights[kTopics - 1] = std::max(0.0f, 1.0f - s);
  }
  return items;
}

std::vector<std::vector<float>> UserVectors(uint32_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<std::vector<float>> u(kTopics, std::vector<float>(dim));
  for (auto& v : u) {
    for (float& x : v) x = g(rng);
  }
  return u;
}

struct Ref {
  double score;
  uint64_t id;
  uint32_t topic;
};

Ref Exact(const ItemRecord& item, const std::vector<std::vector<float>>& u) {
  Ref r{0, item.id, 0};
  double best = -1e30;
  for (uint32_t k = 0; k < kTopics; ++k) {
    double dot = 0;
    for (size_t d = 0; d < item.vector.size(); ++d) dot += double(u[k][d]) * item.vector[d];
    const double term = item.topic_weights[k] * dot;
    r.score += term;
    if (item.topic_weights[k] > 0 && term > best) best = term, r.topic = k;
  }
  return r;
}

std::vector<Ref> BruteForce(const std::vector<ItemRecord>& items,
                            const std::vector<std::vector<float>>& u, size_t n,
                            const std::function<bool(const ItemRecord&)>& keep = nullptr) {
  std::vector<Ref> all;
  for (const auto& item : items) {
    if (!keep || keep(item)) all.push_back(Exact(item, u));
  }
  std::sort(all.begin(), all.end(), [](const Ref& a, const Ref& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  all.resize(std::min(n, all.size()));
  return all;
}

double Recall(const std::vector<QueryHit>& got, const std::vector<Ref>& want) {
  std::set<uint64_t> w;
  for (const Ref& r : want) w.insert(r.id);
  size_t hit = 0;
  for (const QueryHit& h : got) hit += w.count(h.id);
  return double(hit) / double(want.size());
}

class MvkeTest : public ::testing::Test {
 protected:
  void Open() {
    engine_.reset();
    auto e = Engine::Open(dir_.path() + "/v", {});
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
  }
  void Create(IndexSpec::Type type, uint32_t dim, size_t n, float threshold) {
    Open();
    CollectionSchema s;
    s.name = "m";
    s.dim = dim;
    s.metric = Metric::kInnerProduct;
    s.index.type = type;
    s.index.hnsw_m = 16;
    s.index.hnsw_ef_construction = 100;
    s.index.ivf_nlist = 32;  // IVF-PQ: 4-bit codes, float32 rows for the exact rescoring
    s.index.ivf_m = dim / 2;
    s.index.ivf_nbits = 4;
    s.index.ivf_nprobe = 32;  // every list: the weighted scan sees every item
    s.topics = kTopics;
    s.topic_threshold = threshold;
    s.topic_concat = true;
    ASSERT_TRUE(engine_->CreateCollection(s).ok());
    items_ = TopicItems(n, dim, 11);
    ASSERT_TRUE(engine_->Upsert("m", items_).ok());
  }
  Result<QueryResult> Mvke(const std::vector<std::vector<float>>& u, MvkeStrategy strategy,
                           uint32_t k, uint32_t candidates = 0,
                           std::optional<Filter> filter = std::nullopt,
                           uint32_t max_candidates = 0) {
    QuerySpec q;
    q.k = k;
    q.mvke = MvkeSpec{u, strategy, candidates, max_candidates};
    q.filter = std::move(filter);
    return engine_->Query("m", q);
  }
  // Every hit's score and topic are the exact ones.
  void ExpectExactScores(const std::vector<QueryHit>& hits,
                         const std::vector<std::vector<float>>& u) {
    for (const QueryHit& h : hits) {
      const Ref r = Exact(items_[h.id - 1000], u);
      EXPECT_NEAR(h.score, r.score, 1e-4 * std::max(1.0, std::fabs(r.score))) << h.id;
      EXPECT_EQ(h.vector, r.topic) << h.id;
    }
  }

  quiver::testing::ScopedTempDir dir_;
  std::unique_ptr<Engine> engine_;
  std::vector<ItemRecord> items_;
};

TEST_F(MvkeTest, ExactIndexesGiveTheExactTopNForEveryStrategy) {
  Create(IndexSpec::Type::kFlat, 16, 1500, 0.0f);
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    const auto u = UserVectors(16, seed);
    const auto want = BruteForce(items_, u, 40);
    // per_topic deepening as far as the threshold algorithm needs (up to every item) is exact.
    for (auto [strategy, candidates] : {std::pair{MvkeStrategy::kPerTopic, 0u},
                                        {MvkeStrategy::kConcat, 0u},
                                        {MvkeStrategy::kRescore, 1500u}}) {
      auto r = Mvke(u, strategy, 40, candidates, std::nullopt,
                    strategy == MvkeStrategy::kPerTopic ? 1500 : 0);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->hits.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(r->hits[i].id, want[i].id)
            << "strategy " << int(strategy) << " seed " << seed << " rank " << i;
      }
      ExpectExactScores(r->hits, u);
    }
    // rescore with few candidates finds part of the top only, but scores what it finds exactly.
    auto few = Mvke(u, MvkeStrategy::kRescore, 40, 40);
    ASSERT_TRUE(few.ok());
    ExpectExactScores(few->hits, u);
  }
}

TEST_F(MvkeTest, FiltersApplyExactlyInsideAndByScan) {
  Create(IndexSpec::Type::kFlat, 16, 1500, 0.0f);
  const auto u = UserVectors(16, 3);
  // Half the items (inside the traversal) and one category in ten restricted further (a scan).
  Filter half{Filter::Op::kIn, Filter::Field::kCategory, {0, 2, 4, 6, 8}};
  auto want = BruteForce(items_, u, 30, [](const ItemRecord& i) { return *i.category % 2 == 0; });
  auto r = Mvke(u, MvkeStrategy::kPerTopic, 30, 0, half, 1500);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->hits.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(r->hits[i].id, want[i].id) << i;
  Filter one{Filter::Op::kEq, Filter::Field::kCategory, {7}};
  want = BruteForce(items_, u, 30, [](const ItemRecord& i) { return *i.category == 7; });
  r = Mvke(u, MvkeStrategy::kConcat, 30, 0, one);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->hits.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(r->hits[i].id, want[i].id) << i;
}

TEST_F(MvkeTest, HnswKeepsRecallAndExactScores) {
  Create(IndexSpec::Type::kHnsw, 32, 6000, 0.05f);
  double per_topic = 0, concat = 0;
  const int users = 20;
  for (int s = 0; s < users; ++s) {
    const auto u = UserVectors(32, 100 + uint32_t(s));
    const auto want = BruteForce(items_, u, 100);
    auto a = Mvke(u, MvkeStrategy::kPerTopic, 100);
    auto b = Mvke(u, MvkeStrategy::kConcat, 100, 300);  // three times the candidates
    ASSERT_TRUE(a.ok() && b.ok());
    per_topic += Recall(a->hits, want) / users;
    concat += Recall(b->hits, want) / users;
    ExpectExactScores(a->hits, u);
    ExpectExactScores(b->hits, u);
    for (size_t i = 1; i < a->hits.size(); ++i) EXPECT_GE(a->hits[i - 1].score, a->hits[i].score);
  }
  EXPECT_GE(per_topic, 0.95);
  EXPECT_GE(concat, 0.90);
  std::printf("recall@100: per_topic %.3f, concat (300 candidates) %.3f\n", per_topic, concat);
}

// IVF-PQ keeps each item's alpha beside its code; one weighted scan of the probed lists
// (sum_k alpha_ik (u_k . PQ(t_i))) gives candidates that are rescored exactly.
TEST_F(MvkeTest, IvfPqWeightedScanKeepsRecallAndExactScores) {
  Create(IndexSpec::Type::kIvfPq, 32, 6000, 0.05f);
  const int users = 20;
  double recall = 0, recall_half = 0;
  std::vector<std::vector<QueryHit>> first;
  for (int s = 0; s < users; ++s) {
    const auto u = UserVectors(32, 200 + uint32_t(s));
    const auto want = BruteForce(items_, u, 100);
    auto r = Mvke(u, MvkeStrategy::kWeightedScan, 100, 400);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->hits.size(), 100u);
    recall += Recall(r->hits, want) / users;
    ExpectExactScores(r->hits, u);
    first.push_back(r->hits);
    // Half the lists, chosen by sum_k mean(alpha_k) (u_k . c_l): fewer found, all exact.
    QuerySpec q;
    q.k = 100;
    q.nprobe = 16;
    q.mvke = MvkeSpec{u, MvkeStrategy::kWeightedScan, 400, 0};
    auto half = engine_->Query("m", q);
    ASSERT_TRUE(half.ok()) << half.status();
    recall_half += Recall(half->hits, want) / users;
    ExpectExactScores(half->hits, u);
  }
  std::printf("recall@100: weighted_scan (400 candidates) %.3f with all 32 lists, %.3f with 16\n",
              recall, recall_half);
  EXPECT_GE(recall, 0.93);
  EXPECT_GE(recall_half, 0.6);  // unclustered Gaussian items: IVF's hardest case
  // The weights survive a snapshot and a restart: the same answers.
  ASSERT_TRUE(engine_->Snapshot("m").ok());
  Open();
  for (int s = 0; s < users; ++s) {
    auto r = Mvke(UserVectors(32, 200 + uint32_t(s)), MvkeStrategy::kWeightedScan, 100, 400);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->hits, first[size_t(s)]) << s;
  }
  // An upsert that moves an item's weight to topic 3, with u_3 along the item: found first.
  ItemRecord moved = items_[0];
  moved.topic_weights = {0.0f, 0.0f, 0.0f, 1.0f};
  ASSERT_TRUE(engine_->Upsert("m", std::span(&moved, 1)).ok());
  std::vector<std::vector<float>> u(kTopics, std::vector<float>(32, 0.0f));
  for (size_t d = 0; d < 32; ++d) u[3][d] = moved.vector[d];
  auto r = Mvke(u, MvkeStrategy::kWeightedScan, 5, 50);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->hits.empty());
  EXPECT_EQ(r->hits[0].id, moved.id);
  EXPECT_EQ(r->hits[0].vector, 3u);
}

TEST_F(MvkeTest, WeightedScanNeedsAnIvfPqCollection) {
  Create(IndexSpec::Type::kHnsw, 16, 300, 0.0f);
  auto r = Mvke(UserVectors(16, 1), MvkeStrategy::kWeightedScan, 10);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("ivf_pq"), std::string::npos) << r.status();
}

TEST_F(MvkeTest, UpsertsDeletesAndRestartsKeepTopicIndexesCurrent) {
  Create(IndexSpec::Type::kFlat, 16, 800, 0.2f);
  // Item 0 moves from mostly topic 0 to mostly topic 3; item 1 is deleted.
  ItemRecord moved = items_[0];
  for (float& x : moved.vector) x *= 3;  // far longer than any other item: first for its direction
  moved.topic_weights = {0.05f, 0.05f, 0.1f, 0.8f};
  items_[0] = moved;
  ASSERT_TRUE(engine_->Upsert("m", std::span(&moved, 1)).ok());
  ASSERT_TRUE(engine_->Delete("m", std::vector<uint64_t>{items_[1].id}).ok());
  // A user who likes exactly item 0's direction under topic 3 finds it first; under topic 0
  // the item is no longer indexed (alpha 0.05 < 0.2) but its exact score is still all terms.
  std::vector<std::vector<float>> u(kTopics, std::vector<float>(16, 0.0f));
  for (size_t d = 0; d < 16; ++d) u[3][d] = 100 * moved.vector[d];
  auto r = Mvke(u, MvkeStrategy::kPerTopic, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->hits.empty());
  EXPECT_EQ(r->hits[0].id, moved.id);
  EXPECT_EQ(r->hits[0].vector, 3u);
  std::vector<ItemRecord> live(items_.begin(), items_.end());
  live.erase(live.begin() + 1);
  const auto u2 = UserVectors(16, 9);
  auto before = Mvke(u2, MvkeStrategy::kConcat, 25);
  ASSERT_TRUE(before.ok());
  const auto want = BruteForce(live, u2, 25);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(before->hits[i].id, want[i].id) << i;
  for (const QueryHit& h : before->hits) EXPECT_NE(h.id, items_[1].id);
  // From a snapshot, and from the op log after it: the same answers.
  ASSERT_TRUE(engine_->Snapshot("m").ok());
  ItemRecord late = items_[2];
  late.topic_weights = {0.7f, 0.1f, 0.1f, 0.1f};
  items_[2] = late;
  live[1] = late;  // live[1] is items_[2] after the erase
  ASSERT_TRUE(engine_->Upsert("m", std::span(&late, 1)).ok());
  auto expect = Mvke(u2, MvkeStrategy::kPerTopic, 25);
  ASSERT_TRUE(expect.ok());
  Open();
  for (MvkeStrategy s : {MvkeStrategy::kPerTopic, MvkeStrategy::kConcat}) {
    auto after = Mvke(u2, s, 25);
    ASSERT_TRUE(after.ok()) << after.status();
    ASSERT_EQ(after->hits.size(), expect->hits.size());
    for (size_t i = 0; i < after->hits.size(); ++i)
      EXPECT_EQ(after->hits[i].id, expect->hits[i].id) << i;
  }
  const auto want2 = BruteForce(live, u2, 25);
  for (size_t i = 0; i < want2.size(); ++i) EXPECT_EQ(expect->hits[i].id, want2[i].id) << i;
}

TEST_F(MvkeTest, PartitionsKeepEachItemInTheTopicsItQualifiesFor) {
  CollectionSchema s;
  s.name = "p";
  s.dim = 4;
  s.index.type = IndexSpec::Type::kFlat;
  s.topics = 3;
  s.topic_threshold = 0.25f;
  s.topic_concat = true;
  auto parts = Partitions::Create(s);
  ASSERT_TRUE(parts.ok());
  ItemRecord a{.id = 1, .vector = {1, 2, 3, 4}, .topic_weights = {0.5f, 0.5f, 0.0f}};
  ASSERT_TRUE((*parts)->Add(std::span(&a, 1)).ok());
  EXPECT_TRUE((*parts)->topic(0).Contains(1));
  EXPECT_TRUE((*parts)->topic(1).Contains(1));
  EXPECT_FALSE((*parts)->topic(2).Contains(1));
  std::vector<float> stored(4);
  ASSERT_TRUE((*parts)->topic(0).GetVector(1, stored.data()).ok());
  EXPECT_EQ(stored, (std::vector<float>{0.5f, 1.0f, 1.5f, 2.0f}));  // alpha_0 * t
  std::vector<float> joined(12);
  ASSERT_TRUE((*parts)->concat()->GetVector(1, joined.data()).ok());
  EXPECT_EQ(joined, (std::vector<float>{0.5f, 1, 1.5f, 2, 0.5f, 1, 1.5f, 2, 0, 0, 0, 0}));
  a.topic_weights = {0.1f, 0.3f, 0.6f};
  ASSERT_TRUE((*parts)->Add(std::span(&a, 1)).ok());
  EXPECT_FALSE((*parts)->topic(0).Contains(1));
  EXPECT_TRUE((*parts)->topic(1).Contains(1));
  EXPECT_TRUE((*parts)->topic(2).Contains(1));
  const uint64_t id = 1;
  ASSERT_TRUE((*parts)->Remove(std::span(&id, 1)).ok());
  for (size_t k = 0; k < 3; ++k) EXPECT_FALSE((*parts)->topic(k).Contains(1)) << k;
  EXPECT_FALSE((*parts)->concat()->Contains(1));
}

TEST_F(MvkeTest, BadRequestsGetClearErrors) {
  Create(IndexSpec::Type::kFlat, 8, 50, 0.0f);
  auto u = UserVectors(8, 1);
  auto bad = [&](const Result<QueryResult>& r, StatusCode code, const std::string& word) {
    EXPECT_EQ(r.status().code(), code) << word;
    EXPECT_NE(r.status().message().find(word), std::string::npos) << r.status();
  };
  auto three = u;
  three.pop_back();
  bad(Mvke(three, MvkeStrategy::kPerTopic, 5), StatusCode::kInvalidArgument, "4 topics");
  auto short_dim = u;
  short_dim[1].pop_back();
  bad(Mvke(short_dim, MvkeStrategy::kPerTopic, 5), StatusCode::kInvalidArgument, "dim 8");
  auto nan = u;
  nan[2][0] = std::nanf("");
  bad(Mvke(nan, MvkeStrategy::kPerTopic, 5), StatusCode::kInvalidArgument, "NaN");
  QuerySpec both;
  both.vectors = {u[0]};
  both.mvke = MvkeSpec{u};
  bad(engine_->Query("m", both), StatusCode::kInvalidArgument, "not both");
  // Topic weights that do not match the topic count, or are not a convex combination.
  ItemRecord item = items_[0];
  item.topic_weights = {0.5f, 0.5f};
  EXPECT_EQ(engine_->Upsert("m", std::span(&item, 1)).status().code(),
            StatusCode::kInvalidArgument);
  item.topic_weights = {0.5f, 0.5f, 0.5f, -0.5f};
  EXPECT_EQ(engine_->Upsert("m", std::span(&item, 1)).status().code(),
            StatusCode::kInvalidArgument);
  // A collection without topics, and concat without topic_concat.
  CollectionSchema plain;
  plain.name = "plain";
  plain.dim = 8;
  plain.index.type = IndexSpec::Type::kFlat;
  ASSERT_TRUE(engine_->CreateCollection(plain).ok());
  QuerySpec q;
  q.mvke = MvkeSpec{u};
  bad(engine_->Query("plain", q), StatusCode::kInvalidArgument, "needs a collection with topics");
  CollectionSchema no_concat = plain;
  no_concat.name = "noconcat";
  no_concat.topics = kTopics;
  ASSERT_TRUE(engine_->CreateCollection(no_concat).ok());
  q.mvke->strategy = MvkeStrategy::kConcat;
  bad(engine_->Query("noconcat", q), StatusCode::kFailedPrecondition, "topic_concat");
  // Schema options out of range.
  CollectionSchema s = no_concat;
  s.name = "bad";
  s.topic_threshold = 1.0f;
  EXPECT_EQ(engine_->CreateCollection(s).code(), StatusCode::kInvalidArgument);
  s.topic_threshold = 0;
  s.topics = 0;
  s.topic_concat = true;
  EXPECT_EQ(engine_->CreateCollection(s).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quiver::engine
