// `quiver`: the command-line tool. Subcommands grow with the project; today:
//   quiver version   version, allocator and the SIMD level chosen at run time
#include <cstdio>
#include <cstring>
#include <string>

#include "base/version.h"
#include "index/simd/kernels.h"
#include "index/simd/simd_level.h"

namespace {

int PrintVersion() {
  using quiver::simd::SimdLevelName;
  std::printf("quiver %s\n", std::string(quiver::Version()).c_str());
  std::printf("allocator: %s\n", quiver::AllocatorName().c_str());
  std::printf("simd: %s (best supported: %s)\n",
              std::string(SimdLevelName(quiver::simd::GetKernels().level)).c_str(),
              std::string(SimdLevelName(quiver::simd::BestSupportedLevel())).c_str());
  return 0;
}

int Usage(FILE* out) {
  std::fprintf(out,
               "usage: quiver <command>\n"
               "commands:\n"
               "  version   print the version, the allocator and the SIMD level in use\n"
               "  help      print this message\n");
  return out == stderr ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage(stderr);
  if (std::strcmp(argv[1], "version") == 0 || std::strcmp(argv[1], "--version") == 0) {
    return PrintVersion();
  }
  if (std::strcmp(argv[1], "help") == 0 || std::strcmp(argv[1], "--help") == 0) return Usage(stdout);
  std::fprintf(stderr, "quiver: unknown command '%s'\n", argv[1]);
  return Usage(stderr);
}
