// WorkPool: a fixed set of threads taking tasks from one bounded queue, at a chosen CPU
// priority. The server runs each class of work on its own pool (net/server.h) so that searches
// never wait in a queue behind writes, snapshots or plugin runs; a pool of a lower CpuPriority
// gives the CPU up to the others (threads a task starts inherit the priority).
//
// Thread-safety: Submit may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/result.h"

namespace quiver {

// CPU priority of a thread (Linux scheduling attributes are per thread, and a thread inherits
// its creator's): kNormal; kLow (nice 10); kIdle (SCHED_IDLE: runs only on CPU time no other
// thread wants, and a woken normal thread takes the CPU from it at once). Lowering a priority
// needs no privilege; raising it back does.
enum class CpuPriority : uint8_t { kNormal, kLow, kIdle };
// Sets the calling thread's priority; false if the kernel refused.
bool SetThreadPriority(CpuPriority priority);
// Asks for short time slices for the calling (latency-sensitive) thread: on kernels with the
// EEVDF scheduler (Linux 6.12 and later) a woken thread with a shorter slice than the running
// one takes the CPU at once instead of waiting out the other's slice. Elsewhere it changes
// nothing. false if the kernel refused.
bool RequestShortSlices();

// The CPUs the calling thread may run on, ascending (empty if the kernel would not say).
std::vector<int> ThreadCpus();
// Restricts the calling thread, and the threads it starts afterwards, to `cpus` (ignoring those
// the process may not use); false if the kernel refused or none of them is usable.
bool SetThreadCpus(const std::vector<int>& cpus);
// Parses a list of numbers in [0, limit) as cpuset(7) and `taskset -c` write CPU lists ("1",
// "0-3,6"; no strides) into ascending numbers without repeats; an error names the list as
// `what` ("CPU list ...") and the part that is wrong.
Result<std::vector<int>> ParseNumberList(std::string_view text, int limit, std::string_view what);
// ParseNumberList for CPUs (below CPU_SETSIZE).
Result<std::vector<int>> ParseCpuList(std::string_view text);

class WorkPool {
 public:
  // `name` names the threads (ps, top, gdb; at most 15 characters are kept); `parallelism` is
  // their ParallelismBudget (base/parallelism.h; 0: none); `cpus` the CPUs they run on (empty:
  // those of the thread constructing the pool).
  WorkPool(const std::string& name, size_t threads, size_t max_queued, CpuPriority priority,
           size_t parallelism = 0, const std::vector<int>& cpus = {});
  // Stop(): tasks not yet started are dropped, running ones finish.
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  // Queues the task; false (the task is not run) if max_queued tasks are already waiting or the
  // pool is stopping.
  bool Submit(std::function<void()> task);
  // Tasks waiting (not counting the running ones).
  size_t queued() const;
  size_t threads() const { return threads_.size(); }
  size_t max_queued() const { return max_queued_; }

  // Drops the tasks not yet started and joins the threads once the running ones finish.
  void Stop();

 private:
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;
};

}  // namespace quiver
