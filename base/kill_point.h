// Named kill points, for the crash tests of the real server (tests/tools/server_crash_test.cc).
//
// With QUIVER_KILL_AT="name:N" in the environment when the process starts, the process kills
// itself with SIGKILL the Nth time (counting from 1) it reaches KillPoint("name"); with
// QUIVER_KILL_AT unset, a KillPoint is one load of a flag. The points in the code:
//   write.before_wal     a write batch built, not yet handed to RocksDB (storage/store.cc)
//   write.after_wal      items durable, the index not yet updated, no acknowledgement sent
//   snapshot.saved       an index snapshot written to its temporary directory, not renamed
//   snapshot.renamed     the snapshot renamed in place, the op log not yet trimmed
//   ingest.sst           a bulk load's SST files written, not yet ingested
//   plugin.commit        a plugin run's lists built, not yet written
//   reload.previous      a version switch: PREVIOUS written, CURRENT not yet
#pragma once

namespace quiver {

void KillPoint(const char* name);

}  // namespace quiver
