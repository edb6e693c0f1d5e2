#include "engine/query.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>

#include "engine/engine.h"
#include "engine/query/filter.h"
#include "tests/testing/temp_dir.h"

namespace quiver::engine {
namespace {

TEST(AllocateQuotasTest, LargestRemainderSumsToTotal) {
  auto q = [](std::vector<double> p, double a, uint32_t m) { return AllocateQuotas(p, a, m); };
  EXPECT_EQ(q({0.5, 0.3, 0.2}, 1, 10), (std::vector<uint32_t>{5, 3, 2}));
  EXPECT_EQ(q({1, 1, 1}, 1, 10), (std::vector<uint32_t>{4, 3, 3}));     // tie: lower id
  EXPECT_EQ(q({2, 1}, 2, 10), (std::vector<uint32_t>{8, 2}));           // p^a: 4 : 1
  EXPECT_EQ(q({0.6, 0, 0.4}, 1, 7), (std::vector<uint32_t>{4, 0, 3}));  // 4.2, 0, 2.8
  EXPECT_EQ(q({3, 1}, 0, 5), (std::vector<uint32_t>{3, 2}));            // a = 0: uniform
  EXPECT_EQ(q({0, 0}, 1, 5), (std::vector<uint32_t>{0, 0}));
  std::mt19937 rng(1);
  for (int t = 0; t < 200; ++t) {
    std::vector<double> p(1 + rng() % 20);
    for (double& x : p) x = (rng() % 4 == 0) ? 0.0 : double(rng() % 1000) / 100.0;
    p[0] += 0.5;
    const uint32_t m = 1 + rng() % 500;
    const double a = double(rng() % 30) / 10.0;
    auto got = q(p, a, m);
    EXPECT_EQ(std::accumulate(got.begin(), got.end(), 0u), m);
    double sum = 0;
    for (double x : p) sum += x > 0 ? std::pow(x, a) : 0;
    for (size_t k = 0; k < p.size(); ++k) {
      const double exact = p[k] > 0 ? m * std::pow(p[k], a) / sum : 0;
      EXPECT_LE(std::fabs(double(got[k]) - exact), 1.0) << k;  // never more than one away
      if (p[k] == 0) {
        EXPECT_EQ(got[k], 0u);
      }
    }
  }
}

// Items in C well-separated clusters in dim 8: cluster k is centred at 10 * e_k.
std::vector<ItemRecord> ClusteredItems(size_t per_cluster, uint32_t clusters, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<ItemRecord> items;
  for (uint32_t k = 0; k < clusters; ++k) {
    for (size_t i = 0; i < per_cluster; ++i) {
      ItemRecord item;
      item.id = uint64_t{k} * 100000 + i;
      item.cluster = k;
      for (int d = 0; d < 8; ++d) item.vector.push_back(g(rng) + (d == int(k) ? 10.0f : 0.0f));
      items.push_back(std::move(item));
    }
  }
  return items;
}

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = Engine::Open(dir_.path() + "/v", {});
    ASSERT_TRUE(e.ok());
    engine_ = std::move(*e);
    CollectionSchema s;
    s.name = "c";
    s.dim = 8;
    s.index.type = IndexSpec::Type::kFlat;  // exact: results must equal brute force exactly
    s.clusters = 4;
    ASSERT_TRUE(engine_->CreateCollection(s).ok());
    items_ = ClusteredItems(200, 4, 7);
    items_.resize(items_.size() - 197);  // cluster 3 keeps 3 items: a small cluster
    ASSERT_TRUE(engine_->Upsert("c", items_).ok());
  }

  static float Score(const std::vector<float>& q, const ItemRecord& item) {
    float d = 0;
    for (size_t t = 0; t < q.size(); ++t) d += (q[t] - item.vector[t]) * (q[t] - item.vector[t]);
    return -d;
  }

