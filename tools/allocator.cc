// Which allocator this executable links. Linked into executables only (not libraries), since
// the allocator is an executable's choice (QUIVER_JEMALLOC).
#include <string>

#include "base/version.h"

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

}  // namespace quiver
