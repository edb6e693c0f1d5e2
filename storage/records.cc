#include "storage/records.h"

#include <algorithm>
#include <cstring>

#include "base/coding.h"

namespace quiver::storage {
namespace {

constexpr uint8_t kSchemaVersion = 3;  // 2 added topic_threshold, topic_concat; 3 shards
constexpr uint8_t kItemVersion = 1;
constexpr uint8_t kUserVersion = 1;
constexpr uint8_t kOpVersion = 2;  // 1: without users
constexpr uint8_t kListVersion = 1;
constexpr uint8_t kListInfoVersion = 1;

// Item flags.
constexpr uint8_t kHasCategory = 1;

void PutBigEndian32(std::string* dst, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) dst->push_back(char((v >> s) & 0xFF));
}

void PutBigEndian64(std::string* dst, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) dst->push_back(char((v >> s) & 0xFF));
}

uint64_t GetBigEndian(std::string_view in, size_t bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes; ++i) v = (v << 8) | uint8_t(in[i]);
  return v;
}

template <typename T>
void PutVector(std::string* dst, const std::vector<T>& v) {
  PutFixed<uint32_t>(dst, uint32_t(v.size()));
  PutArray(dst, v.data(), v.size());
}

template <typename T>
bool GetVector(std::string_view* in, std::vector<T>* v) {
  uint32_t n;
  if (!GetFixed(in, &n) || n > in->size() / sizeof(T)) return false;
  v->resize(n);
  return GetArray(in, v->data(), n);
}

void PutString(std::string* dst, std::string_view s) {
  PutFixed<uint32_t>(dst, uint32_t(s.size()));
  dst->append(s);
}

bool GetString(std::string_view* in, std::string* s) {
  uint32_t n;
  if (!GetFixed(in, &n) || n > in->size()) return false;
  s->assign(in->data(), n);
  in->remove_prefix(n);
  return true;
}

Status Corrupt(std::string_view what) {
  return DataLossError("corrupt " + std::string(what) + " record");
}

// Checks the version byte at the front of *in and consumes it.
Status CheckVersion(std::string_view* in, uint8_t want, std::string_view what) {
  uint8_t v;
  if (!GetFixed(in, &v)) return Corrupt(what);
  if (v != want) {
    return DataLossError(std::string(what) + " record has version " + std::to_string(v) +
                         "; this build reads version " + std::to_string(want));
  }
  return Status::Ok();
}

}  // namespace

std::string CollectionKey(uint32_t collection_id) {
  std::string key;
  PutBigEndian32(&key, collection_id);
  return key;
}

std::string IdKey(uint32_t collection_id, uint64_t id) {
  std::string key;
  key.reserve(12);
  PutBigEndian32(&key, collection_id);
  PutBigEndian64(&key, id);
  return key;
}

bool ParseIdKey(std::string_view key, uint32_t* collection_id, uint64_t* id) {
  if (key.size() != 12) return false;
  *collection_id = uint32_t(GetBigEndian(key, 4));
  *id = GetBigEndian(key.substr(4), 8);
  return true;
}

std::string EncodeSchema(const CollectionSchema& s) {
  std::string out;
  PutFixed<uint8_t>(&out, kSchemaVersion);
  PutString(&out, s.name);
  PutFixed<uint32_t>(&out, s.dim);
  PutFixed<uint8_t>(&out, uint8_t(s.metric));
  const IndexSpec& x = s.index;
  PutFixed<uint8_t>(&out, uint8_t(x.type));
  for (uint32_t v : {x.hnsw_m, x.hnsw_ef_construction, x.hnsw_ef_search}) PutFixed(&out, v);
  PutFixed<uint8_t>(&out, x.hnsw_sq8);
  for (uint32_t v : {x.ivf_nlist, x.ivf_m, x.ivf_nbits, x.ivf_nprobe, x.ivf_refine})
    PutFixed(&out, v);
  PutFixed<uint8_t>(&out, x.ivf_refine_int8);
  for (uint32_t v : {s.clusters, s.topics, s.max_history}) PutFixed(&out, v);
  PutFixed<float>(&out, s.topic_threshold);
  PutFixed<uint8_t>(&out, s.topic_concat);
  PutFixed<uint32_t>(&out, s.shards);
  return out;
}

