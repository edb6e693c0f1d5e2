// MVKE retrieval (virtual-kernel experts): item i carries t_i and topic weights alpha_i (K
// values, a convex combination); a user has one vector u_k per topic; the score is
// score(i) = sum_k alpha_ik (u_k . t_i), computed exactly for every hit from t_i (the global
// index's copy, unit-normalised under cosine) and alpha_i (kept in memory by Partitions).
// The strategies differ in how candidates are found; docs/queries.md has the details.

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "engine/partitions.h"
#include "engine/pool.h"
#include "engine/query/operators.h"
#include "index/simd/kernels.h"
#include "index/vector_index.h"

namespace quiver::engine::ops {
namespace {

struct Exact {
  float score;
  uint32_t topic;
};

// Exact scores of `ids` into `scored` (absent ids are skipped): vectors and weights fetched in
// one batch each (one lock, prefetched), then K dot products per item.
void ScoreBatch(const Partitions& parts, const std::vector<std::vector<float>>& u,
                std::span<const uint64_t> ids, std::unordered_map<uint64_t, Exact>* scored) {
  const size_t kt = u.size(), dim = parts.global().dim();
  std::vector<float> t(ids.size() * dim), alpha(ids.size() * kt);
  std::vector<uint8_t> has_t(ids.size()), has_alpha(ids.size());
  parts.global().GetVectors(ids, t.data(), has_t.data());
  parts.TopicWeightsFor(ids, alpha.data(), has_alpha.data());
  const auto& kern = simd::GetKernels();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!has_t[i] || !has_alpha[i]) continue;
    const float* a = &alpha[i * kt];
    double sum = 0;
    float best = -INFINITY;
    Exact e{0, 0};
    for (size_t k = 0; k < kt; ++k) {
      if (a[k] == 0) continue;
      const float term = a[k] * kern.inner_product(u[k].data(), &t[i * dim], dim);
      sum += term;
      if (term > best) best = term, e.topic = uint32_t(k);
    }
    e.score = float(sum);
    scored->emplace(ids[i], e);
  }
}

