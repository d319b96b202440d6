// End-to-end tests of the agent core (ringfence/agent.h) against the real
// ringfenced over gRPC (GrpcAgentTransport): 20 hosts, each an Agent on its
// own crash-simulating file system (MemoryFileSystem), stepped on the real
// clock. A release whose load kills the host is halted by the gate in its
// first stage, and the hosts it reached fall back on their own.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "e2e_fixture.h"
#include "ringfence/agent.h"
#include "ringfence/agent_fs.h"
#include "ringfence/audit.h"
#include "service/agent_transport.h"

namespace ringfence::e2e {
namespace {

constexpr char kContentType[] = "channel-file/400";

// The content of one host: loads what the agent verified; `kills` loads
// crash the host (its file system fails every call until it reboots).
class HostContent final : public ContentHooks {
 public:
  HostContent(MemoryFileSystem* fs,
              const std::map<std::string, std::string>* payloads)
      : fs_(fs), payloads_(payloads) {}

  absl::StatusOr<std::string> Fetch(const Release& release) override {
    auto it = payloads_->find(release.id());
    if (it == payloads_->end()) return absl::NotFoundError(release.id());
    return it->second;
  }
  absl::Status Load(const Release& release, const std::string&) override {
    loads.push_back(release.id());
    if (release.id() == kills) {
      fs_->CrashNow();
      running.clear();
      return absl::UnavailableError("the host crashed");
    }
    running = release.id();
    return absl::OkStatus();
  }
  absl::Status Unload() override {
    running.clear();
    return absl::OkStatus();
  }
  int Loads(const std::string& id) const {
    return static_cast<int>(std::count(loads.begin(), loads.end(), id));
  }

  std::string kills;
  std::string running;
  std::vector<std::string> loads;

 private:
  MemoryFileSystem* fs_;
  const std::map<std::string, std::string>* payloads_;
};

// A transport that dies with its host.
class HostTransport final : public AgentTransport {
 public:
  HostTransport(AgentTransport* wire, const MemoryFileSystem* fs)
      : wire_(wire), fs_(fs) {}
  absl::StatusOr<AssignmentAnswer> GetAssignment(
      const AgentIdentity& identity, uint64_t telemetry_pending) override {
    if (fs_->crashed()) return absl::UnavailableError("dead");
    return wire_->GetAssignment(identity, telemetry_pending);
  }
  absl::Status ReportTelemetry(absl::Span<const SpooledEvent> batch,
                               absl::Duration* retry_after) override {
    if (fs_->crashed()) return absl::UnavailableError("dead");
    absl::Status s = wire_->ReportTelemetry(batch, retry_after);
    if (s.ok()) {
      for (const SpooledEvent& e : batch) {
        if (e.event.type == EventType::kSignal) {
          accepted_signals.push_back(e.event.signal);
        }
      }
    }
    return s;
  }

  // The signal events the server accepted from this host.
  std::vector<std::string> accepted_signals;

 private:
  AgentTransport* wire_;
  const MemoryFileSystem* fs_;
};

struct Host {
  Host(int i, AgentTransport* wire,
       const std::map<std::string, std::string>* payloads)
      : fs(static_cast<uint64_t>(i + 1)),
        content(&fs, payloads),
        transport(wire, &fs) {}
  MemoryFileSystem fs;
  HostContent content;
  HostTransport transport;
  AgentOptions options;
  std::unique_ptr<Agent> agent;
  int boots = 0;
  absl::Time reboot_at = absl::InfiniteFuture();
};

class E2EAgentTest : public E2ETest {
 protected:
  // Creates release `id` whose payload is `payload` (digest and size).
  void CreatePayloadRelease(const std::string& id, const std::string& payload) {
    payloads_[id] = payload;
    v1::CreateReleaseRequest req;
    Release* r = req.mutable_release();
    r->set_id(id);
    r->set_content_type(kContentType);
    r->set_version(id);
    r->set_digest_sha256(Sha256Hex(payload));
    r->set_size_bytes(payload.size());
    r->set_fetch_url("https://updates.example/" + id);
    Release resp;
    ASSERT_THAT(
        releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp),
        GrpcOk());
  }

  void StartHosts(int n, int dogfood) {
    wire_ = std::make_unique<GrpcAgentTransport>(
        MakeChannel(absl::StrCat("127.0.0.1:", port_), std::nullopt),
        kRelayToken);
    for (int i = 0; i < n; ++i) {
      auto h = std::make_unique<Host>(i, wire_.get(), &payloads_);
      h->options.identity.host_id = absl::StrCat("agent-", i);
      h->options.identity.content_type = kContentType;
      h->options.identity.agent_version = "7.11.0";
      if (i < dogfood) h->options.identity.labels = {"ring:dogfood"};
      h->options.state_dir = "/agent";
      h->options.require_signature = false;
      h->options.poll_interval = absl::Milliseconds(300);
      h->options.heartbeat_interval = absl::Milliseconds(300);
      h->options.send_backoff_initial = absl::Milliseconds(100);
      h->options.send_backoff_max = absl::Seconds(1);
      h->options.seed = static_cast<uint64_t>(i);
      Boot(*h);
      hosts_.push_back(std::move(h));
    }
  }

