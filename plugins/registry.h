// The plugins a process can run: the built-ins, and those loaded from shared objects
// (plugins/plugin.h describes what an object exports).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "plugins/plugin.h"

namespace quiver::plugins {

class Registry {
 public:
  // The process's registry (built-ins registered).
  static Registry& Global();

  // Loads one shared object: kFailedPrecondition if it was built for another ABI version,
  // kInvalidArgument if it is not a plugin or names a plugin already registered, kNotFound if
  // it cannot be opened. Nothing is registered unless everything checks out.
  Status LoadObject(const std::string& path);
  // Loads every *.so in dir (in name order); the first error is returned.
  Status LoadDirectory(const std::string& dir);

  // A new instance of the named plugin; kNotFound listing the known names otherwise.
  Result<std::unique_ptr<Plugin>> Create(std::string_view name) const;
  std::vector<std::string> Names() const;

 private:
  using CreateFn = Plugin* (*)(const char*);
  struct Loaded {
    std::string name, path;
    CreateFn create;
  };
  mutable std::mutex mu_;
  std::vector<Loaded> loaded_;  // GUARDED_BY(mu_)
};

}  // namespace quiver::plugins
