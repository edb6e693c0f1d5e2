// Freshness (docs/queries.md, "Freshness"): time-bucketed pools and the new-item boost,
// against brute-force references of the documented semantics on a flat (exact) collection.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "engine/engine.h"
#include "engine/partitions.h"
#include "engine/query.h"
#include "tests/testing/temp_dir.h"

namespace quiver::engine {
namespace {

constexpr int64_t kNow = 2'000'000'000;
constexpr int64_t kHour = 3600;

class FreshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = std::move(Engine::Open(dir_.path() + "/v", {})).value();
    CollectionSchema s;
    s.name = "c";
    s.dim = 8;
    s.index.type = IndexSpec::Type::kFlat;  // exact: results must equal brute force exactly
    s.clusters = 3;
    ASSERT_TRUE(engine_->CreateCollection(s).ok());
    std::mt19937 rng(11);
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (uint64_t i = 0; i < 600; ++i) {
      ItemRecord item;
      item.id = 1000 + i;
      item.cluster = uint32_t(i % 3);
      for (int d = 0; d < 8; ++d) item.vector.push_back(g(rng));
      // Ages spread over 30 days; a few items stamped in the future (clock skew).
      item.timestamp = kNow - int64_t((i * 7919) % (kHour * 24 * 30)) + (i % 97 == 0 ? 600 : 0);
      items_.push_back(std::move(item));
    }
    ASSERT_TRUE(engine_->Upsert("c", items_).ok());
    query_ = {0.3f, -1.0f, 0.5f, 0.2f, 1.1f, -0.4f, 0.0f, 0.7f};
  }

  static float Raw(const std::vector<float>& q, const ItemRecord& item) {
    float d = 0;
    for (size_t t = 0; t < q.size(); ++t) d += (q[t] - item.vector[t]) * (q[t] - item.vector[t]);
    return -d;  // l2: score = -distance
  }
  static float BoostOf(const Fresh& f, int64_t ts) {
    const double age = std::max(0.0, double(f.now) - double(ts));
    return f.boost * float(std::exp2(-age / double(f.half_life)));
  }
  // Best first by score, ties by id; at most k.
  static std::vector<std::pair<float, uint64_t>> Top(std::vector<std::pair<float, uint64_t>> all,
                                                     size_t k) {
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    all.resize(std::min(k, all.size()));
    return all;
  }
  QuerySpec Query(size_t k, Fresh f) const {
    QuerySpec q;
    q.vectors = {query_};
    q.k = uint32_t(k);
    q.fresh = f;
    return q;
  }
  void ExpectHits(const QuerySpec& q, const std::vector<std::pair<float, uint64_t>>& want) {
    auto r = engine_->Query("c", q);
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->hits.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(r->hits[i].id, want[i].second) << "rank " << i;
      EXPECT_NEAR(r->hits[i].score, want[i].first, 1e-4f) << "rank " << i;
    }
  }

  quiver::testing::ScopedTempDir dir_;
  std::unique_ptr<Engine> engine_;
  std::vector<ItemRecord> items_;
  std::vector<float> query_;
};

TEST_F(FreshTest, PoolsHoldExactlyTheItemsYoungerThanTheirAge) {
  auto pool_top = [&](int64_t age, size_t k) {
    std::vector<std::pair<float, uint64_t>> all;
    for (const auto& item : items_) {
      if (age == 0 || item.timestamp >= kNow - age) all.emplace_back(Raw(query_, item), item.id);
    }
    return Top(all, k);
  };
  for (int64_t age : {kHour, 6 * kHour, 24 * kHour, kHour * 24 * 30, int64_t{0}}) {
    const auto want = pool_top(age, 20);
    if (age == kHour) {
      ASSERT_LT(want.size(), 20u) << "the 1h pool should hold fewer than k items";
    }
    ExpectHits(Query(20, Fresh{.pool = age, .now = kNow}), want);
  }
  // An item re-stamped as new joins the young pool; a deleted one leaves it; both survive a
  // snapshot and a restart (the time order is rebuilt from the saved attributes).
  ItemRecord moved = items_[5];
  moved.timestamp = kNow - 10;
  items_[5] = moved;
  ASSERT_TRUE(engine_->Upsert("c", std::vector<ItemRecord>{moved}).ok());
  const uint64_t gone = pool_top(kHour, 1)[0].second;
  ASSERT_TRUE(engine_->Delete("c", std::vector<uint64_t>{gone}).ok());
  std::erase_if(items_, [&](const ItemRecord& it) { return it.id == gone; });
  auto young = pool_top(kHour, 50);
  ASSERT_TRUE(
      std::any_of(young.begin(), young.end(), [&](auto& p) { return p.second == moved.id; }));
  ExpectHits(Query(50, Fresh{.pool = kHour, .now = kNow}), young);
  ASSERT_TRUE(engine_->Snapshot("c").ok());
  engine_.reset();
  engine_ = std::move(Engine::Open(dir_.path() + "/v", {})).value();
  ExpectHits(Query(50, Fresh{.pool = kHour, .now = kNow}), young);
}

