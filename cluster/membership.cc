#include "cluster/membership.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "base/log.h"
#include "cluster/node.h"
#include "cluster/versions.h"
#include "engine/engine.h"
#include "storage/records.h"

namespace quiver::cluster {

namespace {

std::string NodesPrefix(const std::string& prefix) { return prefix + "/nodes/"; }
std::string CollectionsPrefix(const std::string& prefix) { return prefix + "/collections/"; }
std::string VersionsPrefix(const std::string& prefix) { return prefix + "/versions/"; }
std::string AssignmentKey(const std::string& prefix) { return prefix + "/assignment"; }

}  // namespace

bool MemberInfo::Hosts(uint32_t shard) const {
  return shards.empty() || std::binary_search(shards.begin(), shards.end(), shard);
}

std::string EncodeMember(const MemberInfo& m) {
  std::string out = "{\"host\":";
  AppendJsonString(m.host, &out);
  out += ",\"port\":";
  out += std::to_string(m.port);
  out += ",\"shards\":[";
  for (size_t i = 0; i < m.shards.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += std::to_string(m.shards[i]);
  }
  out += "],\"applied\":{";
  bool first = true;
  for (const auto& [collection, seq] : m.applied) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(collection, &out);
    out.push_back(':');
    out += std::to_string(seq);
  }
  out += "},\"blocked\":[";
  for (size_t i = 0; i < m.blocked.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendJsonString(m.blocked[i], &out);
  }
  out += "]}";
  return out;
}

Result<MemberInfo> DecodeMember(std::string_view id, std::string_view value) {
  auto bad = [&](const char* what) {
    return DataLossError("member '" + std::string(id) + "' in etcd: " + what);
  };
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(value.data(), value.size()).get(doc)) return bad("not JSON");
  MemberInfo m;
  m.id = std::string(id);
  std::string_view host;
  uint64_t port = 0;
  simdjson::dom::array shards, blocked;
  simdjson::dom::object applied;
  if (doc["host"].get(host) || doc["port"].get(port) || port == 0 || port > 65535 ||
      doc["shards"].get(shards) || doc["applied"].get(applied) || doc["blocked"].get(blocked)) {
    return bad("missing or malformed host, port, shards, applied or blocked");
  }
  m.host = std::string(host);
  m.port = uint16_t(port);
  for (simdjson::dom::element e : shards) {
    uint64_t s = 0;
    if (e.get(s) || s > UINT32_MAX) return bad("a shard is not a number");
    m.shards.push_back(uint32_t(s));
  }
  if (!std::is_sorted(m.shards.begin(), m.shards.end())) return bad("shards are not ascending");
  for (auto field : applied) {
    uint64_t seq = 0;
    if (field.value.get(seq)) return bad("an applied sequence is not a number");
    m.applied[std::string(field.key)] = seq;
  }
  for (simdjson::dom::element e : blocked) {
    std::string_view c;
    if (e.get(c)) return bad("a blocked collection is not a string");
    m.blocked.emplace_back(c);
  }
  return m;
}

std::string EncodeAssignment(const ShardAssignment& a) {
  std::string out = "{";
  bool first = true;
  for (const auto& [shard, nodes] : a) {
    if (!first) out.push_back(',');
    first = false;
    out += "\"" + std::to_string(shard) + "\":[";
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (i > 0) out.push_back(',');
      AppendJsonString(nodes[i], &out);
    }
    out.push_back(']');
  }
  out.push_back('}');
  return out;
}

Result<ShardAssignment> DecodeAssignment(std::string_view value) {
  auto bad = [] { return DataLossError("the shard assignment in etcd is malformed"); };
  simdjson::dom::parser parser;
  simdjson::dom::object doc;
  if (parser.parse(value.data(), value.size()).get(doc)) return bad();
  ShardAssignment a;
  for (auto field : doc) {
    uint32_t shard = 0;
    const std::string_view key = field.key;
    auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), shard);
    simdjson::dom::array nodes;
    if (ec != std::errc() || end != key.data() + key.size() || field.value.get(nodes)) {
      return bad();
    }
    std::vector<std::string>& list = a[shard];
    for (simdjson::dom::element e : nodes) {
      std::string_view id;
      if (e.get(id)) return bad();
      list.emplace_back(id);
    }
  }
  return a;
}

