// Service: the one set of handlers behind both front ends. A Call goes in, a Reply comes out;
// no sockets, so it is tested directly. Applies the request limits that do not depend on the
// encoding (k, items and ids per request) and routes to the serving engine of a DataRoot.
//
// Thread-safety: Handle may be called concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "cluster/node.h"
#include "engine/data_root.h"
#include "net/exports.h"
#include "net/router.h"
#include "net/schema/calls.h"

namespace quiver::net {

struct Limits {
  size_t max_body_bytes = size_t{64} << 20;  // HTTP body and binary frame
  uint32_t max_k = 10000;
  size_t max_items_per_request = 100000;  // items, users, events or ids
  size_t max_json_depth = 32;
  size_t max_batch = 1000;  // searches in one batch
  // Cluster mode: the longest a search waits for its min_seq to be applied on this node.
  std::chrono::milliseconds max_seq_wait{10000};
};

class Service {
 public:
  // `node`: cluster mode (docs/cluster.md): item, user and event writes go to the write log
  // through it, and collections created or dropped here are followed or left. nullptr: the
  // single-process server.
  // `router` (cluster mode with etcd): searches of collections whose shards this node does not
  // all host fan out to their replicas (net/router.h).
  Service(engine::DataRoot& root, Limits limits, cluster::Node* node = nullptr,
          Router* router = nullptr)
      : root_(root), limits_(limits), node_(node), router_(router) {}

  Reply Handle(const Call& call);
  // Why this server should not be sent traffic now ("" if it should): the data root is
  // loading, writes are refused, or (cluster mode) a collection's log cannot be followed. Fixed
  // phrases: a probe without an API key reveals no data.
  std::string NotReady() const;
  const Limits& limits() const { return limits_; }
  engine::DataRoot& root() { return root_; }

 private:
  Status CheckLimits(const Call& call) const;
  // Handle, once a read names the engine collection it reads (cluster versions resolved).
  Reply Run(const Call& call);
  // A read naming a version ("movies@v2", "movies@initial"): routed if a search, else run here
  // on that version's engine collection.
  Reply HandlePinned(Call pinned);
  // A search answered from this node's data (a router's sub-request included).
  Reply SearchHere(const engine::Engine& e, const SearchCall& c);
  // Which items an export holds (nullptr: all), or why it cannot be made here.
  Result<std::function<bool(const ItemRecord&)>> ExportFilter(const engine::Engine& e,
                                                              const ExportCall& c) const;
  // Cluster collection versions (docs/cluster.md, "Bulk builds and versions").
  Reply PublishVersion(const ReloadCall& c);
  Reply CollectionVersions(const std::string& collection);

  engine::DataRoot& root_;
  const Limits limits_;
  cluster::Node* const node_;
  Router* const router_;
  Exports exports_;  // copies of collections written for peers (cluster mode's bootstrap)
};

}  // namespace quiver::net