TEST_F(FreshTest, PoolsCombineWithFiltersMultiVectorAndQuotas) {
  QuerySpec q = Query(30, Fresh{.pool = 24 * kHour, .now = kNow});
  std::vector<float> other(8, 0.5f);
  q.vectors.push_back(other);
  q.filter = Filter{Filter::Op::kEq, Filter::Field::kCluster, {1}};
  // Multi-vector max: each vector's top-30 among young cluster-1 items, merged by max.
  std::map<uint64_t, float> best;
  for (const auto& v : q.vectors) {
    std::vector<std::pair<float, uint64_t>> all;
    for (const auto& item : items_) {
      if (item.cluster == 1 && item.timestamp >= kNow - 24 * kHour)
        all.emplace_back(Raw(v, item), item.id);
    }
    for (auto& [s, id] : Top(all, 30))
      best[id] = std::max(best.count(id) ? best[id] : -INFINITY, s);
  }
  std::vector<std::pair<float, uint64_t>> want;
  want.reserve(best.size());
  for (auto& [id, s] : best) want.emplace_back(s, id);
  ExpectHits(q, Top(want, 30));
  // Quotas inside the pool: every hit is young, and a cluster's hits are its young top.
  q.vectors.pop_back();
  q.filter.reset();
  q.quota = QuotaSpec{{0.5f, 0.3f, 0.2f}, 1.0f, 20, 1.0f};
  auto r = engine_->Query("c", q);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->hits.size(), 20u);
  for (const auto& h : r->hits) {
    auto it = std::find_if(items_.begin(), items_.end(),
                           [&](const ItemRecord& x) { return x.id == h.id; });
    EXPECT_GE(it->timestamp, kNow - 24 * kHour) << h.id;
  }
}

TEST_F(FreshTest, BoostAddsTheDecayedBonusToEveryCandidate) {
  const Fresh f{.now = kNow, .boost = 4.0f, .half_life = 6 * kHour, .window = 600};
  // window 600 makes every item a candidate: the answer is the exact boosted top-k.
  std::vector<std::pair<float, uint64_t>> all;
  for (const auto& item : items_)
    all.emplace_back(Raw(query_, item) + BoostOf(f, item.timestamp), item.id);
  ExpectHits(Query(25, f), Top(all, 25));
  // Future timestamps count as age 0 (the full boost), never more.
  auto future = std::find_if(items_.begin(), items_.end(),
                             [](const ItemRecord& x) { return x.timestamp > kNow; });
  ASSERT_NE(future, items_.end());
  EXPECT_FLOAT_EQ(BoostOf(f, future->timestamp), 4.0f);
}

TEST_F(FreshTest, BoostDrawsCandidatesFromTheHorizonToo) {
  // A small window: candidates are the raw top-5 and the raw top-5 among items younger than
  // the horizon (4 half-lives by default); the answer is their boosted top-5.
  const Fresh f{.now = kNow, .boost = 30.0f, .half_life = kHour, .window = 5};
  std::vector<std::pair<float, uint64_t>> raw, young;
  for (const auto& item : items_) {
    raw.emplace_back(Raw(query_, item), item.id);
    if (item.timestamp >= kNow - 4 * kHour) young.emplace_back(Raw(query_, item), item.id);
  }
  std::set<uint64_t> candidates;
  for (auto& [s, id] : Top(raw, 5)) candidates.insert(id);
  for (auto& [s, id] : Top(young, 5)) candidates.insert(id);
  std::vector<std::pair<float, uint64_t>> boosted;
  for (const auto& item : items_) {
    if (candidates.count(item.id))
      boosted.emplace_back(Raw(query_, item) + BoostOf(f, item.timestamp), item.id);
  }
  const auto want = Top(boosted, 5);
  // The boost changes the answer: some winner is not in the raw top-5.
  std::set<uint64_t> raw_top;
  for (auto& [s, id] : Top(raw, 5)) raw_top.insert(id);
  ASSERT_TRUE(
      std::any_of(want.begin(), want.end(), [&](auto& p) { return !raw_top.count(p.second); }));
  ExpectHits(Query(5, f), want);
  // An explicit horizon of 0 < h: only items younger than h come from the second source.
  Fresh narrow = f;
  narrow.horizon = 1;
  std::vector<std::pair<float, uint64_t>> only_raw;
  for (const auto& item : items_) {
    if (raw_top.count(item.id) || item.timestamp >= kNow - 1) {
      only_raw.emplace_back(Raw(query_, item) + BoostOf(f, item.timestamp), item.id);
    }
  }
  ExpectHits(Query(5, narrow), Top(only_raw, 5));
}

