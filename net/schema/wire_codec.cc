#include "net/schema/wire_codec.h"

#include <flatbuffers/flatbuffers.h>

#include "base/coding.h"
#include "net/schema/quiver_generated.h"
#include "net/schema/wire_search.h"

namespace quiver::net {
namespace {

using wirecodec::FlatBufferBuilder;
using wirecodec::GetFilter;
using wirecodec::GetSearch;
using wirecodec::GetSearchResult;
using wirecodec::Offset;
using wirecodec::PutFilter;
using wirecodec::PutSearch;
using wirecodec::PutSearchResult;
using wirecodec::Str;
using wirecodec::Vec;

// ---- model -> wire ----

Offset<wire::Schema> PutSchema(FlatBufferBuilder& b, const CollectionSchema& s) {
  const IndexSpec& x = s.index;
  auto index = wire::CreateIndexSpec(b, wire::IndexType(x.type), x.hnsw_m, x.hnsw_ef_construction,
                                     x.hnsw_ef_search, x.hnsw_sq8, x.ivf_nlist, x.ivf_m,
                                     x.ivf_nbits, x.ivf_nprobe, x.ivf_refine, x.ivf_refine_int8);
  auto name = b.CreateString(s.name);
  return wire::CreateSchema(b, name, s.dim, wire::Metric(s.metric), index, s.clusters, s.topics,
                            s.max_history, s.topic_threshold, s.topic_concat, s.shards);
}

Offset<wire::Item> PutItem(FlatBufferBuilder& b, const ItemRecord& item) {
  auto vector = b.CreateVector(item.vector);
  auto topics = b.CreateVector(item.topic_weights);
  auto tags = b.CreateVector(item.tags);
  auto payload = b.CreateString(item.payload);
  return wire::CreateItem(b, item.id, vector, item.cluster, topics, item.category.has_value(),
                          item.category.value_or(0), tags, item.timestamp, payload);
}

Offset<wire::User> PutUser(FlatBufferBuilder& b, const UserRecord& user) {
  auto vector = b.CreateVector(user.vector);
  std::vector<wire::Interaction> history;
  history.reserve(user.history.size());
  for (const Interaction& e : user.history) history.emplace_back(e.item, e.timestamp);
  auto h = b.CreateVectorOfStructs(history);
  return wire::CreateUser(b, user.id, vector, h);
}

Offset<wire::CollectionInfo> PutInfo(FlatBufferBuilder& b, const CollectionInfo& info) {
  auto schema = PutSchema(b, info.schema);
  return wire::CreateCollectionInfo(b, info.id, schema, info.items, info.op_seq, info.snapshot_seq,
                                    info.index_memory_bytes, info.trained);
}

// Builds the Request body for a call; returns (type, offset).
struct BodyRef {
  wire::RequestBody type;
  Offset<void> offset;
};

BodyRef PutCall(FlatBufferBuilder& b, const Call& call) {
  struct Visitor {
    FlatBufferBuilder& b;
    BodyRef operator()(const CreateCollectionCall& c) {
      auto s = PutSchema(b, c.schema);
      return {wire::RequestBody::CreateCollection, wire::CreateCreateCollection(b, s).Union()};
    }
    BodyRef operator()(const DropCollectionCall& c) {
      auto n = b.CreateString(c.name);
      return {wire::RequestBody::DropCollection, wire::CreateDropCollection(b, n).Union()};
    }
    BodyRef operator()(const ListCollectionsCall&) {
      return {wire::RequestBody::ListCollections, wire::CreateListCollections(b).Union()};
    }
    BodyRef operator()(const DescribeCollectionCall& c) {
      auto n = b.CreateString(c.name);
      return {wire::RequestBody::DescribeCollection, wire::CreateDescribeCollection(b, n).Union()};
    }
    BodyRef operator()(const UpsertCall& c) {
      std::vector<Offset<wire::Item>> items;
      items.reserve(c.items.size());
      for (const ItemRecord& item : c.items) items.push_back(PutItem(b, item));
      auto v = b.CreateVector(items);
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::Upsert, wire::CreateUpsert(b, n, v).Union()};
    }
    BodyRef operator()(const DeleteCall& c) {
      auto v = b.CreateVector(c.ids);
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::Delete, wire::CreateDelete(b, n, v).Union()};
    }
    BodyRef operator()(const GetCall& c) {
      auto v = b.CreateVector(c.ids);
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::Get, wire::CreateGet(b, n, v).Union()};
    }
    BodyRef operator()(const PutUsersCall& c) {
      std::vector<Offset<wire::User>> users;
      for (const UserRecord& u : c.users) users.push_back(PutUser(b, u));
      auto v = b.CreateVector(users);
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::PutUsers, wire::CreatePutUsers(b, n, v).Union()};
    }
    BodyRef operator()(const GetUserCall& c) {
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::GetUser, wire::CreateGetUser(b, n, c.id).Union()};
    }
    BodyRef operator()(const AddEventsCall& c) {
      std::vector<wire::Event> events;
      for (const Event& e : c.events) events.emplace_back(e.user, e.item, e.timestamp);
      auto v = b.CreateVectorOfStructs(events);
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::AddEvents, wire::CreateAddEvents(b, n, v).Union()};
    }
    BodyRef operator()(const SearchCall& c) {
      return {wire::RequestBody::Search, PutSearch(b, c).Union()};
    }
    BodyRef operator()(const SearchBatchCall& c) {
      std::vector<Offset<wire::Search>> searches;
      searches.reserve(c.searches.size());
      for (const SearchCall& s : c.searches) searches.push_back(PutSearch(b, s));
      auto v = b.CreateVector(searches);
      return {wire::RequestBody::SearchBatch, wire::CreateSearchBatch(b, v).Union()};
    }
    BodyRef operator()(const CountCall& c) {
      auto f = c.filter ? PutFilter(b, *c.filter) : Offset<wire::Filter>();
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::Count, wire::CreateCount(b, n, f).Union()};
    }
    BodyRef operator()(const ScrollCall& c) {
      auto f = c.filter ? PutFilter(b, *c.filter) : Offset<wire::Filter>();
      auto n = b.CreateString(c.collection);
      return {
          wire::RequestBody::Scroll,
          wire::CreateScroll(b, n, c.cursor, c.limit, f, c.with_vectors, c.with_payload).Union()};
    }
    BodyRef operator()(const SnapshotCall& c) {
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::Snapshot, wire::CreateSnapshot(b, n).Union()};
    }
    BodyRef operator()(const ReloadCall& c) {
      auto v = b.CreateString(c.version);
      auto n = b.CreateString(c.collection);
      auto p = b.CreateString(c.path);
      return {
          wire::RequestBody::Reload,
          wire::CreateReload(b, v, n, p, c.after_seq.value_or(0), c.after_seq.has_value()).Union()};
    }
    BodyRef operator()(const RollbackCall& c) {
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::Rollback, wire::CreateRollback(b, n).Union()};
    }
    BodyRef operator()(const ListVersionsCall& c) {
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::ListVersions, wire::CreateListVersions(b, n).Union()};
    }
    BodyRef operator()(const HealthCall&) {
      return {wire::RequestBody::Health, wire::CreateHealth(b).Union()};
    }
    BodyRef operator()(const RunPluginCall& c) {
      auto n = b.CreateString(c.collection);
      auto p = b.CreateString(c.plugin);
      auto cfg = b.CreateString(c.config);
      return {wire::RequestBody::RunPlugin,
              wire::CreateRunPlugin(b, n, p, cfg, c.incremental).Union()};
    }
    BodyRef operator()(const GetListCall& c) {
      auto n = b.CreateString(c.collection);
      auto k = b.CreateString(c.kind);
      return {wire::RequestBody::GetList, wire::CreateGetList(b, n, k, c.key).Union()};
    }
    BodyRef operator()(const ListListsCall& c) {
      auto n = b.CreateString(c.collection);
      return {wire::RequestBody::ListLists, wire::CreateListLists(b, n).Union()};
    }
    BodyRef operator()(const ListPluginsCall&) {
      return {wire::RequestBody::ListPlugins, wire::CreateListPlugins(b).Union()};
    }
    BodyRef operator()(const ExportCall& c) {
      auto n = b.CreateString(c.collection);
      auto shards =
          c.shards.empty() ? Offset<flatbuffers::Vector<uint32_t>>() : b.CreateVector(c.shards);
      return {wire::RequestBody::Export, wire::CreateExport(b, n, shards).Union()};
    }
    BodyRef operator()(const ReadExportCall& c) {
      auto id = b.CreateString(c.export_id);
      auto file = b.CreateString(c.file);
      return {wire::RequestBody::ReadExport,
              wire::CreateReadExport(b, id, file, c.offset, c.length).Union()};
    }
    BodyRef operator()(const ClusterInfoCall&) {
      return {wire::RequestBody::ClusterInfoRequest, wire::CreateClusterInfoRequest(b).Union()};
    }
    BodyRef operator()(const AssignShardCall& c) {
      auto nodes = b.CreateVectorOfStrings(c.nodes);
      return {wire::RequestBody::AssignShard, wire::CreateAssignShard(b, c.shard, nodes).Union()};
    }
    BodyRef operator()(const IntentCall& c) {
      auto n = b.CreateString(c.collection);
      auto vs = wirecodec::PutFloatVectors(b, c.vectors);
      auto shards = b.CreateVector(c.shards);
      return {wire::RequestBody::Intent, wire::CreateIntent(b, n, vs, shards, c.user.value_or(0),
                                                            c.user.has_value(), c.half_life)
                                             .Union()};
    }
    BodyRef operator()(const EndExportCall& c) {
      auto id = b.CreateString(c.export_id);
      return {wire::RequestBody::EndExport, wire::CreateEndExport(b, id).Union()};
    }
  };
  return std::visit(Visitor{b}, call);
}

