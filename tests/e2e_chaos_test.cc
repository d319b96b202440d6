// Chaos: three ringfenced replicas on one PostgreSQL with a short lease (1s,
// tick 100ms), an emulated fleet of 1,000 hosts that follows whichever
// replica leads (FleetOptions::targets), a good release rolled out to the
// whole fleet and then a boot-looping one that must halt in its first
// stage. Meanwhile, at random instants (seeded; the seed is printed and
// RINGFENCE_CHAOS_SEED replays it): kill -9 of the leader (the killed
// replica is restarted as a standby once another leads), SIGSTOP of the
// leader for longer than the lease (it must exit 3 when continued), a
// partition between the leader and PostgreSQL for longer than the lease
// (each replica reaches the database through a proxy the test can cut:
// the cut off leader must stop serving the fleet before another takes
// over, and exit 3 once it reconnects), and one crash-restart of PostgreSQL (on
// a server of the test's own: the shared test server cannot be restarted under
// the other tests; if no private server can be started, that fault is skipped
// and the reason logged).
//
// Afterwards, from the database and the API:
//  - the audit chain verifies (`ringctl audit verify`);
//  - each rollout's decision seqs are consecutive, and no state transition
//    is in the audit log twice;
//  - audit epochs never decrease, and every entry after a takeover carries
//    the new leader's epoch or a later one (no write by a fenced leader);
//  - the good rollout COMPLETED, the bad one HALTED in stage 0 (the final
//    state a run without faults reaches, the same transitions);
//  - every host told a release while its rollout ran (not after it
//    completed: hosts are then told it without an exposure), and every
//    host that died of the bad one, has an exposure row;
//  - every live host runs the good release at the end.
// It prints the takeover times (kill or stop -> a new leader serving):
// median and max.
//
// Default: 3 kills, 1 stop, 1 partition, 1 PostgreSQL restart.
// RINGFENCE_CHAOS_LONG=1: 24 kills, 2 stops, 2 partitions, 1 restart, and a
// fault-free run first whose final state the chaotic one must equal.
#include <libpq-fe.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "e2e_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "unix_socket_proxy.h"

namespace ringfence::e2e {
namespace {

constexpr absl::Duration kTick = absl::Milliseconds(100);
constexpr absl::Duration kLeaseTtl = absl::Seconds(1);
constexpr int kReplicas = 3;
constexpr int kHosts = 1000;
constexpr int kDogfood = 20;
constexpr int kServing = 1;
constexpr char kRollouts[] = "ringfence.v1.Rollouts";
constexpr char kFleet[] = "ringfence.v1.Fleet";

// Three stages, everything let in at once, short bakes. After a takeover
// the new leader waits a silence timeout of fresh telemetry before it
// promotes (controller.h, invariant 5): faults slow the rollout down. The
// silence timeout leaves room for a loaded machine: with 3 s, under ASan
// next to a build, dogfood hosts whose calls queued behind the fleet's
// were dark for longer and the good release halted on `silent`.
constexpr char kChaosGoodPlan[] = R"pb(
  name: "chaos-good"
  policy {
    silence_timeout { seconds: 6 }
    apply_timeout { seconds: 10 }
    max_staleness { seconds: 30 }
  }
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 2 }
    pacing {
      initial_hosts: 1000
      healthy_after { seconds: 1 }
    }
  }
  stages {
    name: "canary"
    audience { percent: 10 }
    bake_time { seconds: 2 }
    pacing {
      initial_hosts: 1000
      healthy_after { seconds: 1 }
    }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 2 }
    pacing {
      initial_hosts: 1000
      healthy_after { seconds: 1 }
    }
  }
)pb";

// Dogfood hosts die loading it; three silent hosts trip the breaker. The
// silence timeout is the good plan's, for the same reason: with 2 s, under
// ASan, a round of the fleet's 1,000 polls took longer than that, every
// control host went silent too, the dogfood hosts' silence was explained by
// the control's (as a network outage would be) and the rollout held
// instead of halting within the test's bound.
constexpr char kChaosBadPlan[] = R"pb(
  name: "chaos-bad"
  policy {
    silence_timeout { seconds: 6 }
    apply_timeout { seconds: 30 }
    max_staleness { seconds: 30 }
    signals { signal: "silent" max_affected_hosts: 3 }
    signals { signal: "crash" max_affected_hosts: 3 }
  }
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 30 }
    pacing { initial_hosts: 1000 }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 1 }
    pacing { initial_hosts: 1000 }
  }
)pb";

