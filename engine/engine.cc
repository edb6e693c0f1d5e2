#include "engine/engine.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <unordered_set>

#include "base/kill_point.h"
#include "base/log.h"
#include "engine/partitions.h"
#include "engine/query/operators.h"
#include "index/io/index_file.h"
#include "index/kmeans/kmeans.h"

namespace quiver::engine {

namespace fs = std::filesystem;

// One collection's in-memory state. Its indexes (`parts`) are set before the collection is
// published; a compaction (Engine::Snapshot) replaces them whole, under write_mu, while
// searches that started earlier finish on the set they took.
class Collection {
 public:
  Collection(uint32_t id, CollectionSchema schema) : id_(id), schema_(std::move(schema)) {}

  uint32_t id() const { return id_; }
  const CollectionSchema& schema() const { return schema_; }

  std::shared_ptr<Partitions> parts() const {
    std::lock_guard lock(parts_mu_);
    return parts_;
  }
  void set_parts(std::shared_ptr<Partitions> p) {
    std::lock_guard lock(parts_mu_);
    parts_ = std::move(p);
  }
  std::mutex write_mu;     // orders writes; held across the store write and the index update
  std::mutex snapshot_mu;  // one snapshot at a time
  std::atomic<uint64_t> op_seq{0};        // latest op applied to the index
  std::atomic<uint64_t> snapshot_seq{0};  // op covered by the newest snapshot
  bool dropped = false;                   // GUARDED_BY(write_mu)
  // Cluster mode: the last write-log sequence applied, by shard.
  std::map<uint32_t, uint64_t> log_applied;  // GUARDED_BY(write_mu)

  // Whether the write at `at` is applied already (a replayed log message). REQUIRES: write_mu.
  bool Applied(const std::optional<LogPosition>& at) const {
    if (!at) return false;
    auto it = log_applied.find(at->shard);
    return it != log_applied.end() && it->second >= at->seq;
  }

  bool trained() const { return parts()->trained(); }

 private:
  mutable std::mutex parts_mu_;
  std::shared_ptr<Partitions> parts_;  // GUARDED_BY(parts_mu_)
  const uint32_t id_;
  const CollectionSchema schema_;
};

namespace {

constexpr size_t kRebuildChunk = 8192;

// A snapshot is a directory named by the op it covers, holding every index of the collection
// (engine/partitions.h); written as <name>.tmp and renamed when complete.
std::string SnapshotName(uint64_t seq) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%020" PRIu64, seq);
  return buf;
}

// Snapshot files in dir, newest first, as (seq, path). Removes the temporary files of
// snapshots that were being written when a process died.
std::vector<std::pair<uint64_t, std::string>> ListSnapshots(const std::string& dir) {
  std::vector<std::pair<uint64_t, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.ends_with(".tmp")) {
      fs::remove_all(e.path(), ec);
      continue;
    }
    if (name.size() != 20 || !e.is_directory()) continue;
    uint64_t seq = 0;
    bool digits = true;
    for (size_t i = 0; i < 20; ++i) {
      if (name[i] < '0' || name[i] > '9') digits = false;
      seq = seq * 10 + uint64_t(name[i] - '0');
    }
    if (digits) out.emplace_back(seq, e.path().string());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

// Moves a snapshot that cannot be used out of the way, keeping it for inspection.
void SetAside(const std::string& path, const Status& why) {
  log::Warn("snapshot_set_aside", {{"path", path}, {"why", why.ToString()}});
  std::error_code ec;
  fs::rename(path, path + ".corrupt", ec);
}

// Writes a snapshot of `parts` covering op `seq` into dir/<seq>: a temporary directory,
// every file fsynced by the index writer, then renamed, then the parent fsynced.
Status WriteSnapshot(const Partitions& parts, const std::string& dir, uint64_t seq) {
  const std::string final_dir = dir + "/" + SnapshotName(seq), tmp = final_dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return InternalError("cannot create " + tmp + ": " + ec.message());
  // A snapshot cut short (a full disk, an I/O error) leaves nothing behind.
  if (Status s = parts.Save(tmp); !s.ok()) {
    fs::remove_all(tmp, ec);
    return s;
  }
  KillPoint("snapshot.saved");
  fs::remove_all(final_dir, ec);
  fs::rename(tmp, final_dir, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    return InternalError("cannot rename " + tmp + ": " + ec.message());
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    if (fd >= 0) ::close(fd);
    return InternalError("cannot fsync " + dir);
  }
  ::close(fd);
  return Status::Ok();
}

// Builds a collection's indexes from every stored item.
Result<std::shared_ptr<Partitions>> BuildFromStore(const storage::Store& store,
                                                   const Collection& c) {
  QV_ASSIGN_OR_RETURN(std::shared_ptr<Partitions> parts, Partitions::Create(c.schema()));
  // An untrained IVF-PQ index trains on its first Add: give it a full training sample.
  const size_t first = std::max(kRebuildChunk, size_t(c.schema().index.ivf_nlist) * 256);
  std::vector<ItemRecord> chunk;
  bool first_done = false;
  QV_RETURN_IF_ERROR(store.ScanItems(c.id(), [&](ItemRecord&& item) -> Status {
    chunk.push_back(std::move(item));
    if (chunk.size() >= (first_done ? kRebuildChunk : first)) {
      QV_RETURN_IF_ERROR(parts->Add(chunk));
      chunk.clear();
      first_done = true;
    }
    return Status::Ok();
  }));
  QV_RETURN_IF_ERROR(parts->Add(chunk));
  return parts;
}

// Rebuilds the index from every stored item.
Status Rebuild(const storage::Store& store, Collection& c) {
  QV_ASSIGN_OR_RETURN(std::shared_ptr<Partitions> parts, BuildFromStore(store, c));
  c.set_parts(std::move(parts));
  return Status::Ok();
}

// Brings the index up to date with the ops after `after`: every touched id gets its stored
// state (present: added or replaced; absent: removed). Idempotent.
Status Replay(const storage::Store& store, uint32_t collection_id, Partitions& parts,
              uint64_t after) {
  std::unordered_set<uint64_t> touched;
  QV_RETURN_IF_ERROR(
      store.ScanOps(collection_id, after, [&](uint64_t, storage::OpRecord&& op) -> Status {
        touched.insert(op.upserted.begin(), op.upserted.end());
        touched.insert(op.deleted.begin(), op.deleted.end());
        return Status::Ok();
      }));
  if (touched.empty()) return Status::Ok();
  std::vector<uint64_t> ids(touched.begin(), touched.end());
  std::sort(ids.begin(), ids.end());
  std::vector<std::optional<ItemRecord>> records;
  QV_RETURN_IF_ERROR(store.GetItems(collection_id, ids, &records));
  std::vector<ItemRecord> present;
  std::vector<uint64_t> gone;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (records[i]) {
      present.push_back(std::move(*records[i]));
    } else if (parts.Contains(ids[i])) {
      gone.push_back(ids[i]);
    }
  }
  if (!gone.empty()) QV_RETURN_IF_ERROR(parts.Remove(gone));
  return parts.Add(present);
}