  // Brute force of the documented semantics: each vector's exact top-k among `pool`, then
  // aggregated over the vectors that retrieved each item.
  std::vector<std::pair<float, uint64_t>> Reference(const QuerySpec& q, size_t k,
                                                    int cluster) const {
    std::map<uint64_t, float> agg;
    for (size_t j = 0; j < q.vectors.size(); ++j) {
      std::vector<std::pair<float, uint64_t>> all;
      for (const auto& item : items_) {
        if (cluster < 0 || int(item.cluster) == cluster)
          all.emplace_back(Score(q.vectors[j], item), item.id);
      }
      std::sort(all.begin(), all.end(), [](auto& a, auto& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      });
      all.resize(std::min(k, all.size()));
      const float w = q.aggregate == Aggregate::kWeighted ? q.weights[j] : 1.0f;
      for (auto& [s, id] : all) {
        auto [it, fresh] = agg.try_emplace(id, q.aggregate == Aggregate::kMax ? s : w * s);
        if (!fresh)
          it->second =
              q.aggregate == Aggregate::kMax ? std::max(it->second, s) : it->second + w * s;
      }
    }
    std::vector<std::pair<float, uint64_t>> out;
    out.reserve(agg.size());
    for (auto& [id, s] : agg) out.emplace_back(s, id);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    out.resize(std::min(k, out.size()));
    return out;
  }

  quiver::testing::ScopedTempDir dir_;
  std::unique_ptr<Engine> engine_;
  std::vector<ItemRecord> items_;
};

TEST_F(QueryTest, MultiVectorMatchesBruteForceForEveryAggregate) {
  QuerySpec q;
  q.vectors = {items_[5].vector, items_[250].vector, items_[420].vector};
  q.k = 25;
  for (Aggregate a : {Aggregate::kMax, Aggregate::kSum, Aggregate::kWeighted}) {
    q.aggregate = a;
    q.weights =
        a == Aggregate::kWeighted ? std::vector<float>{1.0f, 0.5f, 2.0f} : std::vector<float>{};
    auto r = engine_->Query("c", q);
    ASSERT_TRUE(r.ok()) << r.status();
    auto want = Reference(q, 25, -1);
    ASSERT_EQ(r->hits.size(), want.size());
    std::set<uint64_t> seen;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(r->hits[i].id, want[i].second) << int(a) << " rank " << i;
      EXPECT_FLOAT_EQ(r->hits[i].score, want[i].first);
      EXPECT_TRUE(seen.insert(r->hits[i].id).second) << "duplicate";
    }
    // The item found by vector 1 first names vector 1, and its own cluster.
    auto it = std::find_if(r->hits.begin(), r->hits.end(),
                           [&](const QueryHit& h) { return h.id == items_[250].id; });
    ASSERT_NE(it, r->hits.end());
    EXPECT_EQ(it->vector, 1u);
    EXPECT_EQ(it->cluster, 1);
  }
}

TEST_F(QueryTest, QuotasTakeEachClustersExactTopAndHandOnTheShortfall) {
  QuerySpec q;
  q.vectors = {std::vector<float>(8, 1.0f)};
  q.quota = QuotaSpec{{0.4f, 0.3f, 0.1f, 0.2f}, 1.0f, 50, 1.0f};
  auto r = engine_->Query("c", q);
  ASSERT_TRUE(r.ok()) << r.status();
  // 20, 15, 5, 10 asked; cluster 3 has 3 items: its shortfall of 7 goes to 0, 1, 2 by p.
  EXPECT_EQ(r->hits.size(), 50u);
  EXPECT_EQ(r->per_cluster[3], 3u);
  EXPECT_EQ(std::accumulate(r->quotas.begin(), r->quotas.end(), 0u), 50u);
  EXPECT_EQ(r->quotas, r->per_cluster);
  EXPECT_EQ(r->quotas, (std::vector<uint32_t>{23, 18, 6, 3}));  // 20+3.5, 15+2.6, 5+0.9 -> 3, 3, 1
  for (int k = 0; k < 4; ++k) {
    auto want = Reference(q, r->per_cluster[k], k);
    std::vector<uint64_t> got;
    for (const auto& h : r->hits) {
      if (h.cluster == k) got.push_back(h.id);
    }
    ASSERT_EQ(got.size(), want.size()) << k;
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i].second) << "cluster " << k;
  }
  // A zero quota is not searched at all.
  q.quota = QuotaSpec{{1.0f, 0.0f, 0.0f, 0.0f}, 1.0f, 10, 1.0f};
  r = engine_->Query("c", q);
  EXPECT_EQ(r->per_cluster, (std::vector<uint32_t>{10, 0, 0, 0}));
}

