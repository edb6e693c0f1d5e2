// `quiver`: the command-line tool.
//   quiver version                      version, allocator and the SIMD level chosen at run time
//   quiver build --out DIR ...          bulk-build a collection into a version directory
//   quiver versions --root DIR          list a data root's versions and which one serves
//   quiver call METHOD PATH [BODY]      any REST call (docs/api.md), sent to a running quiverd over
//                                       the binary protocol through the client library
// `quiver <command> --help` lists a command's options; docs/storage.md ("Bulk builds") has
// examples.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "base/allocator.h"
#include "base/main.h"
#include "base/version.h"
#include "client/client.h"
#include "cluster/node.h"
#include "cluster/versions.h"
#include "engine/data_root.h"
#include "engine/engine.h"
#include "formats/bulk_input.h"
#include "index/simd/kernels.h"
#include "index/simd/simd_level.h"
#include "net/json_api.h"
#include "plugins/registry.h"

namespace {

namespace fs = std::filesystem;
using quiver::Status;
using namespace quiver::engine;
using namespace quiver::formats;

int PrintVersion() {
  using quiver::simd::SimdLevelName;
  std::printf("quiver %s\n", std::string(quiver::Version()).c_str());
  std::printf("allocator: %s\n", quiver::AllocatorName().c_str());
  std::printf("simd: %s (best supported: %s)\n",
              std::string(SimdLevelName(quiver::simd::GetKernels().level)).c_str(),
              std::string(SimdLevelName(quiver::simd::BestSupportedLevel())).c_str());
  return 0;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "quiver: %s\n", s.ToString().c_str());
  return 1;
}

struct BuildArgs {
  std::string out, name, vectors, attributes, users, metric = "l2", index = "hnsw";
  std::vector<std::string> plugins;  // NAME or NAME:{json config}
  std::string plugins_dir;
  uint32_t kmeans_clusters = 0;
  CollectionSchema schema;
};

void AddBuildOptions(CLI::App* cmd, BuildArgs* a) {
  IndexSpec& x = a->schema.index;
  cmd->add_option("--out", a->out, "version directory to create, or to add the collection to")
      ->required();
  cmd->add_option("--name", a->name, "collection name")->required();
  cmd->add_option("--vectors", a->vectors, "item vectors: .fvecs or .npy (float32)")->required();
  cmd->add_option(
      "--attributes", a->attributes,
      "item attributes: .csv or .jsonl (id, cluster, topics, category, tags, timestamp, payload)");
  cmd->add_option("--users", a->users,
                  "users with vectors and histories: .jsonl, or .json as {\"users\": [...]}");
  cmd->add_option("--plugin", a->plugins,
                  "run a plugin after loading (repeatable): NAME or NAME:{json config}, e.g. "
                  "'itemcf:{\"k\":50}'");
  cmd->add_option("--plugins-dir", a->plugins_dir,
                  "load outside plugins (*.so) from this directory first");
  cmd->add_option("--metric", a->metric, "l2, ip or cosine")->capture_default_str();
  cmd->add_option("--index", a->index, "flat, hnsw or ivf_pq")->capture_default_str();
  cmd->add_option("--clusters", a->schema.clusters,
                  "number of clusters C (items carry ids in [0, C))");
  cmd->add_option(
      "--kmeans-clusters", a->kmeans_clusters,
      "compute C cluster ids with k-means on the vectors (instead of a cluster column)");
  cmd->add_option("--topics", a->schema.topics, "number of topics K (items carry K weights)");
  cmd->add_option("--topic-threshold", a->schema.topic_threshold,
                  "MVKE: leave an item out of topic k's sub-index when its alpha_k is below this");
  cmd->add_flag("--topic-concat", a->schema.topic_concat,
                "MVKE: also build the [alpha_1 t, ..., alpha_K t] index (strategy concat; K times "
                "the memory)");
  cmd->add_option("--max-history", a->schema.max_history, "events kept per user")
      ->capture_default_str();
  cmd->add_option("--shards", a->schema.shards,
                  "cluster mode: the collection's shards S; above 1, --out gets the cluster "
                  "layout (build.json, all/, shard-0/ .. shard-<S-1>/) that POST "
                  "/v1/collections/NAME/versions publishes (docs/cluster.md)")
      ->capture_default_str();
  cmd->add_option("--hnsw-m", x.hnsw_m, "HNSW links per node")->capture_default_str();
  cmd->add_option("--ef-construction", x.hnsw_ef_construction, "HNSW build candidate list")
      ->capture_default_str();
  cmd->add_option("--ef-search", x.hnsw_ef_search, "HNSW default search candidate list")
      ->capture_default_str();
  cmd->add_flag("--sq8", x.hnsw_sq8, "HNSW: traverse 8-bit codes, re-rank with floats");
  cmd->add_option("--nlist", x.ivf_nlist, "IVF lists")->capture_default_str();
  cmd->add_option("--pq-m", x.ivf_m, "PQ sub-quantisers (must divide dim)")->capture_default_str();
  cmd->add_option("--nbits", x.ivf_nbits, "PQ bits per code: 4 (fast scan) or 8")
      ->capture_default_str();
  cmd->add_option("--nprobe", x.ivf_nprobe, "IVF default lists visited")->capture_default_str();
  cmd->add_option("--refine", x.ivf_refine, "IVF re-rank factor (0: no re-rank store)")
      ->capture_default_str();
  cmd->add_flag("--refine-int8", x.ivf_refine_int8,
                "IVF: keep 8-bit re-rank rows instead of float32");
}

