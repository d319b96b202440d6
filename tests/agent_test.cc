// Tests of the host agent's core (agent.h): the apply protocol, assignment
// polling, the telemetry path, the boot-loop guard, and crashes at every
// durable step, with a FakeClock, the crash-simulating MemoryFileSystem, a
// fake server and fake content hooks. Hours of simulated time run in
// milliseconds.
#include "ringfence/agent.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/clock.h"
#include "ringfence/signing.h"
#include "ringfence/status_macros.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Not;

constexpr char kStateDir[] = "/var/lib/agent";
constexpr char kContentType[] = "channel-file/291";
constexpr char kHost[] = "host-1";

const KeyPair& Publisher() {
  static const KeyPair* keys = new KeyPair(*GenerateKeyPair());
  return *keys;
}
const KeyPair& Stranger() {
  static const KeyPair* keys = new KeyPair(*GenerateKeyPair());
  return *keys;
}

std::string PayloadOf(const std::string& id) {
  return absl::StrCat("channel file for ", id, "\n");
}

Release MakeRelease(const std::string& id, const KeyPair* signer = &Publisher(),
                    const std::string& payload = "") {
  Release r;
  r.set_id(id);
  r.set_content_type(kContentType);
  r.set_version(absl::StrCat("v-", id));
  const PayloadDigest d =
      ComputeDigest(payload.empty() ? PayloadOf(id) : payload);
  r.set_digest_sha256(d.sha256_hex);
  r.set_size_bytes(d.size_bytes);
  if (signer != nullptr) {
    r.set_signature(*SignRelease(r, signer->private_pem, "publisher-1"));
  }
  return r;
}

// The release id of a line ("marker", "last_good", ...) of the agent's
// state file on disk ("" if none).
std::string StateOnDisk(MemoryFileSystem* fs, absl::string_view key) {
  auto it = fs->files().find(absl::StrCat(kStateDir, "/state"));
  if (it == fs->files().end()) return "";
  const std::string prefix = absl::StrCat(key, " ");
  for (absl::string_view line : absl::StrSplit(it->second, '\n')) {
    if (absl::ConsumePrefix(&line, prefix) && line != "-") {
      Release r;
      r.ParseFromString(absl::HexStringToBytes(line));
      return r.id();
    }
  }
  return "";
}

std::vector<SpooledEvent> SpoolOnDisk(MemoryFileSystem* fs) {
  return *EventSpool::ReadAll(fs, absl::StrCat(kStateDir, "/spool"));
}

// The records on disk not acknowledged yet (those were delivered).
std::vector<SpooledEvent> UnackedOnDisk(MemoryFileSystem* fs) {
  absl::StatusOr<SpoolCursor> cursor =
      EventSpool::ReadCursor(fs, absl::StrCat(kStateDir, "/spool"));
  EXPECT_TRUE(cursor.ok()) << cursor.status();
  const uint64_t acked = cursor.ok() ? cursor->acked : 0;
  std::vector<SpooledEvent> out;
  for (SpooledEvent& e : SpoolOnDisk(fs)) {
    if (e.seq > acked) out.push_back(std::move(e));
  }
  return out;
}

bool Same(const SpooledEvent& a, const SpooledEvent& b) {
  return a.event_id == b.event_id && a.seq == b.seq &&
         a.boot_count == b.boot_count && a.event.type == b.event.type &&
         a.event.time == b.event.time && a.event.host_id == b.event.host_id &&
         a.event.release_id == b.event.release_id &&
         a.event.signal == b.event.signal && a.event.boot_id == b.event.boot_id;
}

class FakeServer final : public AgentTransport {
 public:
  explicit FakeServer(MemoryFileSystem* fs, const Clock* clock)
      : fs_(fs), clock_(clock) {}

  absl::StatusOr<AssignmentAnswer> GetAssignment(
      const AgentIdentity& identity, uint64_t telemetry_pending) override {
    if (fs_->crashed()) return absl::UnavailableError("dead");
    poll_times.push_back(clock_->Now());
    pending_at_poll.push_back(telemetry_pending);
    if (!up) return absl::UnavailableError("server down");
    EXPECT_EQ(identity.host_id, kHost);
    return answer;
  }

  absl::Status ReportTelemetry(absl::Span<const SpooledEvent> batch,
                               absl::Duration* retry_after) override {
    if (fs_->crashed()) return absl::UnavailableError("dead");
    if (!up) {
      *retry_after = retry_hint;
      return absl::UnavailableError("server down");
    }
    received.insert(received.end(), batch.begin(), batch.end());
    return absl::OkStatus();
  }

  void Assign(const Release& r) {
    answer = AssignmentAnswer();
    answer.has_release = true;
    answer.release = r;
  }

  // Every delivery, duplicates included.
  std::vector<SpooledEvent> received;
  std::vector<absl::Time> poll_times;
  std::vector<uint64_t> pending_at_poll;  // what each poll said
  AssignmentAnswer answer;
  bool up = true;
  absl::Duration retry_hint = absl::ZeroDuration();

  std::vector<const SpooledEvent*> Find(EventType type,
                                        const std::string& release,
                                        const std::string& signal = "") const {
    std::set<std::string> seen;
    std::vector<const SpooledEvent*> out;
    for (const SpooledEvent& e : received) {
      if (e.event.type == type && e.event.release_id == release &&
          e.event.signal == signal && seen.insert(e.event_id).second) {
        out.push_back(&e);
      }
    }
    return out;
  }

  // Duplicates must be identical copies of one event.
  void ExpectDuplicatesIdentical() const {
    std::map<std::string, const SpooledEvent*> by_id;
    for (const SpooledEvent& e : received) {
      auto [it, fresh] = by_id.emplace(e.event_id, &e);
      if (!fresh) {
        EXPECT_TRUE(Same(*it->second, e)) << e.event_id;
      }
    }
  }

 private:
  MemoryFileSystem* fs_;
  const Clock* clock_;
};

