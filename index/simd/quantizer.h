// Scalar quantisation of float vectors to one byte per component, for fast graph traversal.
//
//   L2 metric:            uint8 codes, c = round((x - lo) / step) clamped to [0, 255];
//                         |x - y|^2 ~= step^2 * L2SqrU8(cx, cy)
//   inner product/cosine: int8 codes, c = round(x / step) clamped to [-127, 127];
//                         x . y ~= step^2 * InnerProductI8(cx, cy)
// One step for all components keeps the distance kernels pure integer arithmetic. Values
// outside the trained range are clamped; distances on codes only steer the search, and
// results are re-ranked with the float32 vectors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace quiver::simd {

class ScalarQuantizer {
 public:
  enum class Kind : uint8_t { kUnsignedL2 = 0, kSignedIp = 1 };

  ScalarQuantizer() = default;
  ScalarQuantizer(Kind kind, float lo, float step) : kind_(kind), lo_(lo), step_(step) {}

  // Fits lo/step to the range of `data` (n * d floats). REQUIRES: data is finite.
  static ScalarQuantizer Train(Kind kind, std::span<const float> data);

  // Writes d codes (uint8 for kUnsignedL2, int8 for kSignedIp) to `codes`.
  void Encode(const float* x, size_t d, uint8_t* codes) const;
  // The values the d codes stand for (the inverse of Encode up to rounding and clamping).
  void Decode(const uint8_t* codes, size_t d, float* x) const;

  Kind kind() const { return kind_; }
  float lo() const { return lo_; }
  float step() const { return step_; }
  // step^2: multiplies a code-space kernel result into float distance units.
  float scale() const { return step_ * step_; }

 private:
  Kind kind_ = Kind::kUnsignedL2;
  float lo_ = 0;
  float step_ = 1;
};

}  // namespace quiver::simd
