#include "net/server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <deque>
#include <mutex>

#include "net/json_api.h"
#include "net/schema/wire_codec.h"

namespace quiver::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
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

struct Server::Context {
  Context(engine::DataRoot& root, ServerOptions o)
      : options(std::move(o)), service(root, options.limits), ioc(std::max(1, options.threads)),
        http_acceptor(ioc), binary_acceptor(ioc) {}

  // Checks the key for a call: kUnauthenticated without a valid key, kPermissionDenied for a
  // read-only key on a write.
  Status Authorize(std::string_view key, const Call* call) const {
    const bool rw_set = !options.read_write_key.empty(), ro_set = !options.read_only_key.empty();
    if (!rw_set && !ro_set) return Status::Ok();
    const bool rw = rw_set && KeyEquals(key, options.read_write_key);
    const bool ro = ro_set && KeyEquals(key, options.read_only_key);
    if (!rw && !ro) return Status(StatusCode::kUnauthenticated, key.empty() ? "an API key is required" : "invalid API key");
    if (!rw && call && IsWrite(*call)) {
      return PermissionDeniedError(std::string("the read-only key cannot call ") + CallName(*call));
    }
    return Status::Ok();
  }

  Reply Handle(const Call& call, std::string_view key, Clock::time_point received) {
    if (Status s = Authorize(key, &call); !s.ok()) return Reply{s, {}};
    if (Clock::now() - received > options.request_timeout) {
      return Reply{Status(StatusCode::kDeadlineExceeded, "the request waited longer than the server's timeout"), {}};
    }
    return service.Handle(call);
  }

  void Record(size_t kind, Protocol p, StatusCode code, Clock::time_point start) {
    metrics.Record(kind, p, code, Clock::now() - start);
  }

  ServerOptions options;
  Service service;
  Metrics metrics;
  asio::io_context ioc;
  tcp::acceptor http_acceptor, binary_acceptor;
  std::atomic<bool> stopping{false};
  std::atomic<int> in_flight{0};
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
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, size_t) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted) {
      return Close();
    }
    if (ec == http::error::body_limit) {
      return Respond(HttpReply{413, ErrorJson(ResourceExhaustedError(
                                        "body larger than the limit of " +
                                        std::to_string(ctx_.options.limits.max_body_bytes) + " bytes"))},
                     false);
    }
    if (ec) {
      return Respond(HttpReply{400, ErrorJson(InvalidArgumentError("malformed HTTP request: " + ec.message()))}, false);
    }
    const auto start = Clock::now();
    in_request_ = true;
    ctx_.in_flight.fetch_add(1);
    http::request<http::string_body> req = parser_->release();
    const bool keep_alive = req.keep_alive() && !ctx_.stopping.load();
    std::string_view key;
    if (auto it = req.find("X-Api-Key"); it != req.end()) key = Sv(it->value());
    if (auto it = req.find(http::field::authorization); it != req.end() && it->value().starts_with("Bearer ")) {
      key = Sv(it->value()).substr(7);
    }
    const std::string_view target = Sv(req.target());
    if (target == "/metrics" || target.starts_with("/metrics?")) {
      Status auth = ctx_.Authorize(key, nullptr);
      HttpReply r = auth.ok() ? HttpReply{200, ctx_.service.root().engine() ? ctx_.metrics.Render(ctx_.service.root().engine()->ListCollections()) : ""}
                              : HttpReply{HttpStatusFor(auth.code()), ErrorJson(auth)};
      content_type_ = auth.ok() ? "text/plain; version=0.0.4" : "application/json";
      return Respond(std::move(r), keep_alive);
    }
    content_type_ = "application/json";
    auto call = DecodeHttpCall(Sv(req.method_string()), target, req.body(),
                               ctx_.options.limits.max_json_depth);
    Reply reply;
    size_t kind = kCallKinds;
    if (!call.ok()) {
      reply.status = call.status();
    } else {
      kind = call->index();
      reply = ctx_.Handle(*call, key, start);
    }
    ctx_.Record(kind, Protocol::kRest, reply.status.code(), start);
    Respond(EncodeHttpReply(reply), keep_alive);
  }

  void Respond(HttpReply reply, bool keep_alive) {
    res_.emplace(http::status(reply.status), 11);
    res_->set(http::field::server, "quiver");
    res_->set(http::field::content_type, content_type_);
    res_->keep_alive(keep_alive);
    res_->body() = std::move(reply.body);
    res_->prepare_payload();
    stream_.expires_after(ctx_.options.read_timeout);
    http::async_write(stream_, *res_, beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this(), keep_alive));
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
  bool in_request_ = false;  // a request is being answered (counted in ctx_.in_flight)
};

// ---- binary ----

class BinarySession : public std::enable_shared_from_this<BinarySession> {
 public:
  BinarySession(tcp::socket socket, Context& ctx)
      : socket_(std::move(socket)), strand_(asio::make_strand(ctx.ioc)), idle_(strand_), ctx_(ctx) {}

  void Start() {
    asio::dispatch(strand_, [self = shared_from_this()] { self->ReadHeader(); });
  }