class FakeContent final : public ContentHooks {
 public:
  explicit FakeContent(MemoryFileSystem* fs) : fs_(fs) {}

  absl::StatusOr<std::string> Fetch(const Release& release) override {
    if (fs_->crashed()) return absl::UnavailableError("dead");
    ++fetches;
    auto it = served.find(release.id());
    if (it != served.end()) return it->second;
    return PayloadOf(release.id());
  }

  absl::Status Load(const Release& release,
                    const std::string& payload_path) override {
    if (fs_->crashed()) return absl::UnavailableError("dead");
    // The payload on disk is the verified one.
    absl::StatusOr<std::string> payload = fs_->ReadFile(payload_path);
    if (!payload.ok() || !VerifyPayload(release, *payload).ok()) {
      violations.push_back(absl::StrCat("unverified load of ", release.id()));
    }
    // A release that is not healthy yet loads only behind a durable marker
    // and a durable APPLYING event, which is the last lifecycle event.
    if (StateOnDisk(fs_, "marker") == release.id()) {
      const std::vector<SpooledEvent> spool = SpoolOnDisk(fs_);
      const SpooledEvent* last = nullptr;
      for (const SpooledEvent& e : spool) {
        if (e.event.type == EventType::kApplying ||
            e.event.type == EventType::kApplied) {
          last = &e;
        }
      }
      // (Acked records may be gone; then the server has it.)
      if (last != nullptr && !(last->event.type == EventType::kApplying &&
                               last->event.release_id == release.id())) {
        violations.push_back(
            absl::StrCat("load of ", release.id(), " without APPLYING"));
      }
    } else if (StateOnDisk(fs_, "last_good") != release.id()) {
      violations.push_back(
          absl::StrCat("load of ", release.id(), " without a marker"));
    }
    loads.push_back(release.id());
    if (crash_on_load.count(release.id())) {
      fs_->CrashNow();  // the content crashes the host
      running.clear();
      return absl::UnavailableError("host crashed");
    }
    running = release.id();
    return absl::OkStatus();
  }

  absl::Status Unload() override {
    if (fs_->crashed()) return absl::UnavailableError("dead");
    loads.push_back("unload");
    running.clear();
    return absl::OkStatus();
  }

  int Loads(const std::string& id) const {
    return static_cast<int>(std::count(loads.begin(), loads.end(), id));
  }

  std::map<std::string, std::string> served;  // id -> bytes (else genuine)
  std::set<std::string> crash_on_load;
  std::vector<std::string> loads;
  std::vector<std::string> violations;
  std::string running;
  int fetches = 0;

 private:
  MemoryFileSystem* fs_;
};

class Harness {
 public:
  explicit Harness(uint64_t seed = 7) : fs(seed) {
    options.identity.host_id = kHost;
    options.identity.content_type = kContentType;
    options.identity.agent_version = "7.12.0";
    options.state_dir = kStateDir;
    options.trusted_keys["publisher-1"] = Publisher().public_pem;
    options.seed = seed;
  }

  // A boot: the process starts on what is on disk.
  absl::Status Boot() {
    agent.reset();
    fs.Reboot();
    content.running.clear();
    ++boots;
    absl::StatusOr<std::unique_ptr<Agent>> a =
        Agent::Start(options, &fs, &clock, &server, &content);
    if (!a.ok()) return a.status();
    agent = *std::move(a);
    return absl::OkStatus();
  }

  // Runs the agent's loop for `d` of simulated time, or until the host
  // crashes.
  void RunFor(absl::Duration d) {
    const absl::Time end = clock.Now() + d;
    int spins = 0;
    while (agent != nullptr && !fs.crashed()) {
      const absl::Time t = agent->NextWakeup();
      if (t > end) break;
      if (t <= clock.Now()) {
        ASSERT_LT(++spins, 1000) << "NextWakeup does not move";
      } else {
        spins = 0;
        clock.Set(t);
      }
      agent->Tick().IgnoreError();
    }
    if (!fs.crashed() && clock.Now() < end) clock.Set(end);
  }

  // Runs for `d`, rebooting the host `reboot_delay` after each crash.
  void RunWithReboots(absl::Duration d,
                      absl::Duration reboot_delay = absl::Minutes(2)) {
    const absl::Time end = clock.Now() + d;
    while (clock.Now() < end) {
      RunFor(end - clock.Now());
      if (fs.crashed()) {
        clock.Advance(reboot_delay);
        ASSERT_OK(Boot());
      }
    }
  }

  FakeClock clock;
  MemoryFileSystem fs;
  FakeServer server{&fs, &clock};
  FakeContent content{&fs};
  AgentOptions options;
  std::unique_ptr<Agent> agent;
  int boots = 0;
};

// A host running release A, healthy.
void RunningA(Harness& h) {
  h.server.Assign(MakeRelease("rel-a"));
  ASSERT_OK(h.Boot());
  h.RunFor(absl::Minutes(10));
  ASSERT_EQ(h.content.running, "rel-a");
  ASSERT_EQ(h.agent->GetStatus().last_good, "rel-a");
}

