// Collection versions in cluster mode (docs/cluster.md, "Bulk builds and versions").
//
// A collection is served from one version at a time. The version it was created as is
// "initial"; `quiver build --shards S` writes a new one offline, and publishing it makes every
// node hosting a shard of the collection load its part beside the serving version. Once every
// shard has a loaded replica that has caught up with the write log, the version becomes active
// in one etcd compare-and-swap; rollback swaps back.
//
// In a node's engine each version is its own collection: "movies" for the initial version,
// "movies@v2" for version v2 ('@' is never in a collection name a user gives). Every version of
// a collection follows the same write log ("movies"), each from where its data stops.
//
// The cluster's record of a collection's versions is one etcd key (<prefix>/versions/<name>),
// a small JSON object changed only by compare-and-swap:
//   {"active":"v2","previous":"initial","pending":"","builds":{"v2":{"path":"/b/v2",
//    "after_seq":1234}}}
// active: the version searches read; previous: the rollback target (still loaded and following
// the log); pending: the version being loaded (at most one: publishing another replaces it);
// builds: where each built version's parts are and the last log sequence its data holds.
//
// A build's directory (BuildLayout):
//   <path>/build.json     {"collection":"movies","shards":2,"dim":64,"metric":"ip",
//                          "clusters":32,"topics":0,"items":100000}
//   <path>/all/           the whole collection (engine::Engine::ExportCollection's layout, with
//                         its index snapshot), for a node that hosts several shards
//   <path>/shard-<s>/     shard s alone, with its own index snapshot
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/model.h"
#include "base/result.h"

namespace quiver::cluster {

inline constexpr std::string_view kInitialVersion = "initial";

// The engine collection holding a version: the collection's name for "initial", else
// "<collection>@<version>".
std::string EngineName(std::string_view collection, std::string_view version);
// A version named explicitly, the initial one included ("movies@initial"): what a router's
// sub-requests carry, so that a replica answers from the version the router chose, whatever
// the replica's own view of the active version is. LocalName: the engine collection it names.
std::string PinnedName(std::string_view collection, std::string_view version);
std::string LocalName(std::string_view name);
// The collection (and write log) an engine collection belongs to, and its version.
std::string_view LogName(std::string_view engine_name);
std::string_view VersionOf(std::string_view engine_name);
// Appends `s` as a JSON string (etcd values are small JSON documents readable with etcdctl).
void AppendJsonString(std::string_view s, std::string* out);

// 1 to 64 of [A-Za-z0-9_.-].
Status CheckVersionName(std::string_view version);

struct BuildRef {
  std::string path;
  uint64_t after_seq = 0;
  friend bool operator==(const BuildRef&, const BuildRef&) = default;
};

struct VersionsRecord {
  std::string active{kInitialVersion};
  std::string previous;  // "" when there is none
  std::string pending;   // "" when there is none
  std::map<std::string, BuildRef> builds;
  // The versions a node keeps loaded: active, previous and pending.
  std::vector<std::string> Kept() const;
  friend bool operator==(const VersionsRecord&, const VersionsRecord&) = default;
};

std::string EncodeVersions(const VersionsRecord& r);
// kDataLoss for a value that is not a versions record.
Result<VersionsRecord> DecodeVersions(std::string_view value);

// A build directory's description (build.json) and parts.
struct BuildManifest {
  std::string collection;
  uint32_t shards = 1;
  uint32_t dim = 0;
  std::string metric;
  uint32_t clusters = 0;
  uint32_t topics = 0;
  uint64_t items = 0;
};
std::string BuildManifestPath(const std::string& path);
std::string BuildPartDir(const std::string& path, std::optional<uint32_t> shard);  // nullopt: all
std::string EncodeManifest(const BuildManifest& m);
// Reads <path>/build.json; kNotFound when there is none, kDataLoss when it is malformed.
Result<BuildManifest> ReadManifest(const std::string& path);
// kFailedPrecondition, saying what differs, when a build cannot serve the collection: another
// name, shard count, dimension, metric, cluster or topic count (the fields writes are checked
// against; index parameters may differ).
Status CheckBuildFits(const BuildManifest& m, const CollectionSchema& schema);

}  // namespace quiver::cluster
