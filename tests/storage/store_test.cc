#include "storage/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "storage/records.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wal.h"

namespace quiver::storage {
namespace {

ItemRecord SampleItem(uint64_t id, size_t dim) {
  ItemRecord item;
  item.id = id;
  for (size_t i = 0; i < dim; ++i) item.vector.push_back(float(id) + 0.25f * float(i));
  item.cluster = uint32_t(id % 7);
  item.topic_weights = {0.25f, 0.75f};
  if (id % 2) item.category = int64_t(id) * -3;
  item.tags = {1, int64_t(id), -5};
  item.timestamp = 1700000000000 + int64_t(id);
  item.payload = R"({"title":"item )" + std::to_string(id) + "\"}";
  return item;
}

TEST(RecordsTest, ItemRoundTripsBitExact) {
  ItemRecord item = SampleItem(42, 5);
  item.vector[1] = -0.0f;
  item.vector[2] = 1e-38f;
  auto back = DecodeItem(42, EncodeItem(item));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, item);
  EXPECT_EQ(std::signbit(back->vector[1]), true);
  ItemRecord bare;
  bare.id = 7;
  auto bare_back = DecodeItem(7, EncodeItem(bare));
  ASSERT_TRUE(bare_back.ok());
  EXPECT_EQ(*bare_back, bare);
  EXPECT_FALSE(bare_back->category.has_value());
}

TEST(RecordsTest, SchemaUserAndOpRoundTrip) {
  CollectionSchema s;
  s.name = "movies";
  s.dim = 64;
  s.metric = Metric::kCosine;
  s.index.type = IndexSpec::Type::kIvfPq;
  s.index.ivf_nlist = 1024;
  s.index.ivf_refine_int8 = true;
  s.clusters = 16;
  s.topics = 4;
  s.max_history = 50;
  s.shards = 12;
  auto sb = DecodeSchema(EncodeSchema(s));
  ASSERT_TRUE(sb.ok()) << sb.status();
  EXPECT_EQ(*sb, s);
  // Schemas stored by earlier versions still read: version 2 had no shards (1 now), version 1
  // neither the MVKE options.
  std::string v2 = EncodeSchema(s);
  v2[0] = 2;
  v2.resize(v2.size() - 4);
  CollectionSchema older = s;
  older.shards = 1;
  sb = DecodeSchema(v2);
  ASSERT_TRUE(sb.ok()) << sb.status();
  EXPECT_EQ(*sb, older);
  std::string v1 = v2;
  v1[0] = 1;
  v1.resize(v1.size() - 5);
  sb = DecodeSchema(v1);
  ASSERT_TRUE(sb.ok()) << sb.status();
  EXPECT_EQ(*sb, older);
  v2.push_back('\0');  // a version 2 record with a byte too many
  EXPECT_EQ(DecodeSchema(v2).status().code(), StatusCode::kDataLoss);

  UserRecord u{9, {1.0f, 2.0f}, {{5, 100}, {3, 90}}};
  auto ub = DecodeUser(9, EncodeUser(u));
  ASSERT_TRUE(ub.ok());
  EXPECT_EQ(*ub, u);

  OpRecord op{{1, 2, 3}, {9}, {4, 5}};
  auto ob = DecodeOp(EncodeOp(op));
  ASSERT_TRUE(ob.ok());
  EXPECT_EQ(ob->upserted, op.upserted);
  EXPECT_EQ(ob->deleted, op.deleted);
  EXPECT_EQ(ob->users, op.users);
  // A version 1 op (stored before users were logged: no users list) reads as one without users.
  const size_t empty_list = (EncodeOp(OpRecord{}).size() - 1) / 3;
  const std::string op_v2 = EncodeOp(OpRecord{{1, 2, 3}, {9}, {}});
  const std::string op_v1 = '\1' + op_v2.substr(1, op_v2.size() - 1 - empty_list);
  auto old = DecodeOp(op_v1);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->upserted, op.upserted);
  EXPECT_EQ(old->deleted, op.deleted);
  EXPECT_TRUE(old->users.empty());
  EXPECT_EQ(DecodeOp(op_v1 + "x").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeOp(op_v2.substr(0, op_v2.size() - 1)).status().code(), StatusCode::kDataLoss);
}

