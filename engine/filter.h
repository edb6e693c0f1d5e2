// Evaluating attribute filters (base/model.h Filter) against the attributes the engine keeps
// in memory for every item.
#pragma once

#include <cstdint>
#include <vector>

#include "base/model.h"
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
bool Matches(const Filter& f, const ItemAttrs& a);
// kInvalidArgument for a malformed filter: depth above 16, more than 10,000 values, an empty
// eq/in, a range with lo > hi, a range on tags, not without exactly one child, and/or without
// children.
Status ValidateFilter(const Filter& f);

}  // namespace quiver::engine
