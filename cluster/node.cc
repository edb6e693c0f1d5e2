#include "cluster/node.h"

#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>
#include <utility>

#include "engine/data_root.h"
#include "engine/engine.h"

namespace quiver::cluster {

namespace {

constexpr uint32_t kShard = 0;  // one shard per collection for now

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

Status Apply(engine::Engine& engine, const LogWrite& w, engine::LogPosition at) {
  switch (w.kind) {
    case LogWrite::Kind::kUpsert:
      return engine.Upsert(w.collection, w.items, at).status();
    case LogWrite::Kind::kDelete:
      return engine.Delete(w.collection, w.ids, at).status();
    case LogWrite::Kind::kUsers:
      return engine.PutUsers(w.collection, w.users, at);
    case LogWrite::Kind::kEvents:
      return engine.AddEvents(w.collection, w.events, at);
  }
  return InternalError("unknown write kind");
}

// Consumer names may not hold '.': the node id is checked, the collection escaped as streams are.
std::string ConsumerName(const std::string& node_id, const std::string& collection) {
  return "node_" + node_id + "_" + Log::StreamName(collection) + "_" + std::to_string(kShard);
}

}  // namespace

// Applies one collection's log on its own thread.
class Follower {
 public:
  Follower(engine::DataRoot& root, Log& log, const NodeOptions& options, std::string collection,
           uint64_t applied)
      : root_(root), log_(log), options_(options), collection_(std::move(collection)) {
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
        auto r = log_.Follow(collection_, kShard, ConsumerName(options_.node_id, collection_),
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
      if (entries->empty()) continue;
      std::shared_ptr<engine::Engine> engine = root_.engine();
      bool retry = false;
      for (const LogEntry& e : *entries) {
        const engine::LogPosition at{kShard, e.seq};
        auto w = DecodeLogWrite(e.data);
        Status s = !w.ok() ? w.status()
                   : w->collection != collection_
                       ? DataLossError("a message of collection '" + w->collection + "'")
                       : Apply(*engine, *w, at);
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
    Block(UnavailableError("fetching a copy of the collection from a peer"));
    std::shared_ptr<engine::Engine> engine = root_.engine();
    const std::string dir = engine->dir() + "/imports/" + Log::StreamName(collection_);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), ec);
    Status s = options_.fetch(collection_, dir);
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
  void Advance(uint64_t seq) {
    {
      std::lock_guard lock(mu_);
      state_.applied = seq;
    }
    cv_.notify_all();
  }
  void Refused(uint64_t seq, const Status& s) {
    std::fprintf(stderr, "quiverd: collection '%s': write-log message %llu refused: %s\n",
                 collection_.c_str(), static_cast<unsigned long long>(seq), s.ToString().c_str());
    std::lock_guard lock(mu_);
    ++state_.refused;
    state_.last_error = "message " + std::to_string(seq) + " refused: " + s.ToString();
  }
  void Fail(const Status& s) {
    std::lock_guard lock(mu_);
    if (state_.last_error != s.ToString()) {
      std::fprintf(stderr, "quiverd: collection '%s': following the write log: %s\n",
                   collection_.c_str(), s.ToString().c_str());
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
  const std::string collection_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> head_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  FollowerState state_;  // GUARDED_BY(mu_)
  std::thread thread_;
};

Node::Node(engine::DataRoot& root, NodeOptions options, std::unique_ptr<Log> log)
    : root_(root), options_(std::move(options)), log_(std::move(log)) {
  std::random_device rd;
  id_prefix_ = options_.node_id + ":" + std::to_string((uint64_t(rd()) << 32) | rd()) + ":";
}

Node::~Node() {
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

Status Node::Follow(const std::string& collection) {
  QV_ASSIGN_OR_RETURN(auto positions, root_.engine()->LogPositions(collection));
  QV_RETURN_IF_ERROR(log_->EnsureStream(collection, 1));
  std::lock_guard lock(mu_);
  if (followers_.count(collection) != 0) return Status::Ok();
  const uint64_t applied = positions.count(kShard) != 0 ? positions[kShard] : 0;
  followers_[collection] = std::make_shared<Follower>(root_, *log_, options_, collection, applied);
  return Status::Ok();
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

Result<WriteResult> Node::Publish(const LogWrite& write, uint64_t records) {
  if (records == 0) return WriteResult{};
  std::shared_ptr<Follower> follower;
  {
    std::lock_guard lock(mu_);
    if (auto it = followers_.find(write.collection); it != followers_.end()) {
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
                      log_->Publish(write.collection, kShard, EncodeLogWrite(write), msg_id));
  if (follower) follower->NoteHead(seq);
  return WriteResult{seq, records};
}

Result<WriteResult> Node::Upsert(const std::string& collection, std::vector<ItemRecord> items) {
  QV_RETURN_IF_ERROR(root_.engine()->CheckUpsert(collection, items));
  const uint64_t n = items.size();
  return Publish(
      LogWrite{
          .kind = LogWrite::Kind::kUpsert, .collection = collection, .items = std::move(items)},
      n);
}

Result<WriteResult> Node::Delete(const std::string& collection, std::vector<uint64_t> ids) {
  QV_RETURN_IF_ERROR(root_.engine()->CheckDelete(collection, ids));
  const uint64_t n = ids.size();
  return Publish(
      LogWrite{.kind = LogWrite::Kind::kDelete, .collection = collection, .ids = std::move(ids)},
      n);
}

Result<WriteResult> Node::PutUsers(const std::string& collection, std::vector<UserRecord> users) {
  QV_RETURN_IF_ERROR(root_.engine()->CheckUsers(collection, users));
  const uint64_t n = users.size();
  return Publish(
      LogWrite{.kind = LogWrite::Kind::kUsers, .collection = collection, .users = std::move(users)},
      n);
}

Result<WriteResult> Node::AddEvents(const std::string& collection, std::vector<Event> events) {
  QV_RETURN_IF_ERROR(root_.engine()->CheckEvents(collection, events));
  const uint64_t n = events.size();
  return Publish(
      LogWrite{
          .kind = LogWrite::Kind::kEvents, .collection = collection, .events = std::move(events)},
      n);
}

}  // namespace quiver::cluster
