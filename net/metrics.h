// Request metrics in Prometheus text format: counts per operation, protocol and outcome, and a
// latency histogram per operation. Lock-free counters; Render may run beside recording.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <string>

#include "base/status.h"
#include "engine/engine.h"
#include "net/schema/calls.h"

namespace quiver::net {

enum class Protocol : uint8_t { kRest = 0, kBinary = 1 };

class Metrics {
 public:
  static constexpr std::array<double, 12> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,   0.025,   0.05,   0.1,   1.0,    10.0};

  // `kind` is the Call's index (kCallKinds for requests that never became a call).
  void Record(size_t kind, Protocol protocol, StatusCode code, std::chrono::nanoseconds elapsed);

  // The exposition text, with the collections' sizes and the allocator's memory.
  std::string Render(const std::vector<CollectionInfo>& collections) const;

 private:
  static constexpr size_t kKinds = kCallKinds + 1;
  static constexpr size_t kCodes = size_t(StatusCode::kUnauthenticated) + 1;
  struct PerKind {
    std::array<std::array<std::atomic<uint64_t>, kCodes>, 2> count{};  // [protocol][code]
    std::array<std::atomic<uint64_t>, kBuckets.size() + 1> buckets{};  // last: +Inf
    std::atomic<uint64_t> sum_ns{0};
  };
  std::array<PerKind, kKinds> kinds_;
};

}  // namespace quiver::net
