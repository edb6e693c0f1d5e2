// AVX-512 level: the 512-bit forms of the float, uint8, int8 and fast-scan kernels, against
// SIMDe's AVX-512 API; the remaining kernels (fp16, normalize) reuse the AVX2 body compiled
// in this translation unit. Compiled with -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c.
// clang-format off: the AVX2 body first, under its namespace macro, then the AVX-512 API.
#define QV_SIMD_NS avx512_body
#include "index/simd/kernels_body.inc"
// clang-format on

#include <simde/x86/avx512.h>

namespace quiver::simd {
namespace avx512 {
namespace {

// The 256-bit halves of a 512-bit register through the merge-masked extract with all four
// lanes kept (one vextract, as the plain forms compile to): GCC 12's plain cast and extract go
// through its self-initialised _mm256_undefined_*, which -Wuninitialized flags at every use.
template <int kHalf>
simde__m256i HalfOf(simde__m512i v) {
  return simde_mm512_mask_extracti64x4_epi64(simde_mm256_setzero_si256(), 0xF, v, kHalf);
}
template <int kHalf>
simde__m256 HalfOf(simde__m512 v) {
  return simde_mm256_castpd_ps(simde_mm512_mask_extractf64x4_pd(simde_mm256_setzero_pd(), 0xF,
                                                                simde_mm512_castps_pd(v), kHalf));
}

inline float HorizontalSum512(simde__m512 v) {
  simde__m256 s = simde_mm256_add_ps(HalfOf<0>(v), HalfOf<1>(v));
  simde__m128 x = simde_mm_add_ps(simde_mm256_castps256_ps128(s), simde_mm256_extractf128_ps(s, 1));
  x = simde_mm_add_ps(x, simde_mm_movehl_ps(x, x));
  x = simde_mm_add_ss(x, simde_mm_shuffle_ps(x, x, 1));
  return simde_mm_cvtss_f32(x);
}

inline int32_t HorizontalSum512(simde__m512i v) {
  simde__m256i s = simde_mm256_add_epi32(HalfOf<0>(v), HalfOf<1>(v));
  simde__m128i x =
      simde_mm_add_epi32(simde_mm256_castsi256_si128(s), simde_mm256_extracti128_si256(s, 1));
  x = simde_mm_add_epi32(x, simde_mm_shuffle_epi32(x, 0x4E));
  x = simde_mm_add_epi32(x, simde_mm_shuffle_epi32(x, 0xB1));
  return simde_mm_cvtsi128_si32(x);
}

inline float L2Sqr(const float* a, const float* b, size_t d) {
  simde__m512 s0 = simde_mm512_setzero_ps(), s1 = s0;
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    simde__m512 t0 = simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i));
    simde__m512 t1 =
        simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i + 16), simde_mm512_loadu_ps(b + i + 16));
    s0 = simde_mm512_fmadd_ps(t0, t0, s0);
    s1 = simde_mm512_fmadd_ps(t1, t1, s1);
  }
  for (; i + 16 <= d; i += 16) {
    simde__m512 t = simde_mm512_sub_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i));
    s0 = simde_mm512_fmadd_ps(t, t, s0);
  }
  float s = HorizontalSum512(simde_mm512_add_ps(s0, s1));
  if (i < d) s += avx512_body::L2Sqr(a + i, b + i, d - i);
  return s;
}

inline float InnerProduct(const float* a, const float* b, size_t d) {
  simde__m512 s0 = simde_mm512_setzero_ps(), s1 = s0;
  size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    s0 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i), s0);
    s1 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i + 16), simde_mm512_loadu_ps(b + i + 16),
                              s1);
  }
  for (; i + 16 <= d; i += 16) {
    s0 = simde_mm512_fmadd_ps(simde_mm512_loadu_ps(a + i), simde_mm512_loadu_ps(b + i), s0);
  }
  float s = HorizontalSum512(simde_mm512_add_ps(s0, s1));
  if (i < d) s += avx512_body::InnerProduct(a + i, b + i, d - i);
  return s;
}

inline uint32_t L2SqrU8(const uint8_t* a, const uint8_t* b, size_t d) {
  const simde__m512i zero = simde_mm512_setzero_si512();
  simde__m512i acc0 = zero, acc1 = zero;
  size_t i = 0;
  for (; i + 64 <= d; i += 64) {
    simde__m512i va = simde_mm512_loadu_si512(a + i);
    simde__m512i vb = simde_mm512_loadu_si512(b + i);
    simde__m512i ad =
        simde_mm512_or_si512(simde_mm512_subs_epu8(va, vb), simde_mm512_subs_epu8(vb, va));
    simde__m512i lo = simde_mm512_unpacklo_epi8(ad, zero);
    simde__m512i hi = simde_mm512_unpackhi_epi8(ad, zero);
    acc0 = simde_mm512_add_epi32(acc0, simde_mm512_madd_epi16(lo, lo));
    acc1 = simde_mm512_add_epi32(acc1, simde_mm512_madd_epi16(hi, hi));
  }
  uint32_t s = uint32_t(HorizontalSum512(simde_mm512_add_epi32(acc0, acc1)));
  if (i < d) s += avx512_body::L2SqrU8(a + i, b + i, d - i);
  return s;
}

