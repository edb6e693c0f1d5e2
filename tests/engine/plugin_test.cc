// Plugins (plugins/plugin.h) through the engine: the built-ins against brute-force references on
// small data, incremental runs against full rebuilds, all-or-nothing runs, outside shared
// objects (and one built for another ABI version), bad configs.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "engine/engine.h"
#include "engine/plugin_host.h"
#include "plugins/registry.h"
#include "tests/testing/temp_dir.h"

namespace quiver::engine {
namespace {

constexpr uint32_t kDim = 8;

std::vector<ItemRecord> Items(size_t n, uint64_t first_id, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<ItemRecord> items(n);
  for (size_t i = 0; i < n; ++i) {
    items[i].id = first_id + i;
    items[i].category = int64_t(i % 3);
    items[i].tags = {int64_t(i % 4)};
    for (uint32_t d = 0; d < kDim; ++d) items[i].vector.push_back(g(rng));
  }
  return items;
}

float Dot(const std::vector<float>& a, const std::vector<float>& b) {
  float s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

class PluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = std::move(Engine::Open(dir_.path() + "/v", {})).value();
    CollectionSchema s;
    s.name = "c";
    s.dim = kDim;
    s.metric = Metric::kInnerProduct;
    s.index.type = IndexSpec::Type::kFlat;  // exact kNN: lists must equal brute force
    s.max_history = 50;
    ASSERT_TRUE(engine_->CreateCollection(s).ok());
    items_ = Items(300, 1, 3);
    ASSERT_TRUE(engine_->Upsert("c", items_).ok());
  }

  // The k best other items for item `of` among items_ (same category if asked), by inner product.
  std::vector<uint64_t> BruteI2i(const ItemRecord& of, size_t k, bool same_category) const {
    std::vector<std::pair<float, uint64_t>> all;
    for (const auto& it : items_) {
      if (it.id == of.id || (same_category && it.category != of.category)) continue;
      all.emplace_back(-Dot(of.vector, it.vector), it.id);
    }
    std::sort(all.begin(), all.end());
    std::vector<uint64_t> out;
    for (size_t i = 0; i < std::min(k, all.size()); ++i) out.push_back(all[i].second);
    return out;
  }
  std::vector<uint64_t> Ids(const std::vector<Hit>& list) const {
    std::vector<uint64_t> out;
    out.reserve(list.size());
    for (const Hit& h : list) out.push_back(h.id);
    return out;
  }
  std::map<uint64_t, std::vector<uint64_t>> AllLists(const std::string& kind) const {
    std::map<uint64_t, std::vector<uint64_t>> out;
    for (const auto& it : items_) {
      auto l = engine_->GetList("c", kind, it.id);
      EXPECT_TRUE(l.ok());
      if (l.ok() && l->has_value()) out[it.id] = Ids(**l);
    }
    return out;
  }

  quiver::testing::ScopedTempDir dir_;
  std::unique_ptr<Engine> engine_;
  std::vector<ItemRecord> items_;
};

TEST_F(PluginTest, I2iKnnEqualsBruteForce) {
  auto run = engine_->RunPlugin("c", "i2i_knn", R"({"k": 10})", false);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->kinds, std::vector<std::string>{"i2i"});
  EXPECT_EQ(run->lists, items_.size());
  for (const auto& it : items_) {
    auto list = engine_->GetList("c", "i2i", it.id);
    ASSERT_TRUE(list.ok() && list->has_value()) << it.id;
    EXPECT_EQ(Ids(**list), BruteI2i(it, 10, false)) << it.id;
    EXPECT_FLOAT_EQ((**list)[0].score, Dot(it.vector, items_[(**list)[0].id - 1].vector));
  }
  // Within the item's own category, under another kind name; the first kind is untouched.
  run = engine_->RunPlugin("c", "i2i_knn", R"({"k": 5, "same_category": true, "kind": "i2i_cat"})",
                           false);
  ASSERT_TRUE(run.ok()) << run.status();
  for (const auto& it : items_)
    EXPECT_EQ(AllLists("i2i_cat")[it.id], BruteI2i(it, 5, true)) << it.id;
  EXPECT_EQ(AllLists("i2i")[items_[0].id].size(), 10u);
  auto infos = engine_->ListInfos("c");
  ASSERT_TRUE(infos.ok());
  ASSERT_EQ(infos->size(), 2u);
  EXPECT_EQ((*infos)[0].kind, "i2i");
  EXPECT_EQ((*infos)[0].plugin, "i2i_knn");
  EXPECT_EQ((*infos)[0].keys, items_.size());
  EXPECT_EQ((*infos)[0].config, R"({"k":10})");
}