Result<std::unique_ptr<Membership>> Membership::Start(const MembershipOptions& options,
                                                      std::function<MemberState()> state) {
  if (options.node_id.empty()) return InvalidArgumentError("membership needs a node id");
  if (options.prefix.empty() || options.prefix.back() == '/') {
    return InvalidArgumentError(
        "the cluster's etcd prefix must be non-empty, without a trailing /");
  }
  QV_ASSIGN_OR_RETURN(std::unique_ptr<MetaStore> store, MetaStore::Connect(options.etcd));
  std::unique_ptr<Membership> m(new Membership(options, std::move(store), std::move(state)));
  QV_RETURN_IF_ERROR(m->Refresh());
  m->thread_ = std::thread([p = m.get()] { p->Loop(); });
  return m;
}

Membership::Membership(MembershipOptions options, std::unique_ptr<MetaStore> store,
                       std::function<MemberState()> state)
    : options_(std::move(options)), store_(std::move(store)), state_(std::move(state)) {
  self_.id = options_.node_id;
  self_.shards = options_.shards;
  std::sort(self_.shards.begin(), self_.shards.end());
}

Membership::~Membership() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard publish(publish_mu_);
  if (lease_ != 0) (void)store_->Revoke(lease_);  // best effort: else the TTL removes the key
}

void Membership::Leave() {
  {
    std::lock_guard lock(mu_);
    left_ = true;
  }
  std::lock_guard publish(publish_mu_);
  if (lease_ != 0) (void)store_->Revoke(lease_);  // else the TTL removes the key
  lease_ = 0;
}

Status Membership::Register(const std::string& host, uint16_t port) {
  {
    std::lock_guard lock(mu_);
    self_.host = host;
    self_.port = port;
    registered_ = true;
  }
  QV_RETURN_IF_ERROR(Publish());
  return Refresh();
}

Status Membership::Publish() {
  MemberInfo self;
  {
    std::lock_guard lock(mu_);
    if (!registered_ || left_) return Status::Ok();
    self = self_;
  }
  if (state_) {
    MemberState s = state_();
    self.applied = std::move(s.applied);
    self.blocked = std::move(s.blocked);
  }
  const std::string value = EncodeMember(self);
  const std::string key = NodesPrefix(options_.prefix) + options_.node_id;
  std::lock_guard publish(publish_mu_);
  const auto now = std::chrono::steady_clock::now();
  bool fresh_lease = false;
  if (lease_ != 0 && now - kept_ >= options_.ttl / 3) {
    Result<int64_t> kept = store_->KeepAlive(lease_);
    if (kept.ok()) {
      kept_ = now;
    } else if (kept.status().code() == StatusCode::kNotFound) {
      lease_ = 0;  // expired while etcd was away: the key is gone, store it again
    } else {
      return kept.status();
    }
  }
  if (lease_ == 0) {
    QV_ASSIGN_OR_RETURN(lease_, store_->GrantLease(options_.ttl));
    kept_ = now;
    fresh_lease = true;
  }
  if (fresh_lease || value != stored_) {
    Result<int64_t> put = store_->Put(key, value, lease_);
    if (!put.ok()) {
      stored_.clear();
      return put.status();
    }
    stored_ = value;
  }
  return Status::Ok();
}

