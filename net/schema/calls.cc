#include "net/schema/calls.h"

namespace quiver::net {
namespace {

// In Call's alternative order.
constexpr const char* kNames[] = {"create_collection",
                                  "drop_collection",
                                  "list_collections",
                                  "describe_collection",
                                  "upsert",
                                  "delete",
                                  "get",
                                  "put_users",
                                  "get_user",
                                  "add_events",
                                  "search",
                                  "snapshot",
                                  "reload",
                                  "rollback",
                                  "list_versions",
                                  "health",
                                  "run_plugin",
                                  "get_list",
                                  "list_lists",
                                  "list_plugins"};
static_assert(std::size(kNames) == kCallKinds);

}  // namespace

const char* CallNameAt(size_t index) { return index < kCallKinds ? kNames[index] : "unknown"; }

const char* CallName(const Call& call) { return CallNameAt(call.index()); }

bool IsWrite(const Call& call) {
  return std::visit(
      [](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        return !(std::is_same_v<T, ListCollectionsCall> ||
                 std::is_same_v<T, DescribeCollectionCall> || std::is_same_v<T, GetCall> ||
                 std::is_same_v<T, GetUserCall> || std::is_same_v<T, SearchCall> ||
                 std::is_same_v<T, ListVersionsCall> || std::is_same_v<T, HealthCall> ||
                 std::is_same_v<T, GetListCall> || std::is_same_v<T, ListListsCall> ||
                 std::is_same_v<T, ListPluginsCall>);
      },
      call);
}

bool IsIdempotent(const Call& call) {
  // Reads, and writes whose repetition leaves the same state: upserts and puts replace,
  // deletes of deleted ids change nothing, snapshots cover the same ops. Appending events
  // twice would double them; create and drop report AlreadyExists / NotFound on a repeat;
  // reload and rollback switch versions relative to the current one.
  return std::visit(
      [](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        return !(std::is_same_v<T, AddEventsCall> || std::is_same_v<T, CreateCollectionCall> ||
                 std::is_same_v<T, DropCollectionCall> || std::is_same_v<T, ReloadCall> ||
                 std::is_same_v<T, RollbackCall>);
      },
      call);
}

}  // namespace quiver::net