// Scores every id of `list` not yet in `scored`.
void ScoreNew(const Partitions& parts, const std::vector<std::vector<float>>& u,
              const std::vector<index::Neighbor>& list,
              std::unordered_map<uint64_t, Exact>* scored) {
  std::vector<uint64_t> ids;
  ids.reserve(list.size());
  for (const index::Neighbor& n : list) {
    if (!scored->count(n.id)) ids.push_back(n.id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  ScoreBatch(parts, u, ids, scored);
}

// The n best of `scored`, best first (ties by id).
std::vector<QueryHit> Best(const std::unordered_map<uint64_t, Exact>& scored, size_t n) {
  std::vector<QueryHit> hits;
  hits.reserve(scored.size());
  for (const auto& [id, e] : scored) hits.push_back({id, e.score, e.topic, -1});
  n = std::min(n, hits.size());
  std::partial_sort(hits.begin(), hits.begin() + ptrdiff_t(n), hits.end(),
                    [](const QueryHit& a, const QueryHit& b) {
                      return a.score != b.score ? a.score > b.score : a.id < b.id;
                    });
  hits.resize(n);
  return hits;
}

}  // namespace

Result<std::vector<QueryHit>> RunMvke(const Partitions& parts, const QuerySpec& q, size_t n) {
  const MvkeSpec& m = *q.mvke;
  const auto& u = m.user_vectors;
  const size_t kt = u.size(), dim = parts.global().dim();
  std::unordered_map<uint64_t, Exact> scored;

  // Few items pass the filter: score them all, exactly.
  if (q.filter) {
    if (auto few = parts.FewMatching(*q.filter, -1, kExactScanLimit)) {
      std::vector<index::Neighbor> all;
      for (uint64_t id : *few) all.push_back({id, 0});
      ScoreNew(parts, u, all, &scored);
      return Best(scored, n);
    }
  }
  index::PredicateSelector selector([&](uint64_t id) { return parts.Allows(*q.filter, id); });
  size_t depth = m.candidates ? m.candidates : std::max<size_t>(n, 32);
  auto params = [&](size_t want) {
    index::SearchParams p;
    p.k = want;
    p.ef = std::max<size_t>(q.ef, want);
    p.nprobe = q.nprobe;
    p.refine = q.refine;
    if (q.filter) p.filter = &selector;
    return p;
  };

  auto joined = [&] {  // [u_1, ..., u_K]
    std::vector<float> out;
    out.reserve(kt * dim);
    for (const auto& v : u) out.insert(out.end(), v.begin(), v.end());
    return out;
  };
  switch (m.strategy) {
    case MvkeStrategy::kConcat: {
      const index::VectorIndex* concat = parts.concat();
      if (!concat) {
        return FailedPreconditionError(
            "mvke strategy concat needs a collection created with topic_concat");
      }
      std::vector<index::Neighbor> list;
      QV_RETURN_IF_ERROR(concat->Search(joined(), params(std::max(depth, n)), &list));
      ScoreNew(parts, u, list, &scored);
      return Best(scored, n);
    }
    case MvkeStrategy::kRescore: {
      std::vector<std::vector<index::Neighbor>> lists(kt);
      std::vector<Status> status(kt);
      const index::SearchParams p = params(depth);
      Pool::Get().ParallelFor(
          kt, [&](size_t k) { status[k] = parts.global().Search(u[k], p, &lists[k]); });
      for (const Status& s : status) QV_RETURN_IF_ERROR(s);
      for (const auto& list : lists) ScoreNew(parts, u, list, &scored);
      return Best(scored, n);
    }
    case MvkeStrategy::kWeightedScan: {
      const index::WeightedIndex* ivf = parts.global().weighted();
      if (!ivf || ivf->weights_per_item() != kt) {
        return FailedPreconditionError(
            "mvke strategy weighted_scan needs an ivf_pq collection with topics");
      }
      // The index rescores its best `depth` from its float32 rows with each item's alpha: the
      // n it returns carry exact scores and their largest term.
      index::SearchParams p = params(n);
      p.refine = (std::max(depth, n) + n - 1) / n;
      std::vector<index::Neighbor> list;
      std::vector<uint32_t> terms;
      QV_RETURN_IF_ERROR(ivf->SearchWeighted(joined(), p, &list, &terms));
      if (!ivf->ExactWeighted(p)) {
        ScoreNew(parts, u, list, &scored);
        return Best(scored, n);
      }
      std::vector<QueryHit> hits;
      hits.reserve(list.size());
      for (size_t i = 0; i < list.size(); ++i) {
        hits.push_back({list[i].id, index::DistanceToScore(Metric::kInnerProduct, list[i].distance),
                        terms[i], -1});
      }
      return hits;
    }
    case MvkeStrategy::kPerTopic:
      break;
  }

  // per_topic: stream k ranks items by alpha_ik (u_k . t_i), one term of the score, and each
  // hit carries that term. An item's score is at most its known terms plus, for each stream
  // that did not return it, that stream's last value; candidates are rescored exactly in order
  // of that bound until the n-th exact score reaches the next bound (the rest cannot enter).
  // An item no stream returned is bounded by the sum of the last values (the threshold
  // algorithm's bound): below the n-th exact score, or with a stream run dry (with
  // topic_threshold 0 every item is in every stream), the result is final; otherwise, up to
  // max_candidates, search again twice as deep.
  const size_t total = parts.size();
  depth = std::min(std::max(depth, n), std::max<size_t>(total, 1));
  const size_t max_depth = std::max<size_t>(depth, m.max_candidates);
  struct Partial {
    double known = 0;   // sum of the terms the streams returned
    uint64_t seen = 0;  // bit k: stream k returned it (K <= 64 streams tracked exactly)
  };
  std::vector<QueryHit> best;
  while (true) {
    std::vector<std::vector<index::Neighbor>> lists(kt);
    std::vector<Status> status(kt);
    const index::SearchParams p = params(depth);
    Pool::Get().ParallelFor(
        kt, [&](size_t k) { status[k] = parts.topic(k).Search(u[k], p, &lists[k]); });
    for (const Status& st : status) QV_RETURN_IF_ERROR(st);
    std::vector<double> last(kt, 0.0);
    double unseen_bound = 0;
    bool dry = false;
    std::unordered_map<uint64_t, Partial> partial;
    for (size_t k = 0; k < kt; ++k) {
      for (const index::Neighbor& nb : lists[k]) {
        Partial& x = partial[nb.id];
        x.known += index::DistanceToScore(Metric::kInnerProduct, nb.distance);
        if (k < 64) x.seen |= uint64_t{1} << k;
      }
      if (lists[k].size() < depth) {
        dry = true;  // every item of topic k (allowed by the filter) was returned
      } else {
        last[k] = index::DistanceToScore(Metric::kInnerProduct, lists[k].back().distance);
      }
      unseen_bound += last[k];
    }
    std::vector<std::pair<double, uint64_t>> order;  // (upper bound, id)
    order.reserve(partial.size());
    for (const auto& [id, x] : partial) {
      double ub = x.known;
      for (size_t k = 0; k < kt; ++k) {
        if (k >= 64 || !(x.seen >> k & 1)) ub += last[k];
      }
      order.emplace_back(ub, id);
    }
    std::sort(order.begin(), order.end(), std::greater<>());
    // Exact scores in chunks, best bound first (items scored in an earlier round are not scored
    // again); the n best exact scores of this round's candidates kept in a min-heap.
    std::vector<float> top;
    constexpr size_t kChunk = 32;
    std::vector<uint64_t> chunk, fresh;
    for (size_t at = 0; at < order.size();) {
      if (top.size() >= n && double(top.front()) >= order[at].first) break;
      chunk.clear();
      fresh.clear();
      for (; at < order.size() && chunk.size() < kChunk; ++at) {
        chunk.push_back(order[at].second);
        if (!scored.count(order[at].second)) fresh.push_back(order[at].second);
      }
      ScoreBatch(parts, u, fresh, &scored);
      for (uint64_t id : chunk) {
        auto it = scored.find(id);
        if (it == scored.end()) continue;
        top.push_back(it->second.score);
        std::push_heap(top.begin(), top.end(), std::greater<float>());
        if (top.size() > n) {
          std::pop_heap(top.begin(), top.end(), std::greater<float>());
          top.pop_back();
        }
      }
    }
    best = Best(scored, n);
    if (dry && parts.topic_threshold() == 0) break;
    if ((best.size() >= n && double(best.back().score) >= unseen_bound) ||
        depth >= std::min(total, max_depth))
      break;
    depth = std::min({depth * 2, total, max_depth});
  }
  return best;
}

}  // namespace quiver::engine::ops