Status Membership::Refresh() {
  std::unique_lock lock(mu_);
  Result<std::vector<KeyValue>> kvs = std::vector<KeyValue>{};
  Result<std::vector<KeyValue>> cs = std::vector<KeyValue>{};
  Result<std::vector<KeyValue>> vs = std::vector<KeyValue>{};
  Result<std::optional<KeyValue>> as = std::optional<KeyValue>{};
  // A catalog change made here while reading (a create, a drop, a version swap) may be missing
  // from what was read: read again rather than put the older catalog back over it, where
  // Reconcile would drop the collection just created.
  for (int attempt = 0;; ++attempt) {
    const uint64_t changes = local_changes_;
    lock.unlock();
    kvs = store_->List(NodesPrefix(options_.prefix));
    cs = kvs.ok() ? store_->List(CollectionsPrefix(options_.prefix)) : kvs.status();
    vs = cs.ok() ? store_->List(VersionsPrefix(options_.prefix)) : cs.status();
    as = vs.ok() ? store_->Get(AssignmentKey(options_.prefix)) : vs.status();
    lock.lock();
    if (!as.ok()) {
      etcd_ = as.status();
      return etcd_;
    }
    if (changes == local_changes_) break;
    if (attempt == 2) return Status::Ok();  // changing still: the next refresh reads it
  }
  assignment_.clear();
  assignment_revision_ = *as ? (*as)->mod_revision : 0;
  if (*as && !(*as)->value.empty()) {
    Result<ShardAssignment> a = DecodeAssignment((*as)->value);
    if (a.ok()) assignment_ = std::move(*a);  // else: as if none (every host serves)
  }
  versions_.clear();
  versions_revisions_.clear();
  const size_t vskip = VersionsPrefix(options_.prefix).size();
  for (const KeyValue& kv : *vs) {
    const std::string name = kv.key.substr(vskip);
    versions_revisions_[name] = kv.mod_revision;
    if (kv.value.empty()) continue;  // cleared with its collection
    Result<VersionsRecord> r = DecodeVersions(kv.value);
    if (r.ok()) versions_[name] = std::move(*r);  // else: as if none (the default record)
  }
  collections_.clear();
  collection_revisions_.clear();
  const size_t cskip = CollectionsPrefix(options_.prefix).size();
  for (const KeyValue& kv : *cs) {
    const std::string name = kv.key.substr(cskip);
    collection_revisions_[name] = kv.mod_revision;
    if (kv.value.empty()) {
      collections_[name] = std::nullopt;
      continue;
    }
    Result<CollectionSchema> schema = storage::DecodeSchema(kv.value);
    if (schema.ok()) collections_[name] = std::move(*schema);  // else: not a collection here
  }
  std::vector<MemberInfo> members;
  const size_t skip = NodesPrefix(options_.prefix).size();
  for (const KeyValue& kv : *kvs) {
    Result<MemberInfo> m = DecodeMember(std::string_view(kv.key).substr(skip), kv.value);
    if (m.ok()) members.push_back(std::move(*m));  // a malformed entry is no member
  }
  members_ = std::move(members);
  etcd_ = Status::Ok();
  std::function<void()> after = on_refresh_;
  lock.unlock();
  if (after) after();
  return Status::Ok();
}

std::map<std::string, std::optional<CollectionSchema>> Membership::Collections() const {
  std::lock_guard lock(mu_);
  return collections_;
}

void Membership::OnRefresh(std::function<void()> f) {
  std::lock_guard lock(mu_);
  on_refresh_ = std::move(f);
}

Status Membership::CreateCollection(const CollectionSchema& schema,
                                    const std::function<Status()>& before) {
  const std::string key = CollectionsPrefix(options_.prefix) + schema.name;
  QV_ASSIGN_OR_RETURN(std::optional<KeyValue> now, store_->Get(key));
  if (now && !now->value.empty()) {
    return AlreadyExistsError("collection '" + schema.name + "' exists in the cluster");
  }
  if (before) QV_RETURN_IF_ERROR(before());
  // A collection created anew starts at its initial version, whatever a dropped one had.
  QV_RETURN_IF_ERROR(store_->Put(VersionsPrefix(options_.prefix) + schema.name, "").status());
  QV_ASSIGN_OR_RETURN(
      bool stored, store_->Swap(key, now ? now->mod_revision : 0, storage::EncodeSchema(schema)));
  if (!stored) {
    return AlreadyExistsError("collection '" + schema.name +
                              "' was created in the cluster at the same time");
  }
  std::lock_guard lock(mu_);
  collections_[schema.name] = schema;
  ++local_changes_;
  return Status::Ok();
}

