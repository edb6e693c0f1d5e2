// The replicated write log of cluster mode, on NATS JetStream (docs/cluster.md).
//
// Each collection has one stream, named from the collection; shard s of it is the subject
// quiver.<collection>.<s>. A writer publishes a write's bytes to its shard's subject and
// acknowledges the client once JetStream has stored it (on every replica of the stream); the
// answer carries the stream sequence. A node hosting a shard follows the subject through a
// LogReader, applying messages in stream order and remembering the last sequence it applied.
//
//   auto log = cluster::Log::Connect({.servers = {"nats://127.0.0.1:4222"}});
//   QV_RETURN_IF_ERROR((*log)->EnsureStream("movies", 1));
//   auto seq = (*log)->Publish("movies", 0, bytes, "writer-7:42");
//   auto reader = (*log)->Follow("movies", 0, "node-a", /*after=*/applied);
//   auto entries = (*reader)->Fetch(256, std::chrono::milliseconds(500));
//
// Errors: kUnavailable when no server answers (or JetStream does not acknowledge in time),
// kNotFound for a stream that does not exist, kFailedPrecondition when the log no longer holds
// what a follower needs (trimmed past it), kInvalidArgument for bad names.
//
// Thread-safety: a Log may be used from many threads at once; a LogReader from one at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/status.h"

namespace quiver::cluster {

struct LogOptions {
  // nats://HOST:PORT addresses of the NATS servers (any of them; the client finds the rest).
  std::vector<std::string> servers;
  // Connecting, and each publish's wait for JetStream's acknowledgement.
  std::chrono::milliseconds timeout{5000};
  // Copies of each stream JetStream keeps (1 for a single server; 3 in production).
  int replicas = 1;
  // Publishes JetStream recognises as repeats (same message id) within this window are stored
  // once: a writer retrying after a lost acknowledgement does not write twice.
  std::chrono::milliseconds duplicate_window{120000};
  // Retention of a stream this client creates (0: no limit of that kind). The oldest messages
  // go first; a follower that needs what went is refused (Follow) and must bootstrap from a
  // peer's snapshot.
  int64_t max_messages = 0;
  int64_t max_bytes = 0;
  std::chrono::seconds max_age{0};
};

// Where a message goes: shard s's subject, or (kAllShards) the subject every shard's hosts
// apply (writes that concern every shard: users, events, and the writes of a collection with
// clusters, whose items' earlier shards the writer cannot know).
inline constexpr uint32_t kAllShards = UINT32_MAX;

// One message of the stream.
struct LogEntry {
  uint64_t seq = 0;    // the stream sequence
  uint32_t shard = 0;  // the subject's shard (kAllShards: every shard's)
  std::string data;
};

// The stream's extent: the sequences it still holds (first..last; first > last when empty).
struct StreamState {
  uint64_t first = 0;
  uint64_t last = 0;
  uint64_t messages = 0;
};

class LogReader;

class Log {
 public:
  static Result<std::unique_ptr<Log>> Connect(const LogOptions& options);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // The stream's name and a shard's subject for a collection (names may hold '.', which NATS
  // reads as a separator: escaped); kAllShards's subject is quiver.<collection>.all.
  static std::string StreamName(std::string_view collection);
  static std::string Subject(std::string_view collection, uint32_t shard);

  // Creates the collection's stream (the subjects of its `shards` shards and `all`) if it does
  // not exist; an existing one is kept as it is.
  Status EnsureStream(std::string_view collection, uint32_t shards);
  // Removes the stream and everything in it.
  Status DeleteStream(std::string_view collection);
  Result<StreamState> State(std::string_view collection);

  // Stores `data` on the shard's subject; returns its stream sequence once JetStream has
  // acknowledged it. `msg_id` (may be empty) makes a repeat within the duplicate window a no-op
  // that returns the first copy's sequence.
  Result<uint64_t> Publish(std::string_view collection, uint32_t shard, std::string_view data,
                           std::string_view msg_id);

  // Follows the shard (kAllShards: the whole stream, every shard's subject and `all`) from the
  // message after sequence `after`, through the durable consumer `consumer` (recreated here so
  // that it starts exactly there).
  // kFailedPrecondition if the stream no longer holds the messages after `after` (trimmed), or
  // ends before `after` (it lost messages: new ones would reuse their sequences).
  Result<std::unique_ptr<LogReader>> Follow(std::string_view collection, uint32_t shard,
                                            std::string_view consumer, uint64_t after);

  struct Impl;

 private:
  explicit Log(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class LogReader {
 public:
  ~LogReader();
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  // Up to `max` next messages, in stream order; empty if none came within `wait`.
  // kFailedPrecondition if the stream was trimmed past the last message returned (JetStream's
  // consumer passes over messages it no longer holds: they would be missed without a word).
  Result<std::vector<LogEntry>> Fetch(size_t max, std::chrono::milliseconds wait);
  // Tells JetStream everything up to the last fetched message is applied (durably).
  Status AckFetched();

  struct Impl;
  explicit LogReader(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver::cluster
