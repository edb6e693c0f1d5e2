// Partitions: a collection's indexes. Always a global index over every item; with
// schema.clusters = C > 0, also one sub-index per cluster holding that cluster's items, the
// map item -> cluster, and each cluster's centroid (the mean of its items' vectors), which
// cluster quotas use to estimate a query's intent.
//
// With schema.topics = K > 0 (MVKE), also one sub-index per topic k holding alpha_k * t for the
// items whose alpha_k >= schema.topic_threshold, and with schema.topic_concat one index over
// [alpha_1 t, ..., alpha_K t]; both under inner product (t normalised under cosine). Every
// item's alpha is kept in memory for exact scoring.
//
// Cluster and topic sub-indexes are HNSW (with the collection's HNSW parameters when it is HNSW,
// the defaults otherwise) or flat for flat collections: an IVF-PQ sub-index could not train on a
// small cluster.
//
// Thread-safety: const methods run concurrently with each other and with Add/Remove; Add and
// Remove must not run concurrently with each other (the engine orders writes per collection).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/model.h"
#include "base/result.h"
#include "engine/query/filter.h"
#include "index/vector_index.h"

namespace quiver::engine {

class Partitions {
 public:
  static Result<std::unique_ptr<Partitions>> Create(const CollectionSchema& schema);
  // Loads what Save wrote to `dir`; kDataLoss if any part is missing or fails its checks.
  static Result<std::unique_ptr<Partitions>> Load(const CollectionSchema& schema,
                                                  const std::string& dir);
  // Writes every index and the cluster map into `dir` (which must exist).
  Status Save(const std::string& dir) const;

  // Adds or replaces items (validated by the caller); an item whose cluster changed moves.
  Status Add(std::span<const ItemRecord> items);
  // Removes the ids that are present.
  Status Remove(std::span<const uint64_t> ids);

  bool Contains(uint64_t id) const { return global_->Contains(id); }
  // Whether the indexes hold many more slots than items (replaced and deleted items linger as
  // HNSW tombstones): any index with more than twice its items plus 1,024 slots.
  bool NeedsCompaction() const;
  size_t size() const { return global_->size(); }
  size_t memory_bytes() const;
  bool trained() const;

  const index::VectorIndex& global() const { return *global_; }
  size_t clusters() const { return clusters_.size(); }
  const index::VectorIndex& cluster(size_t k) const { return *clusters_[k]; }
  // The cluster of an item, or -1 if absent (or the collection has no clusters).
  int64_t ClusterOf(uint64_t id) const;
  size_t topics() const { return topics_.size(); }
  const index::VectorIndex& topic(size_t k) const { return *topics_[k]; }
  const index::VectorIndex* concat() const { return concat_.get(); }
  float topic_threshold() const { return schema_.topic_threshold; }
  const CollectionSchema& schema() const { return schema_; }
  // Topic weights of many ids: row i of out (K floats) gets ids[i]'s and found[i] = 1, or
  // found[i] = 0 if it is absent; under one lock.
  void TopicWeightsFor(std::span<const uint64_t> ids, float* out, uint8_t* found) const;

  // Per cluster: its item count and its centroid (dim floats; zeros for an empty cluster).
  std::vector<uint64_t> ClusterSizes() const;
  std::vector<float> Centroids() const;

  // Attribute filters: whether id's attributes satisfy f (false for an absent id); and the ids
  // that do (within `cluster` unless it is -1) when at most `limit` do and that is cheap to
  // find out, nullopt otherwise. A filter that bounds the timestamp (a freshness pool) walks
  // the items in time order from its lower bound; any other filter is first estimated from a
  // sample and only then counted exactly.
  bool Allows(const Filter& f, uint64_t id) const;
  // How many items satisfy f (one pass over the attributes, under one lock).
  uint64_t CountMatching(const Filter& f) const;
  std::optional<std::vector<uint64_t>> FewMatching(const Filter& f, int64_t cluster,
                                                   size_t limit) const;
  // The items' timestamps (0 for an absent id), under one lock.
  void TimestampsFor(std::span<const uint64_t> ids, int64_t* out) const;
  // The item's attributes (false if absent).
  bool AttrsFor(uint64_t id, ItemAttrs* out) const;

 private:
  explicit Partitions(const CollectionSchema& schema) : schema_(schema) {}
  void Account(uint32_t cluster, std::span<const float> v, double sign);  // REQUIRES: mu_ held
  // Puts the items (already in the global index) into the topic and concat indexes, and takes
  // them out of the topics they no longer qualify for (`old`: their earlier weights).
  Status AddToTopics(std::span<const ItemRecord> items,
                     const std::unordered_map<uint64_t, std::vector<float>>& old);

  const CollectionSchema schema_;
  std::unique_ptr<index::VectorIndex> global_;
  std::vector<std::unique_ptr<index::VectorIndex>> clusters_;
  std::vector<std::unique_ptr<index::VectorIndex>> topics_;
  std::unique_ptr<index::VectorIndex> concat_;
  mutable std::shared_mutex mu_;                    // guards the five below
  std::unordered_map<uint64_t, ItemAttrs> attrs_;   // every item's filterable attributes
  std::set<std::pair<int64_t, uint64_t>> by_time_;  // (timestamp, id) of every item
  std::unordered_map<uint64_t, uint32_t> cluster_of_;
  std::vector<double> sums_;      // C x dim: sum of member vectors
  std::vector<uint64_t> counts_;  // C
};

}  // namespace quiver::engine