 private:
  void ArmIdle() {
    idle_.expires_after(ctx_.options.idle_timeout);
    idle_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && self->in_flight_ == 0 && self->outbox_.empty()) self->Close();
    });
  }

  void ReadHeader() {
    if (closing_) return;
    reading_ = true;
    ArmIdle();
    asio::async_read(socket_, asio::buffer(header_), asio::bind_executor(strand_, [self = shared_from_this()](
                                                                                  beast::error_code ec, size_t) {
                       self->OnHeader(ec);
                     }));
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return Close();
    const uint32_t len = DecodeFrameLength(header_);
    if (len == 0 || len > ctx_.options.limits.max_body_bytes) {
      // The stream cannot be resynchronised after a bad length: answer, then close.
      closing_after_write_ = true;
      Status s = len == 0 ? InvalidArgumentError("empty frame")
                          : ResourceExhaustedError("frame of " + std::to_string(len) + " bytes exceeds the limit of " +
                                                   std::to_string(ctx_.options.limits.max_body_bytes));
      ctx_.metrics.Record(kCallKinds, Protocol::kBinary, s.code(), std::chrono::nanoseconds(0));
      return Enqueue(EncodeResponseFrame(0, Reply{s, {}}));
    }
    body_.resize(len);
    asio::async_read(socket_, asio::buffer(body_), asio::bind_executor(strand_, [self = shared_from_this()](
                                                                                beast::error_code ec, size_t) {
                       self->OnBody(ec);
                     }));
  }

  void OnBody(beast::error_code ec) {
    reading_ = false;
    if (ec) return Close();
    const auto received = Clock::now();
    ctx_.in_flight.fetch_add(1);
    if (in_flight_ == 0) {
      // Nothing else pending on this connection (the usual request-response pattern): answer
      // on this thread, saving two hand-offs between threads.
      std::string response = HandleFrame(body_, received);
      ctx_.in_flight.fetch_sub(1);
      body_.clear();
      Enqueue(std::move(response));
      return ReadHeader();
    }
    // Pipelined requests: handle on any pool thread; the response comes back through the strand.
    ++in_flight_;
    asio::post(ctx_.ioc, [self = shared_from_this(), frame = std::move(body_), received] {
      std::string response = self->HandleFrame(frame, received);
      asio::post(self->strand_, [self, response = std::move(response)]() mutable {
        --self->in_flight_;
        self->ctx_.in_flight.fetch_sub(1);
        self->Enqueue(std::move(response));
        if (!self->reading_ && !self->closing_after_write_ && self->in_flight_ < self->ctx_.options.max_in_flight_per_connection) {
          self->ReadHeader();
        }
      });
    });
    body_.clear();
    if (in_flight_ < ctx_.options.max_in_flight_per_connection) ReadHeader();
  }

  std::string HandleFrame(const std::string& frame, Clock::time_point received) {
    auto req = DecodeRequest(frame);
    if (!req.ok()) {
      ctx_.Record(kCallKinds, Protocol::kBinary, req.status().code(), received);
      return EncodeResponseFrame(0, Reply{req.status(), {}});
    }
    Reply reply = ctx_.Handle(req->call, req->api_key, received);
    ctx_.Record(req->call.index(), Protocol::kBinary, reply.status.code(), received);
    return EncodeResponseFrame(req->id, reply);
  }

  void Enqueue(std::string bytes) {
    outbox_.push_back(std::move(bytes));
    if (outbox_.size() == 1) Write();
  }

  void Write() {
    asio::async_write(socket_, asio::buffer(outbox_.front()),
                      asio::bind_executor(strand_, [self = shared_from_this()](beast::error_code ec, size_t) {
                        self->outbox_.pop_front();
                        if (ec) return self->Close();
                        if (!self->outbox_.empty()) return self->Write();
                        if (self->closing_after_write_ || self->ctx_.stopping.load()) self->Close();
                      }));
  }

  void Close() {
    closing_ = true;
    beast::error_code ec;
    idle_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  tcp::socket socket_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer idle_;
  Context& ctx_;
  char header_[kFrameHeaderBytes];
  std::string body_;
  std::deque<std::string> outbox_;
  size_t in_flight_ = 0;
  bool reading_ = false, closing_ = false, closing_after_write_ = false;
};

template <typename Session>
void Accept(Context& ctx, tcp::acceptor& acceptor) {
  acceptor.async_accept(asio::make_strand(ctx.ioc), [&ctx, &acceptor](beast::error_code ec, tcp::socket socket) {
    if (ec) return;  // closed by Stop()
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<Session>(std::move(socket), ctx)->Start();
    Accept<Session>(ctx, acceptor);
  });
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
  if (ec) return UnavailableError("cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  *bound = acceptor.local_endpoint().port();
  return Status::Ok();
}

}  // namespace

Server::Server(engine::DataRoot& root, ServerOptions options)
    : ctx_(std::make_unique<Context>(root, std::move(options))) {}

Server::~Server() { Stop(std::chrono::milliseconds(0)); }

Status Server::Start() {
  QV_RETURN_IF_ERROR(Listen(ctx_->http_acceptor, ctx_->options.host, ctx_->options.http_port, &http_port_));
  QV_RETURN_IF_ERROR(Listen(ctx_->binary_acceptor, ctx_->options.host, ctx_->options.binary_port, &binary_port_));
  Accept<HttpSession>(*ctx_, ctx_->http_acceptor);
  Accept<BinarySession>(*ctx_, ctx_->binary_acceptor);
  const int n = ctx_->options.threads > 0 ? ctx_->options.threads : int(std::max(2u, std::thread::hardware_concurrency()));
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { ctx_->ioc.run(); });
  return Status::Ok();
}

void Server::Stop(std::chrono::milliseconds grace) {
  if (threads_.empty()) return;
  ctx_->stopping = true;
  asio::post(ctx_->ioc, [this] {
    beast::error_code ec;
    ctx_->http_acceptor.close(ec);
    ctx_->binary_acceptor.close(ec);
  });
  const auto deadline = Clock::now() + grace;
  while (ctx_->in_flight.load() > 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ctx_->ioc.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace quiver::net
