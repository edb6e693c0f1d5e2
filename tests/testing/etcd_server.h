// An etcd server (Debian's etcd-server) for tests: one member on free loopback ports, its data
// in a directory of the caller's, killed (SIGKILL) when the object goes out of scope. Start()
// again after Kill() restarts it on the same ports with the same data.
//
//   testing::EtcdServer etcd(dir.path() + "/etcd");
//   ASSERT_TRUE(etcd.Start().ok());
//   cluster::MetaStoreOptions o{.endpoints = {etcd.url()}};
#pragma once

#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/child_process.h"
#include "base/result.h"
#include "base/status.h"
#include "tests/testing/nats_server.h"  // FreeLoopbackPort

namespace quiver::testing {

class EtcdServer {
 public:
  explicit EtcdServer(std::string dir) : dir_(std::move(dir)) {}

  Status Start() {
    if (!std::filesystem::exists(kProgram)) {
      return FailedPreconditionError(
          std::string(kProgram) + " is missing: install Debian's etcd-server (./quiver.sh deps)");
    }
    std::filesystem::create_directories(dir_);
    if (client_port_ == 0) {
      client_port_ = FreeLoopbackPort();
      peer_port_ = FreeLoopbackPort();
    }
    const std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    const std::vector<std::string> args = {kProgram,       "--name",
                                           "test",         "--data-dir",
                                           dir_ + "/data", "--listen-client-urls",
                                           client,         "--advertise-client-urls",
                                           client,         "--listen-peer-urls",
                                           peer,           "--initial-advertise-peer-urls",
                                           peer,           "--initial-cluster",
                                           "test=" + peer};
    auto p = ChildProcess::Start(args, dir_ + "/etcd-" + std::to_string(++starts_) + ".log");
    if (!p.ok()) return p.status();
    auto ready = (*p)->WaitForLine("ready to serve client requests", std::chrono::seconds(60));
    if (!ready.ok()) return ready.status();
    process_ = std::move(*p);
    return Status::Ok();
  }

  void Kill() {
    if (process_) process_->Signal(SIGKILL);
    process_.reset();
  }
  bool running() const { return process_ != nullptr; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }

 private:
  static constexpr const char* kProgram = "/usr/bin/etcd";  // Debian's etcd-server

  std::string dir_;
  int client_port_ = 0, peer_port_ = 0;
  int starts_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace quiver::testing
