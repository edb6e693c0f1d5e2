#include "net/json_api.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/json_string.h"

namespace quiver::net {
namespace {

constexpr std::string_view kChannelNames[] = {"u2i", "u2i2i", "u2u2i"};

// ---- encoding ----

class JsonWriter {
 public:
  void Raw(std::string_view s) { out_ += s; }
  void String(std::string_view s) { AppendJsonString(out_, s); }
  template <typename T>
  void Number(T v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest form that reads back exactly
    out_.append(buf, r.ptr);
  }
  void Key(std::string_view k) {
    if (!out_.empty() && out_.back() != '{' && out_.back() != '[') out_.push_back(',');
    String(k);
    out_.push_back(':');
  }
  // {body()}
  template <typename F>
  void Object(F body) {
    out_.push_back('{');
    body();
    out_.push_back('}');
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// One Put per kind of value; Field writes "key": value.
void Put(JsonWriter& w, bool v) { w.Raw(v ? "true" : "false"); }
void Put(JsonWriter& w, float v) { std::isfinite(v) ? w.Number(v) : w.Raw("null"); }
template <typename T>
requires std::is_integral_v<T>
void Put(JsonWriter& w, T v) { w.Number(v); }
void Put(JsonWriter& w, std::string_view s) { w.String(s); }
void Put(JsonWriter& w, const char* s) { w.String(s); }  // not the bool overload
template <typename T>
void Put(JsonWriter& w, const std::vector<T>& v) {
  w.Raw("[");
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) w.Raw(",");
    Put(w, v[i]);
  }
  w.Raw("]");
}
template <typename T>
void Put(JsonWriter& w, const std::optional<T>& v) {
  if (v) return Put(w, *v);
  w.Raw("null");
}
template <typename T>
void Field(JsonWriter& w, std::string_view key, const T& v) {
  w.Key(key);
  Put(w, v);
}
// A field whose value is JSON text already (payloads, plugin configs); empty: `empty`.
void RawField(JsonWriter& w, std::string_view key, std::string_view json, const char* empty) {
  w.Key(key);
  w.Raw(json.empty() ? empty : json);
}

void Put(JsonWriter& w, const IndexSpec& x) {
  w.Object([&] {
    Field(w, "type", IndexTypeName(x.type));
    if (x.type == IndexSpec::Type::kHnsw) {
      Field(w, "m", x.hnsw_m);
      Field(w, "ef_construction", x.hnsw_ef_construction);
      Field(w, "ef_search", x.hnsw_ef_search);
      Field(w, "sq8", x.hnsw_sq8);
    } else if (x.type == IndexSpec::Type::kIvfPq) {
      Field(w, "nlist", x.ivf_nlist);
      Field(w, "pq_m", x.ivf_m);
      Field(w, "nbits", x.ivf_nbits);
      Field(w, "nprobe", x.ivf_nprobe);
      Field(w, "refine", x.ivf_refine);
      Field(w, "refine_int8", x.ivf_refine_int8);
    }
  });
}

void Put(JsonWriter& w, const VersionReplicas& r) {
  w.Object([&] {
    Field(w, "version", r.version);
    Field(w, "shard", r.shard);
    Field(w, "nodes", r.nodes);
  });
}

void Put(JsonWriter& w, const CollectionSchema& s) {
  w.Object([&] {
    Field(w, "name", s.name);
    Field(w, "dim", s.dim);
    Field(w, "metric", MetricName(s.metric));
    Field(w, "index", s.index);
    Field(w, "clusters", s.clusters);
    Field(w, "topics", s.topics);
    Field(w, "topic_threshold", s.topic_threshold);
    Field(w, "topic_concat", s.topic_concat);
    Field(w, "max_history", s.max_history);
    Field(w, "shards", s.shards);
  });
}

void Put(JsonWriter& w, const ClusterMember& m) {
  w.Object([&] {
    Field(w, "id", m.id);
    Field(w, "host", m.host);
    Field(w, "port", m.port);
    Field(w, "shards", m.shards);
    Field(w, "assigned", m.assigned);
  });
}

void Put(JsonWriter& w, const CollectionInfo& info) {
  w.Object([&] {
    Field(w, "schema", info.schema);
    Field(w, "items", info.items);
    Field(w, "op_seq", info.op_seq);
    Field(w, "snapshot_seq", info.snapshot_seq);
    Field(w, "index_memory_bytes", info.index_memory_bytes);
    Field(w, "trained", info.trained);
  });
}

void Put(JsonWriter& w, const ItemRecord& item) {
  w.Object([&] {
    Field(w, "id", item.id);
    Field(w, "vector", item.vector);
    Field(w, "cluster", item.cluster);
    Field(w, "topics", item.topic_weights);
    Field(w, "category", item.category);
    Field(w, "tags", item.tags);
    Field(w, "timestamp", item.timestamp);
    RawField(w, "payload", item.payload, "null");
  });
}

void Put(JsonWriter& w, const Interaction& e) {
  w.Object([&] {
    Field(w, "item", e.item);
    Field(w, "timestamp", e.timestamp);
  });
}

void Put(JsonWriter& w, const UserRecord& u) {
  w.Object([&] {
    Field(w, "id", u.id);
    Field(w, "vector", u.vector);
    Field(w, "history", u.history);
  });
}

void Put(JsonWriter& w, const Hit& h) {
  w.Object([&] {
    Field(w, "id", h.id);
    Field(w, "score", h.score);
  });
}

void Put(JsonWriter& w, const ListInfo& i) {
  w.Object([&] {
    Field(w, "kind", i.kind);
    Field(w, "plugin", i.plugin);
    RawField(w, "config", i.config, "{}");
    Field(w, "keys", i.keys);
    Field(w, "op_seq", i.op_seq);
  });
}

// Each hit with what the search reported of it (docs/api.md).
void Put(JsonWriter& w, const SearchResult& s) {
  w.Object([&] {
    w.Key("hits");
    w.Raw("[");
    for (size_t i = 0; i < s.hits.size(); ++i) {
      if (i) w.Raw(",");
      w.Object([&] {
        Field(w, "id", s.hits[i].id);
        Field(w, "score", s.hits[i].score);
        if (i < s.hit_vector.size()) Field(w, "vector", s.hit_vector[i]);
        if (i < s.hit_cluster.size() && s.hit_cluster[i] >= 0)
          Field(w, "cluster", s.hit_cluster[i]);
        if (i < s.hit_payload.size()) RawField(w, "payload", s.hit_payload[i], "null");
        if (i < s.hit_channels.size()) {
          std::vector<std::string_view> names;
          for (int b = 0; b < 3; ++b) {
            if (s.hit_channels[i] >> b & 1) names.push_back(kChannelNames[b]);
          }
          Field(w, "channels", names);
        }
      });
    }
    w.Raw("]");
    if (!s.quotas.empty()) Field(w, "quotas", s.quotas);
    if (!s.per_cluster.empty()) Field(w, "per_cluster", s.per_cluster);
    if (s.seq != 0) Field(w, "seq", s.seq);
  });
}

void WriteBody(JsonWriter& w, const ReplyBody& body) {
  struct Visitor {
    JsonWriter& w;
    void operator()(const std::monostate&) { w.Raw("{\"ok\":true}"); }
    void operator()(const CollectionInfo& info) { Put(w, info); }
    void operator()(const SearchResult& s) { Put(w, s); }
    void operator()(const std::vector<CollectionInfo>& all) {
      w.Object([&] { Field(w, "collections", all); });
    }
    void operator()(const WriteResult& r) {
      w.Object([&] {
        Field(w, "op_seq", r.op_seq);
        Field(w, "changed", r.changed);
      });
    }
    void operator()(const GetResult& g) {
      w.Object([&] { Field(w, "items", g.items); });
    }
    void operator()(const UserResult& u) {
      w.Object([&] { Field(w, "user", u.user); });
    }
    void operator()(const VersionsInfo& v) {
      w.Object([&] {
        Field(w, "current", v.current);
        Field(w, "previous", v.previous);
        Field(w, "versions", v.versions);
        if (!v.pending.empty() || !v.replicas.empty()) {
          Field(w, "pending", v.pending);
          Field(w, "replicas", v.replicas);
        }
      });
    }
    void operator()(const HealthResult& h) {
      w.Object([&] {
        Field(w, "status", h.status);
        Field(w, "version", h.version);
      });
    }
    void operator()(const PluginRunResult& r) {
      w.Object([&] {
        Field(w, "kinds", r.kinds);
        Field(w, "lists", r.lists);
        Field(w, "removed", r.removed);
        Field(w, "incremental", r.incremental);
      });
    }
    void operator()(const ListResult& r) {
      w.Object([&] { Field(w, "list", r.list); });
    }
    void operator()(const ListInfosResult& r) {
      w.Object([&] { Field(w, "lists", r.lists); });
    }
    void operator()(const PluginsResult& r) {
      w.Object([&] { Field(w, "plugins", r.names); });
    }
    void operator()(const ExportResult& r) {
      w.Object([&] {
        Field(w, "export_id", r.export_id);
        Field(w, "op_seq", r.op_seq);
        w.Key("log_positions");
        w.Object([&] {
          for (const auto& [shard, seq] : r.log_positions) Field(w, std::to_string(shard), seq);
        });
        w.Key("files");
        w.Raw("[");
        for (size_t i = 0; i < r.files.size(); ++i) {
          if (i) w.Raw(",");
          w.Object([&] {
            Field(w, "name", r.files[i].name);
            Field(w, "size", r.files[i].size);
            Field(w, "crc32c", r.files[i].crc32c);
          });
        }
        w.Raw("]");
      });
    }
    // Export chunks are bytes and travel on the binary protocol only (REST has no route to
    // them); as JSON, a chunk says its length.
    void operator()(const ClusterInfo& r) {
      w.Object([&] {
        Field(w, "members", r.members);
        w.Key("assignment");
        w.Object([&] {
          for (const auto& [shard, nodes] : r.assignment) Field(w, std::to_string(shard), nodes);
        });
      });
    }
    void operator()(const IntentResult& r) {
      w.Object([&] { Field(w, "clusters", uint64_t(r.similarity.size())); });
    }
    void operator()(const ExportChunk& r) {
      w.Object([&] { Field(w, "bytes", uint64_t(r.data.size())); });
    }
    // Each search's answer, or its error as a failed call's body would be.
    void operator()(const SearchBatchResult& r) {
      w.Object([&] {
        w.Key("results");
        w.Raw("[");
        for (size_t i = 0; i < r.results.size(); ++i) {
          if (i) w.Raw(",");
          const SearchOutcome& o = r.results[i];
          if (o.status.ok()) {
            Put(w, o.result);
          } else {
            w.Raw(ErrorJson(o.status));
          }
        }
        w.Raw("]");
      });
    }
    void operator()(const CountResult& r) {
      w.Object([&] { Field(w, "count", r.count); });
    }
    void operator()(const ScrollResult& r) {
      w.Object([&] {
        Field(w, "items", r.items);
        if (r.next) Field(w, "next", *r.next);
      });
    }
  };
  std::visit(Visitor{w}, body);
}

}  // namespace

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kCancelled:
      return 499;
    case StatusCode::kUnknown:
      return 500;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kAlreadyExists:
      return 409;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kResourceExhausted:
      return 413;
    case StatusCode::kFailedPrecondition:
      return 412;
    case StatusCode::kAborted:
      return 409;
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kUnimplemented:
      return 405;
    case StatusCode::kInternal:
      return 500;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kDataLoss:
      return 500;
    case StatusCode::kUnauthenticated:
      return 401;
  }
  return 500;
}

std::string ErrorJson(const Status& status) {
  JsonWriter w;
  w.Object([&] {
    w.Key("error");
    w.Object([&] {
      Field(w, "code", StatusCodeName(status.code()));
      Field(w, "message", ReplyMessage(status.message()));
    });
  });
  return w.Take();
}

HttpReply EncodeHttpReply(const Reply& reply) {
  if (!reply.status.ok()) return {HttpStatusFor(reply.status.code()), ErrorJson(reply.status)};
  JsonWriter w;
  WriteBody(w, reply.body);
  return {200, w.Take()};
}

}  // namespace quiver::net
