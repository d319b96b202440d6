// Two ringfenced replicas on one PostgreSQL (--store=postgres, different
// ports and --replica_id): one leads, the other stands by. Killing the
// leader (-9) hands over to the standby within the lease TTL and a tick,
// with the state the leader left; a leader stopped (SIGSTOP) past its TTL
// wakes up fenced: it writes nothing and exits with status 3.
// Needs the test server (ctest's `postgres` fixture, or
// RINGFENCE_TEST_POSTGRES_DSN_FILE naming a file with a DSN).
#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
constexpr absl::Duration kLeaseTtl = absl::Seconds(2);
// gRPC health: grpc.health.v1.HealthCheckResponse.ServingStatus.
constexpr int kServing = 1;
constexpr int kNotServing = 2;
constexpr char kRollouts[] = "ringfence.v1.Rollouts";

// One ringfenced process of the cluster.
struct Replica {
  std::string id;
  std::string log;
  std::unique_ptr<ChildProcess> process;
  int port = 0;
};

class E2EReplicaTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    server_.reset();  // the fixture's own (SQLite) server is not used
    dsn_file_ = PostgresDsnFile();
    dsn_ = std::string(absl::StripAsciiWhitespace(ReadFile(dsn_file_)));
    ASSERT_FALSE(dsn_.empty())
        << "no PostgreSQL DSN in \"" << dsn_file_
        << "\": run through ctest (fixture postgres) or set "
           "RINGFENCE_TEST_POSTGRES_DSN_FILE";
    schema_ = absl::StrCat("e2e_replicas_", getpid(), "_",
                           absl::ToUnixMicros(absl::Now()));
  }

  void TearDown() override {
    for (Replica* r : {&a_, &b_}) {
      if (HasFailure() && !r->log.empty()) {
        std::cerr << "---- " << r->id << " log ----\n" << ReadFile(r->log);
      }
      r->process.reset();
    }
    if (!dsn_.empty() && !HasFailure()) {
      Sql("DROP SCHEMA IF EXISTS " + schema_ + " CASCADE");
    }
    E2ETest::TearDown();
  }

  // Starts replica `id` and waits for its port file (written by the server
  // if it leads at once, else by the standby).
  void StartReplica(const std::string& id, Replica* r,
                    absl::Duration lease_ttl = kLeaseTtl,
                    const std::string& dsn_file = "") {
    r->id = id;
    r->log = absl::StrCat(dir_, "/", id, ".log");
    const std::string port_file = absl::StrCat(dir_, "/", id, ".port");
    r->process = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            ringfenced_, "--listen=127.0.0.1:0", "--port_file=" + port_file,
            "--data_dir=" + dir_ + "/" + id,
            "--tick_interval=" + absl::FormatDuration(kTick),
            "--lease_ttl=" + absl::FormatDuration(lease_ttl),
            "--replica_id=" + id, "--store=postgres",
            "--postgres_dsn_file=" + (dsn_file.empty() ? dsn_file_ : dsn_file),
            "--postgres_schema=" + schema_,
            "--auth_tokens_file=" + dir_ + "/tokens",
            "--mutex_deadlock_detection"},
        r->log);
    ASSERT_TRUE(r->process->started());
    ASSERT_TRUE(Eventually(
        [&] {
          return absl::SimpleAtoi(
              absl::StripAsciiWhitespace(ReadFile(port_file)), &r->port);
        },
        absl::Seconds(15)))
        << id << " did not start:\n"
        << ReadFile(r->log);
  }

  // Health of `service` on `r`, over a new channel each time, as a load
  // balancer probes (a channel that saw the standby go away would wait out
  // its reconnect backoff, and the time measured would be the client's).
  int ServiceHealth(const Replica& r, const std::string& service) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    return HealthStatus(service, MakeChannel(absl::StrCat("127.0.0.1:", r.port),
                                             std::nullopt, args));
  }
  int RolloutsHealth(const Replica& r) { return ServiceHealth(r, kRollouts); }

  // Health of the Fleet service on `r` (as RolloutsHealth).
  int FleetHealth(const Replica& r) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    return HealthStatus(
        "ringfence.v1.Fleet",
        MakeChannel(absl::StrCat("127.0.0.1:", r.port), std::nullopt, args));
  }

  // Points the fixture's stubs (and ringctl) at `r`.
  void ConnectTo(const Replica& r) {
    port_ = r.port;
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    channel_ = MakeChannel(target(), std::nullopt, args);
    releases_ = v1::Releases::NewStub(channel_);
    rollouts_ = v1::Rollouts::NewStub(channel_);
    fleet_ = v1::Fleet::NewStub(channel_);
  }

  // The first column of each row of `sql` on the test database.
  std::vector<std::string> Sql(const std::string& sql) {
    std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(dsn_.c_str()),
                                                 PQfinish);
    EXPECT_EQ(PQstatus(c.get()), CONNECTION_OK) << PQerrorMessage(c.get());
    PQsetNoticeProcessor(
        c.get(), [](void*, const char*) {}, nullptr);
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(
        PQexec(c.get(), sql.c_str()), PQclear);
    const ExecStatusType st = PQresultStatus(r.get());
    EXPECT_TRUE(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        << sql << ": " << PQresultErrorMessage(r.get());
    std::vector<std::string> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      out.emplace_back(PQgetvalue(r.get(), i, 0));
    }
    return out;
  }

  // A starts and leads; B starts and stands by. A has a running rollout
  // "ha-1" (manual plan: only the gate's HOLDs change it).
  void StartLeaderAndStandby(absl::Duration lease_ttl = kLeaseTtl) {
    ASSERT_NO_FATAL_FAILURE(
        StartReplica("replica-a", &a_, lease_ttl, a_dsn_file_));
    ASSERT_TRUE(Eventually([&] { return RolloutsHealth(a_) == kServing; },
                           absl::Seconds(15)));
    ASSERT_NO_FATAL_FAILURE(StartReplica("replica-b", &b_, lease_ttl));
    EXPECT_EQ(RolloutsHealth(b_), kNotServing);
    ConnectTo(b_);
    // It names the leader, and where it listens once it has read that.
    const std::string leads =
        "replica \"replica-b\" stands by: replica \"replica-a\" leads (lease "
        "epoch 1)";
    EXPECT_THAT(CreateRelease("cf500-a", "channel-file/500"),
                GrpcStatusIs(grpc::StatusCode::UNAVAILABLE, HasSubstr(leads)));
    const std::string at = absl::StrCat(" at 127.0.0.1:", a_.port, ";");
    EXPECT_TRUE(Eventually(
        [&] {
          const grpc::Status s = CreateRelease("cf500-a", "channel-file/500");
          return s.error_code() == grpc::StatusCode::UNAVAILABLE &&
                 absl::StrContains(s.error_message(),
                                   leads + at + " call the leader");
        },
        absl::Seconds(10)))
        << CreateRelease("cf500-a", "channel-file/500").error_message();
    ConnectTo(a_);
    ASSERT_THAT(CreateRelease("cf500-a", "channel-file/500"), GrpcOk());
    ASSERT_THAT(StartRollout("ha-1", "cf500-a", ParsePlan(kManualPlan)),
                GrpcOk());
    ASSERT_EQ(GetRollout("ha-1").rollout().state(), cfg::RUNNING);
  }

  // Polls B until it serves; the time from `since`.
  absl::Duration WaitForB(absl::Time since) {
    EXPECT_TRUE(Eventually([&] { return RolloutsHealth(b_) == kServing; },
                           absl::Seconds(20)))
        << "replica-b did not take over";
    return absl::Now() - since;
  }

  // Puts a proxy between replica-a (started next) and PostgreSQL, for the
  // test to cut (a partition): replica-a's DSN names the proxy's directory
  // as its host. The test server listens on a Unix socket only.
  void ProxyReplicaA() {
    std::string socket_dir;
    std::vector<std::string> words = absl::StrSplit(dsn_, ' ');
    for (std::string& word : words) {
      if (absl::StartsWith(word, "host=")) {
        socket_dir = word.substr(5);
        word = "host=" + dir_ + "/pg-proxy";
      }
    }
    ASSERT_FALSE(socket_dir.empty()) << "no host= in the test DSN";
    ASSERT_EQ(mkdir((dir_ + "/pg-proxy").c_str(), 0700), 0);
    proxy_ = std::make_unique<UnixSocketProxy>(
        socket_dir + "/.s.PGSQL.5432", dir_ + "/pg-proxy/.s.PGSQL.5432");
    ASSERT_TRUE(proxy_->started());
    a_dsn_file_ = dir_ + "/dsn-through-proxy";
    WriteFile(a_dsn_file_, absl::StrJoin(words, " "));
  }

  std::string dsn_file_, dsn_, schema_;
  // replica-a's DSN file, if not dsn_file_ (ProxyReplicaA).
  std::string a_dsn_file_;
  std::unique_ptr<UnixSocketProxy> proxy_;
  Replica a_, b_;
};

