#include "engine/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "tests/testing/temp_dir.h"

namespace quiver::engine {
namespace {

namespace fs = std::filesystem;

CollectionSchema Schema(const std::string& name, uint32_t dim,
                        IndexSpec::Type type = IndexSpec::Type::kHnsw) {
  CollectionSchema s;
  s.name = name;
  s.dim = dim;
  s.metric = index::Metric::kL2;
  s.index.type = type;
  s.index.ivf_nlist = 16;
  s.index.ivf_m = 4;
  s.index.ivf_nbits = 4;
  s.clusters = 4;
  s.topics = 2;
  s.max_history = 3;
  return s;
}

std::vector<ItemRecord> Items(uint64_t first, size_t n, uint32_t dim, uint32_t seed = 1) {
  std::mt19937 rng(seed + uint32_t(first));
  std::normal_distribution<float> g;
  std::vector<ItemRecord> out(n);
  for (size_t i = 0; i < n; ++i) {
    ItemRecord& item = out[i];
    item.id = first + i;
    for (uint32_t d = 0; d < dim; ++d) item.vector.push_back(g(rng));
    item.cluster = uint32_t(item.id % 4);
    item.topic_weights = {0.5f, 0.5f};
    item.category = int64_t(item.id % 3);
    item.tags = {int64_t(item.id)};
    item.timestamp = int64_t(1000 + item.id);
    item.payload = "{\"n\":" + std::to_string(item.id) + "}";
  }
  return out;
}

class EngineTest : public ::testing::Test {
 protected:
  std::unique_ptr<Engine> OpenEngine() {
    auto e = Engine::Open(dir_.path() + "/v1", {});
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? std::move(*e) : nullptr;
  }
  quiver::testing::ScopedTempDir dir_;
};

TEST_F(EngineTest, CreateListDescribeDrop) {
  auto e = OpenEngine();
  ASSERT_TRUE(e->CreateCollection(Schema("a", 8)).ok());
  ASSERT_TRUE(e->CreateCollection(Schema("b", 4, IndexSpec::Type::kFlat)).ok());
  EXPECT_EQ(e->CreateCollection(Schema("a", 8)).code(), StatusCode::kAlreadyExists);
  auto all = e->ListCollections();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].schema.name, "a");
  EXPECT_EQ(all[1].schema, Schema("b", 4, IndexSpec::Type::kFlat));
  ASSERT_TRUE(e->DropCollection("a").ok());
  EXPECT_EQ(e->DescribeCollection("a").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e->DropCollection("a").code(), StatusCode::kNotFound);
  // A re-created collection starts empty (the old records went with the drop).
  ASSERT_TRUE(e->CreateCollection(Schema("a", 8)).ok());
  EXPECT_EQ(e->DescribeCollection("a")->items, 0u);
  e.reset();
  e = OpenEngine();
  EXPECT_EQ(e->ListCollections().size(), 2u);
  // Cluster mode's shards: 1 to 1024, kept with the schema.
  CollectionSchema sharded = Schema("s", 4);
  sharded.shards = 0;
  EXPECT_EQ(e->CreateCollection(sharded).code(), StatusCode::kInvalidArgument);
  sharded.shards = 1025;
  EXPECT_EQ(e->CreateCollection(sharded).code(), StatusCode::kInvalidArgument);
  sharded.shards = 8;
  ASSERT_TRUE(e->CreateCollection(sharded).ok());
  e.reset();
  e = OpenEngine();
  EXPECT_EQ(e->DescribeCollection("s")->schema.shards, 8u);
}

TEST_F(EngineTest, BadSchemasAreRejectedWithTheField) {
  auto e = OpenEngine();
  auto bad = [&](const CollectionSchema& s, const std::string& word) {
    Status st = e->CreateCollection(s);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st;
    EXPECT_NE(st.message().find(word), std::string::npos) << st;
  };
  bad(Schema("", 4), "name");
  bad(Schema("has space", 4), "name");
  for (const char* dots : {".", "..", "...", ".hidden"})
    bad(Schema(dots, 4), "may not start with '.'");
  bad(Schema("x", 0), "dim");
  auto s = Schema("x", 10, IndexSpec::Type::kIvfPq);
  s.index.ivf_m = 3;  // does not divide 10
  bad(s, "divide");
  s = Schema("x", 4);
  s.topics = 100000;
  bad(s, "topics");
  EXPECT_TRUE(e->ListCollections().empty());
}

