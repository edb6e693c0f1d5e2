// quiver::client::Client: the C++ client library for services, over the binary protocol.
//
//   auto client = quiver::client::Client::Connect({.host = "127.0.0.1", .port = 7701});
//   auto hits = (*client)->Search("movies", user_vector, {.k = 200});
//
// Every call returns a Status or Result: a server error comes back with its code and message;
// a transport failure is kUnavailable, a missed deadline kDeadlineExceeded. Calls that are safe
// to repeat (net::IsIdempotent: reads, upserts, deletes, snapshots) are retried with exponential
// backoff and jitter until they succeed, fail with a non-transient error, or the deadline
// passes; other calls are retried only when the request was never sent.
//
// Thread-safety: a Client may be shared by any number of threads. It keeps up to pool_size
// idle connections and opens more when all are busy. Async calls run on pool_size worker
// threads. Depends only on base/ and the wire schema (net/schema).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/model.h"
#include "base/result.h"
#include "base/status.h"
#include "net/schema/calls.h"

namespace quiver::client {

struct ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7701;
  std::string unix_path;  // if set, the server's Unix-domain socket instead of host:port
  std::string api_key;
  size_t pool_size = 4;  // idle connections kept; async workers
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds deadline{10000};      // default per call, retries included
  int max_attempts = 4;                           // first try + retries
  std::chrono::milliseconds initial_backoff{10};  // doubled per retry, capped at 1 s
  size_t max_frame_bytes = size_t{256} << 20;     // largest response accepted
};

struct SearchOptions {
  uint32_t k = 10;
  uint32_t ef = 0, nprobe = 0, refine = 0;  // 0: the collection's default
};

