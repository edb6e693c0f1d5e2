// What every benchmark executable shares: stopping on an error with its message, CPU time, the
// command line as run (recorded beside the results), a scratch directory, and flags through
// CLI11.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace quiver::bench {

// A new directory /tmp/<prefix>.XXXXXX, removed with everything in it at the end of the scope;
// exits if it cannot be made.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    std::string pattern = "/tmp/" + prefix + ".XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::exit(1);
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The value of `r`, or exits with "<program>: <what>: <error>".
template <typename T>
T Check(Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what,
                 r.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}
inline void Check(const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, s.ToString().c_str());
  std::exit(1);
}

// User plus system CPU seconds of this process so far.
inline double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// The p-quantile (0..1) of `v` (reorders it); 0 for an empty one.
inline double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, size_t(p * double(v.size())));
  std::nth_element(v.begin(), v.begin() + ptrdiff_t(i), v.end());
  return v[i];
}

// The command line, space-separated, as the results files record it.
inline std::string CommandLine(int argc, char** argv) {
  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += std::string(i ? " " : "") + argv[i];
  return cmd;
}

}  // namespace quiver::bench
