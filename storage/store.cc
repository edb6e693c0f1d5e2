#include "storage/store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "base/coding.h"
#include "base/crc32c.h"
#include "base/kill_point.h"
#include "base/work_pool.h"
#include "storage/column_families.h"
#include "storage/fault_fs.h"

namespace quiver::storage {
namespace {

enum Cf : size_t { kMeta = 0, kItems, kUsers, kNeighbors, kOplog, kCfCount };

constexpr const char* kCfNames[kCfCount] = {kMetaColumnFamily, kItemsColumnFamily,
                                            kUsersColumnFamily, kNeighborsColumnFamily,
                                            kOplogColumnFamily};

constexpr char kSchemaPrefix = 'c';
constexpr char kLastOpPrefix = 's';
constexpr char kListInfoPrefix = 'l';     // + collection id BE + kind
constexpr char kLogPositionPrefix = 'g';  // + collection id BE + shard BE
constexpr const char* kNextCollectionKey = "next_collection_id";

// The free bytes (for an unprivileged process) of the filesystem holding `path`; UINT64_MAX
// when unknown (nothing is refused then). A statvfs costs about a microsecond.
uint64_t FreeBytesAt(const std::string& path) {
  struct statvfs st {};
  return ::statvfs(path.c_str(), &st) == 0 ? uint64_t(st.f_bavail) * st.f_frsize : UINT64_MAX;
}

std::string MetaKey(char prefix, uint32_t collection_id) {
  return std::string(1, prefix) + CollectionKey(collection_id);
}

// Converts a RocksDB status at the edge.
Status FromRocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string message = std::string(what) + ": " + s.ToString();
  if (s.IsCorruption()) return DataLossError(message);
  if (s.IsNotFound()) return NotFoundError(message);
  if (s.IsInvalidArgument()) return InvalidArgumentError(message);
  if (s.IsNoSpace()) return ResourceExhaustedError(message);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return UnavailableError(message);
  return InternalError(message);
}

rocksdb::Slice AsSlice(const std::string& s) { return rocksdb::Slice(s.data(), s.size()); }

}  // namespace

struct WriteBatch::Rep {
  rocksdb::WriteBatch batch;
  // Column-family handles are bound when the batch is written (handles belong to the Store).
  struct Op {
    enum Kind : uint8_t { kPut, kDelete, kDeleteRange } kind;
    Cf cf;
    std::string key, value;
  };
  std::vector<Op> ops;
};

WriteBatch::WriteBatch() : rep_(std::make_unique<Rep>()) {}
WriteBatch::~WriteBatch() = default;

size_t WriteBatch::count() const { return rep_->ops.size(); }

void WriteBatch::PutSchema(uint32_t collection_id, const CollectionSchema& schema) {
  rep_->ops.push_back(
      {Rep::Op::kPut, kMeta, MetaKey(kSchemaPrefix, collection_id), EncodeSchema(schema)});
}

void WriteBatch::PutNextCollectionId(uint32_t next) {
  std::string v;
  PutFixed<uint32_t>(&v, next);
  rep_->ops.push_back({Rep::Op::kPut, kMeta, kNextCollectionKey, std::move(v)});
}

void WriteBatch::DropCollection(uint32_t collection_id) {
  rep_->ops.push_back({Rep::Op::kDelete, kMeta, MetaKey(kSchemaPrefix, collection_id), {}});
  rep_->ops.push_back({Rep::Op::kDelete, kMeta, MetaKey(kLastOpPrefix, collection_id), {}});
  const std::string begin = CollectionKey(collection_id), end = CollectionKey(collection_id + 1);
  for (Cf cf : {kItems, kUsers, kNeighbors, kOplog}) {
    rep_->ops.push_back({Rep::Op::kDeleteRange, cf, begin, end});
  }
  rep_->ops.push_back({Rep::Op::kDeleteRange, kMeta, MetaKey(kListInfoPrefix, collection_id),
                       MetaKey(kListInfoPrefix, collection_id + 1)});
  rep_->ops.push_back({Rep::Op::kDeleteRange, kMeta, MetaKey(kLogPositionPrefix, collection_id),
                       MetaKey(kLogPositionPrefix, collection_id + 1)});
}

void WriteBatch::PutLogPosition(uint32_t collection_id, uint32_t shard, uint64_t seq) {
  std::string key = MetaKey(kLogPositionPrefix, collection_id) + CollectionKey(shard);  // BE32
  std::string v;
  PutFixed<uint64_t>(&v, seq);
  rep_->ops.push_back({Rep::Op::kPut, kMeta, std::move(key), std::move(v)});
}

void WriteBatch::PutList(uint32_t collection_id, std::string_view kind, uint64_t key,
                         const std::vector<Hit>& list) {
  rep_->ops.push_back(
      {Rep::Op::kPut, kNeighbors, ListKey(collection_id, kind, key), EncodeList(list)});
}

void WriteBatch::DeleteList(uint32_t collection_id, std::string_view kind, uint64_t key) {
  rep_->ops.push_back({Rep::Op::kDelete, kNeighbors, ListKey(collection_id, kind, key), {}});
}

