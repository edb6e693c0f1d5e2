// Recommender queries over a collection's partitions: multi-vector retrieval (MIND / ComiRec
// users with K interest vectors) and per-cluster quotas (Kuaishou's divide and conquer).
// The exact semantics, with formulas, are in docs/queries.md.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/model.h"
#include "base/result.h"
#include "index/vector_index.h"

namespace quiver::engine {

class Partitions;

enum class Aggregate : uint8_t { kMax = 0, kSum = 1, kWeighted = 2 };

struct QuotaSpec {
  std::vector<float> p;      // intent per cluster (C values, >= 0); empty: estimate ("auto")
  float a = 1.0f;            // exponent on p
  uint32_t total = 0;        // M: results across clusters
  float temperature = 1.0f;  // "auto": p = softmax(similarity(q, centroid_k) / temperature)
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
};

// Below this many matching items (per searched index), a filtered search scans them exactly.
inline constexpr size_t kExactScanLimit = 4096;

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

// M_k = M * p_k^a / sum_j p_j^a, rounded by largest remainder so that sum M_k = M; clusters
// with p_k = 0 get 0. REQUIRES: p non-negative with a positive sum, a >= 0.
std::vector<uint32_t> AllocateQuotas(std::span<const double> p, double a, uint32_t total);

// kInvalidArgument naming the field for a malformed query against a collection of `dim`,
// `clusters` and `topics`.
Status ValidateQuery(const QuerySpec& q, uint32_t dim, uint32_t clusters, uint32_t topics = 0);

// Runs the query (validated first) on `parts`.
Result<QueryResult> RunQuery(const Partitions& parts, Metric metric, const QuerySpec& q);

}  // namespace quiver::engine
