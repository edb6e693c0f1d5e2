#include "index/simd/simd_level.h"

#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace quiver::simd {

std::string_view SimdLevelName(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
      return "scalar";
    case SimdLevel::kGeneric:
      return "generic";
    case SimdLevel::kAvx2:
      return "avx2";
    case SimdLevel::kAvx512:
      return "avx512";
  }
  return "unknown";
}

std::optional<SimdLevel> ParseSimdLevel(std::string_view name) {
  for (SimdLevel l :
       {SimdLevel::kScalar, SimdLevel::kGeneric, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (SimdLevelName(l) == name) return l;
  }
  return std::nullopt;
}

#if defined(__x86_64__) || defined(_M_X64)
namespace {

// F16C (half-float conversion), from CPUID leaf 1 (__builtin_cpu_supports knows it in GCC only).
bool HasF16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0;
}

}  // namespace
#endif

bool IsSupported(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar:
    case SimdLevel::kGeneric:
      return true;
#if defined(__x86_64__) || defined(_M_X64)
    case SimdLevel::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HasF16c();
    case SimdLevel::kAvx512:
      return IsSupported(SimdLevel::kAvx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    case SimdLevel::kAvx2:
    case SimdLevel::kAvx512:
      return false;
#endif
  }
  return false;
}

SimdLevel BestSupportedLevel() {
  for (SimdLevel l : {SimdLevel::kAvx512, SimdLevel::kAvx2, SimdLevel::kGeneric}) {
    if (IsSupported(l)) return l;
  }
  return SimdLevel::kScalar;
}

namespace {

SimdLevel ChooseLevel() {
  const char* env = std::getenv("QUIVER_SIMD");
  if (env == nullptr || *env == '\0') return BestSupportedLevel();
  auto forced = ParseSimdLevel(env);
  if (!forced) {
    std::fprintf(stderr,
                 "quiver: QUIVER_SIMD=%s is not a level (scalar|generic|avx2|avx512); "
                 "using the best supported\n",
                 env);
    return BestSupportedLevel();
  }
  if (!IsSupported(*forced)) {
    std::fprintf(stderr,
                 "quiver: QUIVER_SIMD=%s is not supported by this CPU; using the best "
                 "supported\n",
                 env);
    return BestSupportedLevel();
  }
  return *forced;
}

}  // namespace

SimdLevel ActiveLevel() {
  static const SimdLevel level = ChooseLevel();
  return level;
}

}  // namespace quiver::simd