// p "history": the user's events give p_k = sum of 2^(-(t_newest - t) / half_life) over the
// events on items of cluster k (1 each without a half-life); the answer is the given-p answer for
// those weights.
TEST_F(QueryTest, HistoryIntentWeighsTheUsersEventsByRecency) {
  // Three old events in cluster 0 (ids 0..2), one recent in cluster 2, one on a missing item.
  const std::vector<Event> events = {
      {5, 0, 0}, {5, 1, 0}, {5, 2, 0}, {5, 200000, 100}, {5, 999999, 50}};
  ASSERT_TRUE(engine_->AddEvents("c", events).ok());
  QuerySpec q;
  q.vectors = {std::vector<float>(8, 1.0f)};
  q.quota = QuotaSpec{{}, 1.0f, 8, 1.0f, uint64_t{5}, 0};
  auto counted = engine_->Query("c", q);
  ASSERT_TRUE(counted.ok()) << counted.status();
  EXPECT_EQ(counted->quotas, (std::vector<uint32_t>{6, 0, 2, 0}));  // p = 3, 0, 1, 0
  QuerySpec given = q;
  given.quota = QuotaSpec{{3.0f, 0.0f, 1.0f, 0.0f}, 1.0f, 8, 1.0f};
  auto same = engine_->Query("c", given);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(counted->hits, same->hits);
  // A half-life of 25: the old events weigh 2^-4 each (3/16 against 1): 8 x 0.158 = 1.3 -> 1.
  q.quota->half_life = 25;
  auto recent = engine_->Query("c", q);
  ASSERT_TRUE(recent.ok()) << recent.status();
  EXPECT_EQ(recent->quotas, (std::vector<uint32_t>{1, 0, 7, 0}));
  auto w = engine_->HistoryIntent("c", 5, 25);
  ASSERT_TRUE(w.ok());
  EXPECT_DOUBLE_EQ((*w)[0], 3.0 / 16);
  EXPECT_DOUBLE_EQ((*w)[2], 1.0);
  // Errors: an unknown user, a user whose events are all on missing items, p given as well.
  q.quota->user = 6;
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(engine_->AddEvents("c", std::vector<Event>{{7, 999998, 1}}).ok());
  q.quota->user = 7;
  auto none = engine_->Query("c", q);
  EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(none.status().message().find("no event on an item"), std::string::npos);
  q.quota->user = 5;
  q.quota->p = {1, 1, 1, 1};
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument);
  q.quota->p.clear();
  q.quota->half_life = -1;
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument);
}

// The intent plugin's p_u(k) = sum_j pi_j s_j(k) + pi_g g(k), from the formula: s_j the share of
// cluster k in the user's events weighted 2^(-(n - i) / h_j), h = 2, 8, 32 events and the whole
// history; g each cluster's share of every user's events plus one, normalised.
std::vector<double> IntentFormula(const std::vector<uint32_t>& seq, const std::vector<double>& pi,
                                  const std::vector<double>& g) {
  const double half_lives[] = {2, 8, 32, 0};
  std::vector<double> p(g.size(), 0.0);
  for (size_t k = 0; k < g.size(); ++k) p[k] = pi[4] * g[k];
  const size_t n = seq.size();
  for (size_t j = 0; j < 4; ++j) {
    std::vector<double> w(g.size(), 0.0);
    double total = 0;
    for (size_t i = 0; i < n; ++i) {
      const double x = half_lives[j] > 0 ? std::exp2(-double(n - 1 - i) / half_lives[j]) : 1.0;
      w[seq[i]] += x;
      total += x;
    }
    for (size_t k = 0; k < g.size(); ++k) p[k] += pi[j] * w[k] / total;
  }
  return p;
}

