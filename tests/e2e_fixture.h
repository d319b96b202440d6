// The fixture of the end-to-end tests: the real `ringfenced` binary (env
// RINGFENCED) on port 0 with a SQLite data dir and a tokens file, driven by
// gRPC clients (an emulated fleet of hosts, operators, CI) and by the real
// `ringctl` binary (env RINGCTL). Rollouts run in real time with second-scale
// bake times; the server's gate ticks every 100ms.
//
// TLS: TestCerts() generates, once per process, a server CA, a server
// certificate for 127.0.0.1 and localhost, a client CA with a client
// certificate, and an unrelated CA with a certificate of its own, with the
// `openssl` command into a temporary directory.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "e2e_process.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/fleet_emulator.h"
#include "service/tls.h"

namespace ringfence::e2e {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

namespace cfg = ::ringfence::config::v1;
using cfg::Decision;
using cfg::Plan;
using cfg::Release;
using cfg::Rollout;
using cfg::RolloutState;
using ::ringfence::service::FleetEmulator;
using ::ringfence::service::FleetOptions;

inline constexpr char kRelayToken[] = "relay-token-5f1e2d3c4b5a69788796a5b4";
// A host token bound to host "h7" (role host): it speaks for h7 only.
inline constexpr char kHost7Token[] = "host7-token-0c1d2e3f4a5b6c7d8e9f";
inline constexpr char kPublisherToken[] =
    "publisher-token-0a1b2c3d4e5f60718293";
inline constexpr char kOperatorToken[] = "operator-token-9f8e7d6c5b4a39281706";
inline constexpr char kAdminToken[] = "admin-token-123456789abcdef0fedcba98";

inline constexpr char kDigestA[] =
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
inline constexpr char kDigestB[] =
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

// One dogfood stage and the whole fleet, a second of bake each; pacing that
// lets the 30 hosts in at once.
inline constexpr char kGoodPlan[] = R"pb(
  name: "e2e-good"
  policy {
    silence_timeout { seconds: 5 }
    apply_timeout { seconds: 5 }
    max_staleness { seconds: 30 }
  }
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 1 }
    pacing {
      initial_hosts: 100
      healthy_after { seconds: 1 }
    }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 1 }
    pacing {
      initial_hosts: 100
      healthy_after { seconds: 1 }
    }
  }
)pb";

// Hosts silent for 2s are `silent`; three of them trip the breaker. The
// dogfood stage bakes long enough for the silence to show.
inline constexpr char kBootLoopPlan[] = R"pb(
  name: "e2e-bootloop"
  policy {
    silence_timeout { seconds: 2 }
    apply_timeout { seconds: 30 }
    max_staleness { seconds: 30 }
    signals { signal: "silent" max_affected_hosts: 3 }
    signals { signal: "crash" max_affected_hosts: 3 }
  }
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 30 }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 1 }
  }
)pb";

// For tests that move rollouts by hand with a fleet running: nothing
// promotes on its own, and pacing lets the 30 hosts in at once.
inline constexpr char kLivePlan[] = R"pb(
  name: "e2e-live"
  policy {
    silence_timeout { seconds: 30 }
    apply_timeout { seconds: 30 }
    signals { signal: "crash" max_affected_hosts: 3 }
  }
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 3600 }
    pacing { initial_hosts: 100 }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 3600 }
    pacing { initial_hosts: 100 }
  }
)pb";

// For tests that move rollouts by hand: nothing promotes on its own.
inline constexpr char kManualPlan[] = R"pb(
  name: "e2e-manual"
  stages {
    name: "dogfood"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 3600 }
  }
  stages {
    name: "fleet"
    audience { percent: 100 }
    bake_time { seconds: 3600 }
  }
)pb";

MATCHER_P2(GrpcStatusIs, code, message_matcher, "") {
  *result_listener << "status is " << arg.error_code() << ": "
                   << arg.error_message();
  return arg.error_code() == code &&
         ::testing::ExplainMatchResult(message_matcher, arg.error_message(),
                                       result_listener);
}

MATCHER(GrpcOk, "") {
  *result_listener << "status is " << arg.error_code() << ": "
                   << arg.error_message();
  return arg.ok();
}

