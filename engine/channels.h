// Candidate channels merged MIC-style (docs/queries.md, "Channels"): u2i (the query's own
// retrieval through RunQuery, or the user's vector), u2i2i (seeds -> their neighbor lists),
// u2u2i (the user's similar users -> their recent items), merged greedily by
// w_sim sim + w_dup dup + w_div div.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "engine/partitions.h"
#include "engine/query.h"
#include "storage/store.h"

namespace quiver::engine {

// Runs q (validated, q.channels set) on the collection `collection_id` of `store` with indexes
// `parts`.
Result<QueryResult> RunChannels(const storage::Store& store, uint32_t collection_id,
                                const Partitions& parts, Metric metric, const QuerySpec& q);

}  // namespace quiver::engine
