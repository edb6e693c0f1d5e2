#include "client/client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>

#include "base/crc32c.h"
#include "net/schema/wire_codec.h"

namespace quiver::client {

using Clock = std::chrono::steady_clock;

namespace {

int MillisLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : int(std::min<int64_t>(left, 1 << 30));
}

Status Transport(const std::string& what) { return UnavailableError(what); }

// Transient failures worth another attempt.
bool Retryable(const Status& s) {
  return s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kResourceExhausted;
}

}  // namespace

// One TCP connection speaking the frame protocol, used by one call at a time.
class Client::Connection {
 public:
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Whether the server has closed this idle connection (its idle timeout, a restart): nothing
  // is buffered from it, and the socket reads end of stream or an error. Such a connection is
  // replaced before a request is written to it, so that closing idle connections costs no
  // request an attempt.
  bool ClosedByServer() const {
    if (in_pos_ < in_.size()) return false;
    char byte = 0;
    const ssize_t r = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }

  static Result<std::unique_ptr<Connection>> Open(const ClientOptions& o,
                                                  Clock::time_point deadline) {
    if (!o.unix_path.empty()) return OpenUnix(o.unix_path);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(o.port);
    if (int rc = ::getaddrinfo(o.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
      return Transport("cannot resolve " + o.host + ": " + ::gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, ::freeaddrinfo);
    const auto connect_deadline = std::min(deadline, Clock::now() + o.connect_timeout);
    std::string last = "no address";
    for (addrinfo* a = res; a; a = a->ai_next) {
      int fd =
          ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      auto c = std::unique_ptr<Connection>(new Connection(fd));
      if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        last = std::strerror(errno);
        continue;
      }
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, MillisLeft(connect_deadline)) <= 0) {
        last = "connect timed out";
        continue;
      }
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = std::strerror(err);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return c;
    }
    return Transport("cannot connect to " + o.host + ":" + port + ": " + last);
  }

  Status Send(const std::string& bytes, Clock::time_point deadline) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += size_t(n);
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return Transport(std::string("send failed: ") + std::strerror(errno));
      }
      QV_RETURN_IF_ERROR(Wait(POLLOUT, deadline));
    }
    return Status::Ok();
  }

  // Reads one whole frame body.
  Result<std::string> Receive(Clock::time_point deadline, size_t max_bytes) {
    // Called right after a request went out: the answer cannot be there yet, so wait for it
    // rather than spend a recv on finding the socket empty.
    if (in_pos_ == in_.size()) QV_RETURN_IF_ERROR(Wait(POLLIN, deadline));
    char header[net::kFrameHeaderBytes];
    QV_RETURN_IF_ERROR(ReadExactly(header, sizeof(header), deadline));
    const uint32_t len = net::DecodeFrameLength(header);
    if (len == 0 || len > max_bytes) {
      return Transport("server sent a frame of " + std::to_string(len) + " bytes (limit " +
                       std::to_string(max_bytes) + ")");
    }
    std::string body(len, '\0');
    QV_RETURN_IF_ERROR(ReadExactly(body.data(), len, deadline));
    return body;
  }

 private:
  explicit Connection(int fd) : fd_(fd) {}

  static Result<std::unique_ptr<Connection>> OpenUnix(const std::string& path) {
    sockaddr_un a{};
    if (path.size() >= sizeof(a.sun_path))
      return InvalidArgumentError("socket path too long: " + path);
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.data(), path.size());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Transport(std::string("socket failed: ") + std::strerror(errno));
    auto c = std::unique_ptr<Connection>(new Connection(fd));
    // A local connect completes at once (or fails: no listener, or its backlog is full).
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      return Transport("cannot connect to " + path + ": " + std::strerror(errno));
    }
    return c;
  }

  Status Wait(short events, Clock::time_point deadline) {
    pollfd p{fd_, events, 0};
    const int ms = MillisLeft(deadline);
    if (ms == 0) return Status(StatusCode::kDeadlineExceeded, "deadline exceeded");
    int rc = ::poll(&p, 1, ms);
    if (rc == 0) return Status(StatusCode::kDeadlineExceeded, "deadline exceeded");
    if (rc < 0 && errno != EINTR)
      return Transport(std::string("poll failed: ") + std::strerror(errno));
    return Status::Ok();
  }

  // Reads n bytes, from what earlier reads buffered first; each recv takes whatever the socket
  // holds (usually a whole response), saving a system call per frame.
  Status ReadExactly(char* dst, size_t n, Clock::time_point deadline) {
    while (in_.size() - in_pos_ < n) {
      if (in_pos_ > 0) {
        in_.erase(0, in_pos_);
        in_pos_ = 0;
      }
      char chunk[64 * 1024];
      ssize_t r = ::recv(fd_, chunk, sizeof(chunk), 0);
      if (r > 0) {
        in_.append(chunk, size_t(r));
        continue;
      }
      if (r == 0) return Transport("server closed the connection");
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return Transport(std::string("recv failed: ") + std::strerror(errno));
      }
      QV_RETURN_IF_ERROR(Wait(POLLIN, deadline));
    }
    std::memcpy(dst, in_.data() + in_pos_, n);
    in_pos_ += n;
    return Status::Ok();
  }

  std::string in_;  // received, not yet consumed from in_pos_
  size_t in_pos_ = 0;
  int fd_;
};

