// ChildProcess: a program started (fork and exec) with its stdout and stderr sent to a log
// file, for the tools and benchmarks that drive a real quiverd (and the tests that kill one).
// The child is killed (SIGKILL) when the thread that started it ends, however it ends: a test
// that crashes or is killed leaves no server behind holding ports and directories.
//
//   auto p = ChildProcess::Start({"build/tools/quiverd", "--data", dir, "--http-port", "0"},
//                                dir + "/quiverd.log");
//   auto line = p->WaitForLine("serving", std::chrono::seconds(60));
//
// Thread-safety: one thread at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/status.h"

namespace quiver {

class ChildProcess {
 public:
  // argv[0] is the program's path; `env` entries ("NAME=value") are added to this process's
  // environment (replacing a variable of the same name).
  static Result<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                     const std::string& log_path,
                                                     const std::vector<std::string>& env = {});
  // Kills the process (SIGKILL) if it still runs, and reaps it.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }
  // The log's whole text so far.
  std::string Log() const;

  // The first log line containing `text`, once it is there; kUnavailable (with the log) if the
  // process exits first, kDeadlineExceeded after `timeout`. Polls the log every 5 ms.
  Result<std::string> WaitForLine(const std::string& text, std::chrono::milliseconds timeout);

  // Sends `signal`; no-op once the process has been reaped.
  void Signal(int signal);
  // Waits for the process to exit and returns its wait status (as waitpid reports it).
  int Wait();
  // Whether the process has exited (reaping it if so; its status then goes to *status).
  bool Exited(int* status = nullptr);

 private:
  ChildProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}

  pid_t pid_;
  std::string log_path_;
  bool reaped_ = false;
  int status_ = 0;
};

// "exit status N" or "killed by signal N" for a wait status.
std::string DescribeWaitStatus(int status);

}  // namespace quiver
