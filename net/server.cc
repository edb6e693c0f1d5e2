#include "net/server.h"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstring>
#include <deque>
#include <mutex>
#include <type_traits>

#include "base/log.h"
#include "base/work_pool.h"
#include "net/json_api.h"
#include "net/schema/wire_codec.h"

namespace quiver::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
namespace local = asio::local;
using Clock = std::chrono::steady_clock;

bool KeyEquals(std::string_view offered, std::string_view expected) {
  // Touches every byte of the longer string whatever the contents.
  const size_t n = std::max(offered.size(), expected.size());
  unsigned char diff = offered.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char a = i < offered.size() ? uint8_t(offered[i]) : 0;
    const unsigned char b = i < expected.size() ? uint8_t(expected[i]) : 0;
    diff |= a ^ b;
  }
  return diff == 0;
}

namespace {

size_t Cores() { return std::max(1u, std::thread::hardware_concurrency()); }

double MillisSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// What a call names: its collection, else its version (reload), else "".
std::string_view CallTarget(const Call& call) {
  return std::visit(
      [](const auto& c) -> std::string_view {
        if constexpr (requires { c.collection; }) {
          if (!c.collection.empty()) return c.collection;
        }
        if constexpr (requires { c.schema.name; }) return c.schema.name;
        if constexpr (requires { c.name; }) return c.name;
        if constexpr (requires { c.version; }) return c.version;
        return {};
      },
      call);
}

// A failure of the server rather than of the request (a full disk, a store error, no quorum).
bool ServerSide(StatusCode code) {
  return code == StatusCode::kResourceExhausted || code == StatusCode::kUnavailable ||
         code == StatusCode::kInternal || code == StatusCode::kDataLoss ||
         code == StatusCode::kDeadlineExceeded;
}

// The log line of a maintenance call (create, drop, snapshot, reload, rollback, plugin run,
// shard assignment, export) or of a write the server failed: what it was, on what, how it
// ended.
void LogCall(const Call& call, const Reply& reply, double ms) {
  const char* op = CallName(call);
  const std::string_view target = CallTarget(call);
  std::string_view detail;
  if (const auto* run = std::get_if<RunPluginCall>(&call)) detail = run->plugin;
  if (const auto* reload = std::get_if<ReloadCall>(&call); reload && !reload->collection.empty())
    detail = reload->version;
  if (reply.status.ok()) {
    if (detail.empty()) {
      log::Info(op, {{"target", target}, {"ms", ms}});
    } else {
      log::Info(op, {{"target", target}, {"detail", detail}, {"ms", ms}});
    }
  } else {
    const log::Level level =
        reply.status.code() == StatusCode::kInternal || reply.status.code() == StatusCode::kDataLoss
            ? log::Level::kError
            : log::Level::kWarn;
    log::Write(level, op,
               {{"target", target},
                {"detail", detail},
                {"code", StatusCodeName(reply.status.code())},
                {"message", ReplyMessage(reply.status.message())},
                {"ms", ms}});
  }
}

size_t MaintenanceThreads(const ServerOptions& o) {
  return o.maintenance_threads > 0 ? size_t(o.maintenance_threads)
                                   : std::max<size_t>(1, Cores() / 2);
}

}  // namespace

size_t BackgroundParallelism(const ServerOptions& o) {
  if (o.background_parallelism > 0) return size_t(o.background_parallelism);
  const size_t cores = std::max<size_t>(1, Cores() - 1);
  return o.background_cpus.empty() ? cores : std::min(cores, o.background_cpus.size());
}

struct Server::Context {
  Context(engine::DataRoot& root, ServerOptions o)
      : options(std::move(o)),
        service(root, options.limits, options.node, options.router),
        writes("quiver-write", size_t(std::max(1, options.write_threads)),
               options.max_queued_writes, options.write_priority, BackgroundParallelism(options),
               options.background_cpus),
        maintenance("quiver-maint", MaintenanceThreads(options), options.max_queued_maintenance,
                    options.maintenance_priority, BackgroundParallelism(options),
                    options.background_cpus),
        ioc(std::max(1, options.threads)),
        http_acceptor(ioc),
        binary_acceptor(ioc),
        unix_acceptor(ioc) {}