// The cluster layout of a build (cluster/versions.h): the whole collection in all/, each shard
// with its own index in shard-<s>/, and build.json. `engine` holds the whole collection.
Status WriteShards(Engine& engine, const BuildArgs& a, const std::string& dir) {
  using quiver::cluster::BuildPartDir;
  const CollectionSchema& schema = a.schema;
  QV_ASSIGN_OR_RETURN(const CollectionInfo info, engine.DescribeCollection(a.name));
  QV_RETURN_IF_ERROR(engine.ExportCollection(a.name, BuildPartDir(dir, std::nullopt)).status());
  for (uint32_t s = 0; s < schema.shards; ++s) {
    // The shard's items alone, loaded into an engine of their own (which builds their index),
    // snapshotted and exported with it.
    const auto t0 = std::chrono::steady_clock::now();
    const std::string part = dir + "/work/part-" + std::to_string(s);
    auto mine = [&](const quiver::ItemRecord& item) {
      return quiver::cluster::ItemShard(schema, item) == s;
    };
    QV_RETURN_IF_ERROR(engine.ExportCollection(a.name, part, mine).status());
    QV_ASSIGN_OR_RETURN(auto shard, Engine::Open(dir + "/work/shard-" + std::to_string(s), {}));
    QV_RETURN_IF_ERROR(shard->ImportCollection(a.name, part));
    QV_RETURN_IF_ERROR(shard->Snapshot(a.name));
    QV_ASSIGN_OR_RETURN(const CollectionInfo shard_info, shard->DescribeCollection(a.name));
    QV_RETURN_IF_ERROR(shard->ExportCollection(a.name, BuildPartDir(dir, s)).status());
    std::printf("shard %u: %llu items in %.1f s\n", s,
                static_cast<unsigned long long>(shard_info.items),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const quiver::cluster::BuildManifest manifest{
      a.name,          schema.shards, schema.dim, std::string(quiver::MetricName(schema.metric)),
      schema.clusters, schema.topics, info.items};
  const std::string path = quiver::cluster::BuildManifestPath(dir);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << quiver::cluster::EncodeManifest(manifest);
  out.close();
  if (!out) return quiver::InternalError("cannot write " + path);
  return quiver::Status::Ok();
}

// A build's progress on stdout: on a terminal one line per phase, rewritten in place (at most
// ten times a second) with the percent done, the count and the rate; elsewhere (a log) a line
// at each tenth of a phase or every 10 s, and one when the phase ends.
class BuildProgress {
 public:
  using Clock = std::chrono::steady_clock;

  void operator()(std::string_view phase, uint64_t done, uint64_t total) {
    const auto now = Clock::now();
    if (phase != phase_) {
      if (!phase_.empty() && tty_ && !ended_) std::printf("\n");
      phase_ = std::string(phase);
      start_ = last_ = now;
      last_done_ = 0;
      ended_ = false;
    }
    const bool end = done >= total;
    if (ended_) return;  // told once
    const double took = std::chrono::duration<double>(now - start_).count();
    const bool items = total > 1;  // counts; else a phase told only at its start and end
    if (tty_) {
      if (!end && now - last_ < std::chrono::milliseconds(100)) return;
    } else if (!end && done != 0 && done - last_done_ < total / 10 &&
               now - last_ < std::chrono::seconds(10)) {
      return;
    }
    last_ = now;
    last_done_ = done;
    if (items) {
      std::printf("%s%-9s %5.1f%%  %llu/%llu items  %.1f s  %.0f items/s%s", tty_ ? "\r" : "",
                  phase_.c_str(), total ? 100.0 * double(done) / double(total) : 100.0,
                  (unsigned long long)done, (unsigned long long)total, took,
                  took > 0 ? double(done) / took : 0.0, tty_ ? "\033[K" : "\n");
    } else {
      std::printf("%s%-9s %s  %.1f s%s", tty_ ? "\r" : "", phase_.c_str(), end ? "done" : "started",
                  took, tty_ ? "\033[K" : "\n");
    }
    if (end) {
      ended_ = true;
      if (tty_) std::printf("\n");
    }
    std::fflush(stdout);
  }

 private:
  const bool tty_ = ::isatty(STDOUT_FILENO) != 0;
  std::string phase_;
  Clock::time_point start_, last_;
  uint64_t last_done_ = 0;
  bool ended_ = false;
};

int RunBuild(BuildArgs& a) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto metric = quiver::index::ParseMetric(a.metric);
  if (!metric) return Fail(quiver::InvalidArgumentError("unknown metric '" + a.metric + "'"));
  if (a.index == "flat") {
    a.schema.index.type = IndexSpec::Type::kFlat;
  } else if (a.index == "hnsw") {
    a.schema.index.type = IndexSpec::Type::kHnsw;
  } else if (a.index == "ivf_pq") {
    a.schema.index.type = IndexSpec::Type::kIvfPq;
  } else {
    return Fail(
        quiver::InvalidArgumentError("unknown index '" + a.index + "' (flat, hnsw, ivf_pq)"));
  }
  a.schema.name = a.name;
  a.schema.metric = *metric;
  BuildProgress progress;
  auto vectors = ReadVectors(a.vectors);
  if (!vectors.ok()) return Fail(vectors.status());
  a.schema.dim = uint32_t(vectors->dim);
  {
    const double took = std::chrono::duration<double>(Clock::now() - t0).count();
    const size_t n = vectors->dim ? vectors->data.size() / vectors->dim : 0;
    std::printf("read      %zu vectors of dim %zu from %s  %.1f s  %.0f vectors/s\n", n,
                size_t(vectors->dim), a.vectors.c_str(), took, took > 0 ? double(n) / took : 0.0);
  }
  std::vector<ItemRecord> attributes;
  if (!a.attributes.empty()) {
    auto r = ReadAttributes(a.attributes);
    if (!r.ok()) return Fail(r.status());
    attributes = std::move(*r);
  }
  auto items = AssembleItems(std::move(*vectors), std::move(attributes));
  if (!items.ok()) return Fail(items.status());
  // --clusters C takes the items' own cluster ids: all of them 0 means the attributes carry
  // none (no file, or no cluster column), which would put every item in one cluster.
  if (a.schema.clusters > 1 && a.kmeans_clusters == 0 && items->size() > 1 &&
      std::all_of(items->begin(), items->end(),
                  [](const ItemRecord& x) { return x.cluster == 0; })) {
    return Fail(quiver::InvalidArgumentError(
        "--clusters " + std::to_string(a.schema.clusters) +
        ": every item is in cluster 0; give the attributes a cluster column, or let "
        "--kmeans-clusters compute the clusters"));
  }
  std::vector<quiver::UserRecord> users;
  if (!a.users.empty()) {
    auto r = ReadUsers(a.users);
    if (!r.ok()) return Fail(r.status());
    users = std::move(*r);
  }
  if (!a.plugins_dir.empty()) {
    if (Status s = quiver::plugins::Registry::Global().LoadDirectory(a.plugins_dir); !s.ok())
      return Fail(s);
  }
  const double read_s = std::chrono::duration<double>(Clock::now() - t0).count();

  // A new version directory is built beside its final name and renamed into place when
  // complete, so a build that dies leaves nothing that looks like a version.
  const bool sharded = a.schema.shards > 1;
  if (sharded && fs::exists(a.out)) {
    return Fail(quiver::AlreadyExistsError(
        a.out + " exists: a sharded build (--shards above 1) writes a new directory"));
  }
  const bool fresh = !fs::exists(a.out);
  const std::string dir = fresh ? a.out + ".partial" : a.out;
  std::error_code ec;
  if (fresh) fs::remove_all(dir, ec);
  auto fail = [&](const Status& s) {
    if (fresh) fs::remove_all(dir, ec);  // nothing half-built stays behind
    return Fail(s);
  };
  const std::string work = dir + "/work";
  auto engine = Engine::Open(sharded ? work + "/all" : dir, {});
  if (!engine.ok()) return fail(engine.status());
  auto info =
      (*engine)->BulkLoad(a.schema, *items,
                          {.kmeans_clusters = a.kmeans_clusters,
                           .progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
                             progress(phase, done, total);
                           }});
  if (!info.ok()) return fail(info.status());
  if (!users.empty()) {
    for (size_t at = 0; at < users.size(); at += 10000) {
      const size_t n = std::min<size_t>(10000, users.size() - at);
      if (Status s = (*engine)->PutUsers(a.name, std::span(users).subspan(at, n)); !s.ok())
        return fail(s);
    }
    std::printf("loaded %zu users\n", users.size());
  }
  for (const std::string& spec : a.plugins) {
    const size_t colon = spec.find(':');
    const std::string plugin = spec.substr(0, colon);
    const std::string config = colon == std::string::npos ? "" : spec.substr(colon + 1);
    const auto p0 = Clock::now();
    auto run = (*engine)->RunPlugin(a.name, plugin, config, false);
    if (!run.ok()) return fail(run.status());
    std::printf("plugin %s: %llu lists (%s) in %.1f s\n", plugin.c_str(),
                (unsigned long long)run->lists, run->kinds.empty() ? "" : run->kinds[0].c_str(),
                std::chrono::duration<double>(Clock::now() - p0).count());
  }
  if (sharded) {
    if (Status s = WriteShards(**engine, a, dir); !s.ok()) return fail(s);
    engine->reset();
    fs::remove_all(work, ec);
    if (ec) return fail(quiver::InternalError("cannot remove " + work + ": " + ec.message()));
  }
  engine->reset();
  if (fresh) {
    fs::rename(dir, a.out, ec);
    if (ec)
      return Fail(
          quiver::InternalError("cannot rename " + dir + " to " + a.out + ": " + ec.message()));
  }
  const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf(
      "built collection '%s' in %s: %llu items, dim %u, %s index (%.1f MB); read %.1f s, total "
      "%.1f s\n",
      a.name.c_str(), a.out.c_str(), (unsigned long long)info->items, a.schema.dim, a.index.c_str(),
      double(info->index_memory_bytes) / 1e6, read_s, total_s);
  return 0;
}

