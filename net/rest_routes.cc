// The REST routes: one table of (method, path pattern, decoder) that DecodeHttpCall matches a
// request against. docs/api.md documents each route and its body.
#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "formats/json_item.h"
#include "net/json_api.h"
#include "net/json_read.h"
#include "net/json_search.h"

namespace quiver::net {
namespace {

using namespace json;

std::vector<std::string_view> SplitPath(std::string_view target) {
  const size_t q = target.find('?');
  if (q != std::string_view::npos) target = target.substr(0, q);
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (start <= target.size()) {
    size_t slash = target.find('/', start);
    if (slash == std::string_view::npos) slash = target.size();
    if (slash > start) parts.push_back(target.substr(start, slash - start));
    start = slash + 1;
  }
  return parts;
}

// What a route's pattern captured: {c} a collection, {name} a plugin or list kind, {id} an
// integer (an item, a user, a list key).
struct Match {
  std::string collection, name;
  uint64_t id = 0;
};

using Decoder = Result<Call> (*)(const Match& m, object body);

struct Route {
  std::string_view method;
  std::string_view path;
  Decoder decode;
};

Result<CollectionSchema> SchemaFromJson(object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"name", "dim", "metric", "index", "clusters", "topics",
                                      "topic_threshold", "topic_concat", "max_history", "shards"}));
  CollectionSchema s;
  QV_RETURN_IF_ERROR(GetString(obj, "name", &s.name));
  QV_RETURN_IF_ERROR(GetUint(obj, "dim", &s.dim));
  std::string metric = "l2";
  QV_RETURN_IF_ERROR(GetString(obj, "metric", &metric));
  auto m = ParseMetric(metric);
  if (!m) return Bad("unknown metric '" + metric + "' (l2, ip, cosine)");
  s.metric = *m;
  QV_RETURN_IF_ERROR(GetUint(obj, "clusters", &s.clusters));
  QV_RETURN_IF_ERROR(GetUint(obj, "topics", &s.topics));
  QV_RETURN_IF_ERROR(GetFloat(obj, "topic_threshold", &s.topic_threshold));
  QV_RETURN_IF_ERROR(GetBool(obj, "topic_concat", &s.topic_concat));
  QV_RETURN_IF_ERROR(GetUint(obj, "max_history", &s.max_history));
  QV_RETURN_IF_ERROR(GetUint(obj, "shards", &s.shards));
  element ie;
  if (!obj["index"].get(ie)) {
    object io;
    if (auto err = ie.get_object().get(io)) return BadField("index", err);
    QV_RETURN_IF_ERROR(OnlyFields(io, {"type", "m", "ef_construction", "ef_search", "sq8", "nlist",
                                       "pq_m", "nbits", "nprobe", "refine", "refine_int8"}));
    IndexSpec& x = s.index;
    std::string type = "hnsw";
    QV_RETURN_IF_ERROR(GetString(io, "type", &type));
    auto t = ParseIndexType(type);
    if (!t) return Bad("unknown index type '" + type + "' (flat, hnsw, ivf_pq)");
    x.type = *t;
    QV_RETURN_IF_ERROR(GetUint(io, "m", &x.hnsw_m));
    QV_RETURN_IF_ERROR(GetUint(io, "ef_construction", &x.hnsw_ef_construction));
    QV_RETURN_IF_ERROR(GetUint(io, "ef_search", &x.hnsw_ef_search));
    QV_RETURN_IF_ERROR(GetBool(io, "sq8", &x.hnsw_sq8));
    QV_RETURN_IF_ERROR(GetUint(io, "nlist", &x.ivf_nlist));
    QV_RETURN_IF_ERROR(GetUint(io, "pq_m", &x.ivf_m));
    QV_RETURN_IF_ERROR(GetUint(io, "nbits", &x.ivf_nbits));
    QV_RETURN_IF_ERROR(GetUint(io, "nprobe", &x.ivf_nprobe));
    QV_RETURN_IF_ERROR(GetUint(io, "refine", &x.ivf_refine));
    QV_RETURN_IF_ERROR(GetBool(io, "refine_int8", &x.ivf_refine_int8));
  }
  return s;
}