  void Boot(Host& h) {
    h.fs.Reboot();
    h.content.running.clear();
    ++h.boots;
    h.reboot_at = absl::InfiniteFuture();
    absl::StatusOr<std::unique_ptr<Agent>> a =
        Agent::Start(h.options, &h.fs, &RealClock(), &h.transport, &h.content);
    ASSERT_TRUE(a.ok()) << a.status();
    h.agent = *std::move(a);
    if (h.fs.crashed()) h.reboot_at = absl::Now() + absl::Milliseconds(300);
  }

  // Steps every host (ticks, crashed hosts reboot after 300 ms) until
  // `done` or `timeout`.
  bool RunUntil(const std::function<bool()>& done, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      for (auto& h : hosts_) {
        if (h->fs.crashed()) {
          if (absl::Now() >= h->reboot_at) Boot(*h);
          continue;
        }
        if (absl::Now() >= h->agent->NextWakeup()) {
          h->agent->Tick().IgnoreError();  // also in GetStatus()
          if (h->fs.crashed()) {
            h->reboot_at = absl::Now() + absl::Milliseconds(300);
          }
        }
      }
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(20));
    }
    return false;
  }

  int Running(const std::string& id) const {
    int n = 0;
    for (const auto& h : hosts_) n += h->content.running == id;
    return n;
  }

  // Creates release `id` of `content_type` whose payload is a file in the
  // test's directory (a file:// fetch URL).
  grpc::Status CreateFileRelease(const std::string& id,
                                 const std::string& content_type,
                                 const std::string& payload) {
    const std::string path = dir_ + "/" + id + ".payload";
    WriteFile(path, payload);
    v1::CreateReleaseRequest req;
    Release* r = req.mutable_release();
    r->set_id(id);
    r->set_content_type(content_type);
    r->set_version(id);
    r->set_digest_sha256(Sha256Hex(payload));
    r->set_size_bytes(payload.size());
    r->set_fetch_url("file://" + path);
    Release resp;
    return releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp);
  }

  // A binary next to ringfenced.
  std::string Binary(const std::string& name) const {
    return (std::filesystem::path(ringfenced_).parent_path() / name).string();
  }

  // One real ringfence-agent process and its state directory.
  // An agent that polls once a minute sleeps between polls, yet a report
  // queued by `ringfence-agent report` is in its spool and sent at once: the
  // loop wakes up when the inbox changes (inotify), not once a second.
  // Without inotify (`inotify` false: a preloaded shim makes it fail) it
  // looks at the inbox every second instead, and says so.
  void IdleAgentSendsAQueuedReport(bool inotify) {
    const std::string agent_bin = Binary("ringfence-agent");
    ASSERT_EQ(access(agent_bin.c_str(), X_OK), 0) << agent_bin;
    ASSERT_THAT(CreateFileRelease("cf405-good", "channel-file/405",
                                  "good channel file, 20 fields"),
                GrpcOk());
    AdoptBaseline("cf405-good", ParsePlan(kBootLoopPlan));
    WriteFile(dir_ + "/relay-token", std::string(kRelayToken) + "\n");
    AgentProc pr;
    pr.state = dir_ + "/idle-agent";
    pr.argv = {agent_bin,
               "run",
               "--server=127.0.0.1:" + std::to_string(port_),
               "--token-file=" + dir_ + "/relay-token",
               "--host-id=idle-1",
               "--content-type=channel-file/405",
               "--state-dir=" + pr.state,
               "--allow-unsigned",
               "--poll-interval=60",
               "--heartbeat-interval=60",
               "--load-command=echo \"$2\" > \"$(dirname \"$1\")/../running\""};
    if (!inotify) {
      const char* asan = std::getenv("ASAN_OPTIONS");
      pr.argv.insert(
          pr.argv.begin(),
          {"/usr/bin/env", "LD_PRELOAD=" RINGFENCE_NO_INOTIFY_PRELOAD,
           // (In a sanitizer build the shim comes before the ASan runtime.)
           absl::StrCat("ASAN_OPTIONS=", asan != nullptr ? asan : "",
                        ":verify_asan_link_order=0")});
    }
    BootProc(pr);
    auto status = [&] { return ReadFile(pr.state + "/status"); };
    auto idle = [&] {
      return absl::StripAsciiWhitespace(ReadFile(pr.state + "/running")) ==
                 "cf405-good" &&
             absl::StrContains(status(), "spool_pending 0\n");
    };
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!idle() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_TRUE(idle()) << status();
    // The spool's acknowledged sequence number.
    std::unique_ptr<AgentFileSystem> posix = NewPosixFileSystem();
    auto acked = [&] {
      absl::StatusOr<SpoolCursor> cursor =
          EventSpool::ReadCursor(posix.get(), pr.state + "/spool");
      EXPECT_TRUE(cursor.ok()) << cursor.status();
      return cursor.ok() ? cursor->acked : 0;
    };
    const uint64_t acked_before = acked();
    const CommandResult r =
        RunCommand({agent_bin, "report", "--state-dir=" + pr.state,
                    "--signal=idle_marker"},
                   {}, absl::Seconds(10));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Taken from the inbox, sent and acknowledged well before the next poll
    // or heartbeat (a minute after the boot).
    auto sent = [&] {
      return std::filesystem::is_empty(pr.state + "/inbox") &&
             acked() > acked_before;
    };
    const absl::Time sent_by = absl::Now() + absl::Seconds(5);
    while (!sent() && absl::Now() < sent_by) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    EXPECT_TRUE(sent()) << status();
    EXPECT_TRUE(pr.p->running());
    EXPECT_EQ(absl::StrContains(ReadFile(pr.state + "-boot-1.log"),
                                "inotify unavailable"),
              !inotify);
  }

  struct AgentProc {
    std::string state;
    std::vector<std::string> argv;
    std::unique_ptr<ChildProcess> p;
    int boots = 0;
    absl::Time restart_at = absl::InfiniteFuture();
  };

  static void BootProc(AgentProc& pr) {
    ++pr.boots;
    pr.p = std::make_unique<ChildProcess>(
        pr.argv, absl::StrCat(pr.state, "-boot-", pr.boots, ".log"));
    pr.restart_at = absl::InfiniteFuture();
  }

  // Restarts agents 300 ms after they died (a reboot) until `done` or
  // `timeout`.
  static bool StepProcs(std::vector<AgentProc>& procs,
                        const std::function<bool()>& done,
                        absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      for (AgentProc& pr : procs) {
        if (pr.p->running()) continue;
        if (pr.restart_at == absl::InfiniteFuture()) {
          pr.restart_at = absl::Now() + absl::Milliseconds(300);
        } else if (absl::Now() >= pr.restart_at) {
          BootProc(pr);
        }
      }
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return false;
  }

  // How many agents' load commands last loaded `id` (their `running` file).
  static int ProcsRunning(const std::vector<AgentProc>& procs,
                          const std::string& id) {
    int n = 0;
    for (const AgentProc& pr : procs) {
      n += absl::StripAsciiWhitespace(ReadFile(pr.state + "/running")) == id;
    }
    return n;
  }

  std::map<std::string, std::string> payloads_;
  std::unique_ptr<GrpcAgentTransport> wire_;
  std::vector<std::unique_ptr<Host>> hosts_;
};

