#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "base/coding.h"
#include "engine/data_root.h"
#include "engine/engine.h"
#include "formats/bulk_input.h"
#include "tests/testing/temp_dir.h"

namespace quiver::engine {
namespace {

namespace fs = std::filesystem;
using namespace ::quiver::formats;

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::vector<float> Floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(n);
  for (float& x : v) x = g(rng);
  return v;
}

std::string Fvecs(const std::vector<float>& data, size_t dim) {
  std::string out;
  for (size_t i = 0; i < data.size() / dim; ++i) {
    PutFixed<int32_t>(&out, int32_t(dim));
    PutArray(&out, &data[i * dim], dim);
  }
  return out;
}

std::string Npy(const std::vector<float>& data, size_t n, size_t dim,
                const std::string& descr = "<f4", const std::string& order = "False") {
  std::string header = "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': (" +
                       std::to_string(n) + ", " + std::to_string(dim) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(1);
  out.push_back(0);
  PutFixed<uint16_t>(&out, uint16_t(header.size()));
  out += header;
  PutArray(&out, data.data(), data.size());
  return out;
}

std::unique_ptr<Engine> OpenEngine(const std::string& dir) {
  auto r = Engine::Open(dir, {});
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? std::move(*r) : nullptr;
}

class BulkTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) { return dir_.path() + "/" + name; }
  quiver::testing::ScopedTempDir dir_;
};

TEST_F(BulkTest, ReadsFvecsAndNpyBitExact) {
  auto data = Floats(size_t{5} * 3, 1);
  WriteFile(Path("a.fvecs"), Fvecs(data, 3));
  WriteFile(Path("a.npy"), Npy(data, 5, 3));
  for (const char* name : {"a.fvecs", "a.npy"}) {
    auto v = ReadVectors(Path(name));
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->n, 5u);
    EXPECT_EQ(v->dim, 3u);
    EXPECT_EQ(v->data, data) << name;
  }
}

TEST_F(BulkTest, BadVectorFilesNameTheProblem) {
  auto data = Floats(size_t{4} * 2, 2);
  auto expect = [&](const std::string& name, const std::string& bytes, const std::string& word) {
    WriteFile(Path(name), bytes);
    auto r = ReadVectors(Path(name));
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(r.status().message().find(word), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find(name), std::string::npos) << r.status();
  };
  std::string fv = Fvecs(data, 2);
  expect("t.fvecs", fv.substr(0, fv.size() - 1), "truncated");
  std::string mixed = fv;
  mixed[12] = 3;  // row 1 claims dim 3
  expect("m.fvecs", mixed, "dimension");
  expect("f8.npy", Npy(data, 4, 2, "<f8"), "float32");
  expect("fo.npy", Npy(data, 4, 2, "<f4", "True"), "C order");
  expect("short.npy", Npy(data, 5, 2), "bytes");
  expect("x.bin", fv, ".fvecs or .npy");
  EXPECT_EQ(ReadVectors(Path("none.fvecs")).status().code(), StatusCode::kNotFound);
}

