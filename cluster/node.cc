#include "cluster/node.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>
#include <utility>

#include "base/log.h"
#include "cluster/versions.h"
#include "engine/data_root.h"
#include "engine/engine.h"
#include "engine/plugin_host.h"
#include "plugins/registry.h"

namespace quiver::cluster {

namespace {

// The engine keeps one write-log position per collection: the stream's (engine::LogPosition's
// shard 0), however many shards the collection has.
constexpr uint32_t kShard = 0;

// A message the engine refused for a reason that replaying it would meet again (bad input that
// only the engine's state reveals, a collection that cannot take it): recorded and passed over
// by every node alike. Anything else (a full disk, an I/O error) is retried.
bool RefusedForGood(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kDataLoss:  // a message that does not decode
      return true;
    default:
      return false;
  }
}

// Applies the part of a write this node's shards own (`hosts`; nullptr: every shard). Items of
// other shards are deleted here (they moved away, or were never here: a no-op).
// `name`: the engine collection (a version of w.collection, cluster/versions.h).
Status Apply(engine::Engine& engine, const std::string& name, const LogWrite& w,
             engine::LogPosition at, const CollectionSchema& schema,
             const std::function<bool(uint32_t)>* hosts) {
  switch (w.kind) {
    case LogWrite::Kind::kUpsert: {
      if (hosts == nullptr || schema.shards <= 1) return engine.Upsert(name, w.items, at).status();
      std::vector<ItemRecord> here;
      std::vector<uint64_t> away;
      for (const ItemRecord& item : w.items) {
        if ((*hosts)(ItemShard(schema, item))) {
          here.push_back(item);
        } else {
          away.push_back(item.id);
        }
      }
      if (here.empty()) return engine.Delete(name, away, at).status();
      // The deletes first, without the position: replayed, they change nothing.
      if (!away.empty()) QV_RETURN_IF_ERROR(engine.Delete(name, away).status());
      return engine.Upsert(name, here, at).status();
    }
    case LogWrite::Kind::kDelete:
      return engine.Delete(name, w.ids, at).status();
    case LogWrite::Kind::kUsers:
      return engine.PutUsers(name, w.users, at);
    case LogWrite::Kind::kEvents:
      return engine.AddEvents(name, w.events, at);
    case LogWrite::Kind::kPlugin:
      break;  // run by the follower, which keeps the outcome
  }
  return InternalError("unknown write kind");
}

// Consumer names may not hold '.': the node id is checked, the collection escaped as streams are.
std::string ConsumerName(const std::string& node_id, const std::string& collection) {
  return "node_" + node_id + "_" + Log::StreamName(collection);
}

}  // namespace

// Applies one collection's log on its own thread.
class Follower {
 public:
  Follower(engine::DataRoot& root, Log& log, const NodeOptions& options, std::string collection,
           uint64_t applied, std::function<bool(uint32_t)> hosts)
      : root_(root),
        log_(log),
        options_(options),
        collection_(std::move(collection)),
        log_name_(LogName(collection_)),
        hosts_(std::move(hosts)) {
    state_.collection = collection_;
    state_.applied = applied;
    thread_ = std::thread([this] { Run(); });
  }
  ~Follower() {
    stop_ = true;
    cv_.notify_all();
    thread_.join();
  }
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

  FollowerState state() const {
    std::lock_guard lock(mu_);
    return state_;
  }

  // The newest stream sequence this node has seen acknowledged for the collection.
  uint64_t head() const { return head_.load(); }
  void NoteHead(uint64_t seq) {
    uint64_t h = head_.load();
    while (h < seq && !head_.compare_exchange_weak(h, seq)) {
    }
  }

  Status WaitApplied(uint64_t seq, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    if (cv_.wait_until(lock, deadline, [&] { return state_.applied >= seq || stop_; }) &&
        state_.applied >= seq) {
      return Status::Ok();
    }
    return Status(StatusCode::kDeadlineExceeded,
                  "collection '" + collection_ + "': this node has applied its write log up to " +
                      std::to_string(state_.applied) + ", not yet " + std::to_string(seq) +
                      (state_.last_error.empty() ? "" : " (" + state_.last_error + ")"));
  }

