#include "net/json_read.h"

#include <charconv>

#include "formats/json_item.h"

namespace quiver::net::json {

Status Bad(const std::string& message) { return InvalidArgumentError(message); }

Status BadField(std::string_view field, simdjson::error_code err) {
  return Bad("bad " + std::string(field) + " (" + simdjson::error_message(err) + ")");
}

bool ParseU64(std::string_view s, uint64_t* v) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

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

Status GetDuration(object obj, std::string_view key, const char* what, int64_t* out) {
  element e;
  if (obj[key].get(e)) return Status::Ok();
  std::string_view text;
  if (e.get_string().get(text) != simdjson::SUCCESS) {
    if (auto err = e.get_int64().get(*out)) return BadField(what, err);
    return Status::Ok();
  }
  auto bad = [&] {
    return Bad(
        std::string(what) + " '" + std::string(text) +
        "' is not a duration (an integer, or digits with a unit s, m, h or d, as in \"6h\")");
  };
  if (text.size() < 2 || text.size() > 20) return bad();
  int64_t unit;
  switch (text.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    default:
      return bad();
  }
  int64_t n = 0;
  for (char ch : text.substr(0, text.size() - 1)) {
    if (ch < '0' || ch > '9' || __builtin_mul_overflow(n, 10, &n) ||
        __builtin_add_overflow(n, ch - '0', &n)) {
      return bad();
    }
  }
  if (__builtin_mul_overflow(n, unit, out)) return bad();
  return Status::Ok();
}

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

Status IdsFromJson(element e, std::string_view what, std::vector<uint64_t>* ids) {
  simdjson::dom::array a;
  if (auto err = e.get_array().get(a)) return BadField(what, err);
  ids->reserve(ids->size() + a.size());
  for (element x : a) {
    uint64_t id;
    if (auto err = x.get_uint64().get(id)) return BadField(what, err);
    ids->push_back(id);
  }
  return Status::Ok();
}

Status GetIds(object obj, std::vector<uint64_t>* ids) {
  QV_RETURN_IF_ERROR(OnlyFields(obj, {"ids"}));
  element e;
  if (auto err = obj["ids"].get(e)) return BadField("ids", err);
  return IdsFromJson(e, "ids", ids);
}

}  // namespace quiver::net::json
