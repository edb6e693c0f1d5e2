// QV_CHECK: invariants that, if broken, mean a bug in Quiver (never bad input or bad data:
// those are a Status). A failed check prints file, line, condition and message and aborts.
// QV_DCHECK is compiled out in release builds.
#pragma once

#include <sstream>

namespace quiver::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Lets `QV_CHECK(x) << "msg"` be a void expression on both branches.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace quiver::internal

// NOLINTBEGIN(bugprone-macro-parentheses): the stream operands follow the expansion.
#define QV_CHECK(condition)                     \
  (condition) ? (void)0                         \
              : ::quiver::internal::Voidify() & \
                    ::quiver::internal::CheckFailure(__FILE__, __LINE__, #condition).stream()
// NOLINTEND(bugprone-macro-parentheses)

#ifdef NDEBUG
#define QV_DCHECK(condition) \
  while (false) QV_CHECK(condition)
#else
#define QV_DCHECK(condition) QV_CHECK(condition)
#endif