 private:
  void Run() {
    // A new replica starts from a peer's copy if one can be had, else from the log's start.
    if (Applied() == 0 && options_.fetch) {
      Status s = Bootstrap();
      if (!s.ok() && s.code() != StatusCode::kNotFound) Fail(s);
      Block(Status::Ok());
    }
    std::unique_ptr<LogReader> reader;
    auto next_bootstrap = std::chrono::steady_clock::now();
    while (!stop_) {
      if (!reader) {
        auto r = log_.Follow(log_name_, kAllShards, ConsumerName(options_.node_id, collection_),
                             Applied());
        if (!r.ok()) {
          Fail(r.status());
          if (r.status().code() == StatusCode::kFailedPrecondition) {
            Block(r.status());
            // The log cannot bring this node up to date: a peer's copy can.
            if (options_.fetch && std::chrono::steady_clock::now() >= next_bootstrap) {
              next_bootstrap = std::chrono::steady_clock::now() + options_.bootstrap_retry;
              Status b = Bootstrap();
              if (b.ok()) continue;
              Fail(b);
              Block(r.status());
            }
          }
          Pause(std::chrono::milliseconds(500));
          continue;
        }
        reader = std::move(*r);
        Block(Status::Ok());
      }
      auto entries = reader->Fetch(options_.fetch_batch, options_.fetch_wait);
      if (!entries.ok()) {
        Fail(entries.status());
        if (entries.status().code() == StatusCode::kFailedPrecondition) Block(entries.status());
        reader.reset();
        Pause(std::chrono::milliseconds(200));
        continue;
      }
      std::shared_ptr<engine::Engine> engine = root_.engine();
      if (entries->empty()) {
        // Idle: the position reached over other shards' messages is stored, so that a restart
        // does not read them again (nor find the log trimmed past a position never stored).
        if (skipped_ && engine->SkipLogPosition(collection_, {kShard, Applied()}).ok()) {
          skipped_ = false;
        }
        continue;
      }
      auto schema_or = engine->GetSchema(collection_);
      if (!schema_or.ok()) {
        Fail(schema_or.status());
        reader.reset();
        Pause(std::chrono::milliseconds(500));
        continue;
      }
      const CollectionSchema& schema = *schema_or;
      bool retry = false;
      for (const LogEntry& e : *entries) {
        if (e.shard != kAllShards && !hosts_(e.shard)) {  // another shard's: not held here
          Advance(e.seq);
          skipped_ = true;
          continue;
        }
        const engine::LogPosition at{kShard, e.seq};
        auto w = DecodeLogWrite(e.data);
        if (w.ok() && w->collection == log_name_ && w->kind == LogWrite::Kind::kPlugin) {
          // The run commits its lists itself; the position follows (a crash between the two
          // runs it again, which builds the same lists).
          engine::ItemSearch search;
          if (options_.item_search) {
            search = [this](std::span<const float> v, size_t k, const Filter* f) {
              return options_.item_search(collection_, v, k, f);
            };
          }
          auto run = engine->RunPlugin(collection_, w->plugin, w->config, w->incremental, search);
          Status s = run.status();
          if (!s.ok() && (RefusedForGood(s) || s.code() == StatusCode::kNotFound)) {
            Refused(e.seq, s);
            s = Status::Ok();
          }
          if (s.ok()) s = engine->SkipLogPosition(collection_, at);
          if (!s.ok()) {
            Fail(s);
            retry = true;
            break;
          }
          RecordPluginRun(e.seq, std::move(run));
          Advance(e.seq);
          skipped_ = false;
          continue;
        }
        Status s = !w.ok() ? w.status()
                   : w->collection != log_name_
                       ? DataLossError("a message of collection '" + w->collection + "'")
                       : Apply(*engine, collection_, *w, at, schema, &hosts_);
        if (!s.ok() && RefusedForGood(s)) {
          Refused(e.seq, s);
          s = engine->SkipLogPosition(collection_, at);
        }
        if (!s.ok()) {  // applied up to the message before; start again from there
          Fail(s);
          retry = true;
          break;
        }
        Advance(e.seq);
        skipped_ = false;
      }
      if (retry) {
        reader.reset();
        Pause(std::chrono::milliseconds(500));
        continue;
      }
      reader->AckFetched().IgnoreError();  // a lost ack only means a replay, skipped by position
    }
  }