TEST_F(EngineTest, UpsertGetDeleteAndSearch) {
  auto e = OpenEngine();
  ASSERT_TRUE(e->CreateCollection(Schema("c", 8)).ok());
  auto items = Items(1, 200, 8);
  auto w = e->Upsert("c", items);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->op_seq, 1u);
  EXPECT_EQ(w->changed, 200u);
  std::vector<uint64_t> ids = {5, 500, 7};
  auto got = e->Get("c", ids);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)[0], items[4]);
  EXPECT_FALSE((*got)[1].has_value());
  EXPECT_EQ((*got)[2], items[6]);

  index::SearchParams p;
  p.k = 1;
  auto hits = e->Search("c", items[41].vector, p);
  ASSERT_TRUE(hits.ok());
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_EQ((*hits)[0].id, 42u);
  EXPECT_FLOAT_EQ((*hits)[0].score, 0.0f);

  // Replace item 42's vector: the index follows.
  ItemRecord moved = items[41];
  moved.vector.assign(8, 50.0f);
  ASSERT_TRUE(e->Upsert("c", std::span(&moved, 1)).ok());
  hits = e->Search("c", moved.vector, p);
  EXPECT_EQ((*hits)[0].id, 42u);
  hits = e->Search("c", items[41].vector, p);
  EXPECT_NE((*hits)[0].id, 42u);

  std::vector<uint64_t> del = {42, 9999};
  auto d = e->Delete("c", del);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->changed, 1u);
  EXPECT_EQ(d->op_seq, 3u);
  hits = e->Search("c", moved.vector, p);
  EXPECT_NE((*hits)[0].id, 42u);
  EXPECT_FALSE((*e->Get("c", del))[0].has_value());
  auto none = e->Delete("c", del);
  EXPECT_EQ(none->changed, 0u);
  EXPECT_EQ(e->DescribeCollection("c")->items, 199u);
  EXPECT_TRUE(e->CheckConsistency("c").ok());
}