TEST_F(E2EAgentTest, BootLoopIsHaltedInDogfoodAndItsHostsFallBackOnTheirOwn) {
  CreatePayloadRelease("cf400-good", "good channel file, 20 fields");
  CreatePayloadRelease("cf400-bad", "bad channel file, reads field 21");
  AdoptBaseline("cf400-good", ParsePlan(kBootLoopPlan));
  constexpr int kHosts = 20, kDogfood = 5;
  StartHosts(kHosts, kDogfood);
  // Every host comes up on the proven release (the gate's control).
  ASSERT_TRUE(RunUntil([&] { return Running("cf400-good") == kHosts; },
                       absl::Seconds(30)))
      << Running("cf400-good") << " hosts run cf400-good";
  for (auto& h : hosts_) h->content.kills = "cf400-bad";

  ASSERT_THAT(StartRollout("bad-400", "cf400-bad", ParsePlan(kBootLoopPlan),
                           nullptr, "cf400-good"),
              GrpcOk());
  EXPECT_TRUE(RunUntil(
      [&] { return GetRollout("bad-400").rollout().state() == cfg::HALTED; },
      absl::Seconds(60)))
      << GetRollout("bad-400").DebugString();
  const v1::GetRolloutResponse halted = GetRollout("bad-400");
  EXPECT_EQ(halted.rollout().stage(), 0u);

  // Every host ends on the good release: the dogfood hosts by their own
  // boot-loop guard (the server reverts them too), the others never
  // touched the bad one.
  EXPECT_TRUE(RunUntil([&] { return Running("cf400-good") == kHosts; },
                       absl::Seconds(30)))
      << Running("cf400-good") << " hosts run cf400-good";
  int hurt = 0;
  for (int i = 0; i < kHosts; ++i) {
    const Host& h = *hosts_[i];
    const int bad_loads = h.content.Loads("cf400-bad");
    if (i >= kDogfood) {
      EXPECT_EQ(bad_loads, 0) << h.options.identity.host_id;
    } else {
      EXPECT_LE(bad_loads, h.options.boot_loop_limit)
          << h.options.identity.host_id;
    }
    hurt += bad_loads > 0;
  }
  EXPECT_GT(hurt, 0);
  EXPECT_LE(hurt, kDogfood);

  // The hosts that looped to their limit fell back locally and, once up
  // again, told the server (local_fallback, accepted).
  int fell_back = 0;
  for (int i = 0; i < kDogfood; ++i) {
    Host& h = *hosts_[i];
    if (h.content.Loads("cf400-bad") < h.options.boot_loop_limit) continue;
    ++fell_back;
    EXPECT_TRUE(RunUntil(
        [&] {
          return std::count(h.transport.accepted_signals.begin(),
                            h.transport.accepted_signals.end(),
                            "local_fallback") > 0;
        },
        absl::Seconds(30)))
        << h.options.identity.host_id;
  }
  std::cerr << "halted by " << halted.rollout().reason() << "; " << hurt
            << " hosts loaded the bad release, " << fell_back
            << " fell back on their own\n";
}

