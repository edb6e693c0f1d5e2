#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "engine/partitions.h"
#include "engine/query/operators.h"

namespace quiver::engine {
namespace ops {

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
    young.filter = YoungFilter(q.filter, f, now);
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
  BoostScores(f, now, ts, &out->hits);
  if (!q.quota && out->hits.size() > keep) out->hits.resize(keep);
  return Status::Ok();
}

}  // namespace ops

Filter YoungFilter(const std::optional<Filter>& f, const Fresh& fresh, int64_t now) {
  const int64_t horizon = fresh.horizon ? fresh.horizon
                          : fresh.half_life > std::numeric_limits<int64_t>::max() / 4
                              ? std::numeric_limits<int64_t>::max()
                              : 4 * fresh.half_life;
  return ops::WithSince(f, ops::Before(now, horizon));
}

void BoostScores(const Fresh& fresh, int64_t now, std::span<const int64_t> timestamps,
                 std::vector<QueryHit>* hits) {
  for (size_t i = 0; i < hits->size(); ++i) {
    const double age = std::max(0.0, double(now) - double(timestamps[i]));
    (*hits)[i].score += fresh.boost * float(std::exp2(-age / double(fresh.half_life)));
  }
  std::sort(hits->begin(), hits->end(), [](const QueryHit& a, const QueryHit& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
}

}  // namespace quiver::engine