TEST(AgentTest, AppliesTheAssignedReleaseAndReportsItsLifecycle) {
  Harness h;
  h.server.Assign(MakeRelease("rel-a"));
  ASSERT_OK(h.Boot());
  h.RunFor(absl::Minutes(10));
  EXPECT_EQ(h.content.running, "rel-a");
  EXPECT_THAT(h.content.loads, ElementsAre("rel-a"));
  EXPECT_THAT(h.content.violations, ElementsAre());
  const AgentStatus st = h.agent->GetStatus();
  EXPECT_EQ(st.running, "rel-a");
  EXPECT_EQ(st.last_good, "rel-a");
  EXPECT_EQ(st.applying, "");
  EXPECT_EQ(st.assigned, "rel-a");
  EXPECT_EQ(st.spool_pending, 0u);
  ASSERT_EQ(h.server.Find(EventType::kApplying, "rel-a").size(), 1u);
  ASSERT_EQ(h.server.Find(EventType::kApplied, "rel-a").size(), 1u);
  EXPECT_EQ(h.server.Find(EventType::kApplying, "rel-a")[0]->event_id,
            "host-1/rel-a/1/applying-1");
  EXPECT_EQ(h.server.Find(EventType::kApplied, "rel-a")[0]->event_id,
            "host-1/rel-a/1/applied-1");
  // APPLYING before APPLIED before the heartbeats on the release.
  const auto& r = h.server.received;
  auto pos = [&](EventType t) {
    return std::find_if(r.begin(), r.end(),
                        [&](const SpooledEvent& e) {
                          return e.event.type == t &&
                                 e.event.release_id == "rel-a";
                        }) -
           r.begin();
  };
  EXPECT_LT(pos(EventType::kApplying), pos(EventType::kApplied));
  EXPECT_LT(pos(EventType::kApplied), pos(EventType::kHeartbeat));
  EXPECT_GE(h.server.Find(EventType::kHeartbeat, "rel-a").size(), 8u);
  // Telemetry validates as the server would check it.
  std::vector<TelemetryEvent> events;
  for (const SpooledEvent& e : r) events.push_back(e.event);
  EXPECT_OK(ValidateTelemetryBatch(events));
}

TEST(AgentTest, TwelveHoursOfPollingWithJitterAndARollover) {
  Harness h;
  RunningA(h);
  h.RunFor(absl::Hours(6));
  h.server.Assign(MakeRelease("rel-b"));
  h.RunFor(absl::Hours(6));
  EXPECT_EQ(h.content.running, "rel-b");
  EXPECT_THAT(h.content.loads, ElementsAre("rel-a", "rel-b"));
  EXPECT_EQ(h.agent->GetStatus().last_good, "rel-b");
  // Polls every 60 s +- 20 %, and not all alike.
  const auto& t = h.server.poll_times;
  ASSERT_GT(t.size(), 600u);
  std::set<int64_t> gaps;
  for (size_t i = 1; i < t.size(); ++i) {
    const absl::Duration gap = t[i] - t[i - 1];
    EXPECT_GE(gap, absl::Seconds(48));
    EXPECT_LE(gap, absl::Seconds(72));
    gaps.insert(absl::ToInt64Milliseconds(gap));
  }
  EXPECT_GT(gaps.size(), 100u);
  // A heartbeat a minute, each id once, all delivered.
  EXPECT_GE(h.server.Find(EventType::kHeartbeat, "rel-b").size(), 350u);
  h.server.ExpectDuplicatesIdentical();
  // Only the payloads of the current release remain.
  EXPECT_THAT(*h.fs.List(absl::StrCat(kStateDir, "/content")),
              ElementsAre(PayloadFileName("rel-b")));
}

// Polls and heartbeats share wakeups (AgentOptions::heartbeat_with_poll)
// without either coming late, over random intervals, jitters and windows:
// heartbeats at most heartbeat_interval apart and at least that less the
// window; polls at most (1 + jitter) poll intervals apart and at least
// (1 - jitter) less the window; with equal intervals and a window, almost
// every heartbeat goes out in a poll's wakeup when the window spans the
// poll's jitter (as the defaults do: 60 s, +-20 %, 15 s).
TEST(AgentTest, PollsAndHeartbeatsShareWakeupsAndNeitherIsLate) {
  std::mt19937 rng(11);
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    Harness h(seed);
    const bool equal = seed % 3 == 0;
    h.options.poll_interval =
        absl::Seconds(std::uniform_int_distribution<int>(10, 120)(rng));
    h.options.heartbeat_interval =
        equal ? h.options.poll_interval
              : absl::Seconds(std::uniform_int_distribution<int>(10, 120)(rng));
    h.options.poll_jitter = std::uniform_real_distribution<double>(0, 0.3)(rng);
    const absl::Duration windows[] = {absl::ZeroDuration(), absl::Seconds(5),
                                      absl::Seconds(15), absl::Seconds(30)};
    h.options.heartbeat_with_poll = windows[equal ? 2 + seed % 2 : rng() % 4];
    if (equal) {
      // A window at least the poll's jitter: a poll drawn after the
      // heartbeat always falls within it.
      h.options.poll_jitter =
          std::min(h.options.poll_jitter,
                   absl::FDivDuration(h.options.heartbeat_with_poll,
                                      h.options.poll_interval) /
                       2);
    }
    SCOPED_TRACE(absl::StrCat(
        "seed ", seed, " poll ", absl::FormatDuration(h.options.poll_interval),
        " heartbeat ", absl::FormatDuration(h.options.heartbeat_interval),
        " jitter ", h.options.poll_jitter, " window ",
        absl::FormatDuration(h.options.heartbeat_with_poll)));
    const absl::Duration window = std::min(
        h.options.heartbeat_with_poll,
        std::min(h.options.poll_interval, h.options.heartbeat_interval) / 4);
    h.server.Assign(MakeRelease("rel-a"));
    ASSERT_OK(h.Boot());
    h.RunFor(absl::Minutes(30));
    ASSERT_EQ(h.agent->GetStatus().last_good, "rel-a");
    const absl::Time start = h.clock.Now();
    h.RunFor(absl::Hours(3));

    std::vector<absl::Time> beats;
    for (const SpooledEvent* e :
         h.server.Find(EventType::kHeartbeat, "rel-a")) {
      if (e->event.time >= start) beats.push_back(e->event.time);
    }
    std::sort(beats.begin(), beats.end());
    std::vector<absl::Time> polls;
    for (absl::Time t : h.server.poll_times) {
      if (t >= start) polls.push_back(t);
    }
    ASSERT_GT(beats.size(), 50u);
    ASSERT_GT(polls.size(), 50u);
    for (size_t i = 1; i < beats.size(); ++i) {
      const absl::Duration gap = beats[i] - beats[i - 1];
      ASSERT_LE(gap, h.options.heartbeat_interval) << "heartbeat " << i;
      ASSERT_GE(gap, h.options.heartbeat_interval - window)
          << "heartbeat " << i;
    }
    const double j = h.options.poll_jitter;
    for (size_t i = 1; i < polls.size(); ++i) {
      const absl::Duration gap = polls[i] - polls[i - 1];
      ASSERT_LE(gap, h.options.poll_interval * (1 + j) + absl::Milliseconds(1))
          << "poll " << i;
      ASSERT_GE(gap, h.options.poll_interval * (1 - j) - window -
                         absl::Milliseconds(1))
          << "poll " << i;
    }
    if (equal) {
      const std::set<absl::Time> poll_set(polls.begin(), polls.end());
      size_t alone = 0;
      for (absl::Time t : beats) alone += poll_set.count(t) == 0;
      EXPECT_LE(alone, 1u) << "heartbeats not in a poll's wakeup";
    }
  }
}