// Whether the op log holds every op after `seq` (nothing after it was trimmed).
Result<bool> OpsContinueAfter(const storage::Store& store, uint32_t collection_id, uint64_t seq,
                              uint64_t last) {
  if (seq >= last) return seq == last;
  QV_ASSIGN_OR_RETURN(std::optional<uint64_t> first, store.FirstOpAfter(collection_id, seq));
  return first == seq + 1;
}

}  // namespace

namespace {

CollectionInfo Describe(const Collection& c) {
  CollectionInfo info;
  info.id = c.id();
  info.schema = c.schema();
  info.items = c.parts()->size();
  info.op_seq = c.op_seq.load();
  info.snapshot_seq = c.snapshot_seq.load();
  info.index_memory_bytes = c.parts()->memory_bytes();
  info.trained = c.trained();
  return info;
}

}  // namespace

Engine::Engine(std::string dir, EngineOptions options, std::unique_ptr<storage::Store> store)
    : dir_(std::move(dir)), options_(std::move(options)), store_(std::move(store)) {}

Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::Open(const std::string& dir, const EngineOptions& options) {
  std::error_code ec;
  if (options.store.create_if_missing) fs::create_directories(fs::path(dir) / "snapshots", ec);
  if (ec) return InternalError("cannot create " + dir + ": " + ec.message());
  QV_ASSIGN_OR_RETURN(auto store,
                      storage::Store::Open((fs::path(dir) / "db").string(), options.store));
  std::unique_ptr<Engine> engine(new Engine(dir, options, std::move(store)));
  QV_RETURN_IF_ERROR(engine->RecoverAll());
  return engine;
}

std::string Engine::SnapshotDir(uint32_t collection_id) const {
  return (fs::path(dir_) / "snapshots" / std::to_string(collection_id)).string();
}

namespace {

constexpr const char* kAckedFile = "ACKED";
constexpr const char* kAckedHeader = "quiver acknowledged ops v1";

// <dir>/ACKED: collection id -> op sequence acknowledged (empty if the file is absent).
Result<std::map<uint32_t, uint64_t>> ReadAcked(const std::string& dir) {
  std::map<uint32_t, uint64_t> out;
  std::ifstream in(dir + "/" + kAckedFile);
  if (!in) return out;
  std::string header;
  std::getline(in, header);
  if (header != kAckedHeader) return DataLossError(dir + "/" + kAckedFile + " is damaged");
  uint32_t id;
  uint64_t seq;
  while (in >> id >> seq) out[id] = seq;
  if (!in.eof()) return DataLossError(dir + "/" + kAckedFile + " is damaged");
  return out;
}

}  // namespace