// The gate-failed drill: a boot-looping release pushed to every host at once
// (one 100 % stage, no pacing, a long bake): by the time the gate can act,
// every host has it. Every host recovers on its own: it loads
// the release at most boot_loop_limit times, then runs the last known good
// release again, without the server's help.
TEST_F(E2EAgentTest, GateFailedDrillEveryHostRecoversWithinItsBootLimit) {
  CreatePayloadRelease("cf401-good", "good channel file, 20 fields");
  CreatePayloadRelease("cf401-bad", "bad channel file, reads field 21");
  constexpr char kEveryoneAtOnce[] = R"pb(
    name: "everyone-at-once"
    stages {
      name: "everyone"
      audience { percent: 100 }
      pacing { initial_hosts: 1000000 }
      bake_time { seconds: 3600 }
    }
  )pb";
  AdoptBaseline("cf401-good", ParsePlan(kEveryoneAtOnce));
  constexpr int kHosts = 20;
  StartHosts(kHosts, /*dogfood=*/0);
  ASSERT_TRUE(RunUntil([&] { return Running("cf401-good") == kHosts; },
                       absl::Seconds(30)));
  for (auto& h : hosts_) h->content.kills = "cf401-bad";
  const absl::Time pushed = absl::Now();
  ASSERT_THAT(StartRollout("push-401", "cf401-bad", ParsePlan(kEveryoneAtOnce),
                           nullptr, "cf401-good"),
              GrpcOk());
  // Every host gets it (the stage is open to all at once) ...
  EXPECT_TRUE(RunUntil(
      [&] {
        for (const auto& h : hosts_) {
          if (h->content.Loads("cf401-bad") == 0) return false;
        }
        return true;
      },
      absl::Seconds(30)));
  // ... and every one is back on the good release on its own. (The gate
  // halts too, as its rules cannot be switched off; the hosts do not wait
  // for it: their boot-loop guard acts at the boot limit.)
  EXPECT_TRUE(RunUntil([&] { return Running("cf401-good") == kHosts; },
                       absl::Seconds(60)))
      << Running("cf401-good") << " of " << kHosts << " recovered";
  const absl::Duration took = absl::Now() - pushed;
  int max_loads = 0, max_boots = 0;
  for (const auto& h : hosts_) {
    max_loads = std::max(max_loads, h->content.Loads("cf401-bad"));
    max_boots = std::max(max_boots, h->boots);
    EXPECT_LE(h->content.Loads("cf401-bad"), h->options.boot_loop_limit);
  }
  std::cerr << "gate-failed drill: " << kHosts << " hosts recovered within "
            << max_loads << " loads of the bad release (" << max_boots - 1
            << " reboots at most, 300 ms apart), " << absl::FormatDuration(took)
            << " after the push\n";
}

// Real ringfence-agent processes (the daemon, its spool and state on disk),
// 20 of them: the load command of the bad release kills its agent
// (SIGKILL, mid-load), the test restarts it 300 ms later (a boot). The
// gate halts in dogfood; the dogfood agents fall back on their own.
TEST_F(E2EAgentTest, AgentProcessesHaltABootLoopAndRecover) {
  const std::string agent_bin = Binary("ringfence-agent");
  ASSERT_EQ(access(agent_bin.c_str(), X_OK), 0) << agent_bin;
  ASSERT_THAT(CreateFileRelease("cf402-good", "channel-file/402",
                                "good channel file, 20 fields"),
              GrpcOk());
  ASSERT_THAT(CreateFileRelease("cf402-bad", "channel-file/402",
                                "bad channel file, reads field 21"),
              GrpcOk());
  AdoptBaseline("cf402-good", ParsePlan(kBootLoopPlan));
  WriteFile(dir_ + "/relay-token", std::string(kRelayToken) + "\n");
  // Loads record what runs; the bad release kills the agent mid-load.
  const std::string load =
      "d=\"$(dirname \"$1\")/..\"; echo \"$2\" >> \"$d/loads\"; "
      "if [ \"$2\" = cf402-bad ]; then kill -9 $PPID; sleep 5; exit 1; fi; "
      "echo \"$2\" > \"$d/running\"";
  constexpr int kHosts = 20, kDogfood = 5;
  std::vector<AgentProc> procs(kHosts);
  for (int i = 0; i < kHosts; ++i) {
    AgentProc& pr = procs[i];
    pr.state = absl::StrCat(dir_, "/agent-", i);
    pr.argv = {agent_bin,
               "run",
               "--server=127.0.0.1:" + std::to_string(port_),
               "--token-file=" + dir_ + "/relay-token",
               absl::StrCat("--host-id=proc-", i),
               "--content-type=channel-file/402",
               "--state-dir=" + pr.state,
               "--allow-unsigned",
               "--poll-interval=0.3",
               "--heartbeat-interval=0.3",
               "--load-command=" + load};
    if (i < kDogfood) pr.argv.push_back("--label=ring:dogfood");
  }
  for (AgentProc& pr : procs) BootProc(pr);
  auto running = [&](const std::string& id) { return ProcsRunning(procs, id); };
  auto step_until = [&](const std::function<bool()>& done,
                        absl::Duration timeout) {
    return StepProcs(procs, done, timeout);
  };
  ASSERT_TRUE(step_until([&] { return running("cf402-good") == kHosts; },
                         absl::Seconds(60)))
      << running("cf402-good") << " agents run cf402-good";

  ASSERT_THAT(StartRollout("bad-402", "cf402-bad", ParsePlan(kBootLoopPlan),
                           nullptr, "cf402-good"),
              GrpcOk());
  EXPECT_TRUE(step_until(
      [&] { return GetRollout("bad-402").rollout().state() == cfg::HALTED; },
      absl::Seconds(60)))
      << GetRollout("bad-402").DebugString();
  EXPECT_EQ(GetRollout("bad-402").rollout().stage(), 0u);
  EXPECT_TRUE(step_until([&] { return running("cf402-good") == kHosts; },
                         absl::Seconds(60)))
      << running("cf402-good") << " agents run cf402-good";
  int hurt = 0;
  for (int i = 0; i < kHosts; ++i) {
    const std::string loads = ReadFile(procs[i].state + "/loads");
    int bad = 0;
    for (absl::string_view line : absl::StrSplit(loads, '\n')) {
      bad += line == "cf402-bad";
    }
    if (i >= kDogfood) {
      EXPECT_EQ(bad, 0) << "proc-" << i;
    } else {
      EXPECT_LE(bad, 3) << "proc-" << i;  // the boot-loop limit
    }
    hurt += bad > 0;
  }
  EXPECT_GT(hurt, 0);
  EXPECT_LE(hurt, kDogfood);
  std::cerr << hurt << " agents loaded the bad release; halted by "
            << GetRollout("bad-402").rollout().reason() << "\n";
  // `ringfence-agent status` says what a dogfood agent runs.
  CommandResult st;
  EXPECT_TRUE(step_until(
      [&] {
        st = RunCommand({agent_bin, "status", "--state-dir=" + procs[0].state});
        return st.exit_code == 0 &&
               absl::StrContains(st.out, "running cf402-good");
      },
      absl::Seconds(10)))
      << st.exit_code << " " << st.out << st.err;
  // SIGTERM stops an agent with exit 0.
  procs[kHosts - 1].p->Signal(SIGTERM);
  EXPECT_EQ(procs[kHosts - 1].p->Wait(absl::Seconds(10)), 0);
}

