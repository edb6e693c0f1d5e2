#include "base/work_pool.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <future>
#include <thread>
#include <vector>

namespace quiver {
namespace {

TEST(CpuListTest, ParsesNumbersAndRanges) {
  auto cpus = ParseCpuList("3,0-1,5-6,1");
  ASSERT_TRUE(cpus.ok()) << cpus.status().ToString();
  EXPECT_EQ(*cpus, (std::vector<int>{0, 1, 3, 5, 6}));
  auto one = ParseCpuList("7");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, std::vector<int>{7});
}

TEST(CpuListTest, RejectsWhatIsNotAList) {
  for (const char* bad : {"", "a", "1,", ",1", "3-1", "1-", "-1", "0-2:1", "1 2", "99999"}) {
    auto cpus = ParseCpuList(bad);
    ASSERT_FALSE(cpus.ok()) << '"' << bad << "\" was accepted";
    EXPECT_EQ(cpus.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(cpus.status().message().find("CPU list"), std::string::npos);
  }
}

// Runs `f` on a fresh thread (affinity and priority changes stay there) and returns its result.
template <typename F>
auto OnThread(F f) {
  std::packaged_task<decltype(f())()> task(f);
  auto result = task.get_future();
  std::thread(std::move(task)).join();
  return result.get();
}

TEST(ThreadCpusTest, RestrictsTheCallingThreadAndWhatItStarts) {
  const std::vector<int> all = ThreadCpus();
  ASSERT_FALSE(all.empty());
  const std::vector<int> last = {all.back()};
  auto seen = OnThread([&] {
    EXPECT_TRUE(SetThreadCpus(last));
    const std::vector<int> own = ThreadCpus();
    std::vector<int> child;
    std::thread([&] { child = ThreadCpus(); }).join();
    return std::pair{own, child};
  });
  EXPECT_EQ(seen.first, last);
  EXPECT_EQ(seen.second, last);  // inherited
  EXPECT_EQ(ThreadCpus(), all);  // this thread untouched
}

TEST(ThreadCpusTest, RefusesAnEmptyOrUnusableSet) {
  EXPECT_FALSE(OnThread([] { return SetThreadCpus({}); }));
  EXPECT_FALSE(OnThread([] { return SetThreadCpus({-1, CPU_SETSIZE}); }));
}

TEST(WorkPoolTest, RunsTasksOnItsCpusAtItsPriority) {
  const std::vector<int> all = ThreadCpus();
  const std::vector<int> first = {all.front()};
  WorkPool pool("test-pool", 2, 16, CpuPriority::kLow, 0, first);
  std::vector<std::future<std::pair<std::vector<int>, int>>> results;
  for (int i = 0; i < 4; ++i) {
    auto task = std::make_shared<std::packaged_task<std::pair<std::vector<int>, int>()>>([] {
      const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
      return std::pair{ThreadCpus(), ::getpriority(PRIO_PROCESS, tid)};
    });
    results.push_back(task->get_future());
    ASSERT_TRUE(pool.Submit([task] { (*task)(); }));
  }
  for (auto& r : results) {
    auto [cpus, nice] = r.get();
    EXPECT_EQ(cpus, first);
    EXPECT_EQ(nice, 10);
  }
}

TEST(WorkPoolTest, RefusesTasksBeyondItsQueue) {
  WorkPool pool("test-pool", 1, 2, CpuPriority::kNormal);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  ASSERT_TRUE(pool.Submit([&] {
    started.set_value();
    released.wait();
  }));
  started.get_future().wait();  // the one thread is busy: what follows queues
  EXPECT_TRUE(pool.Submit([] {}));
  EXPECT_TRUE(pool.Submit([] {}));
  EXPECT_FALSE(pool.Submit([] {}));
  EXPECT_EQ(pool.queued(), 2u);
  release.set_value();
}

}  // namespace
}  // namespace quiver
