// One write as it travels in the cluster's write log (cluster/log.h): what the client asked
// for, validated by the node that published it, applied by every node following the shard.
// The encoding is versioned; decoding checks every length and record (a damaged or foreign
// message is kDataLoss, never a partial write).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/model.h"
#include "base/result.h"

namespace quiver::cluster {

struct LogWrite {
  enum class Kind : uint8_t { kUpsert = 1, kDelete = 2, kUsers = 3, kEvents = 4, kPlugin = 5 };
  Kind kind = Kind::kUpsert;
  std::string collection;
  std::vector<ItemRecord> items;  // kUpsert
  std::vector<uint64_t> ids;      // kDelete
  std::vector<UserRecord> users;  // kUsers
  std::vector<Event> events;      // kEvents
  // kPlugin: a plugin run (docs/plugins.md) every node makes over its own data.
  std::string plugin, config;
  bool incremental = false;

  friend bool operator==(const LogWrite&, const LogWrite&) = default;
};

std::string EncodeLogWrite(const LogWrite& write);
Result<LogWrite> DecodeLogWrite(std::string_view data);

}  // namespace quiver::cluster
