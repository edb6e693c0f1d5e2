// A quiverd node in cluster mode (docs/cluster.md): its writes go to the replicated write log
// (cluster/log.h) instead of straight to its engine, and it follows the log of every collection
// it holds, applying each message to its engine in stream order, exactly once (the engine
// stores the applied position with the data: engine::LogPosition).
//
//   auto node = cluster::Node::Start(root, {.log = {.servers = {"nats://127.0.0.1:4222"}},
//                                           .node_id = "a"});
//   auto ack = (*node)->Upsert("movies", items);     // stored in the log: ack->op_seq is its
//                                                    // stream sequence
//   (*node)->WaitApplied("movies", ack->op_seq, deadline);   // read-your-writes
//
// A write is acknowledged once JetStream has stored it; this node (and every other following the
// collection) applies it shortly after.
//
// Shards (CollectionSchema::shards, S): an item's shard is its cluster id mod S in a collection
// with clusters, else a hash of its id mod S (ItemShard, IdShard). A node hosts some shards of
// every collection (NodeOptions::shards; all by default) and holds only their items. Writes are
// published to the subject of the shard they concern; those that concern every shard (users,
// events, and every item write of a collection with clusters: the writer cannot know an item's
// earlier cluster) to `all`. A node reads its collections' whole streams and applies the part of
// each message its shards own (an item written to another shard is deleted here: it moved).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/model.h"
#include "base/query.h"
#include "base/result.h"
#include "base/status.h"
#include "cluster/log.h"
#include "cluster/log_write.h"
#include "engine/plugin_host.h"

namespace quiver::engine {
class DataRoot;
}

namespace quiver::cluster {

// The shard of an item (schema.shards > 1): its cluster mod S with clusters, else IdShard.
uint32_t ItemShard(const CollectionSchema& schema, const ItemRecord& item);
// The shard of an id in a collection without clusters: a fixed 64-bit mix of the id, mod S.
uint32_t IdShard(const CollectionSchema& schema, uint64_t id);

struct NodeOptions {
  LogOptions log;
  // The shards of every collection this node hosts (empty: all of them). A shard a collection
  // does not have is ignored.
  std::vector<uint32_t> shards;
  // This node's name in the cluster: names its consumers (one per collection and shard), and
  // its writes' de-duplication ids. Letters, digits, '-' and '_'.
  std::string node_id;
  // Messages a follower takes from the log at a time, and how long it waits for the first.
  size_t fetch_batch = 256;
  std::chrono::milliseconds fetch_wait{200};
  // Backpressure: a write waits (up to lag_wait, then kUnavailable "retry later") while this
  // node has applied the collection's log more than max_lag messages behind the newest write it
  // has seen acknowledged. Keeps acknowledgement from running ahead of what the node can index
  // (what it serves lags by at most about max_lag writes). 0: no bound.
  uint64_t max_lag = 1024;
  std::chrono::milliseconds lag_wait{10000};
  // Bootstrap (docs/cluster.md): copies a peer's export of a collection (engine::Engine::
  // ExportCollection) into a directory that does not exist yet; kNotFound when no peer has the
  // collection. quiverd fetches it over the binary protocol from its --peers. It is used when a
  // collection has applied nothing of its log yet (a new replica: a failure falls back to
  // replaying the whole log) and when the log has been trimmed past this node (the collection
  // is not served until a copy is in; tried every bootstrap_retry). Unset: neither.
  // `shards`: the shards this node hosts of the collection (empty: all of them); the copy is to
  // hold those only.
  std::function<Status(const std::string& collection, const std::vector<uint32_t>& shards,
                       const std::string& dir)>
      fetch;
  std::chrono::milliseconds bootstrap_retry{5000};
  // Plugin runs (docs/plugins.md): the item searches of a plugin run this node applies, for
  // `collection` (quiverd routes them to every shard, so that an item's neighbor list covers
  // the whole collection, not only this node's shards). Unset: this node's own index.
  std::function<Result<std::vector<Hit>>(
      const std::string& collection, std::span<const float> vector, size_t k, const Filter* filter)>
      item_search;
  // Cluster versions (cluster/versions.h): the engine collection serving a collection (its
  // active version's: "movies@v2" for "movies"). Writes are checked against it, and a plugin
  // run answers with its outcome. Unset: the collection itself.
  std::function<std::string(const std::string& collection)> serving;
};

// A follower's state, for health and metrics.
struct FollowerState {
  std::string collection;
  uint64_t applied = 0;    // the last stream sequence applied
  uint64_t refused = 0;    // messages refused for good (bad input caught only when applied)
  std::string last_error;  // the last refusal or log error ("" if none)
  // The log cannot be followed from where this node is (trimmed past it, or it lost messages
  // this node applied), or a copy is being fetched from a peer: the collection is not served
  // until that is resolved. Why, if so.
  std::string blocked;
  uint64_t bootstraps = 0;  // copies of the collection taken from peers
};

class Follower;

class Node {
 public:
  // Connects to the log and follows every collection of the root's current version.
  static Result<std::unique_ptr<Node>> Start(engine::DataRoot& root, const NodeOptions& options);
  ~Node();  // stops the followers
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Checked as the engine would (engine::Engine::CheckUpsert and the others), then stored in the
  // log. The result's op_seq is the write's stream sequence; `changed` the records it carries.
  // kUnavailable while the log is unreachable (nothing is stored).
  Result<WriteResult> Upsert(const std::string& collection, std::vector<ItemRecord> items);
  Result<WriteResult> Delete(const std::string& collection, std::vector<uint64_t> ids);
  Result<WriteResult> PutUsers(const std::string& collection, std::vector<UserRecord> users);
  Result<WriteResult> AddEvents(const std::string& collection, std::vector<Event> events);
  // A plugin run (docs/plugins.md) goes through the log too: every node following the
  // collection runs the plugin over its own data when it applies the message, at the same place
  // among the writes (with an approximate index the lists may differ slightly between nodes).
  // Waits until `deadline` for this node's run and returns its outcome (kDeadlineExceeded if it
  // has not run by then: it still will). kNotFound for an unknown plugin, before the log.
  Result<engine::PluginRun> RunPlugin(const std::string& collection, const std::string& plugin,
                                      const std::string& config, bool incremental,
                                      std::chrono::steady_clock::time_point deadline);

