#include "engine/query.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>
#include <unordered_map>

#include "engine/mvke.h"
#include "engine/partitions.h"
#include "engine/pool.h"
#include "index/simd/kernels.h"

namespace quiver::engine {
namespace {

struct Scored {
  float score = 0;
  float best = -INFINITY;  // the best single-vector contribution
  uint32_t vector = 0;
};

// Merges per-vector result lists by the aggregate, best first, at most k.
std::vector<QueryHit> Merge(const std::vector<std::vector<index::Neighbor>>& lists, Metric metric,
                            const QuerySpec& q, size_t k) {
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
  std::vector<QueryHit> hits;
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

// The query's intent over clusters: softmax of the best similarity of any query vector to each
// non-empty cluster's centroid, over the temperature.
std::vector<double> AutoIntent(const Partitions& parts, Metric metric, const QuerySpec& q,
                               float temperature) {
  const size_t c = parts.clusters(), dim = q.vectors[0].size();
  const std::vector<float> centroids = parts.Centroids();
  const std::vector<uint64_t> sizes = parts.ClusterSizes();
  std::vector<double> sim(c, -INFINITY);
  for (size_t k = 0; k < c; ++k) {
    if (sizes[k] == 0) continue;
    const float* ck = &centroids[k * dim];
    for (const auto& v : q.vectors) {
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
  const double top = *std::max_element(sim.begin(), sim.end());
  std::vector<double> p(c, 0.0);
  for (size_t k = 0; k < c; ++k) {
    if (std::isfinite(sim[k])) p[k] = std::exp((sim[k] - top) / double(temperature));
  }
  return p;
}

// Greedy diversity re-ranking of `hits` (best first) down to k: MMR over the items' vectors
// (relevance = score min-max scaled to [0, 1], similarity = cosine of the item vectors). The
// per-category cap is hard (fewer than k results if need be); the consecutive-category limit
// is relaxed for a position only when no remaining candidate satisfies it.
Result<std::vector<QueryHit>> Diversify(const Partitions& parts, const Rerank& r,
                                        std::vector<QueryHit> hits, size_t k) {
  const size_t n = hits.size(), dim = parts.global().dim();
  if (n == 0) return hits;
  const bool mmr = r.mmr_lambda >= 0;
  std::vector<float> vec(mmr ? n * dim : 0);
  std::vector<float> norm(n, 1.0f);
  std::vector<ItemAttrs> attrs(n);
  for (size_t i = 0; i < n; ++i) {
    parts.AttrsFor(hits[i].id, &attrs[i]);
    if (!mmr) continue;
    QV_RETURN_IF_ERROR(parts.global().GetVector(hits[i].id, &vec[i * dim]));
    double s = 0;
    for (size_t t = 0; t < dim; ++t) s += double(vec[i * dim + t]) * vec[i * dim + t];
    norm[i] = s > 0 ? float(std::sqrt(s)) : 1.0f;
  }
  float lo = hits[0].score, hi = hits[0].score;
  for (const auto& h : hits) lo = std::min(lo, h.score), hi = std::max(hi, h.score);
  const auto& kern = simd::GetKernels();
  std::vector<float> max_sim(n, -INFINITY);
  std::vector<bool> taken(n, false);
  std::map<int64_t, uint32_t> per_category;
  std::vector<size_t> order;
  auto under_cap = [&](size_t i) {
    return !attrs[i].has_category || !r.per_category_cap ||
           per_category[attrs[i].category] < r.per_category_cap;
  };
  auto allowed = [&](size_t i) {
    if (!attrs[i].has_category) return true;
    const int64_t c = attrs[i].category;
    if (r.max_consecutive_category && order.size() >= r.max_consecutive_category) {
      bool run = true;
      for (size_t j = order.size() - r.max_consecutive_category; j < order.size(); ++j) {
        run = run && attrs[order[j]].has_category && attrs[order[j]].category == c;
      }
      if (run) return false;
    }
    return true;
  };
  while (order.size() < std::min(k, n)) {
    size_t best = n;
    float best_value = -INFINITY;
    for (int relax = 0; relax < 2 && best == n; ++relax) {
      for (size_t i = 0; i < n; ++i) {
        if (taken[i] || !under_cap(i) || (relax == 0 && !allowed(i))) continue;
        const float rel = hi > lo ? (hits[i].score - lo) / (hi - lo) : 1.0f;
        float value =
            mmr ? r.mmr_lambda * rel - (1 - r.mmr_lambda) * (order.empty() ? 0.0f : max_sim[i])
                : rel;
        if (r.category_diversity > 0) {
          // ComiRec: + lambda * #{selected items whose category differs}.
          size_t differ = 0;
          for (size_t j : order) {
            differ += !(attrs[i].has_category && attrs[j].has_category &&
                        attrs[i].category == attrs[j].category);
          }
          value += r.category_diversity * float(differ);
        }
        if (value > best_value) best_value = value, best = i;
      }
    }
    if (best == n) break;  // every remaining candidate is over its category's cap
    taken[best] = true;
    order.push_back(best);
    if (attrs[best].has_category) ++per_category[attrs[best].category];
    if (mmr) {
      for (size_t i = 0; i < n; ++i) {
        if (taken[i]) continue;
        const float sim =
            kern.inner_product(&vec[i * dim], &vec[best * dim], dim) / (norm[i] * norm[best]);
        max_sim[i] = std::max(max_sim[i], sim);
      }
    }
  }
  std::vector<QueryHit> out;
  out.reserve(order.size());
  for (size_t i : order) out.push_back(hits[i]);
  return out;
}

}  // namespace

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

namespace {

Status CheckVectors(const std::vector<std::vector<float>>& vs, uint32_t dim, const char* what) {
  for (size_t j = 0; j < vs.size(); ++j) {
    if (vs[j].size() != dim) {
      return InvalidArgumentError(std::string(what) + " " + std::to_string(j) + " has " +
                                  std::to_string(vs[j].size()) +
                                  " values; the collection has dim " + std::to_string(dim));
    }
    for (float x : vs[j]) {
      if (!std::isfinite(x))
        return InvalidArgumentError(std::string(what) + " " + std::to_string(j) +
                                    " holds NaN or Inf");
    }
  }
  return Status::Ok();
}

Status ValidateMvke(const QuerySpec& q, uint32_t dim, uint32_t topics) {
  const MvkeSpec& m = *q.mvke;
  if (topics == 0) return InvalidArgumentError("mvke needs a collection with topics");
  if (!q.vectors.empty())
    return InvalidArgumentError("a query has either vectors or mvke user_vectors, not both");
  if (q.quota) return InvalidArgumentError("mvke cannot be combined with a quota");
  if (q.aggregate != Aggregate::kMax || !q.weights.empty()) {
    return InvalidArgumentError("aggregate and weights do not apply to mvke (its score is fixed)");
  }
  if (m.user_vectors.size() != topics) {
    return InvalidArgumentError("mvke has " + std::to_string(m.user_vectors.size()) +
                                " user vectors; the collection has " + std::to_string(topics) +
                                " topics");
  }
  if (uint8_t(m.strategy) > uint8_t(MvkeStrategy::kWeightedScan))
    return InvalidArgumentError("unknown mvke strategy");
  if (m.candidates > 100000 || m.max_candidates > 100000) {
    return InvalidArgumentError("mvke candidates and max_candidates must be at most 100,000");
  }
  return CheckVectors(m.user_vectors, dim, "mvke user vector");
}

}  // namespace

Status ValidateQuery(const QuerySpec& q, uint32_t dim, uint32_t clusters, uint32_t topics) {
  if (q.channels)
    return InvalidArgumentError(
        "channels are answered by Engine::Query (they read lists and users)");
  if (q.mvke) QV_RETURN_IF_ERROR(ValidateMvke(q, dim, topics));
  if (q.vectors.empty() && !q.mvke)
    return InvalidArgumentError("a query needs at least one vector");
  if (q.vectors.size() > 64) return InvalidArgumentError("at most 64 query vectors");
  QV_RETURN_IF_ERROR(CheckVectors(q.vectors, dim, "vector"));
  if (q.aggregate == Aggregate::kWeighted) {
    if (q.weights.size() != q.vectors.size()) {
      return InvalidArgumentError("weighted aggregation needs one weight per vector (" +
                                  std::to_string(q.vectors.size()) + "); got " +
                                  std::to_string(q.weights.size()));
    }
    for (float w : q.weights) {
      if (!std::isfinite(w) || w < 0)
        return InvalidArgumentError("weights must be finite and >= 0");
    }
  } else if (!q.weights.empty()) {
    return InvalidArgumentError("weights are only for aggregate 'weighted'");
  }
  if (q.filter) QV_RETURN_IF_ERROR(ValidateFilter(*q.filter));
  if (q.rerank) {
    const Rerank& r = *q.rerank;
    if (!std::isfinite(r.mmr_lambda) || r.mmr_lambda > 1)
      return InvalidArgumentError("mmr lambda must be in [0, 1]");
    if (r.window > 10000) return InvalidArgumentError("rerank window must be at most 10,000");
    if (!std::isfinite(r.category_diversity) || r.category_diversity < 0) {
      return InvalidArgumentError("category_diversity must be finite and >= 0");
    }
  }
  if (q.fresh) {
    const Fresh& f = *q.fresh;
    if (f.pool < 0) return InvalidArgumentError("fresh pool must be >= 0 (0: every item)");
    if (f.now < 0) return InvalidArgumentError("fresh now must be >= 0 (0: the server's clock)");
    if (!std::isfinite(f.boost) || f.boost < 0)
      return InvalidArgumentError("fresh boost must be finite and >= 0");
    if (f.boost > 0 && f.half_life <= 0)
      return InvalidArgumentError("fresh boost needs a half_life > 0");
    if (f.half_life < 0 || f.horizon < 0)
      return InvalidArgumentError("fresh half_life and horizon must be >= 0");
    if (f.window > 10000) return InvalidArgumentError("fresh window must be at most 10,000");
  }
  if (!q.quota) {
    if (q.k == 0) return InvalidArgumentError("k must be at least 1");
    return Status::Ok();
  }
  const QuotaSpec& s = *q.quota;
  if (clusters == 0) return InvalidArgumentError("quotas need a collection with clusters");
  if (s.total == 0) return InvalidArgumentError("quota total must be at least 1");
  if (!std::isfinite(s.a) || s.a < 0)
    return InvalidArgumentError("quota exponent a must be finite and >= 0");
  if (!std::isfinite(s.temperature) || s.temperature <= 0) {
    return InvalidArgumentError("quota temperature must be finite and > 0");
  }
  if (!s.p.empty()) {
    if (s.p.size() != clusters) {
      return InvalidArgumentError("quota p has " + std::to_string(s.p.size()) +
                                  " values; the collection has " + std::to_string(clusters) +
                                  " clusters");
    }
    double sum = 0;
    for (float x : s.p) {
      if (!std::isfinite(x) || x < 0)
        return InvalidArgumentError("quota p values must be finite and >= 0");
      sum += x;
    }
    if (sum <= 0) return InvalidArgumentError("quota p must have a positive value");
  }
  return Status::Ok();
}

namespace {

// The query's candidates before boosting and re-ranking: without a quota the best `fetch` by
// the aggregate (or MVKE) score, with one the quota's M hits.
Result<QueryResult> Retrieve(const Partitions& parts, Metric metric, const QuerySpec& q,
                             size_t fetch) {
  QueryResult out;
  const size_t c = parts.clusters();
  if (!q.quota) {
    if (q.mvke) {
      QV_ASSIGN_OR_RETURN(out.hits, RunMvke(parts, q, fetch));
    } else {
      QV_ASSIGN_OR_RETURN(auto lists, SearchAll(parts, -1, metric, q, fetch));
      out.hits = Merge(lists, metric, q, fetch);
    }
  } else {
    const QuotaSpec& s = *q.quota;
    std::vector<double> p = s.p.empty() ? AutoIntent(parts, metric, q, s.temperature)
                                        : std::vector<double>(s.p.begin(), s.p.end());
    const std::vector<uint64_t> sizes = parts.ClusterSizes();
    std::vector<uint32_t> quota = AllocateQuotas(p, s.a, s.total);
    std::vector<std::vector<QueryHit>> got(c);
    std::vector<bool> exhausted(c, false);
    // Rounds: search every cluster whose quota grew; a cluster that returns fewer than its
    // quota is exhausted and hands its shortfall to the others in proportion to p^a.
    std::vector<uint32_t> asked(c, 0);
    for (int round = 0; round < 4; ++round) {
      std::vector<size_t> pending;
      for (size_t k = 0; k < c; ++k) {
        if (quota[k] > asked[k] && !exhausted[k]) pending.push_back(k);
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
        if (!exhausted[k] && sizes[k] > quota[k]) open[k] = p[k] > 0 ? p[k] : 1e-12;
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
  }
  return out;
}

// `f` and-ed with timestamp >= since.
Filter WithSince(const std::optional<Filter>& f, int64_t since) {
  Filter range;
  range.op = Filter::Op::kRange;
  range.field = Filter::Field::kTimestamp;
  range.lo = since;
  if (!f) return range;
  Filter both;
  both.op = Filter::Op::kAnd;
  both.children = {*f, std::move(range)};
  return both;
}

int64_t Before(int64_t now, int64_t age) {
  int64_t since;
  return __builtin_sub_overflow(now, age, &since) ? std::numeric_limits<int64_t>::min() : since;
}

// The new-item boost: the candidates of `q` and those among items younger than the horizon,
// each scored + boost * 2^(-age / half_life), best first, at most `keep` (all with a quota,
// whose M hits are only reordered).
Status Boost(const Partitions& parts, Metric metric, const QuerySpec& q, const Fresh& f,
             int64_t now, size_t fetch, size_t keep, QueryResult* out) {
  if (!q.quota) {
    QuerySpec young = q;
    const int64_t horizon = f.horizon ? f.horizon
                            : f.half_life > std::numeric_limits<int64_t>::max() / 4
                                ? std::numeric_limits<int64_t>::max()
                                : 4 * f.half_life;
    young.filter = WithSince(q.filter, Before(now, horizon));
    QV_ASSIGN_OR_RETURN(QueryResult more, Retrieve(parts, metric, young, fetch));
    std::unordered_map<uint64_t, size_t> at;
    for (size_t i = 0; i < out->hits.size(); ++i) at.emplace(out->hits[i].id, i);
    for (const QueryHit& h : more.hits) {
      auto [it, added] = at.try_emplace(h.id, out->hits.size());
      if (added) {
        out->hits.push_back(h);
      } else if (h.score > out->hits[it->second].score) {
        out->hits[it->second] = h;
      }
    }
  }
  std::vector<uint64_t> ids(out->hits.size());
  std::vector<int64_t> ts(out->hits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = out->hits[i].id;
  parts.TimestampsFor(ids, ts.data());
  for (size_t i = 0; i < ids.size(); ++i) {
    const double age = std::max(0.0, double(now) - double(ts[i]));
    out->hits[i].score += f.boost * float(std::exp2(-age / double(f.half_life)));
  }
  std::sort(out->hits.begin(), out->hits.end(), [](const QueryHit& a, const QueryHit& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  if (!q.quota && out->hits.size() > keep) out->hits.resize(keep);
  return Status::Ok();
}

}  // namespace

Result<QueryResult> RunQuery(const Partitions& parts, Metric metric, const QuerySpec& query) {
  QV_RETURN_IF_ERROR(ValidateQuery(query, uint32_t(parts.global().dim()),
                                   uint32_t(parts.clusters()), uint32_t(parts.topics())));
  const size_t c = parts.clusters();
  // Re-ranking picks k from a wider window of candidates; a boost draws a window from each source.
  const QuerySpec* qp = &query;
  std::optional<QuerySpec> pooled;
  const Fresh* fresh = query.fresh ? &*query.fresh : nullptr;
  const int64_t now = !fresh ? 0 : fresh->now ? fresh->now : int64_t(std::time(nullptr));
  if (fresh && fresh->pool > 0) {
    pooled = query;
    pooled->filter = WithSince(query.filter, Before(now, fresh->pool));
    qp = &*pooled;
  }
  const QuerySpec& q = *qp;
  const size_t keep =
      q.rerank ? std::max<size_t>(q.k, q.rerank->window ? q.rerank->window : 3 * size_t(q.k)) : q.k;
  const bool boost = fresh && fresh->boost > 0;
  const size_t fetch =
      boost ? std::max<size_t>(keep, fresh->window ? fresh->window : 3 * size_t(q.k)) : keep;
  QV_ASSIGN_OR_RETURN(QueryResult out, Retrieve(parts, metric, q, fetch));
  if (boost) QV_RETURN_IF_ERROR(Boost(parts, metric, q, *fresh, now, fetch, keep, &out));
  if (q.rerank) {
    const size_t k = q.quota ? out.hits.size() : q.k;  // under a quota: reorder the M hits
    QV_ASSIGN_OR_RETURN(out.hits, Diversify(parts, *q.rerank, std::move(out.hits), k));
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