void WriteBatch::DropListKind(uint32_t collection_id, std::string_view kind) {
  const std::string begin = ListKindPrefix(collection_id, kind);
  rep_->ops.push_back({Rep::Op::kDeleteRange, kNeighbors, begin, begin + std::string(9, '\xff')});
  rep_->ops.push_back(
      {Rep::Op::kDelete, kMeta, MetaKey(kListInfoPrefix, collection_id) + std::string(kind), {}});
}

void WriteBatch::PutListInfo(uint32_t collection_id, const ListInfo& info) {
  rep_->ops.push_back({Rep::Op::kPut, kMeta, MetaKey(kListInfoPrefix, collection_id) + info.kind,
                       EncodeListInfo(info)});
}

void WriteBatch::PutItem(uint32_t collection_id, const ItemRecord& item) {
  rep_->ops.push_back({Rep::Op::kPut, kItems, IdKey(collection_id, item.id), EncodeItem(item)});
}

void WriteBatch::DeleteItem(uint32_t collection_id, uint64_t id) {
  rep_->ops.push_back({Rep::Op::kDelete, kItems, IdKey(collection_id, id), {}});
}

void WriteBatch::PutUser(uint32_t collection_id, const UserRecord& user) {
  rep_->ops.push_back({Rep::Op::kPut, kUsers, IdKey(collection_id, user.id), EncodeUser(user)});
}

void WriteBatch::PutOp(uint32_t collection_id, uint64_t seq, const OpRecord& op) {
  rep_->ops.push_back({Rep::Op::kPut, kOplog, IdKey(collection_id, seq), EncodeOp(op)});
  std::string v;
  PutFixed<uint64_t>(&v, seq);
  rep_->ops.push_back({Rep::Op::kPut, kMeta, MetaKey(kLastOpPrefix, collection_id), std::move(v)});
}

struct Store::Rep {
  std::unique_ptr<rocksdb::Env> env;  // simulate_power_loss: outlives the database
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::WriteOptions write_options;
  uint64_t min_free_bytes = 0;
  std::string read_only;  // why the database was opened read-only ("" if it was not)
  // A write RocksDB failed with an I/O error (a full disk it reached anyway): later writes
  // first ask it to resume, at most once a second.
  std::atomic<bool> write_error{false};
  std::mutex resume_mu;
  std::chrono::steady_clock::time_point resume_tried;  // GUARDED_BY(resume_mu)
  std::string write_error_text;                        // GUARDED_BY(resume_mu)

  ~Rep() {
    for (auto* h : cfs) {
      if (h) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    }
    if (db) db->Close().PermitUncheckedError();
  }
};

Store::Store(std::string path, std::unique_ptr<Rep> rep)
    : path_(std::move(path)), rep_(std::move(rep)) {}
Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::Open(const std::string& path, const StoreOptions& options) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec);
  if (existed && options.error_if_exists) return AlreadyExistsError("a database exists at " + path);
  if (!existed && !options.create_if_missing) return NotFoundError("no database at " + path);

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = !existed;
  db_options.paranoid_checks = true;
  // A torn last record (a write cut short by the crash, never acknowledged) is dropped; damage
  // before the end fails the open unless the loss is accepted.
  db_options.wal_recovery_mode = options.accept_wal_loss
                                     ? rocksdb::WALRecoveryMode::kPointInTimeRecovery
                                     : rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  {
    // The pool threads are started here and inherit this thread's CPUs.
    const std::vector<int> cpus = ThreadCpus();
    const bool pinned = !options.background_cpus.empty() && SetThreadCpus(options.background_cpus);
    db_options.IncreaseParallelism(2);
    if (pinned) SetThreadCpus(cpus);
  }
  // Searches come first on a busy machine: writers waiting for their group's leader block
  // instead of spinning, and flushes and compactions run at a low CPU priority.
  db_options.enable_write_thread_adaptive_yield = false;
  for (auto pool : {rocksdb::Env::Priority::HIGH, rocksdb::Env::Priority::LOW}) {
    db_options.env->LowerThreadPoolCPUPriority(pool, rocksdb::CpuPriority::kLow)
        .PermitUncheckedError();
  }

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf_options.compression = rocksdb::kNoCompression;  // float vectors do not compress

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const char* name : kCfNames) descriptors.emplace_back(name, cf_options);
  auto rep = std::make_unique<Rep>();
  if (options.simulate_power_loss || options.faults) {
    rep->env =
        rocksdb::NewCompositeEnv(NewFaultFileSystem(options.simulate_power_loss, options.faults));
    db_options.env = rep->env.get();
  }
  rep->min_free_bytes = options.min_free_bytes;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s;
  const uint64_t free_bytes = existed ? FreeBytesAt(path) : UINT64_MAX;
  if (free_bytes < options.min_free_bytes) {
    // Opening read-write writes (a new log, the manifest); on a full disk RocksDB can fail
    // that badly. Read-only it writes nothing and still replays the log into memory.
    rep->read_only = "the disk holding " + path + " had " + std::to_string(free_bytes >> 20) +
                     " MiB free at start, under the reserve of " +
                     std::to_string(options.min_free_bytes >> 20) +
                     " MiB: opened read-only; free space and restart to accept writes";
    s = rocksdb::DB::OpenForReadOnly(db_options, path, descriptors, &rep->cfs, &db);
  } else {
    s = rocksdb::DB::Open(db_options, path, descriptors, &rep->cfs, &db);
  }
  if (!s.ok()) {
    if (existed && s.IsCorruption() && !options.accept_wal_loss) {
      return DataLossError("the database at " + path + " is damaged (" + s.ToString() +
                           "): opening it would drop the writes recorded after the damage. "
                           "Copy the directory aside, then start with --accept-wal-loss to "
                           "open it without them");
    }
    if (existed && s.IsInvalidArgument()) {
      return FailedPreconditionError("data directory " + path +
                                     " was not written by this Quiver version: " + s.ToString());
    }
    return FromRocks(s, "opening " + path);
  }
  rep->db.reset(db);
  rep->write_options.sync = options.durability == Durability::kSync;

  std::string format;
  s = db->Get(rocksdb::ReadOptions(), rep->cfs[kMeta], kFormatKey, &format);
  if (s.IsNotFound() && !existed) {
    QV_RETURN_IF_ERROR(
        FromRocks(db->Put(rep->write_options, rep->cfs[kMeta], kFormatKey, kFormatValue),
                  "writing the format marker"));
  } else if (!s.ok()) {
    if (s.IsNotFound()) {
      return FailedPreconditionError("data directory " + path + " has no Quiver format marker");
    }
    return FromRocks(s, "reading the format marker");
  } else if (format != kFormatValue) {
    return FailedPreconditionError("data directory " + path + " has format '" + format +
                                   "'; this build reads '" + kFormatValue + "'");
  }
  return std::unique_ptr<Store>(new Store(path, std::move(rep)));
}