TEST_F(PluginTest, IncrementalI2iEqualsAFullRebuild) {
  ASSERT_TRUE(engine_->RunPlugin("c", "i2i_knn", R"({"k": 8})", false).ok());
  // New items, moved items (new vectors), deleted items.
  auto added = Items(40, 1000, 9);
  ASSERT_TRUE(engine_->Upsert("c", added).ok());
  std::vector<ItemRecord> moved = {items_[3], items_[50], items_[120]};
  for (auto& m : moved) {
    for (float& x : m.vector) x = -x * 1.5f;
  }
  ASSERT_TRUE(engine_->Upsert("c", moved).ok());
  const std::vector<uint64_t> gone = {items_[7].id, items_[200].id, added[5].id};
  ASSERT_TRUE(engine_->Delete("c", gone).ok());
  // The reference state.
  for (const auto& m : moved) items_[m.id - 1] = m;
  items_.insert(items_.end(), added.begin(), added.end());
  std::erase_if(items_, [&](const ItemRecord& it) {
    return std::count(gone.begin(), gone.end(), it.id) > 0;
  });

  auto run = engine_->RunPlugin("c", "i2i_knn", R"({"k": 8})", true);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_TRUE(run->incremental);
  EXPECT_LT(run->lists, items_.size()) << "an incremental run rewrites only what changed";
  const auto incremental = AllLists("i2i");
  for (uint64_t id : gone) EXPECT_FALSE(engine_->GetList("c", "i2i", id)->has_value()) << id;
  ASSERT_TRUE(engine_->RunPlugin("c", "i2i_knn", R"({"k": 8})", false).ok());
  const auto full = AllLists("i2i");
  EXPECT_EQ(incremental, full);
  for (const auto& it : items_) EXPECT_EQ(full.at(it.id), BruteI2i(it, 8, false));
  EXPECT_EQ((*engine_->ListInfos("c"))[0].keys, items_.size());
  // Nothing changed since: an incremental run writes nothing; another config is a full run.
  run = engine_->RunPlugin("c", "i2i_knn", R"({"k": 8})", true);
  ASSERT_TRUE(run.ok());
  EXPECT_TRUE(run->incremental);
  EXPECT_EQ(run->lists, 0u);
  run = engine_->RunPlugin("c", "i2i_knn", R"({"k": 6})", true);
  ASSERT_TRUE(run.ok());
  EXPECT_FALSE(run->incremental);
}

