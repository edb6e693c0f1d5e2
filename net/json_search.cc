#include "net/json_search.h"

#include "formats/json_item.h"

namespace quiver::net::json {

// {"eq": {"category": 3}}, {"in": {"tag": [1, 2]}}, {"range": {"timestamp": {"gte": a, "lte": b}}},
// {"not": filter}, {"and": [filters]}, {"or": [filters]}.
// Nesting is bounded by the body parser's depth limit; ValidateQuery holds the filter's own.
Result<Filter> FilterFromJson(element e) {
  object o;
  if (e.get_object().get(o) || o.size() != 1)
    return Bad("a filter is an object with one key: eq, in, range, not, and, or");
  auto field = *o.begin();
  const std::string_view op = field.key;
  Filter f;
  auto field_of = [](std::string_view name, Filter::Field* out) {
    if (name == "category")
      *out = Filter::Field::kCategory;
    else if (name == "tag" || name == "tags")
      *out = Filter::Field::kTag;
    else if (name == "timestamp")
      *out = Filter::Field::kTimestamp;
    else if (name == "cluster")
      *out = Filter::Field::kCluster;
    else if (name == "id")
      *out = Filter::Field::kId;
    else
      return false;
    return true;
  };
  if (op == "and" || op == "or") {
    f.op = op == "and" ? Filter::Op::kAnd : Filter::Op::kOr;
    simdjson::dom::array a;
    if (field.value.get_array().get(a)) return Bad("filter " + std::string(op) + " takes an array");
    for (element c : a) {
      QV_ASSIGN_OR_RETURN(Filter child, FilterFromJson(c));
      f.children.push_back(std::move(child));
    }
    return f;
  }
  if (op == "not") {
    f.op = Filter::Op::kNot;
    QV_ASSIGN_OR_RETURN(Filter child, FilterFromJson(field.value));
    f.children.push_back(std::move(child));
    return f;
  }
  object body;
  if (field.value.get_object().get(body) || body.size() != 1) {
    return Bad("filter " + std::string(op) + " takes an object with one field");
  }
  auto target = *body.begin();
  if (!field_of(target.key, &f.field)) {
    return Bad("unknown filter field '" + std::string(target.key) +
               "' (category, tag, timestamp, cluster, id)");
  }
  if (op == "eq" || op == "in") {
    f.op = op == "eq" ? Filter::Op::kEq : Filter::Op::kIn;
    // Ids are uint64, kept as int64 bit patterns.
    const bool ids = f.field == Filter::Field::kId;
    auto value = [&](element x, const char* what) -> Status {
      int64_t v;
      uint64_t u;
      if (auto err = ids ? x.get_uint64().get(u) : x.get_int64().get(v)) return BadField(what, err);
      f.values.push_back(ids ? int64_t(u) : v);
      return Status::Ok();
    };
    if (op == "eq") {
      QV_RETURN_IF_ERROR(value(target.value, "filter eq"));
      return f;
    }
    simdjson::dom::array a;
    if (auto err = target.value.get_array().get(a)) return BadField("filter in", err);
    for (element x : a) QV_RETURN_IF_ERROR(value(x, "filter in"));
    return f;
  }
  if (op == "range") {
    f.op = Filter::Op::kRange;
    object r;
    if (target.value.get_object().get(r)) return Bad("filter range takes {gte, gt, lte, lt}");
    for (auto bound : r) {
      int64_t v;
      if (auto err = bound.value.get_int64().get(v)) return BadField("filter range", err);
      if (bound.key == "gte")
        f.lo = v;
      else if (bound.key == "gt")
        f.lo = v == INT64_MAX ? v : v + 1;
      else if (bound.key == "lte")
        f.hi = v;
      else if (bound.key == "lt")
        f.hi = v == INT64_MIN ? v : v - 1;
      else
        return Bad("unknown range bound '" + std::string(bound.key) + "' (gte, gt, lte, lt)");
    }
    return f;
  }
  return Bad("unknown filter '" + std::string(op) + "' (eq, in, range, not, and, or)");
}

Result<QuotaSpec> QuotaFromJson(element e) {
  object qo;
  if (auto err = e.get_object().get(qo)) return BadField("quota", err);
  QV_RETURN_IF_ERROR(OnlyFields(qo, {"p", "a", "total", "temperature", "user", "half_life"}));
  QuotaSpec quota;
  element pe;
  bool history = false;
  if (!qo["p"].get(pe)) {
    std::string_view word;
    if (pe.get_string().get(word) == simdjson::SUCCESS) {
      quota.learned = word == "learned";
      history = word == "history" || quota.learned;
      if (word != "auto" && !history)
        return Bad("quota p must be an array, \"auto\", \"history\" or \"learned\"");
    } else {
      QV_RETURN_IF_ERROR(formats::FloatsFromJson(pe, "quota p", &quota.p));
    }
  }
  for (auto [key, out] :
       {std::pair<const char*, float*>{"a", &quota.a}, {"temperature", &quota.temperature}}) {
    element x;
    if (qo[key].get(x)) continue;
    double d;
    if (auto err = x.get_double().get(d)) return BadField(std::string("quota ") + key, err);
    *out = float(d);
  }
  QV_RETURN_IF_ERROR(GetUint(qo, "total", &quota.total));
  element user;
  if (!qo["user"].get(user)) {
    if (!history) return Bad("quota user is for p \"history\" or \"learned\"");
    quota.user = 0;
    QV_RETURN_IF_ERROR(GetUint(qo, "user", &*quota.user));
  } else if (history) {
    return Bad(std::string("quota p \"") + (quota.learned ? "learned" : "history") +
               "\" needs a user");
  }
  QV_RETURN_IF_ERROR(GetDuration(qo, "half_life", "quota half_life", &quota.half_life));
  if ((!history || quota.learned) && quota.half_life != 0) {
    return Bad("quota half_life is for p \"history\"");
  }
  return quota;
}

Result<MvkeSpec> MvkeFromJson(element e) {
  object mo;
  if (auto err = e.get_object().get(mo)) return BadField("mvke", err);
  QV_RETURN_IF_ERROR(OnlyFields(mo, {"user_vectors", "strategy", "candidates", "max_candidates"}));
  MvkeSpec m;
  element uv;
  if (auto err = mo["user_vectors"].get(uv)) return BadField("mvke user_vectors", err);
  QV_RETURN_IF_ERROR(FloatVectorsFromJson(uv, "mvke user_vectors", &m.user_vectors));
  std::string strategy = "per_topic";
  QV_RETURN_IF_ERROR(GetString(mo, "strategy", &strategy));
  if (strategy == "per_topic") {
    m.strategy = MvkeStrategy::kPerTopic;
  } else if (strategy == "concat") {
    m.strategy = MvkeStrategy::kConcat;
  } else if (strategy == "rescore") {
    m.strategy = MvkeStrategy::kRescore;
  } else if (strategy == "weighted_scan") {
    m.strategy = MvkeStrategy::kWeightedScan;
  } else {
    return Bad("unknown mvke strategy '" + strategy +
               "' (per_topic, concat, rescore, weighted_scan)");
  }
  QV_RETURN_IF_ERROR(GetUint(mo, "candidates", &m.candidates));
  QV_RETURN_IF_ERROR(GetUint(mo, "max_candidates", &m.max_candidates));
  return m;
}

Result<Fresh> FreshFromJson(element e) {
  object fo;
  if (auto err = e.get_object().get(fo)) return BadField("fresh", err);
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
  return f;
}

Result<Channels> ChannelsFromJson(element e) {
  object co;
  if (auto err = e.get_object().get(co)) return BadField("channels", err);
  QV_RETURN_IF_ERROR(
      OnlyFields(co, {"user", "seed_items", "u2i", "u2i2i", "u2u2i", "seeds", "per_seed", "users",
                      "per_user", "i2i_kind", "u2u_kind", "weights", "exclude_seen"}));
  Channels ch;
  element ue;
  if (!co["user"].get(ue)) {
    uint64_t user;
    if (auto err = ue.get_uint64().get(user)) return BadField("channels user", err);
    ch.user = user;
  }
  if (!co["seed_items"].get(ue))
    QV_RETURN_IF_ERROR(IdsFromJson(ue, "channels seed_items", &ch.seed_items));
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
    QV_RETURN_IF_ERROR(OnlyFields(wo, {"sim", "dup", "div", "u2i", "u2i2i", "u2u2i"}));
    QV_RETURN_IF_ERROR(GetFloat(wo, "sim", &ch.w_sim));
    QV_RETURN_IF_ERROR(GetFloat(wo, "dup", &ch.w_dup));
    QV_RETURN_IF_ERROR(GetFloat(wo, "div", &ch.w_div));
    QV_RETURN_IF_ERROR(GetFloat(wo, "u2i", &ch.channel_weights[0]));
    QV_RETURN_IF_ERROR(GetFloat(wo, "u2i2i", &ch.channel_weights[1]));
    QV_RETURN_IF_ERROR(GetFloat(wo, "u2u2i", &ch.channel_weights[2]));
  }
  return ch;
}