Result<Call> RunPlugin(const Match& m, object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"config", "incremental"}));
  RunPluginCall c{m.collection, m.name, "", false};
  element ce;
  if (!obj["config"].get(ce)) {
    object co;
    if (auto err = ce.get_object().get(co)) return BadField("config", err);
    c.config = simdjson::minify(ce);
  }
  QV_RETURN_IF_ERROR(GetBool(obj, "incremental", &c.incremental));
  return Call(std::move(c));
}

Result<Call> Upsert(const Match& m, object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"items"}));
  UpsertCall c{m.collection, {}};
  QV_RETURN_IF_ERROR(ArrayOfObjects(obj, "items", &c.items, [](object o, ItemRecord* item) {
    return formats::ItemFromJson(o, /*allow_vector=*/true, item);
  }));
  return Call(std::move(c));
}

Result<Call> PutUsers(const Match& m, object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"users"}));
  PutUsersCall c{m.collection, {}};
  QV_RETURN_IF_ERROR(ArrayOfObjects(obj, "users", &c.users, formats::UserFromJson));
  return Call(std::move(c));
}

Result<Call> AddEvents(const Match& m, object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"events"}));
  AddEventsCall c{m.collection, {}};
  QV_RETURN_IF_ERROR(ArrayOfObjects(obj, "events", &c.events, [](object o, Event* e) -> Status {
    QV_RETURN_IF_ERROR(OnlyFields(o, {"user", "item", "timestamp"}));
    if (auto err = o["user"].get_uint64().get(e->user)) return BadField("user", err);
    if (auto err = o["item"].get_uint64().get(e->item)) return BadField("item", err);
    if (auto err = o["timestamp"].get_int64().get(e->timestamp)) return BadField("timestamp", err);
    return Status::Ok();
  }));
  return Call(std::move(c));
}

// PUT /v1/cluster/shards/{s}: the nodes routers send shard s to.
Result<Call> AssignShard(const Match& m, object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"nodes"}));
  if (m.id > UINT32_MAX) return Bad("shard is out of range");
  AssignShardCall c{uint32_t(m.id), {}};
  element nodes;
  if (obj["nodes"].get(nodes)) return Bad("nodes is required (an array of node ids; [] for all)");
  simdjson::dom::array list;
  if (auto err = nodes.get_array().get(list)) return BadField("nodes", err);
  for (element e : list) {
    std::string_view id;
    if (auto err = e.get_string().get(id)) return BadField("nodes", err);
    c.nodes.emplace_back(id);
  }
  return Call(std::move(c));
}

// POST /v1/collections/{c}/versions: publish a cluster bulk build as a version.
Result<Call> PublishVersion(const Match& m, object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"version", "path", "after_seq"}));
  ReloadCall c;
  c.collection = m.collection;
  QV_RETURN_IF_ERROR(GetString(obj, "version", &c.version));
  QV_RETURN_IF_ERROR(GetString(obj, "path", &c.path));
  if (c.version.empty()) return Bad("version is required");
  if (c.path.empty()) return Bad("path is required (the directory `quiver build --shards` wrote)");
  element seq;
  if (!obj["after_seq"].get(seq)) {
    c.after_seq = 0;
    QV_RETURN_IF_ERROR(GetUint(obj, "after_seq", &*c.after_seq));
  }
  return Call(std::move(c));
}

Result<Call> Reload(const Match&, object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"version"}));
  ReloadCall c;
  QV_RETURN_IF_ERROR(GetString(obj, "version", &c.version));
  if (c.version.empty()) return Bad("version is required");
  return Call(std::move(c));
}

