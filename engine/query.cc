// The query pipeline, the one place that says in what order the operators run (on a query
// ValidateQuery accepted): narrow the filter (the freshness pool, the excluded ids); retrieve
// (plain, multi-vector, MVKE, or by cluster quota); boost new items; re-rank for diversity;
// count hits per cluster. Each operator is a file of engine/query/.
#include "engine/query.h"

#include <algorithm>
#include <ctime>
#include <optional>

#include "engine/partitions.h"
#include "engine/query/operators.h"

namespace quiver::engine {

Result<QueryResult> RunQuery(const Partitions& parts, Metric metric, const QuerySpec& query) {
  const size_t c = parts.clusters();
  const QuerySpec* qp = &query;
  std::optional<QuerySpec> narrowed;
  const Fresh* fresh = query.fresh ? &*query.fresh : nullptr;
  const int64_t now = !fresh ? 0 : fresh->now ? fresh->now : int64_t(std::time(nullptr));
  std::optional<int64_t> since;
  if (fresh && fresh->pool > 0) since = ops::Before(now, fresh->pool);
  if (std::optional<Filter> f = ops::Narrow(query, since)) {
    narrowed = query;
    narrowed->filter = std::move(f);
    narrowed->exclude.clear();  // now in the filter
    qp = &*narrowed;
  }
  const QuerySpec& q = *qp;
  // Re-ranking picks k from a wider window of candidates; a boost draws a window from each source.
  const size_t keep =
      q.rerank ? std::max<size_t>(q.k, q.rerank->window ? q.rerank->window : 3 * size_t(q.k)) : q.k;
  const bool boost = fresh && fresh->boost > 0;
  const size_t fetch =
      boost ? std::max<size_t>(keep, fresh->window ? fresh->window : 3 * size_t(q.k)) : keep;
  QV_ASSIGN_OR_RETURN(QueryResult out, ops::Retrieve(parts, metric, q, fetch));
  if (boost) QV_RETURN_IF_ERROR(ops::Boost(parts, metric, q, *fresh, now, fetch, keep, &out));
  if (q.rerank) {
    const size_t k = q.quota ? out.hits.size() : q.k;  // under a quota: reorder the M hits
    QV_ASSIGN_OR_RETURN(out.hits, ops::Diversify(parts, *q.rerank, std::move(out.hits), k));
  }
  if (c > 0) {
    out.per_cluster.assign(c, 0);
    for (QueryHit& h : out.hits) {
      if (h.cluster < 0) h.cluster = int32_t(parts.ClusterOf(h.id));
      if (h.cluster >= 0) ++out.per_cluster[size_t(h.cluster)];
    }
  }
  return out;
}

}  // namespace quiver::engine
