#include "formats/bulk_input.h"

#include <simdjson.h>

#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include "base/coding.h"
#include "formats/json_item.h"

namespace quiver::formats {
namespace {

Result<std::string> Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return InternalError("cannot read " + path);
  return ss.str();
}

Result<VectorFile> ReadFvecs(const std::string& path, const std::string& bytes) {
  VectorFile out;
  std::string_view in(bytes);
  while (!in.empty()) {
    int32_t d;
    if (!GetFixed(&in, &d) || d <= 0 || d > 65536) {
      return InvalidArgumentError(path + ": row " + std::to_string(out.n) + " has a bad dimension");
    }
    if (out.n == 0) out.dim = size_t(d);
    if (size_t(d) != out.dim) {
      return InvalidArgumentError(path + ": row " + std::to_string(out.n) + " has dimension " +
                                  std::to_string(d) + ", row 0 has " + std::to_string(out.dim));
    }
    const size_t at = out.data.size();
    out.data.resize(at + out.dim);
    if (!GetArray(&in, out.data.data() + at, out.dim)) {
      return InvalidArgumentError(path + ": truncated at row " + std::to_string(out.n));
    }
    ++out.n;
  }
  return out;
}

Result<VectorFile> ReadNpy(const std::string& path, const std::string& bytes) {
  auto bad = [&](const std::string& why) { return InvalidArgumentError(path + ": " + why); };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) return bad("not a .npy file");
  const uint8_t major = uint8_t(bytes[6]);
  std::string_view in(bytes);
  in.remove_prefix(8);
  uint32_t header_len = 0;
  if (major == 1) {
    uint16_t h;
    GetFixed(&in, &h);
    header_len = h;
  } else if (major == 2 || major == 3) {
    if (!GetFixed(&in, &header_len)) return bad("truncated header");
  } else {
    return bad("unsupported .npy version " + std::to_string(major));
  }
  if (in.size() < header_len) return bad("truncated header");
  const std::string header(in.substr(0, header_len));
  in.remove_prefix(header_len);
  if (header.find("'descr': '<f4'") == std::string::npos &&
      header.find("'descr': '=f4'") == std::string::npos) {
    return bad("holds " + header + "; only little-endian float32 ('<f4') is read");
  }
  if (header.find("'fortran_order': False") == std::string::npos) return bad("must be in C order");
  const size_t shape = header.find("'shape': (");
  if (shape == std::string::npos) return bad("has no shape");
  const char* p = header.c_str() + shape + 10;
  const char* end = header.c_str() + header.size();
  size_t dims[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    while (p < end && (*p == ' ' || *p == ',')) ++p;
    auto r = std::from_chars(p, end, dims[k]);
    if (r.ec != std::errc()) return bad("must be a 2-D array (n, dim)");
    p = r.ptr;
  }
  while (p < end && (*p == ' ' || *p == ',')) ++p;
  if (p >= end || *p != ')') return bad("must be a 2-D array (n, dim)");
  VectorFile out;
  out.n = dims[0];
  out.dim = dims[1];
  if (out.dim == 0 || out.dim > 65536)
    return bad("dimension " + std::to_string(out.dim) + " is out of range");
  if (in.size() != out.n * out.dim * sizeof(float)) {
    return bad("holds " + std::to_string(in.size()) + " data bytes; shape needs " +
               std::to_string(out.n * out.dim * sizeof(float)));
  }
  out.data.resize(out.n * out.dim);
  GetArray(&in, out.data.data(), out.data.size());
  return out;
}

// ---- attributes ----

template <typename T>
bool ParseNumber(std::string_view s, T* v) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

template <typename T>
bool ParseList(std::string_view s, std::vector<T>* out) {
  out->clear();
  if (s.empty()) return true;
  size_t start = 0;
  while (true) {
    const size_t sep = s.find(';', start);
    T v;
    if (!ParseNumber(s.substr(start, sep == std::string_view::npos ? sep : sep - start), &v))
      return false;
    out->push_back(v);
    if (sep == std::string_view::npos) return true;
    start = sep + 1;
  }
}