Result<Call> SearchBatch(const Match& m, object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"searches"}));
  SearchBatchCall c;
  QV_RETURN_IF_ERROR(ArrayOfObjects(obj, "searches", &c.searches, [&](object o, SearchCall* s) {
    QV_ASSIGN_OR_RETURN(*s, SearchFromJson(o, m.collection));
    return Status::Ok();
  }));
  return Call(std::move(c));
}

// An optional "filter" (docs/queries.md, "Filters").
Status OptionalFilter(object obj, std::optional<Filter>* out) {
  element f;
  if (obj["filter"].get(f)) return Status::Ok();
  QV_ASSIGN_OR_RETURN(Filter filter, FilterFromJson(f));
  *out = std::move(filter);
  return Status::Ok();
}

Result<Call> Count(const Match& m, object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"filter"}));
  CountCall c{m.collection, std::nullopt};
  QV_RETURN_IF_ERROR(OptionalFilter(obj, &c.filter));
  return Call(std::move(c));
}

Result<Call> Scroll(const Match& m, object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"cursor", "limit", "filter", "vectors", "payload"}));
  ScrollCall c;
  c.collection = m.collection;
  QV_RETURN_IF_ERROR(GetUint(obj, "cursor", &c.cursor));
  QV_RETURN_IF_ERROR(GetUint(obj, "limit", &c.limit));
  QV_RETURN_IF_ERROR(OptionalFilter(obj, &c.filter));
  QV_RETURN_IF_ERROR(GetBool(obj, "vectors", &c.with_vectors));
  QV_RETURN_IF_ERROR(GetBool(obj, "payload", &c.with_payload));
  return Call(std::move(c));
}

template <typename C>
Result<Call> Ids(const Match& m, object obj) {
  C c{m.collection, {}};
  QV_RETURN_IF_ERROR(GetIds(obj, &c.ids));
  return Call(std::move(c));
}

