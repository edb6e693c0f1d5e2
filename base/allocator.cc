#include "base/allocator.h"

#include <cstdint>
#include <string>

#if defined(QUIVER_WITH_JEMALLOC)
#include <jemalloc/jemalloc.h>
#endif

namespace quiver {

std::string AllocatorName() {
#if defined(QUIVER_WITH_JEMALLOC)
  const char* version = nullptr;
  size_t len = sizeof(version);
  if (mallctl("version", &version, &len, nullptr, 0) == 0 && version != nullptr) {
    return std::string("jemalloc ") + version;
  }
  return "jemalloc";
#else
  return "libc malloc";
#endif
}

bool AllocatorMemory(size_t* allocated, size_t* resident) {
#if defined(QUIVER_WITH_JEMALLOC)
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  mallctl("epoch", &epoch, &len, &epoch, len);  // refresh the statistics
  len = sizeof(size_t);
  return mallctl("stats.allocated", allocated, &len, nullptr, 0) == 0 &&
         mallctl("stats.resident", resident, &len, nullptr, 0) == 0;
#else
  *allocated = *resident = 0;
  return false;
#endif
}

}  // namespace quiver
