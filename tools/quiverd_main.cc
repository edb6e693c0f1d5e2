// quiverd: the Quiver server. Serves the data root given by --data over REST (HTTP/JSON) and the
// binary protocol, on 127.0.0.1 unless told otherwise. Options come from flags or a config file
// (--config FILE, INI/TOML keys named like the flags); API keys also from QUIVER_READ_WRITE_KEY
// and QUIVER_READ_ONLY_KEY. SIGTERM or SIGINT: stop accepting, finish requests in flight,
// snapshot every collection, exit. docs/operations.md describes every option.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "base/log.h"
#include "base/main.h"
#include "base/parallelism.h"
#include "base/version.h"
#include "base/work_pool.h"
#include "client/client.h"
#include "cluster/membership.h"
#include "cluster/node.h"
#include "engine/data_root.h"
#include "engine/schema.h"
#include "net/router.h"
#include "net/server.h"
#include "plugins/registry.h"

namespace {

// --background-cpus: auto, all or a CPU list (at least one CPU of it usable by this process).
quiver::Result<std::vector<int>> BackgroundCpus(const std::string& flag) {
  using namespace quiver;
  const std::vector<int> usable = ThreadCpus();
  if (flag == "all") return std::vector<int>{};
  if (flag == "auto") {
    if (usable.size() < 2) return std::vector<int>{};  // one CPU: nothing to keep apart
    return std::vector<int>(usable.begin() + 1, usable.end());
  }
  QV_ASSIGN_OR_RETURN(std::vector<int> cpus, ParseCpuList(flag));
  std::vector<int> kept;
  std::set_intersection(cpus.begin(), cpus.end(), usable.begin(), usable.end(),
                        std::back_inserter(kept));
  if (kept.empty()) {
    return InvalidArgumentError("none of the CPUs " + flag +
                                " is one this process may run on (see taskset -p " +
                                std::to_string(::getpid()) + ")");
  }
  return kept;
}

// The non-empty parts of a comma-separated flag value.
std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out;
  for (size_t start = 0; start <= text.size();) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// A peer's binary endpoint, for exports (cluster mode's bootstrap).
quiver::client::ClientOptions PeerOptions(const std::string& host, uint16_t port,
                                          const std::string& key) {
  quiver::client::ClientOptions co;
  co.host = host;
  co.port = port;
  co.api_key = key;
  co.pool_size = 1;
  co.max_frame_bytes = size_t{64} << 20;
  return co;
}

// Cluster mode's bootstrap (cluster::NodeOptions::fetch): the first peer that has the
// collection (the shards asked for) gives its copy; kNotFound if none has it, else the last
// peer's error.
quiver::Status FetchFromPeers(const std::vector<quiver::client::ClientOptions>& peers,
                              const std::string& collection, const std::vector<uint32_t>& shards,
                              const std::string& dir) {
  using namespace quiver;
  Status last = NotFoundError("no peer has collection '" + collection + "'");
  for (const client::ClientOptions& peer : peers) {
    const std::string where = peer.host + ":" + std::to_string(peer.port);
    auto c = client::Client::Connect(peer);
    Status s = c.ok()
                   ? (*c)->FetchExport(collection, dir, std::chrono::minutes(30), shards).status()
                   : c.status();
    if (s.ok()) {
      log::Info("copy_fetched", {{"collection", collection}, {"from", where}});
      return s;
    }
    if (s.code() == StatusCode::kNotFound) continue;
    last = Status(s.code(), where + ": " + std::string(s.message()));
  }
  return last;
}

int Main(int argc, char** argv) {
  using namespace quiver;
  CLI::App app{"quiverd: the Quiver server"};
  std::string data;
  std::string durability = "sync";
  bool snapshot_on_exit = true;
  int grace_ms = 10000;
  net::ServerOptions o;
  uint64_t idle_ms = 60000, read_ms = 30000, request_ms = 30000;
  app.set_config("--config", "", "read options from an INI/TOML file");
  // A misspelt key (read_write_key for read-write-key) must stop start-up, not leave the
  // server without the setting.
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.add_option("--data", data, "data root directory (created if missing)")->required();
  app.add_option("--host", o.host, "listen address")->capture_default_str();
  app.add_option("--http-port", o.http_port, "REST port (0: any free port)")->capture_default_str();
  app.add_option("--binary-port", o.binary_port, "binary protocol port (0: any free port)")
      ->capture_default_str();
  app.add_option(
      "--binary-socket", o.binary_unix_path,
      "also serve the binary protocol on this Unix-domain socket path (same-host services)");
  app.add_option("--threads", o.threads, "I/O and handler threads (0: one per core)")
      ->capture_default_str();
  std::string write_priority = "low", maintenance_priority = "low";
  const auto priority_names = CLI::IsMember({"normal", "low", "idle"});
  app.add_option("--write-threads", o.write_threads,
                 "threads running upserts, deletes, users, events")
      ->capture_default_str();
  app.add_option("--max-queued-writes", o.max_queued_writes,
                 "writes waiting for a thread beyond which more are refused (UNAVAILABLE)")
      ->capture_default_str();
  app.add_option("--write-priority", write_priority,
                 "CPU priority of the write threads: normal, low (nice 10) or idle (SCHED_IDLE)")
      ->check(priority_names)
      ->capture_default_str();
  app.add_option("--maintenance-threads", o.maintenance_threads,
                 "threads running snapshots, plugin runs, reloads, collection changes (0: half "
                 "the cores)")
      ->capture_default_str();
  app.add_option("--max-queued-maintenance", o.max_queued_maintenance,
                 "maintenance calls waiting beyond which more are refused (UNAVAILABLE)")
      ->capture_default_str();
  app.add_option("--maintenance-priority", maintenance_priority,
                 "CPU priority of the maintenance threads and periodic snapshots: normal, low or "
                 "idle")
      ->check(priority_names)
      ->capture_default_str();
  app.add_option(
         "--background-parallelism", o.background_parallelism,
         "threads one write or maintenance call may use (0: one per background CPU, at most "
         "every core but one)")
      ->capture_default_str();
  std::string log_servers, node_id;
  int log_replicas = 1;
  int64_t log_max_bytes = 0, log_max_age_s = 0;
  app.add_option("--log", log_servers,
                 "cluster mode: the write log's NATS servers, nats://HOST:PORT[,nats://...] "
                 "(docs/cluster.md); without it quiverd is a single process");
  app.add_option("--node-id", node_id,
                 "cluster mode: this node's name (letters, digits, - and _; default: the host "
                 "name)");
  app.add_option("--log-replicas", log_replicas,
                 "cluster mode: copies JetStream keeps of a stream this node creates (1 for one "
                 "NATS server, 3 in production)")
      ->capture_default_str();
  app.add_option("--log-max-bytes", log_max_bytes,
                 "cluster mode: a stream this node creates keeps at most this many bytes (0: no "
                 "limit)")
      ->capture_default_str();
  std::string peers, peer_key, hosted_shards;
  app.add_option("--shards", hosted_shards,
                 "cluster mode: the shards of every collection this node hosts, as a CPU list is "
                 "written (0,2-3); default: all (docs/cluster.md)");
  app.add_option("--peers", peers,
                 "cluster mode: other nodes' binary endpoints, HOST:PORT[,HOST:PORT...]: a "
                 "collection new here, or one whose log was trimmed past this node, starts from a "
                 "copy fetched from the first that has it (docs/cluster.md, \"Bootstrap\")");
  app.add_option("--peer-key", peer_key,
                 "cluster mode: the API key the peers take for exports (default: "
                 "--read-write-key)");
  std::string etcd, cluster_name = "default", advertise;
  int lease_ttl_s = 5;
  uint64_t route_max_lag = 1024;
  app.add_option("--cluster", etcd,
                 "cluster mode: etcd's client URLs, etcd://HOST:PORT[,etcd://...]: this node "
                 "joins the cluster's membership there, and searches it cannot answer alone fan "
                 "out to the shards' replicas (docs/cluster.md); needs --log");
  app.add_option("--cluster-name", cluster_name,
                 "cluster mode: the cluster's name; its metadata is under /quiver/<name>/ in etcd")
      ->capture_default_str();
  app.add_option("--advertise", advertise,
                 "cluster mode: the host other nodes reach this node's binary port at (default: "
                 "--host)");
  app.add_option("--lease-ttl-s", lease_ttl_s,
                 "cluster mode: a node that stops keeping its etcd lease alive leaves the "
                 "cluster after this long")
      ->capture_default_str();
  app.add_option("--route-max-lag", route_max_lag,
                 "cluster mode: a replica more than this many log messages behind its shard's "
                 "most advanced replica is out of rotation (and a new collection version "
                 "becomes active once a replica of each shard is this close)")
      ->capture_default_str();
  uint64_t log_max_lag = 1024;
  app.add_option(
         "--log-max-lag", log_max_lag,
         "cluster mode: writes through this node wait (then UNAVAILABLE, retry later) while "
         "it has applied a collection's log more than this many writes behind (0: no bound)")
      ->capture_default_str();
  app.add_option("--log-max-age-s", log_max_age_s,
                 "cluster mode: a stream this node creates drops messages older than this (0: "
                 "never)")
      ->capture_default_str();
  std::string background_cpus = "auto";
  app.add_option("--background-cpus", background_cpus,
                 "CPUs for writes, flushes, compactions and periodic snapshots, as taskset -c "
                 "lists them (0-3,6); auto: every CPU but the first, kept for searches; all: any")
      ->capture_default_str();
  app.add_option("--read-write-key", o.read_write_key, "API key allowed to call everything");
  app.add_option("--read-only-key", o.read_only_key, "API key allowed to call only reads");
  app.add_option("--durability", durability, "sync (fsync the WAL before acknowledging) or nosync")
      ->check(CLI::IsMember({"sync", "nosync"}))
      ->capture_default_str();
  app.add_option("--max-body-bytes", o.limits.max_body_bytes, "largest HTTP body or binary frame")
      ->capture_default_str();
  app.add_option("--max-k", o.limits.max_k, "largest k of a search")->capture_default_str();
  app.add_option("--max-items", o.limits.max_items_per_request,
                 "items, users, events or ids per request")
      ->capture_default_str();
  app.add_option("--max-batch", o.limits.max_batch, "searches in one batch search")
      ->capture_default_str();
  app.add_option("--max-json-depth", o.limits.max_json_depth, "deepest JSON nesting accepted")
      ->capture_default_str();
  uint64_t max_seq_wait_ms = 10000;
  app.add_option("--max-seq-wait-ms", max_seq_wait_ms,
                 "cluster mode: the longest a search waits for its min_seq to be applied here")
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", idle_ms, "close a connection idle this long")
      ->capture_default_str();
  app.add_option("--read-timeout-ms", read_ms, "time allowed to write a response")
      ->capture_default_str();
  app.add_option("--request-timeout-ms", request_ms, "refuse a request that waited this long")
      ->capture_default_str();
  app.add_option("--shutdown-grace-ms", grace_ms,
                 "time requests in flight get to finish on SIGTERM")
      ->capture_default_str();
  app.add_flag("!--no-snapshot-on-exit", snapshot_on_exit, "skip the index snapshots at shutdown");
  bool accept_wal_loss = false;
  uint64_t min_free_disk_mb = 64;
  bool simulate_power_loss = false;
  app.add_flag("--simulate-power-loss", simulate_power_loss,
               "crash tests only: keep data RocksDB appends in memory until it is synced, so "
               "that a kill -9 loses what a power cut would");
  app.add_option("--min-free-disk-mb", min_free_disk_mb,
                 "free disk kept under the data root: writes that find less are refused until "
                 "there is more; a start with less opens read-only")
      ->capture_default_str();
  app.add_flag("--accept-wal-loss", accept_wal_loss,
               "open a damaged write-ahead log up to the damage, dropping the writes after it "
               "(and the index snapshots that covered them); says what was lost");
  std::string plugins_dir;
  uint64_t snapshot_interval_s = 300;
  app.add_option("--snapshot-interval-s", snapshot_interval_s,
                 "snapshot every collection this often (shorter restarts; compacts indexes full of "
                 "replaced "
                 "items); 0: only on request and at exit")
      ->capture_default_str();
  app.add_option("--plugins-dir", plugins_dir,
                 "load the plugin shared objects (*.so) in this directory");
  std::string log_format = "text", log_level = "info";
  app.add_option("--log-format", log_format,
                 "the log on stderr: text (one line per event, key=value) or json (one object "
                 "per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warn, error or off")
      ->check(CLI::IsMember({"debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  o.access_log = true;
  app.add_option("--access-log", o.access_log,
                 "log every request (protocol, method and path or operation, status, duration, "
                 "bytes) at level info")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  {
    log::Format format = log::Format::kText;
    log::Level level = log::Level::kInfo;
    (void)log::ParseFormat(log_format, &format);  // checked by CLI11 above
    (void)log::ParseLevel(log_level, &level);
    log::Configure(format, level);
  }
  if (o.read_write_key.empty()) {
    if (const char* k = std::getenv("QUIVER_READ_WRITE_KEY")) o.read_write_key = k;
  }
  if (o.read_only_key.empty()) {
    if (const char* k = std::getenv("QUIVER_READ_ONLY_KEY")) o.read_only_key = k;
  }
  auto priority = [](const std::string& name) {
    return name == "normal" ? CpuPriority::kNormal
           : name == "low"  ? CpuPriority::kLow
                            : CpuPriority::kIdle;
  };
  if (auto cpus = BackgroundCpus(background_cpus); cpus.ok()) {
    o.background_cpus = *std::move(cpus);
  } else {
    std::fprintf(stderr, "quiverd: --background-cpus: %s\n", cpus.status().ToString().c_str());
    return 1;
  }
  o.write_priority = priority(write_priority);
  o.maintenance_priority = priority(maintenance_priority);
  o.idle_timeout = std::chrono::milliseconds(idle_ms);
  o.limits.max_seq_wait = std::chrono::milliseconds(max_seq_wait_ms);
  o.read_timeout = std::chrono::milliseconds(read_ms);
  o.request_timeout = std::chrono::milliseconds(request_ms);

  // Signals are taken by sigwait below, not by asynchronous handlers.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (!plugins_dir.empty()) {
    if (Status s = plugins::Registry::Global().LoadDirectory(plugins_dir); !s.ok()) {
      log::Error("start_failed", {{"why", s.ToString()}});
      return 1;
    }
  }
  engine::EngineOptions eo;
  eo.store.accept_wal_loss = accept_wal_loss;
  eo.store.min_free_bytes = min_free_disk_mb << 20;
  eo.store.background_cpus = o.background_cpus;
  eo.store.simulate_power_loss = simulate_power_loss;
  eo.store.durability =
      durability == "sync" ? storage::Durability::kSync : storage::Durability::kNoSync;
  // The single process starts its listeners before it loads the data root, so that /livez
  // and /readyz answer during a long load; cluster mode's node needs the engine to start.
  const bool load_later = log_servers.empty();
  auto root = load_later ? engine::DataRoot::Prepare(data, eo) : engine::DataRoot::Open(data, eo);
  if (!root.ok()) {
    log::Error("start_failed", {{"why", root.status().ToString()}});
    return 1;
  }
  std::unique_ptr<cluster::Node> node;
  std::atomic<net::Server*> serving{nullptr};  // set once the server is up
  std::unique_ptr<cluster::Membership> membership;
  std::unique_ptr<net::Router> router;
  if (!etcd.empty() && log_servers.empty()) {
    std::fprintf(stderr, "quiverd: --cluster needs --log (the cluster's write log)\n");
    return 2;
  }
  if (!log_servers.empty()) {
    cluster::NodeOptions no;
    no.log.servers = SplitCommas(log_servers);
    if (!hosted_shards.empty()) {
      auto parsed = ParseNumberList(hosted_shards, int(engine::kMaxShards), "shard");
      if (!parsed.ok()) {
        std::fprintf(stderr, "quiverd: --shards: %s\n", parsed.status().ToString().c_str());
        return 2;
      }
      for (int shard : *parsed) no.shards.push_back(uint32_t(shard));
    }
    no.log.replicas = log_replicas;
    no.max_lag = log_max_lag;
    no.log.max_bytes = log_max_bytes;
    no.log.max_age = std::chrono::seconds(log_max_age_s);
    no.node_id = node_id;
    if (no.node_id.empty()) {
      char host[256] = {};
      if (::gethostname(host, sizeof(host) - 1) == 0) no.node_id = host;
      std::replace(no.node_id.begin(), no.node_id.end(), '.', '-');
    }
    std::vector<client::ClientOptions> peer_options;
    for (const std::string& peer : SplitCommas(peers)) {
      const size_t colon = peer.rfind(':');
      char* end = nullptr;
      const unsigned long port =
          colon == std::string::npos ? 0 : std::strtoul(peer.c_str() + colon + 1, &end, 10);
      if (colon == std::string::npos || colon == 0 || port == 0 || port > 65535 || *end != 0) {
        std::fprintf(stderr, "quiverd: --peers: '%s' is not HOST:PORT\n", peer.c_str());
        return 2;
      }
      peer_options.push_back(PeerOptions(peer.substr(0, colon), uint16_t(port),
                                         peer_key.empty() ? o.read_write_key : peer_key));
    }
    if (!etcd.empty()) {
      if (lease_ttl_s < 1 || lease_ttl_s > 3600) {
        std::fprintf(stderr, "quiverd: --lease-ttl-s must be 1 to 3600\n");
        return 2;
      }
      cluster::MembershipOptions mo;
      for (const std::string& e : SplitCommas(etcd)) {
        if (e.rfind("etcd://", 0) != 0 || e.size() == 7) {
          std::fprintf(stderr, "quiverd: --cluster: '%s' is not etcd://HOST:PORT\n", e.c_str());
          return 2;
        }
        mo.etcd.endpoints.push_back("http://" + e.substr(7));
      }
      mo.prefix = "/quiver/" + cluster_name;
      mo.node_id = no.node_id;
      mo.shards = no.shards;
      mo.ttl = std::chrono::seconds(lease_ttl_s);
      mo.flip_max_lag = route_max_lag;
      auto started = cluster::Membership::Start(mo, [&node] {
        cluster::MemberState state;
        if (node == nullptr) return state;
        for (const cluster::FollowerState& f : node->Followers()) {
          state.applied[f.collection] = f.applied;
          if (!f.blocked.empty()) state.blocked.push_back(f.collection);
        }
        return state;
      });
      if (!started.ok()) {
        std::fprintf(stderr, "quiverd: --cluster: %s\n", started.status().ToString().c_str());
        return 1;
      }
      membership = std::move(*started);
    }
    if (membership != nullptr) {
      // Writes are checked against the collection's active version (cluster/versions.h).
      no.serving = [m = membership.get()](const std::string& collection) {
        return m->ServingName(collection);
      };
      // A plugin run's item searches cover every shard: they go through this node's service,
      // which routes them (an i2i list holds neighbors from the whole collection).
      no.item_search = [&serving, max_k = o.limits.max_k](
                           const std::string& collection, std::span<const float> vector, size_t k,
                           const Filter* filter) -> Result<std::vector<Hit>> {
        net::Server* server = serving.load();
        if (server == nullptr) return UnavailableError("plugin search: the server is not up yet");
        net::SearchCall c;
        c.collection = collection;
        c.query.vectors = {std::vector<float>(vector.begin(), vector.end())};
        c.query.k = uint32_t(std::min<size_t>(k, max_k));
        if (filter != nullptr) c.query.filter = *filter;
        net::Reply r = server->Handle(c);
        // An item whose vector is all zeros (ip, cosine) has no neighbors to speak of.
        if (r.status.code() == StatusCode::kInvalidArgument &&
            std::all_of(vector.begin(), vector.end(), [](float x) { return x == 0.0f; })) {
          return std::vector<Hit>{};
        }
        // Retried by the follower (the run is applied again) rather than refused for good.
        if (!r.status.ok()) return UnavailableError("plugin search: " + r.status.ToString());
        return std::move(std::get<net::SearchResult>(r.body).hits);
      };
    }
    if (!peer_options.empty() || membership != nullptr) {
      // Bootstrap copies come from the members hosting the shards (etcd), then from --peers.
      no.fetch = [peer_options, m = membership.get(), self = no.node_id,
                  key = peer_key.empty() ? o.read_write_key : peer_key](
                     const std::string& collection, const std::vector<uint32_t>& shards,
                     const std::string& dir) {
        std::vector<client::ClientOptions> from;
        if (m != nullptr) {
          for (const cluster::MemberInfo& member : m->Members()) {
            const bool hosts = std::all_of(shards.begin(), shards.end(),
                                           [&](uint32_t s) { return member.Hosts(s); });
            if (member.id == self || !hosts || member.port == 0) continue;
            from.push_back(PeerOptions(member.host, member.port, key));
          }
        }
        from.insert(from.end(), peer_options.begin(), peer_options.end());
        return FetchFromPeers(from, collection, shards, dir);
      };
    }
    auto started = cluster::Node::Start(**root, no);
    if (!started.ok()) {
      std::fprintf(stderr, "quiverd: cluster mode: %s\n", started.status().ToString().c_str());
      return 1;
    }
    node = std::move(*started);
    o.node = node.get();
    std::printf("quiverd: cluster mode: node %s, write log on %s\n", node->node_id().c_str(),
                log_servers.c_str());
    if (membership != nullptr) {
      net::RouterOptions ro;
      ro.max_lag = route_max_lag;
      ro.deadline = std::chrono::milliseconds(request_ms);
      ro.api_key = peer_key.empty() ? o.read_write_key : peer_key;
      router = std::make_unique<net::Router>(*membership, *node, ro);
      o.router = router.get();
    }
  }
  net::Server server(**root, o);
  if (Status s = server.Start(); !s.ok()) {
    log::Error("start_failed", {{"why", s.ToString()}});
    return 1;
  }
  if (load_later) {
    std::printf("quiverd: loading version %s of %s (GET /livez and /readyz answer meanwhile)\n",
                (*root)->current_version().c_str(), data.c_str());
    std::fflush(stdout);
    if (Status s = (*root)->Load(); !s.ok()) {
      log::Error("start_failed", {{"why", s.ToString()}});
      server.Stop(std::chrono::milliseconds(0));
      return 1;
    }
  }
  serving = &server;
  std::printf("quiverd %s serving %s (version %s): REST http://%s:%u, binary %s:%u%s\n",
              std::string(Version()).c_str(), data.c_str(), (*root)->current_version().c_str(),
              o.host.c_str(), server.http_port(), o.host.c_str(), server.binary_port(),
              o.read_write_key.empty() && o.read_only_key.empty() ? " (no API key)"
                                                                  : " (API keys required)");
  if (!o.binary_unix_path.empty())
    std::printf("quiverd: binary protocol also on unix:%s\n", o.binary_unix_path.c_str());
  log::Info("started", {{"quiverd", Version()},
                        {"data", data},
                        {"version", (*root)->current_version()},
                        {"rest_port", server.http_port()},
                        {"binary_port", server.binary_port()}});
  if (membership != nullptr) {
    // The cluster's collections: created, followed and dropped here as etcd says.
    struct Said {
      std::mutex mu;
      std::string last;  // the last error told (told again only when it changes)
    };
    auto reconcile = [&root, &node, m = membership.get(), said = std::make_shared<Said>()] {
      Status s = m->Reconcile(*(*root)->engine(), *node);
      std::lock_guard lock(said->mu);
      const std::string now = s.ok() ? "" : s.ToString();
      if (now != said->last && !now.empty()) log::Warn("collections_reconcile", {{"why", now}});
      said->last = now;
    };
    reconcile();
    membership->OnRefresh(reconcile);
    const std::string host = advertise.empty() ? o.host : advertise;
    if (Status s = membership->Register(host, server.binary_port()); !s.ok()) {
      // The refresh thread stores the key once etcd answers.
      log::Warn("cluster_register", {{"why", s.ToString()}, {"retrying", true}});
    }
    std::printf("quiverd: cluster '%s': node %s joined as %s:%u\n", cluster_name.c_str(),
                membership->node_id().c_str(), host.c_str(), server.binary_port());
  }
  std::fflush(stdout);
  // Periodic snapshots on their own thread, stopped before the server.
  std::mutex ticker_mu;
  std::condition_variable ticker_cv;
  bool stopping = false;
  std::thread ticker([&] {
    if (snapshot_interval_s == 0) return;
    // Background work, like the server's maintenance calls.
    SetThreadPriority(o.maintenance_priority);
    if (!o.background_cpus.empty()) SetThreadCpus(o.background_cpus);
    SetParallelismBudget(net::BackgroundParallelism(o));
    std::unique_lock lock(ticker_mu);
    while (!ticker_cv.wait_for(lock, std::chrono::seconds(snapshot_interval_s),
                               [&] { return stopping; })) {
      lock.unlock();
      if (Status s = (*root)->engine()->SnapshotAll(); !s.ok()) {
        log::Error("periodic_snapshot_failed", {{"why", s.ToString()}});
      }
      lock.lock();
    }
  });
  int sig = 0;
  sigwait(&signals, &sig);
  {
    std::lock_guard lock(ticker_mu);
    stopping = true;
  }
  ticker_cv.notify_all();
  ticker.join();
  std::printf("quiverd: %s, finishing requests in flight\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  std::fflush(stdout);
  if (membership != nullptr) membership->Leave();  // first: routers stop sending here
  server.Stop(std::chrono::milliseconds(grace_ms));
  // The followers stop before the server goes (a plugin run's searches go through it).
  serving = nullptr;
  // Membership's refreshes reconcile into the node: they stop (its thread joined) before it.
  membership.reset();
  node.reset();
  if (snapshot_on_exit) {
    if (Status s = (*root)->engine()->SnapshotAll(); !s.ok()) {
      log::Error("exit_snapshot_failed", {{"why", s.ToString()}});
      return 1;
    }
  }
  std::printf("quiverd: stopped\n");
  log::Info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("quiverd", [&] { return Main(argc, argv); });
}
