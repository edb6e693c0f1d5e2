// Crash recovery: a child process writes batches (tests/engine/crash_child.cc) and is killed
// with SIGKILL at random moments, including while it recovers, while it writes a snapshot and
// between a batch's write and its acknowledgement. After each kill the test opens the data
// directory itself and checks that
//   - every acknowledged batch is present, bit-exact, and no acknowledged delete is visible;
//   - the one batch in flight is all or nothing;
//   - the index holds exactly the stored ids, each with its stored vector bit for bit
//     (CheckConsistency), and search recall against brute force stays above a floor.
// QUIVER_CRASH_CYCLES sets the number of kill cycles (default 50; the long run uses 1000).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
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

// When to kill the child: `delay` after a trigger. The trigger is the child's start when
// `during_startup`, else its READY line followed by `acks` acknowledgements. Delays are drawn
// from spans the test measured on earlier children (Spans below), never from fixed times, so
// the kills land inside the work whatever the machine's speed at the moment.
struct KillPlan {
  bool during_startup = false;
  int acks = 0;
  Clock::duration delay{};
};

struct ChildRun {
  bool ready = false;
  bool stalled = false;  // printed nothing for kStall while the test waited for its trigger
  std::vector<uint64_t> acked;
  std::string output;
  std::string last_line;               // the last complete line before the kill
  Clock::duration startup{};           // start to READY
  std::vector<Clock::duration> spans;  // READY to the first ACK, then ACK to ACK
};

// A child that prints nothing for this long is hung, not slow (a step takes well under a second
// on an idle machine; this is a hang detector, not a speed assumption).
constexpr auto kStall = std::chrono::minutes(10);

// Measured durations; Typical() is their median (0 until one was measured).
class Spans {
 public:
  void Add(Clock::duration d) { all_.push_back(d); }
  void Add(const std::vector<Clock::duration>& ds) {
    all_.insert(all_.end(), ds.begin(), ds.end());
  }
  bool empty() const { return all_.empty(); }
  Clock::duration Typical() const {
    if (all_.empty()) return {};
    std::vector<Clock::duration> v = all_;
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  }
  // Uniform in [0, fraction * Typical()].
  Clock::duration Draw(std::mt19937& rng, double fraction) const {
    std::uniform_real_distribution<double> u(0, fraction);
    return std::chrono::duration_cast<Clock::duration>(Typical() * u(rng));
  }

 private:
  std::vector<Clock::duration> all_;
};