Status Membership::DropCollection(const std::string& name) {
  const std::string key = CollectionsPrefix(options_.prefix) + name;
  QV_ASSIGN_OR_RETURN(std::optional<KeyValue> now, store_->Get(key));
  if (!now || now->value.empty()) {
    return NotFoundError("collection '" + name + "' does not exist in the cluster");
  }
  QV_ASSIGN_OR_RETURN(bool stored, store_->Swap(key, now->mod_revision, ""));
  if (!stored) {
    return Status(StatusCode::kAborted, "collection '" + name + "' changed meanwhile; try again");
  }
  std::lock_guard lock(mu_);
  collections_[name] = std::nullopt;
  versions_.erase(name);
  ++local_changes_;
  return Status::Ok();
}

ShardAssignment Membership::Assignment() const {
  std::lock_guard lock(mu_);
  return assignment_;
}

bool Membership::Assigned(const ShardAssignment& assignment, const MemberInfo& m, uint32_t shard) {
  if (!m.Hosts(shard)) return false;
  auto it = assignment.find(shard);
  return it == assignment.end() ||
         std::find(it->second.begin(), it->second.end(), m.id) != it->second.end();
}

Status Membership::AssignShard(uint32_t shard, const std::vector<std::string>& nodes,
                               uint64_t max_lag) {
  const std::vector<MemberInfo> members = Members();
  // The engine collections a replica must serve: every live collection's kept versions.
  std::vector<std::string> names;
  for (const auto& [name, schema] : Collections()) {
    if (schema && shard < schema->shards) names.push_back(EngineName(name, Versions(name).active));
  }
  for (const std::string& id : nodes) {
    auto m = std::find_if(members.begin(), members.end(),
                          [&](const MemberInfo& x) { return x.id == id; });
    if (m == members.end()) {
      return FailedPreconditionError("node '" + id + "' is not a member of the cluster");
    }
    if (!m->Hosts(shard)) {
      return FailedPreconditionError("node '" + id + "' does not hold shard " +
                                     std::to_string(shard) + " (quiverd --shards)");
    }
    for (const std::string& name : names) {
      uint64_t best = 0;
      for (const MemberInfo& x : members) {
        if (x.Hosts(shard) && x.applied.count(name) != 0) best = std::max(best, x.applied.at(name));
      }
      const bool serves = m->applied.count(name) != 0 &&
                          std::find(m->blocked.begin(), m->blocked.end(), name) == m->blocked.end();
      if (!serves || m->applied.at(name) + max_lag < best) {
        return FailedPreconditionError(
            "node '" + id + "' has not caught up on collection '" + name + "' (applied " +
            (serves ? std::to_string(m->applied.at(name)) : std::string("nothing")) + " of " +
            std::to_string(best) + "); assign it once it has");
      }
    }
  }
  ShardAssignment next;
  int64_t revision = 0;
  {
    std::lock_guard lock(mu_);
    next = assignment_;
    revision = assignment_revision_;
  }
  if (nodes.empty()) {
    next.erase(shard);
  } else {
    next[shard] = nodes;
  }
  QV_ASSIGN_OR_RETURN(
      bool stored, store_->Swap(AssignmentKey(options_.prefix), revision, EncodeAssignment(next)));
  if (!stored) {
    return Status(StatusCode::kAborted, "the shard assignment changed meanwhile; try again");
  }
  return Refresh();
}

VersionsRecord Membership::Versions(const std::string& collection) const {
  std::lock_guard lock(mu_);
  auto it = versions_.find(collection);
  return it == versions_.end() ? VersionsRecord{} : it->second;
}

std::string Membership::ServingName(const std::string& name) const {
  if (name.find('@') != std::string::npos) return name;
  std::lock_guard lock(mu_);
  auto it = versions_.find(name);
  return it == versions_.end() ? name : EngineName(name, it->second.active);
}