std::string Store::WriteRefusal() const {
  if (Status s = CheckFreeSpace(0); !s.ok()) return std::string(s.message());
  if (rep_->write_error.load()) {
    std::lock_guard lock(rep_->resume_mu);
    return "the last write failed (" + rep_->write_error_text +
           "); writes resume if RocksDB can resume, else after a restart";
  }
  return "";
}

// Checked before every write (the free space: a statvfs, against the write's fsync).
Status Store::CheckFreeSpace(uint64_t bytes) const {
  if (!rep_->read_only.empty()) return ResourceExhaustedError(rep_->read_only);
  const uint64_t free_bytes = FreeBytesAt(path_);
  if (free_bytes >= rep_->min_free_bytes && free_bytes - rep_->min_free_bytes >= bytes) {
    return Status::Ok();
  }
  const std::string has =
      "the disk holding " + path_ + " has " + std::to_string(free_bytes >> 20) + " MiB free";
  const std::string reserve =
      "the reserve of " + std::to_string(rep_->min_free_bytes >> 20) + " MiB";
  if (bytes == 0) {
    return ResourceExhaustedError(has + ", under " + reserve +
                                  ": writes resume once there is more");
  }
  return ResourceExhaustedError(has + "; " + std::to_string(bytes >> 20) +
                                " MiB are needed beyond " + reserve);
}

// Refused writes never reach RocksDB; one RocksDB failed with an I/O error (the disk filled up
// between checks) leaves it refusing writes until it resumes, which later writes ask for.
Status Store::Write(WriteBatch& batch) {
  QV_RETURN_IF_ERROR(CheckFreeSpace(0));
  if (rep_->write_error.load()) {
    std::lock_guard lock(rep_->resume_mu);
    if (rep_->write_error.load()) {
      const auto now = std::chrono::steady_clock::now();
      if (now - rep_->resume_tried < std::chrono::seconds(1)) {
        return ResourceExhaustedError("writes are refused after a disk error (" +
                                      rep_->write_error_text + "); retry later");
      }
      rep_->resume_tried = now;
      rocksdb::Status r = rep_->db->Resume();
      if (!r.ok()) {
        // RocksDB resumes after a full disk, not after an I/O error on its log: the outcome
        // of the failed write is then unknown until the log is read again, at a restart.
        return UnavailableError(
            "writes are refused after a disk error RocksDB cannot resume "
            "from (" +
            rep_->write_error_text +
            "); restart quiverd once the disk is sound (the failed write "
            "is then either all there or absent)");
      }
      rep_->write_error = false;
    }
  }
  rocksdb::WriteBatch& b = batch.rep_->batch;
  b.Clear();
  for (const WriteBatch::Rep::Op& op : batch.rep_->ops) {
    rocksdb::ColumnFamilyHandle* cf = rep_->cfs[op.cf];
    rocksdb::Status s;
    switch (op.kind) {
      case WriteBatch::Rep::Op::kPut:
        s = b.Put(cf, AsSlice(op.key), AsSlice(op.value));
        break;
      case WriteBatch::Rep::Op::kDelete:
        s = b.Delete(cf, AsSlice(op.key));
        break;
      case WriteBatch::Rep::Op::kDeleteRange:
        s = b.DeleteRange(cf, AsSlice(op.key), AsSlice(op.value));
        break;
    }
    QV_RETURN_IF_ERROR(FromRocks(s, "building a write batch"));
  }
  KillPoint("write.before_wal");
  rocksdb::WriteOptions write_options = rep_->write_options;
  if (!batch.sync_) write_options.sync = false;
  rocksdb::Status s = rep_->db->Write(write_options, &b);
  if (s.IsIOError() || s.IsNoSpace()) {
    std::lock_guard lock(rep_->resume_mu);
    rep_->write_error_text = s.ToString();
    rep_->resume_tried = std::chrono::steady_clock::now();
    rep_->write_error = true;
  }
  return FromRocks(s, "writing a batch");
}

