#include "net/exports.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "base/crc32c.h"

namespace quiver::net {

namespace fs = std::filesystem;

namespace {

Result<uint32_t> FileCrc(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return InternalError("cannot open " + path + ": " + std::strerror(errno));
  std::vector<char> buf(size_t{1} << 20);
  uint32_t crc = 0;
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0)
    crc = crc32c::Extend(crc, buf.data(), n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return InternalError("cannot read " + path);
  return crc;
}

std::string NewId() {
  std::random_device rd;
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%08x%08x", rd(), rd());
  return buf;
}

}  // namespace

Exports::~Exports() {
  std::lock_guard lock(mu_);
  std::error_code ec;
  for (const auto& [id, open] : open_) fs::remove_all(open.dir, ec);
}

void Exports::Sweep() {
  const auto now = std::chrono::steady_clock::now();
  std::error_code ec;
  for (auto it = open_.begin(); it != open_.end();) {
    if (now - it->second.used > idle_) {
      fs::remove_all(it->second.dir, ec);
      it = open_.erase(it);
    } else {
      ++it;
    }
  }
}

Result<ExportResult> Exports::Start(const std::shared_ptr<engine::Engine>& engine,
                                    const std::string& collection,
                                    const std::function<bool(const ItemRecord&)>& keep_item) {
  const fs::path root = fs::path(engine->dir()) / "exports";
  std::string id;
  {
    std::lock_guard lock(mu_);
    Sweep();
    if (open_.size() >= max_open_) {
      return ResourceExhaustedError(std::to_string(open_.size()) +
                                    " collection exports are open on this node; retry later");
    }
    // Copies of an earlier process (or of a version no longer served) are nobody's.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root, ec)) {
      bool known = false;
      for (const auto& [oid, open] : open_) known = known || open.dir == e.path().string();
      if (!known) fs::remove_all(e.path(), ec);
    }
    id = NewId();
    // Reserved while it is written, so that a concurrent Start does not take it for stale.
    open_[id] = Open{(root / id).string(), {}, std::chrono::steady_clock::now()};
  }
  auto fail = [&](Status s) {
    std::lock_guard lock(mu_);
    std::error_code ec;
    fs::remove_all(root / id, ec);
    open_.erase(id);
    return s;
  };
  auto info = engine->ExportCollection(collection, (root / id).string(), keep_item);
  if (!info.ok()) return fail(info.status());
  ExportResult out;
  out.export_id = id;
  out.op_seq = info->op_seq;
  out.log_positions = info->log_positions;
  std::map<std::string, uint64_t> sizes;
  for (const std::string& name : info->files) {
    const std::string path = (root / id / name).string();
    std::error_code ec;
    const uint64_t size = fs::file_size(path, ec);
    if (ec) return fail(InternalError("cannot stat " + path + ": " + ec.message()));
    auto crc = FileCrc(path);
    if (!crc.ok()) return fail(crc.status());
    out.files.push_back({name, size, *crc});
    sizes[name] = size;
  }
  std::lock_guard lock(mu_);
  open_[id].sizes = std::move(sizes);
  open_[id].used = std::chrono::steady_clock::now();
  return out;
}

Result<ExportChunk> Exports::Read(const ReadExportCall& call) {
  std::string path;
  uint64_t size = 0;
  {
    std::lock_guard lock(mu_);
    auto it = open_.find(call.export_id);
    if (it == open_.end()) {
      return NotFoundError("no collection export '" + call.export_id +
                           "' on this node (ended, or not read for " +
                           std::to_string(idle_.count()) + " s)");
    }
    auto f = it->second.sizes.find(call.file);
    if (f == it->second.sizes.end()) {
      return NotFoundError("collection export '" + call.export_id + "' has no file '" + call.file +
                           "'");
    }
    it->second.used = std::chrono::steady_clock::now();
    path = it->second.dir + "/" + call.file;
    size = f->second;
  }
  if (call.offset > size) {
    return OutOfRangeError("offset " + std::to_string(call.offset) + " is beyond the end of '" +
                           call.file + "' (" + std::to_string(size) + " bytes)");
  }
  const uint32_t want = call.length == 0 ? kMaxExportChunk : std::min(call.length, kMaxExportChunk);
  ExportChunk out;
  out.data.resize(std::min<uint64_t>(want, size - call.offset));
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return InternalError("cannot open " + path + ": " + std::strerror(errno));
  const bool ok = std::fseek(f, long(call.offset), SEEK_SET) == 0 &&
                  std::fread(out.data.data(), 1, out.data.size(), f) == out.data.size();
  std::fclose(f);
  if (!ok) return InternalError("cannot read " + path);
  return out;
}

Status Exports::End(const std::string& export_id) {
  std::lock_guard lock(mu_);
  auto it = open_.find(export_id);
  if (it == open_.end()) return NotFoundError("no collection export '" + export_id + "'");
  std::error_code ec;
  fs::remove_all(it->second.dir, ec);
  open_.erase(it);
  return Status::Ok();
}

}  // namespace quiver::net