TEST(AgentTest, SameSeedSameEventIds) {
  std::vector<std::string> ids[2];
  for (int run = 0; run < 2; ++run) {
    Harness h(42);
    RunningA(h);
    h.server.Assign(MakeRelease("rel-b"));
    h.RunFor(absl::Hours(1));
    for (const SpooledEvent& e : h.server.received) {
      ids[run].push_back(e.event_id);
    }
  }
  EXPECT_EQ(ids[0], ids[1]);
}

TEST(AgentTest, RebootReloadsTheCurrentReleaseWithoutTheServer) {
  Harness h;
  RunningA(h);
  h.server.up = false;
  ASSERT_OK(h.Boot());
  EXPECT_EQ(h.content.running, "rel-a");
  EXPECT_EQ(h.agent->GetStatus().boot, 2u);
  EXPECT_EQ(h.content.fetches, 1);  // from the content store
  h.RunFor(absl::Hours(1));
  EXPECT_EQ(h.content.running, "rel-a");
}

struct BadContent {
  const char* name;
  // Fetch serves these bytes for the assignment.
  bool tamper_payload;
  // The assignment's signature: 0 genuine, 1 none, 2 an untrusted key,
  // 3 altered metadata after signing.
  int signature;
};

class RefusalTest : public ::testing::TestWithParam<BadContent> {};

TEST_P(RefusalTest, RefusesReportsAndKeepsRunning) {
  Harness h;
  RunningA(h);
  Release b;
  switch (GetParam().signature) {
    case 0:
      b = MakeRelease("rel-b");
      break;
    case 1:
      b = MakeRelease("rel-b", nullptr);
      break;
    case 2:
      b = MakeRelease("rel-b", &Stranger());
      break;
    case 3:
      b = MakeRelease("rel-b");
      b.set_version("other");
      break;
  }
  if (GetParam().tamper_payload) {
    h.content.served["rel-b"] = "channel file for rel-b, but not quite\n";
  }
  h.server.Assign(b);
  h.RunFor(absl::Hours(2));
  EXPECT_EQ(h.content.running, "rel-a");
  EXPECT_EQ(h.content.Loads("rel-b"), 0);
  EXPECT_EQ(h.agent->GetStatus().last_good, "rel-a");
  EXPECT_THAT(h.agent->GetStatus().last_error.code(),
              ::testing::AnyOf(absl::StatusCode::kInvalidArgument,
                               absl::StatusCode::kPermissionDenied,
                               absl::StatusCode::kFailedPrecondition));
  // Reported once per boot, and retried (a download may be truncated).
  EXPECT_EQ(
      h.server.Find(EventType::kSignal, "rel-b", "content_rejected").size(),
      1u);
  EXPECT_GT(h.content.fetches, 10);
  EXPECT_FALSE(h.fs.files().count(
      absl::StrCat(kStateDir, "/content/", PayloadFileName("rel-b"))));
  // The publisher fixes the download: it loads.
  h.content.served.clear();
  h.server.Assign(MakeRelease("rel-b"));
  h.RunFor(absl::Hours(1));
  EXPECT_EQ(h.content.running, "rel-b");
}

