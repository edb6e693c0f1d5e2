// The memory read baseline that kernel and flat-scan throughput are compared against: a plain
// sum over 64-bit words with four independent accumulators (the compiler vectorises it).
#pragma once

#include <cstddef>
#include <cstdint>

namespace quiver::bench {

// REQUIRES: n is a multiple of 4.
inline uint64_t SumWords(const uint64_t* words, size_t n) {
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i < n; i += 4) {
    s0 += words[i];
    s1 += words[i + 1];
    s2 += words[i + 2];
    s3 += words[i + 3];
  }
  return s0 + s1 + s2 + s3;
}

}  // namespace quiver::bench