// Real ringfence-agent processes on the HTTP transport (--server=http://):
// five under the relay token and one under h7's own host token all take
// the baseline and then a good release the gate completes. An agent
// claiming to be h8 with h7's token is refused (PERMISSION_DENIED) and
// runs nothing.
TEST_F(E2EAgentTest, AgentProcessesOverHttpApplyAGoodRelease) {
  const std::string agent_bin = Binary("ringfence-agent");
  ASSERT_EQ(access(agent_bin.c_str(), X_OK), 0) << agent_bin;
  StartServerWithHttp();
  constexpr char kType[] = "channel-file/405";
  ASSERT_THAT(CreateFileRelease("cf405-base", kType, "channel file 1"),
              GrpcOk());
  ASSERT_THAT(CreateFileRelease("cf405-good", kType, "channel file 2"),
              GrpcOk());
  AdoptBaseline("cf405-base", ParsePlan(kGoodPlan));
  WriteFile(dir_ + "/relay-token", std::string(kRelayToken) + "\n");
  WriteFile(dir_ + "/h7-token", std::string(kHost7Token) + "\n");
  const std::string server = absl::StrCat("http://127.0.0.1:", HttpPort());
  const std::string load = "echo \"$2\" > \"$(dirname \"$1\")/../running\"";
  auto agent = [&](const std::string& host, const std::string& token_file,
                   bool dogfood) {
    AgentProc pr;
    pr.state = absl::StrCat(dir_, "/agent-", host);
    pr.argv = {agent_bin,
               "run",
               "--server=" + server,
               "--token-file=" + token_file,
               "--host-id=" + host,
               absl::StrCat("--content-type=", kType),
               "--state-dir=" + pr.state,
               "--allow-unsigned",
               "--poll-interval=0.3",
               "--heartbeat-interval=0.3",
               "--load-command=" + load};
    if (dogfood) pr.argv.push_back("--label=ring:dogfood");
    return pr;
  };
  std::vector<AgentProc> procs;
  for (int i = 0; i < 5; ++i) {
    procs.push_back(
        agent(absl::StrCat("http-", i), dir_ + "/relay-token", i < 2));
  }
  procs.push_back(agent("h7", dir_ + "/h7-token", false));
  const int hosts = static_cast<int>(procs.size());
  std::vector<AgentProc> impostor;
  impostor.push_back(agent("h8", dir_ + "/h7-token", true));
  for (AgentProc& pr : procs) BootProc(pr);
  BootProc(impostor[0]);
  ASSERT_TRUE(StepProcs(
      procs, [&] { return ProcsRunning(procs, "cf405-base") == hosts; },
      absl::Seconds(60)))
      << ProcsRunning(procs, "cf405-base") << " agents run cf405-base";

  ASSERT_THAT(StartRollout("good-405", "cf405-good", ParsePlan(kGoodPlan),
                           nullptr, "cf405-base"),
              GrpcOk());
  EXPECT_TRUE(StepProcs(
      procs,
      [&] {
        return ProcsRunning(procs, "cf405-good") == hosts &&
               GetRollout("good-405").rollout().state() == cfg::COMPLETED;
      },
      absl::Seconds(90)))
      << ProcsRunning(procs, "cf405-good") << " agents run cf405-good; "
      << GetRollout("good-405").DebugString();
  EXPECT_EQ(GetRollout("good-405").telemetry().tracked_hosts(),
            static_cast<uint64_t>(hosts));

  EXPECT_TRUE(impostor[0].p->running());
  EXPECT_EQ(ReadFile(impostor[0].state + "/running"), "");
  const std::string status = ReadFile(impostor[0].state + "/status");
  EXPECT_THAT(status, AllOf(HasSubstr("last_error PERMISSION_DENIED"),
                            HasSubstr("running -")));
  // SIGTERM stops an agent with exit 0.
  procs[0].p->Signal(SIGTERM);
  EXPECT_EQ(procs[0].p->Wait(absl::Seconds(10)), 0);
}