Result<CollectionSchema> DecodeSchema(std::string_view in) {
  // Versions 1 (without the MVKE options) and 2 (without shards) are still read.
  uint8_t version = 0;
  if (!in.empty() && (uint8_t(in[0]) == 1 || uint8_t(in[0]) == 2)) {
    version = uint8_t(in[0]);
    in.remove_prefix(1);
  } else {
    QV_RETURN_IF_ERROR(CheckVersion(&in, kSchemaVersion, "collection schema"));
    version = kSchemaVersion;
  }
  CollectionSchema s;
  IndexSpec& x = s.index;
  uint8_t metric, type, sq8, int8, concat = 0;
  bool ok = GetString(&in, &s.name) && GetFixed(&in, &s.dim) && GetFixed(&in, &metric) &&
            GetFixed(&in, &type) && GetFixed(&in, &x.hnsw_m) &&
            GetFixed(&in, &x.hnsw_ef_construction) && GetFixed(&in, &x.hnsw_ef_search) &&
            GetFixed(&in, &sq8) && GetFixed(&in, &x.ivf_nlist) && GetFixed(&in, &x.ivf_m) &&
            GetFixed(&in, &x.ivf_nbits) && GetFixed(&in, &x.ivf_nprobe) &&
            GetFixed(&in, &x.ivf_refine) && GetFixed(&in, &int8) && GetFixed(&in, &s.clusters) &&
            GetFixed(&in, &s.topics) && GetFixed(&in, &s.max_history) &&
            (version < 2 || (GetFixed(&in, &s.topic_threshold) && GetFixed(&in, &concat))) &&
            (version < 3 || GetFixed(&in, &s.shards)) && in.empty();
  if (!ok || metric > uint8_t(Metric::kCosine) || type < 1 || type > 3 || sq8 > 1 || int8 > 1 ||
      concat > 1) {
    return Corrupt("collection schema");
  }
  s.metric = Metric(metric);
  s.topic_concat = concat != 0;
  x.type = IndexSpec::Type(type);
  x.hnsw_sq8 = sq8 != 0;
  x.ivf_refine_int8 = int8 != 0;
  return s;
}

std::string EncodeItem(const ItemRecord& item) {
  std::string out;
  out.reserve(32 + 4 * (item.vector.size() + item.topic_weights.size()) + 8 * item.tags.size() +
              item.payload.size());
  PutFixed<uint8_t>(&out, kItemVersion);
  PutFixed<uint8_t>(&out, item.category ? kHasCategory : 0);
  PutVector(&out, item.vector);
  PutFixed<uint32_t>(&out, item.cluster);
  PutVector(&out, item.topic_weights);
  PutFixed<int64_t>(&out, item.category.value_or(0));
  PutFixed<int64_t>(&out, item.timestamp);
  PutVector(&out, item.tags);
  PutString(&out, item.payload);
  return out;
}

Result<ItemRecord> DecodeItem(uint64_t id, std::string_view in) {
  QV_RETURN_IF_ERROR(CheckVersion(&in, kItemVersion, "item"));
  ItemRecord item;
  item.id = id;
  uint8_t flags;
  int64_t category;
  bool ok = GetFixed(&in, &flags) && GetVector(&in, &item.vector) && GetFixed(&in, &item.cluster) &&
            GetVector(&in, &item.topic_weights) && GetFixed(&in, &category) &&
            GetFixed(&in, &item.timestamp) && GetVector(&in, &item.tags) &&
            GetString(&in, &item.payload) && in.empty();
  if (!ok || (flags & ~kHasCategory) != 0) return Corrupt("item");
  if (flags & kHasCategory) item.category = category;
  return item;
}

std::string EncodeUser(const UserRecord& user) {
  std::string out;
  PutFixed<uint8_t>(&out, kUserVersion);
  PutVector(&out, user.vector);
  PutFixed<uint32_t>(&out, uint32_t(user.history.size()));
  for (const Interaction& e : user.history) {
    PutFixed(&out, e.item);
    PutFixed(&out, e.timestamp);
  }
  return out;
}

