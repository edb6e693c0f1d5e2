#include "net/json_api.h"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "formats/json_item.h"

namespace quiver::net {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

Status Bad(const std::string& message) { return InvalidArgumentError(message); }

Status BadField(std::string_view field, simdjson::error_code err) {
  return Bad("bad " + std::string(field) + " (" + simdjson::error_message(err) + ")");
}

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

bool ParseU64(std::string_view s, uint64_t* v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

// A parsed JSON body; the parser owns the document.
struct Body {
  simdjson::dom::parser parser;
  object obj;
};

Status ParseBody(std::string_view text, size_t max_depth, Body* body) {
  if (text.empty()) text = "{}";
  if (auto err = body->parser.allocate(text.size(), max_depth)) return BadField("body", err);
  element root;
  if (auto err = body->parser.parse(text.data(), text.size()).get(root)) {
    return Bad(std::string("body is not valid JSON: ") + simdjson::error_message(err));
  }
  if (root.get_object().get(body->obj)) return Bad("body must be a JSON object");
  return Status::Ok();
}

// Rejects fields outside `known`.
Status OnlyFields(object obj, std::initializer_list<std::string_view> known) {
  for (auto field : obj) {
    bool ok = false;
    for (std::string_view k : known) ok = ok || field.key == k;
    if (!ok) {
      std::string list;
      for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return Bad("unknown field '" + std::string(field.key) + "' (known: " + list + ")");
    }
  }
  return Status::Ok();
}

template <typename T>
Status GetUint(object obj, std::string_view key, T* out) {
  element e;
  if (obj[key].get(e)) return Status::Ok();  // absent: keep the default
  uint64_t v;
  if (auto err = e.get_uint64().get(v)) return BadField(key, err);
  if (v > std::numeric_limits<T>::max()) return Bad(std::string(key) + " is out of range");
  *out = T(v);
  return Status::Ok();
}

Status GetBool(object obj, std::string_view key, bool* out) {
  element e;
  if (obj[key].get(e)) return Status::Ok();
  if (auto err = e.get_bool().get(*out)) return BadField(key, err);
  return Status::Ok();
}

Status GetFloat(object obj, std::string_view key, float* out) {
  element e;
  if (obj[key].get(e)) return Status::Ok();
  double v;
  if (auto err = e.get_double().get(v)) return BadField(key, err);
  *out = float(v);
  return Status::Ok();
}

// A duration in timestamp units: an integer, or a string of digits with a unit s, m, h or d
// ("90s", "15m", "6h", "30d"; in seconds).
Status GetDuration(object obj, std::string_view key, const char* what, int64_t* out) {
  element e;
  if (obj[key].get(e)) return Status::Ok();
  std::string_view text;
  if (e.get_string().get(text) != simdjson::SUCCESS) {
    if (auto err = e.get_int64().get(*out)) return BadField(what, err);
    return Status::Ok();
  }
  auto bad = [&] {
    return Bad(std::string(what) + " '" + std::string(text) +
               "' is not a duration (an integer, or digits with a unit s, m, h or d, as in \"6h\")");
  };
  if (text.size() < 2 || text.size() > 20) return bad();
  int64_t unit;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return bad();
  }
  int64_t n = 0;
  for (char ch : text.substr(0, text.size() - 1)) {
    if (ch < '0' || ch > '9' || __builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, ch - '0', &n)) {
      return bad();
    }
  }
  if (__builtin_mul_overflow(n, unit, out)) return bad();
  return Status::Ok();
}

// An array of float arrays.
Status FloatVectorsFromJson(element e, const char* what, std::vector<std::vector<float>>* out) {
  simdjson::dom::array a;
  if (auto err = e.get_array().get(a)) return BadField(what, err);
  for (element x : a) {
    out->emplace_back();
    QV_RETURN_IF_ERROR(formats::FloatsFromJson(x, what, &out->back()));
  }
  return Status::Ok();
}

Status GetString(object obj, std::string_view key, std::string* out) {
  element e;
  if (obj[key].get(e)) return Status::Ok();
  std::string_view s;
  if (auto err = e.get_string().get(s)) return BadField(key, err);
  *out = std::string(s);
  return Status::Ok();
}

