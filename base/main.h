// An executable's main: runs the real one and turns anything it throws (out of memory, a
// filesystem error from the standard library) into one line on stderr and exit status 1.
#pragma once

#include <cstdio>
#include <exception>

namespace quiver {

template <typename F>
int RunMain(const char* name, F&& main) noexcept {
  try {
    return main();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: unknown exception\n", name);
  }
  return 1;
}

}  // namespace quiver
