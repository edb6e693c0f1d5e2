// Items and users as JSON objects, shared by bulk JSONL input and the REST API.
//
// Item fields: id, vector (array of numbers; only where the caller allows it), cluster, topics
// (array), category (integer or null), tags (array of integers), timestamp, payload (any JSON
// value, kept minified). An unknown field or a value of the wrong type is kInvalidArgument
// naming the field.
#pragma once

#include <simdjson.h>

#include <string>

#include "base/model.h"
#include "base/status.h"

namespace quiver::formats {

Status ItemFromJson(simdjson::dom::object obj, bool allow_vector, ItemRecord* item);
// User fields: id, vector, history (array of {"item", "timestamp"}).
Status UserFromJson(simdjson::dom::object obj, UserRecord* user);
// A JSON array of numbers into floats (kInvalidArgument naming `field` otherwise).
Status FloatsFromJson(simdjson::dom::element e, const char* field, std::vector<float>* out);

}  // namespace quiver::formats