// The routes, most specific first where two patterns could match one path.
constexpr Route kRoutes[] = {
    {"GET", "/healthz", [](const Match&, object) -> Result<Call> { return Call(HealthCall{}); }},
    {"GET", "/v1/collections",
     [](const Match&, object) -> Result<Call> { return Call(ListCollectionsCall{}); }},
    {"POST", "/v1/collections",
     [](const Match&, object obj) -> Result<Call> {
       QV_ASSIGN_OR_RETURN(auto schema, SchemaFromJson(obj));
       return Call(CreateCollectionCall{std::move(schema)});
     }},
    {"GET", "/v1/collections/{c}",
     [](const Match& m, object) -> Result<Call> {
       return Call(DescribeCollectionCall{m.collection});
     }},
    {"DELETE", "/v1/collections/{c}",
     [](const Match& m, object) -> Result<Call> { return Call(DropCollectionCall{m.collection}); }},
    {"POST", "/v1/collections/{c}/items", Upsert},
    {"POST", "/v1/collections/{c}/items/delete", Ids<DeleteCall>},
    {"POST", "/v1/collections/{c}/items/get", Ids<GetCall>},
    {"GET", "/v1/collections/{c}/items/{id}",
     [](const Match& m, object) -> Result<Call> {
       return Call(GetCall{m.collection, {m.id}});
     }},
    {"POST", "/v1/collections/{c}/users", PutUsers},
    {"GET", "/v1/collections/{c}/users/{id}",
     [](const Match& m, object) -> Result<Call> {
       return Call(GetUserCall{m.collection, m.id});
     }},
    {"POST", "/v1/collections/{c}/events", AddEvents},
    {"POST", "/v1/collections/{c}/search",
     [](const Match& m, object obj) -> Result<Call> {
       QV_ASSIGN_OR_RETURN(SearchCall c, SearchFromJson(obj, m.collection));
       return Call(std::move(c));
     }},
    {"POST", "/v1/collections/{c}/search/batch", SearchBatch},
    {"GET", "/v1/collections/{c}/count",
     [](const Match& m, object) -> Result<Call> {
       return Call(CountCall{m.collection, std::nullopt});
     }},
    {"POST", "/v1/collections/{c}/count", Count},
    {"POST", "/v1/collections/{c}/scroll", Scroll},
    {"POST", "/v1/collections/{c}/snapshot",
     [](const Match& m, object) -> Result<Call> { return Call(SnapshotCall{m.collection}); }},
    {"POST", "/v1/collections/{c}/plugins/{name}/run", RunPlugin},
    {"GET", "/v1/collections/{c}/lists",
     [](const Match& m, object) -> Result<Call> { return Call(ListListsCall{m.collection}); }},
    {"GET", "/v1/collections/{c}/lists/{name}/{id}",
     [](const Match& m, object) -> Result<Call> {
       return Call(GetListCall{m.collection, m.name, m.id});
     }},
    {"GET", "/v1/plugins",
     [](const Match&, object) -> Result<Call> { return Call(ListPluginsCall{}); }},
    {"POST", "/v1/snapshot",
     [](const Match&, object) -> Result<Call> { return Call(SnapshotCall{}); }},
    {"GET", "/v1/collections/{c}/versions",
     [](const Match& m, object) -> Result<Call> { return Call(ListVersionsCall{m.collection}); }},
    {"POST", "/v1/collections/{c}/versions", PublishVersion},
    {"POST", "/v1/collections/{c}/versions/rollback",
     [](const Match& m, object) -> Result<Call> { return Call(RollbackCall{m.collection}); }},
    {"GET", "/v1/cluster",
     [](const Match&, object) -> Result<Call> { return Call(ClusterInfoCall{}); }},
    {"PUT", "/v1/cluster/shards/{id}", AssignShard},
    {"GET", "/v1/versions",
     [](const Match&, object) -> Result<Call> { return Call(ListVersionsCall{}); }},
    {"POST", "/v1/versions/reload", Reload},
    {"POST", "/v1/versions/rollback",
     [](const Match&, object) -> Result<Call> { return Call(RollbackCall{}); }},
};

// Each route's pattern split into segments, once.
const std::vector<std::vector<std::string_view>>& RouteSegments() {
  static const std::vector<std::vector<std::string_view>> split = [] {
    std::vector<std::vector<std::string_view>> out;
    for (const Route& route : kRoutes) out.push_back(SplitPath(route.path));
    return out;
  }();
  return split;
}

// Whether the path's segments fit the pattern's, filling the captures.
bool Matches(const std::vector<std::string_view>& want,
             const std::vector<std::string_view>& segments, Match* m) {
  if (want.size() != segments.size()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] == "{c}") {
      m->collection = std::string(segments[i]);
    } else if (want[i] == "{name}") {
      m->name = std::string(segments[i]);
    } else if (want[i] == "{id}") {
      if (!ParseU64(segments[i], &m->id)) return false;
    } else if (want[i] != segments[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<Call> DecodeHttpCall(std::string_view method, std::string_view target,
                            std::string_view body_text, size_t max_json_depth) {
  const std::vector<std::string_view> segments = SplitPath(target);
  bool path_known = false;
  for (size_t r = 0; r < std::size(kRoutes); ++r) {
    const Route& route = kRoutes[r];
    Match m;
    if (!Matches(RouteSegments()[r], segments, &m)) continue;
    path_known = true;
    if (route.method != method) continue;
    Body body;
    if (method == "POST" || method == "PUT")
      QV_RETURN_IF_ERROR(ParseBody(body_text, max_json_depth, &body));
    return route.decode(m, body.obj);
  }
  if (path_known)
    return UnimplementedError("method " + std::string(method) + " is not allowed here");
  return NotFoundError("no route " + std::string(method) + " " + std::string(target));
}

}  // namespace quiver::net
