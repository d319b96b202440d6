// Crash safety: runs ringfence_crash_driver on a SQLite store, kills it with
// SIGKILL at random (seeded) instants, restarts it, and checks after every
// kill that
//   * the audit hash chain verifies,
//   * no decision is lost or duplicated (per-rollout seqs are 1..n),
//   * every transition has exactly one audit entry (count == version),
//   * the store holds at least everything the driver saw committed,
// and at the end that the outcome equals an uninterrupted run: the good
// release completed, the boot-looping one halted in its first stage.
//
// RINGFENCE_CRASH_KILLS sets the number of kills (default 10); the long run
// in the closing notes used 150.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "ringfence/audit.h"
#include "ringfence/sqlite_store.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

namespace fs = std::filesystem;

struct Child {
  pid_t pid = -1;
  int out = -1;
};

Child Spawn(const std::string& driver, const std::string& dir, int seed) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    const std::string d = absl::StrCat("--data_dir=", dir);
    const std::string s = absl::StrCat("--seed=", seed);
    execl(driver.c_str(), driver.c_str(), d.c_str(), s.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  return {pid, fds[0]};
}

// Reads everything the child wrote so far (after it died).
std::string Drain(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, n);
  close(fd);
  return out;
}

// Tracks the latest version of each rollout the driver reported committed.
void ParseCommitted(const std::string& out,
                    absl::flat_hash_map<std::string, uint64_t>* seen,
                    bool* done) {
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (line == "DONE") *done = true;
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    uint64_t v;
    if (f.size() >= 3 && f[0] == "COMMITTED" && absl::SimpleAtoi(f[2], &v)) {
      uint64_t& cur = (*seen)[std::string(f[1])];
      cur = std::max(cur, v);
    }
  }
}

// Checks the invariants on the store left by a (possibly killed) driver.
void CheckInvariants(const std::string& dir,
                     const absl::flat_hash_map<std::string, uint64_t>& seen,
                     int round) {
  SCOPED_TRACE(absl::StrCat("after kill ", round));
  SqliteStoreOptions o;
  o.data_dir = dir;
  auto store = OpenSqliteStore(o);
  ASSERT_OK(store);
  auto v = VerifyAuditLog(**store);
  ASSERT_OK(v);
  EXPECT_TRUE(v->ok) << v->problem;
  auto audit = (*store)->ReadAudit(0, 1000000);
  ASSERT_OK(audit);
  absl::flat_hash_map<std::string, uint64_t> audit_per_rollout;
  for (const AuditEntry& e : *audit) {
    if (!e.rollout_id().empty()) ++audit_per_rollout[e.rollout_id()];
  }
  auto rollouts = (*store)->ListRollouts();
  ASSERT_OK(rollouts);
  for (const Rollout& r : *rollouts) {
    EXPECT_EQ(audit_per_rollout[r.id()], r.version()) << r.id();
    auto it = seen.find(r.id());
    if (it != seen.end()) {
      EXPECT_GE(r.version(), it->second) << r.id();
    }
    auto decisions = (*store)->ListDecisions(r.id(), 0);
    ASSERT_OK(decisions);
    for (size_t i = 0; i < decisions->size(); ++i) {
      ASSERT_EQ((*decisions)[i].seq(), i + 1) << r.id();
    }
  }
  for (const auto& [id, version] : seen) {
    EXPECT_TRUE((*store)->GetRollout(id).ok()) << "lost rollout " << id;
  }
}

struct Outcome {
  RolloutState good = config::v1::ROLLOUT_STATE_UNSPECIFIED;
  RolloutState bad = config::v1::ROLLOUT_STATE_UNSPECIFIED;
  uint32_t bad_stage = 99;
  std::string good_reason;  // why, if the good release did not complete
};

