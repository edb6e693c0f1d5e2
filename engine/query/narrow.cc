// Narrowing: the filter a query's retrieval runs with. The query's own filter (its id lists
// sorted, so that Matches looks ids up by binary search), and-ed with the freshness pool's
// timestamp bound and with "id not in exclude".
#include <algorithm>

#include "engine/query/operators.h"

namespace quiver::engine::ops {
namespace {

bool HasUnsortedIdList(const Filter& f) {
  if (f.field == Filter::Field::kId && !std::is_sorted(f.values.begin(), f.values.end()))
    return true;
  return std::any_of(f.children.begin(), f.children.end(), HasUnsortedIdList);
}

void SortIdLists(Filter& f) {
  if (f.field == Filter::Field::kId) std::sort(f.values.begin(), f.values.end());
  for (Filter& c : f.children) SortIdLists(c);
}

Filter And(std::optional<Filter> f, Filter more) {
  if (!f) return more;
  if (f->op == Filter::Op::kAnd) {
    f->children.push_back(std::move(more));
    return std::move(*f);
  }
  Filter both;
  both.op = Filter::Op::kAnd;
  both.children = {std::move(*f), std::move(more)};
  return both;
}

}  // namespace

std::optional<Filter> Narrow(const QuerySpec& q, std::optional<int64_t> since) {
  const bool sort = q.filter && HasUnsortedIdList(*q.filter);
  if (!sort && !since && q.exclude.empty()) return std::nullopt;
  std::optional<Filter> f = q.filter;
  if (sort) SortIdLists(*f);
  if (since) f = WithSince(f, *since);
  if (!q.exclude.empty()) {
    Filter in;
    in.op = Filter::Op::kIn;
    in.field = Filter::Field::kId;
    in.values.assign(q.exclude.begin(), q.exclude.end());
    std::sort(in.values.begin(), in.values.end());
    Filter out;
    out.op = Filter::Op::kNot;
    out.children.push_back(std::move(in));
    f = And(std::move(f), std::move(out));
  }
  return f;
}

}  // namespace quiver::engine::ops
