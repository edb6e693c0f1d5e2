// Every SIMD level this machine can run, against the scalar reference, over odd and large
// dimensions and unaligned pointers.
#include "index/simd/kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "index/simd/fastscan.h"
#include "index/simd/fp16.h"
#include "index/simd/quantizer.h"

namespace quiver::simd {
namespace {

std::vector<size_t> Dims() {
  std::vector<size_t> dims;
  for (size_t d = 1; d <= 33; ++d) dims.push_back(d);
  for (size_t d : {64, 100, 128, 784, 1536}) dims.push_back(d);
  return dims;
}

std::vector<SimdLevel> RunnableLevels() {
  std::vector<SimdLevel> out;
  for (SimdLevel l : {SimdLevel::kGeneric, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (KernelsFor(l)) out.push_back(l);
  }
  return out;
}

class KernelsTest : public ::testing::TestWithParam<SimdLevel> {
 protected:
  const Kernels& k() const { return *KernelsFor(GetParam()); }
  const Kernels& ref() const { return ScalarKernels(); }
  std::mt19937 rng_{1234};
  // Buffer with `offset` leading bytes so the data starts unaligned.
  std::vector<float> Floats(size_t n, size_t offset_floats) {
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<float> v(n + offset_floats);
    for (float& x : v) x = u(rng_);
    return v;
  }
};

// Float kernels accumulate in a different order than the reference: allow a relative error
// proportional to the sum of magnitudes.
void ExpectClose(float got, float want, float magnitude, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-5f * magnitude + 1e-6f) << what;
}

TEST_P(KernelsTest, LevelIsReported) { EXPECT_EQ(k().level, GetParam()); }

TEST_P(KernelsTest, FloatKernelsMatchReference) {
  for (size_t d : Dims()) {
    for (size_t off : {0, 1, 3}) {
      auto a = Floats(d, off), b = Floats(d, off + 1);
      const float* pa = a.data() + off;
      const float* pb = b.data() + off + 1;
      float mag = 0;
      for (size_t i = 0; i < d; ++i)
        mag += std::fabs(pa[i] * pb[i]) + (pa[i] - pb[i]) * (pa[i] - pb[i]);
      std::string what = "d=" + std::to_string(d) + " off=" + std::to_string(off);
      ExpectClose(k().l2sqr(pa, pb, d), ref().l2sqr(pa, pb, d), mag, "l2 " + what);
      ExpectClose(k().inner_product(pa, pb, d), ref().inner_product(pa, pb, d), mag, "ip " + what);
    }
  }
}

TEST_P(KernelsTest, BatchAndIdKernelsMatchReference) {
  for (size_t d : Dims()) {
    const size_t n = 37;
    auto base = Floats(n * d, 1);
    auto q = Floats(d, 2);
    const float* pb = base.data() + 1;
    const float* pq = q.data() + 2;
    std::vector<float> got(n), want(n);
    k().l2sqr_batch(pq, pb, n, d, got.data());
    ref().l2sqr_batch(pq, pb, n, d, want.data());
    for (size_t j = 0; j < n; ++j) ExpectClose(got[j], want[j], 20.0f * d, "l2 batch");
    k().inner_product_batch(pq, pb, n, d, got.data());
    ref().inner_product_batch(pq, pb, n, d, want.data());
    for (size_t j = 0; j < n; ++j) ExpectClose(got[j], want[j], 20.0f * d, "ip batch");
    std::vector<uint32_t> ids = {36, 0, 5, 5, 17, 2};
    std::vector<float> g2(ids.size()), w2(ids.size());
    k().l2sqr_by_ids(pq, pb, ids.data(), ids.size(), d, g2.data());
    ref().l2sqr_by_ids(pq, pb, ids.data(), ids.size(), d, w2.data());
    for (size_t j = 0; j < ids.size(); ++j) ExpectClose(g2[j], w2[j], 20.0f * d, "l2 ids");
    k().inner_product_by_ids(pq, pb, ids.data(), ids.size(), d, g2.data());
    ref().inner_product_by_ids(pq, pb, ids.data(), ids.size(), d, w2.data());
    for (size_t j = 0; j < ids.size(); ++j) ExpectClose(g2[j], w2[j], 20.0f * d, "ip ids");
  }
}

TEST_P(KernelsTest, NormalizeMatchesReference) {
  for (size_t d : Dims()) {
    auto a = Floats(d, 1);
    auto b = a;
    float na = k().normalize(a.data() + 1, d);
    float nb = ref().normalize(b.data() + 1, d);
    EXPECT_NEAR(na, nb, 1e-5f * nb);
    for (size_t i = 0; i < d; ++i) EXPECT_NEAR(a[i + 1], b[i + 1], 1e-6f);
    EXPECT_NEAR(ref().inner_product(a.data() + 1, a.data() + 1, d), 1.0f, 1e-5f);
  }
  std::vector<float> zero(5, 0.0f);
  EXPECT_EQ(k().normalize(zero.data(), 5), 0.0f);
  EXPECT_EQ(zero[0], 0.0f);
}

TEST_P(KernelsTest, QuantisedKernelsAreExact) {
  std::uniform_int_distribution<int> u8(0, 255), i8(-127, 127);
  for (size_t d : Dims()) {
    std::vector<uint8_t> a(d + 3), b(d + 5);
    std::vector<int8_t> c(d + 1), e(d + 2);
    for (auto& x : a) x = uint8_t(u8(rng_));
    for (auto& x : b) x = uint8_t(u8(rng_));
    for (auto& x : c) x = int8_t(i8(rng_));
    for (auto& x : e) x = int8_t(i8(rng_));
    EXPECT_EQ(k().l2sqr_u8(a.data() + 3, b.data() + 5, d),
              ref().l2sqr_u8(a.data() + 3, b.data() + 5, d))
        << d;
    EXPECT_EQ(k().inner_product_i8(c.data() + 1, e.data() + 2, d),
              ref().inner_product_i8(c.data() + 1, e.data() + 2, d))
        << d;
  }
  // Extremes: every difference 255, every product 127 * -127.
  std::vector<uint8_t> lo(1536, 0), hi(1536, 255);
  EXPECT_EQ(k().l2sqr_u8(lo.data(), hi.data(), 1536), 1536u * 255u * 255u);
  std::vector<int8_t> p(1536, 127), n(1536, -127);
  EXPECT_EQ(k().inner_product_i8(p.data(), n.data(), 1536), -1536 * 127 * 127);
}

TEST_P(KernelsTest, Fp16KernelsMatchReference) {
  for (size_t d : Dims()) {
    auto q = Floats(d, 1);
    auto x = Floats(d, 0);
    std::vector<uint16_t> h(d + 1);
    for (size_t i = 0; i < d; ++i) h[i + 1] = FloatToHalf(x[i]);
    float mag = 8.0f * d;
    ExpectClose(k().l2sqr_f16(q.data() + 1, h.data() + 1, d),
                ref().l2sqr_f16(q.data() + 1, h.data() + 1, d), mag, "l2 f16");
    ExpectClose(k().inner_product_f16(q.data() + 1, h.data() + 1, d),
                ref().inner_product_f16(q.data() + 1, h.data() + 1, d), mag, "ip f16");
  }
}

// A float query against 8-bit codes, the query far outside the codes' range too (asymmetric
// refine must not clamp it): each level matches the double-precision reference.
TEST_P(KernelsTest, FloatAgainstByteCodesMatchesReference) {
  std::uniform_int_distribution<int> u8(0, 255), i8(-127, 127);
  for (size_t d : Dims()) {
    for (float scale : {1.0f, 300.0f}) {
      auto q = Floats(d + 1, 2);
      for (float& x : q) x = x * scale + (scale > 1 ? 500.0f : 100.0f);
      std::vector<uint8_t> a(d + 3);
      std::vector<int8_t> c(d + 2);
      for (auto& x : a) x = uint8_t(u8(rng_));
      for (auto& x : c) x = int8_t(i8(rng_));
      // Relative to the sums of the terms' sizes.
      const float l2 = ref().l2sqr_f32_u8(q.data() + 1, a.data() + 3, d);
      float ip_mag = 0;
      for (size_t i = 0; i < d; ++i) ip_mag += std::fabs(q[i + 1]) * 127.0f;
      ExpectClose(k().l2sqr_f32_u8(q.data() + 1, a.data() + 3, d), l2, l2, "l2 f32 u8");
      ExpectClose(k().inner_product_f32_i8(q.data() + 1, c.data() + 2, d),
                  ref().inner_product_f32_i8(q.data() + 1, c.data() + 2, d), ip_mag, "ip f32 i8");
    }
  }
  // Known values: (0.5 - 255)^2 per component; 2 * -127 per component.
  std::vector<float> half(100, 0.5f), two(100, 2.0f);
  std::vector<uint8_t> top(100, 255);
  std::vector<int8_t> low(100, -127);
  EXPECT_FLOAT_EQ(k().l2sqr_f32_u8(half.data(), top.data(), 100), 100 * 254.5f * 254.5f);
  EXPECT_FLOAT_EQ(k().inner_product_f32_i8(two.data(), low.data(), 100), -25400.0f);
}

TEST_P(KernelsTest, FastScanMatchesReference) {
  std::uniform_int_distribution<int> byte(0, 255);
  for (size_t pairs : {1, 2, 3, 8, 49, 98, 128}) {
    std::vector<uint8_t> codes(pairs * 32 + 1), luts(pairs * 32 + 3);
    for (auto& c : codes) c = uint8_t(byte(rng_));
    for (auto& l : luts) l = uint8_t(byte(rng_));
    uint16_t got[32], want[32];
    ref().fastscan_block32(codes.data() + 1, luts.data() + 3, pairs, 0, want);
    // Thresholds at, just under and just over lane sums, and the extremes of the range.
    std::vector<uint16_t> thresholds = {0, 65535, want[0], uint16_t(want[5] - 1),
                                        uint16_t(want[31] + 1)};
    std::vector<uint16_t> sorted(want, want + 32);
    std::sort(sorted.begin(), sorted.end());
    thresholds.push_back(sorted[15]);
    for (uint16_t t : thresholds) {
      const uint32_t got_mask =
          k().fastscan_block32(codes.data() + 1, luts.data() + 3, pairs, t, got);
      const uint32_t want_mask =
          ref().fastscan_block32(codes.data() + 1, luts.data() + 3, pairs, t, want);
      EXPECT_EQ(got_mask, want_mask) << "pairs " << pairs << " threshold " << t;
      for (size_t v = 0; v < 32; ++v) {
        EXPECT_EQ(got[v], want[v]) << "pairs " << pairs << " lane " << v;
        EXPECT_EQ((want_mask >> v) & 1, want[v] <= t ? 1u : 0u)
            << "lane " << v << " threshold " << t;
      }
    }
  }
}

TEST_P(KernelsTest, FastScanTableKernelsMatchReference) {
  for (size_t m : {1, 2, 7, 16, 196}) {
    auto a = Floats(m * 16, 1), b = Floats(m * 16, 2);
    std::vector<float> s1(m * 16), s2(m * 16), mins1(m), mins2(m);
    for (const float* bp :
         {static_cast<const float*>(nullptr), static_cast<const float*>(b.data() + 2)}) {
      float r1 = k().lut16_sum_minmax(a.data() + 1, bp, m, s1.data(), mins1.data());
      float r2 = ref().lut16_sum_minmax(a.data() + 1, bp, m, s2.data(), mins2.data());
      EXPECT_EQ(r1, r2);
      EXPECT_EQ(s1, s2);
      EXPECT_EQ(mins1, mins2);
    }
    const float scale =
        255.0f / ref().lut16_sum_minmax(a.data(), b.data(), m, s2.data(), mins2.data());
    std::vector<uint8_t> q1(FastScanBlockBytes(m), 0), q2(FastScanBlockBytes(m), 0);
    k().lut16_quantize(s2.data(), mins2.data(), m, scale, q1.data());
    ref().lut16_quantize(s2.data(), mins2.data(), m, scale, q2.data());
    EXPECT_EQ(q1, q2) << "m " << m;
    EXPECT_EQ(*std::max_element(q2.begin(), q2.end()), 255);
  }
}

INSTANTIATE_TEST_SUITE_P(AllLevels, KernelsTest, ::testing::ValuesIn(RunnableLevels()),
                         [](const auto& info) { return std::string(SimdLevelName(info.param)); });

TEST(Fp16Test, ConvertsExactlyRepresentableValuesAndSpecials) {
  for (float f : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.103515625e-05f, 5.960464477539063e-08f}) {
    EXPECT_EQ(HalfToFloat(FloatToHalf(f)), f) << f;
  }
  EXPECT_TRUE(std::isinf(HalfToFloat(FloatToHalf(1e6f))));
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::nanf("")))));
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  // Round to nearest even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(FloatToHalf(1.0f + 0.00048828125f), 0x3C00);
  EXPECT_EQ(FloatToHalf(1.0f + 3 * 0.00048828125f), 0x3C02);
  // Relative error of a normal value is at most 2^-11.
  for (float f = -1000.0f; f < 1000.0f; f += 0.37f) {
    float back = HalfToFloat(FloatToHalf(f));
    EXPECT_LE(std::fabs(back - f), std::fabs(f) * 0.00049f + 1e-7f) << f;
  }
}