// Sticky users (runs of 6 events in one cluster) make the plugin weigh the recent events; users
// drawing every event at random make it weigh the whole history and the prior. A quota with p
// "learned" takes the user's list as p; an incremental run recomputes a changed user's list
// under the fitted weights.
TEST_F(QueryTest, LearnedIntentFitsTheHistoriesAndDrivesTheQuota) {
  CollectionSchema d = engine_->GetSchema("c").value();  // the same, under another name
  d.name = "d";
  ASSERT_TRUE(engine_->CreateCollection(d).ok());
  ASSERT_TRUE(engine_->Upsert("d", items_).ok());
  std::mt19937 rng(17);
  std::map<std::string, std::map<uint64_t, std::vector<uint32_t>>> sequences;
  std::map<std::string, std::vector<double>> counts;
  for (const std::string name : {"c", "d"}) {
    std::vector<Event> events;
    counts[name].assign(4, 1.0);
    for (uint64_t user = 1; user <= 40; ++user) {
      uint32_t cluster = uint32_t(rng() % 3);
      for (int64_t t = 0; t < 30; ++t) {
        if (name == "d") {
          cluster = uint32_t(rng() % 3);
        } else if (t % 6 == 0) {
          cluster = (cluster + 1 + uint32_t(rng() % 2)) % 3;
        }
        events.push_back({user, uint64_t{cluster} * 100000 + rng() % 200, 1000 + t});
        sequences[name][user].push_back(cluster);
        counts[name][cluster] += 1;
      }
    }
    ASSERT_TRUE(engine_->AddEvents(name, events).ok());
    auto run = engine_->RunPlugin(name, "intent", "", false);
    ASSERT_TRUE(run.ok()) << run.status();
    EXPECT_EQ(run->lists, 42u);  // 40 users and the model's two lists
  }
  auto model = [&](const std::string& name) {
    auto weights = engine_->GetList(name, "intent_model", 0);
    auto prior = engine_->GetList(name, "intent_model", 1);
    EXPECT_TRUE(weights.ok() && weights->has_value() && prior.ok() && prior->has_value());
    std::vector<double> pi(5), g(4);
    for (const Hit& h : **weights) pi.at(h.id) = h.score;
    for (const Hit& h : **prior) g.at(h.id) = h.score;
    return std::pair{pi, g};
  };
  const auto [sticky, sticky_g] = model("c");
  const auto [random, random_g] = model("d");
  EXPECT_NEAR(std::accumulate(sticky.begin(), sticky.end(), 0.0), 1.0, 1e-5);
  EXPECT_GT(sticky[0] + sticky[1], 0.6) << "recent events predict sticky users";
  EXPECT_LT(random[0] + random[1], 0.3) << "recent events do not predict random users";
  EXPECT_GT(random[3] + random[4], 0.5);
  const double total = std::accumulate(counts["c"].begin(), counts["c"].end(), 0.0);
  for (size_t k = 0; k < 4; ++k) EXPECT_NEAR(sticky_g[k], counts["c"][k] / total, 1e-6);
  // Every user's list is the formula under the fitted weights.
  for (uint64_t user : {1, 7, 40}) {
    const std::vector<double> want = IntentFormula(sequences["c"][user], sticky, sticky_g);
    auto learned = engine_->LearnedIntent("c", user);
    ASSERT_TRUE(learned.ok()) << learned.status();
    for (size_t k = 0; k < 4; ++k) EXPECT_NEAR((*learned)[k], want[k], 1e-5) << user << " " << k;
  }
  // A quota with p "learned" is the quota with that p given.
  QuerySpec q;
  q.vectors = {std::vector<float>(8, 1.0f)};
  q.quota = QuotaSpec{{}, 1.5f, 20, 1.0f, uint64_t{7}, 0, true};
  auto got = engine_->Query("c", q);
  ASSERT_TRUE(got.ok()) << got.status();
  const std::vector<double> p7 = *engine_->LearnedIntent("c", 7);
  EXPECT_EQ(got->quotas, AllocateQuotas(p7, 1.5, 20));
  QuerySpec given = q;
  given.quota = QuotaSpec{{}, 1.5f, 20, 1.0f};
  given.quota->p.assign(p7.begin(), p7.end());
  auto same = engine_->Query("c", given);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(got->hits, same->hits);
  // User 7 moves to cluster 3 for six events: an incremental run gives the new list under the
  // same weights; user 1's list stays.
  const std::vector<double> p1 = *engine_->LearnedIntent("c", 1);
  std::vector<Event> moved;
  for (int64_t t = 0; t < 6; ++t) {
    moved.push_back({7, 300000 + uint64_t(t % 3), 2000 + t});
    sequences["c"][7].push_back(3);
  }
  ASSERT_TRUE(engine_->AddEvents("c", moved).ok());
  auto update = engine_->RunPlugin("c", "intent", "", true);
  ASSERT_TRUE(update.ok()) << update.status();
  EXPECT_TRUE(update->incremental);
  EXPECT_EQ(update->lists, 1u);
  const std::vector<double> want7 = IntentFormula(sequences["c"][7], sticky, sticky_g);
  const std::vector<double> now7 = *engine_->LearnedIntent("c", 7);
  for (size_t k = 0; k < 4; ++k) EXPECT_NEAR(now7[k], want7[k], 1e-5) << k;
  EXPECT_GT(now7[3], 0.5);
  EXPECT_EQ(*engine_->LearnedIntent("c", 1), p1);
  // Errors: a user without a list, p "learned" without a user or with a half-life, the plugin on a
  // collection without clusters.
  q.quota->user = 999;
  auto none = engine_->Query("c", q);
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("plugins/intent/run"), std::string::npos) << none.status();
  q.quota->user.reset();
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument);
  q.quota->user = 7;
  q.quota->half_life = 10;
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument);
  CollectionSchema flat;
  flat.name = "flat";
  flat.dim = 8;
  ASSERT_TRUE(engine_->CreateCollection(flat).ok());
  EXPECT_EQ(engine_->RunPlugin("flat", "intent", "", false).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(QueryTest, AutoIntentFollowsTheQuery) {
  QuerySpec q;
  std::vector<float> near2(8, 0.0f);
  near2[2] = 10.0f;
  q.vectors = {near2};
  q.quota = QuotaSpec{{}, 1.0f, 40, 5.0f};
  auto r = engine_->Query("c", q);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->per_cluster[2], 30u) << "cluster 2 should dominate";
  // Two interests: both clusters get a share.
  std::vector<float> near0(8, 0.0f);
  near0[0] = 10.0f;
  q.vectors = {near2, near0};
  r = engine_->Query("c", q);
  EXPECT_GT(r->per_cluster[0], 10u);
  EXPECT_GT(r->per_cluster[2], 10u);
}

