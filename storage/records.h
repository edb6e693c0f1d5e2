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

#include "base/result.h"
#include "base/status.h"
#include "index/vector_index.h"

namespace quiver::storage {

// How a collection's vectors are indexed.
struct IndexSpec {
  enum class Type : uint8_t { kFlat = 1, kHnsw = 2, kIvfPq = 3 };
  Type type = Type::kHnsw;
  // HNSW
  uint32_t hnsw_m = 16;
  uint32_t hnsw_ef_construction = 200;
  uint32_t hnsw_ef_search = 64;
  bool hnsw_sq8 = false;  // 8-bit traversal copy of the vectors, float re-rank
  // IVF-PQ
  uint32_t ivf_nlist = 256;
  uint32_t ivf_m = 16;
  uint32_t ivf_nbits = 8;
  uint32_t ivf_nprobe = 16;
  uint32_t ivf_refine = 4;  // 0 = no re-ranking store
  bool ivf_refine_int8 = false;

  friend bool operator==(const IndexSpec&, const IndexSpec&) = default;
};

struct CollectionSchema {
  std::string name;
  uint32_t dim = 0;
  index::Metric metric = index::Metric::kL2;
  IndexSpec index;
  uint32_t clusters = 0;       // C: items carry a cluster id in [0, C); 0 = not partitioned
  uint32_t topics = 0;         // K: items carry K topic weights; 0 = none
  uint32_t max_history = 200;  // events kept per user, newest first

  friend bool operator==(const CollectionSchema&, const CollectionSchema&) = default;
};

struct ItemRecord {
  uint64_t id = 0;
  std::vector<float> vector;
  uint32_t cluster = 0;
  std::vector<float> topic_weights;
  std::optional<int64_t> category;
  std::vector<int64_t> tags;
  int64_t timestamp = 0;
  std::string payload;  // small JSON document, returned with results

  friend bool operator==(const ItemRecord&, const ItemRecord&) = default;
};

struct Interaction {
  uint64_t item = 0;
  int64_t timestamp = 0;
  friend bool operator==(const Interaction&, const Interaction&) = default;
};

struct UserRecord {
  uint64_t id = 0;
  std::vector<float> vector;         // empty: the user has no vector
  std::vector<Interaction> history;  // newest first, at most the schema's max_history

  friend bool operator==(const UserRecord&, const UserRecord&) = default;
};

// What one write batch changed in a collection: the op log lets start-up bring an index
// snapshot up to date by re-reading these ids.
struct OpRecord {
  std::vector<uint64_t> upserted;
  std::vector<uint64_t> deleted;
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

}  // namespace quiver::storage