void Engine::MarkAcknowledged() {
  if (options_.store.durability != storage::Durability::kSync) return;
  const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  if (now < next_mark_ns_.load(std::memory_order_relaxed)) return;
  std::unique_lock lock(mark_mu_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  next_mark_ns_ = now + std::chrono::nanoseconds(std::chrono::seconds(1)).count();
  std::string text = std::string(kAckedHeader) + "\n";
  {
    std::shared_lock collections(mu_);
    for (const auto& [name, c] : collections_) {
      text += std::to_string(c->id()) + " " + std::to_string(c->op_seq.load()) + "\n";
    }
  }
  // Every op counted here is in the fsynced WAL already. A failure only skips this mark.
  index::WriteFileAtomically(dir_ + "/" + kAckedFile, text).IgnoreError();
}

Status Engine::RecoverAll() {
  QV_ASSIGN_OR_RETURN(next_id_, store_->NextCollectionId());
  QV_ASSIGN_OR_RETURN(auto schemas, store_->LoadCollections());
  QV_ASSIGN_OR_RETURN(const auto acked, ReadAcked(dir_));
  for (auto& [id, schema] : schemas) {
    auto it = acked.find(id);
    QV_ASSIGN_OR_RETURN(
        auto c,
        LoadCollection(id, schema,
                       it == acked.end() ? std::nullopt : std::optional<uint64_t>(it->second)));
    collections_[schema.name] = std::move(c);
  }
  // A loss accepted above is recorded as the new floor, so the next start does not refuse it
  // again.
  if (options_.store.accept_wal_loss) MarkAcknowledged();
  return Status::Ok();
}

Result<std::shared_ptr<Collection>> Engine::LoadCollection(uint32_t id,
                                                           const CollectionSchema& schema,
                                                           std::optional<uint64_t> acked) const {
  auto c = std::make_shared<Collection>(id, schema);
  QV_ASSIGN_OR_RETURN(const uint64_t last, store_->LastOp(id));
  if (acked && *acked > last) {
    // Ops the server acknowledged (and recorded) are not in the store: a write-ahead log cut
    // short at a record boundary, or removed, shows no damage RocksDB could find.
    Status lost = DataLossError(
        "collection '" + schema.name + "': ops up to " + std::to_string(*acked) +
        " were acknowledged (" + dir_ + "/" + kAckedFile + ") but the store's op log ends at op " +
        std::to_string(last) + ": ops " + std::to_string(last + 1) + " to " +
        std::to_string(*acked) +
        " are lost (a write-ahead log cut short or removed?). "
        "Copy the directory aside, then start with --accept-wal-loss to serve what is left");
    if (!options_.store.accept_wal_loss) return lost;
    log::Warn("wal_loss_accepted", {{"why", lost.ToString()}});
  }
  uint64_t base = 0;
  bool loaded = false;
  for (const auto& [seq, path] : ListSnapshots(SnapshotDir(id))) {
    if (seq > last) {
      // The store lost acknowledged ops (a damaged log opened with the loss accepted, or
      // files replaced by hand): ops last + 1 .. seq are gone.
      Status lost = DataLossError(
          "collection '" + schema.name + "': its index snapshot covers op " + std::to_string(seq) +
          " but the store's op log ends at op " + std::to_string(last) + ": ops " +
          std::to_string(last + 1) + " to " + std::to_string(seq) + " (" +
          std::to_string(seq - last) + ") were acknowledged and are lost");
      if (!options_.store.accept_wal_loss) return lost;
      SetAside(path, lost);
      continue;
    }
    QV_ASSIGN_OR_RETURN(bool continuous, OpsContinueAfter(*store_, id, seq, last));
    if (!continuous) continue;  // older than the kept op log: not usable, but not corrupt
    auto r = Partitions::Load(schema, path);
    if (!r.ok()) {
      SetAside(path, r.status());
      continue;
    }
    c->set_parts(std::move(*r));
    base = seq;
    loaded = true;
    break;
  }
  Status s = loaded ? Replay(*store_, c->id(), *c->parts(), base) : Rebuild(*store_, *c);
  if (!s.ok()) {
    return Status(s.code(),
                  "recovering collection '" + schema.name + "': " + std::string(s.message()));
  }
  c->op_seq = last;
  c->snapshot_seq = base;
  QV_ASSIGN_OR_RETURN(c->log_applied, store_->LogPositions(id));
  return c;
}

Result<std::shared_ptr<Collection>> Engine::Find(const std::string& name) const {
  std::shared_lock lock(mu_);
  auto it = collections_.find(name);
  if (it == collections_.end()) return NotFoundError("no collection named '" + name + "'");
  return it->second;
}

Result<uint32_t> Engine::NextIdFor(const std::string& name) const {
  std::shared_lock lock(mu_);
  if (collections_.count(name))
    return AlreadyExistsError("collection '" + name + "' already exists");
  return next_id_;
}

Status Engine::CreateCollection(const CollectionSchema& schema) {
  QV_RETURN_IF_ERROR(ValidateSchema(schema));
  std::lock_guard ddl(ddl_mu_);
  QV_ASSIGN_OR_RETURN(const uint32_t id, NextIdFor(schema.name));
  auto c = std::make_shared<Collection>(id, schema);
  QV_ASSIGN_OR_RETURN(std::shared_ptr<Partitions> created, Partitions::Create(schema));
  c->set_parts(created);
  // Records left under this id by a bulk load that died before recording its collection.
  std::error_code ec;
  fs::remove_all(SnapshotDir(id), ec);
  storage::WriteBatch batch;
  batch.DropCollection(id);
  batch.PutSchema(id, schema);
  batch.PutNextCollectionId(id + 1);
  QV_RETURN_IF_ERROR(store_->Write(batch));
  std::unique_lock lock(mu_);
  next_id_ = id + 1;
  collections_[schema.name] = std::move(c);
  return Status::Ok();
}

namespace {

// Every item's cluster set to its nearest of C k-means centroids of the items (k-means++
// seeding, trained on a sample of at most 256 points per centroid).
Result<std::vector<ItemRecord>> WithKMeansClusters(std::span<const ItemRecord> items,
                                                   uint32_t clusters) {
  if (items.size() < clusters) {
    return InvalidArgumentError("kmeans_clusters " + std::to_string(clusters) +
                                " needs at least that many items; got " +
                                std::to_string(items.size()));
  }
  const size_t dim = items[0].vector.size();
  std::vector<float> data;
  data.reserve(items.size() * dim);
  for (const ItemRecord& item : items)
    data.insert(data.end(), item.vector.begin(), item.vector.end());
  index::KMeansOptions ko;
  ko.k = clusters;
  ko.plus_plus_init = true;
  QV_ASSIGN_OR_RETURN(index::KMeansResult km, index::TrainKMeans(data, dim, ko));
  std::vector<uint32_t> labels(items.size());
  index::AssignNearest(data.data(), items.size(), km.centroids.data(), clusters, dim, labels.data(),
                       nullptr, 0);
  std::vector<ItemRecord> out(items.begin(), items.end());
  for (size_t i = 0; i < out.size(); ++i) out[i].cluster = labels[i];
  return out;
}

}  // namespace

Result<CollectionInfo> Engine::BulkLoad(const CollectionSchema& schema_in,
                                        std::span<const ItemRecord> items_in,
                                        const BulkLoadOptions& options) {
  CollectionSchema schema = schema_in;
  std::span<const ItemRecord> items = items_in;
  std::vector<ItemRecord> clustered;
  auto progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (options.progress) options.progress(phase, done, total);
  };
  if (options.kmeans_clusters > 0) {
    if (schema.clusters != 0 && schema.clusters != options.kmeans_clusters) {
      return InvalidArgumentError("the schema's clusters (" + std::to_string(schema.clusters) +
                                  ") and kmeans_clusters (" +
                                  std::to_string(options.kmeans_clusters) + ") disagree");
    }
    // Validated first: k-means needs vectors of the schema's dimension, without NaN.
    schema.clusters = 0;
    QV_RETURN_IF_ERROR(ValidateItems(schema, items));
    progress("kmeans", 0, items.size());
    QV_ASSIGN_OR_RETURN(clustered, WithKMeansClusters(items, options.kmeans_clusters));
    progress("kmeans", items.size(), items.size());
    schema.clusters = options.kmeans_clusters;
    items = clustered;
  }
  QV_RETURN_IF_ERROR(ValidateSchema(schema));
  QV_RETURN_IF_ERROR(ValidateItems(schema, items));
  if (items.size() < MinFirstBatch(schema)) {
    return FailedPreconditionError("an IVF-PQ collection needs at least " +
                                   std::to_string(MinFirstBatch(schema)) + " items to train; got " +
                                   std::to_string(items.size()));
  }
  std::lock_guard ddl(ddl_mu_);
  QV_ASSIGN_OR_RETURN(const uint32_t id, NextIdFor(schema.name));
  // Records of an earlier bulk load of this id that died before it was recorded.
  storage::WriteBatch clean;
  clean.DropCollection(id);
  QV_RETURN_IF_ERROR(store_->Write(clean));
  std::error_code ec;
  fs::remove_all(SnapshotDir(id), ec);

  std::vector<uint32_t> order(items.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return items[a].id < items[b].id; });
  size_t next = 0;
  const uint64_t n = items.size();
  const size_t step = std::max<size_t>(1, n / 100);
  progress("store", 0, n);
  QV_RETURN_IF_ERROR(store_
                         ->IngestItems(id,
                                       [&](ItemRecord* out) -> Result<bool> {
                                         if (next == order.size()) return false;
                                         *out = items[order[next++]];
                                         if (next % step == 0 && next < n)
                                           progress("store", next, n);
                                         return true;
                                       })
                         .status());
  progress("store", n, n);

  auto c = std::make_shared<Collection>(id, schema);
  QV_ASSIGN_OR_RETURN(std::shared_ptr<Partitions> created, Partitions::Create(schema));
  c->set_parts(created);
  // IVF-PQ: one Add for the whole set, which it trains on. Else in about 1% parts (at least
  // 10,000 items), each built on all the index's threads, so that the build can say how far it
  // is.
  progress("index", 0, n);
  const size_t part = schema.index.type == IndexSpec::Type::kIvfPq
                          ? std::max<size_t>(1, n)
                          : std::max<size_t>(10000, n / 100);
  for (size_t at = 0; at < n; at += part) {
    QV_RETURN_IF_ERROR(c->parts()->Add(items.subspan(at, std::min<size_t>(part, n - at))));
    progress("index", std::min<size_t>(n, at + part), n);
  }
  constexpr uint64_t kBulkOp = 1;
  fs::create_directories(SnapshotDir(id), ec);
  if (ec) return InternalError("cannot create " + SnapshotDir(id) + ": " + ec.message());
  progress("snapshot", 0, 1);
  QV_RETURN_IF_ERROR(WriteSnapshot(*c->parts(), SnapshotDir(id), kBulkOp));
  progress("snapshot", 1, 1);
  storage::WriteBatch batch;
  batch.PutOp(id, kBulkOp, storage::OpRecord{});
  batch.PutSchema(id, schema);
  batch.PutNextCollectionId(id + 1);
  QV_RETURN_IF_ERROR(store_->Write(batch));
  QV_RETURN_IF_ERROR(store_->Flush());
  c->op_seq = kBulkOp;
  c->snapshot_seq = kBulkOp;
  std::unique_lock lock(mu_);
  next_id_ = id + 1;
  collections_[schema.name] = c;
  return Describe(*c);
}

