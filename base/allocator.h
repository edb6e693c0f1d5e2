// Which allocator the program runs on, and what it holds. The allocator is an executable's
// choice (QUIVER_JEMALLOC): the quiver_allocator library links jemalloc when it is on, and every
// executable links quiver_allocator.
#pragma once

#include <cstddef>
#include <string>

namespace quiver {

// "jemalloc <version>" when jemalloc is linked into this executable, otherwise "libc malloc".
std::string AllocatorName();

// Bytes allocated by the program and resident in the allocator (jemalloc's stats.allocated and
// stats.resident); false when the allocator does not report them.
bool AllocatorMemory(size_t* allocated, size_t* resident);

}  // namespace quiver