TEST_F(E2EReplicaTest, KillingTheLeaderHandsOverToTheStandby) {
  ASSERT_NO_FATAL_FAILURE(StartLeaderAndStandby());
  const Rollout before = GetRollout("ha-1").rollout();

  a_.process->Signal(SIGKILL);
  const absl::Time killed = absl::Now();
  EXPECT_EQ(a_.process->Wait(absl::Seconds(10)), 128 + SIGKILL);
  const absl::Duration takeover = WaitForB(killed);
  std::cout << "takeover after kill -9 of the leader: "
            << absl::FormatDuration(takeover) << " (lease TTL "
            << absl::FormatDuration(kLeaseTtl) << ", tick "
            << absl::FormatDuration(kTick) << ")\n";
  // The lease expires at most a TTL after the leader's last renewal, and
  // the standby tries every tick; then it restores and starts serving
  // (slack for a loaded machine).
  EXPECT_LT(takeover, kLeaseTtl + kTick + absl::Seconds(1));

  // B serves what A left, and keeps gating it.
  ConnectTo(b_);
  const absl::Time took_over = absl::Now();
  const Rollout after = GetRollout("ha-1").rollout();
  EXPECT_EQ(after.state(), cfg::RUNNING);
  EXPECT_EQ(after.version(), before.version());
  EXPECT_EQ(after.release_id(), "cf500-a");
  EXPECT_TRUE(Eventually(
      [&] {
        const Rollout r = GetRollout("ha-1").rollout();
        return r.has_last_decision() &&
               absl::FromUnixSeconds(r.last_decision().at().seconds()) >=
                   absl::FromUnixSeconds(absl::ToUnixSeconds(took_over));
      },
      absl::Seconds(5)))
      << "no gate decision from replica-b";
  Rollout paused;
  ASSERT_THAT(Act("pause", "ha-1", kOperatorToken, &paused), GrpcOk());
  EXPECT_EQ(paused.version(), before.version() + 1);
  // Its audit entry carries B's epoch.
  EXPECT_THAT(
      Sql("SELECT epoch FROM " + schema_ + ".audit WHERE action = 'pause'"),
      ::testing::ElementsAre("2"));
  const std::string log = ReadFile(b_.log);
  EXPECT_THAT(log, HasSubstr("replica \"replica-b\": standing by: replica "
                             "\"replica-a\" leads (lease epoch 1)"));
  EXPECT_THAT(log, HasSubstr("replica \"replica-b\" leads (lease epoch 2"));
}

