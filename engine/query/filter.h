// Evaluating attribute filters (base/model.h Filter) against the attributes the engine keeps
// in memory for every item.
#pragma once

#include <cstdint>
#include <vector>

#include "base/model.h"
#include "base/query.h"
#include "base/status.h"

namespace quiver::engine {

struct ItemAttrs {
  bool has_category = false;
  int64_t category = 0;
  int64_t timestamp = 0;
  uint32_t cluster = 0;
  std::vector<int64_t> tags;
  std::vector<float> topic_weights;  // alpha (K values; empty without topics)
};

ItemAttrs AttrsOf(const ItemRecord& item);
// Whether item `id` with attributes `a` passes f. REQUIRES: id lists sorted (ops::Narrow).
bool Matches(const Filter& f, uint64_t id, const ItemAttrs& a);
// Whether f admits only timestamps within [*lo, *hi] (a range or eq/in on the timestamp, an
// `and` with such a child, an `or` whose children all are); the bounds are then set.
bool TimeBounds(const Filter& f, int64_t* lo, int64_t* hi);

}  // namespace quiver::engine
