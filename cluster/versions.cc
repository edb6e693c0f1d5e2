#include "cluster/versions.h"

#include <simdjson.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/index_spec.h"

namespace quiver::cluster {

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (uint8_t(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", unsigned(uint8_t(c)));
      out->append(buf);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

std::string EngineName(std::string_view collection, std::string_view version) {
  if (version.empty() || version == kInitialVersion) return std::string(collection);
  return std::string(collection) + "@" + std::string(version);
}

std::string PinnedName(std::string_view collection, std::string_view version) {
  return std::string(collection) + "@" + std::string(version);
}

std::string LocalName(std::string_view name) { return EngineName(LogName(name), VersionOf(name)); }

std::string_view LogName(std::string_view engine_name) {
  return engine_name.substr(0, engine_name.find('@'));
}

std::string_view VersionOf(std::string_view engine_name) {
  const size_t at = engine_name.find('@');
  return at == std::string_view::npos ? kInitialVersion : engine_name.substr(at + 1);
}

Status CheckVersionName(std::string_view version) {
  if (version.empty() || version.size() > 64) {
    return InvalidArgumentError("a version name must be 1 to 64 characters");
  }
  for (char c : version) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return InvalidArgumentError("version name '" + std::string(version) +
                                  "' may use only [A-Za-z0-9_.-]");
    }
  }
  return Status::Ok();
}

std::vector<std::string> VersionsRecord::Kept() const {
  std::vector<std::string> out{active};
  if (!previous.empty() && previous != active) out.push_back(previous);
  if (!pending.empty() && pending != active && pending != previous) out.push_back(pending);
  return out;
}

std::string EncodeVersions(const VersionsRecord& r) {
  std::string out = "{\"active\":";
  AppendJsonString(r.active, &out);
  out += ",\"previous\":";
  AppendJsonString(r.previous, &out);
  out += ",\"pending\":";
  AppendJsonString(r.pending, &out);
  out += ",\"builds\":{";
  bool first = true;
  for (const auto& [name, b] : r.builds) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(name, &out);
    out += ":{\"path\":";
    AppendJsonString(b.path, &out);
    out += ",\"after_seq\":" + std::to_string(b.after_seq) + "}";
  }
  out += "}}";
  return out;
}

Result<VersionsRecord> DecodeVersions(std::string_view value) {
  auto bad = [](const char* what) {
    return DataLossError(std::string("a collection's versions in etcd: ") + what);
  };
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(value.data(), value.size()).get(doc)) return bad("not JSON");
  std::string_view active, previous, pending;
  simdjson::dom::object builds;
  if (doc["active"].get(active) || doc["previous"].get(previous) || doc["pending"].get(pending) ||
      doc["builds"].get(builds) || active.empty()) {
    return bad("missing or malformed active, previous, pending or builds");
  }
  VersionsRecord r;
  r.active = std::string(active);
  r.previous = std::string(previous);
  r.pending = std::string(pending);
  for (auto field : builds) {
    std::string_view path;
    uint64_t after = 0;
    if (field.value["path"].get(path) || field.value["after_seq"].get(after)) {
      return bad("a build without path or after_seq");
    }
    r.builds[std::string(field.key)] = BuildRef{std::string(path), after};
  }
  for (const std::string& v : r.Kept()) {
    if (v != kInitialVersion && r.builds.count(v) == 0) return bad("a version without its build");
  }
  return r;
}

std::string BuildManifestPath(const std::string& path) { return path + "/build.json"; }

std::string BuildPartDir(const std::string& path, std::optional<uint32_t> shard) {
  return shard ? path + "/shard-" + std::to_string(*shard) : path + "/all";
}

std::string EncodeManifest(const BuildManifest& m) {
  std::string out = "{\"collection\":";
  AppendJsonString(m.collection, &out);
  out += ",\"shards\":" + std::to_string(m.shards) + ",\"dim\":" + std::to_string(m.dim) +
         ",\"metric\":";
  AppendJsonString(m.metric, &out);
  out += ",\"clusters\":" + std::to_string(m.clusters) + ",\"topics\":" + std::to_string(m.topics) +
         ",\"items\":" + std::to_string(m.items) + "}\n";
  return out;
}

Result<BuildManifest> ReadManifest(const std::string& path) {
  const std::string file = BuildManifestPath(path);
  std::ifstream in(file, std::ios::binary);
  if (!in) return NotFoundError("no bulk build at " + path + " (cannot read " + file + ")");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view collection, metric;
  uint64_t shards = 0, dim = 0, clusters = 0, topics = 0, items = 0;
  if (parser.parse(text).get(doc) || doc["collection"].get(collection) ||
      doc["shards"].get(shards) || doc["dim"].get(dim) || doc["metric"].get(metric) ||
      doc["clusters"].get(clusters) || doc["topics"].get(topics) || doc["items"].get(items) ||
      shards == 0 || shards > UINT32_MAX || dim > UINT32_MAX || clusters > UINT32_MAX ||
      topics > UINT32_MAX) {
    return DataLossError(file + " is not a bulk build's description");
  }
  return BuildManifest{
      std::string(collection), uint32_t(shards), uint32_t(dim), std::string(metric),
      uint32_t(clusters),      uint32_t(topics), items};
}

Status CheckBuildFits(const BuildManifest& m, const CollectionSchema& s) {
  auto differs = [&](const std::string& what, const std::string& build, const std::string& here) {
    return FailedPreconditionError("the build is of " + what + " " + build + "; collection '" +
                                   s.name + "' has " + here);
  };
  if (m.collection != s.name) return differs("collection", m.collection, "another name");
  if (m.shards != s.shards) {
    return differs("shard count", std::to_string(m.shards), std::to_string(s.shards));
  }
  if (m.dim != s.dim) return differs("dim", std::to_string(m.dim), std::to_string(s.dim));
  if (m.metric != MetricName(s.metric)) {
    return differs("metric", m.metric, std::string(MetricName(s.metric)));
  }
  if (m.clusters != s.clusters) {
    return differs("clusters", std::to_string(m.clusters), std::to_string(s.clusters));
  }
  if (m.topics != s.topics) {
    return differs("topics", std::to_string(m.topics), std::to_string(s.topics));
  }
  return Status::Ok();
}

}  // namespace quiver::cluster