enum class Fault { kKill, kStop, kPartition, kRestartPostgres };

const char* FaultName(Fault f) {
  switch (f) {
    case Fault::kKill:
      return "kill -9 of the leader";
    case Fault::kStop:
      return "SIGSTOP of the leader";
    case Fault::kPartition:
      return "partition of the leader from PostgreSQL";
    case Fault::kRestartPostgres:
      return "PostgreSQL crash-restart";
  }
  return "?";
}

struct Replica {
  std::string id;
  int port = 0;
  int starts = 0;
  std::unique_ptr<ChildProcess> process;
  std::string log;  // of the current start
};

// What a run ends with: what a run without faults must equal.
struct Outcome {
  int good_state = 0, good_stage = 0, bad_state = 0, bad_stage = 0;
  // "action from->to stage a->b" of each transition, in order.
  std::vector<std::string> good_transitions, bad_transitions;
  // Every live host runs the good release.
  bool fleet_on_good = false;
  bool operator==(const Outcome& o) const {
    return good_state == o.good_state && good_stage == o.good_stage &&
           bad_state == o.bad_state && bad_stage == o.bad_stage &&
           good_transitions == o.good_transitions &&
           bad_transitions == o.bad_transitions &&
           fleet_on_good == o.fleet_on_good;
  }
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  return os << "good " << o.good_state << "@" << o.good_stage << " ["
            << absl::StrJoin(o.good_transitions, ", ") << "] fleet on it "
            << o.fleet_on_good << "; bad " << o.bad_state << "@" << o.bad_stage
            << " [" << absl::StrJoin(o.bad_transitions, ", ") << "]";
}

