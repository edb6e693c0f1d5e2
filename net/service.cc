#include "net/service.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "base/version.h"
#include "cluster/versions.h"
#include "engine/schema.h"
#include "plugins/registry.h"

namespace quiver::net {
namespace {

template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <typename... F>
Overloaded(F...) -> Overloaded<F...>;

Reply FromStatus(Status s) { return Reply{std::move(s), std::monostate{}}; }

// A search: the engine plans and runs the query. With several query vectors (or MVKE's topics)
// each hit names the one that scored it highest; in a collection with clusters, its cluster.
Reply RunSearch(const engine::Engine& e, const SearchCall& c) {
  auto r = e.Query(c.collection, c.query);
  if (!r.ok()) return FromStatus(r.status());
  const bool vectors = c.query.vectors.size() > 1 || c.query.mvke;
  const bool clusters = !r->per_cluster.empty();
  SearchResult out;
  out.hits.reserve(r->hits.size());
  for (const QueryHit& h : r->hits) {
    out.hits.push_back({h.id, h.score});
    if (vectors) out.hit_vector.push_back(h.vector);
    if (clusters) out.hit_cluster.push_back(h.cluster);
    if (c.query.channels) out.hit_channels.push_back(h.channels);
  }
  out.quotas = std::move(r->quotas);
  out.per_cluster = std::move(r->per_cluster);
  return Reply{Status::Ok(), ReplyBody(std::move(out))};
}

// Each hit's payload, read from the store (an item deleted since the search gets none).
Reply WithPayloads(const engine::Engine& e, const std::string& collection, Reply reply) {
  if (!reply.status.ok()) return reply;
  auto& result = std::get<SearchResult>(reply.body);
  std::vector<uint64_t> ids;
  ids.reserve(result.hits.size());
  for (const Hit& h : result.hits) ids.push_back(h.id);
  auto items = e.Get(collection, ids);
  if (!items.ok()) return FromStatus(items.status());
  result.hit_payload.clear();
  for (auto& item : *items)
    result.hit_payload.push_back(item ? std::move(item->payload) : std::string());
  return reply;
}

template <typename T>
Reply FromResult(Result<T> r) {
  if (!r.ok()) return FromStatus(r.status());
  return Reply{Status::Ok(), ReplyBody(std::move(*r))};
}

// A user or event write on a single process: not in the op log, so no sequence.
Result<WriteResult> UserWrite(Status s, size_t records) {
  if (!s.ok()) return s;
  return WriteResult{0, records};
}

}  // namespace

Status Service::CheckLimits(const Call& call) const {
  auto too_many = [&](size_t n, const char* what) -> Status {
    if (n <= limits_.max_items_per_request) return Status::Ok();
    return ResourceExhaustedError(std::to_string(n) + " " + what +
                                  " in one request; the limit is " +
                                  std::to_string(limits_.max_items_per_request));
  };
  return std::visit(
      Overloaded{
          [&](const UpsertCall& c) { return too_many(c.items.size(), "items"); },
          [&](const DeleteCall& c) { return too_many(c.ids.size(), "ids"); },
          [&](const GetCall& c) { return too_many(c.ids.size(), "ids"); },
          [&](const PutUsersCall& c) { return too_many(c.users.size(), "users"); },
          [&](const AddEventsCall& c) { return too_many(c.events.size(), "events"); },
          [&](const SearchCall& c) -> Status {
            const QuerySpec& q = c.query;
            const uint32_t k = q.quota ? q.quota->total : q.k;
            if (k <= limits_.max_k) return Status::Ok();
            return InvalidArgumentError(std::string(q.quota ? "quota total" : "k") +
                                        " must be at most " + std::to_string(limits_.max_k) +
                                        " (the server's limit); got " + std::to_string(k));
          },
          [](const auto&) { return Status::Ok(); },
      },
      call);
}

namespace {

// What cluster mode does not do yet: refused rather than done on one node only.
Status NotInClusterMode(std::string_view what) {
  return FailedPreconditionError(
      std::string(what) +
      " is not available in cluster mode yet: every node would need to switch at once "
      "(docs/cluster.md)");
}

// What routing does not fan out yet: refused rather than answered from one node's shards.
Status NotRouted(std::string_view what) {
  return FailedPreconditionError(std::string(what) +
                                 " is not routed across a cluster's shards yet; each node holds "
                                 "only its shards' items (docs/cluster.md)");
}

// Collection versions, members and shard assignment are the cluster's metadata, in etcd.
Status NeedsEtcd(std::string_view what = "collection versions") {
  return FailedPreconditionError(
      std::string(what) +
      ": cluster mode with etcd only (quiverd --cluster, docs/cluster.md); a single process "
      "switches its whole data version (POST /v1/versions/reload)");
}

ClusterInfo DescribeCluster(const cluster::Membership& m) {
  ClusterInfo out;
  const cluster::ShardAssignment assignment = m.Assignment();
  uint32_t shards = 1;
  for (const auto& [name, schema] : m.Collections()) {
    if (schema) shards = std::max(shards, schema->shards);
  }
  for (const auto& [shard, nodes] : assignment) shards = std::max(shards, shard + 1);
  for (const cluster::MemberInfo& x : m.Members()) {
    ClusterMember member{x.id, x.host, x.port, x.shards, {}};
    for (uint32_t s = 0; s < shards; ++s) {
      if (cluster::Membership::Assigned(assignment, x, s)) member.assigned.push_back(s);
    }
    out.members.push_back(std::move(member));
  }
  out.assignment = assignment;
  return out;
}

}  // namespace

Reply Service::PublishVersion(const ReloadCall& c) {
  if (router_ == nullptr) return FromStatus(NeedsEtcd());
  cluster::Membership& m = router_->members();
  Result<CollectionSchema> schema = m.SchemaOf(c.collection);
  if (!schema.ok()) return FromStatus(schema.status());
  if (Status s = cluster::CheckVersionName(c.version); !s.ok()) return FromStatus(s);
  // Checked here, where it is cheap to say: every node hosting a shard reads it the same way
  // (a node that cannot copies the version from a peer that did).
  Result<cluster::BuildManifest> manifest = cluster::ReadManifest(c.path);
  if (!manifest.ok()) return FromStatus(manifest.status());
  if (Status s = cluster::CheckBuildFits(*manifest, *schema); !s.ok()) return FromStatus(s);
  uint64_t after = 0;
  if (c.after_seq) {
    after = *c.after_seq;
  } else {
    Result<uint64_t> head = node_->LogHead(c.collection);
    if (!head.ok()) return FromStatus(head.status());
    after = *head;
  }
  return FromStatus(m.PublishVersion(c.collection, c.version, {c.path, after}));
}

Reply Service::CollectionVersions(const std::string& collection) {
  if (router_ == nullptr) return FromStatus(NeedsEtcd());
  cluster::Membership& m = router_->members();
  Result<CollectionSchema> schema = m.SchemaOf(collection);
  if (!schema.ok()) return FromStatus(schema.status());
  const cluster::VersionsRecord r = m.Versions(collection);
  VersionsInfo info{r.active, r.previous, r.Kept(), r.pending, {}};
  const std::vector<cluster::MemberInfo> members = m.Members();
  for (const std::string& v : info.versions) {
    const std::string name = cluster::EngineName(collection, v);
    for (uint32_t s = 0; s < std::max<uint32_t>(schema->shards, 1); ++s) {
      VersionReplicas rep{v, s, {}};
      for (const cluster::MemberInfo& x : members) {
        if (x.Hosts(s) && x.applied.count(name) != 0 &&
            std::find(x.blocked.begin(), x.blocked.end(), name) == x.blocked.end()) {
          rep.nodes.push_back(x.id);
        }
      }
      info.replicas.push_back(std::move(rep));
    }
  }
  return Reply{Status::Ok(), ReplyBody(std::move(info))};
}

Result<std::function<bool(const ItemRecord&)>> Service::ExportFilter(const engine::Engine& e,
                                                                     const ExportCall& c) const {
  QV_ASSIGN_OR_RETURN(const CollectionSchema schema, e.GetSchema(c.collection));
  // The copy may hold only what this node holds: every shard asked for (or, for a whole copy,
  // every shard the collection has) must be hosted here.
  std::vector<uint32_t> wanted = c.shards;
  if (wanted.empty()) {
    for (uint32_t s = 0; s < schema.shards; ++s) wanted.push_back(s);
  }
  for (uint32_t s : wanted) {
    if (s >= schema.shards) {
      return InvalidArgumentError("collection '" + c.collection + "' has " +
                                  std::to_string(schema.shards) + " shards; no shard " +
                                  std::to_string(s));
    }
    if (node_ != nullptr && !node_->Hosts(s)) {
      return FailedPreconditionError("this node does not host shard " + std::to_string(s) +
                                     " of collection '" + c.collection + "'");
    }
  }
  if (c.shards.empty() || wanted.size() == schema.shards)
    return std::function<bool(const ItemRecord&)>();
  std::vector<bool> keep(schema.shards, false);
  for (uint32_t s : wanted) keep[s] = true;
  return std::function<bool(const ItemRecord&)>(
      [schema, keep](const ItemRecord& item) { return keep[cluster::ItemShard(schema, item)]; });
}

Reply Service::SearchHere(const engine::Engine& e, const SearchCall& c) {
  if (node_ != nullptr) {
    if (Status s = node_->CheckServing(c.collection); !s.ok()) return FromStatus(std::move(s));
    for (uint32_t shard : c.query.shards) {
      if (!node_->Hosts(shard)) {
        return FromStatus(FailedPreconditionError("this node does not host shard " +
                                                  std::to_string(shard) + " of collection '" +
                                                  c.collection + "'"));
      }
    }
    if (c.min_seq != 0) {
      Status applied = node_->WaitApplied(c.collection, c.min_seq,
                                          std::chrono::steady_clock::now() + limits_.max_seq_wait);
      if (!applied.ok()) return FromStatus(applied);
    }
  }
  // Read before the search: the answer holds at least the writes up to it.
  const uint64_t seen = node_ != nullptr ? node_->Applied(c.collection) : 0;
  Reply reply = RunSearch(e, c);
  if (auto* r = std::get_if<SearchResult>(&reply.body); r != nullptr) r->seq = seen;
  return c.with_payload ? WithPayloads(e, c.collection, std::move(reply)) : reply;
}

namespace {

// The collection a read names (nullptr: the call is no read of one collection); const or not
// as the call is.
template <typename CallT>
auto ReadCollection(CallT& call) {
  using Name = std::conditional_t<std::is_const_v<CallT>, const std::string, std::string>;
  return std::visit(
      [](auto& c) -> Name* {
        using T = std::decay_t<decltype(c)>;
        if constexpr (std::is_same_v<T, SearchCall> || std::is_same_v<T, GetCall> ||
                      std::is_same_v<T, GetUserCall> || std::is_same_v<T, GetListCall> ||
                      std::is_same_v<T, ListListsCall> || std::is_same_v<T, IntentCall>) {
          return &c.collection;
        } else if constexpr (std::is_same_v<T, DescribeCollectionCall>) {
          return &c.name;
        } else {
          return nullptr;
        }
      },
      call);
}

}  // namespace

std::string Service::NotReady() const {
  const std::shared_ptr<engine::Engine> e = root_.engine();
  if (e == nullptr) return "loading";
  if (!e->WriteRefusal().empty()) return "refusing writes";
  if (node_ != nullptr) {
    for (const cluster::FollowerState& f : node_->Followers()) {
      if (!f.blocked.empty()) return "a collection is not served";
    }
  }
  return "";
}

Reply Service::Handle(const Call& call) {
  if (const auto* batch = std::get_if<SearchBatchCall>(&call)) {
    // Each search on its own, in order, as if it came alone (limits, routing, versions).
    if (batch->searches.size() > limits_.max_batch) {
      return FromStatus(ResourceExhaustedError(
          std::to_string(batch->searches.size()) + " searches in one batch; the limit is " +
          std::to_string(limits_.max_batch) + " (quiverd --max-batch)"));
    }
    SearchBatchResult out;
    out.results.reserve(batch->searches.size());
    for (const SearchCall& search : batch->searches) {
      Reply r = Handle(search);
      SearchOutcome one{std::move(r.status), {}};
      if (auto* result = std::get_if<SearchResult>(&r.body)) one.result = std::move(*result);
      out.results.push_back(std::move(one));
    }
    return Reply{Status::Ok(), ReplyBody(std::move(out))};
  }
  if (Status s = CheckLimits(call); !s.ok()) return FromStatus(std::move(s));
  if (root_.engine() == nullptr) {
    return FromStatus(UnavailableError("the data root is loading (version '" +
                                       root_.current_version() +
                                       "'); GET /readyz answers 200 once it serves"));
  }
  if (router_ == nullptr) return Run(call);
  // Cluster versions (cluster/versions.h): a read goes to the collection's active version,
  // pinned for the whole request: its sub-requests name the version, and the replicas answer
  // from it whatever their own view of the active version is. Writes go on as they are.
  const std::string* asked = ReadCollection(call);
  if (asked == nullptr) return Run(call);
  Call pinned = call;
  if (asked->find('@') != std::string::npos) return HandlePinned(std::move(pinned));
  *ReadCollection(pinned) = router_->members().PinnedServingName(*asked);
  Reply reply = HandlePinned(std::move(pinned));
  if (auto* info = std::get_if<CollectionInfo>(&reply.body)) info->schema.name = *asked;
  return reply;
}

Reply Service::HandlePinned(Call pinned) {
  std::string* name = ReadCollection(pinned);
  const std::string local = cluster::LocalName(*name);
  std::shared_ptr<engine::Engine> e = root_.engine();
  if (auto* search = std::get_if<SearchCall>(&pinned)) {
    // A search this node cannot answer alone fans out (net/router.h).
    Result<CollectionSchema> schema = e->GetSchema(local);
    // A version this node has not loaded (yet): the cluster's schema; its replicas answer.
    if (!schema.ok()) schema = router_->members().SchemaOf(local);
    if (!schema.ok()) return FromStatus(schema.status());
    std::optional<Reply> routed = router_->Route(*search, *schema, [&](const Call& sub) {
      return Handle(sub);  // a part of the search, or a read of this node's records
    });
    if (routed) return std::move(*routed);
    search->collection = local;
    return SearchHere(*e, *search);
  }
  if (!e->GetSchema(local).ok() && router_->members().SchemaOf(local).ok()) {
    return FromStatus(UnavailableError(
        "this node has not loaded version '" + std::string(cluster::VersionOf(local)) +
        "' of collection '" + std::string(cluster::LogName(local)) + "'; ask another node"));
  }
  *name = local;
  return Run(pinned);
}

Reply Service::Run(const Call& call) {
  // Cluster mode: a collection whose log this node cannot follow is not read here.
  if (node_ != nullptr) {
    const std::string* read =
        std::visit(Overloaded{
                       [](const GetCall& c) { return &c.collection; },
                       [](const GetUserCall& c) { return &c.collection; },
                       [](const GetListCall& c) { return &c.collection; },
                       [](const ExportCall& c) { return &c.collection; },
                       [](const IntentCall& c) { return &c.collection; },
                       [](const auto&) -> const std::string* { return nullptr; },
                   },
                   call);
    if (read != nullptr) {
      if (Status s = node_->CheckServing(*read); !s.ok()) return FromStatus(std::move(s));
    }
  }
  std::shared_ptr<engine::Engine> e = root_.engine();  // held for the whole request
  return std::visit(
      Overloaded{
          [&](const CreateCollectionCall& c) {
            // With etcd, the cluster's list first: every node creates it (Reconcile).
            if (router_ != nullptr) {
              Status v = engine::ValidateSchema(c.schema);
              if (!v.ok()) return FromStatus(v);
              // A new collection starts with an empty log, whatever a dropped one left.
              Status m = router_->members().CreateCollection(
                  c.schema, [&] { return node_->ResetLog(c.schema.name); });
              if (!m.ok()) return FromStatus(m);
            }
            Status s = e->CreateCollection(c.schema);
            if (router_ != nullptr && s.code() == StatusCode::kAlreadyExists) s = Status::Ok();
            if (!s.ok()) return FromStatus(s);
            // Cluster mode: the new collection replays its log (written by other nodes too).
            if (node_ != nullptr) {
              if (Status f = node_->Follow(c.schema.name); !f.ok()) return FromStatus(f);
            }
            return FromResult(e->DescribeCollection(c.schema.name));
          },
          [&](const DropCollectionCall& c) {
            if (router_ != nullptr) {
              if (Status m = router_->members().DropCollection(c.name); !m.ok())
                return FromStatus(m);
            }
            if (node_ != nullptr) node_->Unfollow(c.name);
            Status s = e->DropCollection(c.name);
            if (router_ != nullptr && s.code() == StatusCode::kNotFound) s = Status::Ok();
            return FromStatus(s);
          },
          [&](const ListCollectionsCall&) {
            std::vector<CollectionInfo> all = e->ListCollections();
            if (router_ != nullptr) {
              // Each collection once, as its active version (when this node has it).
              std::erase_if(all, [&](const CollectionInfo& c) {
                const std::string base(cluster::LogName(c.schema.name));
                return router_->members().ServingName(base) != c.schema.name;
              });
              for (CollectionInfo& c : all) c.schema.name = cluster::LogName(c.schema.name);
            }
            return Reply{Status::Ok(), ReplyBody(std::move(all))};
          },
          [&](const DescribeCollectionCall& c) {
            return FromResult(e->DescribeCollection(c.name));
          },
          [&](const UpsertCall& c) {
            return FromResult(node_ != nullptr ? node_->Upsert(c.collection, c.items)
                                               : e->Upsert(c.collection, c.items));
          },
          [&](const DeleteCall& c) {
            return FromResult(node_ != nullptr ? node_->Delete(c.collection, c.ids)
                                               : e->Delete(c.collection, c.ids));
          },
          [&](const GetCall& c) {
            auto r = e->Get(c.collection, c.ids);
            if (!r.ok()) return FromStatus(r.status());
            return Reply{Status::Ok(), ReplyBody(GetResult{std::move(*r)})};
          },
          [&](const CountCall& c) {
            if (router_ != nullptr) return FromStatus(NotRouted("count"));
            auto n = e->Count(c.collection, c.filter ? &*c.filter : nullptr);
            if (!n.ok()) return FromStatus(n.status());
            return Reply{Status::Ok(), ReplyBody(CountResult{*n})};
          },
          [&](const ScrollCall& c) {
            if (router_ != nullptr) return FromStatus(NotRouted("scroll"));
            auto page = e->Scroll(c.collection, c.cursor, c.limit, c.filter ? &*c.filter : nullptr);
            if (!page.ok()) return FromStatus(page.status());
            ScrollResult out{std::move(page->items), page->next};
            for (ItemRecord& item : out.items) {
              if (!c.with_vectors) item.vector.clear();
              if (!c.with_payload) item.payload.clear();
            }
            return Reply{Status::Ok(), ReplyBody(std::move(out))};
          },
          [&](const SearchBatchCall&) {
            return FromStatus(InternalError("a batch reached Run (Handle answers it)"));
          },
          [&](const PutUsersCall& c) {
            if (node_ != nullptr) return FromResult(node_->PutUsers(c.collection, c.users));
            return FromResult(UserWrite(e->PutUsers(c.collection, c.users), c.users.size()));
          },
          [&](const GetUserCall& c) {
            auto r = e->GetUser(c.collection, c.id);
            if (!r.ok()) return FromStatus(r.status());
            return Reply{Status::Ok(), ReplyBody(UserResult{std::move(*r)})};
          },
          [&](const AddEventsCall& c) {
            if (node_ != nullptr) return FromResult(node_->AddEvents(c.collection, c.events));
            return FromResult(UserWrite(e->AddEvents(c.collection, c.events), c.events.size()));
          },
          [&](const SearchCall& c) { return SearchHere(*e, c); },
          [&](const SnapshotCall& c) {
            return FromStatus(c.collection.empty() ? e->SnapshotAll() : e->Snapshot(c.collection));
          },
          [&](const ReloadCall& c) {
            if (!c.collection.empty()) return PublishVersion(c);
            if (node_ != nullptr) return FromStatus(NotInClusterMode("switching versions"));
            return FromStatus(root_.Reload(c.version));
          },
          [&](const RollbackCall& c) {
            if (!c.collection.empty()) {
              if (router_ == nullptr) return FromStatus(NeedsEtcd());
              return FromStatus(router_->members().RollbackVersion(c.collection));
            }
            if (node_ != nullptr) return FromStatus(NotInClusterMode("rolling back a version"));
            return FromStatus(root_.Rollback());
          },
          [&](const ListVersionsCall& c) {
            if (!c.collection.empty()) return CollectionVersions(c.collection);
            auto versions = root_.ListVersions();
            if (!versions.ok()) return FromStatus(versions.status());
            VersionsInfo info{root_.current_version(), root_.previous_version(),
                              std::move(*versions)};
            return Reply{Status::Ok(), ReplyBody(std::move(info))};
          },
          [&](const HealthCall&) {
            // Reads are served either way; a server refusing writes says why.
            const std::string refusal = e->WriteRefusal();
            std::string status = refusal.empty() ? "serving" : "degraded: read-only: " + refusal;
            if (node_ != nullptr) {
              for (const cluster::FollowerState& f : node_->Followers()) {
                if (f.blocked.empty()) continue;
                status = (status == "serving" ? "degraded: " : status + "; ") + "collection '" +
                         f.collection + "' not served: " + f.blocked;
              }
            }
            return Reply{Status::Ok(), ReplyBody(HealthResult{status, std::string(Version())})};
          },
          [&](const RunPluginCall& c) {
            // Cluster mode: through the log, run by every node; this node's outcome answers.
            auto r =
                node_ != nullptr
                    ? node_->RunPlugin(c.collection, c.plugin, c.config, c.incremental,
                                       std::chrono::steady_clock::now() + std::chrono::hours(24))
                    : e->RunPlugin(c.collection, c.plugin, c.config, c.incremental);
            if (!r.ok()) return FromStatus(r.status());
            return Reply{Status::Ok(), ReplyBody(PluginRunResult{r->kinds, r->lists, r->removed,
                                                                 r->incremental})};
          },
          [&](const GetListCall& c) {
            auto r = e->GetList(c.collection, c.kind, c.key);
            if (!r.ok()) return FromStatus(r.status());
            return Reply{Status::Ok(), ReplyBody(ListResult{std::move(*r)})};
          },
          [&](const ListListsCall& c) {
            auto r = e->ListInfos(c.collection);
            if (!r.ok()) return FromStatus(r.status());
            return Reply{Status::Ok(), ReplyBody(ListInfosResult{std::move(*r)})};
          },
          [&](const ListPluginsCall&) {
            return Reply{Status::Ok(),
                         ReplyBody(PluginsResult{plugins::Registry::Global().Names()})};
          },
          [&](const ExportCall& c) {
            auto keep = ExportFilter(*e, c);
            if (!keep.ok()) return FromStatus(keep.status());
            return FromResult(exports_.Start(e, c.collection, *keep));
          },
          [&](const ReadExportCall& c) { return FromResult(exports_.Read(c)); },
          [&](const EndExportCall& c) { return FromStatus(exports_.End(c.export_id)); },
          [&](const ClusterInfoCall&) {
            if (router_ == nullptr) return FromStatus(NeedsEtcd("the cluster's members"));
            return Reply{Status::Ok(), ReplyBody(DescribeCluster(router_->members()))};
          },
          [&](const AssignShardCall& c) {
            if (router_ == nullptr) return FromStatus(NeedsEtcd("shard assignment"));
            return FromStatus(router_->members().AssignShard(c.shard, c.nodes, router_->max_lag()));
          },
          [&](const IntentCall& c) {
            Result<CollectionSchema> schema = e->GetSchema(c.collection);
            if (!schema.ok()) return FromStatus(schema.status());
            for (uint32_t shard : c.shards) {
              if (shard >= schema->shards || (node_ != nullptr && !node_->Hosts(shard))) {
                return FromStatus(FailedPreconditionError("this node does not host shard " +
                                                          std::to_string(shard) + " of '" +
                                                          c.collection + "'"));
              }
            }
            // p "history": the user's weights over this node's items; else the similarity.
            auto sim = c.user ? e->HistoryIntent(c.collection, *c.user, c.half_life)
                              : e->ClusterSimilarity(c.collection, c.vectors);
            if (!sim.ok()) return FromStatus(sim.status());
            // Only the clusters of the shards asked for (the others may be partial here).
            for (size_t k = 0; k < sim->size() && !c.shards.empty(); ++k) {
              if (!std::binary_search(c.shards.begin(), c.shards.end(),
                                      uint32_t(k % std::max<uint32_t>(schema->shards, 1))))
                (*sim)[k] = c.user ? 0.0 : -INFINITY;
            }
            return Reply{Status::Ok(), ReplyBody(IntentResult{std::move(*sim)})};
          },
      },
      call);
}

}  // namespace quiver::net