TEST_F(PluginTest, U2uKnnAndItemCfEqualTheirReferences) {
  std::mt19937 rng(5);
  std::normal_distribution<float> g;
  std::vector<UserRecord> users(60);
  for (size_t u = 0; u < users.size(); ++u) {
    users[u].id = 500 + u;
    for (uint32_t d = 0; d < kDim; ++d) users[u].vector.push_back(g(rng));
    for (int e = 0; e < 5 + int(u % 7); ++e)
      users[u].history.push_back({uint64_t(1 + rng() % 40), 1000 - e});
  }
  users[0].vector.clear();  // no vector: no u2u list
  ASSERT_TRUE(engine_->PutUsers("c", users).ok());
  ASSERT_TRUE(engine_->RunPlugin("c", "u2u_knn", R"({"k": 5})", false).ok());
  EXPECT_FALSE(engine_->GetList("c", "u2u", users[0].id)->has_value());
  for (size_t u = 1; u < users.size(); ++u) {
    std::vector<std::pair<float, uint64_t>> all;
    for (size_t v = 1; v < users.size(); ++v) {
      if (v != u) all.emplace_back(-Dot(users[u].vector, users[v].vector), users[v].id);
    }
    std::sort(all.begin(), all.end());
    std::vector<uint64_t> want;
    for (size_t i = 0; i < 5; ++i) want.push_back(all[i].second);
    EXPECT_EQ(Ids(**engine_->GetList("c", "u2u", users[u].id)), want) << users[u].id;
  }
  // itemcf: c_ij = sum over histories holding both of 1 / ln(2 + |H|), sim = c_ij / (n_i^0.4
  // n_j^0.6).
  ASSERT_TRUE(engine_->RunPlugin("c", "itemcf", R"({"k": 6, "alpha": 0.6})", false).ok());
  std::map<uint64_t, double> n;
  std::map<std::pair<uint64_t, uint64_t>, double> c;
  for (const auto& u : users) {
    std::set<uint64_t> h;
    for (const auto& e : u.history) h.insert(e.item);
    if (h.size() < 2) continue;
    for (uint64_t a : h) {
      n[a] += 1;
      for (uint64_t b : h) {
        if (a != b) c[{a, b}] += 1.0 / std::log(2.0 + double(h.size()));
      }
    }
  }
  size_t checked = 0;
  for (const auto& [a, na] : n) {
    std::vector<std::pair<double, uint64_t>> all;
    for (const auto& [ab, cab] : c) {
      if (ab.first == a)
        all.emplace_back(cab / (std::pow(na, 0.4) * std::pow(n[ab.second], 0.6)), ab.second);
    }
    std::sort(all.begin(), all.end(), [](auto& x, auto& y) {
      return x.first != y.first ? x.first > y.first : x.second < y.second;
    });
    auto got = engine_->GetList("c", "i2i_cf", a);
    ASSERT_TRUE(got.ok() && got->has_value()) << a;
    ASSERT_EQ((*got)->size(), std::min<size_t>(6, all.size()));
    for (size_t i = 0; i < (*got)->size(); ++i)
      EXPECT_NEAR((**got)[i].score, all[i].first, 1e-5) << a << " rank " << i;
    ++checked;
  }
  EXPECT_GT(checked, 30u);
}

TEST_F(PluginTest, OutsidePluginsLoadAndAFailingRunLeavesThePreviousLists) {
  auto& registry = plugins::Registry::Global();
  Status loaded = registry.LoadObject(QUIVER_EXAMPLE_PLUGIN);
  ASSERT_TRUE(loaded.ok() || loaded.code() == StatusCode::kInvalidArgument)
      << loaded;  // once per process
  auto run = engine_->RunPlugin("c", "same_tag", R"({"k": 3})", false);
  ASSERT_TRUE(run.ok()) << run.status();
  const auto before = AllLists("same_tag");
  ASSERT_EQ(before.size(), items_.size());
  EXPECT_EQ(before.at(1),
            (std::vector<uint64_t>{5, 9, 13}));  // tag 1 % 4: items 5, 9, 13 nearest by id
  // A run that writes 100 lists and then fails, or throws: nothing of it is kept.
  for (const char* config :
       {R"({"k": 1, "fail_after": 100})", R"({"k": 1, "fail_after": 100, "throw": true})"}) {
    auto bad = engine_->RunPlugin("c", "same_tag", config, false);
    ASSERT_FALSE(bad.ok()) << config;
    EXPECT_NE(bad.status().message().find("previous lists stay in force"), std::string::npos)
        << bad.status();
    EXPECT_EQ(AllLists("same_tag"), before) << config;
  }
  // The same object twice, an object for another ABI, a file that is no plugin.
  EXPECT_EQ(registry.LoadObject(QUIVER_EXAMPLE_PLUGIN).code(), StatusCode::kInvalidArgument);
  Status wrong = registry.LoadObject(QUIVER_WRONG_ABI_PLUGIN);
  EXPECT_EQ(wrong.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.message().find("ABI version 999"), std::string::npos) << wrong;
  EXPECT_EQ(registry.LoadObject(dir_.path() + "/none.so").code(), StatusCode::kNotFound);
  EXPECT_EQ(engine_->RunPlugin("c", "wrong_abi", "", false).status().code(), StatusCode::kNotFound);
}

