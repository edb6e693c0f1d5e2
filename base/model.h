// Quiver's data model as plain values: what a collection, an item, a user and a search result
// are. Shared by the engine (which stores and indexes them), the wire codecs and the client
// library (which depends only on base/ and the wire schema). No behaviour beyond parsing names.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/index_spec.h"

namespace quiver {

struct CollectionSchema {
  std::string name;
  uint32_t dim = 0;
  Metric metric = Metric::kL2;
  IndexSpec index;
  uint32_t clusters = 0;  // C: items carry a cluster id in [0, C); 0 = not partitioned
  uint32_t topics = 0;    // K: items carry K topic weights; 0 = none
  // MVKE (docs/queries.md): topic k's sub-index holds alpha_k * t of the items whose alpha_k is
  // at least topic_threshold; topic_concat also keeps one index over [alpha_1 t, ..., alpha_K t].
  float topic_threshold = 0;
  bool topic_concat = false;
  uint32_t max_history = 200;  // events kept per user, newest first

  friend bool operator==(const CollectionSchema&, const CollectionSchema&) = default;
};

struct ItemRecord {
  uint64_t id = 0;
  std::vector<float> vector;
  uint32_t cluster = 0;
  std::vector<float> topic_weights;
  std::optional<int64_t> category;
  std::vector<int64_t> tags;
  int64_t timestamp = 0;
  std::string payload;  // small JSON document, returned with results

  friend bool operator==(const ItemRecord&, const ItemRecord&) = default;
};

struct Interaction {
  uint64_t item = 0;
  int64_t timestamp = 0;
  friend bool operator==(const Interaction&, const Interaction&) = default;
};

struct UserRecord {
  uint64_t id = 0;
  std::vector<float> vector;         // empty: the user has no vector
  std::vector<Interaction> history;  // newest first, at most the schema's max_history

  friend bool operator==(const UserRecord&, const UserRecord&) = default;
};

struct Event {
  uint64_t user = 0;
  uint64_t item = 0;
  int64_t timestamp = 0;
  friend bool operator==(const Event&, const Event&) = default;
};

struct CollectionInfo {
  uint32_t id = 0;
  CollectionSchema schema;
  uint64_t items = 0;         // live items in the index
  uint64_t op_seq = 0;        // latest applied op
  uint64_t snapshot_seq = 0;  // op covered by the newest snapshot (0: none)
  uint64_t index_memory_bytes = 0;
  bool trained = true;  // false for an IVF-PQ collection before its first batch

  friend bool operator==(const CollectionInfo&, const CollectionInfo&) = default;
};

struct Hit {
  uint64_t id = 0;
  float score = 0;  // higher is better: -L2 distance, dot product, or cosine
  friend bool operator==(const Hit&, const Hit&) = default;
};

struct WriteResult {
  uint64_t op_seq = 0;   // the op that holds the write (0 if it changed nothing)
  uint64_t changed = 0;  // items written or deleted
  friend bool operator==(const WriteResult&, const WriteResult&) = default;
};

// A predicate on item attributes (docs/queries.md, "Filters").
//   eq:    field == values[0]        (tag: the item has that tag)
//   in:    field is one of values    (tag: the item has any of them)
//   range: lo <= field <= hi         (category, timestamp, cluster)
//   not / and / or over children.
struct Filter {
  enum class Op : uint8_t { kEq = 0, kIn = 1, kRange = 2, kNot = 3, kAnd = 4, kOr = 5 };
  enum class Field : uint8_t { kCategory = 0, kTag = 1, kTimestamp = 2, kCluster = 3 };
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
  bool exclude_seen = true;                        // leave out the user's history and the seeds
  friend bool operator==(const Channels&, const Channels&) = default;
};

// What the last plugin run left for one neighbor-list kind of a collection.
struct ListInfo {
  std::string kind, plugin, config;  // config: the run's parameters, a JSON object
  uint64_t keys = 0;                 // lists of this kind
  uint64_t op_seq = 0;               // the collection's last op when the run started
  friend bool operator==(const ListInfo&, const ListInfo&) = default;
};

struct VersionsInfo {
  std::string current, previous;
  std::vector<std::string> versions;
  friend bool operator==(const VersionsInfo&, const VersionsInfo&) = default;
};

}  // namespace quiver
