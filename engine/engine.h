// Engine: collections over one data version directory.
//
// A version directory holds `db/` (the RocksDB store: schemas, items, users, op log) and
// `snapshots/<collection id>/<op seq>.qvi` (index snapshots). Every write is a RocksDB batch
// that also appends an op-log record naming the ids it touched, under the collection's op
// sequence; it is acknowledged once durable (StoreOptions::durability) and applied to the
// in-memory index. A snapshot records the op sequence it covers; Open loads the newest snapshot
// that passes its checksums (setting aside any that fail, as <name>.corrupt), replays the op
// log after it by re-reading the touched ids, and rebuilds from the stored items when no
// snapshot can be used.
//
// Thread-safety: every method may be called concurrently. Writes to one collection are
// applied in order (one at a time); searches run concurrently with everything.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "base/status.h"
#include "engine/plugin_host.h"
#include "engine/query.h"
#include "engine/schema.h"
#include "index/vector_index.h"
#include "storage/store.h"

namespace quiver::engine {

struct EngineOptions {
  storage::StoreOptions store;
  // Snapshots kept per collection (the newest first); the op log is kept from the oldest.
  size_t snapshots_kept = 2;
};

// Cluster mode: where a write comes from in the replicated write log (cluster/log.h): its
// shard's subject and its stream sequence. A write given a position is stored together with it
// (one atomic batch), and a position at or below the one already applied for the shard makes
// the write a no-op: replaying the log after a crash applies each message exactly once.
struct LogPosition {
  uint32_t shard = 0;
  uint64_t seq = 0;
};

using ::quiver::CollectionInfo;
using ::quiver::Event;
using ::quiver::Hit;
using ::quiver::WriteResult;

class Collection;

class Engine {
 public:
  // Opens the version directory (creating it if options allow) and recovers every collection.
  static Result<std::unique_ptr<Engine>> Open(const std::string& dir, const EngineOptions& options);
  ~Engine();

  const std::string& dir() const { return dir_; }

  // kAlreadyExists if the name is taken; kInvalidArgument for a bad schema.
  Status CreateCollection(const CollectionSchema& schema);
  // Creates a collection from a whole set of items at once: the items (in any order; validated
  // as a whole) are written to SST files and ingested in one step, the index is built and
  // snapshotted, and only then is the collection recorded, so a build that dies part-way
  // leaves no collection behind. kAlreadyExists if the name is taken.
  struct BulkLoadOptions {
    // C > 0: every item's cluster is set to its nearest of C k-means centroids of the items
    // (k-means++ seeding), and the collection gets C clusters; the schema's clusters must be 0
    // or C, and there must be at least C items.
    uint32_t kmeans_clusters = 0;
    // Told as the load goes: its phase ("kmeans" (start and end), "store" (the items' SST
    // files), "index" (in about 1% steps), "snapshot"), and how much of it is done out of
    // `total` (items; 0 and 1 for the snapshot). Called on the loading thread.
    std::function<void(std::string_view phase, uint64_t done, uint64_t total)> progress;
  };
  Result<CollectionInfo> BulkLoad(const CollectionSchema& schema, std::span<const ItemRecord> items,
                                  const BulkLoadOptions& options);
  Result<CollectionInfo> BulkLoad(const CollectionSchema& schema,
                                  std::span<const ItemRecord> items) {
    return BulkLoad(schema, items, BulkLoadOptions{});
  }
  // kNotFound for an unknown collection. Removes its records and snapshots.
  Status DropCollection(const std::string& name);
  std::vector<CollectionInfo> ListCollections() const;
  Result<CollectionInfo> DescribeCollection(const std::string& name) const;
  // The collection's schema alone (cheap: no index statistics).
  Result<CollectionSchema> GetSchema(const std::string& name) const;

  // All or nothing: the batch is validated first (ValidateItems), then written and indexed.
  // `at`: the write's place in the cluster's write log (LogPosition).
  Result<WriteResult> Upsert(const std::string& name, std::span<const ItemRecord> items,
                             std::optional<LogPosition> at = std::nullopt);
  // Deletes the ids that exist (absent ids are not an error; `changed` counts the deleted).
  Result<WriteResult> Delete(const std::string& name, std::span<const uint64_t> ids,
                             std::optional<LogPosition> at = std::nullopt);
  // out[i] is ids[i]'s item, or nullopt.
  Result<std::vector<std::optional<ItemRecord>>> Get(const std::string& name,
                                                     std::span<const uint64_t> ids) const;
  // How many items the collection holds, or (filter set) how many pass the filter.
  Result<uint64_t> Count(const std::string& name, const Filter* filter) const;
  // One page of a scroll (net::ScrollCall): up to `limit` items passing `filter` (nullptr:
  // all) in id order from the id `cursor`, and the next page's cursor (none once the items
  // are exhausted). A page reads at most kScrollReadLimit records, so that a filter passing
  // few items never makes one request read a whole collection: such a page may hold fewer
  // than `limit` items (or none) and still have a next cursor.
  struct ScrollPage {
    std::vector<ItemRecord> items;
    std::optional<uint64_t> next;
  };
  static constexpr size_t kScrollReadLimit = 100000;
  Result<ScrollPage> Scroll(const std::string& name, uint64_t cursor, size_t limit,
                            const Filter* filter) const;

