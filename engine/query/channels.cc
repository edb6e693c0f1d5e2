// Candidate channels merged MIC-style (docs/queries.md, "Channels"): u2i (the query's own
// retrieval through RunQuery, or the user's vector), u2i2i (seeds -> their neighbor lists),
// u2u2i (the user's similar users -> their recent items), merged greedily by
// w_sim sim + w_dup dup + w_div div.

#include <algorithm>
#include <bit>
#include <cmath>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "engine/partitions.h"
#include "engine/query/operators.h"
#include "storage/store.h"

namespace quiver::engine::ops {
namespace {

struct Candidate {
  float raw[3] = {-INFINITY, -INFINITY, -INFINITY};  // best score per channel (u2i, u2i2i, u2u2i)
  float sim = 0;  // max over channels of the channel's weight times its normalised score
  uint8_t channels = 0;
  uint32_t vector = 0;
  int32_t cluster = -1;
};

// Min-max scales channel c's raw scores to [0, 1] (all equal: 1), times the channel's weight w.
void Normalise(std::unordered_map<uint64_t, Candidate>& all, int c, float w) {
  float lo = INFINITY, hi = -INFINITY;
  for (const auto& [id, x] : all) {
    if (x.channels >> c & 1) lo = std::min(lo, x.raw[c]), hi = std::max(hi, x.raw[c]);
  }
  for (auto& [id, x] : all) {
    if (!(x.channels >> c & 1)) continue;
    x.sim = std::max(x.sim, w * (hi > lo ? (x.raw[c] - lo) / (hi - lo) : 1.0f));
  }
}

}  // namespace

namespace {

// The engine's own data: its store and indexes.
class LocalData final : public ChannelData {
 public:
  LocalData(const storage::Store& store, uint32_t id, const Partitions& parts, Metric metric)
      : store_(store), id_(id), parts_(parts), metric_(metric) {}
  Result<std::optional<UserRecord>> User(uint64_t id) override { return store_.GetUser(id_, id); }
  Result<std::vector<std::optional<std::vector<Hit>>>> Lists(
      const std::string& kind, std::span<const uint64_t> keys) override {
    std::vector<std::optional<std::vector<Hit>>> out;
    out.reserve(keys.size());
    for (uint64_t key : keys) {
      QV_ASSIGN_OR_RETURN(auto list, store_.GetList(id_, kind, key));
      out.push_back(std::move(list));
    }
    return out;
  }
  Result<bool> HasListKind(const std::string& kind) override {
    QV_ASSIGN_OR_RETURN(auto infos, store_.ListInfos(id_));
    return std::any_of(infos.begin(), infos.end(),
                       [&](const storage::ListInfo& i) { return i.kind == kind; });
  }
  Result<QueryResult> Search(const QuerySpec& q) override { return RunQuery(parts_, metric_, q); }
  bool Attrs(uint64_t id, ItemAttrs* out) override {
    return parts_.Contains(id) && parts_.AttrsFor(id, out);
  }
  size_t clusters() const override { return parts_.clusters(); }

 private:
  const storage::Store& store_;
  const uint32_t id_;
  const Partitions& parts_;
  const Metric metric_;
};

}  // namespace

Result<QueryResult> RunChannels(const storage::Store& store, uint32_t collection_id,
                                const Partitions& parts, Metric metric, const QuerySpec& q) {
  LocalData data(store, collection_id, parts, metric);
  return engine::RunChannels(q, data);
}

}  // namespace quiver::engine::ops

