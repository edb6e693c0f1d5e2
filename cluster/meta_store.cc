#include "cluster/meta_store.h"

#include <simdjson.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace quiver::cluster {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string Base64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 |
                       uint32_t(uint8_t(in[i + 2]));
    for (int s : {18, 12, 6, 0}) out.push_back(kBase64[(v >> s) & 63]);
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out.push_back(kBase64[(v >> 18) & 63]);
    out.push_back(kBase64[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kBase64[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<std::string> FromBase64(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return DataLossError("etcd answered with bad base64");
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = in[i + size_t(j)];
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        v[j] = 0;
        ++pad;
      } else if ((v[j] = value(c)) < 0 || pad > 0) {
        return DataLossError("etcd answered with bad base64");
      }
    }
    const uint32_t n =
        uint32_t(v[0]) << 18 | uint32_t(v[1]) << 12 | uint32_t(v[2]) << 6 | uint32_t(v[3]);
    out.push_back(char(n >> 16));
    if (pad < 2) out.push_back(char((n >> 8) & 255));
    if (pad < 1) out.push_back(char(n & 255));
  }
  return out;
}

// The smallest key greater than every key starting with `prefix` (etcd's range_end).
std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (uint8_t(end.back()) < 0xff) {
      end.back() = char(uint8_t(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

// etcd's JSON carries int64 values as strings (and leaves zeros out).
int64_t Int(simdjson::dom::element e, std::string_view field) {
  simdjson::dom::element v;
  if (e[field].get(v)) return 0;
  std::string_view s;
  if (!v.get_string().get(s)) return std::strtoll(std::string(s).c_str(), nullptr, 10);
  int64_t n = 0;
  if (!v.get_int64().get(n)) return n;
  return 0;
}

Result<KeyValue> ParseKv(simdjson::dom::element kv) {
  KeyValue out;
  std::string_view key, value;
  if (!kv["key"].get_string().get(key)) {
    QV_ASSIGN_OR_RETURN(out.key, FromBase64(key));
  }
  if (!kv["value"].get_string().get(value)) {
    QV_ASSIGN_OR_RETURN(out.value, FromBase64(value));
  }
  out.create_revision = Int(kv, "create_revision");
  out.mod_revision = Int(kv, "mod_revision");
  out.lease = Int(kv, "lease");
  return out;
}

std::string Put(std::string_view key, std::string_view value, int64_t lease) {
  std::string body = R"({"key":")" + Base64(key) + R"(","value":")" + Base64(value) + '"';
  if (lease != 0) body += R"(,"lease":")" + std::to_string(lease) + '"';
  return body + "}";
}

// A transaction comparing the key's mod_revision (0: absent, via its create_revision).
std::string SwapTxn(std::string_view key, int64_t expected, const std::string& success) {
  const std::string target =
      expected == 0 ? R"("target":"CREATE","create_revision":"0")"
                    : R"("target":"MOD","mod_revision":")" + std::to_string(expected) + '"';
  return R"({"compare":[{"key":")" + Base64(key) + R"(","result":"EQUAL",)" + target +
         R"(}],"success":[)" + success + "]}";
}

}  // namespace

Result<std::unique_ptr<MetaStore>> MetaStore::Connect(const MetaStoreOptions& options) {
  if (options.endpoints.empty()) return InvalidArgumentError("no etcd endpoint given");
  for (const std::string& e : options.endpoints) {
    if (!e.starts_with("http://") || e.find(':', 7) == std::string::npos) {
      return InvalidArgumentError("etcd endpoint '" + e + "' is not http://HOST:PORT");
    }
  }
  std::unique_ptr<MetaStore> store(new MetaStore(options));
  // One request checks that some endpoint answers.
  QV_RETURN_IF_ERROR(store->Call("/v3/maintenance/status", "{}").status());
  return store;
}

Result<std::string> MetaStore::Call(std::string_view path, const std::string& body) {
  std::string last;
  for (const std::string& endpoint : options_.endpoints) {
    const std::string hostport = endpoint.substr(7);
    const size_t colon = hostport.rfind(':');
    const std::string host = hostport.substr(0, colon), port = hostport.substr(colon + 1);
    try {
      boost::asio::io_context io;
      tcp::resolver resolver(io);
      beast::tcp_stream stream(io);
      stream.expires_after(options_.timeout);
      stream.connect(resolver.resolve(host, port));
      http::request<http::string_body> req{http::verb::post, std::string(path), 11};
      req.set(http::field::host, hostport);
      req.set(http::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
      http::write(stream, req);
      beast::flat_buffer buffer;
      http::response<http::string_body> res;
      http::read(stream, buffer, res);
      beast::error_code ec;
      stream.socket().shutdown(tcp::socket::shutdown_both, ec);
      if (res.result() == http::status::ok) return std::move(res.body());
      // etcd's errors: {"error": ..., "code": grpc code, "message": ...}.
      simdjson::dom::parser parser;
      simdjson::dom::element doc;
      std::string_view message = res.body();
      int64_t code = 0;
      if (!parser.parse(res.body()).get(doc)) {
        (void)doc["message"].get_string().get(message);
        (void)doc["code"].get_int64().get(code);
      }
      const std::string what = "etcd " + endpoint + std::string(path) + ": " + std::string(message);
      if (code == 5) return NotFoundError(what);
      if (code == 3) return InvalidArgumentError(what);
      if (code == 14 || res.result_int() >= 500) {
        last = what;
        continue;  // another endpoint may be able to
      }
      return InternalError(what);
    } catch (const std::exception& e) {
      last = "etcd " + endpoint + ": " + e.what();
    }
  }
  return UnavailableError(last.empty() ? "no etcd endpoint answered" : last);
}

Result<std::optional<KeyValue>> MetaStore::Get(std::string_view key) {
  QV_ASSIGN_OR_RETURN(std::string body,
                      Call("/v3/kv/range", R"({"key":")" + Base64(key) + R"("})"));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc)) return DataLossError("etcd answered with bad JSON");
  simdjson::dom::array kvs;
  if (doc["kvs"].get_array().get(kvs) || kvs.size() == 0) return std::optional<KeyValue>();
  QV_ASSIGN_OR_RETURN(KeyValue kv, ParseKv(kvs.at(0).value()));
  return std::optional<KeyValue>(std::move(kv));
}