  // Creates or replaces users (vector and history as given).
  Status PutUsers(const std::string& name, std::span<const UserRecord> users,
                  std::optional<LogPosition> at = std::nullopt);
  Result<std::optional<UserRecord>> GetUser(const std::string& name, uint64_t id) const;
  // Prepends events to their users' histories (newest first, trimmed to max_history); a user
  // seen for the first time is created without a vector.
  Status AddEvents(const std::string& name, std::span<const Event> events,
                   std::optional<LogPosition> at = std::nullopt);

  // The checks each write makes before it writes anything (Upsert, Delete, PutUsers and
  // AddEvents run them first). Cluster mode runs them before a write goes to the write log.
  Status CheckUpsert(const std::string& name, std::span<const ItemRecord> items) const;
  Status CheckDelete(const std::string& name, std::span<const uint64_t> ids) const;
  Status CheckUsers(const std::string& name, std::span<const UserRecord> users) const;
  Status CheckEvents(const std::string& name, std::span<const Event> events) const;

  // Cluster mode: the write at `at` was refused for good (bad input, a collection that cannot
  // take it): records the position alone, so that it is not tried again.
  Status SkipLogPosition(const std::string& name, LogPosition at);
  // Cluster mode: the last stream sequence applied, by shard (empty: none yet).
  Result<std::map<uint32_t, uint64_t>> LogPositions(const std::string& name) const;

  // Cluster mode: a copy of a collection for a new replica (docs/cluster.md, "Bootstrap").
  // ExportCollection writes into `out_dir` (created; it must not exist) the collection's
  // records as of one moment (storage::Store::ExportCollection, file "records") and hard links
  // of its newest index snapshot ("index/<op>/..."), which that moment's op log continues;
  // writes wait only while the moment is taken. `files` lists the paths under out_dir.
  struct ExportInfo {
    uint64_t op_seq = 0;        // the collection's op sequence at that moment
    uint64_t snapshot_seq = 0;  // the op the index snapshot covers (0: none is included)
    std::map<uint32_t, uint64_t> log_positions;
    std::vector<std::string> files;
  };
  // `keep_item`, if set, leaves out the items it returns false for (a copy of some shards);
  // the copy then carries no index snapshot (the importer builds its index from the items).
  Result<ExportInfo> ExportCollection(
      const std::string& name, const std::string& out_dir,
      const std::function<bool(const ItemRecord&)>& keep_item = nullptr) const;
  // Replaces the collection `name` (or creates it) with the copy ExportCollection wrote into
  // `dir` (another engine's, moved here: the index files are moved, not copied). All or
  // nothing: the copy is recorded and loaded under a new collection id, and one batch then
  // drops the old collection and records the new one; a failure (or a crash) before that leaves
  // the old collection as it was. kInvalidArgument if the copy is of another collection;
  // kFailedPrecondition if the existing collection's schema differs from the copy's; kDataLoss
  // if the copy is damaged.
  struct ImportOptions {
    // The copy is of another collection and becomes `name` (cluster versions: a bulk build of
    // "movies" loaded as "movies@v2"). Without it, the copy must be of `name`.
    bool rename = false;
    // Recorded in the batch that makes the collection exist: the write-log position the copy
    // continues from (a crash never leaves the copy without it).
    std::optional<LogPosition> at;
  };
  Status ImportCollection(const std::string& name, const std::string& dir,
                          const ImportOptions& options);
  Status ImportCollection(const std::string& name, const std::string& dir) {
    return ImportCollection(name, dir, ImportOptions{});
  }

  // Nearest items to `query`; params as in index::SearchParams.
  Result<std::vector<Hit>> Search(const std::string& name, std::span<const float> query,
                                  const index::SearchParams& params) const;