class E2EChaosTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    server_.reset();  // the fixture's own (SQLite) server is not used
    long_run_ = Env("RINGFENCE_CHAOS_LONG") == "1";
    StartPostgres();
    ASSERT_FALSE(dsn_.empty()) << "no PostgreSQL";
  }

  void TearDown() override {
    emulator_.reset();
    for (Replica& r : replicas_) {
      if (r.process != nullptr && r.process->pid() > 0) {
        kill(r.process->pid(), SIGCONT);
      }
      r.process.reset();
      if (HasFailure()) {
        for (int i = 1; i <= r.starts; ++i) {
          std::cerr << "---- " << r.id << " start " << i << " ----\n"
                    << ReadFile(LogPath(r, i));
        }
      }
    }
    if (!pg_dir_.empty()) {
      RunCommand({pg_script_, "stop", pg_data_}, {}, absl::Seconds(60));
      RemoveTree(pg_dir_);
    } else if (!dsn_.empty() && !HasFailure()) {
      for (const std::string& schema : schemas_) {
        Sql("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
      }
    }
    E2ETest::TearDown();
  }

  // A PostgreSQL of this test's own (so that it can be restarted), else
  // the shared test server (and no restart).
  void StartPostgres() {
    pg_script_ = RINGFENCE_PG_TEST_SCRIPT;
    char tmpl[] = "/tmp/rfchaos-XXXXXX";
    if (mkdtemp(tmpl) != nullptr) {
      // The cluster's owner (postgres, when the test runs as root) must
      // reach its directory.
      chmod(tmpl, 0755);
      const std::string dir = absl::StrCat(tmpl, "/pg");
      CommandResult r =
          RunCommand({pg_script_, "start", dir}, {}, absl::Seconds(120));
      if (r.exit_code == 0) {
        pg_dir_ = tmpl;
        pg_data_ = dir;
        dsn_file_ = dir + "/dsn";
      } else {
        no_restart_reason_ = absl::StrCat(
            "a private PostgreSQL could not be started (", pg_script_,
            " start: exit ", r.exit_code, ": ", r.out, r.err, ")");
        RemoveTree(tmpl);
      }
    } else {
      no_restart_reason_ = "no temporary directory for a private PostgreSQL";
    }
    if (pg_dir_.empty()) {
      std::cout << "SKIPPING the PostgreSQL restart: " << no_restart_reason_
                << "; using the shared test server, which other tests use "
                   "at the same time and which must not be restarted\n";
      dsn_file_ = PostgresDsnFile();
    }
    dsn_ = std::string(absl::StripAsciiWhitespace(ReadFile(dsn_file_)));
    // Each replica reaches the database through a proxy of its own.
    std::string socket_dir;
    std::vector<std::string> words = absl::StrSplit(dsn_, ' ');
    for (const std::string& word : words) {
      if (absl::StartsWith(word, "host=")) socket_dir = word.substr(5);
    }
    ASSERT_FALSE(socket_dir.empty()) << "no host= in the DSN " << dsn_file_;
    for (int i = 0; i < kReplicas; ++i) {
      const std::string dir = absl::StrCat(dir_, "/pg-proxy-", i);
      ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
      proxies_[i] = std::make_unique<UnixSocketProxy>(
          socket_dir + "/.s.PGSQL.5432", dir + "/.s.PGSQL.5432");
      ASSERT_TRUE(proxies_[i]->started());
      std::vector<std::string> proxied = words;
      for (std::string& word : proxied) {
        if (absl::StartsWith(word, "host=")) word = "host=" + dir;
      }
      replica_dsn_files_[i] = absl::StrCat(dir_, "/dsn-", i);
      WriteFile(replica_dsn_files_[i], absl::StrJoin(proxied, " "));
    }
  }

  std::string LogPath(const Replica& r, int start) const {
    return absl::StrCat(dir_, "/", run_, "-", r.id, "-", start, ".log");
  }

  // Starts replica `i` (on its old port after the first start) and waits
  // for its port file (written once it stands by or serves).
  void StartReplica(int i) {
    Replica& r = replicas_[i];
    r.id = absl::StrCat("replica-", i);
    ++r.starts;
    r.log = LogPath(r, r.starts);
    const std::string port_file =
        absl::StrCat(dir_, "/", run_, "-", r.id, "-", r.starts, ".port");
    r.process = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            ringfenced_, absl::StrCat("--listen=127.0.0.1:", r.port),
            "--port_file=" + port_file,
            "--data_dir=" + dir_ + "/" + run_ + "-" + r.id,
            "--tick_interval=" + absl::FormatDuration(kTick),
            "--lease_ttl=" + absl::FormatDuration(kLeaseTtl),
            "--replica_id=" + r.id, "--store=postgres",
            "--postgres_dsn_file=" + replica_dsn_files_[i],
            "--postgres_schema=" + schema_,
            "--auth_tokens_file=" + dir_ + "/tokens",
            "--max_batch_events=1000"},
        r.log);
    ASSERT_TRUE(r.process->started());
    int port = 0;
    ASSERT_TRUE(Eventually(
        [&] {
          return absl::SimpleAtoi(
              absl::StripAsciiWhitespace(ReadFile(port_file)), &port);
        },
        absl::Seconds(20)))
        << r.id << " did not start:\n"
        << ReadFile(r.log);
    r.port = port;
  }

  int Health(const Replica& r, const char* service) {
    if (r.process == nullptr || !r.process->running()) return -1;
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    return HealthStatus(service, MakeChannel(absl::StrCat("127.0.0.1:", r.port),
                                             std::nullopt, args));
  }

  // The replica whose API serves (-1: none), other than `except`.
  int Leader(int except = -1) {
    for (int i = 0; i < kReplicas; ++i) {
      if (i != except && Health(replicas_[i], kRollouts) == kServing) return i;
    }
    return -1;
  }

  int WaitForLeader(int except, absl::Duration timeout) {
    int leader = -1;
    Eventually([&] { return (leader = Leader(except)) >= 0; }, timeout);
    return leader;
  }

  // Restarts every replica that exited on its own: it must have lost the
  // lease (status 3), as a fenced leader does.
  void Supervise() {
    for (int i = 0; i < kReplicas; ++i) {
      Replica& r = replicas_[i];
      if (r.process->running()) continue;
      const int code = r.process->Wait(absl::ZeroDuration());
      EXPECT_EQ(code, 3) << r.id << " exited on its own";
      if (code == 3) ++fenced_exits_;
      ASSERT_NO_FATAL_FAILURE(StartReplica(i));
    }
  }

  // The first column of each row of `sql`.
  std::vector<std::string> Sql(const std::string& sql) {
    std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(dsn_.c_str()),
                                                 PQfinish);
    if (PQstatus(c.get()) != CONNECTION_OK) return {};
    PQsetNoticeProcessor(
        c.get(), [](void*, const char*) {}, nullptr);
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(
        PQexec(c.get(), sql.c_str()), PQclear);
    std::vector<std::string> out;
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) return out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      out.emplace_back(PQgetvalue(r.get(), i, 0));
    }
    return out;
  }

  std::string T(const std::string& table) const {
    return schema_ + "." + table;
  }

  int RolloutState(const std::string& id) {
    const std::vector<std::string> v =
        Sql("SELECT state FROM " + T("rollouts") + " WHERE id = '" + id + "'");
    int state = 0;
    return v.size() == 1 && absl::SimpleAtoi(v[0], &state) ? state : 0;
  }

  // Points the fixture's stubs (and ringctl) at replica `i`.
  void ConnectTo(int i) {
    port_ = replicas_[i].port;
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    channel_ = MakeChannel(target(), std::nullopt, args);
    releases_ = v1::Releases::NewStub(channel_);
    rollouts_ = v1::Rollouts::NewStub(channel_);
    fleet_ = v1::Fleet::NewStub(channel_);
  }

  // Runs `call` on the leader until it is not UNAVAILABLE (a takeover in
  // between).
  void OnLeader(const std::function<grpc::Status()>& call) {
    grpc::Status s;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    do {
      const int leader = WaitForLeader(-1, absl::Seconds(10));
      if (leader >= 0) {
        ConnectTo(leader);
        s = call();
        // A retried create that the first attempt committed.
        if (s.error_code() == grpc::StatusCode::ALREADY_EXISTS) return;
        if (s.ok()) return;
      }
      absl::SleepFor(absl::Milliseconds(100));
    } while (absl::Now() < deadline);
    ADD_FAILURE() << "no leader took the call: " << s.error_code() << " "
                  << s.error_message();
  }

  // Injects `f`; the takeover time for a kill or a stop.
  std::optional<absl::Duration> Inject(Fault f) {
    const int leader = WaitForLeader(-1, absl::Seconds(20));
    EXPECT_GE(leader, 0) << "no leader before " << FaultName(f);
    if (leader < 0) return std::nullopt;
    Replica& r = replicas_[leader];
    std::optional<absl::Duration> takeover;
    auto wait_for_takeover = [&](absl::Time since) {
      const int next = WaitForLeader(leader, absl::Seconds(20));
      EXPECT_GE(next, 0) << "nobody took over after " << FaultName(f);
      if (next < 0) return;
      takeover = absl::Now() - since;
      NoteTakeover();
    };
    switch (f) {
      case Fault::kKill: {
        r.process->Signal(SIGKILL);
        const absl::Time killed = absl::Now();
        EXPECT_EQ(r.process->Wait(absl::Seconds(10)), 128 + SIGKILL);
        wait_for_takeover(killed);
        StartReplica(leader);  // comes back as a standby
        break;
      }
      case Fault::kStop: {
        r.process->Signal(SIGSTOP);
        const absl::Time stopped = absl::Now();
        wait_for_takeover(stopped);
        absl::SleepFor(absl::Milliseconds(300));
        kill(r.process->pid(), SIGCONT);
        // Woken up fenced: it must step down, having written nothing.
        EXPECT_EQ(r.process->Wait(absl::Seconds(15)), 3)
            << r.id << " did not exit 3 after its lease was taken over";
        EXPECT_THAT(ReadFile(r.log), HasSubstr("lost the lease: fenced"));
        ++stops_survived_;
        StartReplica(leader);
        break;
      }
      case Fault::kPartition: {
        proxies_[leader]->Cut();
        const absl::Time cut = absl::Now();
        wait_for_takeover(cut);
        // It stopped serving hosts before its lease could expire, so by
        // now for certain.
        EXPECT_NE(Health(r, kFleet), kServing)
            << r.id << " serves the fleet while another replica leads";
        EXPECT_NE(Health(r, kRollouts), kServing)
            << r.id << " says it leads while another replica leads";
        absl::SleepFor(absl::Milliseconds(300));
        proxies_[leader]->Resume();
        // Reconnected, it finds its epoch superseded.
        EXPECT_EQ(r.process->Wait(absl::Seconds(30)), 3)
            << r.id << " did not exit 3 after the partition healed";
        EXPECT_THAT(ReadFile(r.log), HasSubstr("may no longer lead"));
        ++partitions_survived_;
        StartReplica(leader);
        break;
      }
      case Fault::kRestartPostgres: {
        const absl::Time began = absl::Now();
        CommandResult c = RunCommand({pg_script_, "restart", pg_data_}, {},
                                     absl::Seconds(90));
        EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
        const absl::Duration down = absl::Now() - began;
        // Serving the fleet again (a leader that failed closed recovers
        // within a tick of the database; one that lost its lease exits 3
        // and another leads).
        int serving = -1;
        Eventually(
            [&] {
              Supervise();
              for (int i = 0; i < kReplicas; ++i) {
                if (Health(replicas_[i], kFleet) == kServing &&
                    Health(replicas_[i], kRollouts) == kServing) {
                  serving = i;
                  return true;
                }
              }
              return false;
            },
            absl::Seconds(30));
        EXPECT_GE(serving, 0) << "no leader serves the fleet after the "
                                 "PostgreSQL restart";
        std::cout << "chaos: PostgreSQL down and up again in "
                  << absl::FormatDuration(
                         absl::Trunc(down, absl::Milliseconds(1)))
                  << ", fleet served again after "
                  << absl::FormatDuration(absl::Trunc(absl::Now() - began,
                                                      absl::Milliseconds(1)))
                  << "\n";
        NoteTakeover();
        break;
      }
    }
    return takeover;
  }

  // Records the lease epoch and audit head now: every later entry must
  // carry that epoch or a later one.
  void NoteTakeover() {
    const std::vector<std::string> epoch =
        Sql("SELECT epoch FROM " + T("lease"));
    const std::vector<std::string> head =
        Sql("SELECT seq FROM " + T("audit_head"));
    if (epoch.size() == 1 && head.size() == 1) {
      marks_.emplace_back(head[0], epoch[0]);
    }
  }

  // Runs the scenario with `faults` injected at random instants; returns
  // the outcome and fills takeovers_.
  Outcome Run(std::vector<Fault> faults, const std::string& tag) {
    run_ = tag;
    schema_ = absl::StrCat("chaos_", tag, "_", getpid());
    schemas_.push_back(schema_);
    Sql("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
    for (int i = 0; i < kReplicas; ++i) {
      replicas_[i] = Replica();
      StartReplica(i);
      if (HasFatalFailure()) return {};
    }
    EXPECT_GE(WaitForLeader(-1, absl::Seconds(20)), 0);
    NoteTakeover();

    FleetOptions fo;
    for (const Replica& r : replicas_) {
      fo.targets.push_back(absl::StrCat("127.0.0.1:", r.port));
    }
    fo.token = kRelayToken;
    fo.hosts = kHosts;
    fo.dogfood_hosts = kDogfood;
    fo.poll_interval = absl::Seconds(1);
    fo.threads = 4;
    fo.call_timeout = absl::Seconds(2);
    fo.boot_loop_releases = {"chaos-bad"};
    const std::string ct = fo.content_type;
    emulator_ = std::make_unique<FleetEmulator>(fo);
    emulator_->Start();

    OnLeader([&] { return CreateRelease("chaos-good", ct, kDigestA); });
    OnLeader([&] { return CreateRelease("chaos-bad", ct, kDigestB); });
    OnLeader([&] {
      return StartRollout("good", "chaos-good", ParsePlan(kChaosGoodPlan));
    });

    std::mt19937_64 rng(seed_);
    auto gap = [&] {
      // Often shorter than a promotion takes after a takeover (a silence
      // timeout, then the bake), sometimes longer: faults land in every
      // stage, and in both rollouts.
      return absl::Milliseconds(
          std::uniform_int_distribution<int>(1000, 10000)(rng));
    };
    absl::Time next_fault = absl::Now() + gap();
    bool bad_started = false;
    const absl::Time deadline =
        absl::Now() + absl::Seconds(long_run_ ? 600 : 100);
    while (absl::Now() < deadline) {
      Supervise();
      if (HasFatalFailure()) return {};
      const int good = RolloutState("good");
      if (good == cfg::COMPLETED && !bad_started) {
        OnLeader([&] {
          return StartRollout("bad", "chaos-bad", ParsePlan(kChaosBadPlan),
                              nullptr, "chaos-good");
        });
        bad_started = true;
        std::cout << "chaos: the good rollout completed; bad started at +"
                  << absl::FormatDuration(absl::Trunc(absl::Now() - start_,
                                                      absl::Milliseconds(1)))
                  << "\n";
      }
      const bool done = bad_started && RolloutState("bad") == cfg::HALTED;
      if (done && faults.empty()) break;
      if (!faults.empty() && absl::Now() >= next_fault) {
        const Fault f = faults.back();
        faults.pop_back();
        const absl::Time at = absl::Now();
        std::optional<absl::Duration> t = Inject(f);
        std::cout << "chaos: " << FaultName(f) << " at +"
                  << absl::FormatDuration(
                         absl::Trunc(at - start_, absl::Milliseconds(1)))
                  << " (good " << good << ", bad " << RolloutState("bad")
                  << ")";
        if (t.has_value()) {
          takeovers_.push_back(*t);
          std::cout << ": a new leader served after "
                    << absl::FormatDuration(
                           absl::Trunc(*t, absl::Milliseconds(1)));
        }
        std::cout << "\n";
        next_fault = absl::Now() + gap();
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    EXPECT_TRUE(faults.empty()) << faults.size() << " faults not injected";
    // The faults are over; a loaded machine (sanitizers, a build alongside)
    // may still be finishing what the rollouts do after them: the good one's
    // last stages, then the bad one, which starts only once the good one
    // completed. (A bound on how long ending takes, not on how fast a halt
    // is: that is what the faults above measured.)
    const absl::Time faults_over = absl::Now();
    Eventually(
        [&] {
          return RolloutState("good") == cfg::COMPLETED &&
                 RolloutState("bad") == cfg::HALTED;
        },
        absl::Seconds(180));
    std::cout << "chaos: both rollouts ended "
              << absl::FormatDuration(absl::Trunc(absl::Now() - faults_over,
                                                  absl::Milliseconds(1)))
              << " after the last fault\n";
    EXPECT_EQ(RolloutState("good"), cfg::COMPLETED);
    EXPECT_EQ(RolloutState("bad"), cfg::HALTED);
    // Let every host settle on what it is told after the halt.
    absl::SleepFor(absl::Seconds(2));
    emulator_->Stop();
    return Check();
  }

  // The invariants (see the top of the file), and the outcome.
  Outcome Check() {
    Outcome out;
    const int leader = WaitForLeader(-1, absl::Seconds(20));
    EXPECT_GE(leader, 0);
    if (leader < 0) return out;
    ConnectTo(leader);

    CommandResult verify = Ctl({"audit", "verify"});
    EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
    EXPECT_THAT(verify.out, HasSubstr("audit log OK"));
    CommandResult status = Ctl({"cluster", "status"});
    EXPECT_EQ(status.exit_code, 0) << status.err;
    std::cout << "chaos: ringctl cluster status at the end:\n" << status.out;

    for (const char* id : {"good", "bad"}) {
      const std::vector<std::string> seqs =
          Sql(absl::StrCat("SELECT seq FROM ", T("decisions"),
                           " WHERE rollout_id = '", id, "' ORDER BY seq"));
      EXPECT_FALSE(seqs.empty()) << id;
      for (size_t i = 1; i < seqs.size(); ++i) {
        EXPECT_EQ(std::stoll(seqs[i]), std::stoll(seqs[i - 1]) + 1)
            << "decision seqs of " << id << " not consecutive at " << i;
      }
    }

    // Epochs: never decreasing; after each takeover at least the new one.
    const std::vector<std::string> epochs =
        Sql("SELECT epoch FROM " + T("audit") + " ORDER BY seq");
    for (size_t i = 0; i < epochs.size(); ++i) {
      EXPECT_GE(std::stoll(epochs[i]), 1) << "audit entry " << i + 1;
      if (i > 0) {
        EXPECT_GE(std::stoll(epochs[i]), std::stoll(epochs[i - 1]))
            << "audit entry " << i + 1 << " has an older epoch";
      }
    }
    for (const auto& [head, epoch] : marks_) {
      EXPECT_THAT(
          Sql(absl::StrCat("SELECT COUNT(*) FROM ", T("audit"), " WHERE seq > ",
                           head, " AND epoch < ", epoch)),
          ::testing::ElementsAre("0"))
          << "entries after seq " << head << " older than epoch " << epoch;
    }

    // Transitions, each at most once.
    std::map<std::string, std::vector<std::string>> transitions;
    uint64_t after = 0;
    while (true) {
      v1::ListAuditRequest req;
      req.set_after_seq(after);
      req.set_limit(1000);
      v1::ListAuditResponse resp;
      grpc::Status s =
          rollouts_->ListAudit(Ctx(kOperatorToken).get(), req, &resp);
      EXPECT_THAT(s, GrpcOk());
      if (!s.ok() || resp.entries().empty()) break;
      for (const cfg::AuditEntry& e : resp.entries()) {
        if (e.from_state() == e.to_state() && e.from_stage() == e.to_stage()) {
          continue;
        }
        if (e.to_state() == cfg::HALTED) {
          // Why: a run that should not halt says so at once.
          std::cout << "chaos: " << e.rollout_id() << " halted: " << e.reason()
                    << "\n";
        }
        transitions[e.rollout_id()].push_back(absl::StrCat(
            e.action(), " ", cfg::RolloutState_Name(e.from_state()), "->",
            cfg::RolloutState_Name(e.to_state()), " stage ", e.from_stage(),
            "->", e.to_stage()));
      }
      after = resp.next_after_seq();
    }
    for (const auto& [id, list] : transitions) {
      std::set<std::string> unique(list.begin(), list.end());
      EXPECT_EQ(unique.size(), list.size())
          << "a transition of " << id
          << " twice: " << absl::StrJoin(list, ", ");
    }
    out.good_transitions = transitions["good"];
    out.bad_transitions = transitions["bad"];

    const Rollout good = GetRollout("good").rollout();
    const v1::GetRolloutResponse bad_status = GetRollout("bad");
    const Rollout& bad = bad_status.rollout();
    out.good_state = good.state();
    out.good_stage = good.stage();
    out.bad_state = bad.state();
    out.bad_stage = bad.stage();
    EXPECT_EQ(good.state(), cfg::COMPLETED);
    EXPECT_EQ(bad.state(), cfg::HALTED)
        << "the bad rollout's last decision and telemetry: "
        << bad.last_decision().DebugString()
        << bad_status.telemetry().DebugString();
    EXPECT_EQ(bad.stage(), 0u) << "the bad release left its first stage";

    // Exposures: every host running a release, or dead of one, has one.
    auto exposed = [&](const std::string& rollout) {
      const std::vector<std::string> v =
          Sql("SELECT host_id FROM " + T("exposures") +
              " WHERE rollout_id = '" + rollout + "'");
      return std::set<std::string>(v.begin(), v.end());
    };
    const std::set<std::string> good_exposed = exposed("good");
    const std::set<std::string> bad_exposed = exposed("bad");
    int told_running = 0, told_completed = 0, told_as_baseline = 0;
    for (const auto& [host, reason] : emulator_->Told("chaos-good")) {
      if (reason == v1::COMPLETED) {
        ++told_completed;
        continue;
      }
      if (reason != v1::EXPOSED && reason != v1::STAGE_OPEN) {
        // Handed out as the bad rollout's baseline (NOT_YET, ROLLED_BACK,
        // ...): a proven release, which needs no exposure.
        ++told_as_baseline;
        continue;
      }
      ++told_running;
      EXPECT_EQ(good_exposed.count(host), 1u)
          << host << " was told chaos-good (reason " << reason
          << ") without an exposure";
    }
    for (const auto& [host, reason] : emulator_->Told("chaos-bad")) {
      EXPECT_EQ(bad_exposed.count(host), 1u)
          << host << " was told chaos-bad (reason " << reason
          << ") without an exposure";
    }
    const std::vector<std::string> running =
        emulator_->HostsRunning("chaos-good");
    EXPECT_THAT(emulator_->HostsRunning("chaos-bad"), ::testing::IsEmpty());
    const std::vector<std::string> dead = emulator_->DeadHosts();
    EXPECT_FALSE(dead.empty());
    for (const std::string& h : dead) {
      EXPECT_EQ(bad_exposed.count(h), 1u)
          << h << " died of chaos-bad unexposed";
    }
    // Only dogfood hosts (host-000 .. host-019) were let in.
    for (const std::string& h : bad_exposed) {
      EXPECT_LT(h, absl::StrFormat("host-%03d", kDogfood)) << h;
    }
    out.fleet_on_good =
        static_cast<int>(running.size() + dead.size()) == kHosts;
    EXPECT_TRUE(out.fleet_on_good)
        << running.size() << " hosts run chaos-good, " << dead.size()
        << " died";
    std::cout << "chaos: outcome " << out << "; chaos-good told to "
              << told_running << " hosts while it ran (" << good_exposed.size()
              << " exposures), " << told_completed << " after it completed and "
              << told_as_baseline << " as the next rollout's baseline; "
              << dead.size() << " hosts died of chaos-bad ("
              << bad_exposed.size() << " exposures); failed fleet calls "
              << emulator_->errors() << " (first: " << emulator_->first_error()
              << ")\n";
    return out;
  }

  void Report() {
    if (takeovers_.empty()) return;
    std::vector<absl::Duration> t = takeovers_;
    std::sort(t.begin(), t.end());
    const absl::Duration median =
        t.size() % 2 == 1 ? t[t.size() / 2]
                          : (t[t.size() / 2 - 1] + t[t.size() / 2]) / 2;
    std::cout
        << "chaos: takeover times (fault -> a new leader serving), " << t.size()
        << " takeovers, lease TTL " << absl::FormatDuration(kLeaseTtl)
        << ", tick " << absl::FormatDuration(kTick) << ": median "
        << absl::FormatDuration(absl::Trunc(median, absl::Milliseconds(1)))
        << ", max "
        << absl::FormatDuration(absl::Trunc(t.back(), absl::Milliseconds(1)))
        << "; fenced leaders that exited 3 on their own: " << fenced_exits_
        << "\n";
  }

  bool long_run_ = false;
  std::string pg_script_, pg_dir_, pg_data_, no_restart_reason_;
  std::string dsn_file_, dsn_, schema_;
  // Between each replica and the database (StartPostgres), and its DSN.
  std::unique_ptr<UnixSocketProxy> proxies_[kReplicas];
  std::string replica_dsn_files_[kReplicas];
  // The run ("baseline", "faults"): in the names of its files.
  std::string run_;
  uint64_t seed_ = 0;
  absl::Time start_ = absl::Now();
  Replica replicas_[kReplicas];
  std::unique_ptr<FleetEmulator> emulator_;
  // The schemas of the runs (dropped unless a private server is thrown
  // away whole).
  std::vector<std::string> schemas_;
  std::vector<absl::Duration> takeovers_;
  // (audit head seq, lease epoch) after each takeover.
  std::vector<std::pair<std::string, std::string>> marks_;
  int fenced_exits_ = 0;
  int stops_survived_ = 0;
  int partitions_survived_ = 0;
};

TEST_F(E2EChaosTest, ThreeReplicasSurviveKillsStopsAndADatabaseRestart) {
  std::cout.setf(std::ios::unitbuf);  // progress as it happens, into files too
  const std::string seed_env = Env("RINGFENCE_CHAOS_SEED");
  seed_ = seed_env.empty()
              ? static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()))
              : std::stoull(seed_env);
  std::cout << "chaos: seed " << seed_ << " (RINGFENCE_CHAOS_SEED=" << seed_
            << " replays the schedule), " << (long_run_ ? "long" : "default")
            << " run\n";

  std::optional<Outcome> baseline;
  if (long_run_) {
    baseline = Run({}, "baseline");
    if (HasFatalFailure()) return;
    for (Replica& r : replicas_) r.process.reset();
    emulator_.reset();
    takeovers_.clear();
    marks_.clear();
    std::cout << "chaos: the run without faults: " << *baseline << "\n";
  }

  std::vector<Fault> faults(long_run_ ? 24 : 3, Fault::kKill);
  faults.insert(faults.end(), long_run_ ? 2 : 1, Fault::kStop);
  faults.insert(faults.end(), long_run_ ? 2 : 1, Fault::kPartition);
  if (!pg_dir_.empty()) {
    faults.push_back(Fault::kRestartPostgres);
  } else {
    std::cout << "chaos: SKIPPED fault: PostgreSQL restart ("
              << no_restart_reason_ << ")\n";
  }
  std::mt19937_64 rng(seed_ ^ 0x5eed);
  std::shuffle(faults.begin(), faults.end(), rng);
  start_ = absl::Now();
  const Outcome outcome = Run(faults, "faults");
  Report();
  if (baseline.has_value()) {
    EXPECT_EQ(outcome, *baseline) << "the final state differs from the run "
                                     "without faults";
  } else {
    // What a run without faults ends with (the long run checks it against
    // one): every stage promoted once, then completion; a halt in stage 0.
    EXPECT_THAT(
        outcome.good_transitions,
        ::testing::ElementsAre(HasSubstr("start"), HasSubstr("stage 0->1"),
                               HasSubstr("stage 1->2"), HasSubstr("stage 2->3"),
                               HasSubstr("RUNNING->COMPLETED")));
    EXPECT_THAT(outcome.bad_transitions,
                ::testing::ElementsAre(HasSubstr("start"),
                                       HasSubstr("RUNNING->HALTED")));
  }
  EXPECT_EQ(stops_survived_, long_run_ ? 2 : 1);
  EXPECT_EQ(partitions_survived_, long_run_ ? 2 : 1);
}

}  // namespace
}  // namespace ringfence::e2e