Status GetIds(object obj, std::vector<uint64_t>* ids) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"ids"}));
  simdjson::dom::array a;
  if (auto err = obj["ids"].get_array().get(a)) return BadField("ids", err);
  for (element x : a) {
    uint64_t id;
    if (auto err = x.get_uint64().get(id)) return BadField("ids", err);
    ids->push_back(id);
  }
  return Status::Ok();
}

// {"eq": {"category": 3}}, {"in": {"tag": [1, 2]}}, {"range": {"timestamp": {"gte": a, "lte": b}}},
// {"not": filter}, {"and": [filters]}, {"or": [filters]}.
Result<Filter> FilterFromJson(element e, int depth) {
  if (depth > 16) return Bad("filter is nested deeper than 16");
  object o;
  if (e.get_object().get(o) || o.size() != 1) return Bad("a filter is an object with one key: eq, in, range, not, and, or");
  auto field = *o.begin();
  const std::string_view op = field.key;
  Filter f;
  auto field_of = [](std::string_view name, Filter::Field* out) {
    if (name == "category") *out = Filter::Field::kCategory;
    else if (name == "tag" || name == "tags") *out = Filter::Field::kTag;
    else if (name == "timestamp") *out = Filter::Field::kTimestamp;
    else if (name == "cluster") *out = Filter::Field::kCluster;
    else return false;
    return true;
  };
  if (op == "and" || op == "or") {
    f.op = op == "and" ? Filter::Op::kAnd : Filter::Op::kOr;
    simdjson::dom::array a;
    if (field.value.get_array().get(a)) return Bad("filter " + std::string(op) + " takes an array");
    for (element c : a) {
      QV_ASSIGN_OR_RETURN(Filter child, FilterFromJson(c, depth + 1));
      f.children.push_back(std::move(child));
    }
    return f;
  }
  if (op == "not") {
    f.op = Filter::Op::kNot;
    QV_ASSIGN_OR_RETURN(Filter child, FilterFromJson(field.value, depth + 1));
    f.children.push_back(std::move(child));
    return f;
  }
  object body;
  if (field.value.get_object().get(body) || body.size() != 1) {
    return Bad("filter " + std::string(op) + " takes an object with one field");
  }
  auto target = *body.begin();
  if (!field_of(target.key, &f.field)) {
    return Bad("unknown filter field '" + std::string(target.key) + "' (category, tag, timestamp, cluster)");
  }
  if (op == "eq" || op == "in") {
    f.op = op == "eq" ? Filter::Op::kEq : Filter::Op::kIn;
    int64_t v;
    if (op == "eq") {
      if (auto err = target.value.get_int64().get(v)) return BadField("filter eq", err);
      f.values.push_back(v);
      return f;
    }
    simdjson::dom::array a;
    if (auto err = target.value.get_array().get(a)) return BadField("filter in", err);
    for (element x : a) {
      if (auto err = x.get_int64().get(v)) return BadField("filter in", err);
      f.values.push_back(v);
    }
    return f;
  }
  if (op == "range") {
    f.op = Filter::Op::kRange;
    object r;
    if (target.value.get_object().get(r)) return Bad("filter range takes {gte, gt, lte, lt}");
    for (auto bound : r) {
      int64_t v;
      if (auto err = bound.value.get_int64().get(v)) return BadField("filter range", err);
      if (bound.key == "gte") f.lo = v;
      else if (bound.key == "gt") f.lo = v == INT64_MAX ? v : v + 1;
      else if (bound.key == "lte") f.hi = v;
      else if (bound.key == "lt") f.hi = v == INT64_MIN ? v : v - 1;
      else return Bad("unknown range bound '" + std::string(bound.key) + "' (gte, gt, lte, lt)");
    }
    return f;
  }
  return Bad("unknown filter '" + std::string(op) + "' (eq, in, range, not, and, or)");
}