int RunVersions(const std::string& root) {
  auto state = DataRoot::Inspect(root);
  if (!state.ok()) return Fail(state.status());
  for (const std::string& v : state->versions) {
    const char* mark = v == state->current    ? "  (serving)"
                       : v == state->previous ? "  (previous)"
                                              : "";
    std::printf("%s%s\n", v.c_str(), mark);
  }
  return 0;
}

struct CallArgs {
  std::string addr = "127.0.0.1:7701", socket, key, method, path, body;
  uint64_t timeout_ms = 10000;
};

// The REST request (method, path, JSON body) decoded exactly as quiverd's REST front end would,
// sent over the binary protocol, and the answer printed as the REST front end would print it.
int RunCall(CallArgs& a) {
  // Every failure, the tool's own too, is the REST error JSON on stderr and exit status 1.
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "%s\n", quiver::net::ErrorJson(s).c_str());
    return 1;
  };
  if (a.body == "-" || (!a.body.empty() && a.body[0] == '@')) {
    std::stringstream ss;
    if (a.body == "-") {
      ss << std::cin.rdbuf();
    } else {
      std::ifstream in(a.body.substr(1), std::ios::binary);
      if (!in) return fail(quiver::NotFoundError("cannot read " + a.body.substr(1)));
      ss << in.rdbuf();
    }
    a.body = ss.str();
  }
  if (a.path == "/metrics" || a.path.starts_with("/metrics?")) {
    return fail(
        quiver::NotFoundError("/metrics is served over REST only (curl "
                              "http://HOST:HTTP_PORT/metrics); quiver call speaks "
                              "the binary protocol"));
  }
  auto call = quiver::net::DecodeHttpCall(a.method, a.path, a.body, 64);
  if (!call.ok()) return fail(call.status());
  quiver::client::ClientOptions o;
  if (!a.socket.empty()) {
    o.unix_path = a.socket;
  } else {
    const size_t colon = a.addr.rfind(':');
    unsigned port = 0;
    if (colon == std::string::npos || std::sscanf(a.addr.c_str() + colon + 1, "%u", &port) != 1 ||
        port == 0 || port > 65535) {
      return fail(quiver::InvalidArgumentError("--addr '" + a.addr + "' is not HOST:PORT"));
    }
    o.host = a.addr.substr(0, colon);
    o.port = uint16_t(port);
  }
  o.api_key = a.key;
  if (o.api_key.empty()) {
    if (const char* k = std::getenv("QUIVER_API_KEY")) o.api_key = k;
  }
  o.pool_size = 1;
  o.deadline = std::chrono::milliseconds(a.timeout_ms);
  o.max_frame_bytes = size_t{1} << 30;
  auto client = quiver::client::Client::Connect(o);
  if (!client.ok()) return fail(client.status());
  const quiver::net::Reply reply = (*client)->Call(*call);
  const quiver::net::HttpReply out = quiver::net::EncodeHttpReply(reply);
  std::fprintf(reply.status.ok() ? stdout : stderr, "%s\n", out.body.c_str());
  return reply.status.ok() ? 0 : 1;
}