Client::Client(ClientOptions options) : options_(std::move(options)) {
  const size_t workers = std::max<size_t>(1, options_.pool_size);
  for (size_t i = 0; i < workers; ++i) workers_.emplace_back([this] { Worker(); });
}

Client::~Client() {
  {
    std::lock_guard lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

Result<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  std::unique_ptr<Client> client(new Client(options));
  Status error;
  auto c = client->Take(Clock::now() + options.connect_timeout, &error);
  if (!c) return error;
  client->Give(std::move(c));
  return client;
}

std::unique_ptr<Client::Connection> Client::Take(Clock::time_point deadline, Status* error) {
  {
    std::lock_guard lock(pool_mu_);
    while (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      if (!c->ClosedByServer()) return c;
    }
  }
  auto opened = Connection::Open(options_, deadline);
  if (!opened.ok()) {
    *error = opened.status();
    return nullptr;
  }
  return std::move(*opened);
}

void Client::Give(std::unique_ptr<Connection> c) {
  std::lock_guard lock(pool_mu_);
  if (idle_.size() < options_.pool_size) idle_.push_back(std::move(c));
}

net::Reply Client::Attempt(const net::Call& call, Clock::time_point deadline, bool* sent,
                           bool* unreadable) {
  *sent = false;
  *unreadable = false;
  Status error;
  auto c = Take(deadline, &error);
  if (!c) return net::Reply{error, {}};
  const uint64_t id = next_id_.fetch_add(1);
  if (Status s = c->Send(net::EncodeRequestFrame(id, options_.api_key, call), deadline); !s.ok()) {
    return net::Reply{s, {}};  // the connection is dropped; a partial frame may have left
  }
  *sent = true;
  auto body = c->Receive(deadline, options_.max_frame_bytes);
  if (!body.ok()) return net::Reply{body.status(), {}};
  auto decoded = net::DecodeResponse(*body);
  if (!decoded.ok())
    return net::Reply{Transport("bad response: " + std::string(decoded.status().message())), {}};
  if (decoded->id != id) {
    // The server's answer to a frame it could not read (over its size limit, or not a request):
    // sending the same frame again gets the same answer, so it is final. The connection is not
    // reused.
    if (!decoded->reply.status.ok()) {
      *unreadable = true;
      return std::move(decoded->reply);
    }
    return net::Reply{Transport("response id " + std::to_string(decoded->id) +
                                " does not match request " + std::to_string(id)),
                      {}};
  }
  Give(std::move(c));
  return std::move(decoded->reply);
}

struct Client::Batch::Rep {
  Client* client = nullptr;
  std::vector<net::Call> owned;      // Start's calls (CallMany's stay the caller's)
  std::span<const net::Call> calls;  // what was sent: kept for the retries
  Clock::time_point deadline;
  std::unique_ptr<Connection> c;
  uint64_t first = 0;
  Status error;
  bool sent = false;
};

Client::Batch::Batch() : rep_(std::make_unique<Rep>()) {}
Client::Batch::Batch(Batch&&) noexcept = default;
Client::Batch& Client::Batch::operator=(Batch&&) noexcept = default;
Client::Batch::~Batch() = default;

Client::Batch Client::Start(std::vector<net::Call> calls, std::chrono::milliseconds deadline_ms) {
  Batch b = StartView(calls, deadline_ms);
  b.rep_->owned = std::move(calls);  // the same elements: the view stays valid
  return b;
}

Client::Batch Client::StartView(std::span<const net::Call> calls,
                                std::chrono::milliseconds deadline_ms) {
  Batch b;
  Batch::Rep& r = *b.rep_;
  r.client = this;
  r.calls = calls;
  r.deadline = Clock::now() + (deadline_ms.count() > 0 ? deadline_ms : options_.deadline);
  r.c = Take(r.deadline, &r.error);
  if (r.c) {
    r.first = next_id_.fetch_add(r.calls.size());
    std::string frames;
    for (size_t i = 0; i < r.calls.size(); ++i)
      frames += net::EncodeRequestFrame(r.first + i, options_.api_key, r.calls[i]);
    r.error = r.c->Send(frames, r.deadline);
    r.sent = true;  // (a part of the frames may have left even on failure)
  }
  return b;
}

std::vector<net::Reply> Client::Batch::Wait() {
  Rep& r = *rep_;
  const size_t n = r.calls.size();
  std::vector<net::Reply> replies(n);
  std::vector<bool> answered(n, false);
  // The server's answers to frames it could not read (over its size limit): they carry no
  // request id, and go, in order, to the calls left unanswered. Final, as in Call.
  std::vector<net::Reply> unreadable;
  if (r.c) {
    size_t left = n;
    while (r.error.ok() && left > 0) {
      auto body = r.c->Receive(r.deadline, r.client->options_.max_frame_bytes);
      if (!body.ok()) {
        r.error = body.status();
        break;
      }
      auto decoded = net::DecodeResponse(*body);
      if (decoded.ok() && decoded->id == 0 && !decoded->reply.status.ok()) {
        unreadable.push_back(std::move(decoded->reply));
        --left;
        continue;
      }
      if (!decoded.ok() || decoded->id < r.first || decoded->id - r.first >= n ||
          answered[decoded->id - r.first]) {
        r.error = Transport("bad or unexpected response in a pipelined batch");
        break;
      }
      const size_t i = size_t(decoded->id - r.first);
      replies[i] = std::move(decoded->reply);
      answered[i] = true;
      --left;
    }
    if (r.error.ok()) {
      size_t next = 0;
      for (size_t i = 0; i < n; ++i) {
        if (!answered[i]) replies[i] = std::move(unreadable[next++]);
      }
      if (unreadable.empty()) r.client->Give(std::move(r.c));
      return replies;
    }
    r.c.reset();
  }
  for (size_t i = 0; i < n; ++i) {
    if (answered[i]) continue;
    if (!r.sent || net::IsIdempotent(r.calls[i])) {
      replies[i] = r.client->Call(r.calls[i], std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  r.deadline - Clock::now()));
    } else {
      replies[i] = net::Reply{r.error, {}};
    }
  }
  return replies;
}

