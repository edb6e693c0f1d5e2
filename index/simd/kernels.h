// Distance kernels. One table of function pointers per instruction-set level; GetKernels()
// returns the table of the active level (see simd_level.h), chosen once per process.
//
// Conventions for every kernel:
//   - d is the number of components (any d >= 1; no alignment is required of any pointer);
//   - "batch" forms score one query against n rows of a contiguous row-major block (stride d);
//   - "by ids" forms score one query against rows base + ids[j] * d;
//   - L2 kernels return the squared Euclidean distance, IP kernels the dot product;
//   - quantised kernels work on codes (see index/simd/quantizer.h): uint8 codes for L2
//     (any affine encoding with one step for all components: step^2 * L2SqrU8 = distance),
//     int8 codes for inner product (symmetric encoding: step^2 * InnerProductI8 = dot product),
//     fp16 (IEEE binary16) vectors against a float query, and float queries against 8-bit codes
//     (asymmetric: the query is not quantised).
// All kernels are pure, allocate nothing and are safe to call from any thread.
#pragma once

#include <cstddef>
#include <cstdint>

#include "index/simd/simd_level.h"

namespace quiver::simd {

struct Kernels {
  SimdLevel level;
  float (*l2sqr)(const float* a, const float* b, size_t d);
  float (*inner_product)(const float* a, const float* b, size_t d);
  void (*l2sqr_batch)(const float* q, const float* base, size_t n, size_t d, float* out);
  void (*inner_product_batch)(const float* q, const float* base, size_t n, size_t d, float* out);
  void (*l2sqr_by_ids)(const float* q, const float* base, const uint32_t* ids, size_t n, size_t d,
                       float* out);
  void (*inner_product_by_ids)(const float* q, const float* base, const uint32_t* ids, size_t n,
                               size_t d, float* out);
  // Scales x in place to unit L2 norm; returns the norm before scaling. A zero vector is left
  // unchanged (returns 0).
  float (*normalize)(float* x, size_t d);
  uint32_t (*l2sqr_u8)(const uint8_t* a, const uint8_t* b, size_t d);
  int32_t (*inner_product_i8)(const int8_t* a, const int8_t* b, size_t d);
  float (*l2sqr_f16)(const float* q, const uint16_t* x, size_t d);
  float (*inner_product_f16)(const float* q, const uint16_t* x, size_t d);
  // Asymmetric: a float query against 8-bit codes taken as their integer values, sum of
  // (q[i] - c[i])^2 and of q[i] * c[i]. With an affine encoding x = lo + step * c, give
  // q' = (q - lo) / step: step^2 * L2SqrF32U8(q', c) is the distance to the decoded row, for
  // any query (one outside the codes' range included: nothing of the query is clamped).
  float (*l2sqr_f32_u8)(const float* q, const uint8_t* c, size_t d);
  float (*inner_product_f32_i8)(const float* q, const int8_t* c, size_t d);
  // 4-bit PQ fast scan over one block of 32 vectors (layout in index/simd/fastscan.h): out[v]
  // = sum over sub-quantisers j of lut[j][code(v, j)], as uint16 (the caller keeps sums below
  // 65,536 by how it quantises the tables). Returns the lanes whose sum is at most threshold,
  // as a bit mask (bit v for vector v).
  uint32_t (*fastscan_block32)(const uint8_t* codes, const uint8_t* luts, size_t pairs,
                               uint16_t threshold, uint16_t* out);
  // Fast-scan tables: for each of m sub-quantisers with 16 entries, sum[j*16+c] = a[..] + b[..]
  // (b may be null), mins[j] = the smallest entry of sub-quantiser j; returns the largest
  // max - min over the sub-quantisers.
  float (*lut16_sum_minmax)(const float* a, const float* b, size_t m, float* sum, float* mins);
  // luts in the fast-scan layout (index/simd/fastscan.h): round((sum - mins[j]) * scale),
  // REQUIRES: results within [0, 255].
  void (*lut16_quantize)(const float* sum, const float* mins, size_t m, float scale, uint8_t* luts);
};

// Kernels of the active level. The reference is valid for the life of the process.
const Kernels& GetKernels();

// Kernels of a given level, or nullptr if this build or CPU cannot run it.
const Kernels* KernelsFor(SimdLevel level);

// Per-level tables (defined in kernels_<level>.cc). Exposed for tests and benchmarks.
const Kernels& ScalarKernels();
const Kernels& GenericKernels();
#if defined(__x86_64__)
const Kernels& Avx2Kernels();
const Kernels& Avx512Kernels();
#endif

}  // namespace quiver::simd