inline Plan ParsePlan(const char* text) {
  Plan plan;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &plan));
  return plan;
}

// PEM files generated for the TLS tests (see TestCerts()).
struct TestCertFiles {
  // The CA that signs the server's certificate, and that certificate (SANs
  // IP:127.0.0.1 and DNS:localhost) with its key.
  std::string ca, server_cert, server_key;
  // The CA that signs client certificates, and a client certificate.
  std::string client_ca, client_cert, client_key;
  // Client certificates (signed by client_ca) that name their principal:
  // URI SAN ringfence://host/h7, ringfence://operator/carol, and
  // ringfence://wizard/merlin (a role that does not exist).
  std::string host_cert, host_key, operator_cert, operator_key,
      unknown_role_cert, unknown_role_key;
  // An unrelated CA, and a certificate it signed (a client the server's
  // client CA does not know).
  std::string other_ca, other_cert, other_key;
  // A server certificate (same SANs as server_cert) signed by other_ca: what
  // a rotation to a new CA serves.
  std::string other_server_cert, other_server_key;
};

// TestCerts
//
// Generates the certificates on first use (with the `openssl` command
// found on $PATH) and returns their paths; nullptr (after logging why) if
// that fails.
const TestCertFiles* TestCerts();

inline std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

// The file with the test PostgreSQL's DSN: $RINGFENCE_TEST_POSTGRES_DSN_FILE,
// or where ctest's `postgres` fixture writes it.
inline std::string PostgresDsnFile() {
  std::string file = Env("RINGFENCE_TEST_POSTGRES_DSN_FILE");
#ifdef RINGFENCE_PG_TEST_DSN_FILE
  if (file.empty()) file = RINGFENCE_PG_TEST_DSN_FILE;
#endif
  return file;
}

// FindOnPath
//
// The path of the executable `name` found first on $PATH; "" if none
// (RunCommand and ChildProcess need a path).
std::string FindOnPath(const std::string& name);

