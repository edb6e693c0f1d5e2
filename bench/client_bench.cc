// client_bench: the C++ client library's search throughput against a running quiverd, the
// peer of bench/python_bench.py (which runs it beside the Python client, same server, same
// queries). Two modes, one client thread each: `single` (one search per call, each waiting
// for its answer) and `batch` (searches of --batch rows pipelined on one connection with
// CallMany, answered concurrently by the server).
//
//   client_bench --port P|--unix PATH --collection C --queries Q.fvecs [--k 100] [--batch 100]
//                [--seconds 5] [--mode single|batch]
// (--unix: the server's Unix-domain socket, quiverd --binary-socket, instead of TCP.)
//
// Prints one JSON line: {"mode", "queries", "seconds", "qps", "cpu_seconds"}.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "base/main.h"
#include "bench/ann/datasets.h"
#include "bench/bench_util.h"
#include "client/client.h"

namespace {

using namespace quiver;
using Clock = std::chrono::steady_clock;

int Main(int argc, char** argv) {
  uint16_t port = 7701;
  std::string collection, queries_path, mode = "single", unix_path;
  uint32_t k = 100;
  size_t batch = 100;
  double seconds = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--port") {
      port = uint16_t(std::stoi(value));
    } else if (flag == "--unix") {
      unix_path = value;
    } else if (flag == "--collection") {
      collection = value;
    } else if (flag == "--queries") {
      queries_path = value;
    } else if (flag == "--k") {
      k = uint32_t(std::stoul(value));
    } else if (flag == "--batch") {
      batch = std::stoul(value);
    } else if (flag == "--seconds") {
      seconds = std::stod(value);
    } else if (flag == "--mode") {
      mode = value;
    } else {
      std::fprintf(stderr, "client_bench: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (collection.empty() || queries_path.empty() || (mode != "single" && mode != "batch")) {
    std::fprintf(stderr, "client_bench: --collection, --queries and --mode single|batch\n");
    return 2;
  }
  size_t dim = 0;
  const std::vector<float> queries = bench::Check(bench::ReadFvecs(queries_path, &dim), "queries");
  const size_t nq = queries.size() / dim;
  client::ClientOptions o;
  o.port = port;
  o.unix_path = unix_path;
  o.deadline = std::chrono::milliseconds(60000);
  auto c = bench::Check(client::Client::Connect(o), "connect");
  auto call = [&](size_t i) {
    net::SearchCall s;
    s.collection = collection;
    s.query.vectors = {std::vector<float>(&queries[i * dim], &queries[(i + 1) * dim])};
    s.query.k = k;
    return s;
  };
  size_t done = 0, next = 0;
  const double cpu0 = bench::CpuSeconds();
  const auto start = Clock::now();
  const auto end = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    if (mode == "single") {
      auto r = c->Query(call(next++ % nq));
      bench::Check(r.status(), "search");
      ++done;
    } else {
      std::vector<net::Call> calls;
      calls.reserve(batch);
      for (size_t j = 0; j < batch; ++j) calls.push_back(call(next++ % nq));
      for (const net::Reply& r : c->CallMany(calls)) bench::Check(r.status, "search");
      done += batch;
    }
  }
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "{\"mode\":\"%s\",\"queries\":%zu,\"seconds\":%.3f,\"qps\":%.1f,\"cpu_seconds\":%.3f}\n",
      mode.c_str(), done, took, double(done) / took, bench::CpuSeconds() - cpu0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return quiver::RunMain("client_bench", [&] { return Main(argc, argv); });
}
