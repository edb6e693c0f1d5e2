#include "formats/json_item.h"

namespace quiver::formats {
namespace {

Status Bad(std::string_view field, simdjson::error_code err) {
  return InvalidArgumentError("bad " + std::string(field) + " (" + simdjson::error_message(err) +
                              ")");
}

template <typename T, typename Get>
Status ArrayOf(simdjson::dom::element e, std::string_view field, std::vector<T>* out, Get get) {
  simdjson::dom::array a;
  if (auto err = e.get_array().get(a)) return Bad(field, err);
  out->clear();
  out->reserve(a.size());
  for (simdjson::dom::element x : a) {
    T v;
    if (auto err = get(x, &v)) return Bad(field, err);
    out->push_back(v);
  }
  return Status::Ok();
}

}  // namespace

Status FloatsFromJson(simdjson::dom::element e, const char* field, std::vector<float>* out) {
  return ArrayOf<float>(e, field, out, [](simdjson::dom::element x, float* v) {
    double d = 0;
    auto err = x.get_double().get(d);
    *v = float(d);
    return err;
  });
}

Status ItemFromJson(simdjson::dom::object obj, bool allow_vector, ItemRecord* item) {
  for (auto field : obj) {
    const std::string_view key = field.key;
    simdjson::dom::element v = field.value;
    simdjson::error_code err = simdjson::SUCCESS;
    if (key == "id") {
      err = v.get_uint64().get(item->id);
    } else if (key == "vector" && allow_vector) {
      QV_RETURN_IF_ERROR(FloatsFromJson(v, "vector", &item->vector));
    } else if (key == "cluster") {
      uint64_t c = 0;
      err = v.get_uint64().get(c);
      if (!err && c > UINT32_MAX) err = simdjson::NUMBER_OUT_OF_RANGE;
      item->cluster = uint32_t(c);
    } else if (key == "topics") {
      QV_RETURN_IF_ERROR(FloatsFromJson(v, "topics", &item->topic_weights));
    } else if (key == "category") {
      if (!v.is_null()) {
        int64_t c = 0;
        err = v.get_int64().get(c);
        item->category = c;
      }
    } else if (key == "tags") {
      QV_RETURN_IF_ERROR(ArrayOf<int64_t>(
          v, "tags", &item->tags,
          [](simdjson::dom::element x, int64_t* t) { return x.get_int64().get(*t); }));
    } else if (key == "timestamp") {
      err = v.get_int64().get(item->timestamp);
    } else if (key == "payload") {
      item->payload = simdjson::minify(v);
    } else {
      return InvalidArgumentError("unknown field '" + std::string(key) + "' (known: id, " +
                                  (allow_vector ? "vector, " : "") +
                                  "cluster, topics, category, tags, timestamp, payload)");
    }
    if (err) return Bad(key, err);
  }
  return Status::Ok();
}

Status UserFromJson(simdjson::dom::object obj, UserRecord* user) {
  for (auto field : obj) {
    const std::string_view key = field.key;
    simdjson::dom::element v = field.value;
    if (key == "id") {
      if (auto err = v.get_uint64().get(user->id)) return Bad(key, err);
    } else if (key == "vector") {
      QV_RETURN_IF_ERROR(FloatsFromJson(v, "vector", &user->vector));
    } else if (key == "history") {
      simdjson::dom::array a;
      if (auto err = v.get_array().get(a)) return Bad(key, err);
      for (simdjson::dom::element x : a) {
        Interaction e;
        if (auto err = x["item"].get_uint64().get(e.item)) return Bad("history item", err);
        if (auto err = x["timestamp"].get_int64().get(e.timestamp))
          return Bad("history timestamp", err);
        user->history.push_back(e);
      }
    } else {
      return InvalidArgumentError("unknown field '" + std::string(key) +
                                  "' (known: id, vector, history)");
    }
  }
  return Status::Ok();
}

}  // namespace quiver::formats