Result<std::vector<std::pair<uint32_t, CollectionSchema>>> Store::LoadCollections() const {
  std::vector<std::pair<uint32_t, CollectionSchema>> out;
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(rocksdb::ReadOptions(), rep_->cfs[kMeta]));
  const std::string prefix(1, kSchemaPrefix);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string_view key(it->key().data() + 1, it->key().size() - 1);
    if (key.size() != 4) return DataLossError("corrupt collection key in the meta column family");
    uint32_t id = 0;
    for (char c : key) id = (id << 8) | uint8_t(c);
    QV_ASSIGN_OR_RETURN(CollectionSchema schema, DecodeSchema(it->value().ToStringView()));
    out.emplace_back(id, std::move(schema));
  }
  QV_RETURN_IF_ERROR(FromRocks(it->status(), "listing collections"));
  return out;
}

Result<uint32_t> Store::NextCollectionId() const {
  std::string v;
  rocksdb::Status s =
      rep_->db->Get(rocksdb::ReadOptions(), rep_->cfs[kMeta], kNextCollectionKey, &v);
  if (s.IsNotFound()) return uint32_t{1};
  QV_RETURN_IF_ERROR(FromRocks(s, "reading the next collection id"));
  std::string_view in(v);
  uint32_t next;
  if (!GetFixed(&in, &next) || !in.empty()) return DataLossError("corrupt next collection id");
  return next;
}

Result<uint64_t> Store::LastOp(uint32_t collection_id) const {
  std::string v;
  rocksdb::Status s = rep_->db->Get(rocksdb::ReadOptions(), rep_->cfs[kMeta],
                                    MetaKey(kLastOpPrefix, collection_id), &v);
  if (s.IsNotFound()) return uint64_t{0};
  QV_RETURN_IF_ERROR(FromRocks(s, "reading a collection's op sequence"));
  std::string_view in(v);
  uint64_t seq;
  if (!GetFixed(&in, &seq) || !in.empty()) return DataLossError("corrupt op sequence");
  return seq;
}

Status Store::SyncWal() { return FromRocks(rep_->db->SyncWAL(), "syncing the write-ahead log"); }

Result<std::map<uint32_t, uint64_t>> Store::LogPositions(uint32_t collection_id) const {
  std::map<uint32_t, uint64_t> out;
  const std::string prefix = MetaKey(kLogPositionPrefix, collection_id);
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(rocksdb::ReadOptions(), rep_->cfs[kMeta]));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    const std::string_view key = it->key().ToStringView().substr(prefix.size());
    std::string_view value = it->value().ToStringView();
    uint64_t seq = 0;
    if (key.size() != 4 || !GetFixed(&value, &seq) || !value.empty()) {
      return DataLossError("corrupt write-log position of collection " +
                           std::to_string(collection_id));
    }
    uint32_t shard = 0;
    for (char byte : key) shard = (shard << 8) | uint8_t(byte);
    out[shard] = seq;
  }
  QV_RETURN_IF_ERROR(FromRocks(it->status(), "reading write-log positions"));
  return out;
}

Result<std::optional<ItemRecord>> Store::GetItem(uint32_t collection_id, uint64_t id) const {
  std::string v;
  rocksdb::Status s =
      rep_->db->Get(rocksdb::ReadOptions(), rep_->cfs[kItems], IdKey(collection_id, id), &v);
  if (s.IsNotFound()) return std::optional<ItemRecord>();
  QV_RETURN_IF_ERROR(FromRocks(s, "reading an item"));
  QV_ASSIGN_OR_RETURN(ItemRecord item, DecodeItem(id, v));
  return std::optional<ItemRecord>(std::move(item));
}

Status Store::GetItems(uint32_t collection_id, std::span<const uint64_t> ids,
                       std::vector<std::optional<ItemRecord>>* out) const {
  std::vector<std::string> keys(ids.size());
  std::vector<rocksdb::Slice> slices(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    keys[i] = IdKey(collection_id, ids[i]);
    slices[i] = AsSlice(keys[i]);
  }
  std::vector<rocksdb::PinnableSlice> values(ids.size());
  std::vector<rocksdb::Status> statuses(ids.size());
  rep_->db->MultiGet(rocksdb::ReadOptions(), rep_->cfs[kItems], ids.size(), slices.data(),
                     values.data(), statuses.data());
  out->assign(ids.size(), std::nullopt);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    QV_RETURN_IF_ERROR(FromRocks(statuses[i], "reading items"));
    QV_ASSIGN_OR_RETURN(ItemRecord item, DecodeItem(ids[i], values[i].ToStringView()));
    (*out)[i] = std::move(item);
  }
  return Status::Ok();
}

namespace {

// An iterator over one collection's key range of a column family.
class RangeIterator {
 public:
  RangeIterator(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, uint32_t collection_id,
                bool fill_cache)
      : end_(CollectionKey(collection_id + 1)), upper_(end_) {
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_;
    ro.fill_cache = fill_cache;
    it_.reset(db->NewIterator(ro, cf));
  }
  rocksdb::Iterator* get() { return it_.get(); }

