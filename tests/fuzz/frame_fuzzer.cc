// Feeds arbitrary bytes to the binary protocol's frame decoders. A stream is cut into frames by
// their length prefixes as the server does; every frame goes through DecodeRequest and
// DecodeResponse. Anything decoded must re-encode and decode to the same call.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "net/schema/wire_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quiver::net;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  while (in.size() >= kFrameHeaderBytes) {
    const uint32_t len = DecodeFrameLength(in.data());
    in.remove_prefix(kFrameHeaderBytes);
    const std::string_view body = in.substr(0, std::min<size_t>(len, in.size()));
    in.remove_prefix(body.size());
    auto req = DecodeRequest(body);
    if (req.ok()) {
      const std::string again = EncodeRequestFrame(req->id, req->api_key, req->call);
      auto back = DecodeRequest(std::string_view(again).substr(kFrameHeaderBytes));
      if (!back.ok() || back->call.index() != req->call.index() || back->id != req->id)
        std::abort();
    }
    auto res = DecodeResponse(body);
    if (res.ok()) {
      const std::string again = EncodeResponseFrame(res->id, res->reply);
      if (!DecodeResponse(std::string_view(again).substr(kFrameHeaderBytes)).ok()) std::abort();
    }
  }
  return 0;
}
