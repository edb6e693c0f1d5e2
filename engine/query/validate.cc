#include <cmath>
#include <string>

#include "engine/filter.h"
#include "engine/query.h"

namespace quiver::engine {
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

}  // namespace quiver::engine
