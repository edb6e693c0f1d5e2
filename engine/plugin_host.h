// Running a plugin (plugins/plugin.h) over one collection: the read-only Context over the
// store and the collection's indexes, and the all-or-nothing Writer. Used by Engine::RunPlugin.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "engine/partitions.h"
#include "plugins/plugin.h"
#include "storage/store.h"

namespace quiver::engine {

struct PluginRun {
  std::vector<std::string> kinds;  // the list kinds written
  uint64_t lists = 0;              // lists written (Put) by this run
  uint64_t removed = 0;            // lists removed by this run
  bool incremental = false;        // Update over the op log's changes (else a full Build)
};

// The k best items for a vector (scores: higher is better), only those matching the filter if
// given.
using ItemSearch = std::function<Result<std::vector<Hit>>(std::span<const float> vector, size_t k,
                                                          const Filter* filter)>;

// kNotFound for an unknown plugin; kInvalidArgument for a config that is not a flat JSON
// object, or that holds a key the plugin does not read (Plugin::Options), naming it.
Status CheckPluginConfig(const std::string& plugin, const std::string& config_json);

// Runs `plugin` (a registered name) on the collection. config_json: a flat JSON object (or
// empty). incremental: bring the lists up to date from the op log since the kinds' last run
// (a full run when there was none, the config changed, or the log no longer reaches back).
// The lists written, the removals and the kinds' run records go into one batch handed to
// `commit` only if the plugin succeeds; on any error nothing changes.
// `search`, if set, answers the plugin's item searches (plugins::Context::SearchItems) instead
// of the collection's own index: cluster mode's nodes hold some shards only, and search all of
// them through it.

Result<PluginRun> RunPluginOn(const storage::Store& store, uint32_t collection_id,
                              const CollectionSchema& schema, const Partitions& parts,
                              const std::string& plugin, const std::string& config_json,
                              bool incremental,
                              const std::function<Status(storage::WriteBatch&)>& commit,
                              const ItemSearch& search = {});

}  // namespace quiver::engine
