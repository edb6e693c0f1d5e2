// Reading JSON request bodies (simdjson DOM): the field getters and checks the REST decoders
// share. Every error is kInvalidArgument naming the field; an absent optional field leaves the
// output as it was (its default). Internal to net/.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/status.h"

namespace quiver::net::json {

using simdjson::dom::element;
using simdjson::dom::object;

Status Bad(const std::string& message);
// "bad FIELD (simdjson's reason)".
Status BadField(std::string_view field, simdjson::error_code err);

// The whole string is a decimal uint64.
bool ParseU64(std::string_view s, uint64_t* v);

// A parsed JSON body; the parser owns the document.
struct Body {
  simdjson::dom::parser parser;
  object obj;
};

// An empty text reads as {}; anything but a JSON object of at most max_depth levels is refused.
Status ParseBody(std::string_view text, size_t max_depth, Body* body);

// Rejects fields outside `known`.
Status OnlyFields(object obj, std::initializer_list<std::string_view> known);

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

Status GetBool(object obj, std::string_view key, bool* out);
Status GetFloat(object obj, std::string_view key, float* out);
Status GetString(object obj, std::string_view key, std::string* out);
// A duration in timestamp units: an integer, or a string of digits with a unit s, m, h or d
// ("90s", "15m", "6h", "30d"; in seconds). `what` names it in errors.
Status GetDuration(object obj, std::string_view key, const char* what, int64_t* out);
// An array of float arrays.
Status FloatVectorsFromJson(element e, const char* what, std::vector<std::vector<float>>* out);
// An array of uint64 ids, appended to *ids; errors name `what`.
Status IdsFromJson(element e, std::string_view what, std::vector<uint64_t>* ids);
// {"ids": [uint64, ...]} and nothing else.
Status GetIds(object obj, std::vector<uint64_t>* ids);

// obj[key] as an array of objects, each read by parse(object, T*); errors name key[i].
template <typename T, typename F>
Status ArrayOfObjects(object obj, std::string_view key, std::vector<T>* out, F parse) {
  simdjson::dom::array a;
  if (auto err = obj[key].get_array().get(a)) return BadField(key, err);
  out->reserve(a.size());
  size_t i = 0;
  for (element x : a) {
    object o;
    if (auto err = x.get_object().get(o))
      return BadField(std::string(key) + "[" + std::to_string(i) + "]", err);
    T value;
    Status s = parse(o, &value);
    if (!s.ok())
      return Bad(std::string(key) + "[" + std::to_string(i) + "]: " + std::string(s.message()));
    out->push_back(std::move(value));
    ++i;
  }
  return Status::Ok();
}

}  // namespace quiver::net::json
