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
                                  "list_plugins",
                                  "export",
                                  "read_export",
                                  "end_export",
                                  "intent",
                                  "cluster_info",
                                  "assign_shard",
                                  "search_batch",
                                  "count",
                                  "scroll"};
static_assert(std::size(kNames) == kCallKinds);

}  // namespace

const char* CallNameAt(size_t index) { return index < kCallKinds ? kNames[index] : "unknown"; }

const char* CallName(const Call& call) { return CallNameAt(call.index()); }

CallClass ClassOf(const Call& call) {
  return std::visit(
      [](const auto& c) {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, UpsertCall> || std::is_same_v<T, DeleteCall> ||
                      std::is_same_v<T, PutUsersCall> || std::is_same_v<T, AddEventsCall>) {
          return CallClass::kWrite;
        } else if constexpr (std::is_same_v<T, CreateCollectionCall> ||
                             std::is_same_v<T, DropCollectionCall> ||
                             std::is_same_v<T, SnapshotCall> || std::is_same_v<T, ReloadCall> ||
                             std::is_same_v<T, RollbackCall> || std::is_same_v<T, RunPluginCall> ||
                             std::is_same_v<T, AssignShardCall> || std::is_same_v<T, ExportCall>) {
          return CallClass::kMaintenance;
        } else {
          return CallClass::kRead;
        }
      },
      call);
}

bool IsWrite(const Call& call) { return ClassOf(call) != CallClass::kRead; }

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