Result<CollectionSchema> SchemaFromJson(object obj) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"name", "dim", "metric", "index", "clusters", "topics", "topic_threshold",
                                      "topic_concat", "max_history"}));
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
  element ie;
  if (!obj["index"].get(ie)) {
    object io;
    if (auto err = ie.get_object().get(io)) return BadField("index", err);
    QV_RETURN_IF_ERROR(OnlyFields(io, {"type", "m", "ef_construction", "ef_search", "sq8", "nlist", "pq_m",
                                       "nbits", "nprobe", "refine", "refine_int8"}));
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

template <typename T, typename F>
Status ArrayOfObjects(object obj, std::string_view key, std::vector<T>* out, F parse) {
  simdjson::dom::array a;
  if (auto err = obj[key].get_array().get(a)) return BadField(key, err);
  out->reserve(a.size());
  size_t i = 0;
  for (element x : a) {
    object o;
    if (auto err = x.get_object().get(o)) return BadField(std::string(key) + "[" + std::to_string(i) + "]", err);
    T value;
    Status s = parse(o, &value);
    if (!s.ok()) return Bad(std::string(key) + "[" + std::to_string(i) + "]: " + std::string(s.message()));
    out->push_back(std::move(value));
    ++i;
  }
  return Status::Ok();
}

Result<Call> CollectionCall(std::string_view method, std::string_view name, std::string_view action,
                            std::string_view arg, std::string_view arg2, const Body& body) {
  const std::string coll(name);
  object obj = body.obj;
  auto wrong_method = [&] {
    return UnimplementedError("method " + std::string(method) + " is not allowed here");
  };
  if (action == "plugins" && !arg.empty() && arg2 == "run") {
    if (method != "POST") return wrong_method();
    QV_RETURN_IF_ERROR(OnlyFields(obj, {"config", "incremental"}));
    RunPluginCall c{coll, std::string(arg), "", false};
    element ce;
    if (!obj["config"].get(ce)) {
      object co;
      if (auto err = ce.get_object().get(co)) return BadField("config", err);
      c.config = simdjson::minify(ce);
    }
    QV_RETURN_IF_ERROR(GetBool(obj, "incremental", &c.incremental));
    return Call(std::move(c));
  }
  if (action == "lists") {
    if (method != "GET") return wrong_method();
    if (arg.empty()) return Call(ListListsCall{coll});
    uint64_t key;
    if (arg2.empty() || !ParseU64(arg2, &key)) return NotFoundError("no route for list key '" + std::string(arg2) + "'");
    return Call(GetListCall{coll, std::string(arg), key});
  }
  if (!arg2.empty()) return NotFoundError("no route under collection '" + coll + "'");
  if (action.empty()) {
    if (method == "GET") return Call(DescribeCollectionCall{coll});
    if (method == "DELETE") return Call(DropCollectionCall{coll});
    return wrong_method();
  }
  if (action == "items" && arg.empty()) {
    if (method != "POST") return wrong_method();
    QV_RETURN_IF_ERROR(OnlyFields(obj, {"items"}));
    UpsertCall c{coll, {}};
    QV_RETURN_IF_ERROR(ArrayOfObjects(obj, "items", &c.items, [](object o, ItemRecord* item) {
      return formats::ItemFromJson(o, /*allow_vector=*/true, item);
    }));
    return Call(std::move(c));
  }
  if (action == "items" && (arg == "delete" || arg == "get")) {
    if (method != "POST") return wrong_method();
    std::vector<uint64_t> ids;
    QV_RETURN_IF_ERROR(GetIds(obj, &ids));
    if (arg == "delete") return Call(DeleteCall{coll, std::move(ids)});
    return Call(GetCall{coll, std::move(ids)});
  }
  if (action == "items") {
    uint64_t id;
    if (!ParseU64(arg, &id)) return NotFoundError("no route for item '" + std::string(arg) + "'");
    if (method != "GET") return wrong_method();
    return Call(GetCall{coll, {id}});
  }
  if (action == "users" && arg.empty()) {
    if (method != "POST") return wrong_method();
    QV_RETURN_IF_ERROR(OnlyFields(obj, {"users"}));
    PutUsersCall c{coll, {}};
    QV_RETURN_IF_ERROR(ArrayOfObjects(obj, "users", &c.users, formats::UserFromJson));
    return Call(std::move(c));
  }
  if (action == "users") {
    uint64_t id;
    if (!ParseU64(arg, &id)) return NotFoundError("no route for user '" + std::string(arg) + "'");
    if (method != "GET") return wrong_method();
    return Call(GetUserCall{coll, id});
  }
  if (action == "events" && arg.empty()) {
    if (method != "POST") return wrong_method();
    QV_RETURN_IF_ERROR(OnlyFields(obj, {"events"}));
    AddEventsCall c{coll, {}};
    QV_RETURN_IF_ERROR(ArrayOfObjects(obj, "events", &c.events, [](object o, Event* e) -> Status {
      QV_RETURN_IF_ERROR(OnlyFields(o, {"user", "item", "timestamp"}));
      if (auto err = o["user"].get_uint64().get(e->user)) return BadField("user", err);
      if (auto err = o["item"].get_uint64().get(e->item)) return BadField("item", err);
      if (auto err = o["timestamp"].get_int64().get(e->timestamp)) return BadField("timestamp", err);
      return Status::Ok();
    }));
    return Call(std::move(c));
  }
  if (action == "search" && arg.empty()) {
    if (method != "POST") return wrong_method();
    QV_RETURN_IF_ERROR(OnlyFields(
        obj, {"vector", "vectors", "aggregate", "weights", "quota", "filter", "rerank", "mvke", "fresh", "payload", "channels", "k", "params"}));
    SearchCall c;
    c.collection = coll;
    element v;
    if (!obj["vector"].get(v)) QV_RETURN_IF_ERROR(formats::FloatsFromJson(v, "vector", &c.vector));
    if (!obj["vectors"].get(v)) QV_RETURN_IF_ERROR(FloatVectorsFromJson(v, "vectors", &c.vectors));
    if (!obj["mvke"].get(v)) {
      object mo;
      if (auto err = v.get_object().get(mo)) return BadField("mvke", err);
      QV_RETURN_IF_ERROR(OnlyFields(mo, {"user_vectors", "strategy", "candidates", "max_candidates"}));
      MvkeParams m;
      element uv;
      if (auto err = mo["user_vectors"].get(uv)) return BadField("mvke user_vectors", err);
      QV_RETURN_IF_ERROR(FloatVectorsFromJson(uv, "mvke user_vectors", &m.user_vectors));
      std::string strategy = "per_topic";
      QV_RETURN_IF_ERROR(GetString(mo, "strategy", &strategy));
      if (strategy == "per_topic") {
        m.strategy = 0;
      } else if (strategy == "concat") {
        m.strategy = 1;
      } else if (strategy == "rescore") {
        m.strategy = 2;
      } else if (strategy == "weighted_scan") {
        m.strategy = 3;
      } else {
        return Bad("unknown mvke strategy '" + strategy + "' (per_topic, concat, rescore, weighted_scan)");
      }
      QV_RETURN_IF_ERROR(GetUint(mo, "candidates", &m.candidates));
      QV_RETURN_IF_ERROR(GetUint(mo, "max_candidates", &m.max_candidates));
      c.mvke = std::move(m);
    }
    QV_RETURN_IF_ERROR(GetBool(obj, "payload", &c.with_payload));
    if (!obj["fresh"].get(v)) {
      object fo;
      if (auto err = v.get_object().get(fo)) return BadField("fresh", err);
      QV_RETURN_IF_ERROR(OnlyFields(fo, {"pool", "now", "boost", "half_life", "horizon", "window"}));
      Fresh f;
      QV_RETURN_IF_ERROR(GetDuration(fo, "pool", "fresh pool", &f.pool));
      element ne;
      if (!fo["now"].get(ne)) {
        if (auto err = ne.get_int64().get(f.now)) return BadField("fresh now", err);
      }
      QV_RETURN_IF_ERROR(GetFloat(fo, "boost", &f.boost));
      QV_RETURN_IF_ERROR(GetDuration(fo, "half_life", "fresh half_life", &f.half_life));
      QV_RETURN_IF_ERROR(GetDuration(fo, "horizon", "fresh horizon", &f.horizon));
      QV_RETURN_IF_ERROR(GetUint(fo, "window", &f.window));
      c.fresh = f;
    }
    if (!obj["channels"].get(v)) {
      object co;
      if (auto err = v.get_object().get(co)) return BadField("channels", err);
      QV_RETURN_IF_ERROR(OnlyFields(co, {"user", "seed_items", "u2i", "u2i2i", "u2u2i", "seeds", "per_seed", "users",
                                         "per_user", "i2i_kind", "u2u_kind", "weights", "exclude_seen"}));
      Channels ch;
      element ue;
      if (!co["user"].get(ue)) {
        uint64_t user;
        if (auto err = ue.get_uint64().get(user)) return BadField("channels user", err);
        ch.user = user;
      }
      if (!co["seed_items"].get(ue)) {
        simdjson::dom::array a;
        if (auto err = ue.get_array().get(a)) return BadField("channels seed_items", err);
        for (element x : a) {
          uint64_t id;
          if (auto err = x.get_uint64().get(id)) return BadField("channels seed_items", err);
          ch.seed_items.push_back(id);
        }
      }
      QV_RETURN_IF_ERROR(GetBool(co, "u2i", &ch.u2i));
      QV_RETURN_IF_ERROR(GetBool(co, "u2i2i", &ch.u2i2i));
      QV_RETURN_IF_ERROR(GetBool(co, "u2u2i", &ch.u2u2i));
      QV_RETURN_IF_ERROR(GetBool(co, "exclude_seen", &ch.exclude_seen));
      QV_RETURN_IF_ERROR(GetUint(co, "seeds", &ch.seeds));
      QV_RETURN_IF_ERROR(GetUint(co, "per_seed", &ch.per_seed));
      QV_RETURN_IF_ERROR(GetUint(co, "users", &ch.users));
      QV_RETURN_IF_ERROR(GetUint(co, "per_user", &ch.per_user));
      QV_RETURN_IF_ERROR(GetString(co, "i2i_kind", &ch.i2i_kind));
      QV_RETURN_IF_ERROR(GetString(co, "u2u_kind", &ch.u2u_kind));
      if (!co["weights"].get(ue)) {
        object wo;
        if (auto err = ue.get_object().get(wo)) return BadField("channels weights", err);
        QV_RETURN_IF_ERROR(OnlyFields(wo, {"sim", "dup", "div"}));
        QV_RETURN_IF_ERROR(GetFloat(wo, "sim", &ch.w_sim));
        QV_RETURN_IF_ERROR(GetFloat(wo, "dup", &ch.w_dup));
        QV_RETURN_IF_ERROR(GetFloat(wo, "div", &ch.w_div));
      }
      c.channels = std::move(ch);
    }
    if (c.vector.empty() && c.vectors.empty() && !c.mvke && !c.channels) {
      return Bad("a search needs vector, vectors, mvke or channels");
    }
    std::string aggregate = "max";
    QV_RETURN_IF_ERROR(GetString(obj, "aggregate", &aggregate));
    if (aggregate == "max") {
      c.aggregate = 0;
    } else if (aggregate == "sum") {
      c.aggregate = 1;
    } else if (aggregate == "weighted") {
      c.aggregate = 2;
    } else {
      return Bad("unknown aggregate '" + aggregate + "' (max, sum, weighted)");
    }
    if (!obj["weights"].get(v)) QV_RETURN_IF_ERROR(formats::FloatsFromJson(v, "weights", &c.weights));
    if (!obj["quota"].get(v)) {
      object qo;
      if (auto err = v.get_object().get(qo)) return BadField("quota", err);
      QV_RETURN_IF_ERROR(OnlyFields(qo, {"p", "a", "total", "temperature"}));
      QuotaParams quota;
      element pe;
      if (!qo["p"].get(pe)) {
        std::string_view word;
        if (pe.get_string().get(word) == simdjson::SUCCESS) {
          if (word != "auto") return Bad("quota p must be an array or \"auto\"");
        } else {
          QV_RETURN_IF_ERROR(formats::FloatsFromJson(pe, "quota p", &quota.p));
        }
      }
      for (auto [key, out] : {std::pair<const char*, float*>{"a", &quota.a}, {"temperature", &quota.temperature}}) {
        element x;
        if (qo[key].get(x)) continue;
        double d;
        if (auto err = x.get_double().get(d)) return BadField(std::string("quota ") + key, err);
        *out = float(d);
      }
      QV_RETURN_IF_ERROR(GetUint(qo, "total", &quota.total));
      c.quota = std::move(quota);
    }
    if (!obj["filter"].get(v)) {
      QV_ASSIGN_OR_RETURN(Filter filter, FilterFromJson(v, 0));
      c.filter = std::move(filter);
    }
    if (!obj["rerank"].get(v)) {
      object ro;
      if (auto err = v.get_object().get(ro)) return BadField("rerank", err);
      QV_RETURN_IF_ERROR(OnlyFields(ro, {"mmr", "max_consecutive_category", "per_category_cap", "category_diversity"}));
      Rerank r;
      element me;
      if (!ro["mmr"].get(me)) {
        object mo;
        if (auto err = me.get_object().get(mo)) return BadField("rerank mmr", err);
        QV_RETURN_IF_ERROR(OnlyFields(mo, {"lambda", "window"}));
        double lambda;
        if (auto err = mo["lambda"].get_double().get(lambda)) return BadField("rerank mmr lambda", err);
        r.mmr_lambda = float(lambda);
        QV_RETURN_IF_ERROR(GetUint(mo, "window", &r.window));
      }
      QV_RETURN_IF_ERROR(GetUint(ro, "max_consecutive_category", &r.max_consecutive_category));
      QV_RETURN_IF_ERROR(GetUint(ro, "per_category_cap", &r.per_category_cap));
      element ce;
      if (!ro["category_diversity"].get(ce)) {
        double d;
        if (auto err = ce.get_double().get(d)) return BadField("rerank category_diversity", err);
        r.category_diversity = float(d);
      }
      c.rerank = r;
    }
    QV_RETURN_IF_ERROR(GetUint(obj, "k", &c.k));
    element pe;
    if (!obj["params"].get(pe)) {
      object p;
      if (auto err = pe.get_object().get(p)) return BadField("params", err);
      QV_RETURN_IF_ERROR(OnlyFields(p, {"ef", "nprobe", "refine"}));
      QV_RETURN_IF_ERROR(GetUint(p, "ef", &c.ef));
      QV_RETURN_IF_ERROR(GetUint(p, "nprobe", &c.nprobe));
      QV_RETURN_IF_ERROR(GetUint(p, "refine", &c.refine));
    }
    return Call(std::move(c));
  }
  if (action == "snapshot" && arg.empty()) {
    if (method != "POST") return wrong_method();
    return Call(SnapshotCall{coll});
  }
  return NotFoundError("no route " + std::string(method) + " /v1/collections/" + coll + "/" + std::string(action));
}

// ---- encoding ----

class JsonWriter {
 public:
  void Raw(std::string_view s) { out_ += s; }
  void String(std::string_view s) {
    out_.push_back('"');
    for (char c : s) {
      switch (c) {
        case '"': out_ += "\\\""; break;
        case '\\': out_ += "\\\\"; break;
        case '\n': out_ += "\\n"; break;
        case '\r': out_ += "\\r"; break;
        case '\t': out_ += "\\t"; break;
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
  w.Key("name"); w.String(s.name);
  w.Key("dim"); w.Number(s.dim);
  w.Key("metric"); w.String(MetricName(s.metric));
  w.Key("index"); w.Raw("{");
  w.Key("type"); w.String(IndexTypeName(x.type));
  if (x.type == IndexSpec::Type::kHnsw) {
    w.Key("m"); w.Number(x.hnsw_m);
    w.Key("ef_construction"); w.Number(x.hnsw_ef_construction);
    w.Key("ef_search"); w.Number(x.hnsw_ef_search);
    w.Key("sq8"); w.Raw(x.hnsw_sq8 ? "true" : "false");
  } else if (x.type == IndexSpec::Type::kIvfPq) {
    w.Key("nlist"); w.Number(x.ivf_nlist);
    w.Key("pq_m"); w.Number(x.ivf_m);
    w.Key("nbits"); w.Number(x.ivf_nbits);
    w.Key("nprobe"); w.Number(x.ivf_nprobe);
    w.Key("refine"); w.Number(x.ivf_refine);
    w.Key("refine_int8"); w.Raw(x.ivf_refine_int8 ? "true" : "false");
  }
  w.Raw("}");
  w.Key("clusters"); w.Number(s.clusters);
  w.Key("topics"); w.Number(s.topics);
  w.Key("topic_threshold"); w.Float(s.topic_threshold);
  w.Key("topic_concat"); w.Raw(s.topic_concat ? "true" : "false");
  w.Key("max_history"); w.Number(s.max_history);
  w.Raw("}");
}

void WriteInfo(JsonWriter& w, const CollectionInfo& info) {
  w.Raw("{");
  w.Key("schema"); WriteSchema(w, info.schema);
  w.Key("items"); w.Number(info.items);
  w.Key("op_seq"); w.Number(info.op_seq);
  w.Key("snapshot_seq"); w.Number(info.snapshot_seq);
  w.Key("index_memory_bytes"); w.Number(info.index_memory_bytes);
  w.Key("trained"); w.Raw(info.trained ? "true" : "false");
  w.Raw("}");
}

void WriteItem(JsonWriter& w, const ItemRecord& item) {
  w.Raw("{");
  w.Key("id"); w.Number(item.id);
  w.Key("vector"); w.Array(item.vector, [&](float v) { w.Float(v); });
  w.Key("cluster"); w.Number(item.cluster);
  w.Key("topics"); w.Array(item.topic_weights, [&](float v) { w.Float(v); });
  w.Key("category");
  if (item.category) {
    w.Number(*item.category);
  } else {
    w.Raw("null");
  }
  w.Key("tags"); w.Array(item.tags, [&](int64_t v) { w.Number(v); });
  w.Key("timestamp"); w.Number(item.timestamp);
  w.Key("payload"); w.Raw(item.payload.empty() ? "null" : item.payload);
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
      w.Key("op_seq"); w.Number(r.op_seq);
      w.Key("changed"); w.Number(r.changed);
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
        w.Key("id"); w.Number(u.user->id);
        w.Key("vector"); w.Array(u.user->vector, [&](float v) { w.Float(v); });
        w.Key("history");
        w.Array(u.user->history, [&](const Interaction& e) {
          w.Raw("{");
          w.Key("item"); w.Number(e.item);
          w.Key("timestamp"); w.Number(e.timestamp);
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
        w.Key("id"); w.Number(s.hits[i].id);
        w.Key("score"); w.Float(s.hits[i].score);
        if (i < s.hit_vector.size()) {
          w.Key("vector"); w.Number(s.hit_vector[i]);
        }
        if (i < s.hit_cluster.size() && s.hit_cluster[i] >= 0) {
          w.Key("cluster"); w.Number(s.hit_cluster[i]);
        }
        if (i < s.hit_payload.size()) {
          w.Key("payload"); w.Raw(s.hit_payload[i].empty() ? "null" : s.hit_payload[i]);
        }
        if (i < s.hit_channels.size()) {
          w.Key("channels");
          std::vector<std::string> names;
          for (int b = 0; b < 3; ++b) {
            if (s.hit_channels[i] >> b & 1) names.push_back(b == 0 ? "u2i" : b == 1 ? "u2i2i" : "u2u2i");
          }
          w.Array(names, [&](const std::string& n) { w.String(n); });
        }
        w.Raw("}");
      }
      w.Raw("]");
      if (!s.quotas.empty()) {
        w.Key("quotas"); w.Array(s.quotas, [&](uint32_t v) { w.Number(v); });
      }
      if (!s.per_cluster.empty()) {
        w.Key("per_cluster"); w.Array(s.per_cluster, [&](uint32_t v) { w.Number(v); });
      }
      w.Raw("}");
    }
    void operator()(const VersionsInfo& v) {
      w.Raw("{");
      w.Key("current"); w.String(v.current);
      w.Key("previous"); w.String(v.previous);
      w.Key("versions"); w.Array(v.versions, [&](const std::string& s) { w.String(s); });
      w.Raw("}");
    }
    void operator()(const HealthResult& h) {
      w.Raw("{");
      w.Key("status"); w.String(h.status);
      w.Key("version"); w.String(h.version);
      w.Raw("}");
    }
    void operator()(const PluginRunResult& r) {
      w.Raw("{");
      w.Key("kinds"); w.Array(r.kinds, [&](const std::string& s) { w.String(s); });
      w.Key("lists"); w.Number(r.lists);
      w.Key("removed"); w.Number(r.removed);
      w.Key("incremental"); w.Raw(r.incremental ? "true" : "false");
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
          w.Key("id"); w.Number(h.id);
          w.Key("score"); w.Float(h.score);
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
        w.Key("kind"); w.String(i.kind);
        w.Key("plugin"); w.String(i.plugin);
        w.Key("config"); w.Raw(i.config.empty() ? "{}" : i.config);
        w.Key("keys"); w.Number(i.keys);
        w.Key("op_seq"); w.Number(i.op_seq);
        w.Raw("}");
      });
      w.Raw("}");
    }
    void operator()(const PluginsResult& r) {
      w.Raw("{");
      w.Key("plugins"); w.Array(r.names, [&](const std::string& s) { w.String(s); });
      w.Raw("}");
    }
  };
  std::visit(Visitor{w}, body);
}

}  // namespace