// Splits CSV text (RFC 4180: quoted fields, "" for a quote, newlines inside quotes) into rows.
Result<std::vector<std::vector<std::string>>> SplitCsv(const std::string& path,
                                                       const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  size_t line = 1;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') ++line;
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && !field_started) {
      quoted = field_started = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      row.push_back(std::move(field));
      field.clear();
      field_started = false;
      if (!(row.size() == 1 && row[0].empty())) rows.push_back(std::move(row));
      row.clear();
      ++line;
    } else {
      field.push_back(c);
      field_started = true;
    }
  }
  if (quoted)
    return InvalidArgumentError(path + ":" + std::to_string(line) + ": unterminated quoted field");
  if (field_started || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

// Checks that text is one JSON value and returns it minified.
Result<std::string> JsonPayload(simdjson::dom::parser& parser, std::string_view text) {
  simdjson::dom::element e;
  if (auto err = parser.parse(text.data(), text.size()).get(e)) {
    return InvalidArgumentError(std::string("payload is not valid JSON: ") +
                                simdjson::error_message(err));
  }
  return simdjson::minify(e);
}

Result<std::vector<ItemRecord>> ReadCsv(const std::string& path, const std::string& text) {
  QV_ASSIGN_OR_RETURN(auto rows, SplitCsv(path, text));
  if (rows.empty()) return InvalidArgumentError(path + ": no header row");
  enum Col { kId, kCluster, kTopics, kCategory, kTags, kTimestamp, kPayload, kCols };
  const char* names[kCols] = {"id",   "cluster",   "topics", "category",
                              "tags", "timestamp", "payload"};
  std::vector<int> col_of(rows[0].size(), -1);
  for (size_t c = 0; c < rows[0].size(); ++c) {
    for (int k = 0; k < kCols; ++k) {
      if (rows[0][c] == names[k]) col_of[c] = k;
    }
    if (col_of[c] < 0) {
      return InvalidArgumentError(
          path + ":1: unknown column '" + rows[0][c] +
          "' (known: id, cluster, topics, category, tags, timestamp, payload)");
    }
  }
  simdjson::dom::parser parser;
  std::vector<ItemRecord> out;
  out.reserve(rows.size() - 1);
  for (size_t r = 1; r < rows.size(); ++r) {
    const std::string where = path + ": row " + std::to_string(r);
    if (rows[r].size() != rows[0].size()) {
      return InvalidArgumentError(where + " has " + std::to_string(rows[r].size()) +
                                  " fields; the header has " + std::to_string(rows[0].size()));
    }
    ItemRecord item;
    item.id = r - 1;
    for (size_t c = 0; c < rows[r].size(); ++c) {
      const std::string& f = rows[r][c];
      bool ok = true;
      switch (col_of[c]) {
        case kId:
          ok = ParseNumber(f, &item.id);
          break;
        case kCluster:
          ok = ParseNumber(f, &item.cluster);
          break;
        case kTopics:
          ok = ParseList(f, &item.topic_weights);
          break;
        case kCategory:
          if (!f.empty()) {
            int64_t v;
            ok = ParseNumber(f, &v);
            item.category = v;
          }
          break;
        case kTags:
          ok = ParseList(f, &item.tags);
          break;
        case kTimestamp:
          ok = f.empty() || ParseNumber(f, &item.timestamp);
          break;
        case kPayload:
          if (!f.empty()) {
            auto p = JsonPayload(parser, f);
            if (!p.ok())
              return InvalidArgumentError(where + ": " + std::string(p.status().message()));
            item.payload = std::move(*p);
          }
          break;
      }
      if (!ok) return InvalidArgumentError(where + ": bad " + names[col_of[c]] + " '" + f + "'");
    }
    out.push_back(std::move(item));
  }
  return out;
}

// Calls fn(object, "path:line") for every non-blank line of a JSONL text; the first error stops.
Status ForEachJsonlObject(
    const std::string& path, const std::string& text,
    const std::function<Status(simdjson::dom::object, const std::string&)>& fn) {
  simdjson::dom::parser parser;
  size_t line_no = 0, start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    ++line_no;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    simdjson::dom::object obj;
    if (auto err = parser.parse(line.data(), line.size()).get(obj)) {
      return InvalidArgumentError(where + ": not a JSON object (" + simdjson::error_message(err) +
                                  ")");
    }
    QV_RETURN_IF_ERROR(fn(obj, where));
  }
  return Status::Ok();
}

