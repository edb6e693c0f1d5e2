// The SIMDe body compiled with the architecture's baseline flags (SSE2 / NEON).
#define QV_SIMD_NS generic
#include "index/simd/kernels_body.inc"

namespace quiver::simd {

const Kernels& GenericKernels() {
  static const Kernels k = generic::MakeBodyKernels(SimdLevel::kGeneric);
  return k;
}

}  // namespace quiver::simd
