// A RocksDB FileSystem for the crash tests that turns a SIGKILL into a simulated power loss
// (StoreOptions::simulate_power_loss, quiverd --simulate-power-loss). Data appended to a file
// stays in the process until the file is synced: a Flush does not hand it to the OS, so a
// process killed before the sync loses it, as a machine losing power loses what it had not
// synced. Closing a file writes what it holds (RocksDB syncs every file it relies on before
// closing it; the info LOG is the exception). Not for production: everything not yet synced is
// also held in memory.
#pragma once

#include <memory>

namespace rocksdb {
class FileSystem;
}

namespace quiver::storage {

std::shared_ptr<rocksdb::FileSystem> NewPowerLossFileSystem();

}  // namespace quiver::storage