  // Starts following a collection (after it is created here: it replays the collection's whole
  // log), or stops (before it is dropped). Follow of a followed collection changes nothing.
  // Follow is refused for a collection whose shards this node hosts none of.
  Status Follow(const std::string& collection);
  void Unfollow(const std::string& collection);
  bool Follows(const std::string& collection) const;
  // Cluster versions (cluster/versions.h): loads the part of the bulk build at `path` that this
  // node's shards own as engine collection `name` ("movies@v2"), recording that its data holds
  // the write log up to `after_seq`, then follows the log from there. Runs in the background;
  // does nothing while a load of `name` runs or once `name` is followed (a collection already
  // here is followed as it is). When the build cannot be read here, a copy is taken from a peer
  // that has loaded it (NodeOptions::fetch). A failed load is tried again, once
  // bootstrap_retry has passed, when LoadVersion is next called.
  // `schema`: the cluster's schema of the collection (its name, shards and data model).
  void LoadVersion(const std::string& name, const CollectionSchema& schema, const std::string& path,
                   uint64_t after_seq);
  // Loads that failed, by engine collection name: why.
  std::map<std::string, std::string> LoadErrors() const;
  // The last sequence of the collection's log (0: empty).
  Result<uint64_t> LogHead(const std::string& collection);
  // Deletes the collection's log (a collection created anew in the cluster starts with an empty
  // one, not with the writes of an earlier collection of that name). OK if there is none.
  Status ResetLog(const std::string& collection);

  // Waits until this node has applied the collection's log up to `seq`; kDeadlineExceeded
  // (saying how far it got) when `deadline` passes first.
  Status WaitApplied(const std::string& collection, uint64_t seq,
                     std::chrono::steady_clock::time_point deadline);

  // The last sequence of the collection's log this node has applied (0: none, or not followed).
  uint64_t Applied(const std::string& collection) const;
  std::vector<FollowerState> Followers() const;
  // kUnavailable, saying why, while the collection's log cannot be followed from where this
  // node is (FollowerState::blocked): its data may miss acknowledged writes. OK otherwise
  // (including collections this node does not follow).
  Status CheckServing(const std::string& collection) const;
  const std::string& node_id() const { return options_.node_id; }
  bool Hosts(uint32_t shard) const;

 private:
  Node(engine::DataRoot& root, NodeOptions options, std::unique_ptr<Log> log);
  // `local`: the engine collection the write was checked against (CheckedName), whose follower
  // gives the backpressure.
  Result<WriteResult> Publish(const LogWrite& write, uint64_t records, uint32_t shard,
                              const std::string& local);
  // The engine collection writes to `collection` are checked against: the serving version's if
  // it is here, else any version of it this node follows.
  std::string CheckedName(const std::string& collection) const;
  Status Load(const std::string& name, const CollectionSchema& schema, const std::string& path,
              uint64_t after_seq);
  // Publishes the write whole on `all` (clusters, or every shard concerned), on shard 0 (one
  // shard), or split by IdShard into one message per shard; op_seq: the last one's sequence.
  Result<WriteResult> Route(LogWrite write, uint64_t records, const std::string& local);

  engine::DataRoot& root_;
  const NodeOptions options_;
  std::unique_ptr<Log> log_;
  std::string id_prefix_;  // node id and a random start nonce: message ids unique across restarts
  std::atomic<uint64_t> next_write_{0};
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<Follower>> followers_;  // GUARDED_BY(mu_)
  struct VersionLoad {
    std::thread thread;
    bool done = false;
    Status status;
    std::chrono::steady_clock::time_point finished;
  };
  std::map<std::string, VersionLoad> loads_;  // GUARDED_BY(mu_)
  std::atomic<bool> stopping_{false};
};

}  // namespace quiver::cluster