std::vector<net::Reply> Client::CallMany(std::span<const net::Call> calls,
                                         std::chrono::milliseconds deadline_ms) {
  return StartView(calls, deadline_ms).Wait();  // the calls outlive the batch: not copied
}

net::Reply Client::Call(const net::Call& call, std::chrono::milliseconds deadline_ms) {
  const auto deadline = Clock::now() + (deadline_ms.count() > 0 ? deadline_ms : options_.deadline);
  const bool idempotent = net::IsIdempotent(call);
  auto backoff = options_.initial_backoff;
  thread_local std::mt19937 rng(std::random_device{}());
  net::Reply reply;
  for (int attempt = 1;; ++attempt) {
    bool sent = false, unreadable = false;
    reply = Attempt(call, deadline, &sent, &unreadable);
    if (reply.status.ok() || unreadable || !Retryable(reply.status)) return reply;
    if (sent && !idempotent) return reply;  // the outcome is unknown: do not repeat
    if (attempt >= options_.max_attempts) return reply;
    // Sleep backoff * [0.5, 1.5), within the deadline.
    const auto jittered = std::chrono::milliseconds(
        int64_t(double(backoff.count()) * std::uniform_real_distribution<double>(0.5, 1.5)(rng)));
    if (Clock::now() + jittered >= deadline) return reply;
    std::this_thread::sleep_for(jittered);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
}

std::future<net::Reply> Client::CallAsync(net::Call call, std::chrono::milliseconds deadline) {
  auto task = std::make_shared<std::packaged_task<net::Reply()>>(
      [this, call = std::move(call), deadline] { return Call(call, deadline); });
  std::future<net::Reply> result = task->get_future();
  {
    std::lock_guard lock(queue_mu_);
    queue_.push_back([task] { (*task)(); });
  }
  queue_cv_.notify_one();
  return result;
}

void Client::Worker() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to run
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();
  }
}

