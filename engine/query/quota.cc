#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/partitions.h"
#include "engine/pool.h"
#include "engine/query/operators.h"

namespace quiver::engine {
namespace ops {

// The query's intent over clusters: softmax of the best similarity of any query vector to each
// non-empty cluster's centroid, over the temperature.
std::vector<double> AutoIntent(const Partitions& parts, Metric metric, const QuerySpec& q,
                               float temperature) {
  return IntentFrom(ClusterSimilarity(parts, metric, q.vectors), temperature);
}

}  // namespace ops

std::vector<double> IntentFrom(std::span<const double> sim, float temperature) {
  const size_t c = sim.size();
  const double top = c == 0 ? 0 : *std::max_element(sim.begin(), sim.end());
  std::vector<double> p(c, 0.0);
  for (size_t k = 0; k < c; ++k) {
    if (std::isfinite(sim[k])) p[k] = std::exp((sim[k] - top) / double(temperature));
  }
  return p;
}

Status CheckHistoryIntent(std::span<const double> weights, uint64_t user) {
  for (double w : weights) {
    if (w > 0) return Status::Ok();
  }
  return FailedPreconditionError(
      "quota p \"history\": user " + std::to_string(user) +
      " has no event on an item of this collection; use p \"auto\" or a fallback");
}

std::vector<double> ClusterSimilarity(const Partitions& parts, Metric metric,
                                      const std::vector<std::vector<float>>& vectors) {
  const size_t c = parts.clusters(), dim = vectors[0].size();
  const auto& q = vectors;
  const std::vector<float> centroids = parts.Centroids();
  const std::vector<uint64_t> sizes = parts.ClusterSizes();
  std::vector<double> sim(c, -INFINITY);
  for (size_t k = 0; k < c; ++k) {
    if (sizes[k] == 0) continue;
    const float* ck = &centroids[k * dim];
    for (const auto& v : q) {
      double dot = 0, l2 = 0, nv = 0, nc = 0;
      for (size_t t = 0; t < dim; ++t) {
        dot += double(v[t]) * ck[t];
        l2 += (double(v[t]) - ck[t]) * (double(v[t]) - ck[t]);
        nv += double(v[t]) * v[t];
        nc += double(ck[t]) * ck[t];
      }
      const double s = metric == Metric::kL2       ? -l2
                       : metric == Metric::kCosine ? dot / std::sqrt(std::max(nv * nc, 1e-30))
                                                   : dot;
      sim[k] = std::max(sim[k], s);
    }
  }
  return sim;
}

namespace ops {

Result<QueryResult> RetrieveByQuota(const Partitions& parts, Metric metric, const QuerySpec& q) {
  QueryResult out;
  const size_t c = parts.clusters();
  const QuotaSpec& s = *q.quota;
  std::vector<double> p = s.p.empty() ? AutoIntent(parts, metric, q, s.temperature)
                                      : std::vector<double>(s.p.begin(), s.p.end());
  const std::vector<uint64_t> sizes = parts.ClusterSizes();
  std::vector<uint32_t> quota = AllocateQuotas(p, s.a, s.total);
  std::vector<std::vector<QueryHit>> got(c);
  std::vector<bool> exhausted(c, false);
  // A router's sub-request (q.shards): the clusters of other shards are left to their nodes.
  std::vector<bool> here(c, true);
  if (!q.shards.empty()) {
    const uint32_t shards = std::max<uint32_t>(parts.schema().shards, 1);
    for (size_t k = 0; k < c; ++k)
      here[k] = std::binary_search(q.shards.begin(), q.shards.end(), uint32_t(k % shards));
  }
  // Rounds: search every cluster whose quota grew; a cluster that returns fewer than its
  // quota is exhausted and hands its shortfall to the others in proportion to p^a.
  std::vector<uint32_t> asked(c, 0);
  for (int round = 0; round < 4; ++round) {
    std::vector<size_t> pending;
    for (size_t k = 0; k < c; ++k) {
      if (here[k] && quota[k] > asked[k] && !exhausted[k]) pending.push_back(k);
    }
    if (pending.empty()) break;
    std::vector<Status> status(pending.size());
    Pool::Get().ParallelFor(pending.size(), [&](size_t i) {
      const size_t k = pending[i];
      auto lists = SearchAll(parts, int64_t(k), metric, q, quota[k]);
      if (!lists.ok()) {
        status[i] = lists.status();
        return;
      }
      got[k] = Merge(*lists, metric, q, quota[k]);
    });
    for (const Status& st : status) QV_RETURN_IF_ERROR(st);
    uint32_t shortfall = 0;
    for (size_t k : pending) {
      asked[k] = quota[k];
      if (got[k].size() < quota[k]) {
        shortfall += quota[k] - uint32_t(got[k].size());
        quota[k] = uint32_t(got[k].size());
        exhausted[k] = true;
      }
    }
    if (shortfall == 0) break;
    std::vector<double> open(c, 0.0);
    for (size_t k = 0; k < c; ++k) {
      if (here[k] && !exhausted[k] && sizes[k] > quota[k]) open[k] = p[k] > 0 ? p[k] : 1e-12;
    }
    std::vector<uint32_t> extra = AllocateQuotas(open, s.a, shortfall);
    for (size_t k = 0; k < c; ++k) quota[k] += extra[k];
  }
  out.quotas = quota;
  // Items are in one cluster each, so lists do not overlap; best first overall.
  for (size_t k = 0; k < c; ++k) {
    for (QueryHit& h : got[k]) {
      h.cluster = int32_t(k);
      out.hits.push_back(h);
    }
  }
  std::sort(out.hits.begin(), out.hits.end(), [](const QueryHit& a, const QueryHit& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  return out;
}

}  // namespace ops

std::vector<uint32_t> AllocateQuotas(std::span<const double> p, double a, uint32_t total) {
  std::vector<double> w(p.size(), 0.0);
  double sum = 0;
  for (size_t k = 0; k < p.size(); ++k) {
    w[k] = p[k] > 0 ? std::pow(p[k], a) : 0.0;
    sum += w[k];
  }
  std::vector<uint32_t> m(p.size(), 0);
  if (sum <= 0 || total == 0) return m;
  std::vector<std::pair<double, size_t>> remainders;
  uint32_t given = 0;
  for (size_t k = 0; k < p.size(); ++k) {
    const double exact = double(total) * w[k] / sum;
    m[k] = uint32_t(std::floor(exact));
    given += m[k];
    if (w[k] > 0) remainders.emplace_back(exact - std::floor(exact), k);
  }
  // Largest remainder first; ties to the larger weight, then the lower cluster id.
  std::sort(remainders.begin(), remainders.end(), [&](const auto& x, const auto& y) {
    if (x.first != y.first) return x.first > y.first;
    if (w[x.second] != w[y.second]) return w[x.second] > w[y.second];
    return x.second < y.second;
  });
  for (size_t i = 0; given < total && i < remainders.size(); ++i, ++given)
    ++m[remainders[i].second];
  return m;
}

}  // namespace quiver::engine