Status Engine::DropCollection(const std::string& name) {
  std::lock_guard ddl(ddl_mu_);
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  std::lock_guard snap(c->snapshot_mu);
  std::lock_guard write(c->write_mu);
  storage::WriteBatch batch;
  batch.DropCollection(c->id());
  QV_RETURN_IF_ERROR(store_->Write(batch));
  c->dropped = true;
  {
    std::unique_lock lock(mu_);
    collections_.erase(name);
  }
  std::error_code ec;
  fs::remove_all(SnapshotDir(c->id()), ec);
  return Status::Ok();
}

std::vector<CollectionInfo> Engine::ListCollections() const {
  std::vector<std::shared_ptr<Collection>> all;
  {
    std::shared_lock lock(mu_);
    for (const auto& [name, c] : collections_) all.push_back(c);
  }
  std::vector<CollectionInfo> out;
  out.reserve(all.size());
  for (const auto& c : all) out.push_back(Describe(*c));
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.schema.name < b.schema.name; });
  return out;
}

Result<CollectionSchema> Engine::GetSchema(const std::string& name) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  return c->schema();
}

Result<CollectionInfo> Engine::DescribeCollection(const std::string& name) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  return Describe(*c);
}

namespace {

// A write applied from the cluster's write log: stored with its position, and not waiting for
// the disk. The log keeps the write durably; a power cut that takes the store's unsynced tail
// takes the position with it, and the node replays that part of the log. (Snapshots sync the
// store first: an index snapshot never covers writes the store could lose.)
void AtLogPosition(storage::WriteBatch& batch, uint32_t collection_id, LogPosition at) {
  batch.PutLogPosition(collection_id, at.shard, at.seq);
  batch.set_sync(false);
}

Status FirstBatchTooSmall(const std::string& name, const CollectionSchema& schema, size_t got) {
  return FailedPreconditionError(
      "collection '" + name + "' is IVF-PQ and trains on its first batch, which needs at least " +
      std::to_string(MinFirstBatch(schema)) + " items (got " + std::to_string(got) +
      "); send a larger first batch or build the collection in bulk");
}

Status CheckIdsOnce(std::span<const uint64_t> ids) {
  std::unordered_set<uint64_t> seen;
  for (uint64_t id : ids) {
    if (!seen.insert(id).second) {
      return InvalidArgumentError("item " + std::to_string(id) + " appears twice in the batch");
    }
  }
  return Status::Ok();
}

Status CheckUserRecords(const CollectionSchema& schema, std::span<const UserRecord> users) {
  std::unordered_set<uint64_t> seen;
  for (const UserRecord& u : users) {
    QV_RETURN_IF_ERROR(ValidateUser(schema, u));
    if (!seen.insert(u.id).second) {
      return InvalidArgumentError("user " + std::to_string(u.id) + " appears twice in the batch");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<WriteResult> Engine::Upsert(const std::string& name, std::span<const ItemRecord> items,
                                   std::optional<LogPosition> at) {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  QV_RETURN_IF_ERROR(ValidateItems(c->schema(), items));
  if (items.empty()) return WriteResult{};
  std::lock_guard write(c->write_mu);
  if (c->dropped) return NotFoundError("collection '" + name + "' was dropped");
  if (c->Applied(at)) return WriteResult{};
  if (!c->trained() && items.size() < MinFirstBatch(c->schema())) {
    return FirstBatchTooSmall(name, c->schema(), items.size());
  }
  const uint64_t seq = c->op_seq.load() + 1;
  storage::OpRecord op;
  storage::WriteBatch batch;
  for (const ItemRecord& item : items) {
    batch.PutItem(c->id(), item);
    op.upserted.push_back(item.id);
  }
  batch.PutOp(c->id(), seq, op);
  if (at) AtLogPosition(batch, c->id(), *at);
  QV_RETURN_IF_ERROR(store_->Write(batch));
  if (at) c->log_applied[at->shard] = at->seq;
  KillPoint("write.after_wal");
  Status s = c->parts()->Add(items);
  if (!s.ok()) {
    return InternalError("items of op " + std::to_string(seq) +
                         " are stored but the index update failed (" + s.ToString() +
                         "); they are indexed at the next restart");
  }
  c->op_seq = seq;
  if (!at) MarkAcknowledged();  // a log-applied write is the log's to keep (AtLogPosition)
  return WriteResult{seq, items.size()};
}

Status Engine::CheckUpsert(const std::string& name, std::span<const ItemRecord> items) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  QV_RETURN_IF_ERROR(ValidateItems(c->schema(), items));
  if (!items.empty() && !c->trained() && items.size() < MinFirstBatch(c->schema())) {
    return FirstBatchTooSmall(name, c->schema(), items.size());
  }
  return Status::Ok();
}

Status Engine::CheckDelete(const std::string& name, std::span<const uint64_t> ids) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  return CheckIdsOnce(ids);
}

Status Engine::CheckUsers(const std::string& name, std::span<const UserRecord> users) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  return CheckUserRecords(c->schema(), users);
}

Status Engine::CheckEvents(const std::string& name, std::span<const Event> events) const {
  return Find(name).status();
}

Result<WriteResult> Engine::Delete(const std::string& name, std::span<const uint64_t> ids,
                                   std::optional<LogPosition> at) {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  QV_RETURN_IF_ERROR(CheckIdsOnce(ids));
  std::lock_guard write(c->write_mu);
  if (c->dropped) return NotFoundError("collection '" + name + "' was dropped");
  if (c->Applied(at)) return WriteResult{};
  std::vector<std::optional<ItemRecord>> records;
  QV_RETURN_IF_ERROR(store_->GetItems(c->id(), ids, &records));
  storage::OpRecord op;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (records[i]) op.deleted.push_back(ids[i]);
  }
  storage::WriteBatch batch;
  if (at) AtLogPosition(batch, c->id(), *at);
  if (op.deleted.empty()) {
    if (at) {  // nothing to delete, but the message is applied
      QV_RETURN_IF_ERROR(store_->Write(batch));
      c->log_applied[at->shard] = at->seq;
    }
    return WriteResult{};
  }
  const uint64_t seq = c->op_seq.load() + 1;
  for (uint64_t id : op.deleted) batch.DeleteItem(c->id(), id);
  batch.PutOp(c->id(), seq, op);
  QV_RETURN_IF_ERROR(store_->Write(batch));
  if (at) c->log_applied[at->shard] = at->seq;
  KillPoint("write.after_wal");
  QV_RETURN_IF_ERROR(c->parts()->Remove(op.deleted));
  c->op_seq = seq;
  if (!at) MarkAcknowledged();
  return WriteResult{seq, op.deleted.size()};
}