Result<Rerank> RerankFromJson(element e) {
  object ro;
  if (auto err = e.get_object().get(ro)) return BadField("rerank", err);
  QV_RETURN_IF_ERROR(OnlyFields(
      ro, {"mmr", "max_consecutive_category", "per_category_cap", "category_diversity"}));
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
  return r;
}

Status ParamsFromJson(element e, QuerySpec* q) {
  object p;
  if (auto err = e.get_object().get(p)) return BadField("params", err);
  QV_RETURN_IF_ERROR(OnlyFields(p, {"ef", "nprobe", "refine"}));
  QV_RETURN_IF_ERROR(GetUint(p, "ef", &q->ef));
  QV_RETURN_IF_ERROR(GetUint(p, "nprobe", &q->nprobe));
  QV_RETURN_IF_ERROR(GetUint(p, "refine", &q->refine));
  return Status::Ok();
}

Result<Aggregate> AggregateFromJson(element e) {
  std::string_view name;
  if (auto err = e.get_string().get(name)) return BadField("aggregate", err);
  if (name == "max") return Aggregate::kMax;
  if (name == "sum") return Aggregate::kSum;
  if (name == "weighted") return Aggregate::kWeighted;
  return Bad("unknown aggregate '" + std::string(name) + "' (max, sum, weighted)");
}