  // Replaces the collection here with a peer's copy (NodeOptions::fetch), then goes on from the
  // copy's position. The collection is not served meanwhile.
  Status Bootstrap() {
    std::shared_ptr<engine::Engine> engine = root_.engine();
    QV_ASSIGN_OR_RETURN(const CollectionSchema schema, engine->GetSchema(collection_));
    std::vector<uint32_t> shards;  // empty: every shard
    for (uint32_t s = 0; s < schema.shards; ++s) {
      if (hosts_(s)) shards.push_back(s);
    }
    if (shards.size() == schema.shards) shards.clear();
    Block(UnavailableError("fetching a copy of the collection from a peer"));
    const std::string dir = engine->dir() + "/imports/" + Log::StreamName(collection_);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), ec);
    Status s = options_.fetch(collection_, shards, dir);
    if (s.ok()) s = engine->ImportCollection(collection_, dir);
    std::filesystem::remove_all(dir, ec);
    if (!s.ok()) {
      return Status(s.code(), "bootstrap from a peer: " + std::string(s.message()));
    }
    auto positions = engine->LogPositions(collection_);
    if (!positions.ok()) return positions.status();
    const uint64_t applied = positions->count(kShard) != 0 ? (*positions)[kShard] : 0;
    std::fprintf(
        stderr, "quiverd: collection '%s': copied from a peer; following its write log from %llu\n",
        collection_.c_str(), static_cast<unsigned long long>(applied));
    {
      std::lock_guard lock(mu_);
      state_.applied = applied;
      ++state_.bootstraps;
    }
    cv_.notify_all();
    return Status::Ok();
  }

  uint64_t Applied() const {
    std::lock_guard lock(mu_);
    return state_.applied;
  }
  void RecordPluginRun(uint64_t seq, Result<engine::PluginRun> run) {
    std::lock_guard lock(mu_);
    plugin_runs_.insert_or_assign(seq, std::move(run));
    while (plugin_runs_.size() > 64) plugin_runs_.erase(plugin_runs_.begin());
  }

 public:
  // The outcome of the plugin run at `seq` once this node has made it.
  Result<engine::PluginRun> WaitPluginRun(uint64_t seq,
                                          std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return state_.applied >= seq || stop_; });
    auto it = plugin_runs_.find(seq);
    if (it != plugin_runs_.end()) return it->second;
    if (state_.applied >= seq) {
      return InternalError("the plugin run at sequence " + std::to_string(seq) +
                           " was applied, but its outcome is no longer kept");
    }
    return Status(StatusCode::kDeadlineExceeded,
                  "collection '" + collection_ + "': the plugin run (write-log sequence " +
                      std::to_string(seq) + ") has not run on this node yet; it will");
  }

 private:
  void Advance(uint64_t seq) {
    {
      std::lock_guard lock(mu_);
      state_.applied = seq;
    }
    cv_.notify_all();
  }
  void Refused(uint64_t seq, const Status& s) {
    log::Warn("log_message_refused",
              {{"collection", collection_}, {"seq", seq}, {"why", s.ToString()}});
    std::lock_guard lock(mu_);
    ++state_.refused;
    state_.last_error = "message " + std::to_string(seq) + " refused: " + s.ToString();
  }
  void Fail(const Status& s) {
    std::lock_guard lock(mu_);
    if (state_.last_error != s.ToString()) {
      log::Warn("log_follow_failed", {{"collection", collection_}, {"why", s.ToString()}});
    }
    state_.last_error = s.ToString();
  }
  void Block(const Status& why) {
    std::lock_guard lock(mu_);
    state_.blocked = why.ok() ? "" : std::string(why.message());
  }
  void Pause(std::chrono::milliseconds d) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [this] { return stop_.load(); });
  }

  engine::DataRoot& root_;
  Log& log_;
  const NodeOptions& options_;
  const std::string collection_;  // the engine collection (a version: cluster/versions.h)
  const std::string log_name_;    // the collection whose log it follows
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> head_{0};
  const std::function<bool(uint32_t)> hosts_;
  bool skipped_ = false;  // Advance()d over messages not stored as applied (only this thread)
  mutable std::mutex mu_;
  std::condition_variable cv_;
  FollowerState state_;                                        // GUARDED_BY(mu_)
  std::map<uint64_t, Result<engine::PluginRun>> plugin_runs_;  // GUARDED_BY(mu_), the newest
  std::thread thread_;
};

