#include "cluster/log_write.h"

#include "base/coding.h"
#include "storage/records.h"

namespace quiver::cluster {

namespace {

constexpr uint8_t kVersion = 1;
// No message holds more records than this (the server's per-request limit is far below).
constexpr uint32_t kMaxRecords = 1u << 24;

Status Bad(std::string_view why) { return DataLossError("write-log message: " + std::string(why)); }

void PutString(std::string* out, std::string_view s) {
  PutFixed<uint32_t>(out, uint32_t(s.size()));
  out->append(s);
}

bool GetString(std::string_view* in, std::string_view* s) {
  uint32_t n = 0;
  if (!GetFixed(in, &n) || in->size() < n) return false;
  *s = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

}  // namespace

std::string EncodeLogWrite(const LogWrite& w) {
  std::string out;
  PutFixed<uint8_t>(&out, kVersion);
  PutFixed<uint8_t>(&out, uint8_t(w.kind));
  PutString(&out, w.collection);
  switch (w.kind) {
    case LogWrite::Kind::kUpsert:
      PutFixed<uint32_t>(&out, uint32_t(w.items.size()));
      for (const ItemRecord& item : w.items) {
        PutFixed<uint64_t>(&out, item.id);
        PutString(&out, storage::EncodeItem(item));
      }
      break;
    case LogWrite::Kind::kDelete:
      PutFixed<uint32_t>(&out, uint32_t(w.ids.size()));
      for (uint64_t id : w.ids) PutFixed<uint64_t>(&out, id);
      break;
    case LogWrite::Kind::kUsers:
      PutFixed<uint32_t>(&out, uint32_t(w.users.size()));
      for (const UserRecord& user : w.users) {
        PutFixed<uint64_t>(&out, user.id);
        PutString(&out, storage::EncodeUser(user));
      }
      break;
    case LogWrite::Kind::kEvents:
      PutFixed<uint32_t>(&out, uint32_t(w.events.size()));
      for (const Event& e : w.events) {
        PutFixed<uint64_t>(&out, e.user);
        PutFixed<uint64_t>(&out, e.item);
        PutFixed<int64_t>(&out, e.timestamp);
      }
      break;
    case LogWrite::Kind::kPlugin:
      PutFixed<uint32_t>(&out, 1);
      PutString(&out, w.plugin);
      PutString(&out, w.config);
      PutFixed<uint8_t>(&out, w.incremental ? 1 : 0);
      break;
  }
  return out;
}

Result<LogWrite> DecodeLogWrite(std::string_view in) {
  uint8_t version = 0, kind = 0;
  if (!GetFixed(&in, &version)) return Bad("empty");
  if (version != kVersion) {
    return Bad("version " + std::to_string(version) + "; this build reads version " +
               std::to_string(kVersion));
  }
  if (!GetFixed(&in, &kind) || kind < 1 || kind > 5) return Bad("unknown kind");
  LogWrite w;
  w.kind = LogWrite::Kind(kind);
  std::string_view collection;
  if (!GetString(&in, &collection)) return Bad("truncated collection name");
  w.collection = std::string(collection);
  uint32_t n = 0;
  if (!GetFixed(&in, &n) || n > kMaxRecords) return Bad("bad record count");
  switch (w.kind) {
    case LogWrite::Kind::kUpsert:
      w.items.reserve(std::min<size_t>(n, in.size() / 12));
      for (uint32_t i = 0; i < n; ++i) {
        uint64_t id = 0;
        std::string_view value;
        if (!GetFixed(&in, &id) || !GetString(&in, &value)) return Bad("truncated item");
        QV_ASSIGN_OR_RETURN(ItemRecord item, storage::DecodeItem(id, value));
        w.items.push_back(std::move(item));
      }
      break;
    case LogWrite::Kind::kDelete:
      if (in.size() < size_t(n) * 8) return Bad("truncated ids");
      w.ids.resize(n);
      for (uint64_t& id : w.ids) GetFixed(&in, &id);
      break;
    case LogWrite::Kind::kUsers:
      w.users.reserve(std::min<size_t>(n, in.size() / 12));
      for (uint32_t i = 0; i < n; ++i) {
        uint64_t id = 0;
        std::string_view value;
        if (!GetFixed(&in, &id) || !GetString(&in, &value)) return Bad("truncated user");
        QV_ASSIGN_OR_RETURN(UserRecord user, storage::DecodeUser(id, value));
        w.users.push_back(std::move(user));
      }
      break;
    case LogWrite::Kind::kEvents:
      if (in.size() < size_t(n) * 24) return Bad("truncated events");
      w.events.resize(n);
      for (Event& e : w.events) {
        GetFixed(&in, &e.user);
        GetFixed(&in, &e.item);
        GetFixed(&in, &e.timestamp);
      }
      break;
    case LogWrite::Kind::kPlugin: {
      std::string_view plugin, config;
      uint8_t incremental = 0;
      if (n != 1 || !GetString(&in, &plugin) || !GetString(&in, &config) ||
          !GetFixed(&in, &incremental) || incremental > 1) {
        return Bad("bad plugin run");
      }
      w.plugin = std::string(plugin);
      w.config = std::string(config);
      w.incremental = incremental != 0;
      break;
    }
  }
  if (!in.empty()) return Bad(std::to_string(in.size()) + " bytes after the last record");
  return w;
}

}  // namespace quiver::cluster
