#include "base/kill_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace quiver {
namespace {

struct Armed {
  std::string name;
  long count = 0;  // 0: not armed
  std::atomic<long> hits{0};
};

const Armed& GetArmed() {
  static const Armed* armed = [] {
    auto* a = new Armed();
    if (const char* env = std::getenv("QUIVER_KILL_AT")) {
      const char* colon = std::strrchr(env, ':');
      if (colon && colon != env) {
        a->name.assign(env, size_t(colon - env));
        a->count = std::strtol(colon + 1, nullptr, 10);
      }
      if (a->count <= 0) {
        std::fprintf(stderr, "quiver: QUIVER_KILL_AT=%s is not name:N (N >= 1); ignored\n", env);
        a->count = 0;
      }
    }
    return a;
  }();
  return *armed;
}

}  // namespace

void KillPoint(const char* name) {
  const Armed& armed = GetArmed();
  if (armed.count == 0 || armed.name != name) return;
  if (const_cast<Armed&>(armed).hits.fetch_add(1) + 1 == armed.count) {
    std::fprintf(stderr, "quiver: kill point %s reached (QUIVER_KILL_AT)\n", name);
    std::fflush(stderr);
    ::kill(::getpid(), SIGKILL);
  }
}

}  // namespace quiver