Filter Eq(Filter::Field field, int64_t v) { return Filter{Filter::Op::kEq, field, {v}}; }

TEST_F(QueryTest, FiltersReturnOnlyMatchingItemsExactly) {
  // Give items categories and tags, then query with filters of both sizes: a large matching
  // set (traversal with the filter) and a small one (exact scan).
  for (auto& item : items_) {
    item.category = int64_t(item.id % 5);
    item.tags = {int64_t(item.id % 7)};
    item.timestamp = int64_t(item.id % 1000);
  }
  ASSERT_TRUE(engine_->Upsert("c", items_).ok());
  auto check = [&](const Filter& f, size_t k) {
    QuerySpec q;
    q.vectors = {items_[10].vector};
    q.k = uint32_t(k);
    q.filter = f;
    auto r = engine_->Query("c", q);
    ASSERT_TRUE(r.ok()) << r.status();
    std::vector<std::pair<float, uint64_t>> want;
    for (const auto& item : items_) {
      if (Matches(f, item.id, AttrsOf(item))) want.emplace_back(Score(q.vectors[0], item), item.id);
    }
    std::sort(want.begin(), want.end(), [](auto& a, auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    want.resize(std::min(k, want.size()));
    ASSERT_EQ(r->hits.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(r->hits[i].id, want[i].second) << i;
  };
  check(Eq(Filter::Field::kCategory, 2), 20);                                  // ~20%: traversal
  check(Filter{Filter::Op::kIn, Filter::Field::kTag, {3, 4}}, 20);             // tags
  check(Filter{Filter::Op::kRange, Filter::Field::kTimestamp, {}, 5, 9}, 50);  // few: exact scan
  Filter both{
      Filter::Op::kAnd,
      {},
      {},
      INT64_MIN,
      INT64_MAX,
      {Eq(Filter::Field::kCategory, 1),
       Filter{Filter::Op::kNot, {}, {}, INT64_MIN, INT64_MAX, {Eq(Filter::Field::kCluster, 0)}}}};
  check(both, 30);
  // With quotas: a cluster with no matching item hands its share on.
  QuerySpec q;
  q.vectors = {items_[10].vector};
  q.filter = Filter{Filter::Op::kRange, Filter::Field::kCluster, {}, 0, 1};
  q.quota = QuotaSpec{{0.25f, 0.25f, 0.25f, 0.25f}, 1.0f, 40, 1.0f};
  auto r = engine_->Query("c", q);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->hits.size(), 40u);
  EXPECT_EQ(r->per_cluster[2] + r->per_cluster[3], 0u);
  // Attributes survive a snapshot and a reopen.
  ASSERT_TRUE(engine_->Snapshot("c").ok());
  engine_.reset();
  engine_ = std::move(Engine::Open(dir_.path() + "/v", {})).value();
  check(Eq(Filter::Field::kCategory, 2), 20);
  check(Filter{Filter::Op::kRange, Filter::Field::kTimestamp, {}, 5, 9}, 50);
}

TEST_F(QueryTest, DiversityReranking) {
  for (auto& item : items_) item.category = int64_t(item.id % 3);
  ASSERT_TRUE(engine_->Upsert("c", items_).ok());
  QuerySpec q;
  q.vectors = {items_[10].vector};
  q.k = 20;
  auto plain = engine_->Query("c", q);
  ASSERT_TRUE(plain.ok());
  // lambda 1 and no limits: the plain order.
  q.rerank = Rerank{1.0f, 60, 0, 0};
  auto same = engine_->Query("c", q);
  ASSERT_TRUE(same.ok()) << same.status();
  ASSERT_EQ(same->hits.size(), 20u);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(same->hits[i].id, plain->hits[i].id);
  // Category limits.
  auto category = [&](uint64_t id) { return int64_t(id % 3); };
  q.rerank = Rerank{-1.0f, 60, 1, 0};
  auto alt = engine_->Query("c", q);
  ASSERT_TRUE(alt.ok());
  for (size_t i = 1; i < alt->hits.size(); ++i) {
    EXPECT_NE(category(alt->hits[i].id), category(alt->hits[i - 1].id)) << i;
  }
  q.rerank = Rerank{-1.0f, 60, 0, 4};
  auto capped = engine_->Query("c", q);
  std::map<int64_t, int> count;
  for (const auto& h : capped->hits) ++count[category(h.id)];
  EXPECT_EQ(capped->hits.size(), 12u) << "3 categories x cap 4: the cap is hard";
  for (auto& [c, n] : count) EXPECT_EQ(n, 4) << "category " << c;
  // MMR with a low lambda spreads the results over clusters; the first pick is still the best.
  q.rerank = Rerank{0.1f, 400, 0, 0};
  auto mmr = engine_->Query("c", q);
  ASSERT_TRUE(mmr.ok());
  EXPECT_EQ(mmr->hits[0].id, plain->hits[0].id);
  std::set<int32_t> plain_clusters, mmr_clusters;
  for (const auto& h : plain->hits) plain_clusters.insert(h.cluster);
  for (const auto& h : mmr->hits) mmr_clusters.insert(h.cluster);
  EXPECT_EQ(plain_clusters.size(), 1u);
  EXPECT_GT(mmr_clusters.size(), 1u);
  // ComiRec's greedy category diversity: a large lambda alternates categories from the start;
  // zero leaves the plain order.
  q.rerank = Rerank{-1.0f, 60, 0, 0, 10.0f};
  auto comirec = engine_->Query("c", q);
  ASSERT_TRUE(comirec.ok());
  std::set<int64_t> first3;
  for (size_t i = 0; i < 3; ++i) first3.insert(category(comirec->hits[i].id));
  EXPECT_EQ(first3.size(), 3u);
  q.rerank = Rerank{-1.0f, 60, 0, 0, 0.0f};
  auto zero = engine_->Query("c", q);
  for (size_t i = 0; i < 20; ++i) EXPECT_EQ(zero->hits[i].id, plain->hits[i].id);
  q.rerank = Rerank{1.5f, 0, 0, 0};
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument);
  q.rerank = Rerank{-1.0f, 0, 0, 0, -1.0f};
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument);
}

