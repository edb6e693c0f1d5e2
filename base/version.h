// Build identity printed by `quiver version` (the allocator: base/allocator.h).
#pragma once

#include <string_view>

namespace quiver {

// Semantic version of this build, from CMake's project() version.
std::string_view Version();

}  // namespace quiver
