#include "index/simd/kernels.h"

namespace quiver::simd {

const Kernels* KernelsFor(SimdLevel level) {
  if (!IsSupported(level)) return nullptr;
  switch (level) {
    case SimdLevel::kScalar:
      return &ScalarKernels();
    case SimdLevel::kGeneric:
      return &GenericKernels();
#if defined(__x86_64__)
    case SimdLevel::kAvx2:
      return &Avx2Kernels();
    case SimdLevel::kAvx512:
      return &Avx512Kernels();
#else
    default:
      return nullptr;
#endif
  }
  return nullptr;
}

const Kernels& GetKernels() {
  static const Kernels* kernels = KernelsFor(ActiveLevel());
  return *kernels;
}

}  // namespace quiver::simd
