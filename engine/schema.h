// Collection schemas and items: validation, and the index a schema asks for.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "base/status.h"
#include "index/vector_index.h"
#include "storage/records.h"

namespace quiver::engine {

using storage::CollectionSchema;
using storage::IndexSpec;
using storage::ItemRecord;
using storage::UserRecord;

// Limits checked before anything is stored.
inline constexpr uint32_t kMaxDim = 65536;
inline constexpr uint32_t kMaxClusters = 1u << 20;
inline constexpr uint32_t kMaxTopics = 256;
inline constexpr size_t kMaxTags = 256;
inline constexpr size_t kMaxPayloadBytes = size_t{64} * 1024;
inline constexpr uint32_t kMaxHistory = 100000;
inline constexpr uint32_t kMaxShards = 1024;
inline constexpr size_t kMaxNameBytes = 128;

// kInvalidArgument, naming the field, for a schema that cannot be served.
Status ValidateSchema(const CollectionSchema& schema);

// kInvalidArgument naming the item and field: wrong dimension, NaN or Inf, a zero vector under
// cosine, a cluster id out of range, topic weights of the wrong count or not a distribution,
// too many tags, an oversized payload, or an id twice in the batch.
Status ValidateItems(const CollectionSchema& schema, std::span<const ItemRecord> items);
Status ValidateUser(const CollectionSchema& schema, const UserRecord& user);

// A new, empty index as the schema's index spec describes it.
Result<std::unique_ptr<index::VectorIndex>> MakeIndex(const CollectionSchema& schema);

// Whether an index loaded from a snapshot is the one the schema describes.
Status CheckIndexMatches(const CollectionSchema& schema, const index::VectorIndex& index);

// Number of items the first batch of an (untrained) IVF-PQ collection must hold; 0 otherwise.
size_t MinFirstBatch(const CollectionSchema& schema);

}  // namespace quiver::engine