// Count (all items, or those passing a filter) and scroll: pages in id order whose cursor
// stays valid across writes between pages: every item present throughout comes exactly once,
// one deleted before its page never, one added behind the cursor not, one added ahead yes.
TEST_F(EngineTest, CountAndScrollPagesStayValidAcrossWrites) {
  auto e = OpenEngine();
  ASSERT_TRUE(e->CreateCollection(Schema("c", 4)).ok());
  std::vector<ItemRecord> items;
  for (uint64_t id = 10; id <= 1000; id += 10) items.push_back(Items(id, 1, 4)[0]);  // 100
  ASSERT_TRUE(e->Upsert("c", items).ok());
  EXPECT_EQ(*e->Count("c", nullptr), 100u);
  const Filter cat0{Filter::Op::kEq, Filter::Field::kCategory, {0}};  // id % 3 == 0
  EXPECT_EQ(*e->Count("c", &cat0), 33u);
  const Filter bad{Filter::Op::kAnd, {}, {}, 0, 0, {}};
  EXPECT_EQ(e->Count("c", &bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Count("none", nullptr).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e->Scroll("c", 0, 0, nullptr).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(e->Scroll("c", 0, 10001, nullptr).status().code(), StatusCode::kInvalidArgument);

  std::map<uint64_t, int> seen;
  std::optional<uint64_t> cursor = 0;
  int pages = 0;
  while (cursor) {
    auto page = e->Scroll("c", *cursor, 30, nullptr);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_LE(page->items.size(), 30u);
    for (size_t i = 0; i < page->items.size(); ++i) {
      const ItemRecord& item = page->items[i];
      EXPECT_GE(item.id, *cursor);
      if (i > 0) EXPECT_GT(item.id, page->items[i - 1].id);
      if (page->next) EXPECT_LT(item.id, *page->next);
      ++seen[item.id];
      if (item.id % 10 == 0) EXPECT_EQ(item, items[item.id / 10 - 1]);
    }
    if (++pages == 1) {
      // Between the first and second pages: delete one ahead (990) and one behind (20), add
      // one behind (15) and one ahead (995), replace one ahead (500).
      std::vector<uint64_t> gone = {990, 20};
      ASSERT_TRUE(e->Delete("c", gone).ok());
      ItemRecord behind = Items(15, 1, 4)[0], ahead = Items(995, 1, 4)[0];
      ItemRecord replaced = Items(500, 1, 4, 7)[0];
      const std::vector<ItemRecord> writes = {behind, ahead, replaced};
      ASSERT_TRUE(e->Upsert("c", writes).ok());
      items[49] = replaced;
    }
    cursor = page->next;
  }
  EXPECT_EQ(pages, 4);  // 30, then 70 left (69 ahead of the cursor, 995 added): 30, 30, 10
  EXPECT_EQ(seen.count(990), 0u);
  EXPECT_EQ(seen.count(15), 0u);
  EXPECT_EQ(seen.at(995), 1);
  EXPECT_EQ(seen.at(20), 1);  // on the first page, before it was deleted
  for (uint64_t id = 10; id <= 1000; id += 10) {
    if (id != 990) EXPECT_EQ(seen[id], 1) << id;
  }
  // A filtered scroll takes only matching items; a page past the last id ends the scroll.
  auto filtered = e->Scroll("c", 0, 1000, &cat0);
  ASSERT_TRUE(filtered.ok());
  EXPECT_FALSE(filtered->next.has_value());
  EXPECT_EQ(filtered->items.size(), *e->Count("c", &cat0));
  for (const ItemRecord& item : filtered->items) EXPECT_EQ(item.id % 3, 0u);
  auto past = e->Scroll("c", 1001, 10, nullptr);
  ASSERT_TRUE(past.ok());
  EXPECT_TRUE(past->items.empty());
  EXPECT_FALSE(past->next.has_value());
}

TEST_F(EngineTest, ABadItemRejectsTheWholeBatch) {
  auto e = OpenEngine();
  ASSERT_TRUE(e->CreateCollection(Schema("c", 4)).ok());
  auto check = [&](std::vector<ItemRecord> batch, const std::string& word) {
    auto r = e->Upsert("c", batch);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << word;
    EXPECT_NE(r.status().message().find(word), std::string::npos) << r.status();
  };
  auto base = Items(1, 5, 4);
  auto b = base;
  b[3].vector.pop_back();
  check(b, "dim 4");
  b = base;
  b[2].vector[1] = std::nanf("");
  check(b, "NaN");
  b = base;
  b[1].vector[0] = INFINITY;
  check(b, "Inf");
  b = base;
  b[4].id = b[0].id;
  check(b, "twice");
  b = base;
  b[0].cluster = 4;
  check(b, "cluster");
  b = base;
  b[0].topic_weights = {1.0f};
  check(b, "topic weights");
  b = base;
  b[0].topic_weights = {0.9f, 0.9f};
  check(b, "sum to 1");
  b = base;
  b[0].payload.assign(kMaxPayloadBytes + 1, 'x');
  check(b, "payload");
  EXPECT_EQ(e->Upsert("nope", base).status().code(), StatusCode::kNotFound);
  std::vector<uint64_t> ids = {1, 2, 3, 4, 5};
  for (const auto& got : *e->Get("c", ids)) EXPECT_FALSE(got.has_value());
  EXPECT_EQ(e->DescribeCollection("c")->op_seq, 0u);
  std::vector<uint64_t> twice = {1, 1};
  EXPECT_EQ(e->Delete("c", twice).status().code(), StatusCode::kInvalidArgument);
  std::vector<float> q(3, 0.0f);
  EXPECT_EQ(e->Search("c", q, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, UsersAndEventsKeepTheNewestHistory) {
  auto e = OpenEngine();
  ASSERT_TRUE(e->CreateCollection(Schema("c", 4)).ok());
  UserRecord u{7, {1, 2, 3, 4}, {}};
  ASSERT_TRUE(e->PutUsers("c", std::span(&u, 1)).ok());
  UserRecord bad{8, {1, 2}, {}};
  EXPECT_EQ(e->PutUsers("c", std::span(&bad, 1)).code(), StatusCode::kInvalidArgument);
  std::vector<Event> ev = {{7, 100, 10}, {7, 101, 30}, {9, 5, 1}, {7, 102, 20}};
  ASSERT_TRUE(e->AddEvents("c", ev).ok());
  std::vector<Event> more = {{7, 103, 25}, {7, 104, 5}};
  ASSERT_TRUE(e->AddEvents("c", more).ok());
  auto got = e->GetUser("c", 7);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->vector, u.vector);
  // max_history 3, newest first: 101@30, 103@25, 102@20.
  std::vector<storage::Interaction> want = {{101, 30}, {103, 25}, {102, 20}};
  EXPECT_EQ((*got)->history, want);
  auto nine = e->GetUser("c", 9);
  ASSERT_TRUE(nine->has_value());
  EXPECT_TRUE((*nine)->vector.empty());
  EXPECT_FALSE(e->GetUser("c", 10)->has_value());
}

TEST_F(EngineTest, ReopenReplaysTheOpLogAfterTheSnapshot) {
  auto items = Items(1, 300, 8);
  {
    auto e = OpenEngine();
    ASSERT_TRUE(e->CreateCollection(Schema("c", 8)).ok());
    ASSERT_TRUE(e->Upsert("c", std::span(items).first(200)).ok());
    ASSERT_TRUE(e->Snapshot("c").ok());
    EXPECT_EQ(e->DescribeCollection("c")->snapshot_seq, 1u);
    ASSERT_TRUE(e->Upsert("c", std::span(items).subspan(200)).ok());
    std::vector<uint64_t> del = {3, 250};
    ASSERT_TRUE(e->Delete("c", del).ok());
  }
  auto e = OpenEngine();
  auto info = e->DescribeCollection("c");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->op_seq, 3u);
  EXPECT_EQ(info->snapshot_seq, 1u);
  EXPECT_EQ(info->items, 298u);
  EXPECT_TRUE(e->CheckConsistency("c").ok());
  index::SearchParams p;
  p.k = 1;
  EXPECT_EQ((*e->Search("c", items[259].vector, p))[0].id, 260u);
  EXPECT_NE((*e->Search("c", items[249].vector, p))[0].id, 250u);
}

// Cluster mode: each write stored with its write-log position; a replayed message (a position
// already applied for its shard) changes nothing, across a reopen too.
TEST_F(EngineTest, WritesAtALogPositionApplyOnceAndTheirPositionsSurviveReopen) {
  auto items = Items(1, 20, 4);
  auto changed = Items(1, 20, 4, /*seed=*/9);
  {
    auto e = OpenEngine();
    ASSERT_TRUE(e->CreateCollection(Schema("c", 4)).ok());
    EXPECT_TRUE(e->LogPositions("c")->empty());
    ASSERT_TRUE(e->Upsert("c", items, LogPosition{0, 5}).ok());
    // The same message again (a replay), and an older one: no-ops.
    auto again = e->Upsert("c", changed, LogPosition{0, 5});
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->changed, 0u);
    ASSERT_TRUE(e->Upsert("c", changed, LogPosition{0, 3}).ok());
    EXPECT_EQ((*e->Get("c", std::vector<uint64_t>{1}))[0]->vector, items[0].vector);
    // Another shard has its own position.
    ASSERT_TRUE(e->Upsert("c", std::span(changed).first(1), LogPosition{1, 4}).ok());
    EXPECT_EQ((*e->Get("c", std::vector<uint64_t>{1}))[0]->vector, changed[0].vector);
    // A delete of nothing present and a refused message still move the position on.
    ASSERT_TRUE(e->Delete("c", std::vector<uint64_t>{999}, LogPosition{0, 7}).ok());
    ASSERT_TRUE(e->SkipLogPosition("c", LogPosition{0, 9}).ok());
    UserRecord u{7, {1, 2, 3, 4}, {}};
    ASSERT_TRUE(e->PutUsers("c", std::span(&u, 1), LogPosition{1, 10}).ok());
    std::vector<Event> ev = {{7, 3, 100}};
    ASSERT_TRUE(e->AddEvents("c", ev, LogPosition{1, 11}).ok());
    ASSERT_TRUE(e->AddEvents("c", ev, LogPosition{1, 11}).ok());  // replayed: not twice
    EXPECT_EQ((*e->GetUser("c", 7))->history.size(), 1u);
    std::vector<uint64_t> del = {2};
    ASSERT_TRUE(e->Delete("c", del, LogPosition{0, 12}).ok());
    ASSERT_TRUE(e->Delete("c", del, LogPosition{0, 12}).ok());
  }
  auto e = OpenEngine();
  auto positions = e->LogPositions("c");
  ASSERT_TRUE(positions.ok()) << positions.status();
  EXPECT_EQ(*positions, (std::map<uint32_t, uint64_t>{{0, 12}, {1, 11}}));
  EXPECT_EQ(e->DescribeCollection("c")->items, 19u);
  // A replay after the reopen is still a no-op.
  ASSERT_TRUE(e->Upsert("c", changed, LogPosition{0, 12}).ok());
  EXPECT_EQ((*e->Get("c", std::vector<uint64_t>{3}))[0]->vector, items[2].vector);
  EXPECT_FALSE((*e->Get("c", std::vector<uint64_t>{2}))[0].has_value());
  // Dropping the collection forgets its positions.
  ASSERT_TRUE(e->DropCollection("c").ok());
  ASSERT_TRUE(e->CreateCollection(Schema("c", 4)).ok());
  EXPECT_TRUE(e->LogPositions("c")->empty());
}

// Cluster mode's bootstrap: a collection copied from one engine (records as of one moment, its
// newest index snapshot and the op log after it) replaces another engine's stale copy whole;
// a damaged or mismatched copy is refused and leaves the old collection as it was.
TEST_F(EngineTest, AnExportedCollectionReplacesAnotherEnginesCopyWhole) {
  const std::string export_dir = dir_.path() + "/export";
  CollectionSchema schema = Schema("c", 8, IndexSpec::Type::kFlat);
  auto a = Engine::Open(dir_.path() + "/a", {});
  ASSERT_TRUE(a.ok()) << a.status();
  Engine& src = **a;
  ASSERT_TRUE(src.CreateCollection(schema).ok());
  ASSERT_TRUE(src.Upsert("c", Items(1, 300, 8), LogPosition{0, 1}).ok());
  ASSERT_TRUE(src.Snapshot("c").ok());
  // Ops after the snapshot: the copy replays them from its op log.
  ASSERT_TRUE(src.Upsert("c", Items(250, 100, 8, /*seed=*/5), LogPosition{0, 2}).ok());
  ASSERT_TRUE(src.Delete("c", std::vector<uint64_t>{3, 4, 5}, LogPosition{0, 3}).ok());
  UserRecord u{7, std::vector<float>(8, 0.5f), {}};
  ASSERT_TRUE(src.PutUsers("c", std::span(&u, 1), LogPosition{0, 4}).ok());
  std::vector<Event> ev = {{7, 10, 100}, {7, 11, 101}};
  ASSERT_TRUE(src.AddEvents("c", ev, LogPosition{0, 5}).ok());
  ASSERT_TRUE(src.RunPlugin("c", "i2i_knn", R"({"k": 5})", false).ok());
  auto info = src.ExportCollection("c", export_dir);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_GT(info->snapshot_seq, 0u);
  EXPECT_GT(info->op_seq, info->snapshot_seq);
  EXPECT_EQ(info->log_positions, (std::map<uint32_t, uint64_t>{{0, 5}}));
  EXPECT_GT(info->files.size(), 1u);
  for (const std::string& f : info->files) EXPECT_TRUE(fs::is_regular_file(export_dir + "/" + f));
  EXPECT_EQ(src.ExportCollection("c", export_dir).status().code(), StatusCode::kAlreadyExists);
  // Written after the export: not in the copy.
  ASSERT_TRUE(src.Upsert("c", Items(1000, 1, 8), LogPosition{0, 6}).ok());

  auto copy_export = [&](const std::string& to) {
    fs::remove_all(to);
    fs::copy(export_dir, to, fs::copy_options::recursive);
    return to;
  };
  auto b = Engine::Open(dir_.path() + "/b", {});
  ASSERT_TRUE(b.ok()) << b.status();
  Engine& dst = **b;
  ASSERT_TRUE(dst.CreateCollection(schema).ok());
  ASSERT_TRUE(dst.Upsert("c", Items(2000, 10, 8)).ok());
  // Refused copies: damaged, of another collection, of another schema. The stale copy stays.
  {
    const std::string damaged = copy_export(dir_.path() + "/damaged");
    std::fstream f(damaged + "/records", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
    f.close();
    EXPECT_EQ(dst.ImportCollection("c", damaged).code(), StatusCode::kDataLoss);
    EXPECT_EQ(dst.ImportCollection("other", copy_export(dir_.path() + "/named")).code(),
              StatusCode::kInvalidArgument);
    EXPECT_EQ(dst.DescribeCollection("c")->items, 10u);
  }
  {
    // A collection of the same name but another schema is not replaced.
    auto e = Engine::Open(dir_.path() + "/e", {});
    ASSERT_TRUE(e.ok());
    CollectionSchema other = schema;
    other.dim = 4;
    ASSERT_TRUE((*e)->CreateCollection(other).ok());
    EXPECT_EQ((*e)->ImportCollection("c", copy_export(dir_.path() + "/schema")).code(),
              StatusCode::kFailedPrecondition);
    EXPECT_EQ((*e)->DescribeCollection("c")->schema.dim, 4u);
  }

  auto check = [&](Engine& e) {
    std::vector<uint64_t> ids;
    for (uint64_t id = 1; id <= 2010; ++id) ids.push_back(id);
    auto want = src.Get("c", ids);
    auto got = e.Get("c", ids);
    ASSERT_TRUE(want.ok() && got.ok());
    (*want)[999] = std::nullopt;  // id 1000 was written after the export
    EXPECT_EQ(*got, *want);
    EXPECT_EQ(*e.GetUser("c", 7), *src.GetUser("c", 7));
    EXPECT_EQ(*e.ListInfos("c"), *src.ListInfos("c"));
    EXPECT_EQ(*e.GetList("c", "i2i", 10), *src.GetList("c", "i2i", 10));
    EXPECT_TRUE(e.GetList("c", "i2i", 10)->has_value());
    EXPECT_EQ(*e.LogPositions("c"), (std::map<uint32_t, uint64_t>{{0, 5}}));
    EXPECT_TRUE(e.CheckConsistency("c").ok()) << e.CheckConsistency("c");
    index::SearchParams params;
    params.k = 10;
    for (const ItemRecord& q : Items(5000, 5, 8, /*seed=*/3)) {
      auto hits = e.Search("c", q.vector, params);
      ASSERT_TRUE(hits.ok()) << hits.status();
      ASSERT_FALSE(hits->empty());
      for (const Hit& h : *hits) EXPECT_NE(h.id, 1000u);
    }
  };
  ASSERT_TRUE(dst.ImportCollection("c", copy_export(dir_.path() + "/good")).ok());
  EXPECT_EQ(dst.DescribeCollection("c")->items, 346u);
  check(dst);
  // The copy loaded the exported index snapshot, and survives a reopen.
  EXPECT_EQ(dst.DescribeCollection("c")->snapshot_seq, info->snapshot_seq);
  b->reset();
  b = Engine::Open(dir_.path() + "/b", {});
  ASSERT_TRUE(b.ok()) << b.status();
  check(**b);
  // The writes go on from the copy's position.
  ASSERT_TRUE((*b)->Upsert("c", Items(1000, 1, 8), LogPosition{0, 6}).ok());
  EXPECT_EQ((*b)->DescribeCollection("c")->items, 347u);
  // Into an engine without the collection: created.
  auto f = Engine::Open(dir_.path() + "/f", {});
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->ImportCollection("c", copy_export(dir_.path() + "/fresh")).ok());
  check(**f);
}

TEST_F(EngineTest, CorruptSnapshotIsSetAsideAndTheIndexRebuilt) {
  auto items = Items(1, 100, 8);
  std::string snap_dir;
  {
    auto e = OpenEngine();
    ASSERT_TRUE(e->CreateCollection(Schema("c", 8)).ok());
    ASSERT_TRUE(e->Upsert("c", items).ok());
    ASSERT_TRUE(e->Snapshot("c").ok());
    snap_dir = dir_.path() + "/v1/snapshots/" + std::to_string(e->DescribeCollection("c")->id);
  }
  std::string path;
  for (const auto& f : fs::directory_iterator(snap_dir)) path = f.path().string();
  ASSERT_FALSE(path.empty());
  {
    const std::string file = path + "/global.qvi";
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(fs::file_size(file) / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(std::streamoff(fs::file_size(file) / 2));
    c = char(c ^ 0x5A);
    f.write(&c, 1);
  }
  auto e = OpenEngine();
  EXPECT_TRUE(fs::exists(path + ".corrupt"));
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(e->DescribeCollection("c")->items, 100u);
  EXPECT_EQ(e->DescribeCollection("c")->snapshot_seq, 0u);
  EXPECT_TRUE(e->CheckConsistency("c").ok());
}

TEST_F(EngineTest, SnapshotsAreRotatedAndTheOpLogTrimmed) {
  auto e = OpenEngine();
  ASSERT_TRUE(e->CreateCollection(Schema("c", 8)).ok());
  for (int round = 0; round < 4; ++round) {
    ASSERT_TRUE(e->Upsert("c", Items(uint64_t(round) * 10, 10, 8)).ok());
    ASSERT_TRUE(e->Snapshot("c").ok());
  }
  const std::string dir =
      dir_.path() + "/v1/snapshots/" + std::to_string(e->DescribeCollection("c")->id);
  std::vector<std::string> names;
  for (const auto& f : fs::directory_iterator(dir)) names.push_back(f.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"00000000000000000003", "00000000000000000004"}));
  // Removing the newest leaves the older one, whose following ops are still in the log.
  fs::remove_all(dir + "/" + names[1]);
  e.reset();
  e = OpenEngine();
  EXPECT_EQ(e->DescribeCollection("c")->snapshot_seq, 3u);
  EXPECT_EQ(e->DescribeCollection("c")->items, 40u);
  EXPECT_TRUE(e->CheckConsistency("c").ok());
}

