// The crash test's child: opens (and so recovers) the engine in DIR, prints "READY", then
// writes batches START, START+1, ... of the workload forever, printing "ACK <i>" after each
// acknowledged batch and taking a snapshot every few batches. The parent kills it with SIGKILL
// at a random moment.
//
// Usage: engine_crash_child DIR SEED START
#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/engine.h"
#include "tests/engine/crash_workload.h"

using namespace quiver;
using namespace quiver::engine;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DIR SEED START\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const uint64_t seed = std::strtoull(argv[2], nullptr, 10);
  const uint64_t start = std::strtoull(argv[3], nullptr, 10);
  auto opened = Engine::Open(dir, {});
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  Engine& e = **opened;
  if (!e.DescribeCollection(crash::kCollection).ok()) {
    Status s = e.CreateCollection(crash::Schema());
    if (!s.ok()) {
      std::fprintf(stderr, "create: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  std::printf("READY\n");
  std::fflush(stdout);
  for (uint64_t i = start;; ++i) {
    crash::Batch b = crash::MakeBatch(seed, i);
    Status s = b.is_delete ? e.Delete(crash::kCollection, b.ids).status()
                           : e.Upsert(crash::kCollection, b.items).status();
    if (!s.ok()) {
      std::fprintf(stderr, "batch %llu: %s\n", (unsigned long long)i, s.ToString().c_str());
      return 1;
    }
    std::printf("ACK %llu\n", (unsigned long long)i);
    std::fflush(stdout);
    if (i % 5 == 4) {
      s = e.Snapshot(crash::kCollection);
      if (!s.ok()) {
        std::fprintf(stderr, "snapshot: %s\n", s.ToString().c_str());
        return 1;
      }
    }
  }
}
