// MVKE retrieval (virtual-kernel experts): item i carries t_i and topic weights alpha_i (K
// values, a convex combination); a user has one vector u_k per topic; the score is
// score(i) = sum_k alpha_ik (u_k . t_i), computed exactly for every hit from t_i (the global
// index's copy, unit-normalised under cosine) and alpha_i (kept in memory by Partitions).
// The strategies differ in how candidates are found; docs/queries.md has the details.
#pragma once

#include <vector>

#include "base/result.h"
#include "engine/query.h"

namespace quiver::engine {

class Partitions;

// Up to `n` hits for q.mvke (validated), best first, honouring q.filter. kFailedPrecondition
// for strategy concat on a collection without topic_concat.
Result<std::vector<QueryHit>> RunMvke(const Partitions& parts, const QuerySpec& q, size_t n);

}  // namespace quiver::engine
