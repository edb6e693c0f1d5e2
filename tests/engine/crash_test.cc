// Crash recovery: a child process writes batches (tests/engine/crash_child.cc) and is killed
// with SIGKILL at random moments, including while it recovers, while it writes a snapshot and
// between a batch's write and its acknowledgement. After each kill the test opens the data
// directory itself and checks that
//   - every acknowledged batch is present, bit-exact, and no acknowledged delete is visible;
//   - the one batch in flight is all or nothing;
//   - the index holds exactly the stored ids, and search recall against brute force holds.
// QUIVER_CRASH_CYCLES sets the number of kill cycles (default 50; the long run uses 1000).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>

#include "engine/data_root.h"
#include "engine/engine.h"
#include "tests/engine/crash_workload.h"
#include "tests/testing/temp_dir.h"

namespace quiver::engine {
namespace {

using Model = std::map<uint64_t, ItemRecord>;
using Clock = std::chrono::steady_clock;

struct ChildRun {
  bool ready = false;
  std::vector<uint64_t> acked;
  std::string output;
};

// Starts the child, kills it `delay_ms` after it is ready (or after start, if kill_early),
// and collects what it printed.
ChildRun RunAndKill(const char* mode, const std::string& dir, uint64_t seed, uint64_t start, int delay_ms,
                    bool kill_early) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const std::string start_s = std::to_string(start), seed_s = std::to_string(seed);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execl(QUIVER_CRASH_CHILD, QUIVER_CRASH_CHILD, mode, dir.c_str(), seed_s.c_str(), start_s.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  ChildRun run;
  auto deadline = Clock::now() + std::chrono::milliseconds(kill_early ? delay_ms : 60000);
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, int(left)) <= 0) break;
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    run.output.append(buf, size_t(n));
    if (!run.ready && run.output.find("READY\n") != std::string::npos) {
      run.ready = true;
      if (!kill_early) deadline = Clock::now() + std::chrono::milliseconds(delay_ms);
    }
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) run.output.append(buf, size_t(n));
  ::close(fds[0]);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child exited by itself (status " << status << "); it printed:\n" << run.output;
  std::istringstream lines(run.output);
  std::string word;
  uint64_t i;
  while (lines >> word) {
    if (word == "ACK" && lines >> i) run.acked.push_back(i);
  }
  return run;
}

bool SameBits(const ItemRecord& a, const ItemRecord& b) {
  return a.vector.size() == b.vector.size() &&
         std::memcmp(a.vector.data(), b.vector.data(), a.vector.size() * sizeof(float)) == 0 &&
         a == b;
}

bool Matches(const Model& model, const std::vector<std::optional<ItemRecord>>& stored) {
  for (uint64_t id = 0; id < crash::kIdSpace; ++id) {
    auto it = model.find(id);
    if (it == model.end() ? stored[id].has_value() : !stored[id] || !SameBits(*stored[id], it->second)) {
      return false;
    }
  }
  return true;
}

double Recall(Engine& e, const Model& model, std::mt19937& rng) {
  if (model.size() < 10) return 1.0;
  std::normal_distribution<float> g;
  size_t hit = 0, total = 0;
  for (int q = 0; q < 20; ++q) {
    std::vector<float> query(crash::kDim);
    for (float& x : query) x = g(rng);
    std::vector<std::pair<float, uint64_t>> exact;
    for (const auto& [id, item] : model) {
      float d = 0;
      for (uint32_t k = 0; k < crash::kDim; ++k) d += (query[k] - item.vector[k]) * (query[k] - item.vector[k]);
      exact.emplace_back(d, id);
    }
    std::partial_sort(exact.begin(), exact.begin() + 10, exact.end());
    index::SearchParams p;
    p.k = 10;
    p.ef = 100;
    auto hits = e.Search(crash::kCollection, query, p);
    EXPECT_TRUE(hits.ok()) << hits.status();
    if (!hits.ok()) return 0;
    for (const Hit& h : *hits) {
      for (int j = 0; j < 10; ++j) hit += exact[j].second == h.id;
    }
    total += 10;
  }
  return double(hit) / double(total);
}