TEST_F(PluginTest, BadRunsGetClearErrors) {
  auto code = [&](const std::string& plugin, const std::string& config) {
    return engine_->RunPlugin("c", plugin, config, false).status().code();
  };
  EXPECT_EQ(code("nope", ""), StatusCode::kNotFound);
  EXPECT_EQ(code("i2i_knn", "{"), StatusCode::kInvalidArgument);
  EXPECT_EQ(code("i2i_knn", "[1]"), StatusCode::kInvalidArgument);
  EXPECT_EQ(code("i2i_knn", R"({"k": [1]})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(code("i2i_knn", R"({"k": "ten"})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(code("i2i_knn", R"({"k": 0})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(code("i2i_knn", R"({"kind": "Bad Kind"})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(code("itemcf", R"({"alpha": 2})"), StatusCode::kInvalidArgument);
  // A key the plugin does not read (a misspelt option) is refused, naming it and the options.
  auto misspelt = engine_->RunPlugin("c", "i2i_knn", R"({"kk": 5})", false);
  EXPECT_EQ(misspelt.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      misspelt.status().message().find("no option 'kk' (its options: kind, k, same_category)"),
      std::string::npos)
      << misspelt.status();
  EXPECT_EQ(code("u2u_knn", R"({"k": 5, "alpha": 0.5})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(code("intent", R"({"sample": 5})"), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckPluginConfig("itemcf", R"({"k": 5, "alpha": 0.5, "kind": "cf"})"), Status::Ok());
  EXPECT_EQ(CheckPluginConfig("nope", "").code(), StatusCode::kNotFound);
  EXPECT_EQ(engine_->RunPlugin("nope", "i2i_knn", "", false).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(engine_->GetList("c", "A", 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(engine_->ListInfos("c")->empty()) << "failed runs record nothing";
}

}  // namespace
}  // namespace quiver::engine

namespace quiver::engine {
namespace {

// Channels over a flat collection with i2i and u2u lists: the answer equals a reference
// implementation of docs/queries.md "Channels" (candidates per channel, per-channel min-max
// normalisation times the channel's weight, greedy w_sim sim + w_dup dup + w_div div).
class ChannelsTest : public PluginTest {
 protected:
  void SetUp() override {
    PluginTest::SetUp();
    std::mt19937 rng(17);
    std::normal_distribution<float> g;
    for (size_t u = 0; u < 40; ++u) {
      UserRecord user;
      user.id = 900 + u;
      for (uint32_t d = 0; d < kDim; ++d) user.vector.push_back(g(rng));
      for (int e = 0; e < 12; ++e) user.history.push_back({uint64_t(1 + rng() % 300), 5000 - e});
      users_.push_back(user);
    }
    ASSERT_TRUE(engine_->PutUsers("c", users_).ok());
    ASSERT_TRUE(engine_->RunPlugin("c", "i2i_knn", R"({"k": 10})", false).ok());
    ASSERT_TRUE(engine_->RunPlugin("c", "u2u_knn", R"({"k": 5})", false).ok());
  }

  struct Ref {
    uint64_t id;
    uint8_t channels;
  };
  std::vector<Ref> Reference(const UserRecord& u, const Channels& ch, size_t k) {
    std::set<uint64_t> seen;
    for (const auto& e : u.history) seen.insert(e.item);
    std::map<uint64_t, std::array<float, 3>> raw;
    std::map<uint64_t, uint8_t> mask;
    auto offer = [&](uint64_t id, int c, float s) {
      auto [it, fresh] = raw.try_emplace(id, std::array<float, 3>{-INFINITY, -INFINITY, -INFINITY});
      it->second[c] = std::max(it->second[c], s);
      mask[id] |= uint8_t(1 << c);
    };
    std::vector<std::pair<float, uint64_t>> by_user;
    for (const auto& it : items_) by_user.emplace_back(-Dot(u.vector, it.vector), it.id);
    std::sort(by_user.begin(), by_user.end());
    for (size_t i = 0; i < std::min(by_user.size(), k + seen.size()); ++i) {
      if (!seen.count(by_user[i].second)) offer(by_user[i].second, 0, -by_user[i].first);
    }
    std::vector<uint64_t> seeds;
    for (const auto& e : u.history) {
      if (seeds.size() < ch.seeds && std::find(seeds.begin(), seeds.end(), e.item) == seeds.end())
        seeds.push_back(e.item);
    }
    for (uint64_t s : seeds) {
      auto list = **engine_->GetList("c", "i2i", s);
      size_t taken = 0;
      for (const Hit& h : list) {
        if (taken >= ch.per_seed) break;
        if (seen.count(h.id)) continue;
        offer(h.id, 1, h.score);
        ++taken;
      }
    }
    for (const Hit& v : **engine_->GetList("c", "u2u", u.id)) {
      const UserRecord& other = users_[v.id - 900];
      size_t taken = 0;
      for (const auto& e : other.history) {
        if (taken >= ch.per_user) break;
        if (seen.count(e.item)) continue;
        offer(e.item, 2, v.score);
        ++taken;
      }
    }
    std::map<uint64_t, float> sim;
    for (int c = 0; c < 3; ++c) {
      float lo = INFINITY, hi = -INFINITY;
      for (auto& [id, r] : raw) {
        if (mask[id] >> c & 1) lo = std::min(lo, r[c]), hi = std::max(hi, r[c]);
      }
      const float w = ch.channel_weights[size_t(c)];
      for (auto& [id, r] : raw) {
        if (mask[id] >> c & 1)
          sim[id] = std::max(sim[id], w * (hi > lo ? (r[c] - lo) / (hi - lo) : 1.0f));
      }
    }
    std::vector<Ref> out;
    std::map<int64_t, size_t> per_cat;
    std::set<uint64_t> taken;
    while (out.size() < std::min(k, raw.size())) {
      uint64_t best = 0;
      float best_value = -INFINITY;
      for (auto& [id, r] : raw) {
        if (taken.count(id)) continue;
        const int64_t cat = *items_[id - 1].category;
        const float div = out.empty() ? 1.0f : float(out.size() - per_cat[cat]) / float(out.size());
        const float value =
            ch.w_sim * sim[id] + ch.w_dup * float(std::popcount(mask[id]) - 1) + ch.w_div * div;
        if (value > best_value) best_value = value, best = id;
      }
      taken.insert(best);
      ++per_cat[*items_[best - 1].category];
      out.push_back({best, mask[best]});
    }
    return out;
  }

  std::vector<UserRecord> users_;
};

TEST_F(ChannelsTest, ThreeChannelsMergeAsDocumented) {
  for (size_t u : {0u, 7u, 23u}) {
    QuerySpec q;
    q.k = 25;
    q.channels = Channels{};
    q.channels->user = users_[u].id;
    auto r = engine_->Query("c", q);
    ASSERT_TRUE(r.ok()) << r.status();
    const auto want = Reference(users_[u], *q.channels, 25);
    ASSERT_EQ(r->hits.size(), want.size());
    std::set<uint8_t> masks;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(r->hits[i].id, want[i].id) << "user " << u << " rank " << i;
      EXPECT_EQ(r->hits[i].channels, want[i].channels) << "user " << u << " rank " << i;
      masks.insert(r->hits[i].channels);
      for (const auto& e : users_[u].history)
        EXPECT_NE(r->hits[i].id, e.item) << "a seen item came back";
    }
    EXPECT_GT(masks.size(), 2u) << "hits from several channel combinations";
  }
}

TEST_F(ChannelsTest, ChannelWeightsScaleEachChannelsScore) {
  // Weights other than 1 change the answer, and it still equals the reference; a channel
  // weighted 0 only contributes through dup, so with w_dup and w_div 0 its lone items score 0
  // and come after every item with a positive score.
  for (const std::array<float, 3> w :
       {std::array<float, 3>{1.0f, 0.4f, 0.7f}, {0.3f, 1.0f, 0.0f}}) {
    QuerySpec q;
    q.k = 25;
    q.channels = Channels{};
    q.channels->user = users_[7].id;
    auto plain = engine_->Query("c", q);
    ASSERT_TRUE(plain.ok()) << plain.status();
    q.channels->channel_weights = w;
    auto r = engine_->Query("c", q);
    ASSERT_TRUE(r.ok()) << r.status();
    const auto want = Reference(users_[7], *q.channels, 25);
    ASSERT_EQ(r->hits.size(), want.size());
    bool differs = false;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(r->hits[i].id, want[i].id) << "rank " << i;
      differs |= i < plain->hits.size() && plain->hits[i].id != r->hits[i].id;
    }
    EXPECT_TRUE(differs) << "the channel weights changed nothing";
  }
  QuerySpec q;
  q.k = 200;
  q.channels = Channels{};
  q.channels->user = users_[7].id;
  q.channels->u2i = false;  // u2i alone would cover most of the 300 items
  q.channels->w_dup = 0;
  q.channels->w_div = 0;
  q.channels->channel_weights = {1.0f, 1.0f, 0.0f};
  auto r = engine_->Query("c", q);
  ASSERT_TRUE(r.ok()) << r.status();
  bool lone_seen = false;
  for (const auto& h : r->hits) {
    if (h.channels == kChannelU2u2i) {
      lone_seen = true;
      EXPECT_EQ(h.score, 0.0f) << "lone u2u2i item " << h.id;
    } else if (h.score > 0) {
      EXPECT_FALSE(lone_seen) << "item " << h.id << " scored " << h.score
                              << " after a lone u2u2i item";
    }
  }
  EXPECT_TRUE(lone_seen) << "u2u2i returned nothing of its own";
  q.channels->channel_weights[2] = -1.0f;
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(ChannelsTest, SeedItemsAloneAndErrors) {
  QuerySpec q;
  q.k = 5;
  q.channels = Channels{};
  q.channels->u2i = false;
  q.channels->u2u2i = false;
  q.channels->seed_items = {10};
  auto r = engine_->Query("c", q);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto list = **engine_->GetList("c", "i2i", 10);
  ASSERT_EQ(r->hits.size(), 5u);
  std::set<uint64_t> from_list;
  for (size_t i = 0; i < 10; ++i) from_list.insert(list[i].id);
  for (const auto& h : r->hits) {
    EXPECT_TRUE(from_list.count(h.id)) << h.id;
    EXPECT_EQ(h.channels, kChannelU2i2i);
    EXPECT_NE(h.id, 10u) << "the seed itself is seen";
  }
  // Excluded items leave the seed's list: the next ones of the list take their places.
  q.exclude = {r->hits[0].id, r->hits[2].id};
  auto ex = engine_->Query("c", q);
  ASSERT_TRUE(ex.ok()) << ex.status();
  ASSERT_EQ(ex->hits.size(), 5u);
  for (const auto& h : ex->hits) {
    EXPECT_NE(h.id, q.exclude[0]);
    EXPECT_NE(h.id, q.exclude[1]);
  }
  EXPECT_EQ(ex->hits[0].id, r->hits[1].id);
  q.exclude.clear();
  q.channels->seed_items.clear();
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument)
      << "no channel can run";
  q.channels->user = 12345;
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kNotFound);
  // A list kind no run wrote, for a channel that runs: NOT_FOUND naming it, whether or not a
  // seed has a list.
  q.channels->user.reset();
  q.channels->seed_items = {10};
  q.channels->i2i_kind = "nonexistent";
  auto unknown = engine_->Query("c", q);
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("kind 'nonexistent'"), std::string::npos)
      << unknown.status();
  q.channels->i2i_kind = "i2i";
  q.channels->u2u2i = true;
  q.channels->u2u_kind = "u2u_typo";
  q.channels->user = users_[0].id;
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kNotFound);
  q.channels->u2u_kind = "u2u";
  q.channels->u2u2i = false;
  q.channels->seed_items.clear();
  q.channels->user = users_[0].id;
  q.channels->w_dup = -1;
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument);
  q.channels->w_dup = 0.5f;
  q.rerank = Rerank{};
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument);
  q.rerank.reset();
  q.channels->i2i_kind = "No Such";
  EXPECT_EQ(engine_->Query("c", q).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quiver::engine