 private:
  std::string end_;
  rocksdb::Slice upper_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

}  // namespace

Status Store::ScanItems(uint32_t collection_id,
                        const std::function<Status(ItemRecord&&)>& fn) const {
  RangeIterator range(rep_->db.get(), rep_->cfs[kItems], collection_id, /*fill_cache=*/false);
  rocksdb::Iterator* it = range.get();
  const std::string begin = CollectionKey(collection_id);
  for (it->Seek(begin); it->Valid(); it->Next()) {
    uint32_t cid;
    uint64_t id;
    if (!ParseIdKey(it->key().ToStringView(), &cid, &id)) return DataLossError("corrupt item key");
    QV_ASSIGN_OR_RETURN(ItemRecord item, DecodeItem(id, it->value().ToStringView()));
    QV_RETURN_IF_ERROR(fn(std::move(item)));
  }
  return FromRocks(it->status(), "scanning items");
}

Status Store::ScanItemsFrom(uint32_t collection_id, uint64_t first,
                            const std::function<bool(ItemRecord&&)>& fn) const {
  RangeIterator range(rep_->db.get(), rep_->cfs[kItems], collection_id, /*fill_cache=*/false);
  rocksdb::Iterator* it = range.get();
  for (it->Seek(IdKey(collection_id, first)); it->Valid(); it->Next()) {
    uint32_t cid;
    uint64_t id;
    if (!ParseIdKey(it->key().ToStringView(), &cid, &id)) return DataLossError("corrupt item key");
    QV_ASSIGN_OR_RETURN(ItemRecord item, DecodeItem(id, it->value().ToStringView()));
    if (!fn(std::move(item))) return Status::Ok();
  }
  return FromRocks(it->status(), "scanning items");
}

Result<uint64_t> Store::CountItems(uint32_t collection_id) const {
  RangeIterator range(rep_->db.get(), rep_->cfs[kItems], collection_id, /*fill_cache=*/false);
  rocksdb::Iterator* it = range.get();
  const std::string begin = CollectionKey(collection_id);
  uint64_t n = 0;
  for (it->Seek(begin); it->Valid(); it->Next()) ++n;
  QV_RETURN_IF_ERROR(FromRocks(it->status(), "counting items"));
  return n;
}

Result<std::optional<UserRecord>> Store::GetUser(uint32_t collection_id, uint64_t id) const {
  std::string v;
  rocksdb::Status s =
      rep_->db->Get(rocksdb::ReadOptions(), rep_->cfs[kUsers], IdKey(collection_id, id), &v);
  if (s.IsNotFound()) return std::optional<UserRecord>();
  QV_RETURN_IF_ERROR(FromRocks(s, "reading a user"));
  QV_ASSIGN_OR_RETURN(UserRecord user, DecodeUser(id, v));
  return std::optional<UserRecord>(std::move(user));
}

Status Store::ScanUsers(uint32_t collection_id,
                        const std::function<Status(UserRecord&&)>& fn) const {
  RangeIterator range(rep_->db.get(), rep_->cfs[kUsers], collection_id, /*fill_cache=*/false);
  rocksdb::Iterator* it = range.get();
  for (it->Seek(CollectionKey(collection_id)); it->Valid(); it->Next()) {
    uint32_t cid;
    uint64_t id;
    if (!ParseIdKey(it->key().ToStringView(), &cid, &id)) return DataLossError("corrupt user key");
    QV_ASSIGN_OR_RETURN(UserRecord user, DecodeUser(id, it->value().ToStringView()));
    QV_RETURN_IF_ERROR(fn(std::move(user)));
  }
  return FromRocks(it->status(), "scanning users");
}

Result<std::optional<std::vector<Hit>>> Store::GetList(uint32_t collection_id,
                                                       std::string_view kind, uint64_t key) const {
  std::string v;
  rocksdb::Status s = rep_->db->Get(rocksdb::ReadOptions(), rep_->cfs[kNeighbors],
                                    ListKey(collection_id, kind, key), &v);
  if (s.IsNotFound()) return std::optional<std::vector<Hit>>();
  QV_RETURN_IF_ERROR(FromRocks(s, "reading a neighbor list"));
  QV_ASSIGN_OR_RETURN(std::vector<Hit> list, DecodeList(v));
  return std::optional<std::vector<Hit>>(std::move(list));
}

Status Store::ScanLists(uint32_t collection_id, std::string_view kind,
                        const std::function<Status(uint64_t key, std::vector<Hit>&&)>& fn) const {
  const std::string begin = ListKindPrefix(collection_id, kind),
                    end = begin + std::string(9, '\xff');
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(ro, rep_->cfs[kNeighbors]));
  for (it->Seek(begin); it->Valid(); it->Next()) {
    std::string_view k = it->key().ToStringView();
    if (k.size() != begin.size() + 8) return DataLossError("corrupt neighbor list key");
    uint64_t key = 0;
    for (char c : k.substr(begin.size())) key = (key << 8) | uint8_t(c);
    QV_ASSIGN_OR_RETURN(std::vector<Hit> list, DecodeList(it->value().ToStringView()));
    QV_RETURN_IF_ERROR(fn(key, std::move(list)));
  }
  return FromRocks(it->status(), "scanning neighbor lists");
}