// `exclude`: the excluded items never come back, whatever retrieves them, and the rest is the
// exact answer among the others; an id filter keeps exactly the listed items.
TEST_F(QueryTest, ExcludedItemsNeverComeBack) {
  // The exact top k among the items `keep` admits.
  auto exact = [&](const std::vector<float>& v, size_t k, auto keep) {
    std::vector<std::pair<float, uint64_t>> all;
    for (const auto& item : items_) {
      if (keep(item.id)) all.emplace_back(Score(v, item), item.id);
    }
    std::sort(all.begin(), all.end(), [](auto& a, auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    std::vector<uint64_t> ids;
    for (size_t i = 0; i < std::min(k, all.size()); ++i) ids.push_back(all[i].second);
    return ids;
  };
  auto ids_of = [](const QueryResult& r) {
    std::vector<uint64_t> ids;
    for (const QueryHit& h : r.hits) ids.push_back(h.id);
    return ids;
  };
  QuerySpec q;
  q.vectors = {items_[10].vector};
  q.k = 20;
  auto before = engine_->Query("c", q);
  ASSERT_TRUE(before.ok()) << before.status();
  // The even-ranked half of the answer (more than 8 ids: looked up by binary search) and ids
  // of no item, unsorted.
  for (size_t i = 0; i < 20; i += 2) q.exclude.push_back(before->hits[19 - i].id);
  q.exclude.push_back(999999999);
  std::set<uint64_t> excluded(q.exclude.begin(), q.exclude.end());
  auto kept = [&](uint64_t id) { return !excluded.count(id); };
  auto r = engine_->Query("c", q);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(ids_of(*r), exact(q.vectors[0], 20, kept));
  // With a filter, several vectors, a quota and a freshness pool, none comes back.
  for (auto& item : items_) item.timestamp = 1000 + int64_t(item.id % 100);
  ASSERT_TRUE(engine_->Upsert("c", items_).ok());
  q.filter = Filter{Filter::Op::kRange, Filter::Field::kCluster, {}, 0, 2};
  q.vectors.push_back(items_[300].vector);
  q.quota = QuotaSpec{{0.5f, 0.3f, 0.2f, 0.0f}, 1.0f, 30, 1.0f};
  q.fresh = Fresh{.pool = 1000, .now = 1050};
  r = engine_->Query("c", q);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->hits.size(), 30u);
  for (const QueryHit& h : r->hits) {
    EXPECT_FALSE(excluded.count(h.id)) << h.id;
    EXPECT_LE(h.cluster, 2);
  }
  // An id filter, unsorted and long: exactly those items, best first.
  QuerySpec f;
  f.vectors = {items_[5].vector};
  f.k = 50;
  Filter in{Filter::Op::kIn, Filter::Field::kId, {}};
  for (size_t i = items_.size(); i-- > 0;) {
    if (i % 37 == 0) in.values.push_back(int64_t(items_[i].id));
  }
  f.filter = in;
  r = engine_->Query("c", f);
  ASSERT_TRUE(r.ok()) << r.status();
  std::set<int64_t> listed(in.values.begin(), in.values.end());
  EXPECT_EQ(ids_of(*r),
            exact(f.vectors[0], 50, [&](uint64_t id) { return listed.count(int64_t(id)) > 0; }));
  // Bad: too many ids, a range over ids.
  f.filter = Filter{Filter::Op::kRange, Filter::Field::kId, {}, 0, 9};
  EXPECT_EQ(engine_->Query("c", f).status().code(), StatusCode::kInvalidArgument);
  f.filter.reset();
  f.exclude.assign(100001, 1);
  auto big = engine_->Query("c", f);
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("exclude"), std::string::npos) << big.status();
}