std::string Membership::PinnedServingName(const std::string& collection) const {
  std::lock_guard lock(mu_);
  auto it = versions_.find(collection);
  return PinnedName(collection, it == versions_.end() ? kInitialVersion : it->second.active);
}

Result<CollectionSchema> Membership::SchemaOf(const std::string& engine_name) const {
  const std::string base(LogName(engine_name));
  std::lock_guard lock(mu_);
  auto it = collections_.find(base);
  if (it == collections_.end() || !it->second) {
    return NotFoundError("no collection named '" + base + "' in the cluster");
  }
  CollectionSchema schema = *it->second;
  schema.name = LocalName(engine_name);
  return schema;
}

Status Membership::SwapVersions(const std::string& collection,
                                const std::function<Status(VersionsRecord&)>& change) {
  const std::string key = VersionsPrefix(options_.prefix) + collection;
  QV_ASSIGN_OR_RETURN(std::optional<KeyValue> now, store_->Get(key));
  VersionsRecord r;
  if (now && !now->value.empty()) {
    QV_ASSIGN_OR_RETURN(r, DecodeVersions(now->value));
  }
  QV_RETURN_IF_ERROR(change(r));
  QV_ASSIGN_OR_RETURN(bool stored,
                      store_->Swap(key, now ? now->mod_revision : 0, EncodeVersions(r)));
  if (!stored) {
    return Status(StatusCode::kAborted,
                  "the versions of collection '" + collection + "' changed meanwhile; try again");
  }
  std::lock_guard lock(mu_);
  versions_[collection] = std::move(r);
  ++local_changes_;
  return Status::Ok();
}

Status Membership::PublishVersion(const std::string& collection, const std::string& version,
                                  const BuildRef& build) {
  QV_RETURN_IF_ERROR(CheckVersionName(version));
  if (version == kInitialVersion) {
    return InvalidArgumentError("'initial' names the version a collection was created as");
  }
  QV_RETURN_IF_ERROR(SchemaOf(collection).status());
  return SwapVersions(collection, [&](VersionsRecord& r) {
    if (version == r.active || version == r.previous) {
      return AlreadyExistsError("version '" + version + "' of collection '" + collection +
                                "' is the " + (version == r.active ? "active" : "previous") +
                                " one; give the new build another name");
    }
    if (!r.pending.empty()) r.builds.erase(r.pending);  // replaced
    r.pending = version;
    r.builds[version] = build;
    return Status::Ok();
  });
}

Status Membership::RollbackVersion(const std::string& collection) {
  QV_RETURN_IF_ERROR(SchemaOf(collection).status());
  return SwapVersions(collection, [&](VersionsRecord& r) {
    if (r.previous.empty()) {
      return FailedPreconditionError("collection '" + collection +
                                     "' has no previous version to roll back to");
    }
    std::swap(r.active, r.previous);
    return Status::Ok();
  });
}

