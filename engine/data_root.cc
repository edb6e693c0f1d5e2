#include "engine/data_root.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/kill_point.h"
#include "base/log.h"

namespace quiver::engine {

namespace fs = std::filesystem;

namespace {

Status FsyncPath(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return InternalError("cannot open " + path + " to sync it");
  int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? Status::Ok() : InternalError("cannot fsync " + path);
}

// Replaces root/name with `value` atomically and durably.
Status WriteMarker(const std::string& root, const std::string& name, const std::string& value) {
  const std::string path = root + "/" + name, tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << value << "\n";
    if (!out.flush()) return InternalError("cannot write " + tmp);
  }
  QV_RETURN_IF_ERROR(FsyncPath(tmp, O_RDONLY));
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return InternalError("cannot rename " + tmp + ": " + ec.message());
  return FsyncPath(root, O_RDONLY | O_DIRECTORY);
}

// The marker's content, "" if absent.
std::string ReadMarker(const std::string& root, const std::string& name) {
  std::ifstream in(root + "/" + name);
  std::string value;
  std::getline(in, value);
  return value;
}

// The version CURRENT names. A root that has never served (no CURRENT, no PREVIOUS, no
// "initial" version: at most versions bulk-built into it) gets CURRENT = "initial", written
// before that version is created. A root that has served and lost CURRENT, or whose CURRENT is
// empty, is an error: which version held the acknowledged writes cannot be guessed.
Result<std::string> ServingVersion(const std::string& root) {
  const std::string path = root + "/CURRENT";
  std::error_code ec;
  if (fs::exists(path, ec)) {
    std::string current = ReadMarker(root, "CURRENT");
    if (current.empty()) {
      return DataLossError(path + " is empty; write the serving version's name into it (" +
                           "`quiver versions --root " + root + "` lists them) and start again");
    }
    return current;
  }
  const std::string previous = ReadMarker(root, "PREVIOUS");
  if (!previous.empty() || fs::exists(root + "/versions/initial", ec)) {
    return DataLossError(
        path + " is missing from a data root that has served (" +
        (previous.empty() ? std::string("versions/initial exists")
                          : "PREVIOUS names '" + previous + "'") +
        "): refusing to guess which version holds the acknowledged writes; write its name into " +
        path + " (`quiver versions --root " + root + "` lists them) and start again");
  }
  QV_RETURN_IF_ERROR(WriteMarker(root, "CURRENT", "initial"));
  return std::string("initial");
}

}  // namespace

bool DataRoot::ValidVersionName(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

std::string DataRoot::VersionDir(const std::string& name) const {
  return root_ + "/versions/" + name;
}

Result<std::unique_ptr<DataRoot>> DataRoot::Open(const std::string& root,
                                                 const EngineOptions& options) {
  QV_ASSIGN_OR_RETURN(auto dr, Prepare(root, options));
  QV_RETURN_IF_ERROR(dr->Load());
  return dr;
}

Result<std::unique_ptr<DataRoot>> DataRoot::Prepare(const std::string& root,
                                                    const EngineOptions& options) {
  std::error_code ec;
  fs::create_directories(root + "/versions", ec);
  if (ec) return InternalError("cannot create " + root + "/versions: " + ec.message());
  std::unique_ptr<DataRoot> dr(new DataRoot(root, options));
  QV_ASSIGN_OR_RETURN(std::string current, ServingVersion(root));
  if (!ValidVersionName(current)) {
    return DataLossError(root + "/CURRENT holds '" + current + "', which is not a version name");
  }
  if (!fs::exists(dr->VersionDir(current))) {
    // Only a first start cut short leaves CURRENT naming "initial" before it exists.
    const bool first_start = current == "initial" && !fs::exists(root + "/PREVIOUS");
    if (!first_start)
      return DataLossError(root + "/CURRENT names version '" + current + "', which does not exist");
  }
  dr->current_ = current;
  dr->previous_ = ReadMarker(root, "PREVIOUS");
  return dr;
}

Status DataRoot::Load() {
  std::lock_guard reload(reload_mu_);
  if (engine() != nullptr) return FailedPreconditionError("the data root is already loaded");
  QV_ASSIGN_OR_RETURN(auto engine, Engine::Open(VersionDir(current_version()), options_));
  std::lock_guard lock(mu_);
  engine_ = std::move(engine);
  log::Info("version_opened", {{"version", current_}, {"previous", previous_}});
  return Status::Ok();
}

std::shared_ptr<Engine> DataRoot::engine() const {
  std::lock_guard lock(mu_);
  return engine_;
}

std::string DataRoot::current_version() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::string DataRoot::previous_version() const {
  std::lock_guard lock(mu_);
  return previous_;
}

Result<std::vector<std::string>> DataRoot::ListVersionsIn(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root + "/versions", ec)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && ValidVersionName(name) && !name.ends_with(".partial"))
      out.push_back(name);
  }
  if (ec) return NotFoundError("cannot list " + root + "/versions: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

Result<DataRoot::State> DataRoot::Inspect(const std::string& root) {
  State state;
  QV_ASSIGN_OR_RETURN(state.versions, ListVersionsIn(root));
  state.current = ReadMarker(root, "CURRENT");
  state.previous = ReadMarker(root, "PREVIOUS");
  return state;
}

Status DataRoot::Reload(const std::string& version) {
  std::lock_guard reload(reload_mu_);
  if (!ValidVersionName(version) || version.ends_with(".partial")) {
    return InvalidArgumentError("version name '" + version +
                                "' must be 1 to 128 of [A-Za-z0-9_.-], not start with '.' and not "
                                "end with '.partial'");
  }
  const std::string dir = VersionDir(version);
  if (!fs::exists(dir + "/db"))
    return NotFoundError("no version '" + version + "' under " + root_ + "/versions");
  if (engine() == nullptr) return UnavailableError("the data root is still loading");
  const std::string old = current_version();
  if (version == old)
    return FailedPreconditionError("version '" + version + "' is already serving");
  EngineOptions o = options_;
  o.store.create_if_missing = false;
  auto loaded = Engine::Open(dir, o);
  if (!loaded.ok()) {
    return Status(loaded.status().code(),
                  "version '" + version + "' failed to load; '" + old +
                      "' keeps serving: " + std::string(loaded.status().message()));
  }
  // PREVIOUS first: a crash between the two writes leaves the old version serving.
  QV_RETURN_IF_ERROR(WriteMarker(root_, "PREVIOUS", old));
  KillPoint("reload.previous");
  QV_RETURN_IF_ERROR(WriteMarker(root_, "CURRENT", version));
  std::shared_ptr<Engine> retired;
  {
    std::lock_guard lock(mu_);
    retired = std::move(engine_);
    engine_ = std::move(*loaded);
    previous_ = old;
    current_ = version;
  }
  log::Info("version_switched", {{"version", version}, {"previous", old}});
  return Status::Ok();  // `retired` closes when the last request holding it finishes
}

Status DataRoot::Rollback() {
  const std::string previous = previous_version();
  if (previous.empty())
    return FailedPreconditionError("there is no previous version to roll back to");
  return Reload(previous);
}

}  // namespace quiver::engine
