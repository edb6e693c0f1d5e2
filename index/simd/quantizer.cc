#include "index/simd/quantizer.h"

#include <algorithm>
#include <cmath>

namespace quiver::simd {

ScalarQuantizer ScalarQuantizer::Train(Kind kind, std::span<const float> data) {
  if (data.empty()) return ScalarQuantizer(kind, 0, 1);
  if (kind == Kind::kUnsignedL2) {
    auto [mn, mx] = std::minmax_element(data.begin(), data.end());
    float lo = *mn, hi = *mx;
    float step = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    // Data that already lies on an integer grid in [0, 255] (pixels, counts) is kept exact.
    bool integral = lo >= 0 && hi <= 255 && std::all_of(data.begin(), data.end(), [](float v) {
                      return v == std::floor(v);
                    });
    if (integral) return ScalarQuantizer(kind, 0, 1);
    return ScalarQuantizer(kind, lo, step);
  }
  float amax = 0;
  for (float v : data) amax = std::max(amax, std::fabs(v));
  return ScalarQuantizer(kind, 0, amax > 0 ? amax / 127.0f : 1.0f);
}

void ScalarQuantizer::Encode(const float* x, size_t d, uint8_t* codes) const {
  const float inv = 1.0f / step_;
  if (kind_ == Kind::kUnsignedL2) {
    for (size_t i = 0; i < d; ++i) {
      float c = std::nearbyint((x[i] - lo_) * inv);
      codes[i] = uint8_t(std::clamp(c, 0.0f, 255.0f));
    }
  } else {
    for (size_t i = 0; i < d; ++i) {
      float c = std::nearbyint(x[i] * inv);
      codes[i] = uint8_t(int8_t(std::clamp(c, -127.0f, 127.0f)));
    }
  }
}

void ScalarQuantizer::Decode(const uint8_t* codes, size_t d, float* x) const {
  if (kind_ == Kind::kUnsignedL2) {
    for (size_t i = 0; i < d; ++i) x[i] = lo_ + float(codes[i]) * step_;
  } else {
    for (size_t i = 0; i < d; ++i) x[i] = float(int8_t(codes[i])) * step_;
  }
}

}  // namespace quiver::simd
