#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "engine/partitions.h"
#include "engine/query/operators.h"
#include "index/simd/kernels.h"

namespace quiver::engine {
namespace ops {

// Greedy diversity re-ranking of `hits` (best first) down to k: MMR over the items' vectors
// (relevance = score min-max scaled to [0, 1], similarity = cosine of the item vectors). The
// per-category cap is hard (fewer than k results if need be); the consecutive-category limit
// is relaxed for a position only when no remaining candidate satisfies it.
Result<std::vector<QueryHit>> Diversify(const Partitions& parts, const Rerank& r,
                                        std::vector<QueryHit> hits, size_t k) {
  const size_t n = hits.size(), dim = parts.global().dim();
  const bool mmr = r.mmr_lambda >= 0;
  std::vector<float> vec(mmr ? n * dim : 0);
  std::vector<std::optional<int64_t>> categories(n);
  ItemAttrs attrs;
  for (size_t i = 0; i < n; ++i) {
    if (parts.AttrsFor(hits[i].id, &attrs) && attrs.has_category) categories[i] = attrs.category;
    if (mmr) QV_RETURN_IF_ERROR(parts.global().GetVector(hits[i].id, &vec[i * dim]));
  }
  return engine::Diversify(r, std::move(hits), k, dim, vec, categories);
}

}  // namespace ops

Result<std::vector<QueryHit>> Diversify(const Rerank& r, std::vector<QueryHit> hits, size_t k,
                                        size_t dim, std::span<const float> vectors,
                                        std::span<const std::optional<int64_t>> categories) {
  const size_t n = hits.size();
  if (n == 0) return hits;
  const bool mmr = r.mmr_lambda >= 0;
  if (categories.size() != n || (mmr && vectors.size() != n * dim)) {
    return InternalError("diversity re-ranking: candidates and their attributes differ in number");
  }
  std::vector<float> norm(n, 1.0f);
  struct Attrs {
    bool has_category = false;
    int64_t category = 0;
  };
  std::vector<Attrs> attrs(n);
  for (size_t i = 0; i < n; ++i) {
    if (categories[i]) attrs[i] = {true, *categories[i]};
    if (!mmr) continue;
    double s = 0;
    for (size_t t = 0; t < dim; ++t) s += double(vectors[i * dim + t]) * vectors[i * dim + t];
    norm[i] = s > 0 ? float(std::sqrt(s)) : 1.0f;
  }
  const float* vec = vectors.data();
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

}  // namespace quiver::engine
