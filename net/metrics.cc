#include "net/metrics.h"

#include <cstdio>

#include "base/allocator.h"

namespace quiver::net {

void Metrics::Record(size_t kind, Protocol protocol, StatusCode code,
                     std::chrono::nanoseconds elapsed) {
  PerKind& k = kinds_[std::min(kind, kKinds - 1)];
  k.count[size_t(protocol)][std::min(size_t(code), kCodes - 1)].fetch_add(
      1, std::memory_order_relaxed);
  const double seconds = std::chrono::duration<double>(elapsed).count();
  size_t b = 0;
  while (b < kBuckets.size() && seconds > kBuckets[b]) ++b;
  k.buckets[b].fetch_add(1, std::memory_order_relaxed);
  k.sum_ns.fetch_add(uint64_t(elapsed.count()), std::memory_order_relaxed);
}

std::string Metrics::Render(const std::vector<CollectionInfo>& collections) const {
  std::string out;
  char line[256];
  auto op_name = [](size_t kind) { return kind < kCallKinds ? CallNameAt(kind) : "invalid"; };
  out += "# HELP quiver_requests_total Requests by operation, protocol and status code.\n";
  out += "# TYPE quiver_requests_total counter\n";
  for (size_t kind = 0; kind < kKinds; ++kind) {
    for (size_t p = 0; p < 2; ++p) {
      for (size_t c = 0; c < kCodes; ++c) {
        const uint64_t n = kinds_[kind].count[p][c].load(std::memory_order_relaxed);
        if (n == 0) continue;
        std::snprintf(line, sizeof(line),
                      "quiver_requests_total{op=\"%s\",protocol=\"%s\",code=\"%s\"} %llu\n",
                      op_name(kind), p == 0 ? "rest" : "binary",
                      std::string(StatusCodeName(StatusCode(c))).c_str(), (unsigned long long)n);
        out += line;
      }
    }
  }
  out += "# HELP quiver_request_seconds Request latency by operation (handling, both protocols).\n";
  out += "# TYPE quiver_request_seconds histogram\n";
  for (size_t kind = 0; kind < kKinds; ++kind) {
    const PerKind& k = kinds_[kind];
    uint64_t total = 0;
    for (const auto& b : k.buckets) total += b.load(std::memory_order_relaxed);
    if (total == 0) continue;
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= kBuckets.size(); ++b) {
      cumulative += k.buckets[b].load(std::memory_order_relaxed);
      if (b < kBuckets.size()) {
        std::snprintf(line, sizeof(line),
                      "quiver_request_seconds_bucket{op=\"%s\",le=\"%g\"} %llu\n", op_name(kind),
                      kBuckets[b], (unsigned long long)cumulative);
      } else {
        std::snprintf(line, sizeof(line),
                      "quiver_request_seconds_bucket{op=\"%s\",le=\"+Inf\"} %llu\n", op_name(kind),
                      (unsigned long long)cumulative);
      }
      out += line;
    }
    std::snprintf(line, sizeof(line),
                  "quiver_request_seconds_sum{op=\"%s\"} "
                  "%.9f\nquiver_request_seconds_count{op=\"%s\"} %llu\n",
                  op_name(kind), double(k.sum_ns.load(std::memory_order_relaxed)) * 1e-9,
                  op_name(kind), (unsigned long long)cumulative);
    out += line;
  }
  out +=
      "# HELP quiver_collection_items Live items in a collection's index.\n# TYPE "
      "quiver_collection_items gauge\n";
  for (const CollectionInfo& c : collections) {
    std::snprintf(line, sizeof(line), "quiver_collection_items{collection=\"%s\"} %llu\n",
                  c.schema.name.c_str(), (unsigned long long)c.items);
    out += line;
  }
  out +=
      "# HELP quiver_index_memory_bytes Memory held by a collection's index.\n# TYPE "
      "quiver_index_memory_bytes gauge\n";
  for (const CollectionInfo& c : collections) {
    std::snprintf(line, sizeof(line), "quiver_index_memory_bytes{collection=\"%s\"} %llu\n",
                  c.schema.name.c_str(), (unsigned long long)c.index_memory_bytes);
    out += line;
  }
  size_t allocated = 0, resident = 0;
  if (AllocatorMemory(&allocated, &resident)) {
    std::snprintf(line, sizeof(line),
                  "# HELP quiver_allocator_bytes Allocator statistics (jemalloc).\n# TYPE "
                  "quiver_allocator_bytes gauge\n"
                  "quiver_allocator_bytes{kind=\"allocated\"} "
                  "%zu\nquiver_allocator_bytes{kind=\"resident\"} %zu\n",
                  allocated, resident);
    out += line;
  }
  return out;
}

}  // namespace quiver::net
