// nats-server processes with JetStream for tests and benchmarks: one server (NatsServer) or
// three clustered over loopback routes (NatsCluster), each on free loopback ports with its
// store in a directory of the caller's, killed (SIGKILL) when the object goes out of scope.
// Start() again after Kill() restarts a server on the same ports with the same store.
//
//   testing::NatsServer nats(dir.path() + "/nats");
//   ASSERT_TRUE(nats.Start().ok());
//   cluster::LogOptions o{.servers = {nats.url()}};
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/child_process.h"
#include "base/result.h"
#include "base/status.h"

namespace quiver::testing {

// A loopback TCP port nothing listens on now (the kernel's pick; free again once closed).
inline int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

class NatsServer {
 public:
  // Clustered: this server's name, its route port and every member's route port.
  struct Cluster {
    std::string server_name;
    int route_port = 0;
    std::vector<int> route_ports;
  };

  explicit NatsServer(std::string dir, std::optional<Cluster> cluster = std::nullopt)
      : dir_(std::move(dir)), cluster_(std::move(cluster)) {}

  Status Start() {
    if (!std::filesystem::exists(kProgram)) {
      return FailedPreconditionError(
          std::string(kProgram) + " is missing: install Debian's nats-server (./quiver.sh deps)");
    }
    std::filesystem::create_directories(dir_);
    const std::string port = port_ == 0 ? "-1" : std::to_string(port_);  // -1: any free port
    std::vector<std::string> args = {kProgram, "-js", "-a",  "127.0.0.1",
                                     "-p",     port,  "-sd", dir_ + "/store"};
    if (cluster_) {
      std::string routes;
      for (int p : cluster_->route_ports) {
        routes +=
            (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(p);
      }
      args.insert(
          args.end(),
          {"--server_name", cluster_->server_name, "--cluster_name", "quiver_test", "--cluster",
           "nats://127.0.0.1:" + std::to_string(cluster_->route_port), "--routes", routes});
    }
    auto p = ChildProcess::Start(args, dir_ + "/nats-" + std::to_string(++starts_) + ".log");
    if (!p.ok()) return p.status();
    const std::string marker = "Listening for client connections on 127.0.0.1:";
    auto line = (*p)->WaitForLine(marker, std::chrono::seconds(60));
    if (!line.ok()) return line.status();
    port_ = std::stoi(line->substr(line->find(marker) + marker.size()));
    auto ready = (*p)->WaitForLine("Server is ready", std::chrono::seconds(60));
    if (!ready.ok()) return ready.status();
    process_ = std::move(*p);
    return Status::Ok();
  }

  // Waits until the server's log shows `text` (the current run's log).
  Status WaitForLog(const std::string& text, std::chrono::milliseconds timeout) {
    if (!process_) return FailedPreconditionError("nats-server is not running");
    return process_->WaitForLine(text, timeout).status();
  }

  void Kill() {
    if (process_) process_->Signal(SIGKILL);
    process_.reset();
  }
  bool running() const { return process_ != nullptr; }

  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  static constexpr const char* kProgram = "/usr/sbin/nats-server";  // Debian's nats-server

  std::string dir_;
  std::optional<Cluster> cluster_;
  int port_ = 0;
  int starts_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

// Three nats-servers in one JetStream cluster (streams may have 3 replicas).
class NatsCluster {
 public:
  explicit NatsCluster(const std::string& dir) {
    std::vector<int> routes;
    routes.reserve(3);
    for (int i = 0; i < 3; ++i) routes.push_back(FreeLoopbackPort());
    servers_.reserve(3);
    for (int i = 0; i < 3; ++i) {
      servers_.push_back(std::make_unique<NatsServer>(
          dir + "/n" + std::to_string(i),
          NatsServer::Cluster{"n" + std::to_string(i), routes[size_t(i)], routes}));
    }
  }

  // Starts the three and waits until each knows JetStream's metadata leader ("new metadata
  // leader: nX", or "Self is new ... metadata leader" on the leader itself).
  Status Start() {
    for (auto& s : servers_) QV_RETURN_IF_ERROR(s->Start());
    for (auto& s : servers_) {
      QV_RETURN_IF_ERROR(s->WaitForLog("metadata leader", std::chrono::seconds(120)));
    }
    return Status::Ok();
  }

  NatsServer& server(size_t i) { return *servers_[i]; }
  std::vector<std::string> urls() const {
    std::vector<std::string> out;
    out.reserve(servers_.size());
    for (const auto& s : servers_) out.push_back(s->url());
    return out;
  }
  // The URLs comma-separated (quiverd --log).
  std::string url_list() const {
    std::string out;
    for (const std::string& u : urls()) out += (out.empty() ? "" : ",") + u;
    return out;
  }

 private:
  std::vector<std::unique_ptr<NatsServer>> servers_;
};

}  // namespace quiver::testing