TEST_F(QueryTest, BadQueriesGetClearErrors) {
  auto bad = [&](const QuerySpec& q, const std::string& word) {
    auto r = engine_->Query("c", q);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << word;
    EXPECT_NE(r.status().message().find(word), std::string::npos) << r.status();
  };
  QuerySpec q;
  bad(q, "at least one vector");
  q.vectors = {std::vector<float>(7, 0.0f)};
  bad(q, "dim 8");
  q.vectors = {std::vector<float>(8, 0.0f), std::vector<float>(8, 0.0f)};
  q.aggregate = Aggregate::kWeighted;
  q.weights = {1.0f};
  bad(q, "one weight per vector");
  q.weights = {1.0f, -1.0f};
  bad(q, ">= 0");
  q.aggregate = Aggregate::kMax;
  q.weights.clear();
  q.quota = QuotaSpec{{0.5f, 0.5f}, 1.0f, 10, 1.0f};
  bad(q, "4 clusters");
  q.quota = QuotaSpec{{0.5f, 0.5f, -1.0f, 0.0f}, 1.0f, 10, 1.0f};
  bad(q, ">= 0");
  q.quota = QuotaSpec{{}, 1.0f, 0, 1.0f};
  bad(q, "total");
  q.quota.reset();
  q.filter = Filter{Filter::Op::kRange, Filter::Field::kTimestamp, {}, 9, 5};
  bad(q, "lo > hi");
  q.filter = Filter{Filter::Op::kNot, {}, {}, 0, 0, {}};
  bad(q, "exactly one child");
  q.filter = Filter{Filter::Op::kIn, Filter::Field::kTag, {}};
  bad(q, "needs a value");
}