// A leader stopped by SIGTERM releases its lease: with a TTL of a minute,
// the standby still takes over within a tick of the shutdown.
TEST_F(E2EReplicaTest, AGracefulShutdownHandsOverAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StartLeaderAndStandby(absl::Minutes(1)));
  a_.process->Signal(SIGTERM);
  const absl::Time stopped = absl::Now();
  EXPECT_EQ(a_.process->Wait(absl::Seconds(15)), 0);
  const absl::Duration takeover = WaitForB(stopped);
  std::cout << "takeover after SIGTERM of the leader: "
            << absl::FormatDuration(takeover) << " (lease TTL 1m)\n";
  EXPECT_LT(takeover, absl::Seconds(5));
  EXPECT_THAT(ReadFile(a_.log), HasSubstr("lease released"));
  ConnectTo(b_);
  EXPECT_EQ(GetRollout("ha-1").rollout().state(), cfg::RUNNING);
}

TEST_F(E2EReplicaTest, AStoppedLeaderWakesUpFencedAndExits) {
  ASSERT_NO_FATAL_FAILURE(StartLeaderAndStandby());
  const Rollout before = GetRollout("ha-1").rollout();

  a_.process->Signal(SIGSTOP);
  const absl::Time stopped = absl::Now();
  // A call to A waits in its socket while A is stopped: the first thing A
  // may do when it wakes up is act on it.
  grpc::Status pause_on_a;
  std::thread caller([&] {
    v1::RolloutActionRequest req;
    req.set_rollout_id("ha-1");
    req.set_reason("sent to the stopped leader");
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kOperatorToken));
    Rollout resp;
    pause_on_a = rollouts_->PauseRollout(&ctx, req, &resp);
  });
  const absl::Duration takeover = WaitForB(stopped);
  std::cout << "takeover from the stopped leader: "
            << absl::FormatDuration(takeover) << "\n";
  EXPECT_LT(takeover, kLeaseTtl + kTick + absl::Seconds(1));
  const std::vector<std::string> head =
      Sql("SELECT seq FROM " + schema_ + ".audit_head");
  ASSERT_EQ(head.size(), 1u);

  // A wakes up: it must write nothing, and step down.
  absl::SleepFor(absl::Milliseconds(500));
  a_.process->Signal(SIGCONT);
  EXPECT_EQ(a_.process->Wait(absl::Seconds(10)), 3);
  caller.join();
  EXPECT_FALSE(pause_on_a.ok()) << "the stopped leader paused the rollout";
  std::cout << "the call sent to the stopped leader: "
            << pause_on_a.error_code() << " " << pause_on_a.error_message()
            << "\n";
  const std::string log = ReadFile(a_.log);
  EXPECT_THAT(log, HasSubstr("lost the lease: fenced: this replica's lease "
                             "epoch 1 was superseded by epoch 2 (held by "
                             "\"replica-b\")"));

  EXPECT_THAT(Sql("SELECT COUNT(*) FROM " + schema_ + ".audit WHERE seq > " +
                  head[0] + " OR action = 'pause'"),
              ::testing::ElementsAre("0"));
  ConnectTo(b_);
  const Rollout after = GetRollout("ha-1").rollout();
  EXPECT_EQ(after.state(), cfg::RUNNING);
  EXPECT_EQ(after.version(), before.version());
  // B goes on: A's entries, then B's.
  Rollout paused;
  ASSERT_THAT(Act("pause", "ha-1", kOperatorToken, &paused), GrpcOk());
  EXPECT_THAT(
      Sql("SELECT epoch FROM " + schema_ + ".audit WHERE seq <= " + head[0]),
      ::testing::Each("1"));
  EXPECT_THAT(
      Sql("SELECT epoch FROM " + schema_ + ".audit WHERE seq > " + head[0]),
      ::testing::ElementsAre("2"));
}

}  // namespace
}  // namespace ringfence::e2e