// ---- typed calls ----

namespace {

template <typename T>
Result<T> BodyAs(net::Reply reply) {
  if (!reply.status.ok()) return reply.status;
  if (auto* v = std::get_if<T>(&reply.body)) return std::move(*v);
  return InternalError("the server answered with an unexpected body");
}

}  // namespace

Result<CollectionInfo> Client::CreateCollection(const CollectionSchema& schema) {
  return BodyAs<CollectionInfo>(Call(net::CreateCollectionCall{schema}));
}
Status Client::DropCollection(const std::string& name) {
  return Call(net::DropCollectionCall{name}).status;
}
Result<std::vector<CollectionInfo>> Client::ListCollections() {
  return BodyAs<std::vector<CollectionInfo>>(Call(net::ListCollectionsCall{}));
}
Result<CollectionInfo> Client::DescribeCollection(const std::string& name) {
  return BodyAs<CollectionInfo>(Call(net::DescribeCollectionCall{name}));
}
Result<WriteResult> Client::Upsert(const std::string& collection, std::vector<ItemRecord> items) {
  return BodyAs<WriteResult>(Call(net::UpsertCall{collection, std::move(items)}));
}
Result<WriteResult> Client::Delete(const std::string& collection, std::vector<uint64_t> ids) {
  return BodyAs<WriteResult>(Call(net::DeleteCall{collection, std::move(ids)}));
}
Result<std::vector<std::optional<ItemRecord>>> Client::Get(const std::string& collection,
                                                           std::vector<uint64_t> ids) {
  QV_ASSIGN_OR_RETURN(net::GetResult r,
                      BodyAs<net::GetResult>(Call(net::GetCall{collection, std::move(ids)})));
  return std::move(r.items);
}
namespace {

// User and event writes: a server before 0.1's cluster mode answered them with no body.
Result<WriteResult> UserWriteResult(net::Reply reply, uint64_t records) {
  if (reply.status.ok() && std::holds_alternative<std::monostate>(reply.body)) {
    return WriteResult{0, records};
  }
  return BodyAs<WriteResult>(std::move(reply));
}

}  // namespace

