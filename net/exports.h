// Exports: the copies of collections this node has written for peers to fetch (cluster mode's
// bootstrap of a new replica, docs/cluster.md). Start writes one (engine::Engine::
// ExportCollection) under <version dir>/exports/<id>/ and lists its files with their sizes and
// CRC-32C; Read serves pieces of them; End removes one. A copy nobody has read for `idle` is
// removed by the next Start; so are copies left by an earlier process.
//
// Thread-safety: every method may be called concurrently.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "base/result.h"
#include "base/status.h"
#include "engine/engine.h"
#include "net/schema/calls.h"

namespace quiver::net {

class Exports {
 public:
  explicit Exports(std::chrono::seconds idle = std::chrono::minutes(10), size_t max_open = 4)
      : idle_(idle), max_open_(max_open) {}
  ~Exports();  // removes the copies still open
  Exports(const Exports&) = delete;
  Exports& operator=(const Exports&) = delete;

  // kResourceExhausted while max_open copies are open.
  // keep_item: as engine::Engine::ExportCollection's (a copy of some shards).
  Result<ExportResult> Start(const std::shared_ptr<engine::Engine>& engine,
                             const std::string& collection,
                             const std::function<bool(const ItemRecord&)>& keep_item = nullptr);
  // kNotFound for an unknown (or expired) copy or a file it does not have; kOutOfRange for an
  // offset beyond the file's end. Reads up to min(length, kMaxExportChunk) bytes.
  Result<ExportChunk> Read(const ReadExportCall& call);
  Status End(const std::string& export_id);

 private:
  struct Open {
    std::string dir;
    std::map<std::string, uint64_t> sizes;
    std::chrono::steady_clock::time_point used;
  };
  // Removes copies idle too long. REQUIRES: mu_ held.
  void Sweep();

  const std::chrono::seconds idle_;
  const size_t max_open_;
  std::mutex mu_;
  std::map<std::string, Open> open_;  // GUARDED_BY(mu_)
};

}  // namespace quiver::net
