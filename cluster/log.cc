#include "cluster/log.h"

#include <nats/nats.h>

#include <charconv>
#include <string>
#include <vector>

#include "base/log.h"

namespace quiver::cluster {

namespace {

constexpr jsErrCode kNoJsError = jsErrCode(0);

// What a NATS call reported, as a Status: the library's text, JetStream's error code when there
// is one, and the last error's details.
Status NatsError(natsStatus s, jsErrCode jerr, std::string_view doing) {
  std::string message = "NATS: " + std::string(doing) + ": " + natsStatus_GetText(s);
  if (jerr != kNoJsError) message += " (JetStream error " + std::to_string(int(jerr)) + ")";
  if (const char* last = nats_GetLastError(nullptr); last != nullptr && *last != '\0') {
    message += ": " + std::string(last);
  }
  switch (s) {
    case NATS_NOT_FOUND:
      return NotFoundError(message);
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
      return InvalidArgumentError(message);
    default:
      return UnavailableError(message);
  }
}

// Collection names use [A-Za-z0-9_.-]; subjects split at '.' and stream names may not hold it.
// '_' escapes: "_" -> "__", "." -> "_d" (one-to-one).
std::string Escape(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 4);
  for (char c : name) {
    if (c == '_') {
      out += "__";
    } else if (c == '.') {
      out += "_d";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

struct Log::Impl {
  LogOptions options;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;

  ~Impl() {
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
  }

  // Fails at once while the connection is down (the client would otherwise buffer the publish
  // and wait out the timeout).
  Status CheckConnected() const {
    if (natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED) return Status::Ok();
    return UnavailableError("the write log (NATS) is unreachable: not connected to any of " +
                            std::to_string(options.servers.size()) +
                            " server(s); writes are refused until it is back");
  }
};

struct LogReader::Impl {
  Log* log = nullptr;
  std::string collection;
  uint64_t delivered = 0;  // the last sequence returned (or the one followed after)
  natsSubscription* sub = nullptr;
  natsMsg* last = nullptr;  // the last fetched message, not yet acknowledged

  ~Impl() {
    natsMsg_Destroy(last);
    natsSubscription_Destroy(sub);
  }
};

Log::Log(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Log::~Log() = default;
LogReader::LogReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LogReader::~LogReader() = default;

std::string Log::StreamName(std::string_view collection) { return "quiver_" + Escape(collection); }

std::string Log::Subject(std::string_view collection, uint32_t shard) {
  return "quiver." + Escape(collection) + "." +
         (shard == kAllShards ? std::string("all") : std::to_string(shard));
}

Result<std::unique_ptr<Log>> Log::Connect(const LogOptions& options) {
  if (options.servers.empty()) return InvalidArgumentError("no NATS server given");
  if (options.replicas < 1 || options.replicas > 5) {
    return InvalidArgumentError("stream replicas must be 1 to 5 (got " +
                                std::to_string(options.replicas) + ")");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  natsOptions* opts = nullptr;
  natsStatus s = natsOptions_Create(&opts);
  std::vector<const char*> servers;
  servers.reserve(options.servers.size());
  for (const std::string& server : options.servers) servers.push_back(server.c_str());
  if (s == NATS_OK) s = natsOptions_SetServers(opts, servers.data(), int(servers.size()));
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts, options.timeout.count());
  // Reconnect for ever, every half second; writes fail fast meanwhile (CheckConnected).
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts, 500);
  if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(opts, false, nullptr, nullptr);
  // Nothing published is kept for after a reconnect (the library's default keeps 8 MB and sends
  // it once back): a publish caught by a disconnection was answered with an error, and must not
  // be stored later, behind writes acknowledged since. (0 would mean the default.)
  if (s == NATS_OK) s = natsOptions_SetReconnectBufSize(opts, 1);
  if (s == NATS_OK) s = natsConnection_Connect(&impl->nc, opts);
  natsOptions_Destroy(opts);
  if (s != NATS_OK) return NatsError(s, kNoJsError, "connecting to " + options.servers[0]);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = options.timeout.count();
  s = natsConnection_JetStream(&impl->js, impl->nc, &jo);
  if (s != NATS_OK) return NatsError(s, kNoJsError, "opening JetStream");
  return std::unique_ptr<Log>(new Log(std::move(impl)));
}

Status Log::EnsureStream(std::string_view collection, uint32_t shards) {
  QV_RETURN_IF_ERROR(impl_->CheckConnected());
  if (shards == 0) return InvalidArgumentError("a collection has at least one shard");
  const std::string name = StreamName(collection);
  jsErrCode jerr = kNoJsError;
  jsStreamInfo* info = nullptr;
  natsStatus s = js_GetStreamInfo(&info, impl_->js, name.c_str(), nullptr, &jerr);
  jsStreamInfo_Destroy(info);
  if (s == NATS_OK) return Status::Ok();
  if (s != NATS_NOT_FOUND) return NatsError(s, jerr, "looking up stream " + name);
  std::vector<std::string> subjects;
  subjects.reserve(size_t(shards) + 1);
  for (uint32_t shard = 0; shard < shards; ++shard) subjects.push_back(Subject(collection, shard));
  subjects.push_back(Subject(collection, kAllShards));
  std::vector<const char*> subject_ptrs;
  subject_ptrs.reserve(subjects.size());
  for (const std::string& subject : subjects) subject_ptrs.push_back(subject.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  cfg.Subjects = subject_ptrs.data();
  cfg.SubjectsLen = int(subject_ptrs.size());
  cfg.Storage = js_FileStorage;
  cfg.Replicas = impl_->options.replicas;
  cfg.Duplicates = int64_t(impl_->options.duplicate_window.count()) * 1'000'000;  // ns
  if (impl_->options.max_messages > 0) cfg.MaxMsgs = impl_->options.max_messages;
  if (impl_->options.max_bytes > 0) cfg.MaxBytes = impl_->options.max_bytes;
  if (impl_->options.max_age.count() > 0) {
    cfg.MaxAge = int64_t(impl_->options.max_age.count()) * 1'000'000'000;  // ns
  }
  jerr = kNoJsError;
  s = js_AddStream(&info, impl_->js, &cfg, nullptr, &jerr);
  jsStreamInfo_Destroy(info);
  // Another node may have created it meanwhile.
  if (s != NATS_OK && jerr == JSStreamNameExistErr) return Status::Ok();
  if (s != NATS_OK) return NatsError(s, jerr, "creating stream " + name);
  return Status::Ok();
}

Status Log::DeleteStream(std::string_view collection) {
  QV_RETURN_IF_ERROR(impl_->CheckConnected());
  const std::string name = StreamName(collection);
  jsErrCode jerr = kNoJsError;
  natsStatus s = js_DeleteStream(impl_->js, name.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return NatsError(s, jerr, "deleting stream " + name);
  return Status::Ok();
}

Result<StreamState> Log::State(std::string_view collection) {
  QV_RETURN_IF_ERROR(impl_->CheckConnected());
  const std::string name = StreamName(collection);
  jsErrCode jerr = kNoJsError;
  jsStreamInfo* info = nullptr;
  natsStatus s = js_GetStreamInfo(&info, impl_->js, name.c_str(), nullptr, &jerr);
  if (s != NATS_OK) return NatsError(s, jerr, "looking up stream " + name);
  StreamState state{info->State.FirstSeq, info->State.LastSeq, info->State.Msgs};
  jsStreamInfo_Destroy(info);
  return state;
}

Result<uint64_t> Log::Publish(std::string_view collection, uint32_t shard, std::string_view data,
                              std::string_view msg_id) {
  QV_RETURN_IF_ERROR(impl_->CheckConnected());
  const std::string subject = Subject(collection, shard);
  const std::string id(msg_id);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  if (!id.empty()) po.MsgId = id.c_str();
  jsErrCode jerr = kNoJsError;
  jsPubAck* ack = nullptr;
  natsStatus s =
      js_Publish(&ack, impl_->js, subject.c_str(), data.data(), int(data.size()), &po, &jerr);
  if (s != NATS_OK) return NatsError(s, jerr, "publishing to " + subject);
  const uint64_t seq = ack->Sequence;
  // A repeat of a message id JetStream already holds (in its duplicate window) is acknowledged
  // with the first copy's sequence and not stored: right for a retried publish, a lost write if
  // two different writes ever shared an id. Logged so that such a loss can be told apart.
  if (ack->Duplicate) {
    log::Warn("log_publish_duplicate", {{"subject", subject}, {"msg_id", id}, {"seq", seq}});
  }
  jsPubAck_Destroy(ack);
  return seq;
}

Result<std::unique_ptr<LogReader>> Log::Follow(std::string_view collection, uint32_t shard,
                                               std::string_view consumer, uint64_t after) {
  QV_ASSIGN_OR_RETURN(StreamState state, State(collection));
  const std::string stream = StreamName(collection);
  if (after + 1 < state.first) {
    return FailedPreconditionError(
        "the write log of '" + std::string(collection) + "' starts at sequence " +
        std::to_string(state.first) + " but this node applied it only up to " +
        std::to_string(after) +
        ": the messages between were trimmed, so this node cannot rebuild the collection from the "
        "log alone");
  }
  if (after > state.last) {
    return FailedPreconditionError(
        "the write log of '" + std::string(collection) + "' ends at sequence " +
        std::to_string(state.last) + " but this node has applied it up to " +
        std::to_string(after) +
        ": the log lost messages it had acknowledged (a NATS server that lost unsynced data, "
        "or the stream deleted and created again); following it would skip new writes");
  }
  const std::string durable(consumer);
  jsErrCode jerr = kNoJsError;
  // Start exactly after `after`: a consumer left by an earlier run may be behind (a crash
  // between applying and acknowledging) or ahead (applied data lost with --durability nosync).
  natsStatus s = js_DeleteConsumer(impl_->js, stream.c_str(), durable.c_str(), nullptr, &jerr);
  if (s != NATS_OK && s != NATS_NOT_FOUND) {
    return NatsError(s, jerr, "resetting consumer " + durable);
  }
  const std::string subject =
      shard == kAllShards ? "quiver." + Escape(collection) + ".*" : Subject(collection, shard);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Config.Durable = durable.c_str();
  so.Config.AckPolicy = js_AckAll;
  so.Config.FilterSubject = subject.c_str();
  if (after == 0) {
    so.Config.DeliverPolicy = js_DeliverAll;
  } else {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = after + 1;
  }
  auto impl = std::make_unique<LogReader::Impl>();
  impl->log = this;
  impl->collection = std::string(collection);
  impl->delivered = after;
  jerr = kNoJsError;
  s = js_PullSubscribe(&impl->sub, impl_->js, subject.c_str(), durable.c_str(), nullptr, &so,
                       &jerr);
  if (s != NATS_OK) return NatsError(s, jerr, "following " + subject);
  return std::make_unique<LogReader>(std::move(impl));
}

Result<std::vector<LogEntry>> LogReader::Fetch(size_t max, std::chrono::milliseconds wait) {
  natsMsgList list{};
  jsErrCode jerr = kNoJsError;
  natsStatus s = natsSubscription_Fetch(&list, impl_->sub, int(max), int64_t(wait.count()), &jerr);
  std::vector<LogEntry> out;
  if (s == NATS_TIMEOUT) return out;
  if (s != NATS_OK) return NatsError(s, jerr, "reading the write log");
  out.reserve(size_t(list.Count));
  Status status = Status::Ok();
  for (int i = 0; i < list.Count; ++i) {
    natsMsg* msg = list.Msgs[i];
    jsMsgMetaData* meta = nullptr;
    if (natsStatus ms = natsMsg_GetMetaData(&meta, msg); ms != NATS_OK) {
      status = NatsError(ms, kNoJsError, "reading a log message's sequence");
      break;
    }
    LogEntry entry;
    entry.seq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    const std::string_view subject = natsMsg_GetSubject(msg);
    const std::string_view token = subject.substr(subject.rfind('.') + 1);
    entry.shard = kAllShards;
    if (token != "all") {
      uint32_t shard = 0;
      const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), shard);
      if (ec != std::errc() || end != token.data() + token.size()) {
        status = DataLossError("a log message on subject '" + std::string(subject) +
                               "', which names no shard");
        break;
      }
      entry.shard = shard;
    }
    entry.data.assign(natsMsg_GetData(msg), size_t(natsMsg_GetDataLength(msg)));
    out.push_back(std::move(entry));
  }
  // A message that does not follow the last one directly (other shards' messages make gaps
  // too) is checked against the stream's first sequence: trimmed past the last one returned,
  // messages of this shard may be gone.
  if (status.ok() && !out.empty() && out.front().seq > impl_->delivered + 1) {
    auto state = impl_->log->State(impl_->collection);
    if (!state.ok()) {
      status = state.status();
    } else if (state->first > impl_->delivered + 1) {
      status = FailedPreconditionError(
          "the write log of '" + impl_->collection + "' was trimmed to start at sequence " +
          std::to_string(state->first) + " while this node had applied it only up to " +
          std::to_string(impl_->delivered) +
          ": messages between may be lost to this node, so it cannot rebuild the collection from "
          "the log alone");
    }
  }
  if (status.ok() && !out.empty()) impl_->delivered = out.back().seq;
  if (status.ok() && list.Count > 0) {
    natsMsg_Destroy(impl_->last);
    impl_->last = list.Msgs[list.Count - 1];
    list.Msgs[list.Count - 1] = nullptr;  // kept for AckFetched
  }
  natsMsgList_Destroy(&list);
  if (!status.ok()) return status;
  return out;
}

Status LogReader::AckFetched() {
  if (impl_->last == nullptr) return Status::Ok();
  jsErrCode jerr = kNoJsError;
  natsStatus s = natsMsg_AckSync(impl_->last, nullptr, &jerr);
  if (s != NATS_OK) return NatsError(s, jerr, "acknowledging applied log messages");
  natsMsg_Destroy(impl_->last);
  impl_->last = nullptr;
  return Status::Ok();
}

}  // namespace quiver::cluster
