// Pool: a process-wide thread pool for a query's sub-searches (one per query vector, cluster
// or topic). ParallelFor runs fn(0..n-1) on the pool and the calling thread, and returns when
// all are done.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace quiver::engine {

class Pool {
 public:
  // Never destroyed: its threads wait on it until the process ends (destroying a condition
  // variable with waiters at exit would block).
  static Pool& Get() {
    static Pool* pool = new Pool(std::max(1u, std::thread::hardware_concurrency()));
    return *pool;
  }

  void ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
    if (n <= 1) {
      if (n == 1) fn(0);
      return;
    }
    struct Job {
      std::atomic<size_t> next{0}, done{0};
      size_t n;
      const std::function<void(size_t)>* fn;
      std::mutex mu;
      std::condition_variable cv;
    };
    auto job = std::make_shared<Job>();
    job->n = n;
    job->fn = &fn;
    auto work = [job] {
      size_t i;
      while ((i = job->next.fetch_add(1)) < job->n) {
        (*job->fn)(i);
        if (job->done.fetch_add(1) + 1 == job->n) {
          std::lock_guard lock(job->mu);
          job->cv.notify_all();
        }
      }
    };
    {
      std::lock_guard lock(mu_);
      for (size_t t = 0; t + 1 < std::min(n, threads_.size() + 1); ++t) queue_.push_back(work);
    }
    cv_.notify_all();
    work();
    std::unique_lock lock(job->mu);
    job->cv.wait(lock, [&] { return job->done.load() == job->n; });
  }

 private:
  explicit Pool(size_t threads) {
    for (size_t t = 0; t < threads; ++t) {
      threads_.emplace_back([this] {
        while (true) {
          std::function<void()> task;
          {
            std::unique_lock lock(mu_);
            cv_.wait(lock, [this] { return !queue_.empty(); });
            task = std::move(queue_.front());
            queue_.pop_front();
          }
          task();
        }
      });
      threads_.back().detach();  // lives for the process
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
};

}  // namespace quiver::engine
