// Membership: which nodes make up the cluster, what each hosts and how far each has applied
// the write log, kept in etcd (docs/cluster.md, "Membership and routing").
//
// Each node stores one key, <prefix>/nodes/<node id>, attached to a lease it keeps alive: the key
// (and so the node) disappears within the lease's TTL of the node's death. Its value is a small
// JSON object (readable with etcdctl):
//   {"host":"127.0.0.1","port":7701,"shards":[0,1],"applied":{"movies":1234},"blocked":[]}
// shards: the shards of every collection it hosts (empty: all); applied: per collection the last
// write-log sequence it has applied; blocked: collections it does not serve (FollowerState).
//
// Every node reads the prefix every `poll` and keeps the last view it read: while etcd cannot be
// reached the view stays what it was (requests go on with the last known map) and the node's
// own key is stored again, under a new lease if the old one expired, once etcd is back.
//
// Collections are cluster-wide: <prefix>/collections/<name> holds the schema
// (storage::EncodeSchema), or nothing ("") once dropped: a tombstone, so that a node that was
// down during the drop drops its copy when it returns instead of bringing the collection back.
// Created with a compare-and-swap (of two nodes creating one name, one wins). Reconcile brings
// a node's engine in line with that list: it creates and follows what is missing, drops what
// was dropped, and stores collections the cluster does not know yet (created before the node
// joined a cluster).
//
//   auto m = cluster::Membership::Start({.etcd = {.endpoints = {"http://127.0.0.1:2379"}},
//                                        .prefix = "/quiver/prod", .node_id = "a"}, state);
//   (*m)->Register("10.0.0.5", 7701);       // once the node's binary port is open
//   for (const MemberInfo& n : (*m)->Members()) ...
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/model.h"
#include "base/result.h"
#include "base/status.h"
#include "cluster/meta_store.h"
#include "cluster/versions.h"

namespace quiver::engine {
class Engine;
}

namespace quiver::cluster {

class Node;

struct MemberInfo {
  std::string id;
  std::string host;
  uint16_t port = 0;             // the binary protocol's
  std::vector<uint32_t> shards;  // hosted shards of every collection (empty: all)
  std::map<std::string, uint64_t> applied;
  std::vector<std::string> blocked;
  bool Hosts(uint32_t shard) const;
  friend bool operator==(const MemberInfo&, const MemberInfo&) = default;
};

// The value stored for a member, and back (kDataLoss for a value that is not one).
std::string EncodeMember(const MemberInfo& m);
Result<MemberInfo> DecodeMember(std::string_view id, std::string_view value);

// What this node reports of itself on every refresh: applied sequences and blocked collections.
struct MemberState {
  std::map<std::string, uint64_t> applied;
  std::vector<std::string> blocked;
};

// Which members routers send each shard to (docs/cluster.md, "Shard assignment"): shard ->
// node ids. A shard without an entry goes to every member hosting it (quiverd --shards).
using ShardAssignment = std::map<uint32_t, std::vector<std::string>>;
std::string EncodeAssignment(const ShardAssignment& a);
Result<ShardAssignment> DecodeAssignment(std::string_view value);

struct MembershipOptions {
  MetaStoreOptions etcd;
  std::string prefix = "/quiver/default";  // one per Quiver cluster
  std::string node_id;
  std::vector<uint32_t> shards;  // this node's (empty: all)
  std::chrono::seconds ttl{5};   // the node's lease
  std::chrono::milliseconds poll{250};
  // A pending version becomes active once every shard has a replica of it within this many
  // log messages of the shard's most advanced replica of the active version.
  uint64_t flip_max_lag = 1024;
};

class Membership {
 public:
  // Connects to etcd (kUnavailable when no endpoint answers) and reads the members once.
  // `state` is called on the refresh thread for this node's own entry.
  static Result<std::unique_ptr<Membership>> Start(const MembershipOptions& options,
                                                   std::function<MemberState()> state);
  ~Membership();  // stops refreshing and revokes the lease: the node leaves at once
  // Revokes the lease (the node's key goes at once) and stores it no more; the view of the
  // others is still read. For a node about to stop.
  void Leave();
  Membership(const Membership&) = delete;
  Membership& operator=(const Membership&) = delete;

  // Stores this node's key (under its lease) with the address peers reach it at, and keeps it.
  Status Register(const std::string& host, uint16_t port);
  // The last view read from etcd (this node included once registered), by id.
  std::vector<MemberInfo> Members() const;
  // Whether the last exchange with etcd succeeded; the error otherwise.
  Status EtcdStatus() const;
  // Reads etcd now instead of waiting for the next poll (tests; after a change).
  Status Refresh();

