// Feeds arbitrary bodies to the REST decoder. The first byte picks the route, the rest is the
// body; whatever decodes must not crash the reply encoder either.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "net/json_api.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace quiver::net;
  static constexpr std::pair<const char*, const char*> kRoutes[] = {
      {"POST", "/v1/collections"},          {"POST", "/v1/collections/m/items"},
      {"POST", "/v1/collections/m/search"}, {"POST", "/v1/collections/m/items/get"},
      {"POST", "/v1/collections/m/users"},  {"POST", "/v1/collections/m/events"},
      {"POST", "/v1/versions/reload"},      {"GET", "/v1/collections/m/items/12"}};
  if (size == 0) return 0;
  const auto& route = kRoutes[data[0] % std::size(kRoutes)];
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto call = DecodeHttpCall(route.first, route.second, body, 32);
  if (!call.ok()) EncodeHttpReply(Reply{call.status(), {}});
  return 0;
}