// Real ringfence-agents over https://: the server's certificate checked
// against --tls-ca under --tls-server-name, the release applied, by an
// agent with a token and by one whose client certificate names its host
// (the listener under mutual TLS). TLS flags with http:// are refused
// (exit 2).
TEST_F(E2EAgentTest, AnAgentOverHttpsAppliesARelease) {
  const std::string agent_bin = Binary("ringfence-agent");
  ASSERT_EQ(access(agent_bin.c_str(), X_OK), 0) << agent_bin;
  const TestCertFiles* certs = TestCerts();
  ASSERT_NE(certs, nullptr) << "could not generate certificates";
  absl::StatusOr<std::optional<ClientTls>> tls =
      LoadClientTls(certs->ca, "", "");
  ASSERT_TRUE(tls.ok()) << tls.status();
  client_tls_ = *tls;
  server_flags_ = {
      "--http_listen=127.0.0.1:0", "--http_port_file=" + dir_ + "/http_port",
      "--tls_cert=" + certs->server_cert, "--tls_key=" + certs->server_key,
      "--client_ca=" + certs->client_ca};
  // (gRPC clients need a certificate now: one naming no principal, so that
  // the test's token decides.)
  tls = LoadClientTls(certs->ca, certs->client_cert, certs->client_key);
  ASSERT_TRUE(tls.ok()) << tls.status();
  client_tls_ = *tls;
  StartServer();
  constexpr char kType[] = "channel-file/406";
  ASSERT_THAT(CreateFileRelease("cf406-base", kType, "channel file 1"),
              GrpcOk());
  AdoptBaseline("cf406-base", ParsePlan(kGoodPlan));
  WriteFile(dir_ + "/h7-token", std::string(kHost7Token) + "\n");
  const std::string port = std::to_string(HttpPort());
  std::vector<AgentProc> procs(1);
  AgentProc& pr = procs[0];
  pr.state = dir_ + "/agent-h7";
  std::vector<std::string> common = {
      agent_bin,
      "run",
      "--host-id=h7",
      absl::StrCat("--content-type=", kType),
      "--allow-unsigned",
      "--poll-interval=0.3",
      "--heartbeat-interval=0.3",
      "--load-command=echo \"$2\" > \"$(dirname \"$1\")/../running\""};
  pr.argv = common;
  pr.argv.insert(
      pr.argv.end(),
      {"--state-dir=" + pr.state, "--token-file=" + dir_ + "/h7-token",
       "--server=https://127.0.0.1:" + port, "--tls-ca=" + certs->ca,
       "--tls-server-name=localhost"});
  BootProc(pr);
  EXPECT_TRUE(StepProcs(
      procs, [&] { return ProcsRunning(procs, "cf406-base") == 1; },
      absl::Seconds(60)))
      << ReadFile(pr.state + "/status");
  pr.p->Signal(SIGTERM);
  EXPECT_EQ(pr.p->Wait(absl::Seconds(10)), 0);

  // The same host by its certificate alone (no token).
  std::vector<AgentProc> by_cert(1);
  by_cert[0].state = dir_ + "/agent-h7-cert";
  by_cert[0].argv = common;
  by_cert[0].argv.insert(
      by_cert[0].argv.end(),
      {"--state-dir=" + by_cert[0].state, "--server=https://127.0.0.1:" + port,
       "--tls-ca=" + certs->ca, "--tls-server-name=localhost",
       "--tls-cert=" + certs->host_cert, "--tls-key=" + certs->host_key});
  BootProc(by_cert[0]);
  EXPECT_TRUE(StepProcs(
      by_cert, [&] { return ProcsRunning(by_cert, "cf406-base") == 1; },
      absl::Seconds(60)))
      << ReadFile(by_cert[0].state + "/status");

  common.push_back("--token-file=" + dir_ + "/h7-token");
  std::vector<std::string> plain_with_ca = common;
  plain_with_ca.insert(
      plain_with_ca.end(),
      {"--state-dir=" + dir_ + "/agent-refused",
       "--server=http://127.0.0.1:" + port, "--tls-ca=" + certs->ca});
  CommandResult r = RunCommand(plain_with_ca, {}, absl::Seconds(10));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("use https://"));
}

