// ValidateQuery: every limit and range of a search, in one place. The front ends only decode
// (an enum value out of range arrives here as such); the operators run validated queries.
#include <cmath>
#include <string>

#include "engine/query.h"
#include "storage/store.h"

namespace quiver::engine {
namespace {

Status Bad(const std::string& what) { return InvalidArgumentError(what); }

bool Finite(float x) { return std::isfinite(x); }

Status CheckVectors(const std::vector<std::vector<float>>& vs, uint32_t dim, const char* what) {
  auto name = [&](size_t j) { return std::string(what) + " " + std::to_string(j); };
  for (size_t j = 0; j < vs.size(); ++j) {
    if (vs[j].size() != dim) {
      return Bad(name(j) + " has " + std::to_string(vs[j].size()) +
                 " values; the collection has dim " + std::to_string(dim));
    }
    for (float x : vs[j]) {
      if (!Finite(x)) return Bad(name(j) + " holds NaN or Inf");
    }
  }
  return Status::Ok();
}

Status CheckFilter(const Filter& f, int depth) {
  if (depth > 16) return Bad("filter is nested deeper than 16");
  if (f.values.size() > 10000) return Bad("filter has more than 10,000 values");
  if (f.field > Filter::Field::kId) return Bad("unknown filter field");
  switch (f.op) {
    case Filter::Op::kEq:
    case Filter::Op::kIn:
      if (f.values.empty()) return Bad("filter eq/in needs a value");
      if (f.op == Filter::Op::kEq && f.values.size() != 1) return Bad("filter eq takes one value");
      return Status::Ok();
    case Filter::Op::kRange:
      if (f.field == Filter::Field::kTag || f.field == Filter::Field::kId)
        return Bad("filter range is for category, timestamp, cluster");
      if (f.lo > f.hi) return Bad("filter range has lo > hi");
      return Status::Ok();
    case Filter::Op::kNot:
      if (f.children.size() != 1) return Bad("filter not takes exactly one child");
      return CheckFilter(f.children[0], depth + 1);
    case Filter::Op::kAnd:
    case Filter::Op::kOr:
      if (f.children.empty()) return Bad("filter and/or needs children");
      for (const Filter& c : f.children) QV_RETURN_IF_ERROR(CheckFilter(c, depth + 1));
      return Status::Ok();
  }
  return Bad("unknown filter op");
}

Status CheckAggregate(const QuerySpec& q) {
  if (q.aggregate > Aggregate::kWeighted) return Bad("unknown aggregate");
  if (q.aggregate != Aggregate::kWeighted) {
    if (!q.weights.empty()) return Bad("weights are only for aggregate 'weighted'");
    return Status::Ok();
  }
  if (q.weights.size() != q.vectors.size()) {
    return Bad("weighted aggregation needs one weight per vector (" +
               std::to_string(q.vectors.size()) + "); got " + std::to_string(q.weights.size()));
  }
  for (float w : q.weights) {
    if (!Finite(w) || w < 0) return Bad("weights must be finite and >= 0");
  }
  return Status::Ok();
}

Status CheckQuota(const QuotaSpec& s, uint32_t clusters) {
  if (clusters == 0) return Bad("quotas need a collection with clusters");
  if (s.total == 0) return Bad("quota total must be at least 1");
  if (!Finite(s.a) || s.a < 0) return Bad("quota exponent a must be finite and >= 0");
  if (!Finite(s.temperature) || s.temperature <= 0)
    return Bad("quota temperature must be finite and > 0");
  if (s.half_life < 0) return Bad("quota half_life must be >= 0");
  if (s.learned) {
    if (!s.user) return Bad("quota p \"learned\" needs a user");
    if (s.half_life != 0) return Bad("quota half_life is for p \"history\"");
  }
  if (s.user) {
    if (!s.p.empty()) {
      return Bad("quota p is either given or \"history\" or \"learned\" (with a user), not both");
    }
    return Status::Ok();
  }
  if (s.half_life != 0) return Bad("quota half_life is for p \"history\"");
  if (s.p.empty()) return Status::Ok();
  if (s.p.size() != clusters) {
    return Bad("quota p has " + std::to_string(s.p.size()) + " values; the collection has " +
               std::to_string(clusters) + " clusters");
  }
  double sum = 0;
  for (float x : s.p) {
    if (!Finite(x) || x < 0) return Bad("quota p values must be finite and >= 0");
    sum += x;
  }
  if (sum <= 0) return Bad("quota p must have a positive value");
  return Status::Ok();
}

Status CheckMvke(const QuerySpec& q, uint32_t dim, uint32_t topics) {
  const MvkeSpec& m = *q.mvke;
  if (topics == 0) return Bad("mvke needs a collection with topics");
  if (!q.vectors.empty()) return Bad("a query has either vectors or mvke user_vectors, not both");
  if (q.quota) return Bad("mvke cannot be combined with a quota");
  if (q.aggregate != Aggregate::kMax || !q.weights.empty())
    return Bad("aggregate and weights do not apply to mvke (its score is fixed)");
  if (m.user_vectors.size() != topics) {
    return Bad("mvke has " + std::to_string(m.user_vectors.size()) +
               " user vectors; the collection has " + std::to_string(topics) + " topics");
  }
  if (m.strategy > MvkeStrategy::kWeightedScan) return Bad("unknown mvke strategy");
  if (m.candidates > 100000 || m.max_candidates > 100000)
    return Bad("mvke candidates and max_candidates must be at most 100,000");
  return CheckVectors(m.user_vectors, dim, "mvke user vector");
}

Status CheckRerank(const Rerank& r) {
  if (!Finite(r.mmr_lambda) || r.mmr_lambda > 1) return Bad("mmr lambda must be in [0, 1]");
  if (r.window > 10000) return Bad("rerank window must be at most 10,000");
  if (!Finite(r.category_diversity) || r.category_diversity < 0)
    return Bad("category_diversity must be finite and >= 0");
  return Status::Ok();
}

Status CheckFresh(const Fresh& f) {
  if (f.pool < 0) return Bad("fresh pool must be >= 0 (0: every item)");
  if (f.now < 0) return Bad("fresh now must be >= 0 (0: the server's clock)");
  if (!Finite(f.boost) || f.boost < 0) return Bad("fresh boost must be finite and >= 0");
  if (f.boost > 0 && f.half_life <= 0) return Bad("fresh boost needs a half_life > 0");
  if (f.half_life < 0 || f.horizon < 0) return Bad("fresh half_life and horizon must be >= 0");
  if (f.window > 10000) return Bad("fresh window must be at most 10,000");
  return Status::Ok();
}

Status CheckChannels(const QuerySpec& q) {
  const Channels& c = *q.channels;
  if (!c.u2i && !c.u2i2i && !c.u2u2i) return Bad("channels: at least one of u2i, u2i2i, u2u2i");
  for (auto [v, name] : {std::pair{c.seeds, "seeds"},
                         {c.per_seed, "per_seed"},
                         {c.users, "users"},
                         {c.per_user, "per_user"}}) {
    if (v > 1000) return Bad(std::string("channels ") + name + " must be at most 1,000");
  }
  if (c.seed_items.size() > 1000) return Bad("channels seed_items: at most 1,000");
  for (float w : {c.w_sim, c.w_dup, c.w_div, c.channel_weights[0], c.channel_weights[1],
                  c.channel_weights[2]}) {
    if (!Finite(w) || w < 0) return Bad("channels weights must be finite and >= 0");
  }
  for (const std::string* k : {&c.i2i_kind, &c.u2u_kind}) {
    if (!storage::ValidListKind(*k)) return Bad("channels list kind '" + *k + "' is not valid");
  }
  if (c.u2u2i && !c.user && !c.u2i && !c.u2i2i) return Bad("channel u2u2i needs a user");
  if (q.rerank) return Bad("rerank does not combine with channels (the merge diversifies)");
  return Status::Ok();
}

}  // namespace

Status ValidateFilter(const Filter& f) { return CheckFilter(f, 0); }

// ip and cosine: a zero vector gives every item the same score (0), so the "nearest" items
// are arbitrary. Usually a user without history whose vector was left at zero; the caller is
// to fall back (most popular items, say) rather than serve noise.
Status CheckNotZero(const std::vector<float>& v, Metric metric, const std::string& name) {
  if (metric == Metric::kL2) return Status::Ok();
  for (float x : v) {
    if (x != 0.0f) return Status::Ok();
  }
  return Bad(name + " is all zeros: with metric " + std::string(MetricName(metric)) +
             " every item would score 0 and the answer would be in no order (a user without "
             "history? serve a fallback such as the most popular items instead)");
}

Status ValidateQuery(const QuerySpec& q, uint32_t dim, Metric metric, uint32_t clusters,
                     uint32_t topics, uint32_t shards) {
  if (q.mvke) {
    QV_RETURN_IF_ERROR(CheckMvke(q, dim, topics));
    bool any = false;
    for (const std::vector<float>& u : q.mvke->user_vectors) {
      any = any || CheckNotZero(u, metric, "").ok();
    }
    if (!any && !q.mvke->user_vectors.empty()) {
      QV_RETURN_IF_ERROR(CheckNotZero(q.mvke->user_vectors[0], metric, "every mvke user vector"));
    }
  }
  // With channels, u2i may use the user's vector instead of the query's.
  if (q.vectors.empty() && !q.mvke && !q.channels) return Bad("a query needs at least one vector");
  if (q.vectors.size() > 64) return Bad("at most 64 query vectors");
  QV_RETURN_IF_ERROR(CheckVectors(q.vectors, dim, "vector"));
  for (size_t j = 0; j < q.vectors.size(); ++j) {
    QV_RETURN_IF_ERROR(
        CheckNotZero(q.vectors[j], metric,
                     q.vectors.size() == 1 ? "the query vector" : "vector " + std::to_string(j)));
  }
  QV_RETURN_IF_ERROR(CheckAggregate(q));
  if (q.quota) {
    QV_RETURN_IF_ERROR(CheckQuota(*q.quota, clusters));
  } else if (q.k == 0) {
    return Bad("k must be at least 1");
  }
  if (q.filter) QV_RETURN_IF_ERROR(CheckFilter(*q.filter, 0));
  if (q.rerank) QV_RETURN_IF_ERROR(CheckRerank(*q.rerank));
  if (q.fresh) QV_RETURN_IF_ERROR(CheckFresh(*q.fresh));
  if (q.channels) QV_RETURN_IF_ERROR(CheckChannels(q));
  if (q.exclude.size() > 100000) return Bad("exclude: at most 100,000 ids");
  for (size_t i = 0; i < q.shards.size(); ++i) {
    if (q.shards[i] >= shards) {
      return Bad("shards: shard " + std::to_string(q.shards[i]) + " of a collection of " +
                 std::to_string(shards));
    }
    if (i > 0 && q.shards[i] <= q.shards[i - 1]) return Bad("shards must be ascending, no repeats");
  }
  return Status::Ok();
}

}  // namespace quiver::engine