Outcome ReadOutcome(const std::string& dir) {
  SqliteStoreOptions o;
  o.data_dir = dir;
  Outcome out;
  auto store = OpenSqliteStore(o);
  EXPECT_OK(store);
  if (!store.ok()) return out;
  if (auto g = (*store)->GetRollout("good-rollout"); g.ok()) {
    out.good = g->state();
    out.good_reason = g->reason();
  }
  if (auto b = (*store)->GetRollout("bad-rollout"); b.ok()) {
    out.bad = b->state();
    out.bad_stage = b->stage();
  }
  return out;
}

// Runs the driver to completion; returns its output.
std::string RunToCompletion(const std::string& driver, const std::string& dir,
                            int seed) {
  Child c = Spawn(driver, dir, seed);
  EXPECT_GT(c.pid, 0);
  std::string out = Drain(c.out);
  int status = 0;
  waitpid(c.pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  return out;
}

TEST(CrashTest, SurvivesSigkillAtRandomInstants) {
  const char* driver = std::getenv("RINGFENCE_CRASH_DRIVER");
  ASSERT_NE(driver, nullptr) << "RINGFENCE_CRASH_DRIVER must name the driver";
  const char* kills_env = std::getenv("RINGFENCE_CRASH_KILLS");
  const int kills = kills_env != nullptr ? std::atoi(kills_env) : 10;
  const fs::path base =
      fs::path(::testing::TempDir()) / absl::StrCat("crash_test_", getpid());
  fs::remove_all(base);
  const std::string reference = (base / "uninterrupted").string();

  // The uninterrupted run, for the expected outcome.
  const auto t0 = std::chrono::steady_clock::now();
  std::string ref_out = RunToCompletion(driver, reference, 1);
  const double run_ms = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - t0)
                            .count();
  ASSERT_NE(ref_out.find("DONE"), std::string::npos);
  const Outcome expected = ReadOutcome(reference);
  EXPECT_EQ(expected.good, config::v1::COMPLETED);
  EXPECT_EQ(expected.bad, config::v1::HALTED);
  EXPECT_EQ(expected.bad_stage, 0u);

  std::mt19937_64 rng(20240719);
  // Kill within the first 30 % of an uninterrupted run's duration: most
  // runs die mid-way, each restart still makes progress. Episodes (fresh
  // data directories) repeat until `kills` kills have landed.
  std::uniform_int_distribution<int> delay_us(
      0, std::max(1000, static_cast<int>(run_ms * 300)));
  int killed = 0, episodes = 0;
  while (killed < kills) {
    const std::string dir = (base / absl::StrCat("killed-", episodes)).string();
    ++episodes;
    absl::flat_hash_map<std::string, uint64_t> seen;
    bool done = false;
    for (int round = 0; !done && killed < kills && round < 10 * kills;
         ++round) {
      Child c = Spawn(driver, dir, 1);
      ASSERT_GT(c.pid, 0);
      std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
      kill(c.pid, SIGKILL);
      int status = 0;
      waitpid(c.pid, &status, 0);
      if (WIFSIGNALED(status)) ++killed;
      ParseCommitted(Drain(c.out), &seen, &done);
      CheckInvariants(dir, seen, killed);
      if (::testing::Test::HasFatalFailure()) return;
    }
    // Let it finish, then compare with the uninterrupted run.
    for (int i = 0; i < 50 && !done; ++i) {
      ParseCommitted(RunToCompletion(driver, dir, 1), &seen, &done);
    }
    ASSERT_TRUE(done);
    CheckInvariants(dir, seen, killed);
    const Outcome got = ReadOutcome(dir);
    EXPECT_EQ(got.good, expected.good) << got.good_reason;
    EXPECT_EQ(got.bad, expected.bad);
    EXPECT_EQ(got.bad_stage, expected.bad_stage);
  }
  RecordProperty("kills", killed);
  RecordProperty("episodes", episodes);
  std::printf(
      "crash test: %d SIGKILLs over %d episodes, all invariants held; "
      "uninterrupted run %.0f ms\n",
      killed, episodes, run_ms);
}

}  // namespace
}  // namespace ringfence