  // Multi-vector and quota queries (engine/query.h, docs/queries.md).
  Result<QueryResult> Query(const std::string& name, const QuerySpec& query) const;
  // p "learned" (docs/queries.md, "Learned intent"): the user's list of kind
  // kLearnedIntentKind as p over the clusters. kNotFound without one, kFailedPrecondition if it
  // names a cluster the collection lacks or has no positive value.
  Result<std::vector<double>> LearnedIntent(const std::string& name, uint64_t user) const;
  // p "history" (docs/queries.md, "Intent from history"): per cluster, the sum over the user's
  // stored events on this engine's items of that cluster of 2^(-(t_newest - t) / half_life)
  // (half_life 0: 1 each); not normalised. kNotFound for an unknown user,
  // kFailedPrecondition for a collection without clusters.
  Result<std::vector<double>> HistoryIntent(const std::string& name, uint64_t user,
                                            int64_t half_life) const;
  // Per cluster, the best similarity of `vectors` to its centroid (-inf: empty): a quota's p
  // "auto" before the softmax (engine::ClusterSimilarity). kInvalidArgument for vectors a
  // query would not take, kFailedPrecondition for a collection without clusters.
  Result<std::vector<double>> ClusterSimilarity(
      const std::string& name, const std::vector<std::vector<float>>& vectors) const;

  // Writes a snapshot of the collection's indexes covering its latest applied op (writes to the
  // collection wait meanwhile), then drops
  // older snapshots beyond snapshots_kept and the op log they no longer need.
  Status Snapshot(const std::string& name);
  Status SnapshotAll();

  // Runs a plugin (plugins/registry.h) over the collection and commits its lists
  // (engine/plugin_host.h); the collection keeps serving and taking writes meanwhile.
  // `search`: see RunPluginOn (cluster mode: the plugin's searches cover every shard).
  Result<PluginRun> RunPlugin(const std::string& name, const std::string& plugin,
                              const std::string& config_json, bool incremental,
                              const ItemSearch& search = {});
  // A neighbor list, or nullopt; the run records of the collection's list kinds.
  Result<std::optional<std::vector<Hit>>> GetList(const std::string& name, std::string_view kind,
                                                  uint64_t key) const;
  Result<std::vector<storage::ListInfo>> ListInfos(const std::string& name) const;

  // Checks that the index holds exactly the stored ids, each (where the index keeps vectors
  // exactly) with the stored vector (kDataLoss naming the first difference). Costs a scan of
  // the stored items.
  Status CheckConsistency(const std::string& name) const;

  // Why writes are refused ("" if they are not): storage::Store::WriteRefusal.
  std::string WriteRefusal() const { return store_->WriteRefusal(); }

 private:
  Engine(std::string dir, EngineOptions options, std::unique_ptr<storage::Store> store);
  Status RecoverAll();
  // Loads a recorded collection: its newest usable index snapshot and the op log after it, or
  // a rebuild from its stored items. `acked`: the op sequence ACKED says was acknowledged.
  Result<std::shared_ptr<Collection>> LoadCollection(uint32_t id, const CollectionSchema& schema,
                                                     std::optional<uint64_t> acked) const;
  Result<std::shared_ptr<Collection>> Find(const std::string& name) const;
  // The id a new collection of that name gets; kAlreadyExists if the name is taken.
  // REQUIRES: ddl_mu_ held.
  Result<uint32_t> NextIdFor(const std::string& name) const;
  std::string SnapshotDir(uint32_t collection_id) const;
  // With sync durability, at most once a second after an acknowledged write: records every
  // collection's op sequence in <dir>/ACKED (fsynced), the floor a later start checks the store
  // against (a write-ahead log cut short or removed loses ops without any damage to detect).
  void MarkAcknowledged();
  // Writes a user write's batch with its op (op.users; none: no op) at the next op sequence.
  // REQUIRES: c.write_mu held.
  Status WriteUsers(Collection& c, storage::WriteBatch& batch, const storage::OpRecord& op,
                    std::optional<LogPosition> at);

  const std::string dir_;
  const EngineOptions options_;
  std::unique_ptr<storage::Store> store_;

  std::mutex ddl_mu_;             // serialises create and drop; held during their I/O
  mutable std::shared_mutex mu_;  // guards collections_ and next_id_; not held during I/O
  std::unordered_map<std::string, std::shared_ptr<Collection>> collections_;
  uint32_t next_id_ = 1;

  std::mutex mark_mu_;                    // one ACKED write at a time
  std::atomic<int64_t> next_mark_ns_{0};  // steady-clock time of the next ACKED write
};

}  // namespace quiver::engine
