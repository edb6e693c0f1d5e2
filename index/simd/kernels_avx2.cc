// The SIMDe body compiled with -mavx2 -mfma -mf16c: every call is the native instruction.
// Only reached when the CPU reports AVX2, FMA and F16C (see simd_level.cc).
#define QV_SIMD_NS avx2
#include "index/simd/kernels_body.inc"

namespace quiver::simd {

const Kernels& Avx2Kernels() {
  static const Kernels k = avx2::MakeBodyKernels(SimdLevel::kAvx2);
  return k;
}

}  // namespace quiver::simd
