// Build identity printed by `quiver version`.
#pragma once

#include <string>
#include <string_view>

namespace quiver {

// Semantic version of this build, from CMake's project() version.
std::string_view Version();
// "jemalloc <version>" when jemalloc is linked into this executable, otherwise "libc malloc".
// Defined in the executable (tools/), where the allocator is chosen.
std::string AllocatorName();

}  // namespace quiver