Result<std::vector<ItemRecord>> ReadJsonl(const std::string& path, const std::string& text) {
  std::vector<ItemRecord> out;
  QV_RETURN_IF_ERROR(
      ForEachJsonlObject(path, text, [&](simdjson::dom::object obj, const std::string& where) {
        ItemRecord item;
        item.id = out.size();
        if (Status st = ItemFromJson(obj, /*allow_vector=*/false, &item); !st.ok()) {
          return InvalidArgumentError(where + ": " + std::string(st.message()));
        }
        out.push_back(std::move(item));
        return Status::Ok();
      }));
  return out;
}

}  // namespace

Result<std::vector<UserRecord>> ReadUsers(const std::string& path) {
  QV_ASSIGN_OR_RETURN(std::string text, Slurp(path));
  std::vector<UserRecord> out;
  auto one = [&](simdjson::dom::object obj, const std::string& where) -> Status {
    UserRecord user;
    if (Status st = UserFromJson(obj, &user); !st.ok())
      return InvalidArgumentError(where + ": " + std::string(st.message()));
    out.push_back(std::move(user));
    return Status::Ok();
  };
  if (path.ends_with(".json")) {
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (auto err = parser.parse(text).get(root)) {
      return InvalidArgumentError(path + ": not JSON (" + simdjson::error_message(err) + ")");
    }
    simdjson::dom::array users;
    if (root["users"].get_array().get(users))
      return InvalidArgumentError(path + ": expected {\"users\": [...]}");
    size_t i = 0;
    for (simdjson::dom::element u : users) {
      const std::string where = path + ": users[" + std::to_string(i++) + "]";
      simdjson::dom::object obj;
      if (u.get_object().get(obj))
        return InvalidArgumentError(where + ": a user must be a JSON object");
      QV_RETURN_IF_ERROR(one(obj, where));
    }
    return out;
  }
  if (!path.ends_with(".jsonl"))
    return InvalidArgumentError(path + ": users must be a .jsonl or .json file");
  QV_RETURN_IF_ERROR(ForEachJsonlObject(path, text, one));
  return out;
}

Result<VectorFile> ReadVectors(const std::string& path) {
  QV_ASSIGN_OR_RETURN(std::string bytes, Slurp(path));
  if (path.ends_with(".fvecs")) return ReadFvecs(path, bytes);
  if (path.ends_with(".npy")) return ReadNpy(path, bytes);
  return InvalidArgumentError(path + ": vectors must be a .fvecs or .npy file");
}

Result<std::vector<ItemRecord>> ReadAttributes(const std::string& path) {
  QV_ASSIGN_OR_RETURN(std::string text, Slurp(path));
  if (path.ends_with(".csv")) return ReadCsv(path, text);
  if (path.ends_with(".jsonl")) return ReadJsonl(path, text);
  return InvalidArgumentError(path + ": attributes must be a .csv or .jsonl file");
}

Result<std::vector<ItemRecord>> AssembleItems(VectorFile vectors,
                                              std::vector<ItemRecord> attributes) {
  if (attributes.empty()) {
    attributes.resize(vectors.n);
    for (size_t i = 0; i < vectors.n; ++i) attributes[i].id = i;
  }
  if (attributes.size() != vectors.n) {
    return InvalidArgumentError("the vector file has " + std::to_string(vectors.n) +
                                " rows; the attribute file has " +
                                std::to_string(attributes.size()));
  }
  for (size_t i = 0; i < vectors.n; ++i) {
    attributes[i].vector.assign(vectors.data.begin() + i * vectors.dim,
                                vectors.data.begin() + (i + 1) * vectors.dim);
  }
  return attributes;
}

}  // namespace quiver::formats