namespace ringfence::e2e {
namespace {

v1::GetClusterStatusResponse ClusterStatus(v1::Cluster::Stub& stub,
                                           const std::string& token,
                                           grpc::Status* status) {
  v1::GetClusterStatusResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  *status = stub.GetClusterStatus(&ctx, v1::GetClusterStatusRequest(), &resp);
  return resp;
}

// The SQLite store: one server, leading, no lease.
TEST_F(E2ETest, ClusterStatusOfASingleServer) {
  auto stub = v1::Cluster::NewStub(channel_);
  grpc::Status s;
  const v1::GetClusterStatusResponse st =
      ClusterStatus(*stub, kPublisherToken, &s);
  ASSERT_THAT(s, GrpcOk());
  EXPECT_EQ(st.store(), "sqlite");
  EXPECT_EQ(st.answered_by_role(), v1::REPLICA_ROLE_LEADER);
  EXPECT_THAT(st.answered_by(), ::testing::EndsWith(absl::StrCat(":", port_)));
  ASSERT_EQ(st.replicas_size(), 1);
  EXPECT_EQ(st.replicas(0).address(), target());
  EXPECT_FALSE(st.has_lease());
  CommandResult r = Ctl({"cluster", "status"}, kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("store sqlite; answered by"));
}

// Every replica, the standby too, says who leads; both record themselves.
TEST_F(E2EReplicaTest, ClusterStatusFromTheLeaderAndTheStandby) {
  ASSERT_NO_FATAL_FAILURE(StartLeaderAndStandby());
  // Both recorded themselves at their first attempt; a tick for B's row.
  absl::SleepFor(2 * kTick);
  for (const Replica* r : {&a_, &b_}) {
    ConnectTo(*r);
    auto stub = v1::Cluster::NewStub(channel_);
    grpc::Status s;
    const v1::GetClusterStatusResponse st =
        ClusterStatus(*stub, kOperatorToken, &s);
    ASSERT_THAT(s, GrpcOk()) << r->id;
    EXPECT_EQ(st.store(), "postgres");
    EXPECT_EQ(st.answered_by(), r->id);
    EXPECT_EQ(st.answered_by_role(),
              r == &a_ ? v1::REPLICA_ROLE_LEADER : v1::REPLICA_ROLE_STANDBY);
    EXPECT_EQ(st.lease().holder(), "replica-a");
    EXPECT_EQ(st.lease().epoch(), 1);
    EXPECT_GT(st.lease().expires_in().seconds() * 1000 +
                  st.lease().expires_in().nanos() / 1000000,
              0);
    EXPECT_LT(st.lease().since_renewal().seconds(), 2);
    ASSERT_EQ(st.replicas_size(), 2) << st.DebugString();
    for (const v1::ClusterReplica& rep : st.replicas()) {
      const bool leader = rep.replica_id() == "replica-a";
      EXPECT_EQ(rep.role(),
                leader ? v1::REPLICA_ROLE_LEADER : v1::REPLICA_ROLE_STANDBY);
      EXPECT_EQ(rep.epoch(), leader ? 1 : 0);
      EXPECT_EQ(rep.address(),
                absl::StrCat("127.0.0.1:", leader ? a_.port : b_.port));
      EXPECT_LT(rep.last_seen_age().seconds(), 2) << rep.replica_id();
    }
    // Reader roles only, on the standby as on the leader.
    ClusterStatus(*stub, kRelayToken, &s);
    EXPECT_THAT(s, GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                                HasSubstr("GetClusterStatus")));
    // Health: the Cluster service answers on every replica.
    EXPECT_EQ(HealthStatus("ringfence.v1.Cluster", channel_), kServing);
  }

  ConnectTo(b_);
  CommandResult r = Ctl({"cluster", "status"}, kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("answered by replica-b (standby)"));
  EXPECT_THAT(r.out, HasSubstr("lease: replica-a, epoch 1, expires in"));
  r = Ctl({"cluster", "status", "--json"}, kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out,
              HasSubstr("\"answered_by_role\": \"REPLICA_ROLE_STANDBY\""));