struct ResponseRef {
  wire::ResponseBody type;
  Offset<void> offset;
};

ResponseRef PutReplyBody(FlatBufferBuilder& b, const ReplyBody& body) {
  struct Visitor {
    FlatBufferBuilder& b;
    ResponseRef operator()(const std::monostate&) {
      return {wire::ResponseBody::Ok, wire::CreateOk(b).Union()};
    }
    ResponseRef operator()(const CollectionInfo& info) {
      return {wire::ResponseBody::CollectionInfo, PutInfo(b, info).Union()};
    }
    ResponseRef operator()(const std::vector<CollectionInfo>& all) {
      std::vector<Offset<wire::CollectionInfo>> v;
      v.reserve(all.size());
      for (const CollectionInfo& info : all) v.push_back(PutInfo(b, info));
      auto vec = b.CreateVector(v);
      return {wire::ResponseBody::CollectionList, wire::CreateCollectionList(b, vec).Union()};
    }
    ResponseRef operator()(const WriteResult& w) {
      return {wire::ResponseBody::WriteResult,
              wire::CreateWriteResult(b, w.op_seq, w.changed).Union()};
    }
    ResponseRef operator()(const GetResult& g) {
      std::vector<Offset<wire::Item>> items;
      std::vector<uint8_t> found;
      for (const auto& item : g.items) {
        items.push_back(PutItem(b, item ? *item : ItemRecord{}));
        found.push_back(item.has_value());
      }
      auto iv = b.CreateVector(items);
      auto fv = b.CreateVector(found);
      return {wire::ResponseBody::Items, wire::CreateItems(b, iv, fv).Union()};
    }
    ResponseRef operator()(const UserResult& u) {
      Offset<wire::User> user = u.user ? PutUser(b, *u.user) : Offset<wire::User>();
      return {wire::ResponseBody::UserResult, wire::CreateUserResult(b, user).Union()};
    }
    ResponseRef operator()(const SearchResult& s) {
      return {wire::ResponseBody::SearchResult, PutSearchResult(b, s).Union()};
    }
    ResponseRef operator()(const SearchBatchResult& r) {
      std::vector<Offset<wire::SearchOutcome>> results;
      results.reserve(r.results.size());
      for (const SearchOutcome& o : r.results) {
        if (o.status.ok()) {
          results.push_back(wire::CreateSearchOutcome(b, 0, PutSearchResult(b, o.result)));
        } else {
          auto msg = b.CreateString(ReplyMessage(o.status.message()));
          results.push_back(
              wire::CreateSearchOutcome(b, wire::CreateError(b, uint16_t(o.status.code()), msg)));
        }
      }
      auto v = b.CreateVector(results);
      return {wire::ResponseBody::SearchBatchResult, wire::CreateSearchBatchResult(b, v).Union()};
    }
    ResponseRef operator()(const CountResult& c) {
      return {wire::ResponseBody::CountResult, wire::CreateCountResult(b, c.count).Union()};
    }
    ResponseRef operator()(const ScrollResult& r) {
      std::vector<Offset<wire::Item>> items;
      items.reserve(r.items.size());
      for (const ItemRecord& item : r.items) items.push_back(PutItem(b, item));
      auto v = b.CreateVector(items);
      return {wire::ResponseBody::ScrollResult,
              wire::CreateScrollResult(b, v, r.next.value_or(0), r.next.has_value()).Union()};
    }
    ResponseRef operator()(const VersionsInfo& v) {
      auto cur = b.CreateString(v.current);
      auto prev = b.CreateString(v.previous);
      auto list = b.CreateVectorOfStrings(v.versions);
      auto pending = b.CreateString(v.pending);
      std::vector<Offset<wire::VersionReplicas>> replicas;
      replicas.reserve(v.replicas.size());
      for (const VersionReplicas& r : v.replicas) {
        auto name = b.CreateString(r.version);
        auto nodes = b.CreateVectorOfStrings(r.nodes);
        replicas.push_back(wire::CreateVersionReplicas(b, name, r.shard, nodes));
      }
      auto reps = b.CreateVector(replicas);
      return {wire::ResponseBody::Versions,
              wire::CreateVersions(b, cur, prev, list, pending, reps).Union()};
    }
    ResponseRef operator()(const HealthResult& h) {
      auto s = b.CreateString(h.status);
      auto v = b.CreateString(h.version);
      return {wire::ResponseBody::HealthResult, wire::CreateHealthResult(b, s, v).Union()};
    }
    ResponseRef operator()(const PluginRunResult& r) {
      auto kinds = b.CreateVectorOfStrings(r.kinds);
      return {wire::ResponseBody::PluginRunResult,
              wire::CreatePluginRunResult(b, kinds, r.lists, r.removed, r.incremental).Union()};
    }
    ResponseRef operator()(const ListResult& r) {
      Offset<flatbuffers::Vector<const wire::Hit*>> list;
      if (r.list) {
        std::vector<wire::Hit> hits;
        for (const Hit& h : *r.list) hits.emplace_back(h.id, h.score);
        list = b.CreateVectorOfStructs(hits);
      }
      return {wire::ResponseBody::ListResult,
              wire::CreateListResult(b, r.list.has_value(), list).Union()};
    }
    ResponseRef operator()(const ListInfosResult& r) {
      std::vector<Offset<wire::ListInfo>> infos;
      for (const ListInfo& i : r.lists) {
        auto kind = b.CreateString(i.kind);
        auto plugin = b.CreateString(i.plugin);
        auto config = b.CreateString(i.config);
        infos.push_back(wire::CreateListInfo(b, kind, plugin, config, i.keys, i.op_seq));
      }
      auto v = b.CreateVector(infos);
      return {wire::ResponseBody::ListInfos, wire::CreateListInfos(b, v).Union()};
    }
    ResponseRef operator()(const PluginsResult& r) {
      auto names = b.CreateVectorOfStrings(r.names);
      return {wire::ResponseBody::Plugins, wire::CreatePlugins(b, names).Union()};
    }
    ResponseRef operator()(const ExportResult& r) {
      auto id = b.CreateString(r.export_id);
      std::vector<wire::ShardSeq> positions;
      positions.reserve(r.log_positions.size());
      for (const auto& [shard, seq] : r.log_positions) positions.emplace_back(shard, seq);
      auto pos = b.CreateVectorOfStructs(positions);
      std::vector<Offset<wire::ExportFile>> files;
      files.reserve(r.files.size());
      for (const ExportFile& f : r.files) {
        auto name = b.CreateString(f.name);
        files.push_back(wire::CreateExportFile(b, name, f.size, f.crc32c));
      }
      auto fv = b.CreateVector(files);
      return {wire::ResponseBody::ExportResult,
              wire::CreateExportResult(b, id, r.op_seq, pos, fv).Union()};
    }
    ResponseRef operator()(const ClusterInfo& r) {
      std::vector<Offset<wire::ClusterMember>> members;
      members.reserve(r.members.size());
      for (const ClusterMember& m : r.members) {
        auto id = b.CreateString(m.id);
        auto host = b.CreateString(m.host);
        auto shards = b.CreateVector(m.shards);
        auto assigned = b.CreateVector(m.assigned);
        members.push_back(wire::CreateClusterMember(b, id, host, m.port, shards, assigned));
      }
      std::vector<Offset<wire::ShardNodes>> assignment;
      assignment.reserve(r.assignment.size());
      for (const auto& [shard, nodes] : r.assignment) {
        auto list = b.CreateVectorOfStrings(nodes);
        assignment.push_back(wire::CreateShardNodes(b, shard, list));
      }
      auto mv = b.CreateVector(members);
      auto av = b.CreateVector(assignment);
      return {wire::ResponseBody::ClusterInfo, wire::CreateClusterInfo(b, mv, av).Union()};
    }
    ResponseRef operator()(const IntentResult& r) {
      auto v = b.CreateVector(r.similarity);
      return {wire::ResponseBody::IntentResult, wire::CreateIntentResult(b, v).Union()};
    }
    ResponseRef operator()(const ExportChunk& r) {
      auto data = b.CreateVector(reinterpret_cast<const uint8_t*>(r.data.data()), r.data.size());
      return {wire::ResponseBody::ExportChunk, wire::CreateExportChunk(b, data).Union()};
    }
  };
  return std::visit(Visitor{b}, body);
}