Result<std::vector<ListInfo>> Store::ListInfos(uint32_t collection_id) const {
  std::vector<ListInfo> out;
  const std::string prefix = MetaKey(kListInfoPrefix, collection_id);
  std::unique_ptr<rocksdb::Iterator> it(
      rep_->db->NewIterator(rocksdb::ReadOptions(), rep_->cfs[kMeta]));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    QV_ASSIGN_OR_RETURN(ListInfo info, DecodeListInfo(it->value().ToStringView()));
    out.push_back(std::move(info));
  }
  QV_RETURN_IF_ERROR(FromRocks(it->status(), "listing neighbor lists"));
  return out;
}

Status Store::ScanOps(uint32_t collection_id, uint64_t after,
                      const std::function<Status(uint64_t, OpRecord&&)>& fn) const {
  const std::string end = CollectionKey(collection_id + 1);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(ro, rep_->cfs[kOplog]));
  if (after == UINT64_MAX) return Status::Ok();
  for (it->Seek(IdKey(collection_id, after + 1)); it->Valid(); it->Next()) {
    uint32_t cid;
    uint64_t seq;
    if (!ParseIdKey(it->key().ToStringView(), &cid, &seq))
      return DataLossError("corrupt op log key");
    QV_ASSIGN_OR_RETURN(OpRecord op, DecodeOp(it->value().ToStringView()));
    QV_RETURN_IF_ERROR(fn(seq, std::move(op)));
  }
  return FromRocks(it->status(), "scanning the op log");
}

Result<std::optional<uint64_t>> Store::FirstOpAfter(uint32_t collection_id, uint64_t after) const {
  if (after == UINT64_MAX) return std::optional<uint64_t>();
  const std::string end = CollectionKey(collection_id + 1);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(ro, rep_->cfs[kOplog]));
  it->Seek(IdKey(collection_id, after + 1));
  QV_RETURN_IF_ERROR(FromRocks(it->status(), "reading the op log"));
  if (!it->Valid()) return std::optional<uint64_t>();
  uint32_t cid;
  uint64_t seq;
  if (!ParseIdKey(it->key().ToStringView(), &cid, &seq)) return DataLossError("corrupt op log key");
  return std::optional<uint64_t>(seq);
}

Status Store::TrimOps(uint32_t collection_id, uint64_t up_to) {
  if (up_to == 0) return Status::Ok();
  QV_RETURN_IF_ERROR(CheckFreeSpace(0));
  const std::string begin = IdKey(collection_id, 0);
  const std::string end =
      up_to == UINT64_MAX ? CollectionKey(collection_id + 1) : IdKey(collection_id, up_to + 1);
  return FromRocks(rep_->db->DeleteRange(rep_->write_options, rep_->cfs[kOplog], begin, end),
                   "trimming the op log");
}

Result<uint64_t> Store::IngestItems(uint32_t collection_id,
                                    const std::function<Result<bool>(ItemRecord*)>& next) {
  QV_ASSIGN_OR_RETURN(uint64_t existing, CountItems(collection_id));
  if (existing != 0) {
    return FailedPreconditionError("bulk ingestion needs an empty collection; it has " +
                                   std::to_string(existing) + " items");
  }
  const std::string dir = path_ + "/ingest";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return InternalError("cannot create " + dir + ": " + ec.message());
  constexpr uint64_t kItemsPerFile = 1 << 20;
  rocksdb::ColumnFamilyDescriptor cf_desc;
  QV_RETURN_IF_ERROR(
      FromRocks(rep_->cfs[kItems]->GetDescriptor(&cf_desc), "reading column family options"));
  rocksdb::Options options(rocksdb::DBOptions(), cf_desc.options);
  std::vector<std::string> files;
  std::unique_ptr<rocksdb::SstFileWriter> writer;
  auto finish = [&]() -> Status {
    if (!writer) return Status::Ok();
    QV_RETURN_IF_ERROR(FromRocks(writer->Finish(), "finishing an SST file"));
    writer.reset();
    return Status::Ok();
  };
  uint64_t n = 0;
  bool have_last = false;
  uint64_t last = 0;
  ItemRecord item;
  while (true) {
    QV_ASSIGN_OR_RETURN(bool more, next(&item));
    if (!more) break;
    if (have_last && item.id <= last) {
      return InvalidArgumentError("bulk items must come in strictly increasing id order (" +
                                  std::to_string(item.id) + " after " + std::to_string(last) + ")");
    }
    if (n % kItemsPerFile == 0) {
      QV_RETURN_IF_ERROR(finish());
      files.push_back(dir + "/items-" + std::to_string(files.size()) + ".sst");
      writer = std::make_unique<rocksdb::SstFileWriter>(rocksdb::EnvOptions(), options,
                                                        rep_->cfs[kItems]);
      QV_RETURN_IF_ERROR(FromRocks(writer->Open(files.back()), "creating an SST file"));
    }
    QV_RETURN_IF_ERROR(FromRocks(writer->Put(IdKey(collection_id, item.id), EncodeItem(item)),
                                 "writing an SST file"));
    last = item.id;
    have_last = true;
    ++n;
  }
  QV_RETURN_IF_ERROR(finish());
  KillPoint("ingest.sst");
  if (!files.empty()) {
    rocksdb::IngestExternalFileOptions io;
    io.move_files = true;
    QV_RETURN_IF_ERROR(FromRocks(rep_->db->IngestExternalFile(rep_->cfs[kItems], files, io),
                                 "ingesting SST files"));
  }
  std::filesystem::remove_all(dir, ec);
  return n;
}

