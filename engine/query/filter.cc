#include "engine/query/filter.h"

#include <algorithm>
#include <string>

namespace quiver::engine {
ItemAttrs AttrsOf(const ItemRecord& item) {
  return ItemAttrs{
      item.category.has_value(), item.category.value_or(0), item.timestamp, item.cluster, item.tags,
      item.topic_weights};
}

bool Matches(const Filter& f, uint64_t id, const ItemAttrs& a) {
  auto value = [&](int64_t* v) {
    switch (f.field) {
      case Filter::Field::kId:
        *v = int64_t(id);
        return true;
      case Filter::Field::kCategory:
        *v = a.category;
        return a.has_category;
      case Filter::Field::kTimestamp:
        *v = a.timestamp;
        return true;
      case Filter::Field::kCluster:
        *v = int64_t(a.cluster);
        return true;
      case Filter::Field::kTag:
        return false;
    }
    return false;
  };
  switch (f.op) {
    case Filter::Op::kEq:
    case Filter::Op::kIn: {
      if (f.field == Filter::Field::kTag) {
        for (int64_t t : a.tags) {
          if (std::find(f.values.begin(), f.values.end(), t) != f.values.end()) return true;
        }
        return false;
      }
      int64_t v;
      if (!value(&v)) return false;
      if (f.field == Filter::Field::kId && f.values.size() > 8)  // sorted by Narrow
        return std::binary_search(f.values.begin(), f.values.end(), v);
      return std::find(f.values.begin(), f.values.end(), v) != f.values.end();
    }
    case Filter::Op::kRange: {
      int64_t v;
      return value(&v) && v >= f.lo && v <= f.hi;
    }
    case Filter::Op::kNot:
      return !Matches(f.children[0], id, a);
    case Filter::Op::kAnd:
      return std::all_of(f.children.begin(), f.children.end(),
                         [&](const Filter& c) { return Matches(c, id, a); });
    case Filter::Op::kOr:
      return std::any_of(f.children.begin(), f.children.end(),
                         [&](const Filter& c) { return Matches(c, id, a); });
  }
  return false;
}

bool TimeBounds(const Filter& f, int64_t* lo, int64_t* hi) {
  switch (f.op) {
    case Filter::Op::kRange:
      if (f.field != Filter::Field::kTimestamp) return false;
      *lo = f.lo, *hi = f.hi;
      return true;
    case Filter::Op::kEq:
    case Filter::Op::kIn:
      if (f.field != Filter::Field::kTimestamp || f.values.empty()) return false;
      *lo = *std::min_element(f.values.begin(), f.values.end());
      *hi = *std::max_element(f.values.begin(), f.values.end());
      return true;
    case Filter::Op::kNot:
      return false;
    case Filter::Op::kAnd: {
      bool any = false;
      for (const Filter& c : f.children) {
        int64_t l, h;
        if (!TimeBounds(c, &l, &h)) continue;
        *lo = any ? std::max(*lo, l) : l;
        *hi = any ? std::min(*hi, h) : h;
        any = true;
      }
      return any;
    }
    case Filter::Op::kOr: {
      for (size_t i = 0; i < f.children.size(); ++i) {
        int64_t l, h;
        if (!TimeBounds(f.children[i], &l, &h)) return false;
        *lo = i ? std::min(*lo, l) : l;
        *hi = i ? std::max(*hi, h) : h;
      }
      return !f.children.empty();
    }
  }
  return false;
}

}  // namespace quiver::engine
