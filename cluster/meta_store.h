// MetaStore: the cluster's metadata in etcd (docs/cluster.md), through etcd's v3 JSON gateway
// over HTTP (Debian's etcd-server 3.4: POST /v3/kv/range, /v3/kv/txn, /v3/lease/...). Keys and
// values are bytes; every change that depends on what was there is a compare-and-swap
// transaction on the key's revision, never a read-modify-write.
//
//   auto meta = cluster::MetaStore::Connect({.endpoints = {"http://127.0.0.1:2379"}});
//   auto lease = (*meta)->GrantLease(std::chrono::seconds(5));
//   (*meta)->Put("/quiver/c1/nodes/a", "127.0.0.1:7701", *lease);   // gone 5 s after a's death
//   bool mine = *(*meta)->Swap("/quiver/c1/version/movies", /*expected_mod_revision=*/0, "v2");
//
// A request goes to the first endpoint that answers (the others are tried in order when one
// does not); an etcd that none answers is kUnavailable.
//
// Thread-safety: every method may be called concurrently (one connection per request).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/status.h"

namespace quiver::cluster {

struct MetaStoreOptions {
  std::vector<std::string> endpoints;       // http://HOST:PORT (etcd's client URLs)
  std::chrono::milliseconds timeout{5000};  // per request and endpoint
};

struct KeyValue {
  std::string key, value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;  // the revision of its last change: what Swap compares
  int64_t lease = 0;
  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

class MetaStore {
 public:
  static Result<std::unique_ptr<MetaStore>> Connect(const MetaStoreOptions& options);

  Result<std::optional<KeyValue>> Get(std::string_view key);
  // Every key starting with `prefix`, in key order; `revision`: the store's revision they are
  // as of.
  Result<std::vector<KeyValue>> List(std::string_view prefix, int64_t* revision = nullptr);
  // Stores the value (attached to `lease` if not 0: removed when the lease expires); returns the
  // store's new revision.
  Result<int64_t> Put(std::string_view key, std::string_view value, int64_t lease = 0);
  // Stores the value only if the key's mod_revision is `expected` (0: only if the key does not
  // exist); false (nothing stored) otherwise.
  Result<bool> Swap(std::string_view key, int64_t expected, std::string_view value,
                    int64_t lease = 0);
  // Removes the key only if its mod_revision is `expected`; false otherwise.
  Result<bool> SwapDelete(std::string_view key, int64_t expected);
  Status Delete(std::string_view key);

  // A lease of `ttl` (whole seconds, at least 1): its keys are removed when it is not kept alive
  // for that long. KeepAlive returns the TTL renewed, or kNotFound once the lease has expired.
  Result<int64_t> GrantLease(std::chrono::seconds ttl);
  Result<int64_t> KeepAlive(int64_t lease);
  Status Revoke(int64_t lease);

 private:
  explicit MetaStore(MetaStoreOptions options) : options_(std::move(options)) {}
  // POSTs a JSON body to etcd's gateway; the answer's body.
  Result<std::string> Call(std::string_view path, const std::string& body);

  const MetaStoreOptions options_;
};

}  // namespace quiver::cluster
