#include "net/exports.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "base/crc32c.h"
#include "engine/engine.h"
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

}  // namespace
}  // namespace quiver::net