Result<UserRecord> DecodeUser(uint64_t id, std::string_view in) {
  QV_RETURN_IF_ERROR(CheckVersion(&in, kUserVersion, "user"));
  UserRecord user;
  user.id = id;
  uint32_t n;
  if (!GetVector(&in, &user.vector) || !GetFixed(&in, &n) || n > in.size() / 16) {
    return Corrupt("user");
  }
  user.history.resize(n);
  for (Interaction& e : user.history) {
    GetFixed(&in, &e.item);
    GetFixed(&in, &e.timestamp);
  }
  if (!in.empty()) return Corrupt("user");
  return user;
}

std::string EncodeOp(const OpRecord& op) {
  std::string out;
  PutFixed<uint8_t>(&out, kOpVersion);
  PutVector(&out, op.upserted);
  PutVector(&out, op.deleted);
  PutVector(&out, op.users);
  return out;
}

Result<OpRecord> DecodeOp(std::string_view in) {
  // Version 1 (before users were logged) is read as an op without users.
  const bool v1 = !in.empty() && uint8_t(in.front()) == 1;
  QV_RETURN_IF_ERROR(CheckVersion(&in, v1 ? 1 : kOpVersion, "op log"));
  OpRecord op;
  if (!GetVector(&in, &op.upserted) || !GetVector(&in, &op.deleted) ||
      (!v1 && !GetVector(&in, &op.users)) || !in.empty()) {
    return Corrupt("op log");
  }
  return op;
}

bool ValidListKind(std::string_view kind) {
  if (kind.empty() || kind.size() > 64) return false;
  return std::all_of(kind.begin(), kind.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::string ListKindPrefix(uint32_t collection_id, std::string_view kind) {
  std::string key;
  PutBigEndian32(&key, collection_id);
  key.push_back(char(uint8_t(kind.size())));
  key.append(kind);
  return key;
}

std::string ListKey(uint32_t collection_id, std::string_view kind, uint64_t id) {
  std::string key = ListKindPrefix(collection_id, kind);
  PutBigEndian64(&key, id);
  return key;
}

std::string EncodeList(const std::vector<Hit>& list) {
  std::string out;
  out.reserve(5 + list.size() * 12);
  PutFixed<uint8_t>(&out, kListVersion);
  PutFixed<uint32_t>(&out, uint32_t(list.size()));
  for (const Hit& h : list) {
    PutFixed<uint64_t>(&out, h.id);
    PutFixed<float>(&out, h.score);
  }
  return out;
}

Result<std::vector<Hit>> DecodeList(std::string_view in) {
  QV_RETURN_IF_ERROR(CheckVersion(&in, kListVersion, "neighbor list"));
  uint32_t n;
  if (!GetFixed(&in, &n) || in.size() != size_t(n) * 12) return Corrupt("neighbor list");
  std::vector<Hit> list(n);
  for (Hit& h : list) {
    GetFixed(&in, &h.id);
    GetFixed(&in, &h.score);
  }
  return list;
}

std::string EncodeListInfo(const ListInfo& info) {
  std::string out;
  PutFixed<uint8_t>(&out, kListInfoVersion);
  for (const std::string* s : {&info.kind, &info.plugin, &info.config}) {
    PutFixed<uint32_t>(&out, uint32_t(s->size()));
    out.append(*s);
  }
  PutFixed<uint64_t>(&out, info.keys);
  PutFixed<uint64_t>(&out, info.op_seq);
  return out;
}

Result<ListInfo> DecodeListInfo(std::string_view in) {
  QV_RETURN_IF_ERROR(CheckVersion(&in, kListInfoVersion, "list info"));
  ListInfo info;
  for (std::string* s : {&info.kind, &info.plugin, &info.config}) {
    uint32_t n;
    if (!GetFixed(&in, &n) || n > in.size()) return Corrupt("list info");
    s->assign(in.substr(0, n));
    in.remove_prefix(n);
  }
  if (!GetFixed(&in, &info.keys) || !GetFixed(&in, &info.op_seq) || !in.empty())
    return Corrupt("list info");
  return info;
}

}  // namespace quiver::storage
