// Server: the REST (HTTP/1.1, keep-alive, JSON) and binary (length-prefixed FlatBuffers,
// pipelined) listeners over one Service. Boost.Asio with a pool of I/O threads; both front ends
// decode into Calls and share the handlers, the API-key check and the metrics.
//
// Isolation: each call runs where its class runs (net::ClassOf). Searches and other reads run
// on the I/O thread that read them, and so never queue behind anything but other reads. Item
// and user writes run on the write pool (they mostly wait for the WAL's fsync); collection and
// version changes, snapshots and plugin runs on the maintenance pool, whose threads (and the
// threads their work starts) run at a low CPU priority. Each pool's queue is bounded: a call
// that finds it full is refused with kUnavailable (retry later), the request timeout counts
// the time spent queued.
//
// Lifecycle: Start() binds both listeners (port 0 picks a free port; see http_port()) and runs
// the I/O threads; Stop(grace) stops accepting, lets requests in flight finish (up to `grace`),
// then closes every connection and joins the threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "base/work_pool.h"
#include "net/metrics.h"

namespace quiver::cluster {
class Node;
}
#include "net/service.h"

namespace quiver::net {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t http_port = 7700;    // 0: any free port
  uint16_t binary_port = 7701;  // 0: any free port
  // The binary protocol also on this Unix-domain socket (for services on the same host: no TCP
  // stack on either side). Empty: TCP only.
  std::string binary_unix_path;
  int threads = 0;  // I/O and handler threads; 0: one per core
  // API keys. With neither set, no key is needed. A read-write key may call everything, a
  // read-only key only calls that change nothing; compared in constant time.
  std::string read_write_key, read_only_key;
  Limits limits;
  // One log line per request (base/log.h: event "access" with the protocol, method and path or
  // operation, status, duration and bytes). Collection, version and plugin changes, snapshots
  // and failed writes are logged either way.
  bool access_log = false;
  std::chrono::milliseconds idle_timeout{60000};     // a connection with no request is closed
  std::chrono::milliseconds read_timeout{30000};     // reading one request
  std::chrono::milliseconds request_timeout{30000};  // a request that waited longer is refused
  size_t max_in_flight_per_connection = 64;          // binary: pipelined requests being handled
  int write_threads = 4;                             // upserts, deletes, users, events
  // The write threads' CPU priority: searches first, writes take the rest.
  CpuPriority write_priority = CpuPriority::kLow;
  size_t max_queued_writes = 1024;  // more waiting: refused (kUnavailable)
  // Create/drop, snapshots, reload/rollback, plugin runs; 0: half the cores (at least 1).
  int maintenance_threads = 0;
  size_t max_queued_maintenance = 64;
  // The maintenance threads' CPU priority. Not SCHED_IDLE by default: searches measured slower
  // with it (a thread that barely runs beside busy writers while holding something searches
  // also take), and on the background CPUs it has no search to give way to.
  CpuPriority maintenance_priority = CpuPriority::kLow;
  // Threads one write or maintenance call may spread its work over (index builds, plugins); 0:
  // every core but one, so that searches always find a free core.
  int background_parallelism = 0;
  // The CPUs the write and maintenance threads run on (and the threads they start); empty: any.
  // Keeping one CPU out of it (quiverd's default, which also puts the store's flushes and
  // compactions and the periodic snapshots there) leaves the I/O threads, where searches run, a
  // CPU that no other work competes for: priorities alone do not do it, as a woken search waits
  // for a running thread's kernel work or time slice to end.
  std::vector<int> background_cpus;
  // Cluster mode (docs/cluster.md): writes go to the write log through this node; nullptr: the
  // single-process server. Not owned; outlives the server.
  cluster::Node* node = nullptr;
  // Cluster mode with etcd: searches fan out to the shards' replicas through it (net/router.h).
  // Not owned; outlives the server.
  Router* router = nullptr;
};

class Server {
 public:
  Server(engine::DataRoot& root, ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  Status Start();
  void Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10000));

  uint16_t http_port() const { return http_port_; }
  // A call handled in this process (no API key, no metrics): what the service answers.
  Reply Handle(const Call& call);
  uint16_t binary_port() const { return binary_port_; }
  // Binary-protocol connections closed for being idle longer than options.idle_timeout (also
  // on /metrics as quiver_binary_idle_closed_total).
  uint64_t idle_closed() const;

  // Shared by the front ends (public for the session classes in server.cc).
  struct Context;

 private:
  std::unique_ptr<Context> ctx_;
  std::vector<std::thread> threads_;
  uint16_t http_port_ = 0, binary_port_ = 0;
};

// The threads one write or maintenance call may use (options.background_parallelism, or every
// core but one).
size_t BackgroundParallelism(const ServerOptions& options);

// Constant-time comparison of an offered key with the expected one.
bool KeyEquals(std::string_view offered, std::string_view expected);

}  // namespace quiver::net