Result<std::vector<KeyValue>> MetaStore::List(std::string_view prefix, int64_t* revision) {
  QV_ASSIGN_OR_RETURN(std::string body,
                      Call("/v3/kv/range", R"({"key":")" + Base64(prefix) + R"(","range_end":")" +
                                               Base64(PrefixEnd(prefix)) + R"("})"));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc)) return DataLossError("etcd answered with bad JSON");
  if (revision != nullptr) {
    simdjson::dom::element header;
    *revision = doc["header"].get(header) ? 0 : Int(header, "revision");
  }
  std::vector<KeyValue> out;
  simdjson::dom::array kvs;
  if (doc["kvs"].get_array().get(kvs)) return out;
  out.reserve(kvs.size());
  for (simdjson::dom::element kv : kvs) {
    QV_ASSIGN_OR_RETURN(KeyValue parsed, ParseKv(kv));
    out.push_back(std::move(parsed));
  }
  return out;
}

Result<int64_t> MetaStore::Put(std::string_view key, std::string_view value, int64_t lease) {
  QV_ASSIGN_OR_RETURN(std::string body, Call("/v3/kv/put", cluster::Put(key, value, lease)));
  simdjson::dom::parser parser;
  simdjson::dom::element doc, header;
  if (parser.parse(body).get(doc) || doc["header"].get(header)) {
    return DataLossError("etcd answered with bad JSON");
  }
  return Int(header, "revision");
}

Result<bool> MetaStore::Swap(std::string_view key, int64_t expected, std::string_view value,
                             int64_t lease) {
  QV_ASSIGN_OR_RETURN(
      std::string body,
      Call("/v3/kv/txn",
           SwapTxn(key, expected, R"({"request_put":)" + cluster::Put(key, value, lease) + "}")));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc)) return DataLossError("etcd answered with bad JSON");
  bool succeeded = false;
  (void)doc["succeeded"].get_bool().get(succeeded);  // left out when false
  return succeeded;
}

Result<bool> MetaStore::SwapDelete(std::string_view key, int64_t expected) {
  QV_ASSIGN_OR_RETURN(
      std::string body,
      Call("/v3/kv/txn",
           SwapTxn(key, expected, R"({"request_delete_range":{"key":")" + Base64(key) + R"("}})")));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc)) return DataLossError("etcd answered with bad JSON");
  bool succeeded = false;
  (void)doc["succeeded"].get_bool().get(succeeded);
  return succeeded;
}

Status MetaStore::Delete(std::string_view key) {
  return Call("/v3/kv/deleterange", R"({"key":")" + Base64(key) + R"("})").status();
}

Result<int64_t> MetaStore::GrantLease(std::chrono::seconds ttl) {
  if (ttl.count() < 1) return InvalidArgumentError("a lease lasts at least 1 s");
  QV_ASSIGN_OR_RETURN(
      std::string body,
      Call("/v3/lease/grant", R"({"TTL":")" + std::to_string(ttl.count()) + R"("})"));
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(body).get(doc)) return DataLossError("etcd answered with bad JSON");
  const int64_t id = Int(doc, "ID");
  if (id == 0) return InternalError("etcd granted no lease: " + body);
  return id;
}

Result<int64_t> MetaStore::KeepAlive(int64_t lease) {
  QV_ASSIGN_OR_RETURN(std::string body,
                      Call("/v3/lease/keepalive", R"({"ID":")" + std::to_string(lease) + R"("})"));
  simdjson::dom::parser parser;
  simdjson::dom::element doc, result;
  if (parser.parse(body).get(doc)) return DataLossError("etcd answered with bad JSON");
  // The gateway streams: {"result": {"ID": ..., "TTL": ...}}; an expired lease has no TTL.
  const int64_t ttl = doc["result"].get(result) ? Int(doc, "TTL") : Int(result, "TTL");
  if (ttl <= 0) return NotFoundError("etcd lease " + std::to_string(lease) + " has expired");
  return ttl;
}

Status MetaStore::Revoke(int64_t lease) {
  return Call("/v3/lease/revoke", R"({"ID":")" + std::to_string(lease) + R"("})").status();
}

}  // namespace quiver::cluster