class Client {
 public:
  // Connects once to check the address (kUnavailable if nothing answers).
  static Result<std::unique_ptr<Client>> Connect(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Any call; deadline 0 means options.deadline.
  net::Reply Call(const net::Call& call,
                  std::chrono::milliseconds deadline = std::chrono::milliseconds(0));
  // Many calls pipelined on one connection: every frame goes out in one write, the answers come
  // back as the server finishes them (matched by request id); replies[i] answers calls[i]. For
  // batches (one service request retrieving for many users): one round trip's system calls and
  // wake-ups instead of one per call. After a transport failure the calls still unanswered are
  // retried one by one when idempotent; the others get the failure (their outcome is unknown).
  std::vector<net::Reply> CallMany(
      std::span<const net::Call> calls,
      std::chrono::milliseconds deadline = std::chrono::milliseconds(0));
  std::future<net::Reply> CallAsync(
      net::Call call, std::chrono::milliseconds deadline = std::chrono::milliseconds(0));
  // CallMany in two halves: Start writes every frame now, on the calling thread; Wait reads
  // the answers (and retries as CallMany does). A caller that has other work meanwhile (a router
  // searching its own shard while a replica searches another) pays no thread hand-off either
  // way. A Batch dropped unanswered closes its connection.
  class Batch {
   public:
    Batch(Batch&&) noexcept;
    Batch& operator=(Batch&&) noexcept;
    ~Batch();
    // Once: replies[i] answers calls[i].
    std::vector<net::Reply> Wait();

   private:
    friend class Client;
    Batch();
    struct Rep;
    std::unique_ptr<Rep> rep_;
  };
  Batch Start(std::vector<net::Call> calls,
              std::chrono::milliseconds deadline = std::chrono::milliseconds(0));

  Result<CollectionInfo> CreateCollection(const CollectionSchema& schema);
  Status DropCollection(const std::string& name);
  Result<std::vector<CollectionInfo>> ListCollections();
  Result<CollectionInfo> DescribeCollection(const std::string& name);
  Result<WriteResult> Upsert(const std::string& collection, std::vector<ItemRecord> items);
  Result<WriteResult> Delete(const std::string& collection, std::vector<uint64_t> ids);
  Result<std::vector<std::optional<ItemRecord>>> Get(const std::string& collection,
                                                     std::vector<uint64_t> ids);
  // User and event writes: `changed` counts the records; in cluster mode op_seq is the write's
  // log sequence (for a search's min_seq), on a single process 0 (they are not in the op log).
  Result<WriteResult> PutUsers(const std::string& collection, std::vector<UserRecord> users);
  Result<std::optional<UserRecord>> GetUser(const std::string& collection, uint64_t id);
  Result<WriteResult> AddEvents(const std::string& collection, std::vector<Event> events);
  Result<std::vector<Hit>> Search(const std::string& collection, std::span<const float> vector,
                                  const SearchOptions& options = {});
  // Multi-vector and quota searches: the whole SearchCall (docs/queries.md).
  Result<net::SearchResult> Query(net::SearchCall call);
  // Many searches in one request, answered in order, each with its own status (one failing
  // does not fail the others). CallMany pipelines the same searches as separate calls.
  Result<std::vector<net::SearchOutcome>> SearchBatch(std::vector<net::SearchCall> searches);
  // How many items the collection holds, or pass `filter`.
  Result<uint64_t> Count(const std::string& collection, std::optional<Filter> filter = {});
  // One page of items in id order from call.cursor; the result's `next` is the next page's
  // cursor (docs/api.md, "Count and scroll").
  Result<net::ScrollResult> Scroll(net::ScrollCall call);
  Status Snapshot(const std::string& collection = "");
  Status Reload(const std::string& version);
  Status Rollback();
  // Cluster mode (docs/cluster.md, "Bulk builds and versions"): publish the bulk build at
  // `path` (`quiver build --shards`) as `version` of the collection, its data holding the write
  // log up to `after_seq` (unset: the log's head now); roll the collection back to its previous
  // version; list its versions and which members have loaded them.
  Status PublishVersion(const std::string& collection, const std::string& version,
                        const std::string& path, std::optional<uint64_t> after_seq = std::nullopt);
  Status RollbackCollection(const std::string& collection);
  Result<VersionsInfo> CollectionVersions(const std::string& collection);
  // Cluster mode with etcd (docs/cluster.md, "Shard assignment"): the members and which shards
  // routers send each; set the nodes a shard is sent to (empty: every member hosting it).
  Result<net::ClusterInfo> Cluster();
  Status AssignShard(uint32_t shard, std::vector<std::string> nodes);
  Result<VersionsInfo> ListVersions();
  Result<net::HealthResult> Health();
  // Plugins and neighbor lists (docs/plugins.md). A run can take long: give it a deadline.
  Result<net::PluginRunResult> RunPlugin(
      const std::string& collection, const std::string& plugin, const std::string& config_json = "",
      bool incremental = false, std::chrono::milliseconds deadline = std::chrono::milliseconds(0));
  Result<std::optional<std::vector<Hit>>> GetList(const std::string& collection,
                                                  const std::string& kind, uint64_t key);
  Result<std::vector<ListInfo>> ListLists(const std::string& collection);
  Result<std::vector<std::string>> ListPlugins();
  // Cluster mode's bootstrap (docs/cluster.md): has the server write a copy of the collection
  // (net::ExportCall; `deadline` bounds that step, which can take long) and copies its files
  // into `dir` (created; it must not exist) piece by piece, checking each file's size and
  // CRC-32C (kDataLoss if one differs), then ends the export on the server. On failure `dir`
  // is removed. The copy is what engine::Engine::ImportCollection takes.
  // `shards`: a copy of those shards only (net::ExportCall); empty: the whole collection.
  Result<net::ExportResult> FetchExport(
      const std::string& collection, const std::string& dir,
      std::chrono::milliseconds deadline = std::chrono::milliseconds(0),
      std::vector<uint32_t> shards = {});

 private:
  explicit Client(ClientOptions options);
  class Connection;
  // One attempt on one connection; `sent` says whether the request left this process,
  // `unreadable` whether the server answered that it could not read the frame (final).
  net::Reply Attempt(const net::Call& call, std::chrono::steady_clock::time_point deadline,
                     bool* sent, bool* unreadable);
  std::unique_ptr<Connection> Take(std::chrono::steady_clock::time_point deadline, Status* error);
  // Start over calls that outlive the batch.
  Batch StartView(std::span<const net::Call> calls, std::chrono::milliseconds deadline);
  void Give(std::unique_ptr<Connection> c);
  void Worker();

  const ClientOptions options_;
  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Connection>> idle_;  // GUARDED_BY(pool_mu_)
  std::atomic<uint64_t> next_id_{1};

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::function<void()>> queue_;  // GUARDED_BY(queue_mu_)
  bool stopping_ = false;                    // GUARDED_BY(queue_mu_)
  std::vector<std::thread> workers_;
};

}  // namespace quiver::client