Node::Node(engine::DataRoot& root, NodeOptions options, std::unique_ptr<Log> log)
    : root_(root), options_(std::move(options)), log_(std::move(log)) {
  std::random_device rd;
  id_prefix_ = options_.node_id + ":" + std::to_string((uint64_t(rd()) << 32) | rd()) + ":";
}

Node::~Node() {
  stopping_ = true;
  std::map<std::string, VersionLoad> loads;
  {
    std::lock_guard lock(mu_);
    loads.swap(loads_);
  }
  for (auto& [name, load] : loads) {
    if (load.thread.joinable()) load.thread.join();
  }
  std::map<std::string, std::shared_ptr<Follower>> followers;
  {
    std::lock_guard lock(mu_);
    followers.swap(followers_);
  }
  followers.clear();  // joins each follower's thread
}

Result<std::unique_ptr<Node>> Node::Start(engine::DataRoot& root, const NodeOptions& options) {
  if (options.node_id.empty()) return InvalidArgumentError("cluster mode needs a node id");
  for (char c : options.node_id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return InvalidArgumentError("node id '" + options.node_id +
                                  "' may use only letters, digits, '-' and '_'");
    }
  }
  QV_ASSIGN_OR_RETURN(auto log, Log::Connect(options.log));
  std::unique_ptr<Node> node(new Node(root, options, std::move(log)));
  for (const CollectionInfo& c : root.engine()->ListCollections()) {
    QV_RETURN_IF_ERROR(node->Follow(c.schema.name));
  }
  return node;
}

bool Node::Hosts(uint32_t shard) const {
  return options_.shards.empty() ||
         std::find(options_.shards.begin(), options_.shards.end(), shard) != options_.shards.end();
}

Status Node::Follow(const std::string& collection) {
  QV_ASSIGN_OR_RETURN(const CollectionSchema schema, root_.engine()->GetSchema(collection));
  bool any = false;
  for (uint32_t s = 0; s < schema.shards; ++s) any = any || Hosts(s);
  if (!any) {
    return FailedPreconditionError("collection '" + collection + "' has " +
                                   std::to_string(schema.shards) +
                                   " shards, none of which this node hosts (--shards)");
  }
  QV_ASSIGN_OR_RETURN(auto positions, root_.engine()->LogPositions(collection));
  QV_RETURN_IF_ERROR(log_->EnsureStream(LogName(collection), schema.shards));
  std::lock_guard lock(mu_);
  if (followers_.count(collection) != 0) return Status::Ok();
  const uint64_t applied = positions.count(kShard) != 0 ? positions[kShard] : 0;
  followers_[collection] = std::make_shared<Follower>(root_, *log_, options_, collection, applied,
                                                      [this](uint32_t s) { return Hosts(s); });
  return Status::Ok();
}

Status Node::ResetLog(const std::string& collection) {
  Status s = log_->DeleteStream(collection);
  return s.code() == StatusCode::kNotFound ? Status::Ok() : s;
}

void Node::Unfollow(const std::string& collection) {
  std::shared_ptr<Follower> f;
  {
    std::lock_guard lock(mu_);
    auto it = followers_.find(collection);
    if (it == followers_.end()) return;
    f = std::move(it->second);
    followers_.erase(it);
  }
  f.reset();  // joins its thread (outside mu_)
}

Status Node::WaitApplied(const std::string& collection, uint64_t seq,
                         std::chrono::steady_clock::time_point deadline) {
  std::shared_ptr<Follower> f;
  {
    std::lock_guard lock(mu_);
    auto it = followers_.find(collection);
    if (it == followers_.end()) {
      return NotFoundError("this node does not follow collection '" + collection + "'");
    }
    f = it->second;
  }
  return f->WaitApplied(seq, deadline);
}

uint64_t Node::Applied(const std::string& collection) const {
  std::lock_guard lock(mu_);
  auto it = followers_.find(collection);
  return it == followers_.end() ? 0 : it->second->state().applied;
}

Status Node::CheckServing(const std::string& collection) const {
  std::shared_ptr<Follower> f;
  {
    std::lock_guard lock(mu_);
    auto it = followers_.find(collection);
    if (it == followers_.end()) return Status::Ok();
    f = it->second;
  }
  const FollowerState state = f->state();
  if (state.blocked.empty()) return Status::Ok();
  return UnavailableError("collection '" + collection +
                          "' is not served by this node: it may miss acknowledged writes (" +
                          state.blocked +
                          "); read it from a node that follows the log, or drop it here and "
                          "create it again once the log holds its whole history");
}

