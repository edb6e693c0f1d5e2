// The crash test's workload: batch i of a run is a pure function of (seed, i), so the test can
// rebuild the state any prefix of batches should leave, whatever the child got to before it
// was killed.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/schema.h"

namespace quiver::engine::crash {

inline constexpr const char* kCollection = "crash";
inline constexpr uint32_t kDim = 16;
inline constexpr uint64_t kIdSpace = 3000;

inline CollectionSchema Schema() {
  CollectionSchema s;
  s.name = kCollection;
  s.dim = kDim;
  s.metric = index::Metric::kL2;
  s.index.type = IndexSpec::Type::kHnsw;
  s.index.hnsw_m = 8;
  s.index.hnsw_ef_construction = 64;
  s.index.hnsw_ef_search = 64;
  s.clusters = 4;  // items move between clusters as batches rewrite them
  return s;
}

struct Batch {
  bool is_delete = false;
  std::vector<ItemRecord> items;  // upsert
  std::vector<uint64_t> ids;      // delete
};

inline Batch MakeBatch(uint64_t seed, uint64_t i) {
  std::mt19937_64 rng(seed * 1000003 + i);
  Batch b;
  b.is_delete = rng() % 4 == 0;
  const size_t n = 1 + rng() % 64;
  std::map<uint64_t, bool> ids;  // distinct ids, as the engine requires
  while (ids.size() < n) ids[rng() % kIdSpace] = true;
  std::normal_distribution<float> g;
  for (const auto& [id, unused] : ids) {
    if (b.is_delete) {
      b.ids.push_back(id);
      continue;
    }
    ItemRecord item;
    item.id = id;
    for (uint32_t d = 0; d < kDim; ++d) item.vector.push_back(g(rng));
    item.category = int64_t(rng() % 10);
    item.cluster = uint32_t((id + i) % 4);
    item.timestamp = int64_t(i);
    item.payload = "{\"batch\":" + std::to_string(i) + "}";
    b.items.push_back(std::move(item));
  }
  return b;
}

// The items of bulk build k: a few thousand, ids spread over a wide range, in no order.
inline std::vector<ItemRecord> BulkItems(uint64_t seed, uint64_t k) {
  std::mt19937_64 rng(seed * 7919 + k);
  const size_t n = 2000 + (k % 3) * 700;
  std::normal_distribution<float> g;
  std::vector<ItemRecord> items(n);
  for (size_t i = 0; i < n; ++i) {
    items[i].id = (i * 2654435761u + k) % 1000003;
    for (uint32_t d = 0; d < kDim; ++d) items[i].vector.push_back(g(rng));
    items[i].timestamp = int64_t(k);
  }
  return items;
}

// The name of bulk build k's version ("b<k>").
inline std::string VersionName(uint64_t k) {
  std::string name(1, 'b');
  name += std::to_string(k);
  return name;
}

// Applies batch b to a model of the stored items.
inline void Apply(const Batch& b, std::map<uint64_t, ItemRecord>* model) {
  if (b.is_delete) {
    for (uint64_t id : b.ids) model->erase(id);
  } else {
    for (const ItemRecord& item : b.items) (*model)[item.id] = item;
  }
}

}  // namespace quiver::engine::crash
