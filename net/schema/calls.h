// Every operation of Quiver's API as a plain value (Call) and its answer (Reply). The REST and
// binary front ends decode requests into Calls and encode Replies; the server handles Calls
// (net/service.h); the client library builds Calls. Depends only on base/.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/model.h"
#include "base/query.h"
#include "base/status.h"

namespace quiver::net {

struct CreateCollectionCall {
  CollectionSchema schema;
};
struct DropCollectionCall {
  std::string name;
};
struct ListCollectionsCall {};
struct DescribeCollectionCall {
  std::string name;
};
struct UpsertCall {
  std::string collection;
  std::vector<ItemRecord> items;
};
struct DeleteCall {
  std::string collection;
  std::vector<uint64_t> ids;
};
struct GetCall {
  std::string collection;
  std::vector<uint64_t> ids;
};
struct PutUsersCall {
  std::string collection;
  std::vector<UserRecord> users;
};
struct GetUserCall {
  std::string collection;
  uint64_t id = 0;
};
struct AddEventsCall {
  std::string collection;
  std::vector<Event> events;
};

// A search: the query (base/query.h: its vectors and every operator) against a collection, and
// whether to return each hit's payload. On the wire a query of one vector travels as `vector`,
// of several as `vectors`.
struct SearchCall {
  std::string collection;
  QuerySpec query;
  bool with_payload = false;
  // Cluster mode (docs/cluster.md): answer only once this node has applied the collection's
  // write log up to this sequence (a write's acknowledged op_seq), waiting at most
  // Limits::max_seq_wait; 0: answer with what the node has.
  uint64_t min_seq = 0;
  friend bool operator==(const SearchCall&, const SearchCall&) = default;
};
// Many searches in one request (REST `/search/batch`), answered in order, each with its own
// outcome: one search's error does not fail the others.
struct SearchBatchCall {
  std::vector<SearchCall> searches;
  friend bool operator==(const SearchBatchCall&, const SearchBatchCall&) = default;
};
// How many items a collection holds, or how many of them pass `filter`.
struct CountCall {
  std::string collection;
  std::optional<Filter> filter;
  friend bool operator==(const CountCall&, const CountCall&) = default;
};
// One page of a collection's items (passing `filter`, if any) in id order, starting at the id
// `cursor`: the answer's `next` is the next page's cursor. A cursor stays valid across writes:
// the pages hold every item present throughout the scroll exactly once.
struct ScrollCall {
  std::string collection;
  uint64_t cursor = 0;
  uint32_t limit = 100;
  std::optional<Filter> filter;
  bool with_vectors = true, with_payload = true;
  friend bool operator==(const ScrollCall&, const ScrollCall&) = default;
};
struct SnapshotCall {
  std::string collection;
};  // empty: every collection
// Without a collection: the single process's data versions (engine::DataRoot). With one,
// cluster mode's collection versions (cluster/versions.h): publish the bulk build at `path` as
// `version` of the collection, its data holding the write log up to `after_seq` (unset: the
// log's head now); roll the collection back; list its versions.
struct ReloadCall {
  std::string version;
  std::string collection;
  std::string path;
  std::optional<uint64_t> after_seq;
  friend bool operator==(const ReloadCall&, const ReloadCall&) = default;
};
struct RollbackCall {
  std::string collection;
};
struct ListVersionsCall {
  std::string collection;
};
struct HealthCall {};
// Plugins and neighbor lists (docs/plugins.md): run a plugin over a collection (config: a JSON
// object, empty for none), read one list, list a collection's list kinds, list the plugins.
struct RunPluginCall {
  std::string collection, plugin, config;
  bool incremental = false;
};
struct GetListCall {
  std::string collection, kind;
  uint64_t key = 0;
};
struct ListListsCall {
  std::string collection;
};
struct ListPluginsCall {};
// Cluster mode: a copy of a collection for a new replica, fetched from a peer over the binary
// protocol (docs/cluster.md, "Bootstrap"). ExportCall has the node write the copy
// (engine::Engine::ExportCollection) and name its files; ReadExportCall reads up to `length`
// bytes (at most kMaxExportChunk; 0: that much) of one of them from `offset`; EndExportCall
// removes the copy (one nobody has read for ten minutes is removed anyway).
struct ExportCall {
  std::string collection;
  // Cluster mode: the shards the copy is for (their items only, no index snapshot); empty: the
  // whole collection. The node must host every one of them.
  std::vector<uint32_t> shards;
};
struct ReadExportCall {
  std::string export_id, file;
  uint64_t offset = 0;
  uint32_t length = 0;
};
struct EndExportCall {
  std::string export_id;
};
inline constexpr uint32_t kMaxExportChunk = uint32_t{8} << 20;
// Cluster mode: per cluster of these shards, the best similarity of the vectors to its
// centroid (engine::ClusterSimilarity): what a router needs for a quota with p "auto"
// (docs/cluster.md). The node must host the shards.
// With `user`: each cluster's weight from the user's stored events (p "history", not yet
// normalised) instead of the similarity.
struct IntentCall {
  std::string collection;
  std::vector<std::vector<float>> vectors;
  std::vector<uint32_t> shards;
  std::optional<uint64_t> user;
  int64_t half_life = 0;
};

// Cluster mode with etcd (docs/cluster.md, "Shard assignment"): the members and the shards
// routers send each of them; set the nodes a shard is sent to (empty: every member hosting it).
struct ClusterInfoCall {};
struct AssignShardCall {
  uint32_t shard = 0;
  std::vector<std::string> nodes;
  friend bool operator==(const AssignShardCall&, const AssignShardCall&) = default;
};

using Call =
    std::variant<CreateCollectionCall, DropCollectionCall, ListCollectionsCall,
                 DescribeCollectionCall, UpsertCall, DeleteCall, GetCall, PutUsersCall, GetUserCall,
                 AddEventsCall, SearchCall, SnapshotCall, ReloadCall, RollbackCall,
                 ListVersionsCall, HealthCall, RunPluginCall, GetListCall, ListListsCall,
                 ListPluginsCall, ExportCall, ReadExportCall, EndExportCall, IntentCall,
                 ClusterInfoCall, AssignShardCall, SearchBatchCall, CountCall, ScrollCall>;

// The operation's name for metrics and logs ("search", "upsert", ...), by Call index.
const char* CallName(const Call& call);
inline constexpr size_t kCallKinds = std::variant_size_v<Call>;
const char* CallNameAt(size_t index);
// Where the server runs a call (net/server.h): reads on the I/O threads, item and user writes
// on the write pool, collection and version changes, snapshots and plugin runs on the
// maintenance pool.
enum class CallClass : uint8_t { kRead, kWrite, kMaintenance };
CallClass ClassOf(const Call& call);
// Whether the call changes state (needs a read-write key).
bool IsWrite(const Call& call);
// Whether retrying the call after an unknown outcome is safe.
bool IsIdempotent(const Call& call);

struct GetResult {
  std::vector<std::optional<ItemRecord>> items;  // items[i] answers ids[i]
  friend bool operator==(const GetResult&, const GetResult&) = default;
};
struct UserResult {
  std::optional<UserRecord> user;
  friend bool operator==(const UserResult&, const UserResult&) = default;
};
struct SearchResult {
  std::vector<Hit> hits;
  // Multi-vector and quota searches: per hit, the query vector that scored it highest and its
  // cluster (-1: none); with a quota, M_k per cluster; per cluster, the hits it gave.
  std::vector<uint32_t> hit_vector;
  std::vector<int32_t> hit_cluster;
  std::vector<uint32_t> quotas, per_cluster;
  std::vector<std::string> hit_payload;  // when asked for: per hit (minified JSON; empty: none)
  std::vector<uint8_t> hit_channels;     // with channels: per hit, bits 1 u2i, 2 u2i2i, 4 u2u2i
  // Cluster mode: the write-log sequence this node had applied for the collection when it
  // answered (0: not in cluster mode).
  uint64_t seq = 0;
  friend bool operator==(const SearchResult&, const SearchResult&) = default;
};
struct SearchOutcome {
  Status status;        // the search's own error, if it failed
  SearchResult result;  // its answer otherwise
  friend bool operator==(const SearchOutcome&, const SearchOutcome&) = default;
};
struct SearchBatchResult {
  std::vector<SearchOutcome> results;  // results[i] answers searches[i]
  friend bool operator==(const SearchBatchResult&, const SearchBatchResult&) = default;
};
struct CountResult {
  uint64_t count = 0;
  friend bool operator==(const CountResult&, const CountResult&) = default;
};
struct ScrollResult {
  std::vector<ItemRecord> items;  // vector or payload left empty unless asked for
  std::optional<uint64_t> next;   // the next page's cursor; absent: the scroll is done
  friend bool operator==(const ScrollResult&, const ScrollResult&) = default;
};
struct HealthResult {
  std::string status, version;
  friend bool operator==(const HealthResult&, const HealthResult&) = default;
};
struct PluginRunResult {
  std::vector<std::string> kinds;  // list kinds written
  uint64_t lists = 0, removed = 0;
  bool incremental = false;
  friend bool operator==(const PluginRunResult&, const PluginRunResult&) = default;
};
struct ListResult {
  std::optional<std::vector<Hit>> list;  // absent: no list for that key
  friend bool operator==(const ListResult&, const ListResult&) = default;
};
struct ListInfosResult {
  std::vector<ListInfo> lists;
  friend bool operator==(const ListInfosResult&, const ListInfosResult&) = default;
};
struct PluginsResult {
  std::vector<std::string> names;
  friend bool operator==(const PluginsResult&, const PluginsResult&) = default;
};

struct ExportFile {
  std::string name;  // a path relative to the copy's directory
  uint64_t size = 0;
  uint32_t crc32c = 0;
  friend bool operator==(const ExportFile&, const ExportFile&) = default;
};
struct ExportResult {
  std::string export_id;
  uint64_t op_seq = 0;                         // the collection's op sequence in the copy
  std::map<uint32_t, uint64_t> log_positions;  // the write log it had applied, by shard
  std::vector<ExportFile> files;
  friend bool operator==(const ExportResult&, const ExportResult&) = default;
};
struct ExportChunk {
  std::string data;
  friend bool operator==(const ExportChunk&, const ExportChunk&) = default;
};
struct IntentResult {
  std::vector<double> similarity;  // per cluster; -inf: empty or elsewhere
  friend bool operator==(const IntentResult&, const IntentResult&) = default;
};

struct ClusterMember {
  std::string id, host;
  uint32_t port = 0;               // the binary protocol's
  std::vector<uint32_t> shards;    // held (quiverd --shards; empty: all)
  std::vector<uint32_t> assigned;  // of those, the ones routers send it (of 0..max shards-1)
  friend bool operator==(const ClusterMember&, const ClusterMember&) = default;
};
struct ClusterInfo {
  std::vector<ClusterMember> members;
  std::map<uint32_t, std::vector<std::string>> assignment;  // shards with an entry
  friend bool operator==(const ClusterInfo&, const ClusterInfo&) = default;
};

using ReplyBody =
    std::variant<std::monostate, CollectionInfo, std::vector<CollectionInfo>, WriteResult,
                 GetResult, UserResult, SearchResult, VersionsInfo, HealthResult, PluginRunResult,
                 ListResult, ListInfosResult, PluginsResult, ExportResult, ExportChunk,
                 IntentResult, ClusterInfo, SearchBatchResult, CountResult, ScrollResult>;

// An answer: a failed status (and no body), or OK and the body the call produces
// (monostate for calls that return nothing).
struct Reply {
  Status status;
  ReplyBody body;
};

}  // namespace quiver::net