std::vector<FollowerState> Node::Followers() const {
  std::vector<std::shared_ptr<Follower>> all;
  {
    std::lock_guard lock(mu_);
    all.reserve(followers_.size());
    for (const auto& [name, f] : followers_) all.push_back(f);
  }
  std::vector<FollowerState> out;
  out.reserve(all.size());
  for (const auto& f : all) out.push_back(f->state());
  return out;
}

Result<WriteResult> Node::Publish(const LogWrite& write, uint64_t records, uint32_t shard,
                                  const std::string& local) {
  if (records == 0) return WriteResult{};
  std::shared_ptr<Follower> follower;
  {
    std::lock_guard lock(mu_);
    if (auto it = followers_.find(local); it != followers_.end()) {
      follower = it->second;
    }
  }
  // After this write the node is to be at most max_lag writes behind.
  if (follower && options_.max_lag > 0 && follower->head() + 1 > options_.max_lag) {
    const uint64_t wanted = follower->head() + 1 - options_.max_lag;
    Status caught_up =
        follower->WaitApplied(wanted, std::chrono::steady_clock::now() + options_.lag_wait);
    if (!caught_up.ok()) {
      return UnavailableError("this node is more than " + std::to_string(options_.max_lag) +
                              " writes behind collection '" + write.collection + "''s write log (" +
                              std::string(caught_up.message()) + "); retry later");
    }
  }
  const std::string msg_id = id_prefix_ + std::to_string(next_write_.fetch_add(1));
  QV_ASSIGN_OR_RETURN(uint64_t seq,
                      log_->Publish(write.collection, shard, EncodeLogWrite(write), msg_id));
  if (follower) follower->NoteHead(seq);
  return WriteResult{seq, records};
}

uint32_t IdShard(const CollectionSchema& schema, uint64_t id) {
  if (schema.shards <= 1) return 0;
  // splitmix64's finaliser: every node, every build and every platform agree on it.
  uint64_t z = id + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return uint32_t(z % schema.shards);
}

uint32_t ItemShard(const CollectionSchema& schema, const ItemRecord& item) {
  if (schema.shards <= 1) return 0;
  return schema.clusters > 0 ? item.cluster % schema.shards : IdShard(schema, item.id);
}

Result<WriteResult> Node::Route(LogWrite write, uint64_t records, const std::string& local) {
  QV_ASSIGN_OR_RETURN(const CollectionSchema schema, root_.engine()->GetSchema(local));
  if (schema.shards <= 1) return Publish(write, records, 0, local);
  const bool by_id = schema.clusters == 0 && (write.kind == LogWrite::Kind::kUpsert ||
                                              write.kind == LogWrite::Kind::kDelete);
  if (!by_id) return Publish(write, records, kAllShards, local);
  // Split by shard: one message each, atomic per shard.
  std::map<uint32_t, LogWrite> parts;
  for (ItemRecord& item : write.items) {
    LogWrite& part = parts[IdShard(schema, item.id)];
    part.items.push_back(std::move(item));
  }
  for (uint64_t id : write.ids) parts[IdShard(schema, id)].ids.push_back(id);
  WriteResult out;
  for (auto& [shard, part] : parts) {
    part.kind = write.kind;
    part.collection = write.collection;
    const uint64_t n = part.items.size() + part.ids.size();
    auto r = Publish(part, n, shard, local);
    if (!r.ok()) {
      if (out.changed == 0) return r.status();
      return Status(r.status().code(),
                    std::string(r.status().message()) + " (the batch's records of " +
                        std::to_string(out.changed) +
                        " were stored on other shards: a batch is atomic per shard)");
    }
    out.op_seq = std::max(out.op_seq, r->op_seq);
    out.changed += r->changed;
  }
  return out;
}

