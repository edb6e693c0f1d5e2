// Code layout for 4-bit PQ fast scan (the kernel is Kernels::fastscan_block32).
//
// Vectors are grouped in blocks of 32. For sub-quantiser pair p (sub-quantisers 2p and 2p+1)
// a block holds 32 bytes:
//   byte v      (v < 16): low nibble = code(v, 2p),      high nibble = code(v + 16, 2p)
//   byte 16 + v (v < 16): low nibble = code(v, 2p + 1),  high nibble = code(v + 16, 2p + 1)
// so a block is pairs * 32 bytes, pairs = ceil(m / 2). Tables are laid out to match: for pair
// p, 32 bytes: the 16 uint8 entries of sub-quantiser 2p, then the 16 of 2p + 1 (zeros when
// m is odd and 2p + 1 == m).
#pragma once

#include <cstddef>
#include <cstdint>

namespace quiver::simd {

inline size_t FastScanPairs(size_t m) { return (m + 1) / 2; }
inline size_t FastScanBlockBytes(size_t m) { return FastScanPairs(m) * 32; }

// Sub-code j of the vector in lane v (0..31) of a packed block.
inline uint8_t FastScanGet(const uint8_t* block, size_t v, size_t j) {
  const uint8_t b = block[(j / 2) * 32 + (j % 2) * 16 + (v % 16)];
  return v < 16 ? b & 0xF : b >> 4;
}

// Sets sub-code j (0..15) of lane v.
inline void FastScanSet(uint8_t* block, size_t v, size_t j, uint8_t code) {
  uint8_t& b = block[(j / 2) * 32 + (j % 2) * 16 + (v % 16)];
  b = v < 16 ? uint8_t((b & 0xF0) | (code & 0xF)) : uint8_t((b & 0x0F) | (code << 4));
}

}  // namespace quiver::simd
