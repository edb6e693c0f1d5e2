#include "base/index_spec.h"

namespace quiver {

std::string_view MetricName(Metric metric) {
  switch (metric) {
    case Metric::kL2:
      return "l2";
    case Metric::kInnerProduct:
      return "ip";
    case Metric::kCosine:
      return "cosine";
  }
  return "unknown";
}

std::optional<Metric> ParseMetric(std::string_view name) {
  for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    if (MetricName(m) == name) return m;
  }
  return std::nullopt;
}

std::string_view IndexTypeName(IndexSpec::Type type) {
  switch (type) {
    case IndexSpec::Type::kFlat:
      return "flat";
    case IndexSpec::Type::kHnsw:
      return "hnsw";
    case IndexSpec::Type::kIvfPq:
      return "ivf_pq";
  }
  return "unknown";
}

std::optional<IndexSpec::Type> ParseIndexType(std::string_view name) {
  for (auto t : {IndexSpec::Type::kFlat, IndexSpec::Type::kHnsw, IndexSpec::Type::kIvfPq}) {
    if (IndexTypeName(t) == name) return t;
  }
  return std::nullopt;
}

}  // namespace quiver