// The reference itself against a direct reading of the layout in fastscan.h.
TEST(FastScanLayoutTest, ReferenceSumsTheTablesOfEachLane) {
  const size_t m = 7, pairs = FastScanPairs(m);
  std::mt19937 rng(5);
  std::vector<uint8_t> block(FastScanBlockBytes(m), 0), luts(pairs * 32, 0);
  uint8_t codes[32][7];
  for (size_t v = 0; v < 32; ++v) {
    for (size_t j = 0; j < m; ++j) {
      codes[v][j] = uint8_t(rng() % 16);
      FastScanSet(block.data(), v, j, codes[v][j]);
    }
  }
  for (size_t j = 0; j < m; ++j) {
    for (size_t c = 0; c < 16; ++c) luts[(j / 2) * 32 + (j % 2) * 16 + c] = uint8_t(rng() % 200);
  }
  uint16_t out[32];
  EXPECT_EQ(ScalarKernels().fastscan_block32(block.data(), luts.data(), pairs, 65535, out),
            ~uint32_t{0});
  for (size_t v = 0; v < 32; ++v) {
    uint32_t want = 0;
    for (size_t j = 0; j < m; ++j) {
      EXPECT_EQ(FastScanGet(block.data(), v, j), codes[v][j]);
      want += luts[(j / 2) * 32 + (j % 2) * 16 + codes[v][j]];
    }
    EXPECT_EQ(out[v], want) << v;
  }
}

