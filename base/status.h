// Status: the outcome of an operation that can fail, with the code vocabulary of
// absl::Status. No exceptions cross Quiver's own APIs; errors from libraries are
// converted to a Status at the edge.
//
// Thread-safety: a Status is a value; distinct objects may be used from distinct threads.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>

namespace quiver {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// Printable name of a code, e.g. "INVALID_ARGUMENT".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // OK status; costs one null pointer.
  Status() noexcept = default;
  Status(StatusCode code, std::string_view message);

  Status(const Status& other);
  Status& operator=(const Status& other);
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  StatusCode code() const { return rep_ ? rep_->code : StatusCode::kOk; }
  std::string_view message() const { return rep_ ? std::string_view(rep_->message) : ""; }

  // "CODE: message", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<prefix>: <message>"; OK stays OK.
  Status WithContext(std::string_view prefix) const;

  // Marks a deliberately ignored status.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code() == b.code() && a.message() == b.message();
  }

 private:
  struct Rep {
    StatusCode code;
    std::string message;
  };
  std::unique_ptr<Rep> rep_;
};

Status InvalidArgumentError(std::string_view message);
Status NotFoundError(std::string_view message);
Status AlreadyExistsError(std::string_view message);
Status FailedPreconditionError(std::string_view message);
Status OutOfRangeError(std::string_view message);
Status ResourceExhaustedError(std::string_view message);
Status UnimplementedError(std::string_view message);
Status InternalError(std::string_view message);
Status UnavailableError(std::string_view message);
Status DataLossError(std::string_view message);
Status PermissionDeniedError(std::string_view message);

// Prints status.ToString() (for test failure messages and logs).
std::ostream& operator<<(std::ostream& os, const Status& status);

// A message as sent to a client: at most kMaxReplyMessageBytes, longer ones (an error that
// echoes a huge name) cut at a UTF-8 character boundary and marked with their full size.
inline constexpr size_t kMaxReplyMessageBytes = 1024;
std::string ReplyMessage(std::string_view message);

}  // namespace quiver

#define QV_STATUS_CONCAT_INNER_(a, b) a##b
#define QV_STATUS_CONCAT_(a, b) QV_STATUS_CONCAT_INNER_(a, b)

// Evaluates `expr` (a Status); returns it from the enclosing function if not OK.
#define QV_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::quiver::Status qv_status_ = (expr);    \
    if (!qv_status_.ok()) return qv_status_; \
  } while (0)
