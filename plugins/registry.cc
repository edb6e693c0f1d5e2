#include "plugins/registry.h"

#include <dlfcn.h>

#include <algorithm>
#include <filesystem>

#include "plugins/builtin.h"

namespace quiver::plugins {

Registry& Registry::Global() {
  static Registry registry;
  return registry;
}

Status Registry::LoadObject(const std::string& path) {
  // The handle stays open for the life of the process: plugin code may be running.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) return NotFoundError("cannot load plugin " + path + ": " + ::dlerror());
  auto fail = [&](Status s) {
    ::dlclose(handle);
    return s;
  };
  auto abi = reinterpret_cast<uint32_t (*)()>(::dlsym(handle, "quiver_plugin_abi_version"));
  auto names = reinterpret_cast<const char* (*)()>(::dlsym(handle, "quiver_plugin_names"));
  auto create = reinterpret_cast<CreateFn>(::dlsym(handle, "quiver_plugin_create"));
  if (!abi || !names || !create) {
    return fail(InvalidArgumentError(path +
                                     " is not a Quiver plugin (it lacks quiver_plugin_abi_version, "
                                     "quiver_plugin_names or quiver_plugin_create)"));
  }
  if (abi() != kAbiVersion) {
    return fail(FailedPreconditionError(path + " was built for plugin ABI version " +
                                        std::to_string(abi()) + "; this Quiver runs version " +
                                        std::to_string(kAbiVersion)));
  }
  std::vector<std::string> provided;
  std::string_view list = names() ? names() : "";
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    if (!name.empty()) provided.emplace_back(name);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  if (provided.empty()) return fail(InvalidArgumentError(path + " names no plugin"));
  std::lock_guard lock(mu_);
  for (const std::string& name : provided) {
    const bool builtin = std::find(std::begin(kBuiltinNames), std::end(kBuiltinNames), name) !=
                         std::end(kBuiltinNames);
    const bool taken = std::any_of(loaded_.begin(), loaded_.end(),
                                   [&](const Loaded& l) { return l.name == name; });
    if (builtin || taken)
      return fail(InvalidArgumentError(path + ": plugin '" + name + "' is already registered"));
  }
  for (const std::string& name : provided) loaded_.push_back({name, path, create});
  return Status::Ok();
}

Status Registry::LoadDirectory(const std::string& dir) {
  std::error_code ec;
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".so") paths.push_back(entry.path().string());
  }
  if (ec) return NotFoundError("cannot list plugins directory " + dir + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  for (const std::string& p : paths) QV_RETURN_IF_ERROR(LoadObject(p));
  return Status::Ok();
}

Result<std::unique_ptr<Plugin>> Registry::Create(std::string_view name) const {
  if (auto p = CreateBuiltin(name)) return p;
  {
    std::lock_guard lock(mu_);
    for (const Loaded& l : loaded_) {
      if (l.name != name) continue;
      std::unique_ptr<Plugin> p(l.create(l.name.c_str()));
      if (!p) return InternalError(l.path + " did not create plugin '" + l.name + "'");
      return p;
    }
  }
  std::string known;
  for (const std::string& n : Names()) known += (known.empty() ? "" : ", ") + n;
  return NotFoundError("no plugin named '" + std::string(name) + "' (known: " + known + ")");
}

std::vector<std::string> Registry::Names() const {
  std::vector<std::string> out(std::begin(kBuiltinNames), std::end(kBuiltinNames));
  std::lock_guard lock(mu_);
  for (const Loaded& l : loaded_) out.push_back(l.name);
  return out;
}

}  // namespace quiver::plugins