INSTANTIATE_TEST_SUITE_P(
    Mismatch, RefusalTest,
    ::testing::Values(BadContent{"digest", true, 0},
                      BadContent{"unsigned", false, 1},
                      BadContent{"untrusted_key", false, 2},
                      BadContent{"altered_metadata", false, 3}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(AgentTest, TransportDownForHoursLosesNothingAndKeepsTheRelease) {
  Harness h;
  RunningA(h);
  h.server.up = false;
  h.server.retry_hint = absl::Seconds(30);
  h.RunFor(absl::Hours(8));
  EXPECT_EQ(h.content.running, "rel-a");
  EXPECT_THAT(h.content.loads, ElementsAre("rel-a"));
  const AgentStatus down = h.agent->GetStatus();
  EXPECT_GE(down.spool_pending, 470u);
  EXPECT_EQ(down.spool_dropped, 0u);
  // It survives a reboot while down, too.
  ASSERT_OK(h.Boot());
  h.RunFor(absl::Hours(1));
  h.server.up = true;
  h.RunFor(absl::Hours(1));
  EXPECT_EQ(h.agent->GetStatus().spool_pending, 0u);
  // Every heartbeat of each boot, numbered without a hole.
  std::map<uint64_t, std::set<int>> beats;
  for (const SpooledEvent& e : h.server.received) {
    if (e.event.type != EventType::kHeartbeat) continue;
    std::vector<std::string> parts = absl::StrSplit(e.event_id, '/');
    int n = 0;
    ASSERT_TRUE(absl::SimpleAtoi(parts[3].substr(10), &n)) << e.event_id;
    beats[e.event.boot_id].insert(n);
  }
  ASSERT_EQ(beats.size(), 2u);
  for (const auto& [boot, ns] : beats) {
    EXPECT_EQ(*ns.begin(), 1);
    EXPECT_EQ(*ns.rbegin(), static_cast<int>(ns.size())) << "boot " << boot;
  }
  EXPECT_GE(beats[1].size(), 490u);
  h.server.ExpectDuplicatesIdentical();
}

// After an outage, polls say how much telemetry is waiting, and the first
// poll the server answers sends the backlog at once instead of after a
// backoff grown to its maximum while the server was down.
TEST(AgentTest, TheFirstAnsweredPollSendsTheBacklog) {
  Harness h;
  RunningA(h);
  h.server.up = false;
  h.RunFor(absl::Hours(1));
  ASSERT_FALSE(h.server.pending_at_poll.empty());
  EXPECT_GT(h.server.pending_at_poll.back(), 50u);
  const size_t received = h.server.received.size();
  // While down: the error is recent, the last contact older.
  const AgentStatus down = h.agent->GetStatus();
  EXPECT_TRUE(absl::IsUnavailable(down.last_error)) << down.last_error;
  EXPECT_GT(down.last_error_at, h.clock.Now() - absl::Minutes(2));
  EXPECT_LT(down.last_contact, h.clock.Now() - absl::Minutes(55));
  h.server.up = true;
  // One poll interval (60 s, jitter 20 %) later, well before a 5-minute
  // backoff ends, the backlog is delivered.
  h.RunFor(absl::Seconds(75));
  const AgentStatus up = h.agent->GetStatus();
  EXPECT_EQ(up.spool_pending, 0u);
  // The error stays on record, dated; the contact after it says the agent
  // recovered.
  EXPECT_EQ(up.last_error, down.last_error);
  EXPECT_EQ(up.last_error_at, down.last_error_at);
  EXPECT_GT(up.last_contact, up.last_error_at);
  EXPECT_GT(h.server.received.size(), received + 50);
  h.RunFor(absl::Minutes(5));
  EXPECT_EQ(h.server.pending_at_poll.back(), 0u);
}

// Between loading a release and its health the agent does not poll (the
// server would count each check-in as a boot-loop attempt); it polls again
// once the release is healthy.
TEST(AgentTest, NoPollBetweenALoadAndItsHealth) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Harness h(seed);
    h.options.poll_interval = absl::Seconds(10);
    RunningA(h);
    h.server.Assign(MakeRelease("rel-b"));
    h.RunFor(absl::Minutes(10));
    ASSERT_EQ(h.agent->GetStatus().last_good, "rel-b") << "seed " << seed;
    const std::vector<const SpooledEvent*> applied =
        h.server.Find(EventType::kApplied, "rel-b");
    ASSERT_EQ(applied.size(), 1u);
    const absl::Time loaded = applied[0]->event.time;
    int during = 0, after = 0;
    for (absl::Time t : h.server.poll_times) {
      during += t > loaded && t < loaded + h.options.heartbeat_interval;
      after += t >= loaded + 2 * h.options.heartbeat_interval;
    }
    EXPECT_EQ(during, 0) << "seed " << seed;
    EXPECT_GT(after, 0) << "seed " << seed;
  }
}

TEST(AgentTest, TransportDownPastTheCapDropsOldestAndReportsTheLoss) {
  Harness h;
  h.options.spool = {.max_bytes = 16 << 10, .segment_bytes = 4 << 10};
  RunningA(h);
  h.server.up = false;
  h.RunFor(absl::Hours(24));
  EXPECT_EQ(h.content.running, "rel-a");
  const AgentStatus st = h.agent->GetStatus();
  EXPECT_GT(st.spool_dropped, 0u);
  h.server.up = true;
  h.RunFor(absl::Hours(1));
  EXPECT_FALSE(
      h.server.Find(EventType::kSignal, "", "telemetry_dropped").empty());
  // The newest heartbeats made it.
  EXPECT_GE(h.server.Find(EventType::kHeartbeat, "rel-a").size(), 60u);
}

TEST(AgentTest, ErrorsAndFailClosedAnswersKeepTheRelease) {
  Harness h;
  RunningA(h);
  h.server.answer = AssignmentAnswer();  // has_release false: keep
  h.RunFor(absl::Hours(1));
  EXPECT_EQ(h.content.running, "rel-a");
  h.server.up = false;
  h.RunFor(absl::Hours(1));
  EXPECT_EQ(h.content.running, "rel-a");
  EXPECT_THAT(h.content.loads, ElementsAre("rel-a"));
  // The last answer is on disk: a reboot without the server keeps it.
  ASSERT_OK(h.Boot());
  EXPECT_EQ(h.agent->GetStatus().assigned, "rel-a");
  EXPECT_EQ(h.content.running, "rel-a");
}

TEST(AgentTest, ObeysUnload) {
  Harness h;
  RunningA(h);
  h.server.answer = AssignmentAnswer();
  h.server.answer.unload = true;
  h.RunFor(absl::Minutes(5));
  EXPECT_EQ(h.content.running, "");
  EXPECT_THAT(h.content.loads, ElementsAre("rel-a", "unload"));
  EXPECT_EQ(h.agent->GetStatus().assigned, "unload");
  h.RunFor(absl::Hours(1));
  EXPECT_THAT(h.content.loads, ElementsAre("rel-a", "unload"));
  // After a reboot nothing is loaded, even without the server.
  h.server.up = false;
  ASSERT_OK(h.Boot());
  h.RunFor(absl::Hours(1));
  EXPECT_EQ(h.content.running, "");
  EXPECT_THAT(h.content.loads, ElementsAre("rel-a", "unload"));
  // Heartbeats say it runs nothing.
  EXPECT_FALSE(h.server.Find(EventType::kHeartbeat, "").empty());
}

