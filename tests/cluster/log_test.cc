#include "cluster/log.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "cluster/log_write.h"
#include "tests/testing/nats_server.h"
#include "tests/testing/temp_dir.h"

namespace quiver::cluster {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Status started = nats_.Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  std::unique_ptr<Log> Connect(LogOptions o = {}) {
    o.servers = {nats_.url()};
    auto log = Log::Connect(o);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(*log) : nullptr;
  }

  // The reader's next `n` messages, fetched as they come: the wait ends when they are all
  // there (or, on a broken log, after two minutes), not after a set time. A message beyond
  // them is then looked for briefly: one there fails the test; one that arrives later is only
  // not seen (a slow machine cannot fail it).
  static std::vector<LogEntry> ReadExactly(LogReader& reader, size_t n) {
    std::vector<LogEntry> all;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    while (all.size() < n && std::chrono::steady_clock::now() < deadline) {
      auto got = reader.Fetch(n - all.size(), std::chrono::milliseconds(500));
      EXPECT_TRUE(got.ok()) << got.status();
      if (!got.ok()) return all;
      for (auto& e : *got) all.push_back(std::move(e));
    }
    auto more = reader.Fetch(1, std::chrono::milliseconds(100));
    EXPECT_TRUE(more.ok() && more->empty()) << "a message beyond the expected " << n;
    return all;
  }

  testing::ScopedTempDir dir_;
  testing::NatsServer nats_{dir_.path() + "/nats"};
};

// Every kind of write survives the log's encoding whole; a damaged message is kDataLoss, never
// a partial write.
TEST(LogWriteTest, EveryKindRoundTripsAndDamageIsDataLoss) {
  ItemRecord item;
  item.id = 7;
  item.vector = {1.5f, -2.f};
  item.cluster = 3;
  item.category = 4;
  item.tags = {9};
  item.payload = R"({"t":1})";
  LogWrite plugin{.kind = LogWrite::Kind::kPlugin, .collection = "m.x"};
  plugin.plugin = "i2i_knn";
  plugin.config = R"({"k":5})";
  plugin.incremental = true;
  const std::vector<LogWrite> writes = {
      {.kind = LogWrite::Kind::kUpsert, .collection = "m.x", .items = {item, item}},
      {.kind = LogWrite::Kind::kDelete, .collection = "m", .ids = {1, UINT64_MAX}},
      {.kind = LogWrite::Kind::kUsers,
       .collection = "m",
       .users = {UserRecord{5, {1, 2}, {{7, 3}}}}},
      {.kind = LogWrite::Kind::kEvents, .collection = "m", .events = {Event{5, 7, -1}}},
      plugin,
  };
  for (const LogWrite& w : writes) {
    const std::string data = EncodeLogWrite(w);
    auto back = DecodeLogWrite(data);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, w) << int(w.kind);
    for (size_t cut : {size_t{1}, data.size() / 2, data.size() - 1}) {
      EXPECT_EQ(DecodeLogWrite(data.substr(0, cut)).status().code(), StatusCode::kDataLoss)
          << int(w.kind) << " cut at " << cut;
    }
    EXPECT_EQ(DecodeLogWrite(data + "x").status().code(), StatusCode::kDataLoss);
    std::string other = data;
    other[1] = 9;  // an unknown kind
    EXPECT_EQ(DecodeLogWrite(other).status().code(), StatusCode::kDataLoss);
  }
}

TEST_F(LogTest, NamesEscapeWhatNatsWouldSplit) {
  EXPECT_EQ(Log::StreamName("movies"), "quiver_movies");
  EXPECT_EQ(Log::Subject("movies", 3), "quiver.movies.3");
  // "a.b" and "a_db" must not share a stream.
  EXPECT_EQ(Log::Subject("a.b", 0), "quiver.a_db.0");
  EXPECT_EQ(Log::Subject("a_db", 0), "quiver.a__db.0");
  EXPECT_NE(Log::StreamName("a.b"), Log::StreamName("a_db"));
}

TEST_F(LogTest, FollowersReadTheirShardInStreamOrder) {
  auto log = Connect();
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->EnsureStream("m.x", 2).ok());
  ASSERT_TRUE(log->EnsureStream("m.x", 2).ok());  // exists: kept
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 10; ++i) {
    auto seq = log->Publish("m.x", uint32_t(i % 2), "w" + std::to_string(i), "");
    ASSERT_TRUE(seq.ok()) << seq.status();
    if (!seqs.empty()) EXPECT_GT(*seq, seqs.back());
    seqs.push_back(*seq);
  }
  auto state = log->State("m.x");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->messages, 10u);
  EXPECT_EQ(state->last, seqs.back());

  auto shard0 = log->Follow("m.x", 0, "node-a-0", 0);
  ASSERT_TRUE(shard0.ok()) << shard0.status();
  std::vector<LogEntry> got = ReadExactly(**shard0, 5);
  ASSERT_EQ(got.size(), 5u);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq, seqs[2 * i]);
    EXPECT_EQ(got[i].data, "w" + std::to_string(2 * i));
  }
  // Shard 1 from after its second message.
  auto shard1 = log->Follow("m.x", 1, "node-a-1", seqs[3]);
  ASSERT_TRUE(shard1.ok()) << shard1.status();
  got = ReadExactly(**shard1, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].data, "w5");
  EXPECT_EQ(got[2].data, "w9");
}

