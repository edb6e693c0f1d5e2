// Scalar reference kernels: the definition every SIMD level is tested against. Accumulation is
// in double so the reference is more accurate than any level under test.
#include <algorithm>
#include <cmath>

#include "index/simd/fp16.h"
#include "index/simd/kernels.h"

namespace quiver::simd {
namespace {

// Query q (float) against row x of any element type, each element read as `value(x[i])`.
template <typename T, typename Value>
float L2SqrOf(const float* q, const T* x, size_t d, Value value) {
  double s = 0;
  for (size_t i = 0; i < d; ++i) {
    double t = double(q[i]) - double(value(x[i]));
    s += t * t;
  }
  return float(s);
}

template <typename T, typename Value>
float InnerProductOf(const float* q, const T* x, size_t d, Value value) {
  double s = 0;
  for (size_t i = 0; i < d; ++i) s += double(q[i]) * double(value(x[i]));
  return float(s);
}

constexpr auto kAsIs = [](auto v) { return v; };

float L2Sqr(const float* a, const float* b, size_t d) { return L2SqrOf(a, b, d, kAsIs); }

float InnerProduct(const float* a, const float* b, size_t d) {
  return InnerProductOf(a, b, d, kAsIs);
}

void L2SqrBatch(const float* q, const float* base, size_t n, size_t d, float* out) {
  for (size_t j = 0; j < n; ++j) out[j] = L2Sqr(q, base + j * d, d);
}

void InnerProductBatch(const float* q, const float* base, size_t n, size_t d, float* out) {
  for (size_t j = 0; j < n; ++j) out[j] = InnerProduct(q, base + j * d, d);
}

void L2SqrByIds(const float* q, const float* base, const uint32_t* ids, size_t n, size_t d,
                float* out) {
  for (size_t j = 0; j < n; ++j) out[j] = L2Sqr(q, base + size_t(ids[j]) * d, d);
}

void InnerProductByIds(const float* q, const float* base, const uint32_t* ids, size_t n, size_t d,
                       float* out) {
  for (size_t j = 0; j < n; ++j) out[j] = InnerProduct(q, base + size_t(ids[j]) * d, d);
}

float Normalize(float* x, size_t d) {
  double s = 0;
  for (size_t i = 0; i < d; ++i) s += double(x[i]) * double(x[i]);
  double norm = std::sqrt(s);
  if (norm == 0) return 0;
  for (size_t i = 0; i < d; ++i) x[i] = float(x[i] / norm);
  return float(norm);
}

uint32_t L2SqrU8(const uint8_t* a, const uint8_t* b, size_t d) {
  uint32_t s = 0;
  for (size_t i = 0; i < d; ++i) {
    int t = int(a[i]) - int(b[i]);
    s += uint32_t(t * t);
  }
  return s;
}

int32_t InnerProductI8(const int8_t* a, const int8_t* b, size_t d) {
  int32_t s = 0;
  for (size_t i = 0; i < d; ++i) s += int32_t(a[i]) * int32_t(b[i]);
  return s;
}

float L2SqrF16(const float* q, const uint16_t* x, size_t d) {
  return L2SqrOf(q, x, d, HalfToFloat);
}

float InnerProductF16(const float* q, const uint16_t* x, size_t d) {
  return InnerProductOf(q, x, d, HalfToFloat);
}

float L2SqrF32U8(const float* q, const uint8_t* c, size_t d) { return L2SqrOf(q, c, d, kAsIs); }

float InnerProductF32I8(const float* q, const int8_t* c, size_t d) {
  return InnerProductOf(q, c, d, kAsIs);
}

uint32_t FastScanBlock32(const uint8_t* codes, const uint8_t* luts, size_t pairs,
                         uint16_t threshold, uint16_t* out) {
  uint32_t sums[32] = {};
  for (size_t p = 0; p < pairs; ++p) {
    const uint8_t* c = codes + p * 32;
    const uint8_t* lut_even = luts + p * 32;
    const uint8_t* lut_odd = lut_even + 16;
    for (size_t v = 0; v < 16; ++v) {
      sums[v] += lut_even[c[v] & 0xF] + lut_odd[c[16 + v] & 0xF];
      sums[v + 16] += lut_even[c[v] >> 4] + lut_odd[c[16 + v] >> 4];
    }
  }
  uint32_t mask = 0;
  for (size_t v = 0; v < 32; ++v) {
    out[v] = uint16_t(sums[v]);
    if (out[v] <= threshold) mask |= uint32_t{1} << v;
  }
  return mask;
}

float Lut16SumMinMax(const float* a, const float* b, size_t m, float* sum, float* mins) {
  float range = 0;
  for (size_t j = 0; j < m; ++j) {
    float lo = 0, hi = 0;
    for (size_t c = 0; c < 16; ++c) {
      const float v = a[j * 16 + c] + (b ? b[j * 16 + c] : 0.0f);
      sum[j * 16 + c] = v;
      lo = c == 0 || v < lo ? v : lo;
      hi = c == 0 || v > hi ? v : hi;
    }
    mins[j] = lo;
    range = std::max(range, hi - lo);
  }
  return range;
}

void Lut16Quantize(const float* sum, const float* mins, size_t m, float scale, uint8_t* luts) {
  for (size_t j = 0; j < m; ++j) {
    uint8_t* dst = luts + (j / 2) * 32 + (j % 2) * 16;
    for (size_t c = 0; c < 16; ++c)
      dst[c] = uint8_t(std::nearbyint((sum[j * 16 + c] - mins[j]) * scale));
  }
}

}  // namespace

const Kernels& ScalarKernels() {
  static const Kernels k{SimdLevel::kScalar,
                         L2Sqr,
                         InnerProduct,
                         L2SqrBatch,
                         InnerProductBatch,
                         L2SqrByIds,
                         InnerProductByIds,
                         Normalize,
                         L2SqrU8,
                         InnerProductI8,
                         L2SqrF16,
                         InnerProductF16,
                         L2SqrF32U8,
                         InnerProductF32I8,
                         FastScanBlock32,
                         Lut16SumMinMax,
                         Lut16Quantize};
  return k;
}

}  // namespace quiver::simd
