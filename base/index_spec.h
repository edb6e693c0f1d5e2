// The two values the index library shares with the data model, the wire and the client: the
// metric, and how a collection's vectors are indexed. Plain values; no behaviour beyond names.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace quiver {

// Distances are "smaller is closer" inside the indexes; scores are "higher is better".
enum class Metric : uint8_t { kL2 = 0, kInnerProduct = 1, kCosine = 2 };

std::string_view MetricName(Metric metric);
// Accepts "l2", "ip", "cosine".
std::optional<Metric> ParseMetric(std::string_view name);

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

std::string_view IndexTypeName(IndexSpec::Type type);
// Accepts "flat", "hnsw", "ivf_pq".
std::optional<IndexSpec::Type> ParseIndexType(std::string_view name);

}  // namespace quiver