namespace {

// Reads obj[key] with `decode` into *out when the field is present.
template <typename T, typename F>
Status Optional(object obj, std::string_view key, F decode, T* out) {
  element e;
  if (obj[key].get(e)) return Status::Ok();
  QV_ASSIGN_OR_RETURN(auto value, decode(e));
  *out = std::move(value);
  return Status::Ok();
}

}  // namespace

Result<SearchCall> SearchFromJson(object obj, const std::string& collection) {
  QV_RETURN_IF_ERROR(OnlyFields(
      obj, {"vector", "vectors", "aggregate", "weights", "quota", "filter", "rerank", "mvke",
            "fresh", "payload", "channels", "k", "params", "exclude", "min_seq", "shards"}));
  SearchCall c;
  c.collection = collection;
  QuerySpec& q = c.query;
  element v;
  const bool one = !obj["vector"].get(v);
  if (one) {
    q.vectors.emplace_back();
    QV_RETURN_IF_ERROR(formats::FloatsFromJson(v, "vector", &q.vectors[0]));
  }
  if (!obj["vectors"].get(v)) {
    if (one) return Bad("give either vector or vectors, not both");
    QV_RETURN_IF_ERROR(FloatVectorsFromJson(v, "vectors", &q.vectors));
  }
  QV_RETURN_IF_ERROR(Optional(obj, "aggregate", AggregateFromJson, &q.aggregate));
  if (!obj["weights"].get(v)) QV_RETURN_IF_ERROR(formats::FloatsFromJson(v, "weights", &q.weights));
  QV_RETURN_IF_ERROR(GetUint(obj, "k", &q.k));
  if (!obj["params"].get(v)) QV_RETURN_IF_ERROR(ParamsFromJson(v, &q));
  QV_RETURN_IF_ERROR(Optional(obj, "quota", QuotaFromJson, &q.quota));
  QV_RETURN_IF_ERROR(Optional(obj, "filter", FilterFromJson, &q.filter));
  QV_RETURN_IF_ERROR(Optional(obj, "rerank", RerankFromJson, &q.rerank));
  QV_RETURN_IF_ERROR(Optional(obj, "mvke", MvkeFromJson, &q.mvke));
  QV_RETURN_IF_ERROR(Optional(obj, "fresh", FreshFromJson, &q.fresh));
  QV_RETURN_IF_ERROR(Optional(obj, "channels", ChannelsFromJson, &q.channels));
  if (!obj["exclude"].get(v)) QV_RETURN_IF_ERROR(IdsFromJson(v, "exclude", &q.exclude));
  QV_RETURN_IF_ERROR(GetBool(obj, "payload", &c.with_payload));
  QV_RETURN_IF_ERROR(GetUint(obj, "min_seq", &c.min_seq));
  if (!obj["shards"].get(v)) {
    std::vector<uint64_t> shards;
    QV_RETURN_IF_ERROR(IdsFromJson(v, "shards", &shards));
    for (uint64_t s : shards) {
      if (s > UINT32_MAX) return Bad("shards: " + std::to_string(s) + " is out of range");
      q.shards.push_back(uint32_t(s));
    }
  }
  return c;
}

}  // namespace quiver::net::json