Status Store::Flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return FromRocks(rep_->db->Flush(fo, rep_->cfs), "flushing");
}

// ---- collection export and import ----

namespace {

struct PinnedView : StoreView {
  PinnedView(rocksdb::DB* db, const rocksdb::Snapshot* snapshot) : db(db), snapshot(snapshot) {}
  ~PinnedView() override { db->ReleaseSnapshot(snapshot); }
  PinnedView(const PinnedView&) = delete;
  PinnedView& operator=(const PinnedView&) = delete;
  rocksdb::DB* db;
  const rocksdb::Snapshot* snapshot;
};

// Export file: kExportHeader, then records (part u8, key length u32, key, value length u32,
// value; keys without the collection id), then kEndPart, the record count u64 and the CRC-32C
// u32 of every byte before it. Parts name where a record goes: a meta prefix, or a column family.
constexpr std::string_view kExportHeader = "quiver-export-1\n";
constexpr uint8_t kEndPart = 0xff;
constexpr uint32_t kMaxExportKey = 1 << 16, kMaxExportValue = 1 << 30;

struct ExportPart {
  uint8_t code;
  Cf cf;
  char meta_prefix;  // 0: the column family's keys start with the collection id
};
constexpr ExportPart kExportParts[] = {
    {'c', kMeta, kSchemaPrefix},
    {'s', kMeta, kLastOpPrefix},
    {'l', kMeta, kListInfoPrefix},
    {'g', kMeta, kLogPositionPrefix},
    {'I', kItems, 0},
    {'U', kUsers, 0},
    {'N', kNeighbors, 0},
    {'O', kOplog, 0},
};

const ExportPart* FindExportPart(uint8_t code) {
  for (const ExportPart& p : kExportParts) {
    if (p.code == code) return &p;
  }
  return nullptr;
}

std::string PartPrefix(const ExportPart& part, uint32_t collection_id) {
  return part.meta_prefix != 0 ? MetaKey(part.meta_prefix, collection_id)
                               : CollectionKey(collection_id);
}

// Buffered reads of an export file, checksummed as they go.
class ExportReader {
 public:
  explicit ExportReader(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "rb")) {
    if (f_) std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
  }
  ~ExportReader() {
    if (f_) std::fclose(f_);
  }
  ExportReader(const ExportReader&) = delete;
  ExportReader& operator=(const ExportReader&) = delete;

  Status Open() const {
    if (!f_) return NotFoundError("cannot open " + path_ + ": " + std::strerror(errno));
    return Status::Ok();
  }
  Status Read(size_t n, std::string* out) {
    out->resize(n);
    if (n > 0 && std::fread(out->data(), 1, n, f_) != n) return Damaged("it is cut short");
    crc_ = crc32c::Extend(crc_, out->data(), n);
    return Status::Ok();
  }
  template <typename T>
  Status ReadFixed(T* value) {
    std::string buf;
    QV_RETURN_IF_ERROR(Read(sizeof(T), &buf));
    *value = DecodeFixed<T>(buf.data());
    return Status::Ok();
  }
  uint32_t crc() const { return crc_; }
  bool AtEnd() { return std::fgetc(f_) == EOF; }
  Status Damaged(const std::string& why) const {
    return DataLossError("collection export " + path_ + " is damaged: " + why);
  }

 private:
  std::string path_;
  std::FILE* f_;
  uint32_t crc_ = 0;
};

// Reads one record (or the end marker: *part is then kEndPart).
Status ReadExportRecord(ExportReader& in, uint8_t* part, std::string* key, std::string* value) {
  QV_RETURN_IF_ERROR(in.ReadFixed(part));
  if (*part == kEndPart) return Status::Ok();
  if (FindExportPart(*part) == nullptr) {
    return in.Damaged("unknown record kind " + std::to_string(*part));
  }
  uint32_t n = 0;
  QV_RETURN_IF_ERROR(in.ReadFixed(&n));
  if (n > kMaxExportKey) return in.Damaged("a key of " + std::to_string(n) + " bytes");
  QV_RETURN_IF_ERROR(in.Read(n, key));
  QV_RETURN_IF_ERROR(in.ReadFixed(&n));
  if (n > kMaxExportValue) return in.Damaged("a value of " + std::to_string(n) + " bytes");
  return in.Read(n, value);
}

}  // namespace

std::shared_ptr<const StoreView> Store::Pin() const {
  return std::make_shared<PinnedView>(rep_->db.get(), rep_->db->GetSnapshot());
}