Result<std::vector<std::optional<ItemRecord>>> Engine::Get(const std::string& name,
                                                           std::span<const uint64_t> ids) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  std::vector<std::optional<ItemRecord>> out;
  QV_RETURN_IF_ERROR(store_->GetItems(c->id(), ids, &out));
  return out;
}

Result<uint64_t> Engine::Count(const std::string& name, const Filter* filter) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  const std::shared_ptr<Partitions> parts = c->parts();
  if (filter == nullptr) return uint64_t(parts->size());
  QV_RETURN_IF_ERROR(ValidateFilter(*filter));
  return parts->CountMatching(*filter);
}

Result<Engine::ScrollPage> Engine::Scroll(const std::string& name, uint64_t cursor, size_t limit,
                                          const Filter* filter) const {
  if (limit == 0 || limit > 10000) {
    return InvalidArgumentError("scroll limit must be 1 to 10,000; got " + std::to_string(limit));
  }
  if (filter != nullptr) QV_RETURN_IF_ERROR(ValidateFilter(*filter));
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  const std::shared_ptr<Partitions> parts = c->parts();
  ScrollPage page;
  size_t read = 0;
  QV_RETURN_IF_ERROR(store_->ScanItemsFrom(c->id(), cursor, [&](ItemRecord&& item) {
    if (page.items.size() == limit || read == kScrollReadLimit) {
      page.next = item.id;  // the first record not taken starts the next page
      return false;
    }
    ++read;
    if (filter == nullptr || parts->Allows(*filter, item.id)) page.items.push_back(std::move(item));
    return true;
  }));
  return page;
}

Status Engine::PutUsers(const std::string& name, std::span<const UserRecord> users,
                        std::optional<LogPosition> at) {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  QV_RETURN_IF_ERROR(CheckUserRecords(c->schema(), users));
  std::lock_guard write(c->write_mu);
  if (c->dropped) return NotFoundError("collection '" + name + "' was dropped");
  if (c->Applied(at)) return Status::Ok();
  storage::WriteBatch batch;
  storage::OpRecord op;
  for (const UserRecord& u : users) {
    batch.PutUser(c->id(), u);
    op.users.push_back(u.id);
  }
  return WriteUsers(*c, batch, op, at);
}

Status Engine::WriteUsers(Collection& c, storage::WriteBatch& batch, const storage::OpRecord& op,
                          std::optional<LogPosition> at) {
  // In the op log too (nothing for the index to replay): plugins' incremental runs learn
  // which users changed from it.
  const uint64_t seq = c.op_seq.load() + 1;
  if (!op.users.empty()) batch.PutOp(c.id(), seq, op);
  if (at) AtLogPosition(batch, c.id(), *at);
  QV_RETURN_IF_ERROR(store_->Write(batch));
  if (at) c.log_applied[at->shard] = at->seq;
  if (!op.users.empty()) c.op_seq = seq;
  if (!at && !op.users.empty()) MarkAcknowledged();
  return Status::Ok();
}

Result<std::optional<UserRecord>> Engine::GetUser(const std::string& name, uint64_t id) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  return store_->GetUser(c->id(), id);
}

Status Engine::AddEvents(const std::string& name, std::span<const Event> events,
                         std::optional<LogPosition> at) {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  std::map<uint64_t, std::vector<storage::Interaction>> by_user;
  for (const Event& e : events) by_user[e.user].push_back({e.item, e.timestamp});
  std::lock_guard write(c->write_mu);
  if (c->dropped) return NotFoundError("collection '" + name + "' was dropped");
  if (c->Applied(at)) return Status::Ok();
  storage::WriteBatch batch;
  storage::OpRecord op;
  for (auto& [uid, fresh] : by_user) {
    QV_ASSIGN_OR_RETURN(std::optional<UserRecord> user, store_->GetUser(c->id(), uid));
    if (!user) user = UserRecord{uid, {}, {}};
    // Newest first; events with equal timestamps keep their request order, latest first.
    std::reverse(fresh.begin(), fresh.end());
    std::stable_sort(fresh.begin(), fresh.end(),
                     [](const auto& a, const auto& b) { return a.timestamp > b.timestamp; });
    std::vector<storage::Interaction> merged;
    merged.reserve(fresh.size() + user->history.size());
    std::merge(fresh.begin(), fresh.end(), user->history.begin(), user->history.end(),
               std::back_inserter(merged),
               [](const auto& a, const auto& b) { return a.timestamp > b.timestamp; });
    if (merged.size() > c->schema().max_history) merged.resize(c->schema().max_history);
    user->history = std::move(merged);
    batch.PutUser(c->id(), *user);
    op.users.push_back(uid);
  }
  return WriteUsers(*c, batch, op, at);
}

