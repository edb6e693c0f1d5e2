// The query operators, one file each under engine/query/, run in order by RunQuery
// (engine/query.cc): retrieve (plain, multi-vector, MVKE) or retrieve by quota, the freshness
// pool and boost, the diversity re-ranking; channels around them (Engine::Query); filters
// (filter.h) inside the index traversal. Internal to the engine; every query they get passed
// ValidateQuery (validate.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "engine/query.h"
#include "index/vector_index.h"

namespace quiver::storage {
class Store;
}  // namespace quiver::storage

namespace quiver::engine {

class Partitions;

namespace ops {

// retrieve.cc: merges per-vector result lists by the aggregate, best first, at most k.
std::vector<QueryHit> Merge(const std::vector<std::vector<index::Neighbor>>& lists, Metric metric,
                            const QuerySpec& q, size_t k);
// retrieve.cc: every query vector against one index (the global one, or cluster `cluster`'s)
// with k results each, on the pool; with a filter, inside the traversal or by an exact scan.
Result<std::vector<std::vector<index::Neighbor>>> SearchAll(const Partitions& parts,
                                                            int64_t cluster, Metric metric,
                                                            const QuerySpec& q, size_t k);
// retrieve.cc: the query's candidates before boosting and re-ranking: without a quota the best
// `fetch` by the aggregate (or MVKE) score, with one the quota's M hits (RetrieveByQuota).
Result<QueryResult> Retrieve(const Partitions& parts, Metric metric, const QuerySpec& q,
                             size_t fetch);

// quota.cc: the query's intent over clusters when the quota's p is "auto".
std::vector<double> AutoIntent(const Partitions& parts, Metric metric, const QuerySpec& q,
                               float temperature);
// quota.cc: M_k hits from each cluster k, redistributing the shortfall of exhausted clusters.
Result<QueryResult> RetrieveByQuota(const Partitions& parts, Metric metric, const QuerySpec& q);

// narrow.cc: the filter the query's retrieval runs with: its own (id lists sorted, as Matches
// needs them), and-ed with timestamp >= since (a freshness pool) and with "id not in
// q.exclude"; nullopt when that is q.filter unchanged.
std::optional<Filter> Narrow(const QuerySpec& q, std::optional<int64_t> since);

// fresh.cc: `f` and-ed with timestamp >= since.
Filter WithSince(const std::optional<Filter>& f, int64_t since);
// fresh.cc: now - age, saturating.
int64_t Before(int64_t now, int64_t age);
// fresh.cc: the new-item boost over the candidates in *out.
Status Boost(const Partitions& parts, Metric metric, const QuerySpec& q, const Fresh& f,
             int64_t now, size_t fetch, size_t keep, QueryResult* out);

// mvke.cc: up to `n` hits for q.mvke, best first, honouring q.filter: score(i) =
// sum_k alpha_ik (u_k . t_i), exact for every hit. kFailedPrecondition for strategy concat on a
// collection without topic_concat.
Result<std::vector<QueryHit>> RunMvke(const Partitions& parts, const QuerySpec& q, size_t n);

// channels.cc: q (q.channels set) on the collection `collection_id` of `store` with indexes
// `parts`: u2i, u2i2i and u2u2i candidates merged MIC-style.
Result<QueryResult> RunChannels(const storage::Store& store, uint32_t collection_id,
                                const Partitions& parts, Metric metric, const QuerySpec& q);

// rerank.cc: greedy diversity re-ranking of `hits` (best first) down to k.
Result<std::vector<QueryHit>> Diversify(const Partitions& parts, const Rerank& r,
                                        std::vector<QueryHit> hits, size_t k);

}  // namespace ops
}  // namespace quiver::engine