  // Checks the key for a call: kUnauthenticated without a valid key, kPermissionDenied for a
  // read-only key on a write.
  Status Authorize(std::string_view key, const Call* call) const {
    const bool rw_set = !options.read_write_key.empty(), ro_set = !options.read_only_key.empty();
    if (!rw_set && !ro_set) return Status::Ok();
    const bool rw = rw_set && KeyEquals(key, options.read_write_key);
    const bool ro = ro_set && KeyEquals(key, options.read_only_key);
    if (!rw && !ro)
      return Status(StatusCode::kUnauthenticated,
                    key.empty() ? "an API key is required" : "invalid API key");
    if (!rw && call && IsWrite(*call)) {
      return PermissionDeniedError(std::string("the read-only key cannot call ") + CallName(*call));
    }
    return Status::Ok();
  }

  // Runs an authorized call, unless it waited longer than the request timeout.
  Reply Run(const Call& call, Clock::time_point received) {
    if (Clock::now() - received > options.request_timeout) {
      return Reply{Status(StatusCode::kDeadlineExceeded,
                          "the request waited longer than the server's timeout"),
                   {}};
    }
    return service.Handle(call);
  }

  // Answers a call where its class runs (server.h): a read at once, on this thread; a write or
  // maintenance call on its pool, `done` then running on `executor` (the connection's strand).
  template <typename Executor, typename Done>
  void Dispatch(Call call, std::string_view key, Clock::time_point received,
                const Executor& executor, Done done) {
    if (Status s = Authorize(key, &call); !s.ok()) return done(Reply{s, {}});
    const CallClass cls = ClassOf(call);
    if (cls == CallClass::kRead) return done(Run(call, received));
    WorkPool& pool = cls == CallClass::kWrite ? writes : maintenance;
    auto shared = std::make_shared<Call>(std::move(call));
    const bool queued = pool.Submit([this, shared, received, executor, done, cls]() mutable {
      const auto started = Clock::now();
      auto reply = std::make_shared<Reply>(Run(*shared, received));
      if (cls == CallClass::kMaintenance || ServerSide(reply->status.code())) {
        LogCall(*shared, *reply, MillisSince(started));
      }
      asio::post(executor, [done = std::move(done), reply]() mutable { done(std::move(*reply)); });
    });
    if (!queued) {
      done(Reply{UnavailableError(std::to_string(pool.max_queued()) + " " +
                                  (cls == CallClass::kWrite ? "writes" : "maintenance calls") +
                                  " are already waiting (the server's limit); retry later"),
                 {}});
    }
  }

  void Record(size_t kind, Protocol p, StatusCode code, Clock::time_point start) {
    metrics.Record(kind, p, code, Clock::now() - start);
  }

  ServerOptions options;
  Service service;
  WorkPool writes, maintenance;
  Metrics metrics;
  asio::io_context ioc;
  tcp::acceptor http_acceptor, binary_acceptor;
  local::stream_protocol::acceptor unix_acceptor;  // binary protocol on options.binary_unix_path
  std::atomic<bool> stopping{false};
  std::atomic<int> in_flight{0};
  std::atomic<uint64_t> idle_closed{0};  // binary connections closed for idleness
};

namespace {

using Context = Server::Context;

std::string_view Sv(beast::string_view s) { return std::string_view(s.data(), s.size()); }

// ---- REST ----

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(tcp::socket socket, Context& ctx) : stream_(std::move(socket)), ctx_(ctx) {}