Status Membership::TryFlip(const std::string& collection, const CollectionSchema& schema) {
  const VersionsRecord r = Versions(collection);
  if (r.pending.empty()) return Status::Ok();
  const std::string pending = EngineName(collection, r.pending);
  const std::string active = EngineName(collection, r.active);
  const std::vector<MemberInfo> members = Members();
  const ShardAssignment assignment = Assignment();
  auto serves = [](const MemberInfo& m, const std::string& name) {
    return m.applied.count(name) != 0 &&
           std::find(m.blocked.begin(), m.blocked.end(), name) == m.blocked.end();
  };
  for (uint32_t s = 0; s < std::max<uint32_t>(schema.shards, 1); ++s) {
    uint64_t best = 0;
    for (const MemberInfo& m : members) {
      if (m.Hosts(s) && serves(m, active)) best = std::max(best, m.applied.at(active));
    }
    bool ready = false;
    for (const MemberInfo& m : members) {
      ready = ready || (Assigned(assignment, m, s) && serves(m, pending) &&
                        m.applied.at(pending) + options_.flip_max_lag >= best);
    }
    if (!ready) return Status::Ok();
  }
  int64_t revision = 0;
  {
    std::lock_guard lock(mu_);
    auto it = versions_revisions_.find(collection);
    if (it != versions_revisions_.end()) revision = it->second;
  }
  VersionsRecord next = r;
  next.previous = r.active;
  next.active = r.pending;
  next.pending.clear();
  const std::vector<std::string> kept = next.Kept();
  std::erase_if(next.builds, [&](const auto& b) {
    return std::find(kept.begin(), kept.end(), b.first) == kept.end();
  });
  // Against the record this view was taken from: a change since (a rollback, another
  // publish) wins, and the next refresh decides again.
  QV_ASSIGN_OR_RETURN(bool stored, store_->Swap(VersionsPrefix(options_.prefix) + collection,
                                                revision, EncodeVersions(next)));
  if (stored) {
    log::Info("version_active",
              {{"collection", collection}, {"version", next.active}, {"previous", next.previous}});
  }
  return Status::Ok();
}

Status Membership::Reconcile(engine::Engine& engine, Node& node) {
  Status first = Status::Ok();
  auto note = [&](Status s) {
    if (!s.ok() && first.ok()) first = std::move(s);
  };
  // What is here first, then the catalog: a collection created here since is in both (the
  // catalog changes before the engine does), so it is never taken for one dropped.
  std::map<std::string, CollectionSchema> local;
  for (const CollectionInfo& c : engine.ListCollections()) local[c.schema.name] = c.schema;
  const auto catalog = Collections();
  auto drop = [&](const std::string& name) {
    node.Unfollow(name);
    Status s = engine.DropCollection(name);
    if (s.code() != StatusCode::kNotFound) note(s);
  };
  for (const auto& [name, schema] : catalog) {
    if (!schema) {
      for (const auto& [here, unused] : local) {
        if (LogName(here) == name) drop(here);
      }
      continue;
    }
    // Every version kept is here or loading; the others go.
    const VersionsRecord versions = Versions(name);
    const std::vector<std::string> kept = versions.Kept();
    for (const std::string& v : kept) {
      const std::string engine_name = EngineName(name, v);
      if (v == kInitialVersion) {
        auto here = local.find(name);
        if (here == local.end()) {
          Status s = engine.CreateCollection(*schema);
          if (s.code() == StatusCode::kAlreadyExists) s = Status::Ok();
          if (s.ok()) s = node.Follow(name);
          note(s);
        } else if (!(here->second == *schema)) {
          note(FailedPreconditionError("collection '" + name +
                                       "' here has another schema than the cluster's; drop it "
                                       "here to take the cluster's"));
        }
      } else if (!node.Follows(engine_name)) {
        const BuildRef& build = versions.builds.at(v);
        node.LoadVersion(engine_name, *schema, build.path, build.after_seq);
      }
    }
    for (const auto& [here, unused] : local) {
      if (LogName(here) != name) continue;
      if (std::find(kept.begin(), kept.end(), std::string(VersionOf(here))) == kept.end()) {
        drop(here);
      }
    }
    if (!versions.pending.empty()) note(TryFlip(name, *schema));
  }
  for (const auto& [name, schema] : local) {
    if (name.find('@') == std::string::npos && catalog.count(name) == 0) {
      Status s = CreateCollection(schema);  // created before this node joined a cluster
      if (s.code() != StatusCode::kAlreadyExists) note(s);
    }
  }
  return first;
}

std::vector<MemberInfo> Membership::Members() const {
  std::lock_guard lock(mu_);
  return members_;
}

Status Membership::EtcdStatus() const {
  std::lock_guard lock(mu_);
  return etcd_;
}

void Membership::Loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, options_.poll, [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    Status published = Publish();
    Status read = Refresh();
    lock.lock();
    if (!published.ok() && read.ok()) etcd_ = published;
  }
}

}  // namespace quiver::cluster