// The server is down for 30 s (SIGKILL, restarted on the same port and data
// directory) while 20 real agents, configured by --config files, keep
// running: reports queued during the outage by `ringfence-agent report`
// (every agent, three times), crash reports and unclean reboots of agents
// killed during the outage all reach the gate once the server is back:
// none lost, none counted twice, nothing dropped from a spool.
TEST_F(E2EAgentTest, ServerDownThirtySecondsLosesNoEvent) {
  const std::string agent_bin = Binary("ringfence-agent");
  ASSERT_EQ(access(agent_bin.c_str(), X_OK), 0) << agent_bin;
  constexpr char kType[] = "channel-file/404";
  ASSERT_THAT(CreateFileRelease("cf404-base", kType, "channel file 1"),
              GrpcOk());
  ASSERT_THAT(CreateFileRelease("cf404-next", kType, "channel file 2"),
              GrpcOk());
  AdoptBaseline("cf404-base", ParsePlan(kLivePlan));
  WriteFile(dir_ + "/relay-token", std::string(kRelayToken) + "\n");
  const std::string load = "echo \"$2\" > \"$(dirname \"$1\")/../running\"";
  constexpr int kHosts = 20, kDogfood = 5, kReportsPerHost = 3;
  std::vector<AgentProc> procs(kHosts);
  for (int i = 0; i < kHosts; ++i) {
    AgentProc& pr = procs[i];
    pr.state = absl::StrCat(dir_, "/agent-", i);
    const std::string config = absl::StrCat(dir_, "/agent-", i, ".textproto");
    WriteFile(config,
              absl::StrCat("server: \"127.0.0.1:", port_, "\"\n",
                           "token_file: \"", dir_, "/relay-token\"\n",
                           "host_id: \"out-", i, "\"\n", "content_type: \"",
                           kType, "\"\n", "state_dir: \"", pr.state, "\"\n",
                           i < kDogfood ? "labels: \"ring:dogfood\"\n" : "",
                           "allow_unsigned: true\n", "poll_interval_s: 0.3\n",
                           "heartbeat_interval_s: 0.3\n"));
    // The load command is a flag: flags and the file combine.
    pr.argv = {agent_bin, "run", "--config=" + config,
               "--load-command=" + load};
    BootProc(pr);
  }
  ASSERT_TRUE(StepProcs(
      procs, [&] { return ProcsRunning(procs, "cf404-base") == kHosts; },
      absl::Seconds(60)))
      << ProcsRunning(procs, "cf404-base") << " agents run cf404-base";
  ASSERT_THAT(StartRollout("next-404", "cf404-next", ParsePlan(kLivePlan),
                           nullptr, "cf404-base"),
              GrpcOk());
  ASSERT_TRUE(StepProcs(
      procs,
      [&] {
        return ProcsRunning(procs, "cf404-next") == kDogfood &&
               GetRollout("next-404").telemetry().tracked_hosts() == kHosts;
      },
      absl::Seconds(60)))
      << GetRollout("next-404").DebugString();

  const int port = port_;
  server_->Signal(SIGKILL);
  server_->Wait(absl::Seconds(10));
  const absl::Time down_at = absl::Now();
  auto report = [&](int i, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {agent_bin, "report",
                                     "--state-dir=" + procs[i].state};
    argv.insert(argv.end(), args.begin(), args.end());
    const CommandResult r = RunCommand(argv, {}, absl::Seconds(10));
    EXPECT_EQ(r.exit_code, 0) << r.err;
  };
  // During the outage: three markers per agent, ten seconds apart; a crash
  // report on a dogfood and a control agent; a dogfood and a control agent
  // killed (they come back 300 ms later, as after a reboot).
  for (int round = 0; round < kReportsPerHost; ++round) {
    for (int i = 0; i < kHosts; ++i) report(i, {"--signal=outage_marker"});
    if (round == 1) {
      report(1, {"--crash", "--signature=segv in parse_field+0x21"});
      report(11, {"--crash"});
      procs[0].p->Signal(SIGKILL);
      procs[10].p->Signal(SIGKILL);
    }
    StepProcs(
        procs, [] { return false; },
        down_at + absl::Seconds(10 * (round + 1)) - absl::Now());
  }
  EXPECT_EQ(procs[0].boots, 2);
  EXPECT_EQ(procs[10].boots, 2);
  StartServer({absl::StrCat("--listen=127.0.0.1:", port)});
  ASSERT_EQ(port_, port);

  auto signal = [](const v1::GetRolloutResponse& r, const std::string& name) {
    for (const auto& s : r.telemetry().signals()) {
      if (s.signal() == name) return s;
    }
    return config::v1::SignalSummary();
  };
  auto spools_empty = [&] {
    for (const AgentProc& pr : procs) {
      const std::string st = ReadFile(pr.state + "/status");
      if (!absl::StrContains(st, "spool_pending 0\n")) return false;
      if (!absl::StrContains(st, "spool_dropped 0\n")) return false;
    }
    return true;
  };
  v1::GetRolloutResponse after;
  EXPECT_TRUE(StepProcs(
      procs,
      [&] {
        after = GetRollout("next-404");
        const auto& un = after.telemetry().unwatched_signals();
        return spools_empty() && un.contains("outage_marker") &&
               un.at("outage_marker") >= kHosts * kReportsPerHost &&
               signal(after, "crash").control().affected_hosts() >= 1 &&
               signal(after, "unclean_reboot").control().affected_hosts() >= 1;
      },
      absl::Seconds(60)))
      << after.DebugString();
  // Exactly: nothing lost, nothing counted twice.
  EXPECT_EQ(after.telemetry().unwatched_signals().at("outage_marker"),
            kHosts * kReportsPerHost);
  EXPECT_EQ(signal(after, "crash").treatment().affected_hosts(), 1u);
  EXPECT_EQ(signal(after, "crash").control().affected_hosts(), 1u);
  EXPECT_EQ(signal(after, "unclean_reboot").treatment().affected_hosts(), 1u);
  EXPECT_EQ(signal(after, "unclean_reboot").control().affected_hosts(), 1u);
  std::cerr << "after the outage: " << after.rollout().state() << " "
            << after.rollout().reason() << "\n";
}