TEST_F(FreshTest, BoostUnderAQuotaReordersTheQuotasHits) {
  QuerySpec q = Query(10, Fresh{});
  q.fresh.reset();
  q.quota = QuotaSpec{{0.5f, 0.3f, 0.2f}, 1.0f, 30, 1.0f};
  auto plain = engine_->Query("c", q);
  ASSERT_TRUE(plain.ok()) << plain.status();
  q.fresh = Fresh{.now = kNow, .boost = 50.0f, .half_life = 24 * kHour};
  auto boosted = engine_->Query("c", q);
  ASSERT_TRUE(boosted.ok()) << boosted.status();
  EXPECT_EQ(boosted->per_cluster, plain->per_cluster);
  std::set<uint64_t> a, b;
  for (const auto& h : plain->hits) a.insert(h.id);
  for (const auto& h : boosted->hits) b.insert(h.id);
  EXPECT_EQ(a, b);
  for (size_t i = 1; i < boosted->hits.size(); ++i)
    EXPECT_GE(boosted->hits[i - 1].score, boosted->hits[i].score);
  EXPECT_NE(boosted->hits[0].id, plain->hits[0].id) << "a boost of 50 should reorder the list";
}

TEST_F(FreshTest, BadFreshnessGetsClearErrors) {
  auto bad = [&](Fresh f, const std::string& word) {
    auto r = engine_->Query("c", Query(10, f));
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << word;
    EXPECT_NE(r.status().message().find(word), std::string::npos) << r.status();
  };
  bad(Fresh{.pool = -5}, "pool must be >= 0");
  bad(Fresh{.boost = 1.0f}, "half_life");
  bad(Fresh{.boost = -1.0f}, "boost must be finite");
  bad(Fresh{.boost = NAN}, "boost must be finite");
  bad(Fresh{.now = -1}, "now");
  bad(Fresh{.window = 20000}, "window");
  // A pool no item is young enough for is an empty answer, not an error.
  auto r = engine_->Query("c", Query(10, Fresh{.pool = kHour, .now = kNow + kHour * 24 * 100}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->hits.empty());
}

// The time order behind pools: a small time range is listed exactly from it (and then scanned
// exactly by the search); a large one is left to the filtered traversal.
TEST(PartitionsTimeOrderTest, FewMatchingWalksTheTimeOrder) {
  CollectionSchema s;
  s.name = "p";
  s.dim = 4;
  s.index.type = IndexSpec::Type::kHnsw;
  auto parts = std::move(Partitions::Create(s)).value();
  std::vector<ItemRecord> items;
  for (uint64_t i = 0; i < 20000; ++i)
    items.push_back(ItemRecord{.id = i, .vector = {1, float(i), 0, 1}, .timestamp = int64_t(i)});
  ASSERT_TRUE(parts->Add(items).ok());
  const Filter young{Filter::Op::kRange, Filter::Field::kTimestamp, {}, 19900, INT64_MAX};
  auto few = parts->FewMatching(young, -1, 4096);
  ASSERT_TRUE(few.has_value());
  EXPECT_EQ(std::set<uint64_t>(few->begin(), few->end()).size(), 100u);
  EXPECT_EQ(*std::min_element(few->begin(), few->end()), 19900u);
  EXPECT_FALSE(parts->FewMatching(
      Filter{Filter::Op::kRange, Filter::Field::kTimestamp, {}, 100, INT64_MAX}, -1, 4096));
  // And-ed with another predicate, still from the time order.
  const Filter both{
      Filter::Op::kAnd,
      {},
      {},
      INT64_MIN,
      INT64_MAX,
      {young, Filter{Filter::Op::kNot,
                     {},
                     {},
                     INT64_MIN,
                     INT64_MAX,
                     {Filter{Filter::Op::kIn, Filter::Field::kTimestamp, {19950, 19951}}}}}};
  few = parts->FewMatching(both, -1, 4096);
  ASSERT_TRUE(few.has_value());
  EXPECT_EQ(few->size(), 98u);
  // Re-stamping and removal keep the order current.
  items[3].timestamp = 30000;
  ASSERT_TRUE(parts->Add(std::span(&items[3], 1)).ok());
  const uint64_t drop[] = {19999};
  ASSERT_TRUE(parts->Remove(drop).ok());
  few = parts->FewMatching(young, -1, 4096);
  ASSERT_TRUE(few.has_value());
  std::set<uint64_t> got(few->begin(), few->end());
  EXPECT_EQ(got.size(), 100u);
  EXPECT_TRUE(got.count(3));
  EXPECT_FALSE(got.count(19999));
}

}  // namespace
}  // namespace quiver::engine
