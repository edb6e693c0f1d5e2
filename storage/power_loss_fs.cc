#include "storage/power_loss_fs.h"

#include <rocksdb/file_system.h>

#include <string>

namespace quiver::storage {
namespace {

using rocksdb::FileOptions;
using rocksdb::FSWritableFile;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// Appends held here until Sync, Fsync, Close or Truncate write them out.
class HeldUntilSync final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  explicit HeldUntilSync(std::unique_ptr<FSWritableFile>&& file)
      : FSWritableFileOwnerWrapper(std::move(file)) {}

  IOStatus Append(const Slice& data, const IOOptions&, IODebugContext*) override {
    held_.append(data.data(), data.size());
    return IOStatus::OK();
  }
  IOStatus Append(const Slice& data, const IOOptions& options, const rocksdb::DataVerificationInfo&,
                  IODebugContext* dbg) override {
    return Append(data, options, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* dbg) override {
    IOStatus s = WriteOut(options, dbg);
    return s.ok() ? target()->PositionedAppend(data, offset, options, dbg) : s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const rocksdb::DataVerificationInfo&, IODebugContext* dbg) override {
    return PositionedAppend(data, offset, options, dbg);
  }
  // Not even the OS gets the data: only a sync makes it survive the simulated power loss.
  IOStatus Flush(const IOOptions&, IODebugContext*) override { return IOStatus::OK(); }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = WriteOut(options, dbg);
    return s.ok() ? target()->Sync(options, dbg) : s;
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = WriteOut(options, dbg);
    return s.ok() ? target()->Fsync(options, dbg) : s;
  }
  // A hint to start writeback, no durability: the data stays held.
  IOStatus RangeSync(uint64_t, uint64_t, const IOOptions&, IODebugContext*) override {
    return IOStatus::OK();
  }
  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = WriteOut(options, dbg);
    return s.ok() ? target()->Truncate(size, options, dbg) : s;
  }
  IOStatus Close(const IOOptions& options, IODebugContext* dbg) override {
    IOStatus s = WriteOut(options, dbg);
    return s.ok() ? target()->Close(options, dbg) : s;
  }
  uint64_t GetFileSize(const IOOptions& options, IODebugContext* dbg) override {
    return target()->GetFileSize(options, dbg) + held_.size();
  }
  bool IsSyncThreadSafe() const override { return false; }

 private:
  IOStatus WriteOut(const IOOptions& options, IODebugContext* dbg) {
    if (held_.empty()) return IOStatus::OK();
    IOStatus s = target()->Append(Slice(held_), options, dbg);
    if (s.ok()) s = target()->Flush(options, dbg);
    if (s.ok()) held_.clear();
    return s;
  }

  std::string held_;
};

class PowerLossFs final : public rocksdb::FileSystemWrapper {
 public:
  explicit PowerLossFs(const std::shared_ptr<rocksdb::FileSystem>& target)
      : FileSystemWrapper(target) {}
  const char* Name() const override { return "QuiverPowerLossFs"; }

  IOStatus NewWritableFile(const std::string& f, const FileOptions& o,
                           std::unique_ptr<FSWritableFile>* r, IODebugContext* dbg) override {
    return Wrap(target()->NewWritableFile(f, o, r, dbg), r);
  }
  IOStatus ReopenWritableFile(const std::string& f, const FileOptions& o,
                              std::unique_ptr<FSWritableFile>* r, IODebugContext* dbg) override {
    return Wrap(target()->ReopenWritableFile(f, o, r, dbg), r);
  }
  IOStatus ReuseWritableFile(const std::string& f, const std::string& old, const FileOptions& o,
                             std::unique_ptr<FSWritableFile>* r, IODebugContext* dbg) override {
    return Wrap(target()->ReuseWritableFile(f, old, o, r, dbg), r);
  }

 private:
  static IOStatus Wrap(IOStatus s, std::unique_ptr<FSWritableFile>* r) {
    if (s.ok()) *r = std::make_unique<HeldUntilSync>(std::move(*r));
    return s;
  }
};

}  // namespace

std::shared_ptr<rocksdb::FileSystem> NewPowerLossFileSystem() {
  return std::make_shared<PowerLossFs>(rocksdb::FileSystem::Default());
}

}  // namespace quiver::storage