// Starts the child, kills it as `plan` says, and collects what it printed and when.
ChildRun RunAndKill(const char* mode, const std::string& dir, uint64_t seed, uint64_t start,
                    const KillPlan& plan) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  const std::string start_s = std::to_string(start), seed_s = std::to_string(seed);
  const Clock::time_point started = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execl(QUIVER_CRASH_CHILD, QUIVER_CRASH_CHILD, mode, dir.c_str(), seed_s.c_str(),
            start_s.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  ChildRun run;
  // The kill time, once the trigger has been seen; until then the stall guard.
  std::optional<Clock::time_point> kill_at;
  if (plan.during_startup) kill_at = started + plan.delay;
  Clock::time_point last_event = started, last_output = started;
  int acks_seen = 0;
  size_t parsed = 0;
  auto on_line = [&](std::string_view line, Clock::time_point now) {
    run.last_line = std::string(line);
    if (line == "READY") {
      run.ready = true;
      run.startup = now - started;
      last_event = now;
    } else if (line.rfind("ACK ", 0) == 0) {
      run.acked.push_back(std::strtoull(std::string(line.substr(4)).c_str(), nullptr, 10));
      run.spans.push_back(now - last_event);
      last_event = now;
      ++acks_seen;
    } else {
      return;
    }
    if (!kill_at && run.ready && acks_seen >= plan.acks) kill_at = now + plan.delay;
  };
  char buf[4096];
  while (true) {
    const Clock::time_point now = Clock::now();
    const Clock::time_point until = kill_at ? *kill_at : last_output + kStall;
    if (now >= until) {
      run.stalled = !kill_at;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
    if (::poll(&p, 1, int(std::min<int64_t>(left, 1 << 30))) <= 0) continue;  // re-check the clock
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;  // the child exited by itself: reported below
    last_output = Clock::now();
    run.output.append(buf, size_t(n));
    for (size_t eol; (eol = run.output.find('\n', parsed)) != std::string::npos; parsed = eol + 1) {
      on_line(std::string_view(run.output).substr(parsed, eol - parsed), last_output);
    }
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  // What the child wrote before it died counts too (an ACK it printed was acknowledged).
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) run.output.append(buf, size_t(n));
  ::close(fds[0]);
  for (size_t eol; (eol = run.output.find('\n', parsed)) != std::string::npos; parsed = eol + 1) {
    const std::string_view line = std::string_view(run.output).substr(parsed, eol - parsed);
    run.last_line = std::string(line);
    if (line.rfind("ACK ", 0) == 0)
      run.acked.push_back(std::strtoull(std::string(line.substr(4)).c_str(), nullptr, 10));
  }
  EXPECT_FALSE(run.stalled) << "the child printed nothing for " << kStall.count()
                            << " minutes; it printed:\n"
                            << run.output;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child exited by itself (status " << status << "); it printed:\n"
      << run.output;
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
    if (it == model.end() ? stored[id].has_value()
                          : !stored[id] || !SameBits(*stored[id], it->second)) {
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
      for (uint32_t k = 0; k < crash::kDim; ++k)
        d += (query[k] - item.vector[k]) * (query[k] - item.vector[k]);
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
  Spans startup, batch;  // measured: start to READY; one batch (and the snapshot every fifth)
  size_t planned_acks = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    KillPlan plan;
    // One kill in ten during start-up and recovery, at a point inside the start-up measured so
    // far; the others after 0-3 acknowledged batches, inside or just past the next batch.
    plan.during_startup = !startup.empty() && rng() % 10 == 0;
    if (plan.during_startup) {
      plan.delay = startup.Draw(rng, 1.0);
    } else {
      plan.acks = batch.empty() ? 1 : int(rng() % 4);
      plan.delay = batch.Draw(rng, 1.5);
      planned_acks += size_t(plan.acks);
    }
    early_kills += plan.during_startup;
    ChildRun run = RunAndKill("items", dir, seed, next, plan);
    ASSERT_FALSE(run.stalled) << "cycle " << cycle;
    ASSERT_TRUE(run.ready || plan.during_startup)
        << "cycle " << cycle << ": child never got ready:\n"
        << run.output;
    if (run.ready) startup.Add(run.startup);
    batch.Add(run.spans);
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
          << "cycle " << cycle
          << ": stored items are neither the acknowledged state nor it plus the "
          << "whole batch " << next << " in flight";
      model = std::move(with);
      ++next;
      ++in_flight_applied;
    } else if (run.ready) {
      ++in_flight_dropped;
    }
    Status consistent = e.CheckConsistency(crash::kCollection);
    ASSERT_TRUE(consistent.ok()) << "cycle " << cycle << ": " << consistent;
    // A floor for a graph that recovery broke, not a recall target: HNSW at M 8 under this
    // workload's churn (ids rewritten and deleted over and over) leaves some live nodes with no
    // inbound link, also with no crash at all (reproduced on the index alone), and recall@10
    // over these cycles was measured down to 0.825.
    const double recall = Recall(e, model, rng);
    ASSERT_GE(recall, 0.6) << "cycle " << cycle;
  }
  std::printf(
      "crash test: %d cycles (%d killed during start-up), %zu acknowledged batches, "
      "in-flight batch found applied %d times, absent %d times, %zu items at the end; "
      "measured start-up %.0f ms, batch %.1f ms (medians)\n",
      cycles, early_kills, acked_total, in_flight_applied, in_flight_dropped, model.size(),
      std::chrono::duration<double, std::milli>(startup.Typical()).count(),
      std::chrono::duration<double, std::milli>(batch.Typical()).count());
  // Every planned trigger was reached: the acknowledgements the schedule waited for all came.
  EXPECT_GE(acked_total, planned_acks);
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
  int switched_unacked = 0, killed_building = 0, killed_switching = 0;
  Spans version;  // measured: one bulk build and switch
  for (int cycle = 0; cycle < cycles; ++cycle) {
    // The first child runs until it completes a version, which measures one build and switch;
    // later ones are killed at a random point inside that span (or just past it), a third of
    // them after completing one more version first.
    KillPlan plan;
    plan.acks = version.empty() || rng() % 3 == 0 ? 1 : 0;
    plan.delay = version.Draw(rng, 1.3);
    ChildRun run = RunAndKill("bulk", root, seed, next, plan);
    ASSERT_FALSE(run.stalled) << "cycle " << cycle;
    ASSERT_TRUE(run.ready) << run.output;
    version.Add(run.spans);
    killed_building += run.last_line.rfind("BUILD ", 0) == 0;
    killed_switching += run.last_line.rfind("SWITCH ", 0) == 0;
    next += run.acked.size();
    auto dr = DataRoot::Open(root, {});
    ASSERT_TRUE(dr.ok()) << "cycle " << cycle << ": " << dr.status();
    const std::string current = (*dr)->current_version();
    const std::string acked = next == 0 ? "initial" : crash::VersionName(next - 1);
    const std::string in_flight = crash::VersionName(next);
    ASSERT_TRUE(current == acked || current == in_flight)
        << "cycle " << cycle << ": serving '" << current << "'; expected " << acked << " or "
        << in_flight;
    if (current == in_flight) {
      ++next;
      ++switched_unacked;
    }
    if (current == "initial") continue;
    auto e = (*dr)->engine();
    const uint64_t k = next - 1;
    auto items = crash::BulkItems(seed, k);
    std::vector<uint64_t> ids;
    ids.reserve(items.size());
    for (const auto& item : items) ids.push_back(item.id);
    auto stored = e->Get(crash::kCollection, ids);
    ASSERT_TRUE(stored.ok()) << stored.status();
    for (size_t i = 0; i < items.size(); ++i) {
      ASSERT_TRUE((*stored)[i].has_value() && SameBits(*(*stored)[i], items[i]))
          << "cycle " << cycle << " item " << i;
    }
    EXPECT_EQ(e->DescribeCollection(crash::kCollection)->items, items.size());
    ASSERT_TRUE(e->CheckConsistency(crash::kCollection).ok());
  }
  std::printf(
      "bulk crash test: %d cycles, %llu versions built and switched to (%d of them found "
      "serving without an acknowledgement); killed during a build %d times, during a switch "
      "%d times; measured build and switch %.0f ms (median)\n",
      cycles, (unsigned long long)next, switched_unacked, killed_building, killed_switching,
      std::chrono::duration<double, std::milli>(version.Typical()).count());
  EXPECT_GT(next, 0u) << "no version was completed";
  EXPECT_GT(killed_building + killed_switching, 0) << "no kill interrupted a build or a switch";
}

}  // namespace
}  // namespace quiver::engine