// A run that ends without Stop() (the agent or the host died) is reported
// at the next boot as a BOOT with clean = false (the gate's
// unclean_reboot); a run that ended with Stop() is not.
TEST(AgentTest, ARunThatDidNotStopIsReportedAsAnUncleanBoot) {
  Harness h;
  RunningA(h);
  auto unclean = [&] {
    int n = 0;
    for (const SpooledEvent* e : h.server.Find(EventType::kBoot, "")) {
      n += !e->event.clean;
    }
    return n;
  };
  EXPECT_EQ(unclean(), 0);  // the first boot: nothing before it
  ASSERT_OK(h.agent->Stop());
  ASSERT_OK(h.Boot());
  h.RunFor(absl::Minutes(10));
  EXPECT_EQ(unclean(), 0);
  // Killed (no Stop): the next boot says so, once.
  ASSERT_OK(h.Boot());
  h.RunFor(absl::Minutes(10));
  EXPECT_EQ(unclean(), 1);
  EXPECT_EQ(h.content.running, "rel-a");
  h.server.ExpectDuplicatesIdentical();
}

TEST(AgentTest, ReportedCrashesAndSignalsReachTheServerAcrossAnOutage) {
  Harness h;
  RunningA(h);
  h.server.up = false;
  ASSERT_OK(h.agent->Report(EventType::kCrash, "segv at parse_field+0x21"));
  ASSERT_OK(h.agent->Report(EventType::kSignal, "watchdog_reset"));
  h.RunFor(absl::Minutes(30));
  EXPECT_TRUE(
      h.server.Find(EventType::kCrash, "rel-a", "segv at parse_field+0x21")
          .empty());
  // Killed while the server is down: the reports are in the spool.
  ASSERT_OK(h.Boot());
  ASSERT_OK(h.agent->Report(EventType::kSignal, "watchdog_reset"));
  h.server.up = true;
  h.RunFor(absl::Minutes(30));
  EXPECT_EQ(
      h.server.Find(EventType::kCrash, "rel-a", "segv at parse_field+0x21")
          .size(),
      1u);
  // Two reports of one name in two boots are two events; the second boot
  // reports before its content is loaded, so for no release.
  EXPECT_EQ(
      h.server.Find(EventType::kSignal, "rel-a", "watchdog_reset").size() +
          h.server.Find(EventType::kSignal, "", "watchdog_reset").size(),
      2u);
  h.server.ExpectDuplicatesIdentical();
}