Result<uint64_t> Store::ExportCollection(
    uint32_t collection_id, const StoreView& view, const std::string& path,
    const std::function<bool(const ItemRecord&)>& keep_item) const {
  const auto* pinned = dynamic_cast<const PinnedView*>(&view);
  if (pinned == nullptr || pinned->db != rep_->db.get()) {
    return InvalidArgumentError("the view given to ExportCollection is not of this store");
  }
  std::FILE* f = std::fopen(path.c_str(), "wbx");
  if (!f) return InternalError("cannot create " + path + ": " + std::strerror(errno));
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(f, &std::fclose);
  std::setvbuf(f, nullptr, _IOFBF, 1 << 20);
  uint32_t crc = 0;
  uint64_t bytes = 0, count = 0;
  auto put = [&](std::string_view data) -> Status {
    if (!data.empty() && std::fwrite(data.data(), 1, data.size(), f) != data.size()) {
      return InternalError("writing " + path + ": " + std::strerror(errno));
    }
    crc = crc32c::Extend(crc, data.data(), data.size());
    bytes += data.size();
    return Status::Ok();
  };
  QV_RETURN_IF_ERROR(put(kExportHeader));
  rocksdb::ReadOptions ro;
  ro.snapshot = pinned->snapshot;
  ro.fill_cache = false;
  for (const ExportPart& part : kExportParts) {
    const std::string begin = PartPrefix(part, collection_id);
    const std::string end = part.meta_prefix != 0 ? MetaKey(part.meta_prefix, collection_id + 1)
                                                  : CollectionKey(collection_id + 1);
    rocksdb::Slice upper(end);
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(ro, rep_->cfs[part.cf]));
    for (it->Seek(begin); it->Valid(); it->Next()) {
      const std::string_view key = it->key().ToStringView().substr(begin.size());
      const std::string_view value = it->value().ToStringView();
      if (part.cf == kItems && keep_item) {
        uint32_t cid = 0;
        uint64_t id = 0;
        if (!ParseIdKey(it->key().ToStringView(), &cid, &id))
          return DataLossError("corrupt item key");
        QV_ASSIGN_OR_RETURN(ItemRecord item, DecodeItem(id, value));
        if (!keep_item(item)) continue;
      }
      std::string head(1, char(part.code));
      PutFixed<uint32_t>(&head, uint32_t(key.size()));
      QV_RETURN_IF_ERROR(put(head));
      QV_RETURN_IF_ERROR(put(key));
      head.clear();
      PutFixed<uint32_t>(&head, uint32_t(value.size()));
      QV_RETURN_IF_ERROR(put(head));
      QV_RETURN_IF_ERROR(put(value));
      ++count;
    }
    QV_RETURN_IF_ERROR(FromRocks(it->status(), "exporting collection records"));
  }
  std::string tail(1, char(kEndPart));
  PutFixed<uint64_t>(&tail, count);
  QV_RETURN_IF_ERROR(put(tail));
  tail.clear();
  PutFixed<uint32_t>(&tail, crc);
  QV_RETURN_IF_ERROR(put(tail));
  if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0) {
    return InternalError("writing " + path + ": " + std::strerror(errno));
  }
  return bytes;
}

Result<CollectionSchema> Store::ImportCollection(uint32_t collection_id, const std::string& path) {
  // Pass 1: the whole file checks out, and holds a schema.
  std::optional<CollectionSchema> schema;
  {
    ExportReader in(path);
    QV_RETURN_IF_ERROR(in.Open());
    std::string header, key, value;
    QV_RETURN_IF_ERROR(in.Read(kExportHeader.size(), &header));
    if (header != kExportHeader) return in.Damaged("it is not a Quiver collection export");
    uint64_t count = 0;
    for (uint8_t part = 0;;) {
      QV_RETURN_IF_ERROR(ReadExportRecord(in, &part, &key, &value));
      if (part == kEndPart) break;
      ++count;
      if (part == 'c') {
        auto decoded = DecodeSchema(value);
        if (!decoded.ok()) return in.Damaged(std::string(decoded.status().message()));
        schema = std::move(*decoded);
      }
    }
    uint64_t stated = 0;
    QV_RETURN_IF_ERROR(in.ReadFixed(&stated));
    const uint32_t expected = in.crc();
    uint32_t crc = 0;
    QV_RETURN_IF_ERROR(in.ReadFixed(&crc));
    if (crc != expected) return in.Damaged("its checksum does not match");
    if (stated != count) return in.Damaged("its record count does not match");
    if (!in.AtEnd()) return in.Damaged("bytes follow its end");
    if (!schema) return in.Damaged("it holds no schema");
  }
  QV_RETURN_IF_ERROR(CheckFreeSpace(0));
  // Pass 2: the records, in batches of about 4 MiB.
  ExportReader in(path);
  QV_RETURN_IF_ERROR(in.Open());
  std::string header, key, value;
  QV_RETURN_IF_ERROR(in.Read(kExportHeader.size(), &header));
  WriteBatch batch;
  batch.set_sync(false);
  size_t batch_bytes = 0;
  for (uint8_t part = 0;;) {
    QV_RETURN_IF_ERROR(ReadExportRecord(in, &part, &key, &value));
    if (part == kEndPart) break;
    if (part == 'c') continue;  // the caller records the schema
    const ExportPart& p = *FindExportPart(part);
    batch_bytes += key.size() + value.size();
    batch.rep_->ops.push_back(
        {WriteBatch::Rep::Op::kPut, p.cf, PartPrefix(p, collection_id) + key, std::move(value)});
    value = std::string();
    if (batch_bytes >= (4 << 20)) {
      QV_RETURN_IF_ERROR(Write(batch));
      batch.rep_->ops.clear();
      batch_bytes = 0;
    }
  }
  if (batch.count() > 0) QV_RETURN_IF_ERROR(Write(batch));
  QV_RETURN_IF_ERROR(SyncWal());
  return std::move(*schema);
}

}  // namespace quiver::storage
