// Recommender queries over a collection's partitions: multi-vector retrieval (MIND / ComiRec
// users with K interest vectors) and per-cluster quotas (Kuaishou's divide and conquer).
// The exact semantics, with formulas, are in docs/queries.md.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/model.h"
#include "base/query.h"
#include "base/result.h"
#include "engine/query/filter.h"
#include "index/vector_index.h"

namespace quiver::engine {

class Partitions;

// The search model (QuerySpec and its parts, QueryHit, QueryResult) is base/query.h's, below
// the engine and the front ends.

// Below this many matching items (per searched index), a filtered search scans them exactly.
inline constexpr size_t kExactScanLimit = 4096;

// M_k = M * p_k^a / sum_j p_j^a, rounded by largest remainder so that sum M_k = M; clusters
// with p_k = 0 get 0. REQUIRES: p non-negative with a positive sum, a >= 0.
std::vector<uint32_t> AllocateQuotas(std::span<const double> p, double a, uint32_t total);

// kInvalidArgument naming the field for a malformed query against a collection of `dim`,
// `metric`, `clusters`, `topics` and `shards`: every limit and range of a search
// (engine/query/validate.cc). With ip and cosine, an all-zero query vector scores every item 0
// (an answer in no order at all): refused, saying so.
Status ValidateQuery(const QuerySpec& q, uint32_t dim, Metric metric, uint32_t clusters,
                     uint32_t topics = 0, uint32_t shards = 1);

// kInvalidArgument for a malformed attribute filter (the part of ValidateQuery for `filter`,
// also used by count and scroll).
Status ValidateFilter(const Filter& f);

// Greedy diversity re-ranking (docs/queries.md, "Diversity") of `hits` (best first) down to k,
// given each candidate's category and, with MMR, its vector (n x dim values; else empty). The
// engine's own re-ranking reads them from the indexes; cluster mode's router from the shards.
Result<std::vector<QueryHit>> Diversify(const Rerank& r, std::vector<QueryHit> hits, size_t k,
                                        size_t dim, std::span<const float> vectors,
                                        std::span<const std::optional<int64_t>> categories);

// The freshness boost (docs/queries.md, "Freshness"): the filter of its second candidate source
// (`f` and-ed with timestamp >= now - horizon), and the boost itself: each hit's score +=
// boost * 2^(-age / half_life) given its timestamp, then best first.
Filter YoungFilter(const std::optional<Filter>& f, const Fresh& fresh, int64_t now);
void BoostScores(const Fresh& fresh, int64_t now, std::span<const int64_t> timestamps,
                 std::vector<QueryHit>* hits);

// Quota p "auto" (docs/queries.md): per cluster, the best similarity of any of `vectors` to its
// centroid (-inf for an empty cluster); the intent is their softmax over the temperature. Split
// so that cluster mode's router can gather the similarities of clusters on several nodes.
std::vector<double> ClusterSimilarity(const Partitions& parts, Metric metric,
                                      const std::vector<std::vector<float>>& vectors);
std::vector<double> IntentFrom(std::span<const double> similarity, float temperature);
// p "history": kFailedPrecondition (saying so) when no event of the user is on an item the
// collection still holds: there is no intent to take.
Status CheckHistoryIntent(std::span<const double> weights, uint64_t user);

// Where candidate channels (docs/queries.md, "Channels") read their inputs: the engine's own
// store and indexes, or cluster mode's router (users and u2u lists on every node, i2i lists and
// items on their shards' replicas).
class ChannelData {
 public:
  virtual ~ChannelData() = default;
  virtual Result<std::optional<UserRecord>> User(uint64_t id) = 0;
  // The lists (kind, key) of `keys`, in order (nullopt: none).
  virtual Result<std::vector<std::optional<std::vector<Hit>>>> Lists(
      const std::string& kind, std::span<const uint64_t> keys) = 0;
  // Whether a plugin run wrote lists of this kind in the collection.
  virtual Result<bool> HasListKind(const std::string& kind) = 0;
  // The u2i channel's retrieval: `q` (no channels) as a search.
  virtual Result<QueryResult> Search(const QuerySpec& q) = 0;
  // Called once with every id Attrs will be asked about (a router reads their records).
  virtual Status Prefetch(std::span<const uint64_t> ids) { return Status::Ok(); }
  // The item's attributes; false if there is no such item.
  virtual bool Attrs(uint64_t id, ItemAttrs* out) = 0;
  virtual size_t clusters() const = 0;
};

// q.channels set, and accepted by ValidateQuery: u2i, u2i2i and u2u2i candidates merged
// MIC-style, from `data`.
Result<QueryResult> RunChannels(const QuerySpec& q, ChannelData& data);

// Runs a query ValidateQuery accepted on `parts`.
Result<QueryResult> RunQuery(const Partitions& parts, Metric metric, const QuerySpec& q);

}  // namespace quiver::engine