TEST_F(EngineTest, ClusterSubIndexesFollowMovesAndSurviveReopen) {
  auto items = Items(1, 400, 8);  // clusters id % 4
  {
    auto e = OpenEngine();
    ASSERT_TRUE(e->CreateCollection(Schema("c", 8)).ok());
    ASSERT_TRUE(e->Upsert("c", items).ok());
    ASSERT_TRUE(e->Snapshot("c").ok());
    // Move every fifth item to the next cluster, delete a few, after the snapshot.
    std::vector<ItemRecord> moved;
    for (size_t i = 0; i < items.size(); i += 5) {
      items[i].cluster = (items[i].cluster + 1) % 4;
      moved.push_back(items[i]);
    }
    ASSERT_TRUE(e->Upsert("c", moved).ok());
    std::vector<uint64_t> del = {2, 3, 4};
    ASSERT_TRUE(e->Delete("c", del).ok());
    EXPECT_TRUE(e->CheckConsistency("c").ok());
  }
  auto e = OpenEngine();  // snapshot + replay of the moves and deletes
  Status s = e->CheckConsistency("c");
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(e->DescribeCollection("c")->items, 397u);
  e.reset();
  // Without snapshots: rebuilt from the items.
  fs::remove_all(dir_.path() + "/v1/snapshots");
  e = OpenEngine();
  s = e->CheckConsistency("c");
  EXPECT_TRUE(s.ok()) << s;
}