  void Start() { Read(); }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(ctx_.options.limits.max_body_bytes);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(ctx_.options.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&HttpSession::OnHeader, shared_from_this()));
  }

  // The header is in (a body over the limit, by its Content-Length, is already an error). A
  // client that sent `Expect: 100-continue` (curl does above 1 MB) waits for the interim
  // 100 Continue before it sends the body.
  void OnHeader(beast::error_code ec, size_t n) {
    if (ec) return OnRead(ec, n);
    const auto& req = parser_->get();
    if (auto it = req.find(http::field::expect);
        it != req.end() && beast::iequals(it->value(), "100-continue") && !parser_->is_done()) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code wec, size_t) {
                          if (wec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted) {
      return Close();
    }
    start_ = Clock::now();
    op_ = "";
    method_.clear();
    path_.clear();
    bytes_in_ = 0;
    if (ec == http::error::body_limit) {
      return Respond(
          HttpReply{413, ErrorJson(ResourceExhaustedError(
                             "body larger than the limit of " +
                             std::to_string(ctx_.options.limits.max_body_bytes) + " bytes"))},
          false);
    }
    if (ec) {
      return Respond(HttpReply{400, ErrorJson(InvalidArgumentError("malformed HTTP request: " +
                                                                   ec.message()))},
                     false);
    }
    const auto start = start_;
    in_request_ = true;
    ctx_.in_flight.fetch_add(1);
    http::request<http::string_body> req = parser_->release();
    if (ctx_.options.access_log) {
      method_ = Sv(req.method_string());
      const std::string_view t = Sv(req.target());
      path_ = t.substr(0, t.find('?'));
      bytes_in_ = req.body().size();
    }
    const bool keep_alive = req.keep_alive() && !ctx_.stopping.load();
    std::string_view key;
    if (auto it = req.find("X-Api-Key"); it != req.end()) key = Sv(it->value());
    if (auto it = req.find(http::field::authorization);
        it != req.end() && it->value().starts_with("Bearer ")) {
      key = Sv(it->value()).substr(7);
    }
    const std::string_view target = Sv(req.target());
    const std::string_view path = target.substr(0, target.find('?'));
    if (req.method() == http::verb::get && (path == "/livez" || path == "/readyz")) {
      // Probes: no API key, no data. Live while this loop answers; ready once the data root is
      // loaded and nothing keeps it from taking traffic (Service::NotReady says what).
      const std::string why = path == "/livez" ? "" : ctx_.service.NotReady();
      content_type_ = "application/json";
      return Respond(
          why.empty() ? HttpReply{200, path == "/livez" ? R"({"live":true})" : R"({"ready":true})"}
                      : HttpReply{503, R"({"ready":false,"reason":")" + why + "\"}"},
          keep_alive);
    }
    if (target == "/metrics" || target.starts_with("/metrics?")) {
      Status auth = ctx_.Authorize(key, nullptr);
      HttpReply r = auth.ok()
                        ? HttpReply{200, (ctx_.service.root().engine()
                                              ? ctx_.metrics.Render(
                                                    ctx_.service.root().engine()->ListCollections())
                                              : "") +
                                             "# TYPE quiver_binary_idle_closed_total counter\n"
                                             "quiver_binary_idle_closed_total " +
                                             std::to_string(ctx_.idle_closed.load()) + "\n" +
                                             (ctx_.options.router != nullptr
                                                  ? ctx_.options.router->RenderMetrics()
                                                  : "")}
                        : HttpReply{HttpStatusFor(auth.code()), ErrorJson(auth)};
      content_type_ = auth.ok() ? "text/plain; version=0.0.4" : "application/json";
      return Respond(std::move(r), keep_alive);
    }
    content_type_ = "application/json";
    auto call = DecodeHttpCall(Sv(req.method_string()), target, req.body(),
                               ctx_.options.limits.max_json_depth);
    if (!call.ok()) {
      ctx_.Record(kCallKinds, Protocol::kRest, call.status().code(), start);
      return Respond(EncodeHttpReply(Reply{call.status(), {}}), keep_alive);
    }
    const size_t kind = call->index();
    op_ = CallNameAt(kind);
    ctx_.Dispatch(std::move(*call), key, start, stream_.get_executor(),
                  [self = shared_from_this(), kind, start, keep_alive](const Reply& reply) {
                    self->ctx_.Record(kind, Protocol::kRest, reply.status.code(), start);
                    self->Respond(EncodeHttpReply(reply), keep_alive);
                  });
  }

  void Respond(HttpReply reply, bool keep_alive) {
    if (ctx_.options.access_log) {
      log::Info("access", {{"proto", "rest"},
                           {"method", method_},
                           {"path", path_},
                           {"op", op_},
                           {"status", reply.status},
                           {"ms", MillisSince(start_)},
                           {"in", bytes_in_},
                           {"out", reply.body.size()}});
    }
    res_.emplace(http::status(reply.status), 11);
    res_->set(http::field::server, "quiver");
    res_->set(http::field::content_type, content_type_);
    res_->keep_alive(keep_alive);
    res_->body() = std::move(reply.body);
    res_->prepare_payload();
    stream_.expires_after(ctx_.options.read_timeout);
    http::async_write(
        stream_, *res_,
        beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this(), keep_alive));
  }

  void OnWrite(bool keep_alive, beast::error_code ec, size_t) {
    if (in_request_) ctx_.in_flight.fetch_sub(1);
    in_request_ = false;
    if (ec || !keep_alive) return Close();
    Read();
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  Context& ctx_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> res_;
  std::string content_type_ = "application/json";
  // The request being answered, for the access log.
  Clock::time_point start_;
  std::string method_, path_;
  const char* op_ = "";
  size_t bytes_in_ = 0;
  bool in_request_ = false;  // a request is being answered (counted in ctx_.in_flight)
};