Status Engine::SkipLogPosition(const std::string& name, LogPosition at) {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  std::lock_guard write(c->write_mu);
  if (c->dropped) return NotFoundError("collection '" + name + "' was dropped");
  if (c->Applied(at)) return Status::Ok();
  storage::WriteBatch batch;
  AtLogPosition(batch, c->id(), at);
  QV_RETURN_IF_ERROR(store_->Write(batch));
  c->log_applied[at.shard] = at.seq;
  return Status::Ok();
}

Result<std::map<uint32_t, uint64_t>> Engine::LogPositions(const std::string& name) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  std::lock_guard write(c->write_mu);
  return c->log_applied;
}

namespace {

// fsyncs a file or directory.
Status SyncPath(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return InternalError("cannot fsync " + path + ": " + why);
  }
  ::close(fd);
  return Status::Ok();
}

constexpr const char* kExportRecords = "records";
constexpr const char* kExportIndex = "index";

}  // namespace

Result<Engine::ExportInfo> Engine::ExportCollection(
    const std::string& name, const std::string& out_dir,
    const std::function<bool(const ItemRecord&)>& keep_item) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  std::error_code ec;
  if (fs::exists(out_dir, ec)) return AlreadyExistsError(out_dir + " exists");
  fs::create_directories(out_dir, ec);
  if (ec) return InternalError("cannot create " + out_dir + ": " + ec.message());
  ExportInfo info;
  std::shared_ptr<const storage::StoreView> view;
  {
    // The newest snapshot stays while its files are linked; the op log after it is in the view.
    std::lock_guard snap(c->snapshot_mu);
    {
      std::lock_guard write(c->write_mu);
      if (c->dropped) return NotFoundError("collection '" + name + "' was dropped");
      view = store_->Pin();
      info.op_seq = c->op_seq.load();
      info.log_positions = c->log_applied;
    }
    const uint64_t snapshot = c->snapshot_seq.load();
    const fs::path from = fs::path(SnapshotDir(c->id())) / SnapshotName(snapshot);
    if (snapshot != 0 && !keep_item && fs::is_directory(from, ec)) {
      const fs::path to = fs::path(out_dir) / kExportIndex / SnapshotName(snapshot);
      for (const auto& e : fs::recursive_directory_iterator(from, ec)) {
        const fs::path rel = fs::relative(e.path(), from, ec);
        if (e.is_directory()) {
          fs::create_directories(to / rel, ec);
        } else {
          fs::create_directories((to / rel).parent_path(), ec);
          fs::create_hard_link(e.path(), to / rel, ec);
        }
        if (ec) {
          return InternalError("cannot link " + e.path().string() + " into " + out_dir + ": " +
                               ec.message());
        }
        if (!e.is_directory())
          info.files.push_back((fs::path(kExportIndex) / SnapshotName(snapshot) / rel).string());
      }
      if (ec) return InternalError("cannot list " + from.string() + ": " + ec.message());
      info.snapshot_seq = snapshot;
    }
  }
  QV_RETURN_IF_ERROR(store_
                         ->ExportCollection(c->id(), *view,
                                            (fs::path(out_dir) / kExportRecords).string(),
                                            keep_item)
                         .status());
  info.files.insert(info.files.begin(), kExportRecords);
  return info;
}

Status Engine::ImportCollection(const std::string& name, const std::string& dir,
                                const ImportOptions& options) {
  std::error_code ec;
  const std::string records = (fs::path(dir) / kExportRecords).string();
  if (!fs::is_regular_file(records, ec)) {
    return InvalidArgumentError(dir + " holds no collection export (no " + records + ")");
  }
  std::lock_guard ddl(ddl_mu_);
  std::shared_ptr<Collection> old;
  uint32_t id = 0;
  {
    std::shared_lock lock(mu_);
    if (auto it = collections_.find(name); it != collections_.end()) old = it->second;
    id = next_id_;
  }
  // Records and snapshots left under this id by a load or an import that died part-way.
  storage::WriteBatch clean;
  clean.DropCollection(id);
  QV_RETURN_IF_ERROR(store_->Write(clean));
  fs::remove_all(SnapshotDir(id), ec);
  auto abandon = [&](Status why) {
    storage::WriteBatch undo;
    undo.DropCollection(id);
    store_->Write(undo).IgnoreError();  // what is left is cleaned by the next user of the id
    std::error_code ignored;
    fs::remove_all(SnapshotDir(id), ignored);
    return why;
  };

  auto schema = store_->ImportCollection(id, records);
  if (!schema.ok()) return abandon(schema.status());
  if (options.rename) schema->name = name;
  if (schema->name != name) {
    return abandon(InvalidArgumentError("the export in " + dir + " is of collection '" +
                                        schema->name + "', not '" + name + "'"));
  }
  if (old && !(old->schema() == *schema)) {
    return abandon(FailedPreconditionError(
        "collection '" + name + "' here has another schema than the copy's; drop it first"));
  }
  // The index snapshot, moved into place (each file synced: it came over the network).
  for (const auto& e : fs::directory_iterator(fs::path(dir) / kExportIndex, ec)) {
    const std::string to = SnapshotDir(id) + "/" + e.path().filename().string();
    for (const auto& f : fs::recursive_directory_iterator(e.path(), ec)) {
      if (f.is_regular_file()) {
        if (Status s = SyncPath(f.path().string(), false); !s.ok()) return abandon(s);
      }
    }
    fs::create_directories(SnapshotDir(id), ec);
    if (!ec) fs::rename(e.path(), to, ec);
    if (ec)
      return abandon(
          InternalError("cannot move the index snapshot into " + to + ": " + ec.message()));
    if (Status s = SyncPath(SnapshotDir(id), true); !s.ok()) return abandon(s);
  }
  auto loaded = LoadCollection(id, *schema, std::nullopt);
  if (!loaded.ok()) return abandon(loaded.status());
  std::shared_ptr<Collection> c = std::move(*loaded);

  // The switch: one batch drops the old collection and records the new one.
  std::unique_lock<std::mutex> old_snap, old_write;
  if (old) {
    old_snap = std::unique_lock(old->snapshot_mu);
    old_write = std::unique_lock(old->write_mu);
  }
  storage::WriteBatch batch;
  if (old) batch.DropCollection(old->id());
  if (options.at) batch.PutLogPosition(id, options.at->shard, options.at->seq);
  batch.PutSchema(id, *schema);
  batch.PutNextCollectionId(id + 1);
  if (Status s = store_->Write(batch); !s.ok()) return abandon(s);
  if (options.at) {
    std::lock_guard write(c->write_mu);
    c->log_applied[options.at->shard] = options.at->seq;
  }
  if (old) old->dropped = true;
  {
    std::unique_lock lock(mu_);
    next_id_ = id + 1;
    collections_[name] = std::move(c);
  }
  if (old) fs::remove_all(SnapshotDir(old->id()), ec);
  return Status::Ok();
}