TEST_F(EngineTest, IvfPqCollectionTrainsOnItsFirstBatch) {
  auto e = OpenEngine();
  ASSERT_TRUE(e->CreateCollection(Schema("ivf", 8, IndexSpec::Type::kIvfPq)).ok());
  EXPECT_FALSE(e->DescribeCollection("ivf")->trained);
  auto small = e->Upsert("ivf", Items(1, 3, 8));
  EXPECT_EQ(small.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(small.status().message().find("first batch"), std::string::npos);
  ASSERT_TRUE(e->Upsert("ivf", Items(1, 400, 8)).ok());
  EXPECT_TRUE(e->DescribeCollection("ivf")->trained);
  ASSERT_TRUE(e->Upsert("ivf", Items(1000, 2, 8)).ok());
  e.reset();
  e = OpenEngine();  // no snapshot: rebuilt (and retrained) from the stored items
  EXPECT_EQ(e->DescribeCollection("ivf")->items, 402u);
  EXPECT_TRUE(e->CheckConsistency("ivf").ok());
}

}  // namespace
}  // namespace quiver::engine

namespace quiver::engine {
namespace {

// Replacing items leaves HNSW tombstones; a snapshot compacts once they outnumber the items:
// memory comes back down and every item is still found, also after a restart.
TEST(EngineCompactionTest, SnapshotCompactsTombstoneHeavyIndexes) {
  quiver::testing::ScopedTempDir dir;
  auto e = std::move(Engine::Open(dir.path() + "/v", {})).value();
  CollectionSchema s;
  s.name = "c";
  s.dim = 8;
  s.index.type = IndexSpec::Type::kHnsw;
  s.clusters = 2;
  ASSERT_TRUE(e->CreateCollection(s).ok());
  std::mt19937 rng(3);
  std::normal_distribution<float> g;
  std::vector<ItemRecord> items(1500);
  auto shuffle_vectors = [&] {
    for (size_t i = 0; i < items.size(); ++i) {
      items[i].id = i + 1;
      items[i].cluster = uint32_t(i % 2);
      items[i].vector.clear();
      for (int d = 0; d < 8; ++d) items[i].vector.push_back(g(rng));
    }
  };
  shuffle_vectors();
  ASSERT_TRUE(e->Upsert("c", items).ok());
  const size_t fresh_bytes = e->DescribeCollection("c")->index_memory_bytes;
  for (int round = 0; round < 4; ++round) {
    shuffle_vectors();
    ASSERT_TRUE(e->Upsert("c", items).ok());
  }
  const size_t heavy_bytes = e->DescribeCollection("c")->index_memory_bytes;
  EXPECT_GT(heavy_bytes, 2 * fresh_bytes) << "replacements left tombstones";
  // Writes go on while the snapshot compacts: they are caught up from the op log. At most 500
  // of them, whatever the machine's speed: the ones written during the compaction stay in the
  // new indexes as tombstones once deleted below, and so count in the memory compared.
  std::atomic<bool> done{false};
  std::atomic<uint64_t> written{0};
  std::thread writer([&] {
    std::mt19937 wrng(8);
    for (uint64_t id = 100000; id < 100500 && (!done.load() || id < 100050); ++id) {
      ItemRecord it;
      it.id = id;
      it.cluster = uint32_t(id % 2);
      for (int d = 0; d < 8; ++d) it.vector.push_back(float(wrng() % 1000) / 100.0f);
      ASSERT_TRUE(e->Upsert("c", std::vector<ItemRecord>{it}).ok());
      written = id - 100000 + 1;
    }
  });
  ASSERT_TRUE(e->Snapshot("c").ok());
  done = true;
  writer.join();
  for (uint64_t id = 100000; id < 100000 + written.load(); ++id) {
    ASSERT_TRUE(e->Get("c", std::vector<uint64_t>{id})->at(0).has_value());
  }
  EXPECT_TRUE(e->CheckConsistency("c").ok());
  std::vector<uint64_t> extra;
  for (uint64_t id = 100000; id < 100000 + written.load(); ++id) extra.push_back(id);
  ASSERT_TRUE(e->Delete("c", extra).ok());
  const size_t compact_bytes = e->DescribeCollection("c")->index_memory_bytes;
  EXPECT_LT(compact_bytes, heavy_bytes / 2);
  EXPECT_EQ(e->DescribeCollection("c")->items, items.size());
  EXPECT_TRUE(e->CheckConsistency("c").ok());
  auto found_self = [&](Engine& eng) {
    size_t hits = 0;
    for (size_t i = 0; i < items.size(); i += 10) {
      auto r = eng.Search("c", items[i].vector, {.k = 1, .ef = 64});
      hits += r.ok() && !r->empty() && (*r)[0].id == items[i].id;
    }
    return hits;
  };
  EXPECT_GE(found_self(*e), 145u);  // of 150: each item's own vector finds it
  e.reset();
  e = std::move(Engine::Open(dir.path() + "/v", {})).value();
  EXPECT_TRUE(e->CheckConsistency("c").ok());
  EXPECT_GE(found_self(*e), 145u);
  EXPECT_LT(e->DescribeCollection("c")->index_memory_bytes, heavy_bytes / 2);
}

}  // namespace
}  // namespace quiver::engine