int Main(int argc, char** argv) {
  CLI::App app{"quiver: the Quiver command-line tool"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] { return std::string(quiver::Version()); });
  app.add_subcommand("version", "print the version, the allocator and the SIMD level in use");
  BuildArgs build;
  AddBuildOptions(
      app.add_subcommand("build",
                         "bulk-build a collection into a version directory (no server needed)"),
      &build);
  std::string root;
  app.add_subcommand("versions", "list the version directories of a data root")
      ->add_option("--root", root, "data root directory")
      ->required();
  CallArgs call;
  CLI::App* cc = app.add_subcommand(
      "call", "send one REST-style request (docs/api.md) to quiverd over the binary protocol");
  cc->add_option("--addr", call.addr, "quiverd's binary protocol HOST:PORT")->capture_default_str();
  cc->add_option("--socket", call.socket,
                 "quiverd's binary protocol Unix-domain socket (instead of --addr)");
  cc->add_option("--key", call.key, "API key (default: $QUIVER_API_KEY)");
  cc->add_option("--timeout-ms", call.timeout_ms, "deadline of the call, retries included")
      ->capture_default_str();
  cc->add_option("method", call.method, "GET, POST, DELETE")->required();
  cc->add_option("path", call.path, "as in docs/api.md, e.g. /v1/collections/movies/search")
      ->required();
  cc->add_option("body", call.body, "JSON body, @FILE, or - for stdin");
  CLI11_PARSE(app, argc, argv);
  if (app.got_subcommand("call")) return RunCall(call);
  if (app.got_subcommand("version")) return PrintVersion();
  if (app.got_subcommand("build")) return RunBuild(build);
  if (app.got_subcommand("versions")) return RunVersions(root);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("quiver", [&] { return Main(argc, argv); });
}
