// A nats-server with JetStream for a test: started on a free loopback port with its store in a
// directory of the test's, stopped (SIGKILL) when the object goes out of scope. Start() again
// after Kill() restarts it on the same port with the same store.
//
//   testing::NatsServer nats(dir.path() + "/nats");
//   ASSERT_TRUE(nats.Start().ok());
//   cluster::LogOptions o{.servers = {nats.url()}};
#pragma once

#include <csignal>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "base/child_process.h"
#include "base/result.h"
#include "base/status.h"

namespace quiver::testing {

class NatsServer {
 public:
  explicit NatsServer(std::string dir) : dir_(std::move(dir)) {}

  Status Start() {
    std::filesystem::create_directories(dir_);
    const std::string port = port_ == 0 ? "-1" : std::to_string(port_);  // -1: any free port
    if (!std::filesystem::exists(kProgram)) {
      return FailedPreconditionError(
          std::string(kProgram) + " is missing: install Debian's nats-server (./quiver.sh deps)");
    }
    auto p = ChildProcess::Start(
        {kProgram, "-js", "-a", "127.0.0.1", "-p", port, "-sd", dir_ + "/store"},
        dir_ + "/nats-" + std::to_string(++starts_) + ".log");
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

  void Kill() {
    if (process_) process_->Signal(SIGKILL);
    process_.reset();
  }

  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  static constexpr const char* kProgram = "/usr/sbin/nats-server";  // Debian's nats-server

  std::string dir_;
  int port_ = 0;
  int starts_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace quiver::testing