Result<engine::PluginRun> Node::RunPlugin(const std::string& collection, const std::string& plugin,
                                          const std::string& config, bool incremental,
                                          std::chrono::steady_clock::time_point deadline) {
  const std::string name = CheckedName(collection);
  QV_RETURN_IF_ERROR(root_.engine()->GetSchema(name).status());
  QV_RETURN_IF_ERROR(engine::CheckPluginConfig(plugin, config));
  std::shared_ptr<Follower> follower;
  {
    std::lock_guard lock(mu_);
    if (auto it = followers_.find(name); it != followers_.end()) follower = it->second;
  }
  if (!follower) {
    return FailedPreconditionError("this node does not follow collection '" + collection + "'");
  }
  LogWrite w{.kind = LogWrite::Kind::kPlugin, .collection = collection};
  w.plugin = plugin;
  w.config = config;
  w.incremental = incremental;
  QV_ASSIGN_OR_RETURN(WriteResult published, Route(std::move(w), 1, name));
  return follower->WaitPluginRun(published.op_seq, deadline);
}

Result<WriteResult> Node::Upsert(const std::string& collection, std::vector<ItemRecord> items) {
  const std::string local = CheckedName(collection);
  QV_RETURN_IF_ERROR(root_.engine()->CheckUpsert(local, items));
  const uint64_t n = items.size();
  return Route(
      LogWrite{
          .kind = LogWrite::Kind::kUpsert, .collection = collection, .items = std::move(items)},
      n, local);
}

Result<WriteResult> Node::Delete(const std::string& collection, std::vector<uint64_t> ids) {
  const std::string local = CheckedName(collection);
  QV_RETURN_IF_ERROR(root_.engine()->CheckDelete(local, ids));
  const uint64_t n = ids.size();
  return Route(
      LogWrite{.kind = LogWrite::Kind::kDelete, .collection = collection, .ids = std::move(ids)}, n,
      local);
}

Result<WriteResult> Node::PutUsers(const std::string& collection, std::vector<UserRecord> users) {
  const std::string local = CheckedName(collection);
  QV_RETURN_IF_ERROR(root_.engine()->CheckUsers(local, users));
  const uint64_t n = users.size();
  return Route(
      LogWrite{.kind = LogWrite::Kind::kUsers, .collection = collection, .users = std::move(users)},
      n, local);
}

Result<WriteResult> Node::AddEvents(const std::string& collection, std::vector<Event> events) {
  const std::string local = CheckedName(collection);
  QV_RETURN_IF_ERROR(root_.engine()->CheckEvents(local, events));
  const uint64_t n = events.size();
  return Route(
      LogWrite{
          .kind = LogWrite::Kind::kEvents, .collection = collection, .events = std::move(events)},
      n, local);
}

bool Node::Follows(const std::string& collection) const {
  std::lock_guard lock(mu_);
  return followers_.count(collection) != 0;
}

std::string Node::CheckedName(const std::string& collection) const {
  std::string serving = options_.serving ? options_.serving(collection) : collection;
  if (root_.engine()->GetSchema(serving).ok()) return serving;
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : followers_) {
    if (LogName(name) == collection) return name;
  }
  return collection;
}

Result<uint64_t> Node::LogHead(const std::string& collection) {
  QV_ASSIGN_OR_RETURN(StreamState state, log_->State(collection));
  return state.last;
}

void Node::LoadVersion(const std::string& name, const CollectionSchema& schema,
                       const std::string& path, uint64_t after_seq) {
  std::lock_guard lock(mu_);
  if (stopping_ || followers_.count(name) != 0) return;
  VersionLoad& load = loads_[name];
  if (load.thread.joinable()) {
    if (!load.done) return;  // running
    if (!load.status.ok() &&
        std::chrono::steady_clock::now() < load.finished + options_.bootstrap_retry) {
      return;
    }
    load.thread.join();
  }
  load.done = false;
  load.thread = std::thread([this, name, schema, path, after_seq] {
    Status s = stopping_ ? Status::Ok() : Load(name, schema, path, after_seq);
    if (!s.ok()) {
      log::Error("version_load_failed", {{"collection", LogName(name)},
                                         {"version", VersionOf(name)},
                                         {"path", path},
                                         {"why", s.ToString()}});
    }
    std::lock_guard done(mu_);
    auto it = loads_.find(name);
    if (it == loads_.end()) return;  // the node is stopping
    it->second.done = true;
    it->second.status = s;
    it->second.finished = std::chrono::steady_clock::now();
  });
}

