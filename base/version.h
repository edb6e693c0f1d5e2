// Build identity printed by `quiver version`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace quiver {

// Semantic version of this build, from CMake's project() version.
std::string_view Version();
// "jemalloc <version>" when jemalloc is linked into this executable, otherwise "libc malloc".
// Defined in the executable (tools/), where the allocator is chosen.
std::string AllocatorName();

// Bytes allocated by the program and resident in the allocator (jemalloc's stats.allocated and
// stats.resident); false when the allocator does not report them. Defined with AllocatorName.
bool AllocatorMemory(size_t* allocated, size_t* resident);

}  // namespace quiver
