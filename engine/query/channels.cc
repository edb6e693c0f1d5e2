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
  float sim = 0;                                     // max over channels of the normalised score
  uint8_t channels = 0;
  uint32_t vector = 0;
  int32_t cluster = -1;
};

// Min-max scales channel c's raw scores to [0, 1] (all equal: 1).
void Normalise(std::unordered_map<uint64_t, Candidate>& all, int c) {
  float lo = INFINITY, hi = -INFINITY;
  for (const auto& [id, x] : all) {
    if (x.channels >> c & 1) lo = std::min(lo, x.raw[c]), hi = std::max(hi, x.raw[c]);
  }
  for (auto& [id, x] : all) {
    if (!(x.channels >> c & 1)) continue;
    x.sim = std::max(x.sim, hi > lo ? (x.raw[c] - lo) / (hi - lo) : 1.0f);
  }
}

}  // namespace

Result<QueryResult> RunChannels(const storage::Store& store, uint32_t collection_id,
                                const Partitions& parts, Metric metric, const QuerySpec& q) {
  const Channels& ch = *q.channels;
  std::optional<UserRecord> user;
  if (ch.user) {
    QV_ASSIGN_OR_RETURN(user, store.GetUser(collection_id, *ch.user));
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
  const std::optional<Filter> narrowed = Narrow(q, std::nullopt);  // with the excluded ids
  const std::optional<Filter>& filter = narrowed ? narrowed : q.filter;
  auto allowed = [&](uint64_t id) {
    return !seen.count(id) && parts.Contains(id) && (!filter || parts.Allows(*filter, id));
  };
  auto offer = [&](uint64_t id, int c, float score) {
    Candidate& x = all[id];
    x.raw[c] = std::max(x.raw[c], score);
    x.channels |= uint8_t(1u << c);
  };
  bool ran = false;
  // u2i: the query itself (its vectors, mvke, quota, fresh, filter), or the user's vector;
  // seen items are fetched past, so k remain after the exclusion.
  const bool have_vectors = !q.vectors.empty() || q.mvke;
  if (ch.u2i && (have_vectors || (user && !user->vector.empty()))) {
    QuerySpec u2i = q;
    u2i.channels.reset();
    u2i.filter = filter;  // narrowed once, here
    u2i.exclude.clear();
    if (!have_vectors) u2i.vectors = {user->vector};
    if (!u2i.quota) u2i.k = uint32_t(std::min<size_t>(k + seen.size(), 100000));
    QV_ASSIGN_OR_RETURN(QueryResult r, RunQuery(parts, metric, u2i));
    for (const QueryHit& h : r.hits) {
      if (seen.count(h.id)) continue;
      offer(h.id, 0, h.score);
      all[h.id].vector = h.vector;
      all[h.id].cluster = h.cluster;
    }
    ran = true;
  }
  // u2i2i: each seed's list, its first per_seed entries.
  if (ch.u2i2i && !seeds.empty()) {
    for (uint64_t seed : seeds) {
      QV_ASSIGN_OR_RETURN(auto list, store.GetList(collection_id, ch.i2i_kind, seed));
      if (!list) continue;
      size_t taken = 0;
      for (const Hit& h : *list) {
        if (taken >= ch.per_seed) break;
        if (!allowed(h.id)) continue;
        offer(h.id, 1, h.score);
        ++taken;
      }
    }
    ran = true;
  }
  // u2u2i: the user's similar users, each one's most recent items, scored by the similarity.
  if (ch.u2u2i && user) {
    QV_ASSIGN_OR_RETURN(auto neighbours, store.GetList(collection_id, ch.u2u_kind, user->id));
    if (neighbours) {
      size_t used = 0;
      for (const Hit& v : *neighbours) {
        if (used++ >= ch.users) break;
        QV_ASSIGN_OR_RETURN(auto other, store.GetUser(collection_id, v.id));
        if (!other) continue;
        size_t taken = 0;
        for (const Interaction& e : other->history) {
          if (taken >= ch.per_user) break;
          if (!allowed(e.item)) continue;
          offer(e.item, 2, v.score);
          ++taken;
        }
      }
    }
    ran = true;
  }
  if (!ran) {
    return InvalidArgumentError(
        "no channel could run: u2i needs vectors or a user with a vector, u2i2i a user or "
        "seed_items, u2u2i a user");
  }
  for (int c = 0; c < 3; ++c) Normalise(all, c);
  // Greedy merge: each step takes the candidate with the largest
  // w_sim sim + w_dup dup + w_div div, div = the share of the items taken so far whose category
  // differs from its own (1 for the first).
  std::vector<std::pair<uint64_t, Candidate*>> pool;
  pool.reserve(all.size());
  for (auto& [id, x] : all) pool.emplace_back(id, &x);
  std::sort(pool.begin(), pool.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<ItemAttrs> attrs(pool.size());
  for (size_t i = 0; i < pool.size(); ++i) parts.AttrsFor(pool[i].first, &attrs[i]);
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
    out.hits.push_back({pool[best].first, best_value, x.vector, x.cluster, x.channels});
  }
  if (parts.clusters() > 0) {
    out.per_cluster.assign(parts.clusters(), 0);
    for (QueryHit& h : out.hits) {
      if (h.cluster < 0) h.cluster = int32_t(parts.ClusterOf(h.id));
      if (h.cluster >= 0) ++out.per_cluster[size_t(h.cluster)];
    }
  }
  return out;
}

}  // namespace quiver::engine::ops