class E2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    ringfenced_ = Env("RINGFENCED");
    ringctl_ = Env("RINGCTL");
    if (ringctl_.empty() && !ringfenced_.empty()) {
      ringctl_ = (std::filesystem::path(ringfenced_).parent_path() / "ringctl")
                     .string();
    }
    ASSERT_FALSE(ringfenced_.empty()) << "set RINGFENCED to the server binary";
    ASSERT_FALSE(ringctl_.empty()) << "set RINGCTL to the CLI binary";
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    WriteFile(dir_ + "/tokens",
              absl::StrCat("# token role actor\n", kRelayToken,
                           " relay fleet-agent\n", kHost7Token, " host h7\n",
                           kPublisherToken, " publisher ci-pipeline\n",
                           kOperatorToken, " operator alice\n", kAdminToken,
                           " admin root\n"));
    StartServer();
  }

  void TearDown() override {
    server_.reset();  // SIGKILLs it if still running
    if (HasFailure()) {
      for (int i = 1; i <= starts_; ++i) {
        std::cerr << "---- server log " << i << " ----\n"
                  << ReadFile(LogPath(i));
      }
    }
    RemoveTree(dir_);
  }

  std::string LogPath(int start) const {
    return absl::StrCat(dir_, "/server-", start, ".log");
  }

  // Runs ringfenced with `flags` (a free port, a scratch data dir) until it
  // exits: for flags that must stop startup. Its stderr is in `.err`.
  CommandResult RunServerToExit(const std::vector<std::string>& flags) const {
    std::vector<std::string> argv = {ringfenced_, "--listen=127.0.0.1:0",
                                     "--data_dir=" + dir_ + "/data-bad"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return RunCommand(argv, {}, absl::Seconds(15));
  }

  // Starts ringfenced on a free port with the test's data dir and tokens,
  // and waits until it serves.
  void StartServer(std::vector<std::string> extra_flags = {}) {
    const std::string port_file = dir_ + "/port";
    std::filesystem::remove(port_file);
    std::vector<std::string> argv = {
        ringfenced_,
        "--listen=127.0.0.1:0",
        "--port_file=" + port_file,
        "--data_dir=" + dir_ + "/data",
        "--tick_interval=0.1s",
        "--max_batch_events=1000",
        "--mutex_deadlock_detection",  // tests want lock-order checks
    };
    if (with_tokens_) argv.push_back("--auth_tokens_file=" + dir_ + "/tokens");
    argv.insert(argv.end(), server_flags_.begin(), server_flags_.end());
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    ++starts_;
    // The previous server must be gone before the next one opens the same
    // data directory (it holds the directory's lock).
    server_.reset();
    server_ = std::make_unique<ChildProcess>(argv, LogPath(starts_));
    ASSERT_TRUE(server_->started());
    const absl::Time deadline = absl::Now() + absl::Seconds(15);
    port_ = 0;
    while (absl::Now() < deadline && server_->running()) {
      const std::string text = ReadFile(port_file);
      if (!text.empty() &&
          absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port_)) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_GT(port_, 0) << "server did not start:\n"
                        << ReadFile(LogPath(starts_));
    channel_ = MakeChannel(target(), client_tls_);
    releases_ = v1::Releases::NewStub(channel_);
    rollouts_ = v1::Rollouts::NewStub(channel_);
    fleet_ = v1::Fleet::NewStub(channel_);
  }

  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

  // Restarts the server with the HTTP listener on a free port; every later
  // StartServer keeps it.
  void StartServerWithHttp() {
    server_flags_ = {"--http_listen=127.0.0.1:0",
                     "--http_port_file=" + dir_ + "/http_port"};
    StartServer();
  }

  // The HTTP listener's port (written before the gRPC port file, which
  // StartServer waits for).
  int HttpPort() const {
    int port = 0;
    EXPECT_TRUE(absl::SimpleAtoi(
        absl::StripAsciiWhitespace(ReadFile(dir_ + "/http_port")), &port));
    return port;
  }

  // A Releases stub over a new channel to `host`:port with `tls`.
  std::unique_ptr<v1::Releases::Stub> ReleasesOver(
      const std::optional<ClientTls>& tls,
      const std::string& host = "127.0.0.1") const {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    return v1::Releases::NewStub(
        MakeChannel(absl::StrCat(host, ":", port_), tls, args));
  }

  // grpc.health.v1.Health/Check of `service` ("" = the server): 1 SERVING,
  // 2 NOT_SERVING, 0 UNKNOWN; -(status code) if the call failed. Over
  // `channel` if given, else the fixture's.
  int HealthStatus(const std::string& service,
                   std::shared_ptr<grpc::Channel> channel = nullptr);

  // The releases and rollouts the server lists, serialized (to compare
  // before and after calls that must change nothing).
  std::string ListedState();

  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(10));
    if (!token.empty()) {
      ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
    }
    return ctx;
  }

  // Runs ringctl against the server with `token` (empty: none).
  CommandResult Ctl(std::vector<std::string> args,
                    const std::string& token = kAdminToken,
                    std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {ringctl_, "--server=" + target()};
    argv.insert(argv.end(), ctl_flags_.begin(), ctl_flags_.end());
    if (!token.empty()) argv.push_back("--token=" + token);
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, env, absl::Seconds(60));
  }

  std::string WritePlan(const std::string& name, const std::string& text) {
    const std::string path = absl::StrCat(dir_, "/", name, ".textproto");
    WriteFile(path, text);
    return path;
  }

  grpc::Status CreateRelease(const std::string& id,
                             const std::string& content_type,
                             const std::string& digest = kDigestA,
                             const std::string& token = kPublisherToken) {
    v1::CreateReleaseRequest req;
    Release* r = req.mutable_release();
    r->set_id(id);
    r->set_content_type(content_type);
    r->set_version(id);
    r->set_digest_sha256(digest);
    r->set_size_bytes(40000);
    r->set_fetch_url("https://updates.example/" + id);
    Release resp;
    return releases_->CreateRelease(Ctx(token).get(), req, &resp);
  }

  grpc::Status StartRollout(const std::string& id, const std::string& release,
                            const Plan& plan, Rollout* out = nullptr,
                            const std::string& baseline = "") {
    v1::StartRolloutRequest req;
    req.set_rollout_id(id);
    req.set_release_id(release);
    *req.mutable_plan() = plan;
    req.set_baseline_release_id(baseline);
    // The first rollout of a content type acknowledges it has no baseline.
    req.set_allow_no_baseline(baseline.empty());
    req.set_reason("e2e test");
    Rollout resp;
    grpc::Status s =
        rollouts_->StartRollout(Ctx(kPublisherToken).get(), req, &resp);
    if (out != nullptr) *out = resp;
    return s;
  }

  // `host` checks in for `content_type` (over the relay token), as an agent
  // does before it reports: it is then of the rollout's population, whose
  // hosts alone the control arm counts. Returns the assignment.
  v1::GetAssignmentResponse CheckIn(const std::string& host,
                                    const std::string& content_type) {
    v1::GetAssignmentRequest req;
    req.set_host_id(host);
    req.add_content_types(content_type);
    v1::GetAssignmentResponse resp;
    EXPECT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &resp),
                GrpcOk());
    return resp;
  }

  v1::GetRolloutResponse GetRollout(const std::string& id) {
    v1::GetRolloutRequest req;
    req.set_rollout_id(id);
    v1::GetRolloutResponse resp;
    grpc::Status s =
        rollouts_->GetRollout(Ctx(kOperatorToken).get(), req, &resp);
    EXPECT_THAT(s, GrpcOk());
    return resp;
  }

  grpc::Status Act(const std::string& action, const std::string& id,
                   const std::string& token, Rollout* out = nullptr) {
    v1::RolloutActionRequest req;
    req.set_rollout_id(id);
    req.set_reason(absl::StrCat(action, " from the e2e test"));
    Rollout resp;
    auto ctx = Ctx(token);
    grpc::Status s;
    if (action == "pause") {
      s = rollouts_->PauseRollout(ctx.get(), req, &resp);
    } else if (action == "resume") {
      s = rollouts_->ResumeRollout(ctx.get(), req, &resp);
    } else if (action == "abort") {
      s = rollouts_->AbortRollout(ctx.get(), req, &resp);
    } else {
      s = rollouts_->PromoteRollout(ctx.get(), req, &resp);
    }
    if (out != nullptr) *out = resp;
    return s;
  }

  // Makes `release` its content type's proven baseline the way a release
  // every host already runs does: a rollout promoted to completion by an
  // operator (each promotion audited and checked against the halt rules).
  void AdoptBaseline(const std::string& release, const Plan& plan) {
    ASSERT_THAT(StartRollout(release + "-adopted", release, plan), GrpcOk());
    for (int i = 0; i <= plan.stages_size(); ++i) {
      Rollout r;
      ASSERT_THAT(Act("promote", release + "-adopted", kOperatorToken, &r),
                  GrpcOk());
      if (r.state() == config::v1::COMPLETED) return;
    }
    FAIL() << "rollout of " << release << " did not complete";
  }

  // Polls until the rollout is in `state`; false after `timeout`.
  bool WaitForState(const std::string& id, RolloutState state,
                    absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (GetRollout(id).rollout().state() == state) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // Polls `condition` every 20ms; false after `timeout`.
  static bool Eventually(const std::function<bool()>& condition,
                         absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (condition()) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return condition();
  }

  FleetOptions Fleet(const std::string& content_type) const {
    FleetOptions o;
    o.target = target();
    o.token = kRelayToken;
    o.content_type = content_type;
    o.hosts = 30;
    o.dogfood_hosts = 5;
    return o;
  }

  std::string ringfenced_, ringctl_, dir_;
  // How the fixture's channel and ringctl connect (default: plaintext).
  std::optional<ClientTls> client_tls_;
  // Whether StartServer passes the tokens file (default: yes).
  bool with_tokens_ = true;
  std::vector<std::string> ctl_flags_;
  // Flags every StartServer passes (set them before E2ETest::SetUp).
  std::vector<std::string> server_flags_;
  int starts_ = 0;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Releases::Stub> releases_;
  std::unique_ptr<v1::Rollouts::Stub> rollouts_;
  std::unique_ptr<v1::Fleet::Stub> fleet_;
};

}  // namespace ringfence::e2e
