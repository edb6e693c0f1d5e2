// net_bench: what the protocols cost. The same k = 10 HNSW search on Fashion-MNIST, from 2
// client threads, measured in-process (Engine::Search), over the binary protocol (the client
// library) and over REST (HTTP/1.1 keep-alive, JSON), against one quiverd-equivalent server in
// this process; QPS, p50 and p99 latency. Optionally wrk against REST for a fixed time.
//
//   net_bench [--seconds 10] [--threads 2] [--ef 64] [--wrk-seconds 60] [--out DIR]
//             [--modes in-process,in-process-query,binary,binary-unix,rest,binary-w4,
//                      binary-batch8]
//
// Writes net.md and net.csv to --out (default build/results).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "base/main.h"
#include "base/version.h"
#include "bench/ann/datasets.h"
#include "bench/bench_util.h"
#include "client/client.h"
#include "engine/data_root.h"
#include "net/server.h"

namespace {

namespace fs = std::filesystem;
using namespace quiver;
using Clock = std::chrono::steady_clock;

struct Args {
  double seconds = 10;
  int threads = 2;
  uint32_t ef = 64;
  int wrk_seconds = 0;
  std::string out = "build/results", dir = "/tmp/quiver_net_bench";
  std::string modes = "in-process,in-process-query,binary,binary-unix,rest,binary-w4,binary-batch8";
  bool Runs(const std::string& m) const {
    return ("," + modes + ",").find("," + m + ",") != std::string::npos;
  }
};

// The paths measured, in the table's order.
struct Mode {
  const char* name;
  const char* label;
  const char* target;  // appended to the share of in-process
};
constexpr Mode kModes[] = {
    {"in-process", "in-process (Engine::Search)", ""},
    {"in-process-query", "in-process, the service's path (Engine::Query with a QuerySpec)", ""},
    {"binary", "binary protocol (client library), one call in flight per thread",
     " (target >= 85%)"},
    {"binary-unix", "binary protocol over a Unix-domain socket", ""},
    {"binary-w4", "binary protocol, async, 4 calls in flight per thread", ""},
    {"binary-batch8",
     "binary protocol, batches of 8 pipelined on one connection per thread (Client::CallMany)", ""},
    {"rest", "REST (HTTP/1.1 keep-alive, JSON)", " (target >= 50%)"},
};

struct ModeResult {
  std::string mode;
  double qps = 0, p50_us = 0, p99_us = 0;
  size_t errors = 0;
};

// QPS and latency percentiles from the per-thread latencies (microseconds) of one mode.
ModeResult Summarise(const std::string& mode, const Args& a,
                     const std::vector<std::vector<float>>& lat, size_t errors) {
  std::vector<float> all;
  for (const auto& l : lat) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  ModeResult r{mode, double(all.size()) / a.seconds, all[all.size() / 2],
               all[all.size() * 99 / 100], errors};
  std::fprintf(stderr, "%-10s %9.0f QPS  p50 %7.1f us  p99 %7.1f us  errors %zu\n", mode.c_str(),
               r.qps, r.p50_us, r.p99_us, r.errors);
  return r;
}

// Runs `batch(thread, first query index, n)` (returning its number of failed queries) on
// args.threads threads for args.seconds; each of the n queries gets the batch's latency.
template <typename Batch>
ModeResult MeasureBatched(const std::string& mode, const Args& a, size_t nq, size_t n,
                          Batch batch) {
  std::vector<std::vector<float>> lat(size_t(a.threads));
  std::atomic<size_t> errors{0};
  const auto end = Clock::now() + std::chrono::duration<double>(a.seconds);
  std::vector<std::thread> ts;
  ts.reserve(size_t(a.threads));
  for (int t = 0; t < a.threads; ++t) {
    ts.emplace_back([&, t] {
      size_t q = size_t(t) * 997;
      while (Clock::now() < end) {
        const auto t0 = Clock::now();
        errors += batch(t, q, n);
        q += n;
        const float us =
            float(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        lat[size_t(t)].insert(lat[size_t(t)].end(), n, us);
      }
    });
  }
  for (auto& t : ts) t.join();
  return Summarise(mode, a, lat, errors.load());
}

// One query per call: `one(thread, query index)` returns whether it succeeded.
template <typename Fn>
ModeResult Measure(const std::string& mode, const Args& a, size_t nq, Fn one) {
  return MeasureBatched(mode, a, nq, 1, [&](int t, size_t q, size_t) {
    return one(t, q % nq) ? size_t{0} : size_t{1};
  });
}

// Like Measure, with `window` asynchronous calls in flight per thread.
template <typename Submit>
ModeResult MeasureWindowed(const std::string& mode, const Args& a, size_t nq, size_t window,
                           Submit submit) {
  std::vector<std::vector<float>> lat(size_t(a.threads));
  std::atomic<size_t> errors{0};
  const auto end = Clock::now() + std::chrono::duration<double>(a.seconds);
  std::vector<std::thread> ts;
  ts.reserve(size_t(a.threads));
  for (int t = 0; t < a.threads; ++t) {
    ts.emplace_back([&, t] {
      std::deque<std::pair<std::future<net::Reply>, Clock::time_point>> flight;
      size_t q = size_t(t) * 997;
      while (Clock::now() < end || !flight.empty()) {
        while (Clock::now() < end && flight.size() < window)
          flight.emplace_back(submit(t, q++ % nq), Clock::now());
        auto [f, t0] = std::move(flight.front());
        flight.pop_front();
        if (!f.get().status.ok()) ++errors;
        lat[size_t(t)].push_back(
            float(std::chrono::duration<double, std::micro>(Clock::now() - t0).count()));
      }
    });
  }
  for (auto& t : ts) t.join();
  return Summarise(mode, a, lat, errors.load());
}

std::string JsonFloats(const float* v, size_t n) {
  std::string s;
  char buf[32];
  for (size_t i = 0; i < n; ++i) {
    auto r = std::to_chars(buf, buf + sizeof(buf), v[i]);
    if (i) s.push_back(',');
    s.append(buf, r.ptr);
  }
  return s;
}

// A keep-alive HTTP/1.1 connection that posts JSON and reads Content-Length bodies.
class HttpConn {
 public:
  explicit HttpConn(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) std::exit(1);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~HttpConn() { ::close(fd_); }

  // Returns the HTTP status.
  int Post(const std::string& path, const std::string& body) {
    std::string req = "POST " + path +
                      " HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\nContent-Length: " +
                      std::to_string(body.size()) + "\r\n\r\n" + body;
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) return 0;
    size_t header_end;
    while ((header_end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return 0;
    }
    const int status = std::atoi(buf_.c_str() + 9);
    const size_t cl = buf_.find("Content-Length: ");
    const size_t len = cl < header_end ? size_t(std::atol(buf_.c_str() + cl + 16)) : 0;
    while (buf_.size() < header_end + 4 + len) {
      if (!Fill()) return 0;
    }
    buf_.erase(0, header_end + 4 + len);
    return status;
  }

 private:
  bool Fill() {
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buf_.append(chunk, size_t(n));
    return true;
  }
  int fd_;
  std::string buf_;
};

int Main(int argc, char** argv) {
  Args a;
  CLI::App app{"net_bench: what the protocols cost (see the header of net_bench.cc)"};
  app.add_option("--seconds", a.seconds, "per mode and pass");
  app.add_option("--threads", a.threads, "client threads");
  app.add_option("--ef", a.ef, "HNSW ef of every search");
  app.add_option("--wrk-seconds", a.wrk_seconds, "wrk against REST afterwards (0: none)");
  app.add_option("--out", a.out, "directory of net.md and net.csv");
  app.add_option("--modes", a.modes, "which paths to measure, comma-separated");
  CLI11_PARSE(app, argc, argv);
  auto ds = bench::LoadFashionMnist("/usr/share/datasets/fashion-mnist");
  if (!ds.ok()) {
    std::fprintf(stderr, "net_bench: %s\n", ds.status().ToString().c_str());
    return 1;
  }
  fs::remove_all(a.dir);
  auto root = engine::DataRoot::Open(a.dir, {});
  if (!root.ok()) return 1;
  CollectionSchema schema;
  schema.name = "fmnist";
  schema.dim = uint32_t(ds->dim);
  schema.index.type = IndexSpec::Type::kHnsw;
  schema.index.hnsw_sq8 = true;
  std::vector<ItemRecord> items(ds->n);
  for (size_t i = 0; i < ds->n; ++i) {
    items[i].id = i;
    items[i].vector.assign(ds->base.begin() + i * ds->dim, ds->base.begin() + (i + 1) * ds->dim);
  }
  auto engine = (*root)->engine();
  if (auto r = engine->BulkLoad(schema, items); !r.ok()) {
    std::fprintf(stderr, "net_bench: %s\n", r.status().ToString().c_str());
    return 1;
  }
  items.clear();
  net::ServerOptions so;
  so.http_port = 0;
  so.binary_port = 0;
  so.threads = 2;
  so.binary_unix_path = a.dir + "/binary.sock";
  net::Server server(**root, so);
  if (!server.Start().ok()) return 1;
  const size_t nq = ds->nq, dim = ds->dim;
  auto query = [&](size_t q) { return std::span<const float>(&ds->queries[q * dim], dim); };
  std::vector<std::string> bodies(nq);
  for (size_t q = 0; q < nq; ++q) {
    bodies[q] = "{\"vector\":[" + JsonFloats(&ds->queries[q * dim], dim) +
                "],\"k\":10,\"params\":{\"ef\":" + std::to_string(a.ef) + "}}";
  }
  std::vector<std::unique_ptr<client::Client>> clients, unix_clients;
  std::vector<std::unique_ptr<HttpConn>> conns;
  for (int t = 0; t < a.threads; ++t) {
    client::ClientOptions co;
    co.port = server.binary_port();
    co.pool_size = 4;  // connections and async workers: up to 4 requests in flight per thread
    auto c = client::Client::Connect(co);
    if (!c.ok()) return 1;
    clients.push_back(std::move(c).value());
    co.unix_path = so.binary_unix_path;
    auto u = client::Client::Connect(co);
    if (!u.ok()) return 1;
    unix_clients.push_back(std::move(u).value());
    conns.push_back(std::make_unique<HttpConn>(server.http_port()));
  }
  index::SearchParams p;
  p.k = 10;
  p.ef = a.ef;
  auto search_call = [&](size_t q) {  // the same search as a wire call
    net::SearchCall c;
    c.collection = "fmnist";
    c.query.vectors = {{query(q).begin(), query(q).end()}};
    c.query.k = 10;
    c.query.ef = a.ef;
    return c;
  };
  std::vector<QuerySpec> specs;  // what the service hands the engine for each search
  if (a.Runs("in-process-query")) {
    specs.reserve(nq);
    for (size_t q = 0; q < nq; ++q) specs.push_back(search_call(q).query);
  }
  std::vector<ModeResult> results;
  for (int rep = 0; rep < 2; ++rep) {
    if (a.Runs("in-process"))
      results.push_back(Measure("in-process", a, nq, [&](int, size_t q) {
        return engine->Search("fmnist", query(q), p).ok();
      }));
    if (a.Runs("in-process-query"))
      results.push_back(Measure("in-process-query", a, nq, [&](int, size_t q) {
        return engine->Query("fmnist", specs[q]).ok();
      }));
    if (a.Runs("binary"))
      results.push_back(Measure("binary", a, nq, [&](int t, size_t q) {
        return clients[size_t(t)]->Search("fmnist", query(q), {.k = 10, .ef = a.ef}).ok();
      }));
    if (a.Runs("binary-unix"))
      results.push_back(Measure("binary-unix", a, nq, [&](int t, size_t q) {
        return unix_clients[size_t(t)]->Search("fmnist", query(q), {.k = 10, .ef = a.ef}).ok();
      }));
    if (a.Runs("rest"))
      results.push_back(Measure("rest", a, nq, [&](int t, size_t q) {
        return conns[size_t(t)]->Post("/v1/collections/fmnist/search", bodies[q]) == 200;
      }));
    // The binary protocol as a service would drive it: asynchronous calls, 4 in flight per
    // thread. Latency is per call, from submission to answer.
    if (a.Runs("binary-w4"))
      results.push_back(MeasureWindowed("binary-w4", a, nq, 4, [&](int t, size_t q) {
        return clients[size_t(t)]->CallAsync(search_call(q));
      }));
    // Batches of 8 searches pipelined on one connection (Client::CallMany), as a service
    // retrieving for several users at once would send them.
    if (a.Runs("binary-batch8"))
      results.push_back(MeasureBatched("binary-batch8", a, nq, 8, [&](int t, size_t q, size_t n) {
        std::vector<net::Call> calls;
        for (size_t i = 0; i < n; ++i) {
          calls.push_back(search_call((q + i) % nq));
        }
        size_t bad = 0;
        for (const net::Reply& r : clients[size_t(t)]->CallMany(calls)) bad += !r.status.ok();
        return bad;
      }));
  }
  // Per mode: the better of the two passes (the VM drifts; both passes are in the CSV).
  auto best = [&](const std::string& mode) {
    ModeResult b;
    for (const ModeResult& r : results) {
      if (r.mode == mode && r.qps > b.qps) b = r;
    }
    return b;
  };

  std::string wrk_out;
  if (a.wrk_seconds > 0) {
    const std::string lua = a.dir + "/search.lua";
    std::ofstream l(lua);
    l << "local bodies = {}\n";
    for (size_t q = 0; q < 200; ++q) l << "bodies[" << q + 1 << "] = '" << bodies[q] << "'\n";
    l << "local i = 0\nrequest = function()\n  i = i % #bodies + 1\n"
         "  return wrk.format('POST', '/v1/collections/fmnist/search', {['Content-Type'] = "
         "'application/json'}, bodies[i])\n"
         "end\n"
         "done = function(summary, latency, requests)\n"
         "  io.write(string.format('errors: connect %d, read %d, write %d, status %d, timeout "
         "%d\\n', summary.errors.connect,"
         " summary.errors.read, summary.errors.write, summary.errors.status, "
         "summary.errors.timeout))\n"
         "  io.write(string.format('p50 %.0f us, p99 %.0f us\\n', latency:percentile(50), "
         "latency:percentile(99)))\n"
         "end\n";
    l.close();
    const std::string cmd = "wrk -t2 -c8 -d" + std::to_string(a.wrk_seconds) + "s -s " + lua +
                            " http://127.0.0.1:" + std::to_string(server.http_port()) + " 2>&1";
    std::fprintf(stderr, "running: %s\n", cmd.c_str());
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
      char buf[512];
      while (std::fgets(buf, sizeof(buf), f)) wrk_out += buf;
      ::pclose(f);
    }
    std::fprintf(stderr, "%s", wrk_out.c_str());
  }
  server.Stop();

  fs::create_directories(a.out);
  std::ofstream csv(a.out + "/net.csv");
  csv << "mode,qps,p50_us,p99_us,errors\n";
  for (const ModeResult& r : results)
    csv << r.mode << "," << r.qps << "," << r.p50_us << "," << r.p99_us << "," << r.errors << "\n";
  const std::string cmd = bench::CommandLine(argc, argv);
  std::ofstream md(a.out + "/net.md");
  char buf[512];
  std::snprintf(
      buf, sizeof(buf),
      "# Protocol overhead: Fashion-MNIST, HNSW (sq8, M 16), k = 10, ef %u, %d client threads\n\n"
      "Command: `%s`  \nQuiver %s; server with 2 threads in the same process; clients on the same "
      "2-core VM; %.0f s per mode, two passes, the better one shown (both in net.csv).\n\n"
      "| path | QPS | share of in-process | p50 us | p99 us | errors "
      "|\n|---|---|---|---|---|---|\n",
      a.ef, a.threads, cmd.c_str(), std::string(Version()).c_str(), a.seconds);
  md << buf;
  std::printf("%s", buf);
  const ModeResult in = best("in-process");
  for (const Mode& m : kModes) {
    if (!a.Runs(m.name)) continue;
    const ModeResult r = best(m.name);
    std::snprintf(buf, sizeof(buf), "| %s | %.0f | %.0f%%%s | %.1f | %.1f | %zu |\n", m.label,
                  r.qps, in.qps > 0 ? 100 * r.qps / in.qps : 0.0, m.target, r.p50_us, r.p99_us,
                  r.errors);
    md << buf;
    std::printf("%s", buf);
  }
  if (!wrk_out.empty()) {
    md << "\n## wrk against REST search (" << a.wrk_seconds
       << " s, 2 threads, 8 connections, 200 different queries)\n\n```\n"
       << wrk_out << "```\n";
  }
  fs::remove_all(a.dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("net_bench", [&] { return Main(argc, argv); });
}
