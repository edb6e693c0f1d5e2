#include "storage/fault_fs.h"

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

// The error a write gets while one is injected (OK otherwise).
IOStatus WriteFault(const FaultInjection* faults) {
  if (!faults) return IOStatus::OK();
  if (faults->no_space.load()) return IOStatus::NoSpace("injected ENOSPC");
  if (faults->write_errors.load()) return IOStatus::IOError("injected EIO on a write");
  return IOStatus::OK();
}

// With power_loss, appends are held here until Sync, Fsync, Close or Truncate write them out;
// without, they go straight through. Injected faults fail appends and syncs.
class HeldUntilSync final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  HeldUntilSync(std::unique_ptr<FSWritableFile>&& file, bool power_loss,
                std::shared_ptr<FaultInjection> faults)
      : FSWritableFileOwnerWrapper(std::move(file)),
        power_loss_(power_loss),
        faults_(std::move(faults)) {}

  IOStatus Append(const Slice& data, const IOOptions& options, IODebugContext* dbg) override {
    if (IOStatus s = WriteFault(faults_.get()); !s.ok()) return s;
    if (!power_loss_) return target()->Append(data, options, dbg);
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
  IOStatus Flush(const IOOptions& options, IODebugContext* dbg) override {
    return power_loss_ ? IOStatus::OK() : target()->Flush(options, dbg);
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    if (IOStatus s = WriteFault(faults_.get()); !s.ok()) return s;
    IOStatus s = WriteOut(options, dbg);
    return s.ok() ? target()->Sync(options, dbg) : s;
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    if (IOStatus s = WriteFault(faults_.get()); !s.ok()) return s;
    IOStatus s = WriteOut(options, dbg);
    return s.ok() ? target()->Fsync(options, dbg) : s;
  }
  // A hint to start writeback, no durability: the data stays held.
  IOStatus RangeSync(uint64_t offset, uint64_t n, const IOOptions& options,
                     IODebugContext* dbg) override {
    return power_loss_ ? IOStatus::OK() : target()->RangeSync(offset, n, options, dbg);
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

  const bool power_loss_;
  const std::shared_ptr<FaultInjection> faults_;
  std::string held_;
};

// Reads fail while read errors are injected.
class FaultyReads final : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  FaultyReads(std::unique_ptr<rocksdb::FSRandomAccessFile>&& file,
              std::shared_ptr<FaultInjection> faults)
      : FSRandomAccessFileOwnerWrapper(std::move(file)), faults_(std::move(faults)) {}

  IOStatus Read(uint64_t offset, size_t n, const IOOptions& options, Slice* result, char* scratch,
                IODebugContext* dbg) const override {
    if (faults_->read_errors.load()) return IOStatus::IOError("injected EIO on a read");
    return target()->Read(offset, n, options, result, scratch, dbg);
  }
  IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs, const IOOptions& options,
                     IODebugContext* dbg) override {
    if (faults_->read_errors.load()) {
      for (size_t i = 0; i < num_reqs; ++i) reqs[i].status = IOStatus::IOError("injected EIO");
      return IOStatus::OK();
    }
    return target()->MultiRead(reqs, num_reqs, options, dbg);
  }

 private:
  const std::shared_ptr<FaultInjection> faults_;
};

class FaultFs final : public rocksdb::FileSystemWrapper {
 public:
  FaultFs(const std::shared_ptr<rocksdb::FileSystem>& target, bool power_loss,
          std::shared_ptr<FaultInjection> faults)
      : FileSystemWrapper(target), power_loss_(power_loss), faults_(std::move(faults)) {}
  const char* Name() const override { return "QuiverFaultFs"; }

  IOStatus NewRandomAccessFile(const std::string& f, const FileOptions& o,
                               std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                               IODebugContext* dbg) override {
    IOStatus s = target()->NewRandomAccessFile(f, o, r, dbg);
    if (s.ok() && faults_) *r = std::make_unique<FaultyReads>(std::move(*r), faults_);
    return s;
  }

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
  IOStatus Wrap(IOStatus s, std::unique_ptr<FSWritableFile>* r) {
    if (s.ok() && faults_ && faults_->read_only.load()) {
      r->reset();
      return IOStatus::IOError("injected: the directory is read-only");
    }
    if (s.ok()) *r = std::make_unique<HeldUntilSync>(std::move(*r), power_loss_, faults_);
    return s;
  }

  const bool power_loss_;
  const std::shared_ptr<FaultInjection> faults_;
};

}  // namespace

std::shared_ptr<rocksdb::FileSystem> NewFaultFileSystem(bool power_loss,
                                                        std::shared_ptr<FaultInjection> faults) {
  return std::make_shared<FaultFs>(rocksdb::FileSystem::Default(), power_loss, std::move(faults));
}

}  // namespace quiver::storage