  // A dies and B leads: A's row still says what A was, and the status
  // marks it stale.
  a_.process->Signal(SIGKILL);
  EXPECT_EQ(a_.process->Wait(absl::Seconds(10)), 128 + SIGKILL);
  WaitForB(absl::Now());
  ConnectTo(b_);
  r = Ctl({"cluster", "status"}, kOperatorToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("answered by replica-b (leader)"));
  EXPECT_THAT(r.out, HasSubstr("lease: replica-b, epoch 2"));
  EXPECT_THAT(r.out, HasSubstr("leader (stale)"));
}

// What the replica on `port` answers host `host_id` (with `labels`) for
// channel-file/500, over a channel of its own.
grpc::Status AssignOn(int port, const std::string& host_id,
                      std::vector<std::string> labels,
                      v1::ContentAssignment* out) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);
  auto stub = v1::Fleet::NewStub(
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                grpc::InsecureChannelCredentials(), args));
  v1::GetAssignmentRequest req;
  req.set_host_id(host_id);
  for (std::string& l : labels) req.add_labels(std::move(l));
  req.add_content_types("channel-file/500");
  v1::GetAssignmentResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ctx.AddMetadata("authorization", absl::StrCat("Bearer ", kRelayToken));
  grpc::Status s = stub->GetAssignment(&ctx, req, &resp);
  if (s.ok() && resp.assignments_size() == 1) *out = resp.assignments(0);
  return s;
}

