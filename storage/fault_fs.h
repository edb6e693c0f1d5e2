// RocksDB FileSystem wrappers for the crash and fault tests. Not for production.
//
// Simulated power loss (StoreOptions::simulate_power_loss, quiverd --simulate-power-loss): data
// appended to a file stays in the process until the file is synced: a Flush does not hand it to
// the OS, so a process killed before the sync loses it, as a machine losing power loses what it
// had not synced. Closing a file writes what it holds (RocksDB syncs every file it relies on
// before closing it; the info LOG is the exception). Everything not yet synced is held in
// memory.
//
// Injected I/O errors (StoreOptions::faults): while a FaultInjection flag is set, the matching
// operations fail as a failing disk makes them fail.
#pragma once

#include <atomic>
#include <memory>

namespace rocksdb {
class FileSystem;
}

namespace quiver::storage {

struct FaultInjection {
  std::atomic<bool> write_errors{false};  // appends, syncs: EIO
  std::atomic<bool> no_space{false};      // appends, syncs: ENOSPC
  std::atomic<bool> read_errors{false};   // reads of SST files: EIO
  std::atomic<bool> read_only{false};     // creating a file: the directory is read-only
};

// `power_loss`: hold appended data until synced. `faults` (may be null): errors to inject.
std::shared_ptr<rocksdb::FileSystem> NewFaultFileSystem(bool power_loss,
                                                        std::shared_ptr<FaultInjection> faults);

}  // namespace quiver::storage
