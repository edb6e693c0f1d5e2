// Store: Quiver's durable state in one RocksDB database (one per data version directory).
//
// Column families (names in storage/column_families.h): meta (format marker, collection
// schemas, per-collection op sequence), items, users, neighbors (plugin lists), oplog. Keys and
// values are built by storage/records.h. RocksDB types never appear in this header.
//
// Durability: Write returns only after the batch is in the write-ahead log; with
// Durability::kSync (the default) the log is fsynced first, so an acknowledged write survives
// power loss (RocksDB commits concurrent writers' syncs as a group). kNoSync leaves the fsync to
// the OS: it survives a process crash but not a power cut.
//
// Thread-safety: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/status.h"
#include "storage/fault_fs.h"
#include "storage/records.h"

namespace quiver::storage {

enum class Durability : uint8_t {
  kSync = 0,    // fsync the WAL before acknowledging (default)
  kNoSync = 1,  // WAL written, fsync left to the OS
};

struct StoreOptions {
  Durability durability = Durability::kSync;
  size_t block_cache_bytes = size_t{256} << 20;
  bool create_if_missing = true;
  bool error_if_exists = false;  // bulk builds start from an empty directory
  // A write-ahead log damaged before its end (not merely a torn last record) fails the open
  // with kDataLoss: the writes after the damage would be dropped. true opens anyway, replaying
  // the log up to the damage (quiverd --accept-wal-loss).
  bool accept_wal_loss = false;
  // Free space kept on the database's filesystem. Writes that find less are refused
  // (kResourceExhausted) before they reach RocksDB, and accepted again once there is more; a
  // database that finds less at open is opened read-only (reads served, writes refused until a
  // restart with the space back). RocksDB itself is not taken to the last byte: its recovery
  // from a full disk in the middle of a write is not something to rely on.
  uint64_t min_free_bytes = uint64_t{64} << 20;
  // The CPUs RocksDB's flush and compaction threads run on (empty: any). They are shared by every
  // store of the process and started by the first open, which is the one this setting reaches.
  std::vector<int> background_cpus;
  // For the crash tests: data RocksDB appends stays in the process until synced, so a SIGKILL
  // loses it as a power cut would (storage/fault_fs.h).
  bool simulate_power_loss = false;
  // For the fault tests: I/O errors to inject while its flags are set (storage/fault_fs.h).
  std::shared_ptr<FaultInjection> faults;
};

// An atomic group of changes: all of them are applied, or none.
class WriteBatch {
 public:
  WriteBatch();
  ~WriteBatch();
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  void PutSchema(uint32_t collection_id, const CollectionSchema& schema);
  void PutNextCollectionId(uint32_t next);
  // Removes the collection's schema and every record it owns (items, users, lists, op log).
  void DropCollection(uint32_t collection_id);
  void PutItem(uint32_t collection_id, const ItemRecord& item);
  void DeleteItem(uint32_t collection_id, uint64_t id);
  void PutUser(uint32_t collection_id, const UserRecord& user);
  // Appends op `seq` to the collection's op log and records seq as its latest op.
  void PutOp(uint32_t collection_id, uint64_t seq, const OpRecord& op);
  // Cluster mode: the collection has applied its write log's shard up to stream sequence `seq`.
  void PutLogPosition(uint32_t collection_id, uint32_t shard, uint64_t seq);
  // Neighbor lists (records.h): one list, its removal, a whole kind's removal, and the kind's
  // run record.
  void PutList(uint32_t collection_id, std::string_view kind, uint64_t key,
               const std::vector<Hit>& list);
  void DeleteList(uint32_t collection_id, std::string_view kind, uint64_t key);
  void DropListKind(uint32_t collection_id, std::string_view kind);
  void PutListInfo(uint32_t collection_id, const ListInfo& info);

  size_t count() const;
  // false: written without waiting for the disk, whatever the store's durability (cluster mode
  // applies its write log so: what a power cut loses is replayed from the log, the position
  // going back with the data). Store::SyncWal makes such writes durable.
  void set_sync(bool sync) { sync_ = sync; }

 private:
  friend class Store;
  bool sync_ = true;
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

// A consistent view of a whole store at one moment (Store::Pin): writes after it are not seen
// through it, and what it sees is kept from compaction while it is held.
class StoreView {
 public:
  virtual ~StoreView() = default;
};

class Store {
 public:
  // Opens (or creates) the database at `path`. kFailedPrecondition if the directory holds a
  // database written by an incompatible Quiver version; kDataLoss if RocksDB finds corruption.
  static Result<std::unique_ptr<Store>> Open(const std::string& path, const StoreOptions& options);
  ~Store();

  const std::string& path() const { return path_; }
  // kResourceExhausted (nothing written) while the disk is under its reserve or the database is
  // read-only (WriteRefusal says why).
  Status Write(WriteBatch& batch);
  // Makes every write so far durable (the ones written with set_sync(false) included).
  Status SyncWal();