// ---- binary ----

// One binary-protocol connection (TCP or a Unix-domain socket). Reads go into one buffer, each
// read taking whatever the socket holds, so a frame usually costs one read; complete frames are
// cut from it in place. A lone request is answered on the reading thread; pipelined ones go to
// the pool and their responses come back through the strand, gathered into one write.
template <typename Socket>
class BinarySession : public std::enable_shared_from_this<BinarySession<Socket>> {
 public:
  BinarySession(Socket socket, Context& ctx)
      : socket_(std::move(socket)),
        strand_(asio::make_strand(ctx.ioc)),
        idle_(strand_),
        ctx_(ctx) {}

  void Start() {
    asio::dispatch(strand_, [self = this->shared_from_this()] {
      self->last_activity_ = Clock::now();
      self->ArmIdle(self->ctx_.options.idle_timeout);
      self->Read();
    });
  }

 private:
  // The idle timer is armed once per timeout period, not per request: when it fires it closes
  // the connection only if nothing arrived since, and otherwise waits out the rest.
  void ArmIdle(Clock::duration wait) {
    idle_.expires_after(wait);
    idle_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec || self->closing_) return;
      const auto idle_for = Clock::now() - self->last_activity_;
      const auto timeout =
          std::chrono::duration_cast<Clock::duration>(self->ctx_.options.idle_timeout);
      if (idle_for >= timeout && self->in_flight_ == 0 && self->outbox_.empty()) {
        self->ctx_.idle_closed.fetch_add(1, std::memory_order_relaxed);
        return self->Close();
      }
      self->ArmIdle(idle_for >= timeout ? timeout : timeout - idle_for);
    });
  }

  void Read() {
    if (closing_ || closing_after_write_) return;
    // Room for at least the rest of the frame being received (its length is known once its
    // header is in), or 64 KiB.
    size_t want = size_t{64} * 1024;
    if (discard_ == 0 && end_ - begin_ >= kFrameHeaderBytes) {
      want = std::max(want, kFrameHeaderBytes + size_t(DecodeFrameLength(in_.data() + begin_)));
    }
    if (begin_ > 0 && in_.size() - begin_ < want) {  // move the partial frame to the front
      std::memmove(in_.data(), in_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (in_.size() - begin_ < want) in_.resize(begin_ + want);
    reading_ = true;
    socket_.async_read_some(asio::buffer(in_.data() + end_, in_.size() - end_),
                            asio::bind_executor(strand_, [self = this->shared_from_this()](
                                                             beast::error_code ec, size_t n) {
                              self->reading_ = false;
                              if (ec) return self->Close();
                              self->end_ += n;
                              self->last_activity_ = Clock::now();
                              self->Process();
                            }));
  }

  // Answers every complete frame in the buffer, then reads more unless the connection already
  // has its maximum of requests in flight.
  void Process() {
    processing_ = true;
    while (!closing_after_write_ && in_flight_ < ctx_.options.max_in_flight_per_connection) {
      if (discard_ > 0) {  // the rest of a frame over the limit, dropped as it arrives
        const size_t drop = std::min(discard_, end_ - begin_);
        begin_ += drop;
        discard_ -= drop;
        if (discard_ > 0) break;
      }
      const size_t avail = end_ - begin_;
      if (avail < kFrameHeaderBytes) break;
      const uint32_t len = DecodeFrameLength(in_.data() + begin_);
      if (len == 0) {
        // Not a frame any client sends: the stream is not trusted further. Answer, then close.
        closing_after_write_ = true;
        const Status s = InvalidArgumentError("empty frame");
        ctx_.metrics.Record(kCallKinds, Protocol::kBinary, s.code(), std::chrono::nanoseconds(0));
        Enqueue(EncodeResponseFrame(0, Reply{s, {}}));
        break;
      }
      if (len > ctx_.options.limits.max_body_bytes) {
        // Answered at once (id 0: the request's id is inside the frame, which is not read). Its
        // bytes are then dropped as they arrive, so the sender's write completes, it reads this
        // answer rather than a broken pipe, and the connection stays usable.
        const Status s = ResourceExhaustedError(
            "request frame of " + std::to_string(len) + " bytes exceeds the limit of " +
            std::to_string(ctx_.options.limits.max_body_bytes) +
            " bytes (quiverd --max-body-bytes); split it into smaller requests");
        ctx_.metrics.Record(kCallKinds, Protocol::kBinary, s.code(), std::chrono::nanoseconds(0));
        Enqueue(EncodeResponseFrame(0, Reply{s, {}}));
        begin_ += kFrameHeaderBytes;
        discard_ = len;
        continue;
      }
      if (avail < kFrameHeaderBytes + len) break;
      const std::string_view frame(in_.data() + begin_ + kFrameHeaderBytes, len);
      begin_ += kFrameHeaderBytes + len;
      const auto received = Clock::now();
      const bool lone = in_flight_ == 0 && begin_ == end_;
      ctx_.in_flight.fetch_add(1);
      ++in_flight_;
      if (lone) {
        // Nothing else pending on this connection (the usual request-response pattern): a read
        // is answered on this thread, saving two hand-offs between threads.
        Answer(frame, received);
        continue;
      }
      asio::post(ctx_.ioc, [self = this->shared_from_this(), copy = std::string(frame), received] {
        self->Answer(copy, received);
      });
    }
    processing_ = false;
    if (begin_ == end_) begin_ = end_ = 0;
    if (!reading_ && in_flight_ < ctx_.options.max_in_flight_per_connection) Read();
  }

  // Decodes a frame and dispatches its call (Context::Dispatch); the response is queued on the
  // strand by Finish.
  void Answer(std::string_view frame, Clock::time_point received) {
    auto req = DecodeRequest(frame);
    if (!req.ok()) {
      ctx_.Record(kCallKinds, Protocol::kBinary, req.status().code(), received);
      return Finish(EncodeResponseFrame(0, Reply{req.status(), {}}));
    }
    const size_t kind = req->call.index();
    ctx_.Dispatch(std::move(req->call), req->api_key, received, strand_,
                  [self = this->shared_from_this(), id = req->id, kind, received,
                   in = frame.size()](const Reply& reply) {
                    self->ctx_.Record(kind, Protocol::kBinary, reply.status.code(), received);
                    std::string response = EncodeResponseFrame(id, reply);
                    if (self->ctx_.options.access_log) {
                      log::Info("access", {{"proto", "binary"},
                                           {"op", CallNameAt(kind)},
                                           {"code", StatusCodeName(reply.status.code())},
                                           {"ms", MillisSince(received)},
                                           {"in", in},
                                           {"out", response.size()}});
                    }
                    self->Finish(std::move(response));
                  });
  }

  // Queues a response and ends its request; on the strand (posted there when called off it).
  void Finish(std::string response) {
    if (!strand_.running_in_this_thread()) {
      asio::post(strand_,
                 [self = this->shared_from_this(), response = std::move(response)]() mutable {
                   self->Finish(std::move(response));
                 });
      return;
    }
    --in_flight_;
    ctx_.in_flight.fetch_sub(1);
    Enqueue(std::move(response));
    if (!processing_ && !reading_) Process();
  }

  void Enqueue(std::string bytes) {
    outbox_.push_back(std::move(bytes));
    if (!writing_) Write();
  }

  // Writes everything queued in one gathered write.
  void Write() {
    writing_ = true;
    std::vector<asio::const_buffer> buffers;
    buffers.reserve(outbox_.size());
    for (const std::string& b : outbox_) buffers.push_back(asio::buffer(b));
    const size_t count = outbox_.size();
    asio::async_write(
        socket_, buffers,
        asio::bind_executor(
            strand_, [self = this->shared_from_this(), count](beast::error_code ec, size_t) {
              self->writing_ = false;
              self->outbox_.erase(self->outbox_.begin(), self->outbox_.begin() + ptrdiff_t(count));
              if (ec) return self->Close();
              if (!self->outbox_.empty()) return self->Write();
              if (self->closing_after_write_ || self->ctx_.stopping.load()) self->Close();
            }));
  }

  void Close() {
    closing_ = true;
    beast::error_code ec;
    idle_.cancel();
    socket_.shutdown(Socket::shutdown_both, ec);
    socket_.close(ec);
  }

  Socket socket_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer idle_;
  Context& ctx_;
  std::vector<char> in_;  // received bytes; [begin_, end_) not yet consumed
  size_t begin_ = 0, end_ = 0;
  size_t discard_ = 0;  // bytes still to drop of a frame over the size limit
  Clock::time_point last_activity_;
  std::deque<std::string> outbox_;  // responses not yet written (stable while a write runs)
  size_t in_flight_ = 0;
  bool reading_ = false, writing_ = false, closing_ = false, closing_after_write_ = false;
  bool processing_ = false;  // Process() is on the stack
};

template <typename Session, typename Acceptor>
void Accept(Context& ctx, Acceptor& acceptor) {
  acceptor.async_accept(
      asio::make_strand(ctx.ioc),
      [&ctx, &acceptor](beast::error_code ec, typename Acceptor::protocol_type::socket socket) {
        if (ec) return;  // closed by Stop()
        if constexpr (std::is_same_v<typename Acceptor::protocol_type, tcp>)
          socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<Session>(std::move(socket), ctx)->Start();
        Accept<Session>(ctx, acceptor);
      });
}

// Listens on a Unix-domain socket at `path`. A socket file left by an earlier run is replaced;
// any other file there is an error.
Status ListenUnix(local::stream_protocol::acceptor& acceptor, const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return InvalidArgumentError("cannot listen on " + path + ": it exists and is not a socket");
    ::unlink(path.c_str());
  }
  beast::error_code ec;
  local::stream_protocol::endpoint endpoint(path);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return UnavailableError("cannot listen on " + path + ": " + ec.message());
  return Status::Ok();
}