TEST(RecordsTest, TruncatedExtendedOrFutureRecordsAreDataLoss) {
  const std::string item = EncodeItem(SampleItem(3, 8));
  for (size_t cut = 0; cut < item.size(); ++cut) {
    EXPECT_EQ(DecodeItem(3, item.substr(0, cut)).status().code(), StatusCode::kDataLoss) << cut;
  }
  EXPECT_EQ(DecodeItem(3, item + "x").status().code(), StatusCode::kDataLoss);
  std::string future = item;
  future[0] = 2;
  auto r = DecodeItem(3, future);
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(r.status().message().find("version 2"), std::string::npos) << r.status();
  // A vector count far beyond the bytes present must not allocate or read past the end.
  std::string huge = item;
  huge[2] = huge[3] = huge[4] = huge[5] = char(0xFF);
  EXPECT_EQ(DecodeItem(3, huge).status().code(), StatusCode::kDataLoss);
  const std::string schema = EncodeSchema(CollectionSchema{.name = "a", .dim = 4});
  for (size_t cut = 0; cut < schema.size(); ++cut) {
    EXPECT_EQ(DecodeSchema(schema.substr(0, cut)).status().code(), StatusCode::kDataLoss);
  }
}

TEST(RecordsTest, KeysSortByCollectionThenId) {
  EXPECT_LT(IdKey(1, UINT64_MAX), IdKey(2, 0));
  EXPECT_LT(IdKey(1, 255), IdKey(1, 256));
  uint32_t c;
  uint64_t id;
  ASSERT_TRUE(ParseIdKey(IdKey(77, 0x0102030405060708ull), &c, &id));
  EXPECT_EQ(c, 77u);
  EXPECT_EQ(id, 0x0102030405060708ull);
  EXPECT_FALSE(ParseIdKey("short", &c, &id));
}

class StoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<Store> OpenStore(const StoreOptions& o = {}) {
    auto s = Store::Open(dir_.path() + "/db", o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  quiver::testing::ScopedTempDir dir_;
};

TEST_F(StoreTest, ItemsUsersAndOpsSurviveReopen) {
  {
    auto store = OpenStore();
    WriteBatch b;
    CollectionSchema s{.name = "c", .dim = 3};
    b.PutSchema(4, s);
    b.PutNextCollectionId(5);
    for (uint64_t id : {10, 11, 12}) b.PutItem(4, SampleItem(id, 3));
    b.PutItem(5, SampleItem(10, 3));  // same id in another collection
    b.PutUser(4, UserRecord{1, {}, {{10, 5}}});
    b.PutOp(4, 1, OpRecord{{10, 11, 12}, {}});
    ASSERT_TRUE(store->Write(b).ok());
    WriteBatch d;
    d.DeleteItem(4, 11);
    d.PutOp(4, 2, OpRecord{{}, {11}});
    ASSERT_TRUE(store->Write(d).ok());
  }
  auto store = OpenStore();
  auto cols = store->LoadCollections();
  ASSERT_TRUE(cols.ok());
  ASSERT_EQ(cols->size(), 1u);
  EXPECT_EQ((*cols)[0].first, 4u);
  EXPECT_EQ(*store->NextCollectionId(), 5u);
  EXPECT_EQ(*store->LastOp(4), 2u);
  EXPECT_EQ(*store->LastOp(5), 0u);
  std::vector<uint64_t> ids = {12, 11, 10, 99};
  std::vector<std::optional<ItemRecord>> got;
  ASSERT_TRUE(store->GetItems(4, ids, &got).ok());
  EXPECT_EQ(got[0], SampleItem(12, 3));
  EXPECT_FALSE(got[1].has_value());
  EXPECT_EQ(got[2], SampleItem(10, 3));
  EXPECT_FALSE(got[3].has_value());
  std::vector<uint64_t> scanned;
  ASSERT_TRUE(store
                  ->ScanItems(4,
                              [&](ItemRecord&& r) {
                                scanned.push_back(r.id);
                                return Status::Ok();
                              })
                  .ok());
  EXPECT_EQ(scanned, (std::vector<uint64_t>{10, 12}));
  EXPECT_EQ(*store->CountItems(5), 1u);
  auto user = store->GetUser(4, 1);
  ASSERT_TRUE(user.ok() && user->has_value());
  EXPECT_EQ((*user)->history.size(), 1u);

  std::vector<uint64_t> seqs;
  ASSERT_TRUE(store
                  ->ScanOps(4, 0,
                            [&](uint64_t seq, OpRecord&&) {
                              seqs.push_back(seq);
                              return Status::Ok();
                            })
                  .ok());
  EXPECT_EQ(seqs, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(*store->FirstOpAfter(4, 1), std::optional<uint64_t>(2));
  ASSERT_TRUE(store->TrimOps(4, 1).ok());
  EXPECT_EQ(*store->FirstOpAfter(4, 0), std::optional<uint64_t>(2));
  EXPECT_EQ(*store->FirstOpAfter(4, 2), std::nullopt);
}

// Issue 16, case 1: a write-ahead log damaged in its middle after an unclean stop. Before, the
// store opened and silently kept only the writes before the damage; now the open fails with
// kDataLoss unless the loss is accepted, and then exactly a prefix of the writes is there.
TEST_F(StoreTest, DamagedWriteAheadLogIsRefusedUnlessTheLossIsAccepted) {
  const std::string path = dir_.path() + "/db";
  constexpr uint64_t kWrites = 600;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // acknowledged writes (synced WAL), then a death without closing
    auto store = Store::Open(path, {});
    if (!store.ok()) ::_exit(2);
    for (uint64_t id = 1; id <= kWrites; ++id) {
      WriteBatch b;
      b.PutItem(1, SampleItem(id, 3));
      if (!(*store)->Write(b).ok()) ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const std::string wal = quiver::testing::LargestWal(path);
  ASSERT_FALSE(wal.empty()) << "no write-ahead log in " << path;
  ASSERT_TRUE(quiver::testing::FlipMiddleByte(wal));
  auto refused = Store::Open(path, {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kDataLoss) << refused.status();
  EXPECT_NE(refused.status().message().find("--accept-wal-loss"), std::string::npos);
  // Accepted: the writes up to the damage, and none after it.
  auto opened = Store::Open(path, {.accept_wal_loss = true});
  ASSERT_TRUE(opened.ok()) << opened.status();
  uint64_t kept = 0;
  while (kept < kWrites && (*(*opened)->GetItem(1, kept + 1)).has_value()) ++kept;
  EXPECT_GT(kept, 0u);
  EXPECT_LT(kept, kWrites);
  for (uint64_t id = kept + 1; id <= kWrites; ++id)
    EXPECT_FALSE((*(*opened)->GetItem(1, id)).has_value()) << id;
}

// Injected I/O errors (storage/fault_fs.h): a failing write is refused and leaves nothing
// behind, the store says why, and writes resume by themselves once the disk behaves; a failing
// read is an error, never wrong data or a crash; ENOSPC and a read-only directory likewise.
TEST_F(StoreTest, InjectedIoErrorsFailCleanlyAndWritesResume) {
  auto faults = std::make_shared<FaultInjection>();
  StoreOptions o;
  o.faults = faults;
  auto store = OpenStore(o);
  ASSERT_TRUE(store);
  auto put = [&](uint64_t id) {
    WriteBatch b;
    b.PutItem(1, SampleItem(id, 3));
    return store->Write(b);
  };
  // Writes resume once the fault is gone (the store asks RocksDB to resume at most once a
  // second): wait for the first accepted one.
  auto resumes = [&](uint64_t id) {
    for (int i = 0; i < 3000; ++i) {
      if (put(id).ok()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  };
  ASSERT_TRUE(put(1).ok());
  // A full disk: refused, then resumed in place.
  faults->no_space = true;
  const Status full = put(2);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted) << full;
  EXPECT_NE(store->WriteRefusal(), "");
  faults->no_space = false;
  ASSERT_TRUE(resumes(12)) << store->WriteRefusal();
  EXPECT_EQ(store->WriteRefusal(), "");
  auto gone = store->GetItem(1, 2);
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_FALSE(gone->has_value()) << "the refused write is visible";
  // EIO on the log: refused, and still refused once the disk behaves (RocksDB cannot resume
  // from it), saying to restart; after the restart writes go through.
  faults->write_errors = true;
  EXPECT_FALSE(put(3).ok());
  faults->write_errors = false;
  Status stuck;
  for (int i = 0; i < 300 && stuck.code() != StatusCode::kUnavailable; ++i) {
    stuck = put(13);  // until the store has asked RocksDB to resume (at most once a second)
    ASSERT_FALSE(stuck.ok()) << "a write went through after an EIO RocksDB cannot resume from";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(stuck.code(), StatusCode::kUnavailable) << stuck;
  EXPECT_NE(std::string(stuck.message()).find("restart"), std::string::npos) << stuck;
  store.reset();
  store = OpenStore(o);
  ASSERT_TRUE(store);
  ASSERT_TRUE(put(13).ok());
  // Reads from SST files: flushed, reopened (a cold cache), then read with errors injected.
  ASSERT_TRUE(store->Flush().ok());
  store.reset();
  store = OpenStore(o);
  ASSERT_TRUE(store);
  faults->read_errors = true;
  auto failed = store->GetItem(1, 1);
  EXPECT_FALSE(failed.ok());
  faults->read_errors = false;
  auto item = store->GetItem(1, 1);
  ASSERT_TRUE(item.ok() && item->has_value()) << item.status();
  EXPECT_EQ(**item, SampleItem(1, 3));
  // A read-only directory: a flush cannot create its file, and writes are refused after it
  // until a restart (RocksDB does not resume from it either).
  ASSERT_TRUE(put(30).ok());
  faults->read_only = true;
  EXPECT_FALSE(store->Flush().ok());
  faults->read_only = false;
  Status after_flush;
  for (int i = 0; i < 300 && after_flush.code() != StatusCode::kUnavailable; ++i) {
    after_flush = put(31);
    if (after_flush.ok()) break;  // resumed in place: as good
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!after_flush.ok()) {
    EXPECT_NE(std::string(after_flush.message()).find("restart"), std::string::npos) << after_flush;
    store.reset();
    store = OpenStore(o);
    ASSERT_TRUE(store);
    ASSERT_TRUE(put(31).ok());
  }
  for (uint64_t id : {1, 12, 13, 30, 31}) {
    auto got = store->GetItem(1, id);
    ASSERT_TRUE(got.ok() && got->has_value()) << id << ": " << got.status();
  }
}

TEST_F(StoreTest, DropRemovesOnlyThatCollection) {
  auto store = OpenStore();
  WriteBatch b;
  b.PutSchema(1, CollectionSchema{.name = "a", .dim = 3});
  b.PutSchema(2, CollectionSchema{.name = "b", .dim = 3});
  for (uint32_t c : {1u, 2u}) {
    b.PutItem(c, SampleItem(7, 3));
    b.PutUser(c, UserRecord{1, {}, {}});
    b.PutOp(c, 1, OpRecord{{7}, {}});
  }
  ASSERT_TRUE(store->Write(b).ok());
  WriteBatch drop;
  drop.DropCollection(1);
  ASSERT_TRUE(store->Write(drop).ok());
  EXPECT_EQ(store->LoadCollections()->size(), 1u);
  EXPECT_FALSE(store->GetItem(1, 7)->has_value());
  EXPECT_FALSE(store->GetUser(1, 1)->has_value());
  EXPECT_EQ(*store->LastOp(1), 0u);
  EXPECT_TRUE(store->GetItem(2, 7)->has_value());
  EXPECT_TRUE(store->GetUser(2, 1)->has_value());
  EXPECT_EQ(*store->LastOp(2), 1u);
}

TEST_F(StoreTest, RefusesAnExistingOrMissingDirectoryWhenAskedTo) {
  { auto store = OpenStore(); }
  StoreOptions must_be_new;
  must_be_new.error_if_exists = true;
  EXPECT_EQ(Store::Open(dir_.path() + "/db", must_be_new).status().code(),
            StatusCode::kAlreadyExists);
  StoreOptions must_exist;
  must_exist.create_if_missing = false;
  EXPECT_EQ(Store::Open(dir_.path() + "/nothing", must_exist).status().code(),
            StatusCode::kNotFound);
}

// Writes key -> value into a column family of the database at path with RocksDB directly, as
// another program (or another Quiver version) might have.
void RawPut(const std::string& path, const std::string& cf_name, const std::string& key,
            const std::string& value) {
  rocksdb::DBOptions o;
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const char* n : {"default", "items", "users", "neighbors", "oplog"})
    cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(o, path, cfs, &handles, &db).ok());
  size_t which = 0;
  while (cfs[which].name != cf_name) ++which;
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[which], key, value).ok());
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  delete db;
}

TEST_F(StoreTest, RefusesADirectoryOfAnotherFormat) {
  { auto store = OpenStore(); }
  RawPut(dir_.path() + "/db", "default", "format", "quiver-store-99");
  auto r = Store::Open(dir_.path() + "/db", {});
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("quiver-store-99"), std::string::npos) << r.status();

  // A RocksDB database that is not Quiver's (no Quiver column families).
  rocksdb::Options plain;
  plain.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(plain, dir_.path() + "/other", &db).ok());
  delete db;
  EXPECT_EQ(Store::Open(dir_.path() + "/other", {}).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(StoreTest, CorruptRecordIsDataLossNotACrash) {
  { auto store = OpenStore(); }
  RawPut(dir_.path() + "/db", "items", IdKey(1, 5), std::string("\x01\x00\xff\xff", 4));
  auto store = OpenStore();
  EXPECT_EQ(store->GetItem(1, 5).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(store->ScanItems(1, [](ItemRecord&&) { return Status::Ok(); }).code(),
            StatusCode::kDataLoss);
}

}  // namespace
}  // namespace quiver::storage

namespace quiver::storage {
namespace {

TEST(RecordsTest, ListsAndListInfoRoundTripAndRejectDamage) {
  std::vector<Hit> list = {{7, 0.5f}, {3, -1.25f}, {UINT64_MAX, 3.0f}};
  auto back = DecodeList(EncodeList(list));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, list);
  std::string bytes = EncodeList(list);
  EXPECT_EQ(DecodeList(bytes.substr(0, bytes.size() - 1)).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeList(bytes + "x").status().code(), StatusCode::kDataLoss);
  ListInfo info{"i2i", "i2i_knn", R"({"k":50})", 1234, 99};
  auto info_back = DecodeListInfo(EncodeListInfo(info));
  ASSERT_TRUE(info_back.ok());
  EXPECT_EQ(*info_back, info);
  EXPECT_TRUE(ValidListKind("i2i_cf"));
  EXPECT_FALSE(ValidListKind(""));
  EXPECT_FALSE(ValidListKind("I2I"));
  EXPECT_FALSE(ValidListKind("a/b"));
  EXPECT_FALSE(ValidListKind(std::string(65, 'a')));
}

class ListStoreTest : public ::testing::Test {
 protected:
  quiver::testing::ScopedTempDir dir_;
};

TEST_F(ListStoreTest, KindsAreSeparateRangesDroppedWholeAndWithTheirCollection) {
  auto store = std::move(Store::Open(dir_.path() + "/db", {})).value();
  WriteBatch b;
  for (uint64_t key : {1u, 2u, 300u}) {
    b.PutList(1, "i2i", key, {{key + 1, 1.0f}});
    b.PutList(1, "i2i_cf", key, {{key + 2, 2.0f}});  // "i2i" is a prefix of this kind's name
    b.PutList(2, "i2i", key, {{key + 3, 3.0f}});
  }
  b.PutListInfo(1, ListInfo{"i2i", "i2i_knn", "{}", 3, 5});
  b.PutListInfo(1, ListInfo{"i2i_cf", "itemcf", "{}", 3, 5});
  ASSERT_TRUE(store->Write(b).ok());
  auto got = store->GetList(1, "i2i", 300);
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, (std::vector<Hit>{{301, 1.0f}}));
  EXPECT_FALSE(store->GetList(1, "i2i", 4)->has_value());
  std::vector<uint64_t> keys;
  ASSERT_TRUE(store
                  ->ScanLists(1, "i2i",
                              [&](uint64_t k, std::vector<Hit>&& l) {
                                keys.push_back(k);
                                EXPECT_EQ(l[0].id, k + 1);
                                return Status::Ok();
                              })
                  .ok());
  EXPECT_EQ(keys, (std::vector<uint64_t>{1, 2, 300}));
  EXPECT_EQ(store->ListInfos(1)->size(), 2u);
  // Dropping one kind leaves the other kind and the other collection.
  WriteBatch drop;
  drop.DropListKind(1, "i2i");
  ASSERT_TRUE(store->Write(drop).ok());
  EXPECT_FALSE(store->GetList(1, "i2i", 1)->has_value());
  EXPECT_TRUE(store->GetList(1, "i2i_cf", 1)->has_value());
  EXPECT_TRUE(store->GetList(2, "i2i", 1)->has_value());
  ASSERT_EQ(store->ListInfos(1)->size(), 1u);
  EXPECT_EQ((*store->ListInfos(1))[0].kind, "i2i_cf");
  WriteBatch gone;
  gone.DropCollection(1);
  ASSERT_TRUE(store->Write(gone).ok());
  EXPECT_FALSE(store->GetList(1, "i2i_cf", 1)->has_value());
  EXPECT_TRUE(store->ListInfos(1)->empty());
  EXPECT_TRUE(store->GetList(2, "i2i", 300)->has_value());
}

}  // namespace
}  // namespace quiver::storage
