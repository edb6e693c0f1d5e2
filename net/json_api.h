// The REST front end's codec: (method, path, JSON body) -> Call, and Reply -> (HTTP status,
// JSON body). Pure functions, tested without sockets. Routes and bodies are documented in
// docs/api.md.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "net/schema/calls.h"

namespace quiver::net {

// kNotFound for an unknown route, kUnimplemented (405) for a known path with the wrong method,
// kInvalidArgument for a malformed body (bad JSON, wrong types, unknown fields, too deep).
Result<Call> DecodeHttpCall(std::string_view method, std::string_view target, std::string_view body,
                            size_t max_json_depth);

struct HttpReply {
  int status = 200;
  std::string body;  // JSON
};

HttpReply EncodeHttpReply(const Reply& reply);

// The one table from a Status code to an HTTP status (the binary protocol carries the code
// itself; the JSON error body carries its name).
int HttpStatusFor(StatusCode code);
// {"error": {"code": "NOT_FOUND", "message": "..."}}
std::string ErrorJson(const Status& status);

}  // namespace quiver::net
