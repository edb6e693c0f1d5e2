// The records Quiver stores, and their byte codecs.
//
// Every value starts with a version byte; multi-byte numbers are little-endian; keys are
// big-endian so that RocksDB's byte order sorts them by (collection, id). The layouts are in
// docs/file-formats.md. Decoding never trusts its input: a short, over-long or unknown-version
// record gives kDataLoss.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/model.h"
#include "base/result.h"
#include "base/status.h"

namespace quiver::storage {

// The plain types are in base/model.h.
using ::quiver::CollectionSchema;
using ::quiver::Hit;
using ::quiver::IndexSpec;
using ::quiver::Interaction;
using ::quiver::ItemRecord;
using ::quiver::ListInfo;
using ::quiver::UserRecord;

// What one write batch changed in a collection: the op log lets start-up bring an index
// snapshot up to date by re-reading these ids.
struct OpRecord {
  std::vector<uint64_t> upserted;
  std::vector<uint64_t> deleted;
  std::vector<uint64_t> users;  // users written (vectors, histories): for plugins' Update
};

// Key builders. Collection ids are assigned by the store; item, user and op keys are
// (collection id, 64-bit id or sequence), big-endian.
std::string CollectionKey(uint32_t collection_id);
std::string IdKey(uint32_t collection_id, uint64_t id);
// Parses an IdKey; false if the key is not one.
bool ParseIdKey(std::string_view key, uint32_t* collection_id, uint64_t* id);

std::string EncodeSchema(const CollectionSchema& schema);
Result<CollectionSchema> DecodeSchema(std::string_view value);

std::string EncodeItem(const ItemRecord& item);
// The id is not part of the value; the caller passes it from the key.
Result<ItemRecord> DecodeItem(uint64_t id, std::string_view value);

std::string EncodeUser(const UserRecord& user);
Result<UserRecord> DecodeUser(uint64_t id, std::string_view value);

std::string EncodeOp(const OpRecord& op);
Result<OpRecord> DecodeOp(std::string_view value);

// Neighbor lists written by plugins: (collection, kind, key id) -> [(id, score)]. A kind is 1 to
// 64 bytes of [a-z0-9_]. Keys: collection id BE, kind length u8, kind, key id BE, so that one
// kind's lists are one key range.
bool ValidListKind(std::string_view kind);
std::string ListKindPrefix(uint32_t collection_id, std::string_view kind);
std::string ListKey(uint32_t collection_id, std::string_view kind, uint64_t key);
std::string EncodeList(const std::vector<Hit>& list);
Result<std::vector<Hit>> DecodeList(std::string_view value);

// What a plugin run left for one list kind (meta column family; base/model.h).
std::string EncodeListInfo(const ListInfo& info);
Result<ListInfo> DecodeListInfo(std::string_view value);

}  // namespace quiver::storage