Result<Call> DecodeHttpCall(std::string_view method, std::string_view target, std::string_view body_text,
                            size_t max_json_depth) {
  const auto parts = SplitPath(target);
  auto wrong_method = [&] { return UnimplementedError("method " + std::string(method) + " is not allowed here"); };
  if (parts.size() == 1 && parts[0] == "healthz") {
    if (method != "GET") return wrong_method();
    return Call(HealthCall{});
  }
  if (parts.size() < 2 || parts[0] != "v1") return NotFoundError("no route " + std::string(target));
  Body body;
  if (method == "POST" || method == "PUT") QV_RETURN_IF_ERROR(ParseBody(body_text, max_json_depth, &body));
  if (parts[1] == "collections") {
    if (parts.size() == 2) {
      if (method == "GET") return Call(ListCollectionsCall{});
      if (method != "POST") return wrong_method();
      QV_ASSIGN_OR_RETURN(auto schema, SchemaFromJson(body.obj));
      return Call(CreateCollectionCall{std::move(schema)});
    }
    if (parts.size() > 6) return NotFoundError("no route " + std::string(target));
    return CollectionCall(method, parts[2], parts.size() > 3 ? parts[3] : "", parts.size() > 4 ? parts[4] : "",
                          parts.size() > 5 ? parts[5] : "", body);
  }
  if (parts[1] == "plugins" && parts.size() == 2) {
    if (method != "GET") return wrong_method();
    return Call(ListPluginsCall{});
  }
  if (parts[1] == "snapshot" && parts.size() == 2) {
    if (method != "POST") return wrong_method();
    return Call(SnapshotCall{});
  }
  if (parts[1] == "versions") {
    if (parts.size() == 2) {
      if (method != "GET") return wrong_method();
      return Call(ListVersionsCall{});
    }
    if (parts.size() == 3 && parts[2] == "reload") {
      if (method != "POST") return wrong_method();
      QV_RETURN_IF_ERROR(OnlyFields(body.obj, {"version"}));
      ReloadCall c;
      QV_RETURN_IF_ERROR(GetString(body.obj, "version", &c.version));
      if (c.version.empty()) return Bad("version is required");
      return Call(std::move(c));
    }
    if (parts.size() == 3 && parts[2] == "rollback") {
      if (method != "POST") return wrong_method();
      return Call(RollbackCall{});
    }
  }
  return NotFoundError("no route " + std::string(method) + " " + std::string(target));
}

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kCancelled: return 499;
    case StatusCode::kUnknown: return 500;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kDeadlineExceeded: return 504;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists: return 409;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kResourceExhausted: return 413;
    case StatusCode::kFailedPrecondition: return 412;
    case StatusCode::kAborted: return 409;
    case StatusCode::kOutOfRange: return 400;
    case StatusCode::kUnimplemented: return 405;
    case StatusCode::kInternal: return 500;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDataLoss: return 500;
    case StatusCode::kUnauthenticated: return 401;
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
