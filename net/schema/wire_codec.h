// The binary protocol's codec: Calls and Replies to and from FlatBuffers (net/schema/quiver.fbs),
// and the frame format (u32 little-endian length, then the buffer). Shared by the server and
// the client library. Decoding runs the FlatBuffers Verifier first; a buffer that fails it, or a
// request without a body, is kInvalidArgument.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "net/schema/calls.h"

namespace quiver::net {

inline constexpr size_t kFrameHeaderBytes = 4;

struct DecodedRequest {
  uint64_t id = 0;
  std::string api_key;
  Call call;
};

struct DecodedResponse {
  uint64_t id = 0;
  Reply reply;
};

// A whole frame (header and buffer).
std::string EncodeRequestFrame(uint64_t id, std::string_view api_key, const Call& call);
std::string EncodeResponseFrame(uint64_t id, const Reply& reply);

// The frame body's length from its 4-byte header.
uint32_t DecodeFrameLength(const char* header);

// Decode a frame body (without the header).
Result<DecodedRequest> DecodeRequest(std::string_view buffer);
Result<DecodedResponse> DecodeResponse(std::string_view buffer);

}  // namespace quiver::net