TEST_F(LogTest, ARepeatedMessageIdIsStoredOnce) {
  auto log = Connect();
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->EnsureStream("m", 1).ok());
  auto first = log->Publish("m", 0, "batch", "writer-1:7");
  auto again = log->Publish("m", 0, "batch", "writer-1:7");
  auto other = log->Publish("m", 0, "batch", "writer-1:8");
  ASSERT_TRUE(first.ok() && again.ok() && other.ok());
  EXPECT_EQ(*again, *first);
  EXPECT_NE(*other, *first);
  EXPECT_EQ(log->State("m")->messages, 2u);
}

TEST_F(LogTest, AFollowerResumesWhereItSaysAcrossAServerRestart) {
  auto log = Connect();
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->EnsureStream("m", 1).ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(log->Publish("m", 0, std::to_string(i), "").ok());
  uint64_t applied = 0;
  {
    auto reader = log->Follow("m", 0, "node-a-0", 0);
    ASSERT_TRUE(reader.ok()) << reader.status();
    std::vector<LogEntry> got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    while (got.size() < 2 && std::chrono::steady_clock::now() < deadline) {
      auto some = (*reader)->Fetch(2 - got.size(), std::chrono::milliseconds(500));
      ASSERT_TRUE(some.ok()) << some.status();
      for (auto& e : *some) got.push_back(std::move(e));
    }
    ASSERT_EQ(got.size(), 2u);
    applied = got.back().seq;
    ASSERT_TRUE((*reader)->AckFetched().ok());
  }
  log.reset();
  nats_.Kill();
  const Status restarted = nats_.Start();  // same port, same store
  ASSERT_TRUE(restarted.ok()) << restarted;
  log = Connect();
  ASSERT_TRUE(log);
  auto reader = log->Follow("m", 0, "node-a-0", applied);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::vector<LogEntry> rest = ReadExactly(**reader, 4);
  ASSERT_EQ(rest.size(), 4u);
  EXPECT_EQ(rest.front().data, "2");
  EXPECT_EQ(rest.back().data, "5");
}

TEST_F(LogTest, AFollowerBehindATrimmedLogIsRefused) {
  LogOptions o;
  o.max_messages = 3;
  auto log = Connect(o);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->EnsureStream("m", 1).ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(log->Publish("m", 0, std::to_string(i), "").ok());
  auto state = log->State("m");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->first, 4u);
  auto behind = log->Follow("m", 0, "node-b-0", 2);
  ASSERT_FALSE(behind.ok());
  EXPECT_EQ(behind.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(behind.status().message().find("trimmed"), std::string::npos) << behind.status();
  // A follower that applied more than the log holds (the log lost messages) is refused too.
  auto ahead = log->Follow("m", 0, "node-b-0", 7);
  ASSERT_FALSE(ahead.ok());
  EXPECT_EQ(ahead.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(ahead.status().message().find("ends at sequence 6"), std::string::npos)
      << ahead.status();
  auto caught_up = log->Follow("m", 0, "node-b-0", 3);
  ASSERT_TRUE(caught_up.ok()) << caught_up.status();
  EXPECT_EQ(ReadExactly(**caught_up, 3).size(), 3u);
}

// JetStream's consumer passes over messages the stream dropped; the reader does not.
TEST_F(LogTest, AReaderTrimmedPastWhileFollowingSaysSo) {
  LogOptions o;
  o.max_messages = 4;
  auto log = Connect(o);
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->EnsureStream("m", 1).ok());
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(log->Publish("m", 0, std::to_string(i), "").ok());
  auto reader = log->Follow("m", 0, "node-a-0", 0);
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_EQ(ReadExactly(**reader, 2).size(), 2u);
  // 8 more: the stream keeps 7..10; 3..6 are gone before the reader saw them.
  for (int i = 2; i < 10; ++i) ASSERT_TRUE(log->Publish("m", 0, std::to_string(i), "").ok());
  Result<std::vector<LogEntry>> next = std::vector<LogEntry>{};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (next.ok() && next->empty() && std::chrono::steady_clock::now() < deadline) {
    next = (*reader)->Fetch(10, std::chrono::milliseconds(500));
  }
  ASSERT_FALSE(next.ok()) << "read on past the trimmed messages";
  EXPECT_EQ(next.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(next.status().message().find("up to 2"), std::string::npos) << next.status();
}

TEST_F(LogTest, WritesFailWithUnavailableWhileNatsIsDown) {
  auto log = Connect();
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->EnsureStream("m", 1).ok());
  nats_.Kill();
  auto seq = log->Publish("m", 0, "lost?", "");
  ASSERT_FALSE(seq.ok());
  EXPECT_EQ(seq.status().code(), StatusCode::kUnavailable) << seq.status();
  // Back on the same port: the client reconnects by itself and writes go on.
  const Status restarted = nats_.Start();
  ASSERT_TRUE(restarted.ok()) << restarted;
  Result<uint64_t> next = UnavailableError("not tried");
  // One message id for every attempt: an attempt stored but not acknowledged during the
  // reconnection is not stored twice by the next one.
  for (int attempt = 0; attempt < 600 && !next.ok(); ++attempt) {
    next = log->Publish("m", 0, "after", "after-restart");
    if (!next.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(log->State("m")->messages, 1u);  // the refused write was not stored

  LogOptions nowhere;
  nowhere.servers = {"nats://127.0.0.1:1"};
  nowhere.timeout = std::chrono::milliseconds(500);
  auto unreachable = Log::Connect(nowhere);
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace quiver::cluster