inline int32_t InnerProductI8(const int8_t* a, const int8_t* b, size_t d) {
  simde__m512i acc0 = simde_mm512_setzero_si512(), acc1 = acc0;
  size_t i = 0;
  for (; i + 64 <= d; i += 64) {
    simde__m256i a0 = simde_mm256_loadu_si256(reinterpret_cast<const simde__m256i*>(a + i));
    simde__m256i a1 = simde_mm256_loadu_si256(reinterpret_cast<const simde__m256i*>(a + i + 32));
    simde__m256i b0 = simde_mm256_loadu_si256(reinterpret_cast<const simde__m256i*>(b + i));
    simde__m256i b1 = simde_mm256_loadu_si256(reinterpret_cast<const simde__m256i*>(b + i + 32));
    acc0 = simde_mm512_add_epi32(
        acc0, simde_mm512_madd_epi16(simde_mm512_cvtepi8_epi16(a0), simde_mm512_cvtepi8_epi16(b0)));
    acc1 = simde_mm512_add_epi32(
        acc1, simde_mm512_madd_epi16(simde_mm512_cvtepi8_epi16(a1), simde_mm512_cvtepi8_epi16(b1)));
  }
  int32_t s = HorizontalSum512(simde_mm512_add_epi32(acc0, acc1));
  if (i < d) s += avx512_body::InnerProductI8(a + i, b + i, d - i);
  return s;
}

// Fast scan, two sub-quantiser pairs per 512-bit step (lanes 0-1: pair p, lanes 2-3: pair
// p + 1); the halves are folded into the 256-bit form of the AVX2 body for an odd last pair
// and the final re-interleave.
uint32_t FastScanBlock32(const uint8_t* codes, const uint8_t* luts, size_t pairs,
                         uint16_t threshold, uint16_t* out) {
  const simde__m512i low4 = simde_mm512_set1_epi8(0x0F);
  simde__m512i lo_all = simde_mm512_setzero_si512(), lo_odd = lo_all;
  simde__m512i hi_all = lo_all, hi_odd = lo_all;
  size_t p = 0;
  for (; p + 2 <= pairs; p += 2) {
    const simde__m512i c = simde_mm512_loadu_si512(codes + p * 32);
    const simde__m512i lut = simde_mm512_loadu_si512(luts + p * 32);
    const simde__m512i r_lo = simde_mm512_shuffle_epi8(lut, simde_mm512_and_si512(c, low4));
    const simde__m512i r_hi =
        simde_mm512_shuffle_epi8(lut, simde_mm512_and_si512(simde_mm512_srli_epi16(c, 4), low4));
    lo_all = simde_mm512_add_epi16(lo_all, r_lo);
    lo_odd = simde_mm512_add_epi16(lo_odd, simde_mm512_srli_epi16(r_lo, 8));
    hi_all = simde_mm512_add_epi16(hi_all, r_hi);
    hi_odd = simde_mm512_add_epi16(hi_odd, simde_mm512_srli_epi16(r_hi, 8));
  }
  auto halves = [](simde__m512i v) { return simde_mm256_add_epi16(HalfOf<0>(v), HalfOf<1>(v)); };
  avx512_body::FastScanAcc acc{halves(lo_all), halves(lo_odd), halves(hi_all), halves(hi_odd)};
  if (p < pairs) avx512_body::FastScanStep(codes + p * 32, luts + p * 32, acc);
  return avx512_body::FastScanStore(acc, threshold, out);
}

float L2SqrEntry(const float* a, const float* b, size_t d) { return L2Sqr(a, b, d); }
float InnerProductEntry(const float* a, const float* b, size_t d) { return InnerProduct(a, b, d); }
uint32_t L2SqrU8Entry(const uint8_t* a, const uint8_t* b, size_t d) { return L2SqrU8(a, b, d); }
int32_t InnerProductI8Entry(const int8_t* a, const int8_t* b, size_t d) {
  return InnerProductI8(a, b, d);
}

}  // namespace
}  // namespace avx512

const Kernels& Avx512Kernels() {
  static const Kernels k = [] {
    Kernels t = avx512_body::MakeBodyKernels(SimdLevel::kAvx512);
    t.l2sqr = avx512::L2SqrEntry;
    t.inner_product = avx512::InnerProductEntry;
    t.l2sqr_batch = avx512_body::BatchOf<avx512::L2SqrEntry>;
    t.inner_product_batch = avx512_body::BatchOf<avx512::InnerProductEntry>;
    t.l2sqr_by_ids = avx512_body::ByIdsOf<avx512::L2SqrEntry>;
    t.inner_product_by_ids = avx512_body::ByIdsOf<avx512::InnerProductEntry>;
    t.l2sqr_u8 = avx512::L2SqrU8Entry;
    t.inner_product_i8 = avx512::InnerProductI8Entry;
    t.fastscan_block32 = avx512::FastScanBlock32;
    return t;
  }();
  return k;
}

}  // namespace quiver::simd