// A standby answers GetAssignment: locally what needs no new exposure (the
// same answer as the leader's), and a new grant through the leader, durable
// before the answer; after an abort on the leader, the standby's answer
// changes within its staleness bound (--follower_max_staleness, 1s).
TEST_F(E2EReplicaTest, TheStandbyAnswersGetAssignmentAsTheLeaderDoes) {
  ASSERT_NO_FATAL_FAILURE(StartLeaderAndStandby());
  // Outside the dogfood stage: NOT_YET from both.
  v1::ContentAssignment from_a, from_b;
  // (The standby sees the new rollout at its next poll.)
  ASSERT_TRUE(Eventually(
      [&] {
        return AssignOn(b_.port, "web-1", {}, &from_b).ok() &&
               from_b.reason() == v1::NOT_YET;
      },
      absl::Seconds(5)));
  ASSERT_THAT(AssignOn(a_.port, "web-1", {}, &from_a), GrpcOk());
  EXPECT_EQ(from_b.reason(), v1::NOT_YET);
  EXPECT_EQ(from_b.SerializeAsString(), from_a.SerializeAsString());
  // A dogfood host asking the standby is granted by the leader, and its
  // exposure is on record when the answer arrives.
  ASSERT_THAT(AssignOn(b_.port, "dog-1", {"ring:dogfood"}, &from_b), GrpcOk());
  EXPECT_EQ(from_b.reason(), v1::EXPOSED);
  EXPECT_EQ(from_b.release_id(), "cf500-a");
  EXPECT_THAT(Sql("SELECT host_id FROM " + schema_ +
                  ".exposures WHERE rollout_id = 'ha-1'"),
              ::testing::ElementsAre("dog-1"));
  ASSERT_THAT(AssignOn(a_.port, "dog-1", {"ring:dogfood"}, &from_a), GrpcOk());
  EXPECT_EQ(from_b.SerializeAsString(), from_a.SerializeAsString());
  ASSERT_THAT(AssignOn(b_.port, "dog-1", {"ring:dogfood"}, &from_b), GrpcOk());
  EXPECT_EQ(from_b.SerializeAsString(), from_a.SerializeAsString());
  // dog-1 comes up on the release, reported through the standby (which
  // forwards telemetry to the leader; the leader acknowledges the batch
  // once it is checkpointed): then the standby answers it from its
  // snapshot, even while the leader is stopped (a forwarded call would wait
  // for the forward deadline, 2s, and then grant nothing).
  ConnectTo(b_);
  v1::ReportTelemetryResponse telemetry_resp;
  v1::ReportTelemetryRequest up;
  v1::TelemetryEvent* beat = up.add_events();
  beat->set_host_id("dog-1");
  beat->set_type(v1::HEARTBEAT);
  beat->set_release_id("cf500-a");
  ASSERT_THAT(
      fleet_->ReportTelemetry(Ctx(kRelayToken).get(), up, &telemetry_resp),
      GrpcOk());
  EXPECT_EQ(telemetry_resp.accepted_events(), 1u);
  // Operator calls on the standby: UNAVAILABLE naming the leader.
  EXPECT_THAT(Act("pause", "ha-1", kOperatorToken),
              GrpcStatusIs(grpc::StatusCode::UNAVAILABLE,
                           HasSubstr("replica \"replica-a\" leads")));
  ConnectTo(a_);
  absl::SleepFor(absl::Milliseconds(600));  // two polls of the standby
  a_.process->Signal(SIGSTOP);
  const absl::Time asked = absl::Now();
  const grpc::Status local =
      AssignOn(b_.port, "dog-1", {"ring:dogfood"}, &from_b);
  const absl::Duration took = absl::Now() - asked;
  a_.process->Signal(SIGCONT);
  ASSERT_THAT(local, GrpcOk());
  EXPECT_EQ(from_b.SerializeAsString(), from_a.SerializeAsString());
  EXPECT_LT(took, absl::Seconds(1)) << "forwarded to the stopped leader?";
  // Abort on the leader: the standby, answering dog-1 from its snapshot,
  // tells it to roll back within its bound.
  ASSERT_THAT(Act("abort", "ha-1", kOperatorToken), GrpcOk());
  const absl::Time aborted = absl::Now();
  // A call sent at least the bound after the commit gets the rollback (or
  // UNAVAILABLE, if the standby's snapshot is older than the bound).
  absl::Time first_rolled_back = absl::InfiniteFuture();
  int checked = 0;
  while (absl::Now() < aborted + absl::Seconds(2)) {
    const absl::Time sent = absl::Now();
    v1::ContentAssignment answer;
    if (AssignOn(b_.port, "dog-1", {"ring:dogfood"}, &answer).ok()) {
      if (answer.reason() == v1::ROLLED_BACK) {
        first_rolled_back = std::min(first_rolled_back, absl::Now());
        from_b = answer;
      }
      if (sent >= aborted + absl::Seconds(1)) {
        ++checked;
        EXPECT_EQ(answer.reason(), v1::ROLLED_BACK)
            << "asked " << absl::FormatDuration(sent - aborted)
            << " after the abort";
      }
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_GT(checked, 0);
  ASSERT_NE(first_rolled_back, absl::InfiniteFuture());
  std::cout << "standby answered ROLLED_BACK "
            << absl::FormatDuration(first_rolled_back - aborted)
            << " after the abort committed\n";
  EXPECT_TRUE(from_b.unload());
}

// With the leader dead, a standby grants nothing (it cannot record an
// exposure) until a leader serves again; every answer that tells a host the
// release is backed by an exposure row.
TEST_F(E2EReplicaTest, TheStandbyGrantsNothingWhileNoLeaderServes) {
  ASSERT_NO_FATAL_FAILURE(StartLeaderAndStandby());
  v1::ContentAssignment answer;
  // (The standby sees the new rollout at its next poll.)
  ASSERT_TRUE(Eventually(
      [&] {
        return AssignOn(b_.port, "web-1", {}, &answer).ok() &&
               answer.reason() == v1::NOT_YET;
      },
      absl::Seconds(5)));
  a_.process->Signal(SIGKILL);
  EXPECT_EQ(a_.process->Wait(absl::Seconds(10)), 128 + SIGKILL);
  ASSERT_THAT(AssignOn(b_.port, "dog-2", {"ring:dogfood"}, &answer), GrpcOk());
  EXPECT_FALSE(answer.has_release());
  EXPECT_EQ(answer.reason(), v1::STORE_UNAVAILABLE);
  EXPECT_THAT(Sql("SELECT host_id FROM " + schema_ +
                  ".exposures WHERE rollout_id = 'ha-1'"),
              ::testing::IsEmpty());
  // Until B leads: every answer with the release is durable first.
  bool granted = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!granted && absl::Now() < deadline) {
    if (!AssignOn(b_.port, "dog-2", {"ring:dogfood"}, &answer).ok()) {
      absl::SleepFor(absl::Milliseconds(20));
      continue;
    }
    if (answer.has_release()) {
      granted = true;
      EXPECT_THAT(Sql("SELECT host_id FROM " + schema_ +
                      ".exposures WHERE rollout_id = 'ha-1'"),
                  ::testing::ElementsAre("dog-2"));
      EXPECT_EQ(RolloutsHealth(b_), kServing);
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(granted) << "replica-b did not take over and grant";
}

// Behind a load balancer that checks gRPC health: the follower says SERVING
// for Fleet (its snapshot is within its bound) and NOT_SERVING for Rollouts
// and Releases (it does not lead), so agents may be sent to it and
// operators only to the leader. A StreamTelemetry through the follower
// reaches the leader, which counts its events; with the leader dead, the
// stream fails UNAVAILABLE for the agent to re-send.
TEST_F(E2EReplicaTest, AFollowerServesTheFleetBehindALoadBalancer) {
  ASSERT_NO_FATAL_FAILURE(StartLeaderAndStandby());
  // As a load balancer probes: no credentials, a channel of its own.
  const auto health = [&](const Replica& r, const std::string& service) {
    return ServiceHealth(r, service);
  };
  EXPECT_TRUE(
      Eventually([&] { return health(b_, "ringfence.v1.Fleet") == kServing; },
                 absl::Seconds(5)));
  EXPECT_EQ(health(b_, kRollouts), kNotServing);
  EXPECT_EQ(health(b_, "ringfence.v1.Releases"), kNotServing);
  EXPECT_EQ(health(a_, "ringfence.v1.Fleet"), kServing);
  EXPECT_EQ(health(a_, kRollouts), kServing);

  // An agent streams through the follower: two messages, five events of a
  // host that never asked for its assignment (the leader counts them as
  // outside the release's population).
  const auto stream = [&](v1::StreamTelemetryResponse* resp) {
    std::unique_ptr<grpc::ClientContext> ctx = Ctx(kRelayToken);
    std::unique_ptr<grpc::ClientWriter<v1::TelemetryBatch>> writer =
        fleet_->StreamTelemetry(ctx.get(), resp);
    for (int events : {3, 2}) {
      v1::TelemetryBatch batch;
      for (int i = 0; i < events; ++i) {
        v1::TelemetryEvent* e = batch.add_events();
        e->set_host_id("agent-7");
        e->set_type(v1::HEARTBEAT);
      }
      if (!writer->Write(batch)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  };
  const uint64_t before =
      GetRollout("ha-1").telemetry().outside_population_events();
  ConnectTo(b_);
  v1::StreamTelemetryResponse resp;
  ASSERT_THAT(stream(&resp), GrpcOk());
  EXPECT_EQ(resp.accepted_batches(), 2u);
  EXPECT_EQ(resp.accepted_events(), 5u);
  ConnectTo(a_);
  EXPECT_EQ(GetRollout("ha-1").telemetry().outside_population_events(),
            before + 5);

  // The leader dies: the follower still serves the fleet from its snapshot
  // (health SERVING), and a stream through it fails UNAVAILABLE.
  a_.process->Signal(SIGKILL);
  EXPECT_EQ(a_.process->Wait(absl::Seconds(10)), 128 + SIGKILL);
  ConnectTo(b_);
  EXPECT_THAT(stream(&resp),
              GrpcStatusIs(grpc::StatusCode::UNAVAILABLE,
                           HasSubstr("message 0 of the stream")));
  EXPECT_EQ(health(b_, "ringfence.v1.Fleet"), kServing);
}

}  // namespace
}  // namespace ringfence::e2e

namespace ringfence::e2e {
namespace {

// A leader cut off from PostgreSQL cannot tell whether another replica took
// over, so it must stop answering hosts from its rollouts in memory before
// its lease could have expired, and answer again, without a restart, once
// it renews the lease (replica_lease.h).
TEST_F(E2EReplicaTest, ALeaderCutOffFromPostgresAnswersNothingUntilItRenews) {
  ASSERT_NO_FATAL_FAILURE(ProxyReplicaA());
  ASSERT_NO_FATAL_FAILURE(
      StartReplica("replica-a", &a_, kLeaseTtl, a_dsn_file_));
  ASSERT_TRUE(Eventually([&] { return RolloutsHealth(a_) == kServing; },
                         absl::Seconds(15)));
  ConnectTo(a_);
  ASSERT_THAT(CreateRelease("cf500-a", "channel-file/500"), GrpcOk());
  ASSERT_THAT(StartRollout("ha-1", "cf500-a", ParsePlan(kManualPlan)),
              GrpcOk());
  v1::ContentAssignment got;
  ASSERT_THAT(AssignOn(a_.port, "dog-1", {"ring:dogfood"}, &got), GrpcOk());
  ASSERT_EQ(got.reason(), v1::EXPOSED);
  EXPECT_EQ(FleetHealth(a_), kServing);

  proxy_->Cut();
  const absl::Time cut = absl::Now();
  grpc::Status refused;
  ASSERT_TRUE(Eventually(
      [&] {
        refused = AssignOn(a_.port, "dog-1", {"ring:dogfood"}, &got);
        return refused.error_code() == grpc::StatusCode::UNAVAILABLE;
      },
      kLeaseTtl + absl::Seconds(3)))
      << "still answering " << refused.error_code() << " "
      << refused.error_message();
  const absl::Duration closed_after = absl::Now() - cut;
  std::cout << "the leader cut off from PostgreSQL failed closed after "
            << absl::FormatDuration(closed_after) << " (lease TTL "
            << absl::FormatDuration(kLeaseTtl) << ")\n";
  // (By design under the TTL from the last renewal before the cut; the
  // slack is for how late a loaded machine notices.)
  EXPECT_LT(closed_after, kLeaseTtl + absl::Seconds(1));
  EXPECT_THAT(refused.error_message(), HasSubstr("may no longer lead"));
  EXPECT_TRUE(Eventually([&] { return FleetHealth(a_) == kNotServing; },
                         absl::Seconds(2)));
  // Cluster status cannot be read from the store either.
  EXPECT_TRUE(Eventually(
      [&] { return ServiceHealth(a_, "ringfence.v1.Cluster") == kNotServing; },
      absl::Seconds(10)));
  // Nor does it say it leads, or answer operators and CI from memory (a
  // release it would call cleared may have been halted by now).
  EXPECT_EQ(RolloutsHealth(a_), kNotServing);
  {
    v1::GetRolloutRequest req;
    req.set_rollout_id("ha-1");
    v1::GetRolloutResponse resp;
    EXPECT_THAT(rollouts_->GetRollout(Ctx(kOperatorToken).get(), req, &resp),
                GrpcStatusIs(grpc::StatusCode::UNAVAILABLE,
                             HasSubstr("may no longer lead")));
    v1::CheckGateRequest gate;
    gate.set_release_id("cf500-a");
    v1::CheckGateResponse verdict;
    EXPECT_THAT(
        rollouts_->CheckGate(Ctx(kPublisherToken).get(), gate, &verdict),
        GrpcStatusIs(grpc::StatusCode::UNAVAILABLE,
                     HasSubstr("may no longer lead")));
  }
  // An unauthenticated caller learns nothing about the lease.
  {
    v1::GetRolloutRequest req;
    req.set_rollout_id("ha-1");
    v1::GetRolloutResponse resp;
    EXPECT_THAT(rollouts_->GetRollout(Ctx("").get(), req, &resp),
                GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED, testing::_));
  }
  // Still so a while later (nothing in it gives up on the database).
  absl::SleepFor(absl::Seconds(2));
  EXPECT_EQ(AssignOn(a_.port, "dog-1", {"ring:dogfood"}, &got).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  proxy_->Resume();
  const absl::Time healed = absl::Now();
  ASSERT_TRUE(Eventually(
      [&] {
        return AssignOn(a_.port, "dog-1", {"ring:dogfood"}, &got).ok() &&
               got.reason() == v1::EXPOSED;
      },
      absl::Seconds(30)))
      << "the leader did not answer again after the partition healed";
  std::cout << "answering again " << absl::FormatDuration(absl::Now() - healed)
            << " after the partition healed\n";
  EXPECT_TRUE(a_.process->running());
  EXPECT_TRUE(Eventually([&] { return FleetHealth(a_) == kServing; },
                         absl::Seconds(5)));
  EXPECT_EQ(RolloutsHealth(a_), kServing);
  EXPECT_TRUE(Eventually(
      [&] { return ServiceHealth(a_, "ringfence.v1.Cluster") == kServing; },
      absl::Seconds(5)));
  const std::string log = ReadFile(a_.log);
  EXPECT_THAT(log, HasSubstr("may no longer lead"));
  EXPECT_THAT(log, HasSubstr("Fleet SERVING again"));
  // Same process, same epoch: the rollout goes on.
  EXPECT_EQ(GetRollout("ha-1").rollout().state(), cfg::RUNNING);
}

// The partition with a standby that can still reach the database: the cut
// off leader stops answering before the standby takes over (never two
// replicas answering hosts at once), the new leader's abort rolls the host
// back, and the old leader, reconnected, finds itself fenced and exits.
TEST_F(E2EReplicaTest, ALeaderCutOffFromPostgresStopsAnsweringBeforeATakeover) {
  ASSERT_NO_FATAL_FAILURE(ProxyReplicaA());
  ASSERT_NO_FATAL_FAILURE(StartLeaderAndStandby());
  v1::ContentAssignment got;
  ASSERT_THAT(AssignOn(a_.port, "dog-1", {"ring:dogfood"}, &got), GrpcOk());
  ASSERT_EQ(got.reason(), v1::EXPOSED);

  proxy_->Cut();
  const absl::Time cut = absl::Now();
  // Asks B, then A, in turn: an answer from A that was asked for after B
  // was seen serving is two replicas answering at once. (Judged by the
  // order of the calls, not by their times, so a slow machine cannot fail
  // it; the times are printed.)
  absl::Time a_closed = absl::InfiniteFuture();
  absl::Time b_leads = absl::InfiniteFuture();
  std::string a_answered;  // an answer from A after it closed or B leads
  const absl::Time deadline = cut + absl::Seconds(20);
  while (absl::Now() < deadline &&
         (b_leads == absl::InfiniteFuture() ||
          absl::Now() < b_leads + absl::Milliseconds(500))) {
    if (b_leads == absl::InfiniteFuture() && RolloutsHealth(b_) == kServing) {
      b_leads = absl::Now();
    }
    const grpc::Status s = AssignOn(a_.port, "dog-1", {"ring:dogfood"}, &got);
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      a_closed = std::min(a_closed, absl::Now());
    } else if (a_closed != absl::InfiniteFuture() ||
               b_leads != absl::InfiniteFuture()) {
      a_answered = absl::StrCat(s.error_code(), " ", s.error_message(), " ",
                                got.ShortDebugString());
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_NE(b_leads, absl::InfiniteFuture()) << "replica-b did not take over";
  ASSERT_NE(a_closed, absl::InfiniteFuture());
  std::cout << "cut off leader closed after "
            << absl::FormatDuration(a_closed - cut) << "; standby leads after "
            << absl::FormatDuration(b_leads - cut) << "\n";
  EXPECT_EQ(a_answered, "") << "the cut off leader answered after it closed "
                               "or after the standby took over";
  // Health names one leader.
  EXPECT_EQ(RolloutsHealth(a_), kNotServing);

  // The new leader aborts: dog-1 is rolled back there; the old leader
  // still answers nothing.
  ConnectTo(b_);
  ASSERT_THAT(Act("abort", "ha-1", kOperatorToken), GrpcOk());
  ASSERT_THAT(AssignOn(b_.port, "dog-1", {"ring:dogfood"}, &got), GrpcOk());
  EXPECT_EQ(got.reason(), v1::ROLLED_BACK);
  EXPECT_EQ(AssignOn(a_.port, "dog-1", {"ring:dogfood"}, &got).error_code(),
            grpc::StatusCode::UNAVAILABLE);

  // Reconnected, the old leader learns it was superseded, and exits.
  proxy_->Resume();
  EXPECT_EQ(a_.process->Wait(absl::Seconds(30)), 3);
  EXPECT_THAT(ReadFile(a_.log), HasSubstr("epoch 1 was superseded by epoch 2"));
}

}  // namespace
}  // namespace ringfence::e2e
