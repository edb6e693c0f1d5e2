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
  // Cluster mode (docs/cluster.md): the shards S of the collection's write log. An item's shard
  // is its cluster id mod S when the collection has clusters, else a hash of its id mod S.
  uint32_t shards = 1;

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

// What the last plugin run left for one neighbor-list kind of a collection.
struct ListInfo {
  std::string kind, plugin, config;  // config: the run's parameters, a JSON object
  uint64_t keys = 0;                 // lists of this kind
  uint64_t op_seq = 0;               // the collection's last op when the run started
  friend bool operator==(const ListInfo&, const ListInfo&) = default;
};

// A version of a cluster collection and the members that have loaded it, per shard.
struct VersionReplicas {
  std::string version;
  uint32_t shard = 0;
  std::vector<std::string> nodes;
  friend bool operator==(const VersionReplicas&, const VersionReplicas&) = default;
};

struct VersionsInfo {
  std::string current, previous;
  std::vector<std::string> versions;
  // Cluster collection versions only: the version being loaded ("" if none) and, for each
  // version kept, the members serving it (by shard).
  std::string pending;
  std::vector<VersionReplicas> replicas;
  friend bool operator==(const VersionsInfo&, const VersionsInfo&) = default;
};

}  // namespace quiver