// With ip and cosine an all-zero query vector would score every item 0: refused, naming the
// vector, for plain, multi-vector, quota and MVKE queries; with l2 it is a point like any other.
TEST_F(QueryTest, AllZeroVectorsAreRefusedForIpAndCosine) {
  for (Metric metric : {Metric::kInnerProduct, Metric::kCosine}) {
    CollectionSchema s;
    s.name = std::string("z") + std::string(MetricName(metric));
    s.dim = 8;
    s.metric = metric;
    s.index.type = IndexSpec::Type::kFlat;
    s.clusters = 4;
    s.topics = 2;
    ASSERT_TRUE(engine_->CreateCollection(s).ok());
    std::vector<ItemRecord> items = ClusteredItems(40, 4, 3);
    for (ItemRecord& item : items) item.topic_weights = {0.5f, 0.5f};
    ASSERT_TRUE(engine_->Upsert(s.name, items).ok());
    const std::vector<float> zero(8, 0.0f), one = items[0].vector;
    auto refused = [&](const QuerySpec& q, const std::string& words) {
      auto r = engine_->Query(s.name, q);
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << s.name << ": " << words;
      EXPECT_NE(r.status().message().find(words), std::string::npos) << r.status();
    };
    QuerySpec q;
    q.k = 5;
    q.vectors = {zero};
    refused(q, "the query vector is all zeros");
    q.vectors = {one, zero};
    refused(q, "vector 1 is all zeros");
    q.quota = QuotaSpec{{}, 1.0f, 10, 1.0f};
    refused(q, "vector 1 is all zeros");
    q.quota.reset();
    q.vectors = {one, one};
    EXPECT_TRUE(engine_->Query(s.name, q).ok());
    QuerySpec mvke;
    mvke.k = 5;
    mvke.mvke = MvkeSpec{{zero, zero}};
    refused(mvke, "every mvke user vector is all zeros");
    mvke.mvke = MvkeSpec{{zero, one}};  // one topic's interest alone: a real query
    EXPECT_TRUE(engine_->Query(s.name, mvke).ok());
  }
  QuerySpec l2;
  l2.k = 5;
  l2.vectors = {std::vector<float>(8, 0.0f)};
  EXPECT_TRUE(engine_->Query("c", l2).ok());  // the fixture's collection is l2
}

// Planted structure: users interested in two distant clusters. One averaged vector lands
// between them; one vector per interest (max-merged) finds what each interest likes.
TEST(MultiInterestRecallTest, TwoInterestsBeatOneAveragedVector) {
  quiver::testing::ScopedTempDir dir;
  auto e = std::move(Engine::Open(dir.path() + "/v", {})).value();
  CollectionSchema s;
  s.name = "c";
  s.dim = 8;
  s.index.type = IndexSpec::Type::kHnsw;
  s.clusters = 8;
  ASSERT_TRUE(e->CreateCollection(s).ok());
  auto items = ClusteredItems(300, 8, 11);
  ASSERT_TRUE(e->Upsert("c", items).ok());
  std::mt19937 rng(3);
  double single = 0, multi = 0, quota = 0;
  const int users = 20;
  for (int u = 0; u < users; ++u) {
    const int a = int(rng() % 8), b = (a + 1 + int(rng() % 7)) % 8;
    std::vector<float> ia(8, 0.0f), ib(8, 0.0f), mean(8, 0.0f);
    ia[a] = 10.0f;
    ib[b] = 10.0f;
    for (int d = 0; d < 8; ++d) mean[d] = (ia[d] + ib[d]) / 2;
    // Relevant: the 25 nearest items to each interest.
    std::set<uint64_t> relevant;
    for (const auto* v : {&ia, &ib}) {
      std::vector<std::pair<float, uint64_t>> all;
      for (const auto& item : items) {
        float d = 0;
        for (int t = 0; t < 8; ++t) d += ((*v)[t] - item.vector[t]) * ((*v)[t] - item.vector[t]);
        all.emplace_back(d, item.id);
      }
      std::partial_sort(all.begin(), all.begin() + 25, all.end());
      for (int i = 0; i < 25; ++i) relevant.insert(all[i].second);
    }
    auto recall = [&](const QuerySpec& q) {
      auto r = e->Query("c", q);
      EXPECT_TRUE(r.ok()) << r.status();
      size_t hit = 0;
      for (const auto& h : r->hits) hit += relevant.count(h.id);
      return double(hit) / double(relevant.size());
    };
    QuerySpec q;
    q.k = 50;
    q.vectors = {mean};
    single += recall(q);
    q.vectors = {ia, ib};
    multi += recall(q);
    q.quota = QuotaSpec{{}, 1.0f, 50, 5.0f};
    quota += recall(q);
  }
  single /= users;
  multi /= users;
  quota /= users;
  std::printf(
      "recall@50 over %d two-interest users: single averaged vector %.3f, two vectors max-merged "
      "%.3f, "
      "two vectors with auto quotas %.3f\n",
      users, single, multi, quota);
  EXPECT_GT(multi, single + 0.3);
  EXPECT_GT(quota, single + 0.3);
}

}  // namespace
}  // namespace quiver::engine
