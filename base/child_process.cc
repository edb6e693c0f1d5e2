#include "base/child_process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace quiver {

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(const std::vector<std::string>& argv,
                                                          const std::string& log_path,
                                                          const std::vector<std::string>& env) {
  if (argv.empty()) return InvalidArgumentError("no program to start");
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) return InternalError("cannot create " + log_path + ": " + std::strerror(errno));
  // The child's environment: this one, with `env` replacing variables of the same name.
  std::vector<std::string> vars;
  for (char** e = environ; *e; ++e) {
    const std::string_view var(*e);
    const std::string_view name = var.substr(0, var.find('='));
    bool replaced = false;
    for (const std::string& v : env) replaced |= v.substr(0, v.find('=')) == name;
    if (!replaced) vars.emplace_back(var);
  }
  vars.insert(vars.end(), env.begin(), env.end());
  std::vector<char*> envp, args;
  envp.reserve(vars.size() + 1);
  for (std::string& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  args.reserve(argv_copy.size() + 1);
  for (std::string& a : argv_copy) args.push_back(a.data());
  args.push_back(nullptr);
  // The exec's failure comes back through a pipe closed on a successful exec.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    ::close(log);
    return InternalError(std::string("pipe: ") + std::strerror(errno));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here to the exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int err = 0;
    if (::getppid() != parent) {
      err = ESRCH;  // the parent is gone already
    } else if (::dup2(log, STDOUT_FILENO) < 0 || ::dup2(log, STDERR_FILENO) < 0) {
      err = errno;
    } else {
      ::execve(args[0], args.data(), envp.data());
      err = errno;
    }
    (void)!::write(report[1], &err, sizeof(err));
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(report[1]);
  ::close(log);
  if (pid < 0) {
    ::close(report[0]);
    return UnavailableError("cannot start " + argv[0] + ": " + std::strerror(fork_errno));
  }
  int err = 0;
  ssize_t n = 0;
  do {
    n = ::read(report[0], &err, sizeof(err));
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == ssize_t(sizeof(err))) {
    ::waitpid(pid, nullptr, 0);
    return UnavailableError("cannot start " + argv[0] + ": " + std::strerror(err));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, log_path));
}

ChildProcess::~ChildProcess() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    Wait();
  }
}

std::string ChildProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Result<std::string> ChildProcess::WaitForLine(const std::string& text,
                                              std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    // Checked before the log is read: a line written just before the exit is still found.
    const bool exited = Exited();
    const std::string log = Log();
    if (const size_t at = log.find(text); at != std::string::npos) {
      const size_t begin = log.rfind('\n', at), end = log.find('\n', at);
      const size_t from = begin == std::string::npos ? 0 : begin + 1;
      return log.substr(from, end == std::string::npos ? std::string::npos : end - from);
    }
    if (exited) {
      return UnavailableError("the process exited (" + DescribeWaitStatus(status_) +
                              ") before printing '" + text + "'; its log:\n" + log);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      return Status(StatusCode::kDeadlineExceeded, "no '" + text + "' in the log after " +
                                                       std::to_string(timeout.count()) +
                                                       " ms; its log:\n" + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void ChildProcess::Signal(int signal) {
  if (!reaped_) ::kill(pid_, signal);
}

int ChildProcess::Wait() {
  while (!reaped_) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, 0);
    if (r == pid_ || (r < 0 && errno != EINTR)) {
      reaped_ = true;
      status_ = status;
    }
  }
  return status_;
}

bool ChildProcess::Exited(int* status) {
  if (!reaped_) {
    int s = 0;
    const pid_t r = ::waitpid(pid_, &s, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) {
      reaped_ = true;
      status_ = s;
    }
  }
  if (reaped_ && status) *status = status_;
  return reaped_;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

}  // namespace quiver
