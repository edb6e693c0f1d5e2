#include "base/work_pool.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>
#include <string>

#include "base/parallelism.h"

namespace quiver {

bool SetThreadPriority(CpuPriority priority) {
  if (priority == CpuPriority::kIdle) {
    sched_param param{};
    param.sched_priority = 0;
    return ::pthread_setschedparam(::pthread_self(), SCHED_IDLE, &param) == 0;
  }
  // On Linux, PRIO_PROCESS with a thread id sets that one thread's nice value.
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  return ::setpriority(PRIO_PROCESS, tid, priority == CpuPriority::kLow ? 10 : 0) == 0;
}

namespace {
// struct sched_attr of sched_setattr(2) (glibc 2.36 has neither the struct nor a wrapper).
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime, sched_deadline, sched_period;
};
}  // namespace

bool RequestShortSlices() {
  SchedAttr attr{};
  attr.size = sizeof(attr);
  attr.sched_policy = SCHED_OTHER;
  attr.sched_runtime = 100'000;  // ns: the shortest slice the kernel grants
  return ::syscall(SYS_sched_setattr, 0, &attr, 0) == 0;
}

std::vector<int> ThreadCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

bool SetThreadCpus(const std::vector<int>& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  bool any = false;
  for (int cpu : cpus) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) continue;
    CPU_SET(cpu, &set);
    any = true;
  }
  // sched_setaffinity with tid 0 applies to the calling thread only.
  return any && ::sched_setaffinity(0, sizeof(set), &set) == 0;
}

Result<std::vector<int>> ParseNumberList(std::string_view text, int limit, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError(std::string(what) + " list \"" + std::string(text) + "\": " +
                                std::string(why) + " (expected numbers and ranges such as 0-3,6)");
  };
  auto number = [limit](std::string_view s, int* out) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && end == s.data() + s.size() && *out >= 0 && *out < limit;
  };
  std::vector<bool> seen(size_t(limit), false);
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view part = text.substr(start, comma - start);
    const size_t dash = part.find('-');
    int lo = 0;
    int hi = 0;
    if (dash == std::string_view::npos) {
      if (!number(part, &lo)) {
        return bad("\"" + std::string(part) + "\" is not a " + std::string(what) + " number");
      }
      hi = lo;
    } else if (!number(part.substr(0, dash), &lo) || !number(part.substr(dash + 1), &hi) ||
               hi < lo) {
      return bad("\"" + std::string(part) + "\" is not a range of " + std::string(what) +
                 " numbers");
    }
    for (int n = lo; n <= hi; ++n) seen[size_t(n)] = true;
    start = comma + 1;
  }
  std::vector<int> out;
  for (int n = 0; n < limit; ++n) {
    if (seen[size_t(n)]) out.push_back(n);
  }
  return out;
}

Result<std::vector<int>> ParseCpuList(std::string_view text) {
  return ParseNumberList(text, CPU_SETSIZE, "CPU");
}

WorkPool::WorkPool(const std::string& name, size_t threads, size_t max_queued, CpuPriority priority,
                   size_t parallelism, const std::vector<int>& cpus)
    : max_queued_(max_queued) {
  threads_.reserve(threads);
  for (size_t t = 0; t < threads; ++t) {
    threads_.emplace_back([this, name, priority, parallelism, cpus] {
      ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
      if (!cpus.empty()) SetThreadCpus(cpus);
      if (priority != CpuPriority::kNormal) SetThreadPriority(priority);
      SetParallelismBudget(parallelism);
      while (true) {
        std::function<void()> task;
        {
          std::unique_lock lock(mu_);
          cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
          if (stopping_) return;
          task = std::move(queue_.front());
          queue_.pop_front();
        }
        task();
      }
    });
  }
}

WorkPool::~WorkPool() { Stop(); }

bool WorkPool::Submit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || queue_.size() >= max_queued_) return false;
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

size_t WorkPool::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void WorkPool::Stop() {
  std::deque<std::function<void()>> dropped;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    dropped.swap(queue_);
  }
  cv_.notify_all();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  // Destroyed here, outside the lock: a task's captures may own objects with their own
  // destructors.
}

}  // namespace quiver