// SIGTERM while the server hangs: the agent waits for the call in flight
// (one --call-deadline) and makes no other. A server that answers every
// call for a second (200, empty body: the telemetry is taken, the poll's
// answer refused, no matter here), then accepts connections and never
// answers: the tick that finds it so polls and sends telemetry (a heartbeat
// is due each 0.3 s), each call taking a deadline if made (6 s, measured).
TEST_F(E2EAgentTest, SigtermWaitsForOneCallAtMost) {
  const std::string agent_bin = Binary("ringfence-agent");
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  ASSERT_EQ(
      bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)),
      0);
  ASSERT_EQ(listen(listener, 64), 0);
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size);
  const std::string state = dir_ + "/stalled";
  ChildProcess agent(
      {agent_bin, "run", "--host-id=h7", "--content-type=ct/stalled",
       "--allow-unsigned", "--state-dir=" + state,
       absl::StrCat("--server=http://127.0.0.1:", ntohs(address.sin_port)),
       "--call-deadline=3", "--poll-interval=0.3", "--heartbeat-interval=0.3"},
      state + ".log");
  int answered = 0;
  const absl::Time answer_until = absl::Now() + absl::Seconds(1);
  int stalled = -1;
  while (stalled < 0) {
    pollfd p = {listener, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 10000), 1) << ReadFile(state + ".log");
    const int fd = accept(listener, nullptr, nullptr);
    ASSERT_GE(fd, 0);
    if (absl::Now() >= answer_until && answered >= 4) {
      stalled = fd;  // kept open, never answered
      break;
    }
    // Read one request (headers and a Content-Length body), answer it.
    std::string in;
    char buffer[4096];
    size_t end = std::string::npos, length = 0;
    while (end == std::string::npos || in.size() < end + 4 + length) {
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      in.append(buffer, static_cast<size_t>(n));
      end = in.find("\r\n\r\n");
      const size_t at = absl::AsciiStrToLower(in).find("content-length: ");
      if (end != std::string::npos && at != std::string::npos && at < end) {
        length = std::stoul(in.substr(at + 16));
      }
    }
    const std::string ok =
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    send(fd, ok.data(), ok.size(), MSG_NOSIGNAL);
    close(fd);
    ++answered;
  }
  const absl::Time sent = absl::Now();
  agent.Signal(SIGTERM);
  EXPECT_EQ(agent.Wait(absl::Seconds(20)), 0) << ReadFile(state + ".log");
  const absl::Duration took = absl::Now() - sent;
  // One deadline (3 s) and slack; two would be 6 s.
  EXPECT_LT(took, absl::Seconds(4.5)) << ReadFile(state + ".log");
  close(stalled);
  close(listener);
}

// A config file's value out of range stops the agent before it starts:
// exit 2 and the field's name.
TEST_F(E2EAgentTest, AConfigValueOutOfRangeIsRefusedByName) {
  const std::string agent_bin = Binary("ringfence-agent");
  const std::pair<std::string, std::string> bad[] = {
      {"call_deadline_s: 0", "call_deadline_s: must be in [0.1, 300]"},
      {"call_deadline_s: 301", "call_deadline_s: must be in [0.1, 300]"},
      {"poll_interval_s: 0", "poll_interval_s: must be in [0.05, 86400]"},
      {"heartbeat_interval_s: -1", "heartbeat_interval_s: must be in"},
      {"boot_loop_limit: 0", "boot_loop_limit: must be in [1, 100]"},
  };
  for (const auto& [line, error] : bad) {
    SCOPED_TRACE(line);
    const std::string config = dir_ + "/bad.textproto";
    WriteFile(config, absl::StrCat("host_id: \"h7\"\ncontent_type: \"ct/x\"\n",
                                   "state_dir: \"", dir_, "/bad-state\"\n",
                                   line, "\n"));
    CommandResult r = RunCommand({agent_bin, "run", "--config=" + config}, {},
                                 absl::Seconds(10));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr(error));
  }
}

TEST_F(E2EAgentTest, AnIdleAgentSendsAQueuedReportAtOnce) {
  IdleAgentSendsAQueuedReport(/*inotify=*/true);
}

TEST_F(E2EAgentTest, WithoutInotifyAnAgentLooksAtItsInboxEverySecond) {
  IdleAgentSendsAQueuedReport(/*inotify=*/false);
}

// The same agent from C (ringfence/agent_c.h): a C program starts it
// against the server, it loads the assigned release through the C hooks.
TEST_F(E2EAgentTest, TheCApiRunsTheAgent) {
  const std::string smoke = Binary("agent_c_smoke");
  ASSERT_EQ(access(smoke.c_str(), X_OK), 0) << smoke;
  ASSERT_THAT(CreateFileRelease("cf403-good", "channel-file/403",
                                "good channel file, 20 fields"),
              GrpcOk());
  AdoptBaseline("cf403-good", ParsePlan(kBootLoopPlan));
  const std::string state = dir_ + "/c-agent";
  const CommandResult c =
      RunCommand({smoke, "127.0.0.1:" + std::to_string(port_), kRelayToken,
                  "c-host-1", "channel-file/403", state, "3"},
                 {}, absl::Seconds(30));
  EXPECT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(absl::StripAsciiWhitespace(ReadFile(state + "/running")),
            "cf403-good");
  EXPECT_THAT(c.out, HasSubstr("running cf403-good"));
  EXPECT_THAT(c.out, HasSubstr("last_good cf403-good"));
}

}  // namespace
}  // namespace ringfence::e2e
