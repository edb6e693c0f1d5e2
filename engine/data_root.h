// DataRoot: a data directory holding version directories, one of them serving.
//
//   <root>/versions/<name>/    a version directory (Engine: db/ and snapshots/)
//   <root>/CURRENT             the serving version's name
//   <root>/PREVIOUS            the version served before it (the rollback target)
//
// `quiver build --out <root>/versions/<name>` writes a new version with no server running;
// Reload(name) opens and recovers it while the old version keeps serving, then switches
// atomically; a version that fails to load leaves the old one serving. Rollback() reloads
// PREVIOUS. CURRENT and PREVIOUS are replaced atomically (temporary file, fsync, rename).
//
// Writes sent to the old version while a new one loads are not carried over: a bulk-built
// version holds what it was built from.
//
// Thread-safety: every method may be called concurrently; Reload and Rollback are serialised.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "engine/engine.h"

namespace quiver::engine {

class DataRoot {
 public:
  struct State {
    std::string current, previous;
    std::vector<std::string> versions;  // sorted
  };
  // Reads a root's markers and versions without opening anything (works beside a server).
  static Result<State> Inspect(const std::string& root);

  // Opens the serving version (creating <root>/versions/initial if the root is new): Prepare,
  // then Load.
  static Result<std::unique_ptr<DataRoot>> Open(const std::string& root,
                                                const EngineOptions& options);
  // The quick half of Open: checks the markers and names the serving version, loading nothing
  // (engine() is null until Load). A server can start meanwhile and say it is not ready.
  static Result<std::unique_ptr<DataRoot>> Prepare(const std::string& root,
                                                   const EngineOptions& options);
  // Opens and recovers the serving version (the slow half: index snapshots, op-log replay).
  // kFailedPrecondition if already loaded.
  Status Load();

  // The serving engine; null until Load succeeds. Callers hold the pointer for the length of
  // a request; a version switch never pulls an engine from under a request.
  std::shared_ptr<Engine> engine() const;
  std::string current_version() const;
  std::string previous_version() const;
  Result<std::vector<std::string>> ListVersions() const { return ListVersionsIn(root_); }

  // kNotFound for an unknown version; kFailedPrecondition if it is already serving; any load
  // error (kDataLoss, ...) with the old version still serving.
  Status Reload(const std::string& version);
  // Switches back to PREVIOUS; kFailedPrecondition if there is none.
  Status Rollback();

  static bool ValidVersionName(const std::string& name);

 private:
  DataRoot(std::string root, EngineOptions options)
      : root_(std::move(root)), options_(std::move(options)) {}
  std::string VersionDir(const std::string& name) const;
  static Result<std::vector<std::string>> ListVersionsIn(const std::string& root);

  const std::string root_;
  const EngineOptions options_;
  std::mutex reload_mu_;   // serialises Reload and Rollback
  mutable std::mutex mu_;  // guards the three fields below
  std::shared_ptr<Engine> engine_;
  std::string current_;
  std::string previous_;
};

}  // namespace quiver::engine