Result<WriteResult> Client::PutUsers(const std::string& collection, std::vector<UserRecord> users) {
  const uint64_t n = users.size();
  return UserWriteResult(Call(net::PutUsersCall{collection, std::move(users)}), n);
}
Result<std::optional<UserRecord>> Client::GetUser(const std::string& collection, uint64_t id) {
  QV_ASSIGN_OR_RETURN(net::UserResult r,
                      BodyAs<net::UserResult>(Call(net::GetUserCall{collection, id})));
  return std::move(r.user);
}
Result<WriteResult> Client::AddEvents(const std::string& collection, std::vector<Event> events) {
  const uint64_t n = events.size();
  return UserWriteResult(Call(net::AddEventsCall{collection, std::move(events)}), n);
}
Result<std::vector<Hit>> Client::Search(const std::string& collection,
                                        std::span<const float> vector, const SearchOptions& o) {
  net::SearchCall c{collection,
                    {.vectors = {{vector.begin(), vector.end()}},
                     .k = o.k,
                     .ef = o.ef,
                     .nprobe = o.nprobe,
                     .refine = o.refine}};
  QV_ASSIGN_OR_RETURN(net::SearchResult r, BodyAs<net::SearchResult>(Call(c)));
  return std::move(r.hits);
}
Result<net::SearchResult> Client::Query(net::SearchCall call) {
  return BodyAs<net::SearchResult>(Call(call));
}
Result<std::vector<net::SearchOutcome>> Client::SearchBatch(std::vector<net::SearchCall> searches) {
  QV_ASSIGN_OR_RETURN(
      net::SearchBatchResult r,
      BodyAs<net::SearchBatchResult>(Call(net::SearchBatchCall{std::move(searches)})));
  return std::move(r.results);
}
Result<uint64_t> Client::Count(const std::string& collection, std::optional<Filter> filter) {
  QV_ASSIGN_OR_RETURN(net::CountResult r, BodyAs<net::CountResult>(
                                              Call(net::CountCall{collection, std::move(filter)})));
  return r.count;
}
Result<net::ScrollResult> Client::Scroll(net::ScrollCall call) {
  return BodyAs<net::ScrollResult>(Call(call));
}
Status Client::Snapshot(const std::string& collection) {
  return Call(net::SnapshotCall{collection}).status;
}
Status Client::Reload(const std::string& version) { return Call(net::ReloadCall{version}).status; }
Status Client::Rollback() { return Call(net::RollbackCall{}).status; }
Status Client::PublishVersion(const std::string& collection, const std::string& version,
                              const std::string& path, std::optional<uint64_t> after_seq) {
  return Call(net::ReloadCall{version, collection, path, after_seq}).status;
}
Status Client::RollbackCollection(const std::string& collection) {
  return Call(net::RollbackCall{collection}).status;
}
Result<VersionsInfo> Client::CollectionVersions(const std::string& collection) {
  return BodyAs<VersionsInfo>(Call(net::ListVersionsCall{collection}));
}
Result<net::ClusterInfo> Client::Cluster() {
  return BodyAs<net::ClusterInfo>(Call(net::ClusterInfoCall{}));
}
Status Client::AssignShard(uint32_t shard, std::vector<std::string> nodes) {
  return Call(net::AssignShardCall{shard, std::move(nodes)}).status;
}
Result<VersionsInfo> Client::ListVersions() {
  return BodyAs<VersionsInfo>(Call(net::ListVersionsCall{}));
}
Result<net::HealthResult> Client::Health() {
  return BodyAs<net::HealthResult>(Call(net::HealthCall{}));
}
Result<net::PluginRunResult> Client::RunPlugin(const std::string& collection,
                                               const std::string& plugin,
                                               const std::string& config_json, bool incremental,
                                               std::chrono::milliseconds deadline) {
  return BodyAs<net::PluginRunResult>(
      Call(net::RunPluginCall{collection, plugin, config_json, incremental}, deadline));
}
Result<std::optional<std::vector<Hit>>> Client::GetList(const std::string& collection,
                                                        const std::string& kind, uint64_t key) {
  QV_ASSIGN_OR_RETURN(net::ListResult r,
                      BodyAs<net::ListResult>(Call(net::GetListCall{collection, kind, key})));
  return std::move(r.list);
}
Result<std::vector<ListInfo>> Client::ListLists(const std::string& collection) {
  QV_ASSIGN_OR_RETURN(net::ListInfosResult r,
                      BodyAs<net::ListInfosResult>(Call(net::ListListsCall{collection})));
  return std::move(r.lists);
}
Result<std::vector<std::string>> Client::ListPlugins() {
  QV_ASSIGN_OR_RETURN(net::PluginsResult r,
                      BodyAs<net::PluginsResult>(Call(net::ListPluginsCall{})));
  return std::move(r.names);
}

