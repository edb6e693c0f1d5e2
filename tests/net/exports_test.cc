#include "net/exports.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/crc32c.h"
#include "cluster/node.h"
#include "engine/data_root.h"
#include "engine/engine.h"
#include "net/service.h"
#include "tests/testing/temp_dir.h"

namespace quiver::net {
namespace {

namespace fs = std::filesystem;

class ExportsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto e = engine::Engine::Open(dir_.path() + "/v", {});
    ASSERT_TRUE(e.ok()) << e.status();
    engine_ = std::move(*e);
    CollectionSchema s;
    s.name = "c";
    s.dim = 4;
    ASSERT_TRUE(engine_->CreateCollection(s).ok());
    std::vector<ItemRecord> items(50);
    for (uint64_t i = 0; i < items.size(); ++i) {
      items[i].id = i;
      items[i].vector = {float(i), 1, 2, 3};
    }
    ASSERT_TRUE(engine_->Upsert("c", items).ok());
    ASSERT_TRUE(engine_->Snapshot("c").ok());
  }

  // The whole of one file of the export, read in pieces of `piece` bytes.
  static std::string ReadAll(Exports& ex, const std::string& id, const ExportFile& f,
                             uint32_t piece) {
    std::string out;
    while (out.size() < f.size) {
      auto chunk = ex.Read({id, f.name, out.size(), piece});
      EXPECT_TRUE(chunk.ok()) << chunk.status();
      if (!chunk.ok() || chunk->data.empty()) break;
      EXPECT_LE(chunk->data.size(), piece);
      out += chunk->data;
    }
    return out;
  }

  testing::ScopedTempDir dir_;
  std::shared_ptr<engine::Engine> engine_;
};

TEST_F(ExportsTest, AnExportListsItsFilesWhichReadBackWhole) {
  Exports ex;
  auto r = ex.Start(engine_, "c");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->op_seq, engine_->DescribeCollection("c")->op_seq);
  ASSERT_GE(r->files.size(), 2u);  // the records and the index snapshot
  EXPECT_EQ(r->files[0].name, "records");
  for (const ExportFile& f : r->files) {
    const std::string data = ReadAll(ex, r->export_id, f, 1000);
    EXPECT_EQ(data.size(), f.size) << f.name;
    EXPECT_EQ(crc32c::Value(data), f.crc32c) << f.name;
  }
  // Reads that cannot be served say why.
  EXPECT_EQ(ex.Read({"nope", "records", 0, 10}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ex.Read({r->export_id, "../db/CURRENT", 0, 10}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ex.Read({r->export_id, "records", r->files[0].size + 1, 10}).status().code(),
            StatusCode::kOutOfRange);
  auto end = ex.Read({r->export_id, "records", r->files[0].size, 10});
  ASSERT_TRUE(end.ok());
  EXPECT_TRUE(end->data.empty());
  EXPECT_EQ(ex.Start(engine_, "missing").status().code(), StatusCode::kNotFound);
  // Ended: its files are gone.
  const std::string dir = engine_->dir() + "/exports/" + r->export_id;
  EXPECT_TRUE(fs::exists(dir));
  ASSERT_TRUE(ex.End(r->export_id).ok());
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_EQ(ex.Read({r->export_id, "records", 0, 10}).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ex.End(r->export_id).code(), StatusCode::kNotFound);
}

TEST_F(ExportsTest, OpenExportsAreBoundedAndIdleOnesAndStrayCopiesRemoved) {
  // A copy left by an earlier process.
  const std::string stray = engine_->dir() + "/exports/0123456789abcdef";
  fs::create_directories(stray);
  {
    Exports ex(std::chrono::seconds(3600), /*max_open=*/2);
    auto a = ex.Start(engine_, "c");
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_FALSE(fs::exists(stray));
    ASSERT_TRUE(ex.Start(engine_, "c").ok());
    EXPECT_EQ(ex.Start(engine_, "c").status().code(), StatusCode::kResourceExhausted);
    ASSERT_TRUE(ex.End(a->export_id).ok());
    ASSERT_TRUE(ex.Start(engine_, "c").ok());
  }
  // Destroyed: every copy removed.
  EXPECT_TRUE(fs::is_empty(engine_->dir() + "/exports"));
  // Idle for longer than the limit: removed by the next start.
  Exports ex(std::chrono::seconds(0), 1);
  auto a = ex.Start(engine_, "c");
  ASSERT_TRUE(a.ok());
  // Any time at all since its last use is past a limit of 0 s.
  auto b = ex.Start(engine_, "c");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(ex.Read({a->export_id, "records", 0, 10}).status().code(), StatusCode::kNotFound);
}

// A copy of some shards, asked of the service: only their items, no index snapshot; it imports
// into an engine that then holds exactly those items. Shards the collection lacks are refused.
TEST(ExportServiceTest, ACopyOfSomeShardsHoldsOnlyTheirItems) {
  testing::ScopedTempDir dir;
  auto root = engine::DataRoot::Open(dir.path() + "/root", {});
  ASSERT_TRUE(root.ok()) << root.status();
  Service service(**root, Limits{});
  CollectionSchema s;
  s.name = "c";
  s.dim = 4;
  s.shards = 2;
  ASSERT_TRUE(service.Handle(CreateCollectionCall{s}).status.ok());
  std::vector<ItemRecord> items(60);
  for (uint64_t i = 0; i < items.size(); ++i) {
    items[i].id = i;
    items[i].vector = {float(i), 0, 1, 2};
  }
  ASSERT_TRUE(service.Handle(UpsertCall{"c", items}).status.ok());
  ASSERT_TRUE(service.Handle(SnapshotCall{"c"}).status.ok());
  EXPECT_EQ(service.Handle(ExportCall{"c", {2}}).status.code(), StatusCode::kInvalidArgument);
  Reply r = service.Handle(ExportCall{"c", {1}});
  ASSERT_TRUE(r.status.ok()) << r.status;
  const auto& info = std::get<ExportResult>(r.body);
  ASSERT_EQ(info.files.size(), 1u);  // the records only: the index is rebuilt from them
  const std::string copy = dir.path() + "/copy";
  fs::create_directories(copy);
  std::string data;
  while (data.size() < info.files[0].size) {
    Reply piece = service.Handle(ReadExportCall{info.export_id, "records", data.size(), 4096});
    ASSERT_TRUE(piece.status.ok()) << piece.status;
    data += std::get<ExportChunk>(piece.body).data;
  }
  std::ofstream(copy + "/records", std::ios::binary) << data;
  ASSERT_TRUE(service.Handle(EndExportCall{info.export_id}).status.ok());
  auto other = engine::Engine::Open(dir.path() + "/other", {});
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->ImportCollection("c", copy).ok());
  std::vector<uint64_t> ids;
  ids.reserve(items.size());
  for (const ItemRecord& item : items) ids.push_back(item.id);
  auto got = (*other)->Get("c", ids);
  ASSERT_TRUE(got.ok());
  size_t held = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const bool shard1 = cluster::ItemShard(s, items[i]) == 1;
    EXPECT_EQ((*got)[i].has_value(), shard1) << "item " << i;
    held += shard1;
  }
  EXPECT_GT(held, 10u);
  EXPECT_LT(held, 50u);
  EXPECT_EQ((*other)->DescribeCollection("c")->items, held);
  EXPECT_TRUE((*other)->CheckConsistency("c").ok());
}

}  // namespace
}  // namespace quiver::net
