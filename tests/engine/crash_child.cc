// The crash test's child; the parent kills it with SIGKILL at a random moment.
//
//   engine_crash_child items DIR SEED START
//     opens (and so recovers) the engine in DIR, prints "READY", then writes batches START,
//     START+1, ... of the workload forever, printing "ACK <i>" after each acknowledged batch
//     and taking a snapshot every few batches.
//   engine_crash_child bulk ROOT SEED START
//     opens the data root ROOT, prints "READY", then for k = START, START+1, ... bulk-builds
//     version b<k> from BulkItems(SEED, k) (in b<k>.partial, renamed when complete), switches
//     the root to it and prints "ACK <k>". It prints "BUILD <k>" when it starts a build and
//     "SWITCH <k>" before the switch, so the test knows which step each kill interrupted.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "engine/data_root.h"
#include "engine/engine.h"
#include "tests/engine/crash_workload.h"

using namespace quiver;
using namespace quiver::engine;

namespace {

int Die(const char* what, const Status& s) {
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  return 1;
}

int RunBulk(const std::string& root, uint64_t seed, uint64_t start) {
  namespace fs = std::filesystem;
  auto dr = DataRoot::Open(root, {});
  if (!dr.ok()) return Die("open root", dr.status());
  std::printf("READY\n");
  std::fflush(stdout);
  for (uint64_t k = start;; ++k) {
    std::printf("BUILD %llu\n", (unsigned long long)k);
    std::fflush(stdout);
    const std::string name = crash::VersionName(k);
    const std::string final_dir = root + "/versions/" + name, partial = final_dir + ".partial";
    std::error_code ec;
    fs::remove_all(partial, ec);
    fs::remove_all(final_dir, ec);  // complete but never switched to (killed before Reload)
    {
      auto e = Engine::Open(partial, {});
      if (!e.ok()) return Die("open build", e.status());
      auto info = (*e)->BulkLoad(crash::Schema(), crash::BulkItems(seed, k));
      if (!info.ok()) return Die("bulk load", info.status());
    }
    fs::rename(partial, final_dir, ec);
    int fd = ::open((root + "/versions").c_str(), O_RDONLY | O_DIRECTORY);
    if (ec || fd < 0 || ::fsync(fd) != 0) return Die("rename", InternalError("rename failed"));
    ::close(fd);
    std::printf("SWITCH %llu\n", (unsigned long long)k);
    std::fflush(stdout);
    Status s = (*dr)->Reload(name);
    if (!s.ok()) return Die("reload", s);
    std::printf("ACK %llu\n", (unsigned long long)k);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || (std::strcmp(argv[1], "items") != 0 && std::strcmp(argv[1], "bulk") != 0)) {
    std::fprintf(stderr, "usage: %s items|bulk DIR SEED START\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[2];
  const uint64_t seed = std::strtoull(argv[3], nullptr, 10);
  const uint64_t start = std::strtoull(argv[4], nullptr, 10);
  if (std::strcmp(argv[1], "bulk") == 0) return RunBulk(dir, seed, start);
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