  // The cluster's collections (nullopt: dropped), as last read.
  std::map<std::string, std::optional<CollectionSchema>> Collections() const;
  // kAlreadyExists when the cluster has a live collection of that name; kUnavailable without
  // etcd (nothing is created). `before` runs once the name is known to be free, before the
  // collection is stored (its error stops the create).
  Status CreateCollection(const CollectionSchema& schema,
                          const std::function<Status()>& before = nullptr);
  // kNotFound when the cluster has no live collection of that name.
  Status DropCollection(const std::string& name);
  // Collection versions (cluster/versions.h), as last read: a collection's record (the default
  // one, "initial" active, when it has none).
  VersionsRecord Versions(const std::string& collection) const;
  // The engine collection a read of `name` goes to: its active version's ("movies@v2"); a name
  // that already names a version is kept.
  std::string ServingName(const std::string& name) const;
  // The same version pinned (cluster/versions.h): "movies@initial" rather than "movies".
  std::string PinnedServingName(const std::string& collection) const;
  // The cluster's schema of an engine collection (a version's: named as it), as last read;
  // kNotFound when the cluster has no such live collection.
  Result<CollectionSchema> SchemaOf(const std::string& engine_name) const;
  // Records `version` as the collection's pending version, built at `build.path` (replacing a
  // pending one). kNotFound for an unknown collection; kAlreadyExists when the name is the
  // active or the previous version's; kAborted when the record changed meanwhile (try again).
  Status PublishVersion(const std::string& collection, const std::string& version,
                        const BuildRef& build);
  // Makes the previous version active again (and the active one previous).
  // kFailedPrecondition when there is no previous version.
  Status RollbackVersion(const std::string& collection);

  // The shard assignment, as last read (empty: none stored).
  ShardAssignment Assignment() const;
  // Whether routers send `shard` to member `m`: it hosts the shard and, if the shard has an
  // entry in `assignment`, is listed there.
  static bool Assigned(const ShardAssignment& assignment, const MemberInfo& m, uint32_t shard);
  // Sets the nodes `shard` is sent to (empty: every member hosting it), in one compare-and-swap
  // against the assignment last read. Each node must be a member that hosts the shard and serves
  // every collection within `max_lag` log messages of the shard's most advanced replica:
  // kFailedPrecondition, saying which and why, otherwise. kAborted if the assignment changed
  // meanwhile.
  Status AssignShard(uint32_t shard, const std::vector<std::string>& nodes, uint64_t max_lag);

  // Brings `engine` (and what `node` follows) in line with Collections(); returns the first
  // error (the others are tried still). Called after every refresh once set with OnRefresh.
  Status Reconcile(engine::Engine& engine, Node& node);
  // Called on the refresh thread after each successful read of etcd.
  void OnRefresh(std::function<void()> f);
  const std::string& node_id() const { return options_.node_id; }

 private:
  Membership(MembershipOptions options, std::unique_ptr<MetaStore> store,
             std::function<MemberState()> state);
  void Loop();
  Status Publish();  // own key: lease kept alive (or granted again), value stored when changed
  // Changes a collection's versions record with a compare-and-swap against the last one read.
  Status SwapVersions(const std::string& collection,
                      const std::function<Status(VersionsRecord&)>& change);
  // Makes the pending version active if every shard has a replica of it caught up.
  Status TryFlip(const std::string& collection, const CollectionSchema& schema);

  const MembershipOptions options_;
  const std::unique_ptr<MetaStore> store_;
  const std::function<MemberState()> state_;

  std::mutex publish_mu_;                       // one Publish at a time
  int64_t lease_ = 0;                           // GUARDED_BY(publish_mu_)
  std::string stored_;                          // GUARDED_BY(publish_mu_): the value last stored
  std::chrono::steady_clock::time_point kept_;  // GUARDED_BY(publish_mu_): last keep-alive

  mutable std::mutex mu_;
  MemberInfo self_;                                                     // GUARDED_BY(mu_)
  bool registered_ = false;                                             // GUARDED_BY(mu_)
  bool left_ = false;                                                   // GUARDED_BY(mu_)
  std::vector<MemberInfo> members_;                                     // GUARDED_BY(mu_)
  std::map<std::string, std::optional<CollectionSchema>> collections_;  // GUARDED_BY(mu_)
  std::map<std::string, int64_t> collection_revisions_;                 // GUARDED_BY(mu_)
  std::map<std::string, VersionsRecord> versions_;                      // GUARDED_BY(mu_)
  ShardAssignment assignment_;                                          // GUARDED_BY(mu_)
  int64_t assignment_revision_ = 0;                                     // GUARDED_BY(mu_)
  std::map<std::string, int64_t> versions_revisions_;                   // GUARDED_BY(mu_)
  std::function<void()> on_refresh_;                                    // GUARDED_BY(mu_)
  uint64_t local_changes_ = 0;  // GUARDED_BY(mu_): catalog changes made here, for Refresh
  Status etcd_;                 // GUARDED_BY(mu_)
  bool stopping_ = false;       // GUARDED_BY(mu_)
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace quiver::cluster
