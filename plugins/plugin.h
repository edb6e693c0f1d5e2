// Quiver's index-time plugin API: code that runs when a collection is built or changed and
// writes neighbor lists (kind, key id) -> [(id, score)] that queries read (u2i2i, u2u2i
// channels; GET .../lists/{kind}/{key}). docs/plugins.md is the guide.
//
// A plugin reads the collection through a read-only Context (items, users with their
// histories, kNN searches on the collection's index, the lists already stored) and writes
// through a Writer. A run is all or nothing: the lists it wrote replace the previous ones only
// if it returns OK; on an error (or an exception) nothing it wrote is kept and the previous
// lists stay in force. A full run (Build) replaces every kind it declares whole; an
// incremental run (Update, after upserts, in batches) replaces only the lists it writes.
//
// Built-in plugins are registered statically (plugins/builtin.h). A plugin in a shared object
// is loaded from quiverd's --plugins-dir: the object exports, with C linkage,
//
//   uint32_t quiver_plugin_abi_version(void);          // must return kAbiVersion
//   const char* quiver_plugin_names(void);             // comma-separated names it provides
//   quiver::plugins::Plugin* quiver_plugin_create(const char* name);  // nullptr: unknown name
//
// (QUIVER_PLUGIN_EXPORT below writes them). An object built against another ABI version is
// refused with a clear error. Plugins are C++: build them with the same compiler and standard
// library as Quiver. This header depends only on base/.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/model.h"
#include "base/query.h"
#include "base/result.h"
#include "base/status.h"

namespace quiver::plugins {

// Bumped on any change to the classes below.
inline constexpr uint32_t kAbiVersion = 2;  // 2: Plugin::Options

// The collection as a plugin sees it, read-only. Methods may be called from several threads.
class Context {
 public:
  virtual ~Context() = default;
  virtual const CollectionSchema& schema() const = 0;
  // The run's parameters (a flat JSON object: numbers, booleans, strings), with defaults.
  virtual double Number(std::string_view key, double fallback) const = 0;
  virtual bool Bool(std::string_view key, bool fallback) const = 0;
  virtual std::string String(std::string_view key, std::string_view fallback) const = 0;
  // Every item / user (with its history, newest first), in id order; fn's error stops the scan.
  virtual Status ForEachItem(const std::function<Status(const ItemRecord&)>& fn) const = 0;
  virtual Status ForEachUser(const std::function<Status(const UserRecord&)>& fn) const = 0;
  virtual Result<std::optional<ItemRecord>> GetItem(uint64_t id) const = 0;
  virtual Result<std::optional<UserRecord>> GetUser(uint64_t id) const = 0;
  // The k best items for `vector` through the collection's global index (scores: higher is
  // better, as in search answers), only items that match `filter` if given.
  virtual Result<std::vector<Hit>> SearchItems(std::span<const float> vector, size_t k,
                                               const Filter* filter = nullptr) const = 0;
  // The list stored now for (kind, key), if any; every stored list of a kind, in key order.
  virtual Result<std::optional<std::vector<Hit>>> GetList(std::string_view kind,
                                                          uint64_t key) const = 0;
  virtual Status ForEachList(
      std::string_view kind,
      const std::function<Status(uint64_t key, const std::vector<Hit>&)>& fn) const = 0;
};

// Where a plugin's lists go. Thread-safe: a plugin may write from several threads.
class Writer {
 public:
  virtual ~Writer() = default;
  // Sets list (kind, key): best first, at most 10,000 entries, kind one the plugin declared.
  virtual Status Put(std::string_view kind, uint64_t key, std::vector<Hit> list) = 0;
  // Removes list (kind, key) (incremental runs: a deleted item's own list).
  virtual Status Remove(std::string_view kind, uint64_t key) = 0;
};

// What changed since the lists were last brought up to date.
struct Changes {
  std::vector<uint64_t> items_upserted, items_deleted;
  std::vector<uint64_t> users_changed;  // new or changed vectors or histories
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  // Every config key the plugin reads. A run whose config holds any other key is refused
  // (kInvalidArgument naming it and these), so a misspelt option never falls back silently to
  // its default.
  virtual std::vector<std::string> Options() const = 0;
  // The list kinds a run writes (1 to 64 characters of [a-z0-9_]); may depend on the config.
  virtual std::vector<std::string> Kinds(const Context& ctx) const = 0;
  // Writes every list from scratch.
  virtual Status Build(const Context& ctx, Writer& out) = 0;
  // Brings the lists up to date after `changes`, writing only the lists that change. The
  // default rebuilds everything.
  virtual Status Update(const Context& ctx, const Changes& changes, Writer& out) {
    return Build(ctx, out);
  }
};

}  // namespace quiver::plugins

// In a plugin's shared object: QUIVER_PLUGIN_EXPORT("name_a,name_b", CreateFn) where
// CreateFn(std::string_view name) returns a new Plugin* (or nullptr for an unknown name).
#define QUIVER_PLUGIN_EXPORT(NAMES, CREATE)                                                  \
  extern "C" uint32_t quiver_plugin_abi_version() { return ::quiver::plugins::kAbiVersion; } \
  extern "C" const char* quiver_plugin_names() { return NAMES; }                             \
  extern "C" ::quiver::plugins::Plugin* quiver_plugin_create(const char* name) {             \
    return CREATE(name);                                                                     \
  }
