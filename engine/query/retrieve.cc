#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <vector>

#include "engine/partitions.h"
#include "engine/pool.h"
#include "engine/query/operators.h"
#include "index/simd/kernels.h"

namespace quiver::engine {
namespace ops {

namespace {

struct Scored {
  float score = 0;
  float best = -INFINITY;  // the best single-vector contribution
  uint32_t vector = 0;
};

// Exact top-k of `ids` (their vectors read from idx) for query v.
Result<std::vector<index::Neighbor>> ExactScan(const index::VectorIndex& idx, Metric metric,
                                               std::span<const float> v,
                                               std::span<const uint64_t> ids, size_t k) {
  const auto& kern = simd::GetKernels();
  const size_t dim = v.size();
  double qn = 0;
  for (float x : v) qn += double(x) * x;
  const float inv_norm = qn > 0 ? float(1.0 / std::sqrt(qn)) : 0.0f;
  std::vector<float> x(dim);
  std::vector<index::Neighbor> all;
  all.reserve(ids.size());
  for (uint64_t id : ids) {
    QV_RETURN_IF_ERROR(idx.GetVector(id, x.data()));
    float d;
    switch (metric) {
      case Metric::kL2:
        d = kern.l2sqr(v.data(), x.data(), dim);
        break;
      case Metric::kInnerProduct:
        d = -kern.inner_product(v.data(), x.data(), dim);
        break;
      default:
        d = 1.0f - kern.inner_product(v.data(), x.data(), dim) * inv_norm;
        break;
    }
    all.push_back({id, d});
  }
  const size_t n = std::min(k, all.size());
  std::partial_sort(all.begin(), all.begin() + n, all.end(), [](const auto& a, const auto& b) {
    return a.distance != b.distance ? a.distance < b.distance : a.id < b.id;
  });
  all.resize(n);
  return all;
}

}  // namespace

// Merges per-vector result lists by the aggregate, best first, at most k.
std::vector<QueryHit> Merge(const std::vector<std::vector<index::Neighbor>>& lists, Metric metric,
                            const QuerySpec& q, size_t k) {
  std::vector<QueryHit> hits;
  if (lists.size() == 1 && q.aggregate != Aggregate::kWeighted) {  // the index's order
    const size_t n = std::min(k, lists[0].size());
    hits.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const index::Neighbor& x = lists[0][i];
      hits.push_back({x.id, index::DistanceToScore(metric, x.distance), 0, -1});
    }
    return hits;
  }
  std::unordered_map<uint64_t, Scored> by_id;
  for (size_t j = 0; j < lists.size(); ++j) {
    const float w = q.aggregate == Aggregate::kWeighted ? q.weights[j] : 1.0f;
    for (const index::Neighbor& n : lists[j]) {
      const float s = index::DistanceToScore(metric, n.distance);
      auto [it, fresh] = by_id.try_emplace(n.id);
      Scored& x = it->second;
      const float contribution = w * s;
      if (q.aggregate == Aggregate::kMax) {
        x.score = fresh ? s : std::max(x.score, s);
      } else {
        x.score = fresh ? contribution : x.score + contribution;
      }
      if (contribution > x.best) {
        x.best = contribution;
        x.vector = uint32_t(j);
      }
    }
  }
  hits.reserve(by_id.size());
  for (const auto& [id, x] : by_id) hits.push_back({id, x.score, x.vector, -1});
  const size_t n = std::min(k, hits.size());
  std::partial_sort(hits.begin(), hits.begin() + n, hits.end(),
                    [](const QueryHit& a, const QueryHit& b) {
                      return a.score != b.score ? a.score > b.score : a.id < b.id;
                    });
  hits.resize(n);
  return hits;
}

// Every query vector against one index (the global one, or cluster `cluster`'s) with k results
// each, on the pool; with a filter, inside the traversal or by an exact scan of few matches.
Result<std::vector<std::vector<index::Neighbor>>> SearchAll(const Partitions& parts,
                                                            int64_t cluster, Metric metric,
                                                            const QuerySpec& q, size_t k) {
  const index::VectorIndex& idx = cluster < 0 ? parts.global() : parts.cluster(size_t(cluster));
  std::vector<std::vector<index::Neighbor>> lists(q.vectors.size());
  std::vector<Status> status(q.vectors.size());
  std::optional<std::vector<uint64_t>> few;
  if (q.filter) few = parts.FewMatching(*q.filter, cluster, kExactScanLimit);
  if (few) {
    Pool::Get().ParallelFor(q.vectors.size(), [&](size_t j) {
      auto r = ExactScan(idx, metric, q.vectors[j], *few, k);
      if (r.ok()) lists[j] = std::move(*r);
      status[j] = r.status();
    });
  } else {
    index::PredicateSelector selector([&](uint64_t id) { return parts.Allows(*q.filter, id); });
    index::SearchParams p;
    p.k = k;
    p.ef = q.ef ? std::max<size_t>(q.ef, k) : 0;
    p.nprobe = q.nprobe;
    p.refine = q.refine;
    if (q.filter) p.filter = &selector;
    Pool::Get().ParallelFor(q.vectors.size(),
                            [&](size_t j) { status[j] = idx.Search(q.vectors[j], p, &lists[j]); });
  }
  for (const Status& s : status) QV_RETURN_IF_ERROR(s);
  return lists;
}

// The query's candidates before boosting and re-ranking: without a quota the best `fetch` by
// the aggregate (or MVKE) score, with one the quota's M hits.
Result<QueryResult> Retrieve(const Partitions& parts, Metric metric, const QuerySpec& q,
                             size_t fetch) {
  if (q.quota) return RetrieveByQuota(parts, metric, q);
  QueryResult out;
  if (q.mvke) {
    QV_ASSIGN_OR_RETURN(out.hits, RunMvke(parts, q, fetch));
  } else {
    QV_ASSIGN_OR_RETURN(auto lists, SearchAll(parts, -1, metric, q, fetch));
    out.hits = Merge(lists, metric, q, fetch);
  }
  return out;
}

}  // namespace ops
}  // namespace quiver::engine