  // Why writes are refused now ("" if they are not): a disk under the reserve, a database opened
  // read-only, a disk error RocksDB has not recovered from.
  std::string WriteRefusal() const;
  // kResourceExhausted unless the filesystem has `bytes` free beyond the reserve (for the index
  // snapshots written beside the database).
  Status CheckFreeSpace(uint64_t bytes) const;

  // Every collection's id and schema.
  Result<std::vector<std::pair<uint32_t, CollectionSchema>>> LoadCollections() const;
  // The id the next created collection gets (1 on a new database).
  Result<uint32_t> NextCollectionId() const;
  // The collection's latest op sequence (0 if it has none).
  Result<uint64_t> LastOp(uint32_t collection_id) const;
  // Cluster mode: the last write-log sequence applied, by shard (PutLogPosition).
  Result<std::map<uint32_t, uint64_t>> LogPositions(uint32_t collection_id) const;

  Result<std::optional<ItemRecord>> GetItem(uint32_t collection_id, uint64_t id) const;
  // out->at(i) is ids[i]'s record, or nullopt if it is absent.
  Status GetItems(uint32_t collection_id, std::span<const uint64_t> ids,
                  std::vector<std::optional<ItemRecord>>* out) const;
  // Calls fn for each of the collection's items in id order; stops at fn's first error.
  Status ScanItems(uint32_t collection_id, const std::function<Status(ItemRecord&&)>& fn) const;
  Result<uint64_t> CountItems(uint32_t collection_id) const;
  // Calls fn for each of the collection's items with id >= first, in id order, while fn
  // returns true.
  Status ScanItemsFrom(uint32_t collection_id, uint64_t first,
                       const std::function<bool(ItemRecord&&)>& fn) const;

  Result<std::optional<UserRecord>> GetUser(uint32_t collection_id, uint64_t id) const;
  Status ScanUsers(uint32_t collection_id, const std::function<Status(UserRecord&&)>& fn) const;
  Result<std::optional<std::vector<Hit>>> GetList(uint32_t collection_id, std::string_view kind,
                                                  uint64_t key) const;
  Status ScanLists(uint32_t collection_id, std::string_view kind,
                   const std::function<Status(uint64_t key, std::vector<Hit>&&)>& fn) const;
  // The run records of the collection's list kinds, by kind.
  Result<std::vector<ListInfo>> ListInfos(uint32_t collection_id) const;

  // Calls fn(seq, op) for each op with sequence > after, in order.
  Status ScanOps(uint32_t collection_id, uint64_t after,
                 const std::function<Status(uint64_t, OpRecord&&)>& fn) const;
  // The first op sequence after `after`, or nullopt if there is none.
  Result<std::optional<uint64_t>> FirstOpAfter(uint32_t collection_id, uint64_t after) const;
  // Deletes the ops with sequence <= up_to (they are covered by an index snapshot).
  Status TrimOps(uint32_t collection_id, uint64_t up_to);

  // Bulk load: writes the items `next` yields (in strictly increasing id order; it returns
  // false when done) into SST files beside the database and ingests them into the items column
  // family in one step, so none of them is visible unless all are. kInvalidArgument if ids are
  // not increasing; the collection must have no items yet. Returns the number ingested.
  Result<uint64_t> IngestItems(uint32_t collection_id,
                               const std::function<Result<bool>(ItemRecord*)>& next);

  // A consistent view of the store as it is now (for ExportCollection).
  std::shared_ptr<const StoreView> Pin() const;
  // Copies every record the collection owns, as `view` sees them (schema, op sequence, items,
  // users, neighbor lists and their run records, op log, write-log positions), into a new file
  // at `path` (fsynced), keyed without the collection id. The format is private to Store (read
  // back only by ImportCollection): a header, the records, their count and a CRC-32C. Returns
  // the file's size.
  // `keep_item`, if set, leaves out the items it returns false for.
  Result<uint64_t> ExportCollection(
      uint32_t collection_id, const StoreView& view, const std::string& path,
      const std::function<bool(const ItemRecord&)>& keep_item = nullptr) const;
  // Writes the records of an ExportCollection file under `collection_id` (which must own no
  // records), all but the schema, which the file's reader returns for the caller to record last
  // (a collection exists once its schema does). The whole file is checked first: kDataLoss (and
  // nothing written) if it is damaged or cut short. The records are written unsynced, then the
  // write-ahead log is synced once.
  Result<CollectionSchema> ImportCollection(uint32_t collection_id, const std::string& path);

  // Flushes memtables to SST files (for shutdown and bulk builds).
  Status Flush();

 private:
  struct Rep;
  Store(std::string path, std::unique_ptr<Rep> rep);

  std::string path_;
  std::unique_ptr<Rep> rep_;
};

}  // namespace quiver::storage