Result<net::ExportResult> Client::FetchExport(const std::string& collection, const std::string& dir,
                                              std::chrono::milliseconds deadline,
                                              std::vector<uint32_t> shards) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir, ec)) return AlreadyExistsError(dir + " exists");
  QV_ASSIGN_OR_RETURN(
      net::ExportResult info,
      BodyAs<net::ExportResult>(Call(net::ExportCall{collection, std::move(shards)}, deadline)));
  auto copy = [&]() -> Status {
    for (const net::ExportFile& file : info.files) {
      const fs::path rel(file.name);
      bool safe = !rel.empty() && rel.is_relative();
      for (const auto& part : rel) safe = safe && part != ".." && part != ".";
      if (!safe)
        return DataLossError("the export names a file outside its directory: " + file.name);
      const fs::path path = fs::path(dir) / rel;
      fs::create_directories(path.parent_path(), ec);
      if (ec)
        return InternalError("cannot create " + path.parent_path().string() + ": " + ec.message());
      std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(std::fopen(path.c_str(), "wb"),
                                                          &std::fclose);
      if (!out)
        return InternalError("cannot create " + path.string() + ": " + std::strerror(errno));
      uint64_t offset = 0;
      uint32_t crc = 0;
      while (offset < file.size) {
        constexpr uint32_t kChunk = uint32_t{4} << 20;
        QV_ASSIGN_OR_RETURN(net::ExportChunk chunk,
                            BodyAs<net::ExportChunk>(Call(
                                net::ReadExportCall{info.export_id, file.name, offset, kChunk})));
        if (chunk.data.empty()) {
          return DataLossError("the export's file " + file.name + " ends at " +
                               std::to_string(offset) + " bytes; it was listed with " +
                               std::to_string(file.size));
        }
        if (std::fwrite(chunk.data.data(), 1, chunk.data.size(), out.get()) != chunk.data.size()) {
          return InternalError("writing " + path.string() + ": " + std::strerror(errno));
        }
        crc = crc32c::Extend(crc, chunk.data.data(), chunk.data.size());
        offset += chunk.data.size();
      }
      if (offset != file.size || crc != file.crc32c) {
        return DataLossError("the export's file " + file.name + " arrived damaged (size " +
                             std::to_string(offset) + " of " + std::to_string(file.size) +
                             ", CRC-32C differs: " + (crc != file.crc32c ? "yes" : "no") + ")");
      }
      if (std::fflush(out.get()) != 0)
        return InternalError("writing " + path.string() + ": " + std::strerror(errno));
    }
    return Status::Ok();
  };
  fs::create_directories(dir, ec);
  Status s = ec ? InternalError("cannot create " + dir + ": " + ec.message()) : copy();
  Call(net::EndExportCall{info.export_id}).status.IgnoreError();  // it expires anyway
  if (!s.ok()) {
    fs::remove_all(dir, ec);
    return s;
  }
  return info;
}

}  // namespace quiver::client
