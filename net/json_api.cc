#include "net/json_api.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <vector>

namespace quiver::net {
namespace {

// ---- encoding ----

class JsonWriter {
 public:
  void Raw(std::string_view s) { out_ += s; }
  void String(std::string_view s) {
    out_.push_back('"');
    for (char c : s) {
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\r':
          out_ += "\\r";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          if (uint8_t(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            out_ += buf;
          } else {
            out_.push_back(c);
          }
      }
    }
    out_.push_back('"');
  }
  template <typename T>
  void Number(T v) {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof(buf), v);  // shortest form that reads back exactly
    out_.append(buf, r.ptr);
  }
  void Float(float v) {
    if (!std::isfinite(v)) return Raw("null");
    Number(v);
  }
  template <typename T, typename F>
  void Array(const std::vector<T>& v, F each) {
    out_.push_back('[');
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out_.push_back(',');
      each(v[i]);
    }
    out_.push_back(']');
  }
  void Key(std::string_view k) {
    if (!out_.empty() && out_.back() != '{' && out_.back() != '[') out_.push_back(',');
    String(k);
    out_.push_back(':');
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

void WriteSchema(JsonWriter& w, const CollectionSchema& s) {
  const IndexSpec& x = s.index;
  w.Raw("{");
  w.Key("name");
  w.String(s.name);
  w.Key("dim");
  w.Number(s.dim);
  w.Key("metric");
  w.String(MetricName(s.metric));
  w.Key("index");
  w.Raw("{");
  w.Key("type");
  w.String(IndexTypeName(x.type));
  if (x.type == IndexSpec::Type::kHnsw) {
    w.Key("m");
    w.Number(x.hnsw_m);
    w.Key("ef_construction");
    w.Number(x.hnsw_ef_construction);
    w.Key("ef_search");
    w.Number(x.hnsw_ef_search);
    w.Key("sq8");
    w.Raw(x.hnsw_sq8 ? "true" : "false");
  } else if (x.type == IndexSpec::Type::kIvfPq) {
    w.Key("nlist");
    w.Number(x.ivf_nlist);
    w.Key("pq_m");
    w.Number(x.ivf_m);
    w.Key("nbits");
    w.Number(x.ivf_nbits);
    w.Key("nprobe");
    w.Number(x.ivf_nprobe);
    w.Key("refine");
    w.Number(x.ivf_refine);
    w.Key("refine_int8");
    w.Raw(x.ivf_refine_int8 ? "true" : "false");
  }
  w.Raw("}");
  w.Key("clusters");
  w.Number(s.clusters);
  w.Key("topics");
  w.Number(s.topics);
  w.Key("topic_threshold");
  w.Float(s.topic_threshold);
  w.Key("topic_concat");
  w.Raw(s.topic_concat ? "true" : "false");
  w.Key("max_history");
  w.Number(s.max_history);
  w.Raw("}");
}

void WriteInfo(JsonWriter& w, const CollectionInfo& info) {
  w.Raw("{");
  w.Key("schema");
  WriteSchema(w, info.schema);
  w.Key("items");
  w.Number(info.items);
  w.Key("op_seq");
  w.Number(info.op_seq);
  w.Key("snapshot_seq");
  w.Number(info.snapshot_seq);
  w.Key("index_memory_bytes");
  w.Number(info.index_memory_bytes);
  w.Key("trained");
  w.Raw(info.trained ? "true" : "false");
  w.Raw("}");
}

void WriteItem(JsonWriter& w, const ItemRecord& item) {
  w.Raw("{");
  w.Key("id");
  w.Number(item.id);
  w.Key("vector");
  w.Array(item.vector, [&](float v) { w.Float(v); });
  w.Key("cluster");
  w.Number(item.cluster);
  w.Key("topics");
  w.Array(item.topic_weights, [&](float v) { w.Float(v); });
  w.Key("category");
  if (item.category) {
    w.Number(*item.category);
  } else {
    w.Raw("null");
  }
  w.Key("tags");
  w.Array(item.tags, [&](int64_t v) { w.Number(v); });
  w.Key("timestamp");
  w.Number(item.timestamp);
  w.Key("payload");
  w.Raw(item.payload.empty() ? "null" : item.payload);
  w.Raw("}");
}

void WriteBody(JsonWriter& w, const ReplyBody& body) {
  struct Visitor {
    JsonWriter& w;
    void operator()(const std::monostate&) { w.Raw("{\"ok\":true}"); }
    void operator()(const CollectionInfo& info) { WriteInfo(w, info); }
    void operator()(const std::vector<CollectionInfo>& all) {
      w.Raw("{");
      w.Key("collections");
      w.Array(all, [&](const CollectionInfo& i) { WriteInfo(w, i); });
      w.Raw("}");
    }
    void operator()(const WriteResult& r) {
      w.Raw("{");
      w.Key("op_seq");
      w.Number(r.op_seq);
      w.Key("changed");
      w.Number(r.changed);
      w.Raw("}");
    }
    void operator()(const GetResult& g) {
      w.Raw("{");
      w.Key("items");
      w.Array(g.items, [&](const std::optional<ItemRecord>& item) {
        if (item) {
          WriteItem(w, *item);
        } else {
          w.Raw("null");
        }
      });
      w.Raw("}");
    }
    void operator()(const UserResult& u) {
      w.Raw("{");
      w.Key("user");
      if (!u.user) {
        w.Raw("null");
      } else {
        w.Raw("{");
        w.Key("id");
        w.Number(u.user->id);
        w.Key("vector");
        w.Array(u.user->vector, [&](float v) { w.Float(v); });
        w.Key("history");
        w.Array(u.user->history, [&](const Interaction& e) {
          w.Raw("{");
          w.Key("item");
          w.Number(e.item);
          w.Key("timestamp");
          w.Number(e.timestamp);
          w.Raw("}");
        });
        w.Raw("}");
      }
      w.Raw("}");
    }
    void operator()(const SearchResult& s) {
      w.Raw("{");
      w.Key("hits");
      w.Raw("[");
      for (size_t i = 0; i < s.hits.size(); ++i) {
        if (i) w.Raw(",");
        w.Raw("{");
        w.Key("id");
        w.Number(s.hits[i].id);
        w.Key("score");
        w.Float(s.hits[i].score);
        if (i < s.hit_vector.size()) {
          w.Key("vector");
          w.Number(s.hit_vector[i]);
        }
        if (i < s.hit_cluster.size() && s.hit_cluster[i] >= 0) {
          w.Key("cluster");
          w.Number(s.hit_cluster[i]);
        }
        if (i < s.hit_payload.size()) {
          w.Key("payload");
          w.Raw(s.hit_payload[i].empty() ? "null" : s.hit_payload[i]);
        }
        if (i < s.hit_channels.size()) {
          w.Key("channels");
          std::vector<std::string> names;
          for (int b = 0; b < 3; ++b) {
            if (s.hit_channels[i] >> b & 1)
              names.push_back(b == 0 ? "u2i" : b == 1 ? "u2i2i" : "u2u2i");
          }
          w.Array(names, [&](const std::string& n) { w.String(n); });
        }
        w.Raw("}");
      }
      w.Raw("]");
      if (!s.quotas.empty()) {
        w.Key("quotas");
        w.Array(s.quotas, [&](uint32_t v) { w.Number(v); });
      }
      if (!s.per_cluster.empty()) {
        w.Key("per_cluster");
        w.Array(s.per_cluster, [&](uint32_t v) { w.Number(v); });
      }
      w.Raw("}");
    }
    void operator()(const VersionsInfo& v) {
      w.Raw("{");
      w.Key("current");
      w.String(v.current);
      w.Key("previous");
      w.String(v.previous);
      w.Key("versions");
      w.Array(v.versions, [&](const std::string& s) { w.String(s); });
      w.Raw("}");
    }
    void operator()(const HealthResult& h) {
      w.Raw("{");
      w.Key("status");
      w.String(h.status);
      w.Key("version");
      w.String(h.version);
      w.Raw("}");
    }
    void operator()(const PluginRunResult& r) {
      w.Raw("{");
      w.Key("kinds");
      w.Array(r.kinds, [&](const std::string& s) { w.String(s); });
      w.Key("lists");
      w.Number(r.lists);
      w.Key("removed");
      w.Number(r.removed);
      w.Key("incremental");
      w.Raw(r.incremental ? "true" : "false");
      w.Raw("}");
    }
    void operator()(const ListResult& r) {
      w.Raw("{");
      w.Key("list");
      if (!r.list) {
        w.Raw("null");
      } else {
        w.Array(*r.list, [&](const Hit& h) {
          w.Raw("{");
          w.Key("id");
          w.Number(h.id);
          w.Key("score");
          w.Float(h.score);
          w.Raw("}");
        });
      }
      w.Raw("}");
    }
    void operator()(const ListInfosResult& r) {
      w.Raw("{");
      w.Key("lists");
      w.Array(r.lists, [&](const ListInfo& i) {
        w.Raw("{");
        w.Key("kind");
        w.String(i.kind);
        w.Key("plugin");
        w.String(i.plugin);
        w.Key("config");
        w.Raw(i.config.empty() ? "{}" : i.config);
        w.Key("keys");
        w.Number(i.keys);
        w.Key("op_seq");
        w.Number(i.op_seq);
        w.Raw("}");
      });
      w.Raw("}");
    }
    void operator()(const PluginsResult& r) {
      w.Raw("{");
      w.Key("plugins");
      w.Array(r.names, [&](const std::string& s) { w.String(s); });
      w.Raw("}");
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
  w.Raw("{\"error\":{");
  w.Key("code");
  w.String(StatusCodeName(status.code()));
  w.Key("message");
  w.String(status.message());
  w.Raw("}}");
  return w.Take();
}

HttpReply EncodeHttpReply(const Reply& reply) {
  if (!reply.status.ok()) return {HttpStatusFor(reply.status.code()), ErrorJson(reply.status)};
  JsonWriter w;
  WriteBody(w, reply.body);
  return {200, w.Take()};
}

}  // namespace quiver::net
