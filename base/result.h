// Result<T>: a value or a non-OK Status (absl::StatusOr's role).
#pragma once

#include <cstdlib>
#include <utility>
#include <variant>

#include "base/check.h"
#include "base/status.h"

namespace quiver {

template <typename T>
class [[nodiscard]] Result {
 public:
  // REQUIRES: !status.ok(). An OK status without a value is turned into kInternal.
  Result(Status status) : v_(std::move(status)) {  // NOLINT(implicit)
    if (std::get<Status>(v_).ok()) v_ = InternalError("Result constructed from OK status");
  }
  Result(T value) : v_(std::move(value)) {}  // NOLINT(implicit)

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  // REQUIRES: ok().
  T& value() & {
    QV_CHECK(ok()) << status().ToString();
    return std::get<T>(v_);
  }
  const T& value() const& {
    QV_CHECK(ok()) << status().ToString();
    return std::get<T>(v_);
  }
  T&& value() && {
    QV_CHECK(ok()) << status().ToString();
    return std::get<T>(std::move(v_));
  }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace quiver

// QV_ASSIGN_OR_RETURN(lhs, expr): evaluates `expr` (a Result<T>); on error returns its Status,
// otherwise moves the value into `lhs` (which may be a declaration, e.g. `auto x`).
#define QV_ASSIGN_OR_RETURN(lhs, expr) \
  QV_ASSIGN_OR_RETURN_IMPL_(QV_STATUS_CONCAT_(qv_result_, __LINE__), lhs, expr)
// NOLINTBEGIN(bugprone-macro-parentheses): tmp is a name and lhs may be a declaration.
#define QV_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)