TEST_F(BulkTest, ReadsCsvWithQuotedJsonAndJsonl) {
  // The payload field is quoted, holds commas, doubled quotes and a line break.
  WriteFile(Path("a.csv"), std::string("id,cluster,topics,category,tags,timestamp,payload\r\n") +
                               R"(7,1,0.25;0.75,3,1;2;3,100,"{""t"": ""a, \""b\"""",)" + "\n" +
                               R"( ""u"": 1}")" + "\r\n9,0,1;0,,,,\n");
  auto csv = ReadAttributes(Path("a.csv"));
  ASSERT_TRUE(csv.ok()) << csv.status();
  ASSERT_EQ(csv->size(), 2u);
  const auto& a = (*csv)[0];
  EXPECT_EQ(a.id, 7u);
  EXPECT_EQ(a.cluster, 1u);
  EXPECT_EQ(a.topic_weights, (std::vector<float>{0.25f, 0.75f}));
  EXPECT_EQ(a.category, 3);
  EXPECT_EQ(a.tags, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(a.timestamp, 100);
  EXPECT_EQ(a.payload, R"({"t":"a, \"b\"","u":1})");
  EXPECT_FALSE((*csv)[1].category.has_value());
  EXPECT_TRUE((*csv)[1].payload.empty());

  WriteFile(
      Path("a.jsonl"),
      "{\"id\": 7, \"cluster\": 1, \"topics\": [0.25, 0.75], \"category\": 3, \"tags\": [1, 2, 3],"
      " \"timestamp\": 100, \"payload\": {\"t\": [1, {\"x\": null}]}}\n\n{\"id\": 9}\n");
  auto jl = ReadAttributes(Path("a.jsonl"));
  ASSERT_TRUE(jl.ok()) << jl.status();
  ASSERT_EQ(jl->size(), 2u);
  EXPECT_EQ((*jl)[0].topic_weights, a.topic_weights);
  EXPECT_EQ((*jl)[0].tags, a.tags);
  EXPECT_EQ((*jl)[0].payload, R"({"t":[1,{"x":null}]})");
  EXPECT_EQ((*jl)[1].id, 9u);
}

TEST_F(BulkTest, BadAttributeFilesNameTheRow) {
  auto expect = [&](const std::string& name, const std::string& text, const std::string& where,
                    const std::string& word) {
    WriteFile(Path(name), text);
    auto r = ReadAttributes(Path(name));
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(r.status().message().find(where), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find(word), std::string::npos) << r.status();
  };
  expect("u.csv", "id,colour\n1,red\n", ":1", "unknown column 'colour'");
  expect("n.csv", "id,cluster\n1,2\n2,x\n", "row 2", "bad cluster");
  expect("f.csv", "id,cluster\n1,2,3\n", "row 1", "fields");
  expect("p.csv", "id,payload\n1,\"{oops\"\n", "row 1", "JSON");
  expect("q.csv", "id,payload\n1,\"never closed\n", "unterminated", "quoted");
  expect("o.jsonl", "{\"id\": 1}\n[1, 2]\n", ":2", "JSON object");
  expect("k.jsonl", "{\"id\": 1, \"colour\": 2}\n", ":1", "unknown field 'colour'");
  expect("t.jsonl", "{\"id\": -4}\n", ":1", "bad id");
  auto items = AssembleItems(VectorFile{2, 1, {1.0f, 2.0f}}, std::vector<ItemRecord>(3));
  EXPECT_EQ(items.status().code(), StatusCode::kInvalidArgument);
}

CollectionSchema Schema(const std::string& name) {
  CollectionSchema s;
  s.name = name;
  s.dim = 8;
  s.index.type = IndexSpec::Type::kHnsw;
  return s;
}

std::vector<ItemRecord> Items(size_t n, uint32_t seed) {
  auto data = Floats(n * 8, seed);
  std::vector<ItemRecord> attributes(n);
  for (size_t i = 0; i < n; ++i) {
    attributes[i].id = (i * 7919) % 100003;  // not sorted
    attributes[i].payload = "{\"i\":" + std::to_string(i) + "}";
  }
  return *AssembleItems(VectorFile{n, 8, data}, std::move(attributes));
}

TEST_F(BulkTest, BulkLoadIsVisibleWholeAndSurvivesReopen) {
  auto items = Items(3000, 5);
  {
    auto e = OpenEngine(Path("v1"));
    auto info = e->BulkLoad(Schema("c"), items);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->items, 3000u);
    EXPECT_EQ(info->snapshot_seq, 1u);
    EXPECT_EQ(e->BulkLoad(Schema("c"), items).status().code(), StatusCode::kAlreadyExists);
    auto dup = items;
    dup[10].id = dup[20].id;
    EXPECT_EQ(e->BulkLoad(Schema("d"), dup).status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(e->DescribeCollection("d").status().code(), StatusCode::kNotFound);
    // Later writes go on top of the bulk load.
    ASSERT_TRUE(e->Upsert("c", Items(10, 6)).ok());
  }
  auto e = OpenEngine(Path("v1"));
  auto info = e->DescribeCollection("c");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->snapshot_seq, 1u);  // loaded from the build's snapshot, then replayed
  EXPECT_EQ(info->op_seq, 2u);
  EXPECT_TRUE(e->CheckConsistency("c").ok());
  std::vector<uint64_t> ids = {items[123].id};
  EXPECT_EQ((*e->Get("c", ids))[0], items[123]);
  index::SearchParams p;
  p.k = 1;
  EXPECT_EQ((*e->Search("c", items[77].vector, p))[0].id, items[77].id);
}

// A bulk load tells its phases in order, the store and the index with item counts up to the
// whole; an HNSW build in parts of at least 10,000 items (about 1%), then the same collection
// as one built at once, item for item.
TEST_F(BulkTest, BulkLoadReportsItsProgressByPhase) {
  auto items = Items(25000, 8);
  auto e = OpenEngine(Path("v1"));
  std::vector<std::string> phases;
  std::vector<uint64_t> index_done;
  uint64_t store_done = 0;
  Engine::BulkLoadOptions o;
  o.kmeans_clusters = 3;
  o.progress = [&](std::string_view phase, uint64_t done, uint64_t total) {
    if (phases.empty() || phases.back() != phase) phases.emplace_back(phase);
    if (phase == "index") {
      EXPECT_EQ(total, 25000u);
      if (!index_done.empty()) EXPECT_GT(done, index_done.back());
      index_done.push_back(done);
    }
    if (phase == "store") {
      EXPECT_GE(done, store_done);
      store_done = done;
    }
  };
  ASSERT_TRUE(e->BulkLoad(Schema("c"), items, o).ok());
  EXPECT_EQ(phases, (std::vector<std::string>{"kmeans", "store", "index", "snapshot"}));
  EXPECT_EQ(index_done, (std::vector<uint64_t>{0, 10000, 20000, 25000}));
  EXPECT_EQ(store_done, 25000u);
  EXPECT_TRUE(e->CheckConsistency("c").ok());
  EXPECT_EQ(e->DescribeCollection("c")->items, 25000u);
}

TEST_F(BulkTest, DataRootSwitchesVersionsAndRollsBack) {
  const std::string root = Path("root");
  auto dr = DataRoot::Open(root, {});
  ASSERT_TRUE(dr.ok()) << dr.status();
  EXPECT_EQ((*dr)->current_version(), "initial");
  ASSERT_TRUE((*dr)->engine()->CreateCollection(Schema("live")).ok());
  {
    auto built = OpenEngine(root + "/versions/v2");
    ASSERT_TRUE(built->BulkLoad(Schema("c"), Items(500, 7)).ok());
  }
  auto old_engine = (*dr)->engine();  // a request in flight across the switch
  ASSERT_TRUE((*dr)->Reload("v2").ok());
  EXPECT_EQ((*dr)->current_version(), "v2");
  EXPECT_EQ((*dr)->previous_version(), "initial");
  EXPECT_TRUE((*dr)->engine()->DescribeCollection("c").ok());
  EXPECT_FALSE((*dr)->engine()->DescribeCollection("live").ok());
  EXPECT_TRUE(old_engine->DescribeCollection("live").ok());  // still usable by its holder
  old_engine.reset();

  EXPECT_EQ((*dr)->Reload("v2").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*dr)->Reload("nope").code(), StatusCode::kNotFound);
  EXPECT_EQ((*dr)->Reload("../x").code(), StatusCode::kInvalidArgument);
  for (const char* name : {".", "..", "v2.partial"}) {
    const Status s = (*dr)->Reload(name);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(s.message().find("not start with '.'"), std::string::npos) << s;
  }
  // A version whose database is damaged fails to load and v2 keeps serving.
  fs::create_directories(root + "/versions/broken/db");
  WriteFile(root + "/versions/broken/db/CURRENT", "MANIFEST-999999\n");
  Status s = (*dr)->Reload("broken");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("keeps serving"), std::string::npos) << s;
  EXPECT_EQ((*dr)->current_version(), "v2");
  EXPECT_TRUE((*dr)->engine()->DescribeCollection("c").ok());

  ASSERT_TRUE((*dr)->Rollback().ok());
  EXPECT_EQ((*dr)->current_version(), "initial");
  EXPECT_TRUE((*dr)->engine()->DescribeCollection("live").ok());
  dr->reset();
  // The choice is durable.
  auto again = DataRoot::Open(root, {});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->current_version(), "initial");
  EXPECT_EQ((*again)->previous_version(), "v2");
  auto state = DataRoot::Inspect(root);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->versions, (std::vector<std::string>{"broken", "initial", "v2"}));
}

// CURRENT names the version that holds the acknowledged writes: lost or emptied, it is an error
// (the data root is not opened and CURRENT is not rewritten), never a silent fall-back to
// "initial". A root that has never served starts "initial"; one built into first too.
TEST_F(BulkTest, DataRootRefusesAMissingOrEmptyCurrent) {
  const std::string root = Path("root");
  {
    auto built = OpenEngine(root + "/versions/v2");  // bulk-built before the first start
    ASSERT_TRUE(built->BulkLoad(Schema("c"), Items(50, 3)).ok());
  }
  {
    auto dr = DataRoot::Open(root, {});
    ASSERT_TRUE(dr.ok()) << dr.status();
    EXPECT_EQ((*dr)->current_version(), "initial");
    ASSERT_TRUE((*dr)->Reload("v2").ok());
  }
  auto expect_refused = [&](const std::string& word) {
    auto dr = DataRoot::Open(root, {});
    ASSERT_FALSE(dr.ok());
    EXPECT_EQ(dr.status().code(), StatusCode::kDataLoss);
    EXPECT_NE(dr.status().message().find(word), std::string::npos) << dr.status();
  };
  fs::remove(root + "/CURRENT");
  expect_refused("CURRENT is missing");
  EXPECT_FALSE(fs::exists(root + "/CURRENT")) << "not rewritten";
  WriteFile(root + "/CURRENT", "");
  expect_refused("CURRENT is empty");
  WriteFile(root + "/CURRENT", "v3\n");
  expect_refused("'v3', which does not exist");
  // Without PREVIOUS the "initial" version still shows the root has served.
  fs::remove(root + "/CURRENT");
  fs::remove(root + "/PREVIOUS");
  expect_refused("versions/initial exists");
  // The way out: name the version.
  WriteFile(root + "/CURRENT", "v2\n");
  auto dr = DataRoot::Open(root, {});
  ASSERT_TRUE(dr.ok()) << dr.status();
  EXPECT_EQ((*dr)->current_version(), "v2");
  EXPECT_TRUE((*dr)->engine()->DescribeCollection("c").ok());
}

}  // namespace
}  // namespace quiver::engine