namespace quiver::engine {

Result<QueryResult> RunChannels(const QuerySpec& q, ChannelData& data) {
  using ops::Candidate;
  const Channels& ch = *q.channels;
  std::optional<UserRecord> user;
  if (ch.user) {
    QV_ASSIGN_OR_RETURN(user, data.User(*ch.user));
    if (!user) return NotFoundError("no user " + std::to_string(*ch.user));
  }
  const size_t k = q.quota ? q.quota->total : q.k;
  std::unordered_set<uint64_t> seen;
  std::vector<uint64_t> seeds = ch.seed_items;
  if (user) {
    for (const Interaction& e : user->history) seen.insert(e.item);
    if (seeds.empty()) {
      for (const Interaction& e : user->history) {
        if (seeds.size() >= ch.seeds) break;
        if (std::find(seeds.begin(), seeds.end(), e.item) == seeds.end()) seeds.push_back(e.item);
      }
    }
  }
  if (!ch.exclude_seen) seen.clear();
  if (ch.exclude_seen) seen.insert(ch.seed_items.begin(), ch.seed_items.end());
  std::unordered_map<uint64_t, Candidate> all;
  const std::optional<Filter> narrowed = ops::Narrow(q, std::nullopt);  // with the excluded ids
  const std::optional<Filter>& filter = narrowed ? narrowed : q.filter;
  auto offer = [&](uint64_t id, int c, float score) {
    Candidate& x = all[id];
    x.raw[c] = std::max(x.raw[c], score);
    x.channels |= uint8_t(1u << c);
  };
  bool ran = false;
  // u2i: the query itself (its vectors, mvke, quota, fresh, filter), or the user's vector;
  // seen items are fetched past, so k remain after the exclusion.
  const bool have_vectors = !q.vectors.empty() || q.mvke;
  std::vector<QueryHit> u2i_hits;
  if (ch.u2i && (have_vectors || (user && !user->vector.empty()))) {
    QuerySpec u2i = q;
    u2i.channels.reset();
    u2i.filter = filter;  // narrowed once, here
    u2i.exclude.clear();
    if (!have_vectors) u2i.vectors = {user->vector};
    if (!u2i.quota) u2i.k = uint32_t(std::min<size_t>(k + seen.size(), 100000));
    QV_ASSIGN_OR_RETURN(QueryResult r, data.Search(u2i));
    u2i_hits = std::move(r.hits);
    ran = true;
  }
  // The lists the other channels read: each seed's i2i list; the user's u2u list and the
  // histories of the similar users in it.
  // A list kind no plugin run wrote (misspelt, or never built) is an error, not an empty
  // channel, for a channel that runs (u2i2i with seeds, u2u2i with a user).
  for (const auto& [on, kind, channel, plugin] :
       {std::tuple{ch.u2i2i && !seeds.empty(), &ch.i2i_kind, "u2i2i", "i2i_knn or itemcf"},
        std::tuple{ch.u2u2i && user.has_value(), &ch.u2u_kind, "u2u2i", "u2u_knn"}}) {
    if (!on) continue;
    QV_ASSIGN_OR_RETURN(const bool exists, data.HasListKind(*kind));
    if (!exists) {
      return NotFoundError("no neighbor lists of kind '" + *kind + "' in this collection: the " +
                           channel + " channel reads them (run a plugin that writes them, e.g. " +
                           plugin + ", or set " + channel + " false)");
    }
  }
  std::vector<std::optional<std::vector<Hit>>> seed_lists;
  if (ch.u2i2i && !seeds.empty()) {
    QV_ASSIGN_OR_RETURN(seed_lists, data.Lists(ch.i2i_kind, seeds));
    ran = true;
  }
  std::vector<std::pair<float, UserRecord>> similar;
  if (ch.u2u2i && user) {
    const uint64_t key = user->id;
    QV_ASSIGN_OR_RETURN(auto neighbours, data.Lists(ch.u2u_kind, std::span(&key, 1)));
    if (neighbours[0]) {
      size_t used = 0;
      for (const Hit& v : *neighbours[0]) {
        if (used++ >= ch.users) break;
        QV_ASSIGN_OR_RETURN(auto other, data.User(v.id));
        if (other) similar.emplace_back(v.score, std::move(*other));
      }
    }
    ran = true;
  }
  if (!ran) {
    return InvalidArgumentError(
        "no channel could run: u2i needs vectors or a user with a vector, u2i2i a user or "
        "seed_items, u2u2i a user");
  }
  std::vector<uint64_t> ids;
  ids.reserve(u2i_hits.size());
  for (const QueryHit& h : u2i_hits) ids.push_back(h.id);
  for (const auto& list : seed_lists) {
    if (list) {
      for (const Hit& h : *list) ids.push_back(h.id);
    }
  }
  for (const auto& [score, other] : similar) {
    for (const Interaction& e : other.history) ids.push_back(e.item);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  QV_RETURN_IF_ERROR(data.Prefetch(ids));
  ItemAttrs scratch;
  auto allowed = [&](uint64_t id) {
    return !seen.count(id) && data.Attrs(id, &scratch) &&
           (!filter || Matches(*filter, id, scratch));
  };
  for (const QueryHit& h : u2i_hits) {
    if (seen.count(h.id)) continue;
    offer(h.id, 0, h.score);
    all[h.id].vector = h.vector;
    all[h.id].cluster = h.cluster;
  }
  // u2i2i: each seed's list, its first per_seed entries.
  for (const auto& list : seed_lists) {
    if (!list) continue;
    size_t taken = 0;
    for (const Hit& h : *list) {
      if (taken >= ch.per_seed) break;
      if (!allowed(h.id)) continue;
      offer(h.id, 1, h.score);
      ++taken;
    }
  }
  // u2u2i: the user's similar users, each one's most recent items, scored by the similarity.
  for (const auto& [score, other] : similar) {
    size_t taken = 0;
    for (const Interaction& e : other.history) {
      if (taken >= ch.per_user) break;
      if (!allowed(e.item)) continue;
      offer(e.item, 2, score);
      ++taken;
    }
  }
  for (int c = 0; c < 3; ++c) ops::Normalise(all, c, ch.channel_weights[size_t(c)]);
  // Greedy merge: each step takes the candidate with the largest
  // w_sim sim + w_dup dup + w_div div, div = the share of the items taken so far whose category
  // differs from its own (1 for the first).
  std::vector<std::pair<uint64_t, Candidate*>> pool;
  pool.reserve(all.size());
  for (auto& [id, x] : all) pool.emplace_back(id, &x);
  std::sort(pool.begin(), pool.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<ItemAttrs> attrs(pool.size());
  std::vector<bool> known(pool.size(), false);
  for (size_t i = 0; i < pool.size(); ++i) known[i] = data.Attrs(pool[i].first, &attrs[i]);
  std::map<int64_t, size_t> per_category;
  size_t taken_total = 0;
  std::vector<bool> taken(pool.size(), false);
  QueryResult out;
  while (out.hits.size() < std::min(k, pool.size())) {
    size_t best = pool.size();
    float best_value = -INFINITY;
    for (size_t i = 0; i < pool.size(); ++i) {
      if (taken[i]) continue;
      const Candidate& x = *pool[i].second;
      const float dup = float(std::popcount(x.channels) - 1);
      float div = 1.0f;
      if (taken_total > 0) {
        const size_t same = attrs[i].has_category ? per_category[attrs[i].category] : 0;
        div = float(taken_total - same) / float(taken_total);
      }
      const float value = ch.w_sim * x.sim + ch.w_dup * dup + ch.w_div * div;
      if (value > best_value) best_value = value, best = i;
    }
    if (best == pool.size()) break;
    taken[best] = true;
    ++taken_total;
    if (attrs[best].has_category) ++per_category[attrs[best].category];
    const Candidate& x = *pool[best].second;
    int32_t cluster = x.cluster;
    if (cluster < 0 && known[best] && data.clusters() > 0) cluster = int32_t(attrs[best].cluster);
    out.hits.push_back({pool[best].first, best_value, x.vector, cluster, x.channels});
  }
  if (data.clusters() > 0) {
    out.per_cluster.assign(data.clusters(), 0);
    for (QueryHit& h : out.hits) {
      if (h.cluster >= 0) ++out.per_cluster[size_t(h.cluster)];
    }
  }
  return out;
}

}  // namespace quiver::engine