std::string Frame(const FlatBufferBuilder& b) {
  std::string out;
  out.reserve(kFrameHeaderBytes + b.GetSize());
  PutFixed<uint32_t>(&out, uint32_t(b.GetSize()));
  out.append(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  return out;
}

// ---- wire -> model ----

Status Bad(const std::string& what) { return InvalidArgumentError(what); }

// A failed status from the wire (an unknown code is kUnknown).
Status ErrorFromWire(const wire::Error* e) {
  const uint16_t code = e->code();
  if (code == 0 || code > uint16_t(StatusCode::kUnauthenticated)) {
    return Status(StatusCode::kUnknown, Str(e->message()));
  }
  return Status(StatusCode(code), Str(e->message()));
}

Result<CollectionSchema> GetSchema(const wire::Schema* w) {
  if (!w) return Bad("schema is missing");
  CollectionSchema s;
  s.name = Str(w->name());
  s.dim = w->dim();
  if (uint8_t(w->metric()) > uint8_t(Metric::kCosine)) return Bad("unknown metric");
  s.metric = Metric(w->metric());
  s.clusters = w->clusters();
  s.topics = w->topics();
  s.max_history = w->max_history();
  s.topic_threshold = w->topic_threshold();
  s.topic_concat = w->topic_concat();
  s.shards = w->shards();
  if (const wire::IndexSpec* x = w->index()) {
    const uint8_t t = uint8_t(x->type());
    if (t < 1 || t > 3) return Bad("unknown index type");
    s.index = IndexSpec{IndexSpec::Type(t),  x->hnsw_m(),         x->hnsw_ef_construction(),
                        x->hnsw_ef_search(), x->hnsw_sq8(),       x->ivf_nlist(),
                        x->ivf_m(),          x->ivf_nbits(),      x->ivf_nprobe(),
                        x->ivf_refine(),     x->ivf_refine_int8()};
  }
  return s;
}

ItemRecord GetItem(const wire::Item* w) {
  ItemRecord item;
  if (!w) return item;
  item.id = w->id();
  item.vector = Vec(w->vector());
  item.cluster = w->cluster();
  item.topic_weights = Vec(w->topic_weights());
  if (w->has_category()) item.category = w->category();
  item.tags = Vec(w->tags());
  item.timestamp = w->timestamp();
  item.payload = Str(w->payload());
  return item;
}

UserRecord GetUser(const wire::User* w) {
  UserRecord user;
  user.id = w->id();
  user.vector = Vec(w->vector());
  if (const auto* h = w->history()) {
    for (const wire::Interaction* e : *h) user.history.push_back({e->item(), e->timestamp()});
  }
  return user;
}

Result<CollectionInfo> GetInfo(const wire::CollectionInfo* w) {
  if (!w) return Bad("collection info is missing");
  CollectionInfo info;
  info.id = w->id();
  QV_ASSIGN_OR_RETURN(info.schema, GetSchema(w->schema()));
  info.items = w->items();
  info.op_seq = w->op_seq();
  info.snapshot_seq = w->snapshot_seq();
  info.index_memory_bytes = w->index_memory_bytes();
  info.trained = w->trained();
  return info;
}

Result<Call> CallFromWire(const wire::Request* r) {
  // The Verifier accepts a union whose type is set but whose value is absent.
  if (r->body() == nullptr) return Bad("request has no body");
  switch (r->body_type()) {
    case wire::RequestBody::CreateCollection: {
      QV_ASSIGN_OR_RETURN(auto schema, GetSchema(r->body_as_CreateCollection()->schema()));
      return Call(CreateCollectionCall{std::move(schema)});
    }
    case wire::RequestBody::DropCollection:
      return Call(DropCollectionCall{Str(r->body_as_DropCollection()->name())});
    case wire::RequestBody::ListCollections:
      return Call(ListCollectionsCall{});
    case wire::RequestBody::DescribeCollection:
      return Call(DescribeCollectionCall{Str(r->body_as_DescribeCollection()->name())});
    case wire::RequestBody::Upsert: {
      const auto* u = r->body_as_Upsert();
      UpsertCall c{Str(u->collection()), {}};
      if (u->items()) {
        c.items.reserve(u->items()->size());
        for (const wire::Item* item : *u->items()) c.items.push_back(GetItem(item));
      }
      return Call(std::move(c));
    }
    case wire::RequestBody::Delete: {
      const auto* d = r->body_as_Delete();
      return Call(DeleteCall{Str(d->collection()), Vec(d->ids())});
    }
    case wire::RequestBody::Get: {
      const auto* g = r->body_as_Get();
      return Call(GetCall{Str(g->collection()), Vec(g->ids())});
    }
    case wire::RequestBody::PutUsers: {
      const auto* p = r->body_as_PutUsers();
      PutUsersCall c{Str(p->collection()), {}};
      if (p->users()) {
        for (const wire::User* u : *p->users()) c.users.push_back(GetUser(u));
      }
      return Call(std::move(c));
    }
    case wire::RequestBody::GetUser: {
      const auto* g = r->body_as_GetUser();
      return Call(GetUserCall{Str(g->collection()), g->id()});
    }
    case wire::RequestBody::AddEvents: {
      const auto* a = r->body_as_AddEvents();
      AddEventsCall c{Str(a->collection()), {}};
      if (a->events()) {
        for (const wire::Event* e : *a->events())
          c.events.push_back({e->user(), e->item(), e->timestamp()});
      }
      return Call(std::move(c));
    }
    case wire::RequestBody::Search: {
      QV_ASSIGN_OR_RETURN(SearchCall c, GetSearch(r->body_as_Search()));
      return Call(std::move(c));
    }
    case wire::RequestBody::SearchBatch: {
      SearchBatchCall c;
      if (const auto* searches = r->body_as_SearchBatch()->searches()) {
        for (const wire::Search* w : *searches) {
          QV_ASSIGN_OR_RETURN(SearchCall one, GetSearch(w));
          c.searches.push_back(std::move(one));
        }
      }
      return Call(std::move(c));
    }
    case wire::RequestBody::Count: {
      const auto* w = r->body_as_Count();
      CountCall c{Str(w->collection()), std::nullopt};
      if (w->filter()) {
        QV_ASSIGN_OR_RETURN(Filter f, GetFilter(w->filter()));
        c.filter = std::move(f);
      }
      return Call(std::move(c));
    }
    case wire::RequestBody::Scroll: {
      const auto* w = r->body_as_Scroll();
      ScrollCall c;
      c.collection = Str(w->collection());
      c.cursor = w->cursor();
      c.limit = w->limit();
      if (w->filter()) {
        QV_ASSIGN_OR_RETURN(Filter f, GetFilter(w->filter()));
        c.filter = std::move(f);
      }
      c.with_vectors = w->vectors();
      c.with_payload = w->payload();
      return Call(std::move(c));
    }
    case wire::RequestBody::Snapshot:
      return Call(SnapshotCall{Str(r->body_as_Snapshot()->collection())});
    case wire::RequestBody::Reload: {
      const auto* w = r->body_as_Reload();
      ReloadCall c{Str(w->version()), Str(w->collection()), Str(w->path()), std::nullopt};
      if (w->has_after_seq()) c.after_seq = w->after_seq();
      return Call(std::move(c));
    }
    case wire::RequestBody::Rollback:
      return Call(RollbackCall{Str(r->body_as_Rollback()->collection())});
    case wire::RequestBody::ListVersions:
      return Call(ListVersionsCall{Str(r->body_as_ListVersions()->collection())});
    case wire::RequestBody::Health:
      return Call(HealthCall{});
    case wire::RequestBody::RunPlugin: {
      const auto* x = r->body_as_RunPlugin();
      return Call(RunPluginCall{Str(x->collection()), Str(x->plugin()), Str(x->config()),
                                x->incremental()});
    }
    case wire::RequestBody::GetList: {
      const auto* x = r->body_as_GetList();
      return Call(GetListCall{Str(x->collection()), Str(x->kind()), x->key()});
    }
    case wire::RequestBody::ListLists:
      return Call(ListListsCall{Str(r->body_as_ListLists()->collection())});
    case wire::RequestBody::ListPlugins:
      return Call(ListPluginsCall{});
    case wire::RequestBody::Export: {
      const auto* x = r->body_as_Export();
      ExportCall call{Str(x->collection()), {}};
      if (const auto* v = x->shards()) call.shards.assign(v->begin(), v->end());
      return Call(std::move(call));
    }
    case wire::RequestBody::ReadExport: {
      const auto* x = r->body_as_ReadExport();
      return Call(ReadExportCall{Str(x->export_id()), Str(x->file()), x->offset(), x->length()});
    }
    case wire::RequestBody::EndExport:
      return Call(EndExportCall{Str(r->body_as_EndExport()->export_id())});
    case wire::RequestBody::Intent: {
      const auto* x = r->body_as_Intent();
      IntentCall call{Str(x->collection()),
                      wirecodec::GetFloatVectors(x->vectors()),
                      {},
                      std::nullopt,
                      x->half_life()};
      if (const auto* v = x->shards()) call.shards.assign(v->begin(), v->end());
      if (x->has_user()) call.user = x->user();
      return Call(std::move(call));
    }
    case wire::RequestBody::ClusterInfoRequest:
      return Call(ClusterInfoCall{});
    case wire::RequestBody::AssignShard: {
      const auto* x = r->body_as_AssignShard();
      AssignShardCall call{x->shard(), {}};
      if (const auto* v = x->nodes()) {
        for (const flatbuffers::String* s : *v) call.nodes.push_back(Str(s));
      }
      return Call(std::move(call));
    }
    case wire::RequestBody::NONE:
      break;
  }
  return Bad("request has no known body");
}

Result<ReplyBody> GetReplyBody(const wire::Response* r) {
  if (r->body() == nullptr) return Bad("response has no body");
  switch (r->body_type()) {
    case wire::ResponseBody::Ok:
      return ReplyBody(std::monostate{});
    case wire::ResponseBody::CollectionInfo: {
      QV_ASSIGN_OR_RETURN(auto info, GetInfo(r->body_as_CollectionInfo()));
      return ReplyBody(std::move(info));
    }
    case wire::ResponseBody::CollectionList: {
      std::vector<CollectionInfo> all;
      if (const auto* v = r->body_as_CollectionList()->collections()) {
        for (const wire::CollectionInfo* w : *v) {
          QV_ASSIGN_OR_RETURN(auto info, GetInfo(w));
          all.push_back(std::move(info));
        }
      }
      return ReplyBody(std::move(all));
    }
    case wire::ResponseBody::WriteResult: {
      const auto* w = r->body_as_WriteResult();
      return ReplyBody(WriteResult{w->op_seq(), w->changed()});
    }
    case wire::ResponseBody::Items: {
      const auto* w = r->body_as_Items();
      GetResult g;
      const size_t n = w->items() ? w->items()->size() : 0;
      if ((w->found() ? w->found()->size() : 0) != n)
        return Bad("items and found differ in length");
      for (size_t i = 0; i < n; ++i) {
        if (w->found()->Get(i)) {
          g.items.push_back(GetItem(w->items()->Get(i)));
        } else {
          g.items.push_back(std::nullopt);
        }
      }
      return ReplyBody(std::move(g));
    }
    case wire::ResponseBody::UserResult: {
      const auto* u = r->body_as_UserResult();
      UserResult out;
      if (u->user()) out.user = GetUser(u->user());
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::SearchResult:
      return ReplyBody(GetSearchResult(r->body_as_SearchResult()));
    case wire::ResponseBody::SearchBatchResult: {
      SearchBatchResult out;
      if (const auto* results = r->body_as_SearchBatchResult()->results()) {
        for (const wire::SearchOutcome* o : *results) {
          SearchOutcome one;
          if (const wire::Error* e = o->error()) {
            one.status = ErrorFromWire(e);
          } else if (o->result() != nullptr) {
            one.result = GetSearchResult(o->result());
          } else {
            return Bad("a batch search outcome with neither an error nor a result");
          }
          out.results.push_back(std::move(one));
        }
      }
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::CountResult:
      return ReplyBody(CountResult{r->body_as_CountResult()->count()});
    case wire::ResponseBody::ScrollResult: {
      const auto* w = r->body_as_ScrollResult();
      ScrollResult out;
      if (w->items()) {
        for (const wire::Item* item : *w->items()) out.items.push_back(GetItem(item));
      }
      if (w->has_next()) out.next = w->next();
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::Versions: {
      const auto* v = r->body_as_Versions();
      VersionsInfo out{Str(v->current()), Str(v->previous()), {}, Str(v->pending()), {}};
      if (v->versions()) {
        for (const flatbuffers::String* s : *v->versions()) out.versions.push_back(Str(s));
      }
      if (v->replicas()) {
        for (const wire::VersionReplicas* x : *v->replicas()) {
          VersionReplicas rep{Str(x->version()), x->shard(), {}};
          if (x->nodes()) {
            for (const flatbuffers::String* s : *x->nodes()) rep.nodes.push_back(Str(s));
          }
          out.replicas.push_back(std::move(rep));
        }
      }
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::HealthResult: {
      const auto* h = r->body_as_HealthResult();
      return ReplyBody(HealthResult{Str(h->status()), Str(h->version())});
    }
    case wire::ResponseBody::PluginRunResult: {
      const auto* x = r->body_as_PluginRunResult();
      PluginRunResult out{{}, x->lists(), x->removed(), x->incremental()};
      if (x->kinds()) {
        for (const flatbuffers::String* s : *x->kinds()) out.kinds.push_back(Str(s));
      }
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::ListResult: {
      const auto* x = r->body_as_ListResult();
      ListResult out;
      if (x->found()) {
        out.list.emplace();
        if (x->list()) {
          for (const wire::Hit* h : *x->list()) out.list->push_back({h->id(), h->score()});
        }
      }
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::ListInfos: {
      ListInfosResult out;
      if (const auto* v = r->body_as_ListInfos()->lists()) {
        for (const wire::ListInfo* i : *v) {
          out.lists.push_back(
              {Str(i->kind()), Str(i->plugin()), Str(i->config()), i->keys(), i->op_seq()});
        }
      }
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::Plugins: {
      PluginsResult out;
      if (const auto* v = r->body_as_Plugins()->names()) {
        for (const flatbuffers::String* s : *v) out.names.push_back(Str(s));
      }
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::ExportResult: {
      const auto* x = r->body_as_ExportResult();
      ExportResult out;
      out.export_id = Str(x->export_id());
      out.op_seq = x->op_seq();
      if (const auto* v = x->log_positions()) {
        for (const wire::ShardSeq* p : *v) out.log_positions[p->shard()] = p->seq();
      }
      if (const auto* v = x->files()) {
        for (const wire::ExportFile* f : *v) {
          out.files.push_back({Str(f->name()), f->size(), f->crc32c()});
        }
      }
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::ClusterInfo: {
      ClusterInfo out;
      const auto* x = r->body_as_ClusterInfo();
      if (const auto* ms = x->members()) {
        for (const wire::ClusterMember* m : *ms) {
          ClusterMember member{Str(m->id()), Str(m->host()), m->port(), {}, {}};
          if (m->shards()) member.shards.assign(m->shards()->begin(), m->shards()->end());
          if (m->assigned()) member.assigned.assign(m->assigned()->begin(), m->assigned()->end());
          out.members.push_back(std::move(member));
        }
      }
      if (const auto* as = x->assignment()) {
        for (const wire::ShardNodes* a : *as) {
          std::vector<std::string>& nodes = out.assignment[a->shard()];
          if (a->nodes()) {
            for (const flatbuffers::String* s : *a->nodes()) nodes.push_back(Str(s));
          }
        }
      }
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::IntentResult: {
      IntentResult out;
      if (const auto* v = r->body_as_IntentResult()->similarity()) {
        out.similarity.assign(v->begin(), v->end());
      }
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::ExportChunk: {
      ExportChunk out;
      if (const auto* v = r->body_as_ExportChunk()->data()) {
        out.data.assign(reinterpret_cast<const char*>(v->data()), v->size());
      }
      return ReplyBody(std::move(out));
    }
    case wire::ResponseBody::NONE:
      break;
  }
  return Bad("response has no known body");
}

constexpr int kMaxTableDepth = 32;

flatbuffers::Verifier MakeVerifier(std::string_view buffer, int max_depth = kMaxTableDepth) {
  return flatbuffers::Verifier(reinterpret_cast<const uint8_t*>(buffer.data()), buffer.size(),
                               max_depth, /*max_tables=*/10000000);
}

}  // namespace

std::string EncodeRequestFrame(uint64_t id, std::string_view api_key, const Call& call) {
  FlatBufferBuilder b(1024);
  BodyRef body = PutCall(b, call);
  auto key = api_key.empty() ? Offset<flatbuffers::String>()
                             : b.CreateString(api_key.data(), api_key.size());
  b.Finish(wire::CreateRequest(b, id, key, body.type, body.offset));
  return Frame(b);
}

std::string EncodeResponseFrame(uint64_t id, const Reply& reply) {
  FlatBufferBuilder b(1024);
  if (!reply.status.ok()) {
    auto msg = b.CreateString(ReplyMessage(reply.status.message()));
    auto err = wire::CreateError(b, uint16_t(reply.status.code()), msg);
    b.Finish(wire::CreateResponse(b, id, err));
  } else {
    ResponseRef body = PutReplyBody(b, reply.body);
    b.Finish(wire::CreateResponse(b, id, 0, body.type, body.offset));
  }
  return Frame(b);
}

uint32_t DecodeFrameLength(const char* header) { return DecodeFixed<uint32_t>(header); }

Result<DecodedRequest> DecodeRequest(std::string_view buffer) {
  auto verifier = MakeVerifier(buffer);
  if (!wire::VerifyRequestBuffer(verifier)) {
    // Only on failure: whether the buffer is valid but nested too deep (a filter's `and`/`or`
    // many levels down), so that the error says so rather than "not valid".
    auto deep = MakeVerifier(buffer, /*max_depth=*/4096);
    if (wire::VerifyRequestBuffer(deep)) {
      return Bad("request nests tables deeper than " + std::to_string(kMaxTableDepth) +
                 " levels (a filter may nest at most 16)");
    }
    return Bad("frame is not a valid Request FlatBuffer");
  }
  const wire::Request* r = wire::GetRequest(buffer.data());
  DecodedRequest out;
  out.id = r->id();
  out.api_key = Str(r->api_key());
  QV_ASSIGN_OR_RETURN(out.call, CallFromWire(r));
  return out;
}

Result<DecodedResponse> DecodeResponse(std::string_view buffer) {
  auto verifier = MakeVerifier(buffer);
  if (!verifier.VerifyBuffer<wire::Response>(nullptr))
    return Bad("frame is not a valid Response FlatBuffer");
  const wire::Response* r = flatbuffers::GetRoot<wire::Response>(buffer.data());
  DecodedResponse out;
  out.id = r->id();
  if (const wire::Error* e = r->error()) {
    out.reply.status = ErrorFromWire(e);
    return out;
  }
  QV_ASSIGN_OR_RETURN(out.reply.body, GetReplyBody(r));
  return out;
}

}  // namespace quiver::net