TEST(SimdLevelTest, NamesRoundTripAndScalarIsAlwaysSupported) {
  for (SimdLevel l :
       {SimdLevel::kScalar, SimdLevel::kGeneric, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    EXPECT_EQ(ParseSimdLevel(SimdLevelName(l)), l);
  }
  EXPECT_FALSE(ParseSimdLevel("sse9").has_value());
  EXPECT_TRUE(IsSupported(SimdLevel::kScalar));
  EXPECT_TRUE(IsSupported(BestSupportedLevel()));
  EXPECT_TRUE(IsSupported(ActiveLevel()));
  EXPECT_EQ(GetKernels().level, ActiveLevel());
}

TEST(QuantizerTest, IntegerPixelsAreExactAndRangesClamp) {
  std::vector<float> pixels = {0, 3, 255, 17, 128};
  auto q = ScalarQuantizer::Train(ScalarQuantizer::Kind::kUnsignedL2, pixels);
  EXPECT_EQ(q.step(), 1.0f);
  std::vector<uint8_t> codes(5);
  q.Encode(pixels.data(), 5, codes.data());
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(codes[i], uint8_t(pixels[i]));
  float out_of_range[2] = {-10.0f, 400.0f};
  q.Encode(out_of_range, 2, codes.data());
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], 255);

  std::vector<float> signed_data = {-0.5f, 0.25f, 1.0f};
  auto s = ScalarQuantizer::Train(ScalarQuantizer::Kind::kSignedIp, signed_data);
  s.Encode(signed_data.data(), 3, codes.data());
  EXPECT_EQ(int8_t(codes[2]), 127);
  EXPECT_EQ(int8_t(codes[0]), -64);  // -0.5 / (1/127) = -63.5 -> nearest even -64
}

}  // namespace
}  // namespace quiver::simd
