// Instruction-set levels for Quiver's kernels, the CPU's best supported one, and the level
// chosen for this process (once, at first use).
//
// Levels:
//   scalar  - plain C++ reference for every kernel (the ground truth in tests)
//   generic - the SIMDe AVX2 body compiled for the baseline target: SSE2 on x86-64,
//             NEON on aarch64; runs on every CPU of the architecture
//   avx2    - the same body compiled with -mavx2 -mfma -mf16c (x86-64 only)
//   avx512  - AVX-512F/BW body (x86-64 only)
// The environment variable QUIVER_SIMD=scalar|generic|avx2|avx512 forces a level; a level the
// CPU cannot run is refused and the best supported one is used instead (with a warning).
#pragma once

#include <optional>
#include <string_view>

namespace quiver::simd {

enum class SimdLevel : int { kScalar = 0, kGeneric = 1, kAvx2 = 2, kAvx512 = 3 };

std::string_view SimdLevelName(SimdLevel level);
std::optional<SimdLevel> ParseSimdLevel(std::string_view name);

// True if this build contains the level and this CPU can execute it.
bool IsSupported(SimdLevel level);

// Best level this CPU supports, ignoring QUIVER_SIMD.
SimdLevel BestSupportedLevel();

// The level used by GetKernels(): QUIVER_SIMD if set and supported, else the best one.
// Thread-safe; decided once per process.
SimdLevel ActiveLevel();

}  // namespace quiver::simd