TEST(AgentTest, ReportRefusesOtherTypesAndBadNamesAndAppendsNothing) {
  Harness h;
  RunningA(h);
  const size_t pending = h.agent->GetStatus().spool_pending;
  EXPECT_THAT(h.agent->Report(EventType::kHeartbeat, ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(h.agent->Report(EventType::kSignal, ""),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(h.agent->Report(EventType::kSignal, "Watchdog-Reset"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(h.agent->Report(EventType::kSignal, std::string(65, 'a')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(h.agent->Report(EventType::kCrash, std::string(257, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(h.agent->GetStatus().spool_pending, pending);
  EXPECT_OK(h.agent->Report(EventType::kCrash, ""));
  EXPECT_OK(h.agent->Report(EventType::kSignal, std::string(64, 'a')));
}

class BootLoopTest : public ::testing::TestWithParam<int> {};

TEST_P(BootLoopTest, FallsBackAfterExactlyNBootsAndReports) {
  const int n = GetParam();
  Harness h;
  h.options.boot_loop_limit = n;
  RunningA(h);
  const int boots_before = h.boots;
  h.content.crash_on_load.insert("rel-b");
  h.server.Assign(MakeRelease("rel-b"));
  h.RunFor(absl::Minutes(5));
  ASSERT_TRUE(h.fs.crashed());
  // The server is unreachable from here on: the fallback is local.
  h.server.up = false;
  h.RunWithReboots(absl::Hours(1));
  EXPECT_EQ(h.content.Loads("rel-b"), n);
  EXPECT_EQ(h.boots - boots_before, n);
  EXPECT_EQ(h.content.running, "rel-a");
  EXPECT_EQ(h.content.loads.back(), "rel-a");
  AgentStatus st = h.agent->GetStatus();
  EXPECT_EQ(st.quarantined, "rel-b");
  EXPECT_EQ(st.last_good, "rel-a");
  EXPECT_EQ(st.applying, "");
  EXPECT_THAT(h.content.violations, ElementsAre());
  // Once back up the host reports local_fallback for rel-b with its boots.
  h.server.up = true;
  h.RunFor(absl::Hours(1));
  auto fb = h.server.Find(EventType::kSignal, "rel-b", "local_fallback");
  ASSERT_EQ(fb.size(), 1u);
  EXPECT_EQ(fb[0]->boot_count, static_cast<uint32_t>(n));
  EXPECT_EQ(fb[0]->event.host_id, kHost);
  // Each boot that found rel-b applying told the gate its count, 1..n
  // (boots_since_apply: the server keeps the largest, replays count once).
  std::vector<uint32_t> counts, want;
  for (const SpooledEvent* b : h.server.Find(EventType::kBoot, "rel-b")) {
    counts.push_back(b->event.boots_since_apply);
  }
  for (int i = 1; i <= n; ++i) want.push_back(static_cast<uint32_t>(i));
  EXPECT_THAT(counts, ::testing::UnorderedElementsAreArray(want));
  // Quarantined: still assigned rel-b, never loaded again, across reboots.
  ASSERT_OK(h.Boot());
  h.RunFor(absl::Hours(3));
  EXPECT_EQ(h.content.Loads("rel-b"), n);
  EXPECT_EQ(h.content.running, "rel-a");
  // The gate halts and reverts the fleet to rel-a: the quarantine ends (the
  // host already runs rel-a); then a fixed rel-c follows.
  const size_t loads = h.content.loads.size();
  h.server.Assign(MakeRelease("rel-a"));
  h.RunFor(absl::Hours(1));
  EXPECT_EQ(h.agent->GetStatus().quarantined, "");
  EXPECT_EQ(h.content.loads.size(), loads);
  EXPECT_EQ(h.content.running, "rel-a");
  h.server.Assign(MakeRelease("rel-c"));
  h.RunFor(absl::Hours(1));
  EXPECT_EQ(h.content.running, "rel-c");
  EXPECT_EQ(h.agent->GetStatus().quarantined, "");
  h.server.ExpectDuplicatesIdentical();
  EXPECT_EQ(h.server.Find(EventType::kSignal, "rel-b", "local_fallback").size(),
            1u);
}

INSTANTIATE_TEST_SUITE_P(Limits, BootLoopTest, ::testing::Values(1, 2, 3, 5));

TEST(AgentBootLoopTest, WithoutLastGoodUnloadsAndReports) {
  Harness h;
  h.content.crash_on_load.insert("rel-b");
  h.server.Assign(MakeRelease("rel-b"));
  ASSERT_OK(h.Boot());
  h.RunWithReboots(absl::Hours(1));
  EXPECT_EQ(h.content.Loads("rel-b"), 3);
  EXPECT_EQ(h.content.running, "");
  EXPECT_EQ(h.content.loads.back(), "unload");
  h.RunFor(absl::Hours(1));
  auto fb = h.server.Find(EventType::kSignal, "rel-b", "local_fallback");
  ASSERT_EQ(fb.size(), 1u);
  EXPECT_EQ(fb[0]->boot_count, 3u);
}

TEST(AgentBootLoopTest, BootsFurtherApartThanTheWindowDoNotCount) {
  Harness h;
  RunningA(h);
  h.content.crash_on_load.insert("rel-b");
  h.server.Assign(MakeRelease("rel-b"));
  h.RunWithReboots(absl::Hours(12), /*reboot_delay=*/absl::Minutes(90));
  EXPECT_GT(h.content.Loads("rel-b"), 5);
  EXPECT_EQ(h.agent->GetStatus().quarantined, "");
}

TEST(AgentBootLoopTest, AFailingLoadCountsLikeABoot) {
  // A Load that returns an error (not a crash) is retried, and falls back
  // after the limit like a boot loop.
  class FailingContent final : public ContentHooks {
   public:
    explicit FailingContent(ContentHooks* inner) : inner_(inner) {}
    absl::StatusOr<std::string> Fetch(const Release& r) override {
      return inner_->Fetch(r);
    }
    absl::Status Load(const Release& r, const std::string& p) override {
      if (r.id() == "rel-b") {
        ++b_loads;
        return absl::InternalError("cannot parse");
      }
      return inner_->Load(r, p);
    }
    absl::Status Unload() override { return inner_->Unload(); }
    int b_loads = 0;

   private:
    ContentHooks* inner_;
  };
  Harness h;
  RunningA(h);
  FailingContent failing(&h.content);
  h.agent = *Agent::Start(h.options, &h.fs, &h.clock, &h.server, &failing);
  h.server.Assign(MakeRelease("rel-b"));
  h.RunFor(absl::Hours(2));
  EXPECT_EQ(failing.b_loads, 3);
  EXPECT_EQ(h.content.running, "rel-a");
  EXPECT_EQ(h.agent->GetStatus().quarantined, "rel-b");
  EXPECT_EQ(h.server.Find(EventType::kSignal, "rel-b", "local_fallback").size(),
            1u);
}

TEST(AgentTest, StartRefusesBadOptions) {
  using ::ringfence::testing::StatusIs;
  auto start = [](void (*edit)(AgentOptions*)) {
    Harness h;
    edit(&h.options);
    return Agent::Start(h.options, &h.fs, &h.clock, &h.server, &h.content)
        .status();
  };
  EXPECT_THAT(start([](AgentOptions* o) { o->identity.host_id = ""; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(start([](AgentOptions* o) { o->state_dir = ""; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(start([](AgentOptions* o) { o->boot_loop_limit = 0; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(start([](AgentOptions* o) { o->poll_jitter = 1; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(start([](AgentOptions* o) {
                o->trusted_keys["publisher-1"] = "not a key";
              }),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AgentTest, AMalformedStateFileIsDataLoss) {
  Harness h;
  RunningA(h);
  h.fs.files()[absl::StrCat(kStateDir, "/state")] = "boot x\n";
  EXPECT_THAT(h.Boot(),
              ::ringfence::testing::StatusIs(absl::StatusCode::kDataLoss));
}

TEST(AgentPosixTest, RunsOnARealDirectory) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/agent_test_", getpid());
  std::filesystem::remove_all(dir);
  std::unique_ptr<AgentFileSystem> fs = NewPosixFileSystem();
  class Hooks final : public ContentHooks {
   public:
    explicit Hooks(AgentFileSystem* fs) : fs_(fs) {}
    absl::StatusOr<std::string> Fetch(const Release& r) override {
      ++fetches;
      return PayloadOf(r.id());
    }
    absl::Status Load(const Release& r, const std::string& path) override {
      absl::StatusOr<std::string> payload = fs_->ReadFile(path);
      if (!payload.ok()) return payload.status();
      RETURN_IF_ERROR(VerifyPayload(r, *payload));
      running = r.id();
      return absl::OkStatus();
    }
    absl::Status Unload() override {
      running.clear();
      return absl::OkStatus();
    }
    std::string running;
    int fetches = 0;

   private:
    AgentFileSystem* fs_;
  } hooks(fs.get());
  FakeClock clock;
  MemoryFileSystem never_crashes;
  FakeServer server(&never_crashes, &clock);
  server.Assign(MakeRelease("rel/../a"));  // an id that is no file name
  Harness settings;
  AgentOptions options = settings.options;
  options.state_dir = dir + "/state";
  {
    auto agent = *Agent::Start(options, fs.get(), &clock, &server, &hooks);
    for (int i = 0; i < 600; ++i) {
      clock.Advance(absl::Seconds(1));
      agent->Tick().IgnoreError();
    }
    EXPECT_EQ(hooks.running, "rel/../a");
    EXPECT_EQ(agent->GetStatus().last_good, "rel/../a");
    EXPECT_EQ(agent->GetStatus().spool_pending, 0u);
  }
  // A reboot without the server loads it from the content store.
  hooks.running.clear();
  server.up = false;
  auto agent = *Agent::Start(options, fs.get(), &clock, &server, &hooks);
  EXPECT_EQ(hooks.running, "rel/../a");
  EXPECT_EQ(hooks.fetches, 1);
  EXPECT_EQ(agent->GetStatus().boot, 2u);
  EXPECT_TRUE(std::filesystem::exists(absl::StrCat(
      options.state_dir, "/content/", PayloadFileName("rel/../a"))));
  std::filesystem::remove_all(dir);
}

// ---- Crashes at every durable step
// -------------------------------------------

struct CrashScenario {
  const char* name;
  // rel-b boot-loops the host (the guard must fall back to rel-a).
  bool bad_release;
};

// One run: a host on rel-a is assigned rel-b; a crash at the k-th mutating
// file operation from its boot, in `mode`; reboots until the end. Returns
// the number of mutating operations of the run (for the enumeration).
int64_t RunCrashCase(const CrashScenario& sc, int64_t k,
                     MemoryFileSystem::CrashMode mode,
                     const std::map<std::string, std::string>& disk,
                     std::vector<std::string>* failures) {
  Harness h;
  h.fs.files() = disk;
  if (sc.bad_release) h.content.crash_on_load.insert("rel-b");
  h.server.Assign(MakeRelease("rel-b"));
  h.clock.Advance(absl::Hours(1));
  const int64_t start = h.fs.mutations();
  if (k >= 0) h.fs.CrashAtMutation(k, mode);
  // Durable records seen at each crash: all must reach the server.
  std::vector<SpooledEvent> durable;
  auto boot = [&] {
    absl::Status s = h.Boot();
    while (!s.ok()) {  // the crash hit the start itself
      for (SpooledEvent& e : UnackedOnDisk(&h.fs)) durable.push_back(e);
      h.clock.Advance(absl::Minutes(2));
      s = h.Boot();
    }
  };
  boot();
  const absl::Time end = h.clock.Now() + absl::Hours(4);
  while (h.clock.Now() < end) {
    h.RunFor(end - h.clock.Now());
    if (h.fs.crashed()) {
      h.fs.Reboot();
      for (SpooledEvent& e : UnackedOnDisk(&h.fs)) durable.push_back(e);
      h.clock.Advance(absl::Minutes(2));
      boot();
    }
  }
  const int64_t ops = h.fs.mutations() - start;
  auto fail = [&](const std::string& what) {
    failures->push_back(absl::StrCat(sc.name, " crash at op ", k, " mode ",
                                     static_cast<int>(mode), ": ", what));
  };
  for (const std::string& v : h.content.violations) fail(v);
  const AgentStatus st = h.agent->GetStatus();
  const std::string want = sc.bad_release ? "rel-a" : "rel-b";
  if (h.content.running != want) fail("running " + h.content.running);
  if (st.last_good != want) fail("last_good " + st.last_good);
  if (!st.applying.empty()) fail("still applying " + st.applying);
  if (st.spool_pending != 0) fail("spool not drained");
  if (sc.bad_release) {
    if (h.content.Loads("rel-b") > h.options.boot_loop_limit) {
      fail(absl::StrCat("rel-b loaded ", h.content.Loads("rel-b"), " times"));
    }
    if (st.quarantined != "rel-b") fail("not quarantined");
    if (h.server.Find(EventType::kSignal, "rel-b", "local_fallback").empty()) {
      fail("no local_fallback");
    }
  } else {
    if (h.server.Find(EventType::kApplying, "rel-b").empty() ||
        h.server.Find(EventType::kApplied, "rel-b").empty() ||
        h.server.Find(EventType::kHeartbeat, "rel-b").empty()) {
      fail("lifecycle events missing");
    }
  }
  // Nothing durable was lost; duplicates are identical copies.
  std::map<std::string, const SpooledEvent*> got;
  for (const SpooledEvent& e : h.server.received) {
    auto [it, fresh] = got.emplace(e.event_id, &e);
    if (!fresh && !Same(*it->second, e)) fail("id reused: " + e.event_id);
  }
  for (const SpooledEvent& e : durable) {
    auto it = got.find(e.event_id);
    if (it == got.end()) {
      fail("lost " + e.event_id);
    } else if (!Same(*it->second, e)) {
      fail("altered " + e.event_id);
    }
  }
  return ops;
}

class CrashPointTest : public ::testing::TestWithParam<CrashScenario> {};

TEST_P(CrashPointTest, EveryCrashPointEndsConsistent) {
  // The disk of a healthy host on rel-a.
  std::map<std::string, std::string> disk;
  {
    Harness h;
    RunningA(h);
    disk = h.fs.files();
  }
  std::vector<std::string> failures;
  // Without a crash first: how many durable steps the run takes.
  const int64_t ops = RunCrashCase(
      GetParam(), -1, MemoryFileSystem::CrashMode::kBefore, disk, &failures);
  ASSERT_THAT(failures, ElementsAre());
  ASSERT_GT(ops, 20);
  // Crash points that matter most are the apply's (the first few dozen);
  // every one is covered, then the steady state.
  int runs = 0;
  for (int64_t k = 0; k < ops; ++k) {
    for (auto mode : {MemoryFileSystem::CrashMode::kBefore,
                      MemoryFileSystem::CrashMode::kTorn,
                      MemoryFileSystem::CrashMode::kAfter}) {
      RunCrashCase(GetParam(), k, mode, disk, &failures);
      ++runs;
    }
  }
  EXPECT_THAT(failures, ElementsAre()) << runs << " runs";
  std::printf("%s: %lld crash points x 3 modes\n", GetParam().name,
              static_cast<long long>(ops));
  EXPECT_GE(runs, 60);
}

INSTANTIATE_TEST_SUITE_P(
    Scenarios, CrashPointTest,
    ::testing::Values(CrashScenario{"good_release", false},
                      CrashScenario{"boot_looping_release", true}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace ringfence