std::map<std::string, std::string> Node::LoadErrors() const {
  std::lock_guard lock(mu_);
  std::map<std::string, std::string> out;
  for (const auto& [name, load] : loads_) {
    if (load.done && !load.status.ok()) out[name] = load.status.ToString();
  }
  return out;
}

namespace {

// A tree of hard links to `from` at `to` (copies where the file system refuses links): the
// import moves files out of its directory, and the build must stay whole for the other nodes.
Status LinkTree(const std::filesystem::path& from, const std::filesystem::path& to) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(to, ec);
  if (ec) return InternalError("cannot create " + to.string() + ": " + ec.message());
  for (const auto& e : fs::recursive_directory_iterator(from, ec)) {
    const fs::path target = to / fs::relative(e.path(), from);
    if (e.is_directory()) {
      fs::create_directories(target, ec);
    } else {
      fs::create_hard_link(e.path(), target, ec);
      if (ec) fs::copy_file(e.path(), target, ec);
    }
    if (ec) return InternalError("cannot copy " + e.path().string() + ": " + ec.message());
  }
  if (ec) return InternalError("cannot read " + from.string() + ": " + ec.message());
  return Status::Ok();
}

}  // namespace

Status Node::Load(const std::string& name, const CollectionSchema& schema, const std::string& path,
                  uint64_t after_seq) {
  namespace fs = std::filesystem;
  std::shared_ptr<engine::Engine> engine = root_.engine();
  if (engine->GetSchema(name).ok()) return Follow(name);  // loaded before a restart
  const std::string base(LogName(name));
  std::vector<uint32_t> hosted;
  for (uint32_t s = 0; s < schema.shards; ++s) {
    if (Hosts(s)) hosted.push_back(s);
  }
  if (hosted.empty()) return FailedPreconditionError("this node hosts no shard of '" + base + "'");
  const bool all = hosted.size() == schema.shards;
  const std::string dir = engine->dir() + "/imports/" + Log::StreamName(name) + ".load";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(fs::path(dir).parent_path(), ec);
  auto cleanup = [&](Status s) {  // what a failed step leaves is removed
    if (!s.ok()) fs::remove_all(dir, ec);
    return s;
  };

  Result<BuildManifest> manifest = ReadManifest(path);
  Status readable = manifest.status();
  if (manifest.ok()) readable = CheckBuildFits(*manifest, schema);
  if (!readable.ok()) {
    // Not readable here: a peer that loaded the version has a copy.
    if (!options_.fetch) return readable;
    Status fetched = options_.fetch(name, all ? std::vector<uint32_t>{} : hosted, dir);
    if (!fetched.ok()) {
      return cleanup(Status(fetched.code(),
                            std::string(readable.message()) +
                                "; no copy from a peer either: " + std::string(fetched.message())));
    }
    QV_RETURN_IF_ERROR(cleanup(engine->ImportCollection(name, dir)));
    fs::remove_all(dir, ec);
    return Follow(name);
  }
  const engine::Engine::ImportOptions import{
      .rename = true,
      .at = after_seq > 0 ? std::optional<engine::LogPosition>({kShard, after_seq}) : std::nullopt};
  const std::optional<uint32_t> part =
      hosted.size() == 1 && schema.shards > 1 ? std::optional<uint32_t>(hosted[0]) : std::nullopt;
  QV_RETURN_IF_ERROR(cleanup(LinkTree(BuildPartDir(path, part), dir)));
  QV_RETURN_IF_ERROR(cleanup(engine->ImportCollection(name, dir, import)));
  fs::remove_all(dir, ec);
  if (!part && !all) {
    // Several shards of more: the whole build, less the shards hosted elsewhere.
    std::vector<bool> keep(schema.shards, false);
    for (uint32_t s : hosted) keep[s] = true;
    auto only = [&](const ItemRecord& item) { return bool(keep[ItemShard(schema, item)]); };
    QV_RETURN_IF_ERROR(cleanup(engine->ExportCollection(name, dir, only).status()));
    QV_RETURN_IF_ERROR(cleanup(engine->ImportCollection(name, dir, import)));
    fs::remove_all(dir, ec);
  }
  log::Info("version_loaded", {{"collection", base},
                               {"version", VersionOf(name)},
                               {"path", path},
                               {"log_from", after_seq}});
  return Follow(name);
}

}  // namespace quiver::cluster