Status Listen(tcp::acceptor& acceptor, const std::string& host, uint16_t port, uint16_t* bound) {
  beast::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (ec) return InvalidArgumentError("bad listen address '" + host + "'");
  tcp::endpoint endpoint(address, port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return UnavailableError("cannot listen on " + host + ":" + std::to_string(port) + ": " +
                            ec.message());
  *bound = acceptor.local_endpoint().port();
  return Status::Ok();
}

}  // namespace

Server::Server(engine::DataRoot& root, ServerOptions options)
    : ctx_(std::make_unique<Context>(root, std::move(options))) {}

Server::~Server() { Stop(std::chrono::milliseconds(0)); }

Status Server::Start() {
  QV_RETURN_IF_ERROR(
      Listen(ctx_->http_acceptor, ctx_->options.host, ctx_->options.http_port, &http_port_));
  QV_RETURN_IF_ERROR(
      Listen(ctx_->binary_acceptor, ctx_->options.host, ctx_->options.binary_port, &binary_port_));
  if (!ctx_->options.binary_unix_path.empty()) {
    QV_RETURN_IF_ERROR(ListenUnix(ctx_->unix_acceptor, ctx_->options.binary_unix_path));
    Accept<BinarySession<local::stream_protocol::socket>>(*ctx_, ctx_->unix_acceptor);
  }
  Accept<HttpSession>(*ctx_, ctx_->http_acceptor);
  Accept<BinarySession<tcp::socket>>(*ctx_, ctx_->binary_acceptor);
  const int n = ctx_->options.threads > 0 ? ctx_->options.threads
                                          : int(std::max(2u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) {
    threads_.emplace_back([this] {
      ::pthread_setname_np(::pthread_self(), "quiver-io");
      RequestShortSlices();  // searches run here: take the CPU as soon as one arrives
      ctx_->ioc.run();
    });
  }
  return Status::Ok();
}

uint64_t Server::idle_closed() const { return ctx_->idle_closed.load(); }

Reply Server::Handle(const Call& call) { return ctx_->service.Handle(call); }

void Server::Stop(std::chrono::milliseconds grace) {
  if (threads_.empty()) return;
  ctx_->stopping = true;
  asio::post(ctx_->ioc, [this] {
    beast::error_code ec;
    ctx_->http_acceptor.close(ec);
    ctx_->binary_acceptor.close(ec);
    ctx_->unix_acceptor.close(ec);
  });
  const auto deadline = Clock::now() + grace;
  while (ctx_->in_flight.load() > 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ctx_->ioc.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  // Queued calls are dropped (their connections are closed); running ones finish first.
  ctx_->writes.Stop();
  ctx_->maintenance.Stop();
  if (!ctx_->options.binary_unix_path.empty()) ::unlink(ctx_->options.binary_unix_path.c_str());
}

}  // namespace quiver::net