TEST(CrashTest, AcknowledgedWritesSurviveSigkill) {
  const char* env = std::getenv("QUIVER_CRASH_CYCLES");
  const int cycles = env ? std::atoi(env) : 50;
  quiver::testing::ScopedTempDir tmp;
  const std::string dir = tmp.path() + "/v1";
  const uint64_t seed = 20261122;
  std::mt19937 rng(7);
  Model model;
  uint64_t next = 0;
  int in_flight_applied = 0, in_flight_dropped = 0, early_kills = 0;
  size_t acked_total = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    const bool kill_early = rng() % 10 == 0;  // during start-up and recovery
    const int delay = kill_early ? int(rng() % 40) : int(rng() % 150);
    early_kills += kill_early;
    ChildRun run = RunAndKill("items", dir, seed, next, delay, kill_early);
    ASSERT_TRUE(run.ready || kill_early) << "cycle " << cycle << ": child never got ready:\n" << run.output;
    for (size_t j = 0; j < run.acked.size(); ++j) {
      ASSERT_EQ(run.acked[j], next + j) << "acknowledgements out of order";
    }
    for (uint64_t i : run.acked) crash::Apply(crash::MakeBatch(seed, i), &model);
    acked_total += run.acked.size();
    next += run.acked.size();

    auto opened = Engine::Open(dir, {});
    ASSERT_TRUE(opened.ok()) << "cycle " << cycle << ": " << opened.status();
    Engine& e = **opened;
    if (!e.DescribeCollection(crash::kCollection).ok()) {
      ASSERT_TRUE(model.empty()) << "cycle " << cycle << ": the collection is gone";
      continue;  // killed before the collection was created
    }
    std::vector<uint64_t> ids(crash::kIdSpace);
    for (uint64_t id = 0; id < crash::kIdSpace; ++id) ids[id] = id;
    auto stored = e.Get(crash::kCollection, ids);
    ASSERT_TRUE(stored.ok()) << stored.status();
    if (!Matches(model, *stored)) {
      // Only the batch in flight may add to the acknowledged state, and only as a whole.
      Model with = model;
      crash::Apply(crash::MakeBatch(seed, next), &with);
      ASSERT_TRUE(Matches(with, *stored))
          << "cycle " << cycle << ": stored items are neither the acknowledged state nor it plus the "
          << "whole batch " << next << " in flight";
      model = std::move(with);
      ++next;
      ++in_flight_applied;
    } else if (!run.output.empty() && run.ready) {
      ++in_flight_dropped;
    }
    Status consistent = e.CheckConsistency(crash::kCollection);
    ASSERT_TRUE(consistent.ok()) << "cycle " << cycle << ": " << consistent;
    const double recall = Recall(e, model, rng);
    ASSERT_GE(recall, 0.9) << "cycle " << cycle;
  }
  std::printf("crash test: %d cycles (%d killed during start-up), %zu acknowledged batches, "
              "in-flight batch found applied %d times, absent %d times, %zu items at the end\n",
              cycles, early_kills, acked_total, in_flight_applied, in_flight_dropped, model.size());
  EXPECT_GT(acked_total, size_t(cycles));  // the workload did make progress
}

// Kills a child that bulk-builds versions and switches to them: the root must always serve a
// complete version, the acknowledged one or the one being switched to, with exactly its items.
TEST(CrashTest, BulkBuildsAndVersionSwitchesSurviveSigkill) {
  const char* env = std::getenv("QUIVER_CRASH_CYCLES");
  const int cycles = env ? std::max(1, std::atoi(env) / 5) : 10;
  quiver::testing::ScopedTempDir tmp;
  const std::string root = tmp.path() + "/root";
  const uint64_t seed = 99;
  std::mt19937 rng(8);
  uint64_t next = 0;
  int switched_unacked = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    const int delay = 20 + int(rng() % 400);
    ChildRun run = RunAndKill("bulk", root, seed, next, delay, false);
    ASSERT_TRUE(run.ready) << run.output;
    next += run.acked.size();
    auto dr = DataRoot::Open(root, {});
    ASSERT_TRUE(dr.ok()) << "cycle " << cycle << ": " << dr.status();
    const std::string current = (*dr)->current_version();
    const std::string acked = next == 0 ? "initial" : "b" + std::to_string(next - 1);
    const std::string in_flight = "b" + std::to_string(next);
    ASSERT_TRUE(current == acked || current == in_flight)
        << "cycle " << cycle << ": serving '" << current << "'; expected " << acked << " or " << in_flight;
    if (current == in_flight) {
      ++next;
      ++switched_unacked;
    }
    if (current == "initial") continue;
    auto e = (*dr)->engine();
    const uint64_t k = next - 1;
    auto items = crash::BulkItems(seed, k);
    std::vector<uint64_t> ids;
    for (const auto& item : items) ids.push_back(item.id);
    auto stored = e->Get(crash::kCollection, ids);
    ASSERT_TRUE(stored.ok()) << stored.status();
    for (size_t i = 0; i < items.size(); ++i) {
      ASSERT_TRUE((*stored)[i].has_value() && SameBits(*(*stored)[i], items[i])) << "cycle " << cycle << " item " << i;
    }
    EXPECT_EQ(e->DescribeCollection(crash::kCollection)->items, items.size());
    ASSERT_TRUE(e->CheckConsistency(crash::kCollection).ok());
  }
  std::printf("bulk crash test: %d cycles, %llu versions built and switched to (%d of them found "
              "serving without an acknowledgement)\n",
              cycles, (unsigned long long)next, switched_unacked);
  EXPECT_GT(next, 0u);
}

}  // namespace
}  // namespace quiver::engine
