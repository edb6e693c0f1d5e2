// The search model: what a search asks for (QuerySpec and its parts: aggregate, quota, MVKE,
// filter, re-ranking, freshness, channels) and what it answers (QueryHit, QueryResult). Plain
// values below the engine, which executes them, and the front ends and the client, which
// decode and build them. docs/queries.md gives the semantics, with formulas.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quiver {

// A predicate on item attributes (docs/queries.md, "Filters").
//   eq:    field == values[0]        (tag: the item has that tag)
//   in:    field is one of values    (tag: the item has any of them)
//   range: lo <= field <= hi         (category, timestamp, cluster)
// The id field compares item ids (uint64) as int64 bit patterns.
//   not / and / or over children.
struct Filter {
  enum class Op : uint8_t { kEq = 0, kIn = 1, kRange = 2, kNot = 3, kAnd = 4, kOr = 5 };
  enum class Field : uint8_t { kCategory = 0, kTag = 1, kTimestamp = 2, kCluster = 3, kId = 4 };
  Op op = Op::kAnd;
  Field field = Field::kCategory;
  std::vector<int64_t> values;
  int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  std::vector<Filter> children;
  friend bool operator==(const Filter&, const Filter&) = default;
};

// Diversity re-ranking of a search's results (docs/queries.md, "Diversity").
struct Rerank {
  float mmr_lambda = -1.0f;               // in [0, 1]: MMR trade-off; negative: no MMR
  uint32_t window = 0;                    // candidates re-ranked (0: 3 * k)
  uint32_t max_consecutive_category = 0;  // 0: no limit
  uint32_t per_category_cap = 0;          // 0: no limit
  float category_diversity = 0.0f;  // ComiRec's lambda: bonus per selected item of another category
  friend bool operator==(const Rerank&, const Rerank&) = default;
};

// Freshness of a search (docs/queries.md, "Freshness"), in the items' timestamp units (Unix
// seconds unless every request passes `now`).
struct Fresh {
  int64_t pool = 0;       // > 0: only items with timestamp >= now - pool (a time-bucketed pool)
  int64_t now = 0;        // 0: the server's clock, in Unix seconds
  float boost = 0;        // score += boost * 2^(-max(0, now - timestamp) / half_life)
  int64_t half_life = 0;  // > 0 with a boost
  int64_t horizon =
      0;  // with a boost, items younger than this are candidates too (0: 4 * half_life)
  uint32_t window = 0;  // with a boost, candidates per source before boosting (0: 3 * k)
  friend bool operator==(const Fresh&, const Fresh&) = default;
};

// Candidate channels merged MIC-style (docs/queries.md, "Channels"): u2i (the query's own
// retrieval, or the user's vector), u2i2i (seed items -> their neighbor lists), u2u2i (similar
// users -> their recent items).
struct Channels {
  std::optional<uint64_t> user;      // whose vector, history and u2u list the channels use
  std::vector<uint64_t> seed_items;  // u2i2i seeds (default: the user's most recent items)
  bool u2i = true, u2i2i = true, u2u2i = true;
  uint32_t seeds = 20;     // u2i2i: most recent history items used as seeds
  uint32_t per_seed = 20;  // u2i2i: neighbors taken from each seed's list
  uint32_t users = 20;     // u2u2i: similar users taken from the user's list
  uint32_t per_user = 10;  // u2u2i: most recent items taken from each of them
  std::string i2i_kind = "i2i", u2u_kind = "u2u";
  float w_sim = 1.0f, w_dup = 0.5f, w_div = 0.2f;  // merged = w_sim sim + w_dup dup + w_div div
  // Per-channel weights (u2i, u2i2i, u2u2i): sim = max over channels of weight * scaled score.
  std::array<float, 3> channel_weights = {1.0f, 1.0f, 1.0f};
  bool exclude_seen = true;  // leave out the user's history and the seeds
  friend bool operator==(const Channels&, const Channels&) = default;
};

enum class Aggregate : uint8_t { kMax = 0, kSum = 1, kWeighted = 2 };

// The list kind quotas with p "learned" read, keyed by user: (cluster, p_k) entries. The intent
// plugin (plugins/builtin.h) writes it.
inline constexpr std::string_view kLearnedIntentKind = "intent";