Result<std::vector<Hit>> Engine::Search(const std::string& name, std::span<const float> query,
                                        const index::SearchParams& params) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  if (query.size() != c->schema().dim) {
    return InvalidArgumentError("query has " + std::to_string(query.size()) +
                                " values; collection '" + name + "' has dim " +
                                std::to_string(c->schema().dim));
  }
  std::vector<index::Neighbor> neighbors;
  QV_RETURN_IF_ERROR(c->parts()->global().Search(query, params, &neighbors));
  std::vector<Hit> hits;
  hits.reserve(neighbors.size());
  for (const auto& n : neighbors)
    hits.push_back({n.id, index::DistanceToScore(c->schema().metric, n.distance)});
  return hits;
}

Result<PluginRun> Engine::RunPlugin(const std::string& name, const std::string& plugin,
                                    const std::string& config_json, bool incremental,
                                    const ItemSearch& search) {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  return RunPluginOn(
      *store_, c->id(), c->schema(), *c->parts(), plugin, config_json, incremental,
      [&](storage::WriteBatch& batch) -> Status {
        std::lock_guard write(c->write_mu);  // not into a collection dropped meanwhile
        if (c->dropped) return NotFoundError("collection '" + name + "' was dropped");
        KillPoint("plugin.commit");
        return store_->Write(batch);
      },
      search);
}

Result<std::optional<std::vector<Hit>>> Engine::GetList(const std::string& name,
                                                        std::string_view kind, uint64_t key) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  if (!storage::ValidListKind(kind)) {
    return InvalidArgumentError("list kind '" + std::string(kind) +
                                "' is not 1 to 64 characters of [a-z0-9_]");
  }
  return store_->GetList(c->id(), kind, key);
}

Result<std::vector<storage::ListInfo>> Engine::ListInfos(const std::string& name) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  return store_->ListInfos(c->id());
}

Result<QueryResult> Engine::Query(const std::string& name, const QuerySpec& query) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  const std::shared_ptr<Partitions> parts = c->parts();  // one index set for the whole query
  QV_RETURN_IF_ERROR(ValidateQuery(query, uint32_t(parts->global().dim()), c->schema().metric,
                                   uint32_t(parts->clusters()), uint32_t(parts->topics()),
                                   c->schema().shards));
  if (query.channels) return ops::RunChannels(*store_, c->id(), *parts, c->schema().metric, query);
  if (query.quota && query.quota->user) {
    // p "history" or "learned": the weights become the query's given p.
    std::vector<double> w;
    if (query.quota->learned) {
      QV_ASSIGN_OR_RETURN(w, LearnedIntent(name, *query.quota->user));
    } else {
      QV_ASSIGN_OR_RETURN(w, HistoryIntent(name, *query.quota->user, query.quota->half_life));
      QV_RETURN_IF_ERROR(CheckHistoryIntent(w, *query.quota->user));
    }
    QuerySpec given = query;
    given.quota->p.assign(w.begin(), w.end());
    given.quota->user.reset();
    given.quota->half_life = 0;
    given.quota->learned = false;
    return RunQuery(*parts, c->schema().metric, given);
  }
  return RunQuery(*parts, c->schema().metric, query);
}

Result<std::vector<double>> Engine::HistoryIntent(const std::string& name, uint64_t user,
                                                  int64_t half_life) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  const uint32_t clusters = c->schema().clusters;
  if (clusters == 0) return FailedPreconditionError("collection '" + name + "' has no clusters");
  QV_ASSIGN_OR_RETURN(std::optional<UserRecord> u, store_->GetUser(c->id(), user));
  if (!u) {
    return NotFoundError("no user " + std::to_string(user) + " in collection '" + name + "'");
  }
  std::vector<double> w(clusters, 0.0);
  if (u->history.empty()) return w;
  std::vector<uint64_t> ids;
  ids.reserve(u->history.size());
  int64_t newest = u->history.front().timestamp;
  for (const auto& e : u->history) {
    ids.push_back(e.item);
    newest = std::max(newest, e.timestamp);
  }
  std::vector<std::optional<ItemRecord>> items;
  QV_RETURN_IF_ERROR(store_->GetItems(c->id(), ids, &items));
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i] || items[i]->cluster >= clusters) continue;  // deleted, or on another shard
    const double age = double(newest - u->history[i].timestamp);
    w[items[i]->cluster] += half_life > 0 ? std::exp2(-age / double(half_life)) : 1.0;
  }
  return w;
}

Result<std::vector<double>> Engine::LearnedIntent(const std::string& name, uint64_t user) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  const uint32_t clusters = c->schema().clusters;
  if (clusters == 0) return FailedPreconditionError("collection '" + name + "' has no clusters");
  QV_ASSIGN_OR_RETURN(std::optional<std::vector<Hit>> list,
                      store_->GetList(c->id(), kLearnedIntentKind, user));
  if (!list) {
    return NotFoundError("quota p \"learned\": no learned intent for user " + std::to_string(user) +
                         " in collection '" + name +
                         "' (the intent plugin writes one for every user with an event on an "
                         "item: POST /v1/collections/" +
                         name + "/plugins/intent/run)");
  }
  std::vector<double> p(clusters, 0.0);
  bool positive = false;
  for (const Hit& h : *list) {
    if (h.id >= clusters || !std::isfinite(h.score) || h.score < 0) {
      return FailedPreconditionError(
          "quota p \"learned\": user " + std::to_string(user) + "'s intent list names cluster " +
          std::to_string(h.id) + " with " + std::to_string(h.score) + "; the collection has " +
          std::to_string(clusters) + " clusters: run the intent plugin again");
    }
    p[h.id] = h.score;
    positive = positive || h.score > 0;
  }
  if (!positive) {
    return FailedPreconditionError("quota p \"learned\": user " + std::to_string(user) +
                                   "'s intent list is empty; use p \"auto\" or a fallback");
  }
  return p;
}

