#include "engine/mvke.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "engine/partitions.h"
#include "engine/pool.h"
#include "index/simd/kernels.h"

namespace quiver::engine {
namespace {

struct Exact {
  float score;
  uint32_t topic;
};

// Scores every id not yet in `scored`.
void ScoreNew(const Partitions& parts, const std::vector<std::vector<float>>& u, const std::vector<index::Neighbor>& list,
              std::unordered_map<uint64_t, Exact>* scored, std::vector<float>* t, std::vector<float>* alpha) {
  for (const index::Neighbor& n : list) {
    if (scored->count(n.id)) continue;
    Exact e;
    if (MvkeScore(parts, u, n.id, t->data(), alpha->data(), &e.score, &e.topic)) scored->emplace(n.id, e);
  }
}

// The n best of `scored`, best first (ties by id).
std::vector<QueryHit> Best(const std::unordered_map<uint64_t, Exact>& scored, size_t n) {
  std::vector<QueryHit> hits;
  hits.reserve(scored.size());
  for (const auto& [id, e] : scored) hits.push_back({id, e.score, e.topic, -1});
  n = std::min(n, hits.size());
  std::partial_sort(hits.begin(), hits.begin() + ptrdiff_t(n), hits.end(), [](const QueryHit& a, const QueryHit& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  hits.resize(n);
  return hits;
}

// The n-th best score in `scored` (-inf if it holds fewer than n).
float NthBest(const std::unordered_map<uint64_t, Exact>& scored, size_t n) {
  if (scored.size() < n || n == 0) return -INFINITY;
  std::vector<float> s;
  s.reserve(scored.size());
  for (const auto& [id, e] : scored) s.push_back(e.score);
  std::nth_element(s.begin(), s.begin() + ptrdiff_t(n - 1), s.end(), std::greater<float>());
  return s[n - 1];
}

}  // namespace

bool MvkeScore(const Partitions& parts, const std::vector<std::vector<float>>& u, uint64_t id, float* t, float* alpha,
               float* score, uint32_t* topic) {
  if (!parts.TopicWeightsFor(id, alpha) || !parts.global().GetVector(id, t).ok()) return false;
  const auto& kern = simd::GetKernels();
  const size_t dim = parts.global().dim();
  double sum = 0;
  float best = -INFINITY;
  *topic = 0;
  for (size_t k = 0; k < u.size(); ++k) {
    if (alpha[k] == 0) continue;
    const float term = alpha[k] * kern.inner_product(u[k].data(), t, dim);
    sum += term;
    if (term > best) best = term, *topic = uint32_t(k);
  }
  *score = float(sum);
  return true;
}

Result<std::vector<QueryHit>> RunMvke(const Partitions& parts, const QuerySpec& q, size_t n) {
  const MvkeSpec& m = *q.mvke;
  const auto& u = m.user_vectors;
  const size_t kt = u.size(), dim = parts.global().dim();
  std::vector<float> t(dim), alpha(kt);
  std::unordered_map<uint64_t, Exact> scored;

  // Few items pass the filter: score them all, exactly.
  if (q.filter && parts.EstimateMatchFraction(*q.filter) * double(parts.size()) < double(kExactScanLimit)) {
    if (auto few = parts.MatchingIds(*q.filter, -1, kExactScanLimit)) {
      std::vector<index::Neighbor> all;
      for (uint64_t id : *few) all.push_back({id, 0});
      ScoreNew(parts, u, all, &scored, &t, &alpha);
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

  switch (m.strategy) {
    case MvkeStrategy::kConcat: {
      const index::VectorIndex* concat = parts.concat();
      if (!concat) {
        return FailedPreconditionError("mvke strategy concat needs a collection created with topic_concat");
      }
      std::vector<float> joined;
      joined.reserve(kt * dim);
      for (const auto& v : u) joined.insert(joined.end(), v.begin(), v.end());
      std::vector<index::Neighbor> list;
      QV_RETURN_IF_ERROR(concat->Search(joined, params(std::max(depth, n)), &list));
      ScoreNew(parts, u, list, &scored, &t, &alpha);
      return Best(scored, n);
    }
    case MvkeStrategy::kRescore: {
      std::vector<std::vector<index::Neighbor>> lists(kt);
      std::vector<Status> status(kt);
      const index::SearchParams p = params(depth);
      Pool::Get().ParallelFor(kt, [&](size_t k) { status[k] = parts.global().Search(u[k], p, &lists[k]); });
      for (const Status& s : status) QV_RETURN_IF_ERROR(s);
      for (const auto& list : lists) ScoreNew(parts, u, list, &scored, &t, &alpha);
      return Best(scored, n);
    }
    case MvkeStrategy::kPerTopic:
      break;
  }

  // per_topic: stream k ranks items by alpha_ik (u_k . t_i), one term of the score. After each
  // round, an item no stream has returned yet scores at most the sum of the streams' last
  // values (the threshold algorithm's bound for a sum); stop once the n-th exact score reaches
  // it, or a stream ran dry (with topic_threshold 0 every item is in every stream, so all were
  // seen), else search again twice as deep.
  const size_t total = parts.size();
  depth = std::min(std::max(depth, n), std::max<size_t>(total, 1));
  for (int round = 0; round < 6; ++round) {
    std::vector<std::vector<index::Neighbor>> lists(kt);
    std::vector<Status> status(kt);
    const index::SearchParams p = params(depth);
    Pool::Get().ParallelFor(kt, [&](size_t k) { status[k] = parts.topic(k).Search(u[k], p, &lists[k]); });
    for (const Status& s : status) QV_RETURN_IF_ERROR(s);
    double bound = 0;
    bool dry = false;
    for (size_t k = 0; k < kt; ++k) {
      ScoreNew(parts, u, lists[k], &scored, &t, &alpha);
      if (lists[k].size() < depth) {
        dry = true;
        continue;  // items outside topic k (alpha_k below the threshold) add little here
      }
      bound += index::DistanceToScore(Metric::kInnerProduct, lists[k].back().distance);
    }
    if (dry && parts.topics() > 0 && parts.topic_threshold() == 0) break;
    if (double(NthBest(scored, n)) >= bound || depth >= total) break;
    depth = std::min(depth * 2, total);
  }
  return Best(scored, n);
}

}  // namespace quiver::engine