struct QuotaSpec {
  std::vector<float> p;      // intent per cluster (C values, >= 0); empty: estimate ("auto")
  float a = 1.0f;            // exponent on p
  uint32_t total = 0;        // M: results across clusters
  float temperature = 1.0f;  // "auto": p = softmax(similarity(q, centroid_k) / temperature)
  // p "history" (docs/queries.md, "Intent from history"): this user's stored events give p_k
  // proportional to sum over the events on items of cluster k of 2^(-(t_newest - t) /
  // half_life) (half_life 0: every event counts 1). Exclusive with p.
  std::optional<uint64_t> user;
  int64_t half_life = 0;
  // p "learned" (docs/queries.md, "Learned intent"): p is the user's list of kind "intent"
  // written by the intent plugin (docs/plugins.md). Needs user; exclusive with p and half_life.
  bool learned = false;
  friend bool operator==(const QuotaSpec&, const QuotaSpec&) = default;
};

// MVKE (docs/queries.md): score(i) = sum_k alpha_ik (u_k . t_i), exact for every hit.
enum class MvkeStrategy : uint8_t {
  kPerTopic =
      0,         // topic k's sub-index searched with u_k; threshold-algorithm stop; exact rescoring
  kConcat = 1,   // one search of the [alpha_1 t, ..., alpha_K t] index with [u_1, ..., u_K]
  kRescore = 2,  // the global index searched with each u_k; exact rescoring of the union
  // IVF-PQ: one scan of the global index scoring sum_k alpha_ik (u_k . PQ(t_i)) with each
  // item's alpha kept beside its code; exact rescoring of the best candidates.
  kWeightedScan = 3,
};

struct MvkeSpec {
  std::vector<std::vector<float>> user_vectors;  // u_1..u_K: one per topic
  MvkeStrategy strategy = MvkeStrategy::kPerTopic;
  // Candidates per stream (per_topic: per topic in the first round; rescore: per u_k; concat:
  // retrieved) before exact rescoring. 0: max(k, 32).
  uint32_t candidates = 0;
  // per_topic: while the threshold-algorithm bound says an unseen item could still enter the
  // top k, search again twice as deep, up to this many per topic. 0: one round.
  uint32_t max_candidates = 0;
  friend bool operator==(const MvkeSpec&, const MvkeSpec&) = default;
};

struct QuerySpec {
  std::vector<std::vector<float>> vectors;  // K >= 1 query vectors (none with mvke)
  Aggregate aggregate = Aggregate::kMax;
  std::vector<float> weights;               // kWeighted: K weights >= 0
  uint32_t k = 10;                          // results (with a quota: quota.total)
  uint32_t ef = 0, nprobe = 0, refine = 0;  // per-request index knobs (0: defaults)
  std::optional<QuotaSpec> quota;
  // Only items whose attributes match are returned: applied inside the index traversal, or, when
  // few items match (an estimate from a sample, then an exact count), by an exact scan of them.
  std::optional<Filter> filter;
  std::optional<Rerank> rerank;
  std::optional<MvkeSpec> mvke;  // instead of vectors; not with a quota
  // A freshness pool (only items younger than fresh.pool) and/or a new-item score boost.
  std::optional<Fresh> fresh;
  // Candidate channels merged MIC-style (Engine::Query; vectors then optional with a user).
  std::optional<Channels> channels;
  // Items never returned (e.g. what the user has already seen), by any operator or channel.
  std::vector<uint64_t> exclude;
  // Cluster mode (docs/cluster.md): a router's sub-request to a node hosting these shards
  // (ascending). The node answers from its own items without routing further; a quota searches
  // only the clusters of these shards (the others keep their M_k, for the nodes that host
  // them). Empty: a request from a client.
  std::vector<uint32_t> shards;
  friend bool operator==(const QuerySpec&, const QuerySpec&) = default;
};

// Channel bits of QueryHit::channels.
inline constexpr uint8_t kChannelU2i = 1, kChannelU2i2i = 2, kChannelU2u2i = 4;

struct QueryHit {
  uint64_t id = 0;
  float score = 0;       // aggregated; higher is better
  uint32_t vector = 0;   // the query vector that scored it highest
  int32_t cluster = -1;  // its cluster (-1: the collection has none)
  uint8_t channels = 0;  // with channels: the kChannel* bits of the channels that returned it
  friend bool operator==(const QueryHit&, const QueryHit&) = default;
};

struct QueryResult {
  std::vector<QueryHit> hits;         // best first
  std::vector<uint32_t> quotas;       // with a quota: M_k per cluster after redistribution
  std::vector<uint32_t> per_cluster;  // hits per cluster (when the collection has clusters)
};

}  // namespace quiver