Result<std::vector<double>> Engine::ClusterSimilarity(
    const std::string& name, const std::vector<std::vector<float>>& vectors) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  const std::shared_ptr<Partitions> parts = c->parts();
  if (parts->clusters() == 0) {
    return FailedPreconditionError("collection '" + name + "' has no clusters");
  }
  QuerySpec q;
  q.vectors = vectors;
  QV_RETURN_IF_ERROR(ValidateQuery(q, uint32_t(parts->global().dim()), c->schema().metric,
                                   uint32_t(parts->clusters()), uint32_t(parts->topics())));
  return engine::ClusterSimilarity(*parts, c->schema().metric, vectors);
}

Status Engine::Snapshot(const std::string& name) {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  std::lock_guard snap(c->snapshot_mu);
  // Replaced and deleted items linger as tombstones in HNSW graphs: when they outnumber the
  // items, the indexes are rebuilt from the stored items while writes and searches go on, then
  // brought up to date from the op log and swapped in (writes wait only for that catch-up;
  // searches that started earlier finish on the old indexes). The op log is trimmed only here,
  // under snapshot_mu, so the ops after `from` are all there.
  bool compact = false;
  uint64_t from = 0;
  {
    std::lock_guard write(c->write_mu);
    if (c->dropped) return NotFoundError("collection '" + name + "' was dropped");
    compact = c->parts()->NeedsCompaction();
    from = c->op_seq.load();
  }
  std::shared_ptr<Partitions> fresh;
  const auto started = std::chrono::steady_clock::now();
  auto ms = [&] {
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count());
  };
  if (compact) {
    const size_t slots = c->parts()->global().slots(), items = c->parts()->size();
    log::Info("compaction", {{"collection", name}, {"items", items}, {"slots", slots}});
    QV_ASSIGN_OR_RETURN(fresh, BuildFromStore(*store_, *c));
    log::Info("compaction_built", {{"collection", name}, {"ms", ms()}});
  }
  // Writes to this collection wait while its indexes are saved, so that the global index, the
  // cluster indexes and the cluster map are one consistent state covering exactly op seq.
  std::lock_guard write(c->write_mu);
  if (c->dropped) return NotFoundError("collection '" + name + "' was dropped");
  if (compact) {
    QV_RETURN_IF_ERROR(Replay(*store_, c->id(), *fresh, from));
    c->set_parts(std::move(fresh));
  }
  const uint64_t seq = c->op_seq.load();
  if (!compact && seq == c->snapshot_seq.load() && seq != 0) return Status::Ok();
  // Writes applied from the cluster's log are not synced one by one (AtLogPosition).
  QV_RETURN_IF_ERROR(store_->SyncWal());
  // Room for the snapshot (about the indexes' size) beyond the store's reserve.
  QV_RETURN_IF_ERROR(store_->CheckFreeSpace(c->parts()->memory_bytes()));
  const std::string dir = SnapshotDir(c->id());
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return InternalError("cannot create " + dir + ": " + ec.message());
  QV_RETURN_IF_ERROR(WriteSnapshot(*c->parts(), dir, seq));
  c->snapshot_seq = seq;
  KillPoint("snapshot.renamed");
  auto snapshots = ListSnapshots(dir);
  const size_t kept = std::max<size_t>(1, options_.snapshots_kept);
  for (size_t i = kept; i < snapshots.size(); ++i) fs::remove_all(snapshots[i].second, ec);
  const uint64_t oldest = snapshots[std::min(kept, snapshots.size()) - 1].first;
  QV_RETURN_IF_ERROR(store_->TrimOps(c->id(), oldest));
  log::Info("snapshot_written", {{"collection", name},
                                 {"op_seq", seq},
                                 {"items", c->parts()->size()},
                                 {"compacted", compact},
                                 {"ms", ms()}});
  return Status::Ok();
}

Status Engine::SnapshotAll() {
  for (const CollectionInfo& info : ListCollections()) {
    Status s = Snapshot(info.schema.name);
    if (!s.ok() && s.code() != StatusCode::kNotFound) return s;
  }
  return Status::Ok();
}

Status Engine::CheckConsistency(const std::string& name) const {
  QV_ASSIGN_OR_RETURN(auto c, Find(name));
  uint64_t stored = 0;
  const CollectionSchema& s = c->schema();
  const index::VectorIndex& global = c->parts()->global();
  std::vector<float> indexed(s.dim);
  QV_RETURN_IF_ERROR(store_->ScanItems(c->id(), [&](ItemRecord&& item) -> Status {
    ++stored;
    if (!c->parts()->Contains(item.id)) {
      return DataLossError("item " + std::to_string(item.id) + " is stored but not indexed");
    }
    // Where the index keeps vectors exactly, its copy must be the stored one, bit for bit.
    if (global.exact_vectors() && item.vector.size() == s.dim) {
      QV_RETURN_IF_ERROR(global.GetVector(item.id, indexed.data()));
      if (std::memcmp(indexed.data(), item.vector.data(), s.dim * sizeof(float)) != 0) {
        return DataLossError("item " + std::to_string(item.id) +
                             ": the index holds another vector than the store");
      }
    }
    if (c->parts()->clusters() > 0 && (c->parts()->ClusterOf(item.id) != int64_t(item.cluster) ||
                                       !c->parts()->cluster(item.cluster).Contains(item.id))) {
      return DataLossError("item " + std::to_string(item.id) + " is not in its cluster's index");
    }
    return Status::Ok();
  }));
  uint64_t in_clusters = 0;
  for (size_t k = 0; k < c->parts()->clusters(); ++k) in_clusters += c->parts()->cluster(k).size();
  if (c->parts()->clusters() > 0 && in_clusters != stored) {
    return DataLossError("cluster indexes hold " + std::to_string(in_clusters) + " items; " +
                         std::to_string(stored) + " are stored");
  }
  if (stored != c->parts()->size()) {
    return DataLossError("index holds " + std::to_string(c->parts()->size()) + " items; " +
                         std::to_string(stored) + " are stored");
  }
  return Status::Ok();
}

}  // namespace quiver::engine
