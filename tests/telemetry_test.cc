#include "ringfence/telemetry.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/clock.h"
#include "ringfence/hash.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kRelease[] = "rel-2";

TelemetryEvent Ev(const std::string& host, EventType type,
                  const std::string& release = "") {
  TelemetryEvent e;
  e.host_id = host;
  e.type = type;
  e.release_id = release;
  return e;
}

std::string Host(int i) { return absl::StrFormat("host-%05d", i); }

class TrackerTest : public ::testing::Test {
 protected:
  TrackerTest() { Reset(3); }

  void Reset(int stages) {
    TrackerOptions o;
    o.num_stages = stages;
    o.release_id = kRelease;
    o.signals = {"crash", "unclean_reboot", "silent", "apply_stuck",
                 "av_scan_failed"};
    tracker_ = std::make_unique<RolloutTracker>(o, &clock_);
    SignalRule crash;
    crash.set_signal("crash");
    crash.set_compare_with_control(true);
    SignalRule silent;
    silent.set_signal("silent");
    silent.set_compare_with_control(true);
    tracker_->SetRules({crash, silent}, 0.01);
  }

  // Heartbeats from hosts [0, n) on the previous release.
  void Heartbeats(int n) {
    std::vector<TelemetryEvent> batch;
    for (int i = 0; i < n; ++i) {
      batch.push_back(Ev(Host(i), EventType::kHeartbeat, "rel-1"));
    }
    tracker_->Ingest(batch);
  }

  const SignalCounts& Counts(const TrackerSnapshot& s, absl::string_view sig) {
    for (const SignalCounts& c : s.signal_counts) {
      if (c.signal == sig) return c;
    }
    ADD_FAILURE() << "no signal " << sig;
    static SignalCounts none;
    return none;
  }

  FakeClock clock_;
  std::unique_ptr<RolloutTracker> tracker_;
};

TEST_F(TrackerTest, HeartbeatsTrackHostsAsControl) {
  Heartbeats(10);
  const TrackerSnapshot s = tracker_->Snapshot();
  EXPECT_EQ(s.tracked_hosts, 10u);
  EXPECT_EQ(s.control_hosts, 10u);
  EXPECT_EQ(s.treatment_hosts, 0u);
  EXPECT_NE(s.last_ingest, absl::InfinitePast());
}

TEST_F(TrackerTest, ApplyingTheReleaseExposesInCurrentStage) {
  Heartbeats(10);
  tracker_->SetCurrentStage(1);
  tracker_->Ingest({Ev(Host(3), EventType::kApplying, kRelease),
                    Ev(Host(4), EventType::kApplying, "other-release")});
  const TrackerSnapshot s = tracker_->Snapshot();
  EXPECT_EQ(s.treatment_hosts, 1u);
  EXPECT_EQ(s.control_hosts, 9u);
  EXPECT_EQ(s.cohorts[1].exposed, 1u);
  EXPECT_EQ(s.cohorts[0].exposed, 0u);
  EXPECT_TRUE(tracker_->IsExposed(HostKey(Host(3))));
  EXPECT_FALSE(tracker_->IsExposed(HostKey(Host(4))));
}

TEST_F(TrackerTest, CrashLoopingHostCountsOnceAndReplaysChangeNothing) {
  Heartbeats(5);
  std::vector<TelemetryEvent> batch = {
      Ev(Host(0), EventType::kApplied, kRelease),
      Ev(Host(0), EventType::kCrash), Ev(Host(0), EventType::kCrash),
      Ev(Host(0), EventType::kCrash), Ev(Host(1), EventType::kCrash)};
  tracker_->Ingest(batch);
  const TrackerSnapshot once = tracker_->Snapshot();
  tracker_->Ingest(batch);  // a replayed batch
  tracker_->Ingest(batch);
  const TrackerSnapshot thrice = tracker_->Snapshot();
  for (const TrackerSnapshot* s : {&once, &thrice}) {
    EXPECT_EQ(Counts(*s, "crash").treatment_affected, 1u);
    EXPECT_EQ(Counts(*s, "crash").control_affected, 1u);
    EXPECT_EQ(s->treatment_hosts, 1u);
    EXPECT_EQ(s->cohorts[0].applied, 1u);
  }
  EXPECT_EQ(Counts(once, "crash").e_value, Counts(thrice, "crash").e_value);
}

// K8: a host that crashed while in control (a chronic crasher) keeps that
// history when it is exposed: it is not at risk of crashing "because of"
// the release, counts neither for nor against it, and the comparison test
// is not fed its later crashes.
TEST_F(TrackerTest, ControlHistoryStaysWithTheHostWhenItIsExposed) {
  Heartbeats(3);
  tracker_->Ingest({Ev(Host(0), EventType::kCrash)});
  tracker_->Ingest({Ev(Host(0), EventType::kApplied, kRelease),
                    Ev(Host(1), EventType::kApplied, kRelease)});
  TrackerSnapshot s = tracker_->Snapshot();
  EXPECT_EQ(Counts(s, "crash").control_affected, 1u);
  EXPECT_EQ(Counts(s, "crash").control_affected_current, 0u);
  EXPECT_EQ(Counts(s, "crash").treatment_affected, 0u);
  EXPECT_EQ(Counts(s, "crash").treatment_pre_affected, 1u);
  EXPECT_EQ(Counts(s, "crash").treatment_at_risk, 1u);  // host 1 only
  const int crash = tracker_->SignalIndex("crash");
  EXPECT_EQ(s.cohorts[0].pre_affected[crash], 1u);
  const double e_before = Counts(s, "crash").e_value;
  tracker_->Ingest({Ev(Host(0), EventType::kCrash)});
  s = tracker_->Snapshot();
  EXPECT_EQ(Counts(s, "crash").treatment_affected, 0u);
  EXPECT_EQ(s.cohorts[0].affected[crash], 0u);
  EXPECT_EQ(Counts(s, "crash").e_value, e_before);
  // A host without that history counts.
  tracker_->Ingest({Ev(Host(1), EventType::kCrash)});
  s = tracker_->Snapshot();
  EXPECT_EQ(Counts(s, "crash").treatment_affected, 1u);
  EXPECT_EQ(s.cohorts[0].affected[crash], 1u);
  // Other signals of host 0 still count: only its crash history carries.
  TelemetryEvent unclean = Ev(Host(0), EventType::kBoot);
  unclean.clean = false;
  tracker_->Ingest({unclean});
  EXPECT_EQ(Counts(tracker_->Snapshot(), "unclean_reboot").treatment_affected,
            1u);
}

// The control arm's hazard, applied to a cohort's hosts at risk over the
// same hours (Nelson-Aalen): each control onset adds cohort_at_risk /
// control_at_risk.
TEST_F(TrackerTest, ControlHazardGivesEachCohortItsExpectedCount) {
  Heartbeats(1000);
  std::vector<TelemetryEvent> batch;
  for (int i = 0; i < 100; ++i) {
    batch.push_back(Ev(Host(i), EventType::kApplied, kRelease));
  }
  tracker_->Ingest(batch);  // 100 exposed, 900 control
  batch.clear();
  for (int i = 900; i < 910; ++i)
    batch.push_back(Ev(Host(i), EventType::kCrash));
  tracker_->Ingest(batch);
  const TrackerSnapshot s = tracker_->Snapshot();
  const int crash = tracker_->SignalIndex("crash");
  double want = 0, var = 0;
  for (int j = 0; j < 10; ++j) {
    want += 100.0 / (900 - j);
    var += 100.0 * 100.0 / ((900.0 - j) * (900.0 - j));
  }
  EXPECT_NEAR(s.cohorts[0].control_expected[crash], want, 1e-9);
  EXPECT_NEAR(s.cohorts[0].control_expected_var[crash], var, 1e-9);
  EXPECT_EQ(s.cohorts[1].control_expected[crash], 0);  // nobody exposed
  EXPECT_EQ(Counts(s, "crash").control_at_risk, 890u);
}

// K2: a GetAssignment check-in is not a sign of life. An exposed host that
// never sends telemetry is silent after the timeout, however often it
// checks in, and checking in again and again without coming up on the
// release is boot-loop evidence (apply_stuck) at once.
TEST_F(TrackerTest, CheckInsAreNotSignsOfLifeButRepeatedOnesAreABootLoop) {
  using Grant = RolloutTracker::Grant;
  tracker_->SetMaxStaleness(absl::Hours(1));
  tracker_->SetBootLoopAttempts(3);
  Heartbeats(20);
  const int stuck = tracker_->SignalIndex("apply_stuck");
  const int silent = tracker_->SignalIndex("silent");
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(tracker_->TryReserve(HostKey(Host(i)), 0, 10), Grant::kReserved);
    tracker_->CommitReserved(HostKey(Host(i)), 0, /*paced=*/true);
  }
  // Host 0 comes up on the release; hosts 1 and 2 begin loading it, then
  // host 1 checks in twice, host 2 three times, neither sending anything
  // else about the release.
  tracker_->Ingest({Ev(Host(0), EventType::kApplying, kRelease),
                    Ev(Host(0), EventType::kApplied, kRelease),
                    Ev(Host(0), EventType::kHeartbeat, kRelease),
                    Ev(Host(1), EventType::kApplying, kRelease),
                    Ev(Host(2), EventType::kApplying, kRelease)});
  for (int k = 0; k < 3; ++k) {
    clock_.Advance(absl::Seconds(1));
    for (int i : {0, 1, 2}) {
      if (i == 1 && k == 2) continue;
      EXPECT_EQ(tracker_->TryReserve(HostKey(Host(i)), 0, 10),
                Grant::kAlreadyExposed);
    }
  }
  TrackerSnapshot s = tracker_->Snapshot();
  EXPECT_EQ(s.cohorts[0].affected[stuck], 1u);  // host 2
  // Every host but 0 keeps heartbeating... on the old release: alive, but
  // not on the release. Host 1's check-ins keep nothing alive either.
  for (int minute = 0; minute < 11; ++minute) {
    clock_.Advance(absl::Minutes(1));
    std::vector<TelemetryEvent> batch;
    for (int i = 0; i < 20; ++i) {
      batch.push_back(
          Ev(Host(i), EventType::kHeartbeat, i == 0 ? kRelease : "rel-1"));
    }
    tracker_->Ingest(batch);
    EXPECT_EQ(tracker_->TryReserve(HostKey(Host(1)), 0, 10),
              Grant::kAlreadyExposed);
  }
  tracker_->Sweep(absl::Minutes(10), absl::Hours(1));
  s = tracker_->Snapshot();
  EXPECT_EQ(s.cohorts[0].affected[silent], 2u);  // hosts 1 and 2
  EXPECT_EQ(Counts(s, "silent").control_affected, 0u);
}

// A check-in of a host that says its telemetry is behind (a spool backlog
// after an outage of the server or of its network) is no boot-loop attempt:
// whether it came up is still on its way. When the backlog arrives it
// decides: the host came up, or its BOOT events count the attempts exactly.
TEST_F(TrackerTest, CheckInsWithTelemetryBehindAreNoAttempts) {
  using Grant = RolloutTracker::Grant;
  tracker_->SetMaxStaleness(absl::Hours(1));
  tracker_->SetBootLoopAttempts(3);
  Heartbeats(20);
  const int stuck = tracker_->SignalIndex("apply_stuck");
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(tracker_->TryReserve(HostKey(Host(i)), 0, 10), Grant::kReserved);
    tracker_->CommitReserved(HostKey(Host(i)), 0, /*paced=*/true);
  }
  for (int k = 0; k < 10; ++k) {
    clock_.Advance(absl::Seconds(1));
    for (int i : {0, 1}) {
      EXPECT_EQ(tracker_->TryReserve(HostKey(Host(i)), 0, 10,
                                     /*telemetry_behind=*/true),
                Grant::kAlreadyExposed);
    }
  }
  EXPECT_EQ(tracker_->Snapshot().cohorts[0].affected[stuck], 0u);
  // The backlogs arrive: host 0 came up; host 1 booted three times on the
  // release without coming up.
  std::vector<TelemetryEvent> backlog = {
      Ev(Host(0), EventType::kApplying, kRelease),
      Ev(Host(0), EventType::kApplied, kRelease),
      Ev(Host(0), EventType::kHeartbeat, kRelease),
      Ev(Host(1), EventType::kApplying, kRelease)};
  for (uint32_t boot = 1; boot <= 3; ++boot) {
    TelemetryEvent e = Ev(Host(1), EventType::kBoot, "");
    e.clean = false;
    e.boots_since_apply = boot;
    backlog.push_back(e);
  }
  tracker_->Ingest(backlog);
  EXPECT_EQ(tracker_->Snapshot().cohorts[0].affected[stuck], 1u);  // host 1
  // Host 2 has no backlog: its check-ins count, as always.
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(tracker_->TryReserve(HostKey(Host(2)), 0, 10),
              Grant::kAlreadyExposed);
  }
  EXPECT_EQ(tracker_->Snapshot().cohorts[0].affected[stuck], 2u);
  // Host 0 is up: nothing it does later counts as an attempt.
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(tracker_->TryReserve(HostKey(Host(0)), 0, 10),
              Grant::kAlreadyExposed);
  }
  EXPECT_EQ(tracker_->Snapshot().cohorts[0].affected[stuck], 2u);
}

// A host that polls but whose telemetry does not arrive (a one-way
// partition) is not told the release: exposed, it could neither prove
// healthy nor show harm. Once its telemetry arrives again it is granted; a
// host never heard from is not dark.
TEST_F(TrackerTest, DarkHostsAreNotExposed) {
  using Grant = RolloutTracker::Grant;
  tracker_->SetMaxStaleness(absl::Hours(1));
  tracker_->SetSilenceTimeout(absl::Minutes(5));
  Heartbeats(3);
  clock_.Advance(absl::Minutes(4));
  tracker_->Ingest({Ev(Host(1), EventType::kHeartbeat, "rel-1")});
  EXPECT_EQ(tracker_->TryReserve(HostKey(Host(0)), 0, 10), Grant::kReserved);
  tracker_->CancelReserved(0);
  clock_.Advance(absl::Minutes(2));  // host 0 and 2: 6 minutes dark
  EXPECT_EQ(tracker_->TryReserve(HostKey(Host(0)), 0, 10), Grant::kNotWatched);
  EXPECT_EQ(tracker_->TryReserve(HostKey(Host(2)), 0, RolloutTracker::kUnpaced),
            Grant::kNotWatched);
  EXPECT_EQ(tracker_->CohortGranted(0), 0u);  // no budget taken
  EXPECT_EQ(tracker_->TryReserve(HostKey(Host(1)), 0, 10), Grant::kReserved);
  EXPECT_EQ(tracker_->TryReserve(HostKey(Host(9)), 0, 10), Grant::kReserved);
  tracker_->Ingest({Ev(Host(0), EventType::kHeartbeat, "rel-1")});
  EXPECT_EQ(tracker_->TryReserve(HostKey(Host(0)), 0, 10), Grant::kReserved);
}

// Telemetry that lags: heartbeats on the previous release that a host sent
// before it began loading the release keep arriving after its exposure.
// Until its telemetry about the release arrives, each restarts its silence
// and apply clocks and drops its attempts; heartbeats on the previous release
// sent after it began loading (an apply failure) do not.
TEST_F(TrackerTest, PreLoadTelemetryRestartsTheClocks) {
  using Grant = RolloutTracker::Grant;
  tracker_->SetMaxStaleness(absl::Hours(1));
  tracker_->SetBootLoopAttempts(3);
  Heartbeats(10);
  for (int i : {0, 1}) {
    ASSERT_EQ(tracker_->TryReserve(HostKey(Host(i)), 0, 10), Grant::kReserved);
    tracker_->CommitReserved(HostKey(Host(i)), 0, /*paced=*/true);
  }
  const absl::Time t0 = clock_.Now();
  auto at = [&](int host, EventType type, const std::string& release,
                absl::Duration host_time) {
    TelemetryEvent e = Ev(Host(host), type, release);
    e.time = t0 + host_time;
    return e;
  };
  // Host 0's telemetry lags 8 minutes: for 8 minutes only heartbeats it
  // sent before its exposure arrive, while it checks in every minute. Host
  // 1 began loading at once and then keeps heartbeating the old release.
  tracker_->Ingest({at(1, EventType::kApplying, kRelease, absl::Seconds(1))});
  for (int minute = 1; minute <= 8; ++minute) {
    clock_.Advance(absl::Minutes(1));
    tracker_->Ingest(
        {at(0, EventType::kHeartbeat, "rel-1", absl::Minutes(minute - 9)),
         at(1, EventType::kHeartbeat, "rel-1", absl::Minutes(minute))});
    EXPECT_EQ(tracker_->TryReserve(HostKey(Host(0)), 0, 10),
              Grant::kAlreadyExposed);
    tracker_->Sweep(absl::Minutes(5), absl::Minutes(5));
  }
  TrackerSnapshot s = tracker_->Snapshot();
  const int stuck = tracker_->SignalIndex("apply_stuck");
  const int silent = tracker_->SignalIndex("silent");
  EXPECT_EQ(s.cohorts[0].affected[stuck], 1u);  // host 1 only
  EXPECT_EQ(s.cohorts[0].affected[silent], 1u);
  // Host 0's telemetry catches up: it began loading at its exposure.
  clock_.Advance(absl::Minutes(1));
  tracker_->Ingest({at(0, EventType::kApplying, kRelease, absl::Seconds(1)),
                    at(0, EventType::kApplied, kRelease, absl::Seconds(2)),
                    at(0, EventType::kHeartbeat, kRelease, absl::Seconds(3))});
  tracker_->Sweep(absl::Minutes(5), absl::Minutes(5));
  s = tracker_->Snapshot();
  EXPECT_EQ(s.cohorts[0].affected[stuck], 1u);
  EXPECT_EQ(s.cohorts[0].affected[silent], 1u);
}

TEST_F(TrackerTest, BootsAfterExposureCountAsAttempts) {
  tracker_->SetBootLoopAttempts(2);
  Heartbeats(5);
  tracker_->Ingest({Ev(Host(0), EventType::kApplying, kRelease),
                    Ev(Host(1), EventType::kApplying, kRelease)});
  TelemetryEvent boot0 = Ev(Host(0), EventType::kBoot);
  TelemetryEvent boot1 = Ev(Host(1), EventType::kBoot);
  tracker_->Ingest({boot0, boot1});
  // Host 1 comes up; host 0 boots again.
  tracker_->Ingest(
      {Ev(Host(1), EventType::kHeartbeat, kRelease), boot0, boot1});
  const TrackerSnapshot s = tracker_->Snapshot();
  EXPECT_EQ(Counts(s, "apply_stuck").treatment_affected, 1u);
  EXPECT_EQ(Counts(s, "unclean_reboot").treatment_affected, 0u);  // clean
}

// An agent that reports its own boot count (boots_since_apply) is counted
// by its largest report: a spool replayed after a crash, in any order and
// any number of times, counts each boot once. Property over random
// replays: apply_stuck iff the host really booted `limit` times.
TEST_F(TrackerTest, ReportedBootCountsAreIdempotentUnderReplay) {
  constexpr uint32_t kLimit = 3;
  tracker_->SetBootLoopAttempts(kLimit);
  constexpr int kHosts = 200;
  Heartbeats(kHosts);
  std::mt19937_64 rng(20261130);
  std::vector<TelemetryEvent> applying;
  for (int i = 0; i < kHosts; ++i) {
    applying.push_back(Ev(Host(i), EventType::kApplying, kRelease));
  }
  tracker_->Ingest(applying);
  int looping = 0;
  std::vector<TelemetryEvent> all;
  for (int i = 0; i < kHosts; ++i) {
    const uint32_t boots = static_cast<uint32_t>(rng() % (kLimit + 2));
    if (boots >= kLimit) ++looping;
    for (uint32_t b = 1; b <= boots; ++b) {
      // Each boot is reported 1 to 4 times (at-least-once delivery).
      const int copies = 1 + static_cast<int>(rng() % 4);
      for (int c = 0; c < copies; ++c) {
        TelemetryEvent boot = Ev(Host(i), EventType::kBoot);
        boot.boot_id = 1000 * static_cast<uint64_t>(i) + b;
        boot.boots_since_apply = b;
        all.push_back(boot);
      }
    }
  }
  std::shuffle(all.begin(), all.end(), rng);
  // Delivered in random batches.
  for (size_t at = 0; at < all.size();) {
    const size_t n = std::min<size_t>(all.size() - at, 1 + rng() % 50);
    tracker_->Ingest(
        std::vector<TelemetryEvent>(all.begin() + at, all.begin() + at + n));
    at += n;
  }
  ASSERT_GT(looping, 0);
  ASSERT_LT(looping, kHosts);
  EXPECT_EQ(Counts(tracker_->Snapshot(), "apply_stuck").treatment_affected,
            static_cast<uint64_t>(looping));
}

// Without a reported count, each boot event received is one attempt (what
// the proto documents): a boot replayed `limit` times trips the breaker.
TEST_F(TrackerTest, UncountedBootEventsEachCountAsAnAttempt) {
  tracker_->SetBootLoopAttempts(3);
  Heartbeats(1);
  tracker_->Ingest({Ev(Host(0), EventType::kApplying, kRelease)});
  TelemetryEvent boot = Ev(Host(0), EventType::kBoot);
  boot.boot_id = 7;
  tracker_->Ingest({boot, boot});
  EXPECT_EQ(Counts(tracker_->Snapshot(), "apply_stuck").treatment_affected, 0u);
  tracker_->Ingest({boot});
  EXPECT_EQ(Counts(tracker_->Snapshot(), "apply_stuck").treatment_affected, 1u);
}

// A chronic crasher (crashed and rebooted uncleanly while in control)
// reboots and checks in on its own: after its exposure its boots and
// check-ins are not boot-loop attempts. The apply timeout still applies.
TEST_F(TrackerTest, RebootsOfAChronicCrasherAreNotAttempts) {
  using Grant = RolloutTracker::Grant;
  tracker_->SetMaxStaleness(absl::Hours(1));
  tracker_->SetBootLoopAttempts(2);
  Heartbeats(5);
  TelemetryEvent unclean = Ev(Host(0), EventType::kBoot);
  unclean.clean = false;
  tracker_->Ingest({Ev(Host(0), EventType::kCrash), unclean});
  for (int i : {0, 1}) {
    ASSERT_EQ(tracker_->TryReserve(HostKey(Host(i)), 0, 10), Grant::kReserved);
    tracker_->CommitReserved(HostKey(Host(i)), 0, /*paced=*/true);
  }
  TelemetryEvent unclean1 = Ev(Host(1), EventType::kBoot);
  unclean1.clean = false;
  for (int k = 0; k < 3; ++k) {
    clock_.Advance(absl::Seconds(10));
    tracker_->Ingest({Ev(Host(0), EventType::kCrash), unclean, unclean1});
    for (int i : {0, 1}) {
      EXPECT_EQ(tracker_->TryReserve(HostKey(Host(i)), 0, 10),
                Grant::kAlreadyExposed);
    }
  }
  TrackerSnapshot s = tracker_->Snapshot();
  const int stuck = tracker_->SignalIndex("apply_stuck");
  EXPECT_EQ(s.cohorts[0].affected[stuck], 1u);  // host 1 only
  clock_.Advance(absl::Minutes(6));
  tracker_->Sweep(absl::Hours(1), absl::Minutes(5));
  s = tracker_->Snapshot();
  EXPECT_EQ(s.cohorts[0].affected[stuck], 2u);  // host 0 by the timeout
}

// One batch holds the events of one instant; the tracker takes them shard
// by shard, an order that means nothing. Two treatment crashes that happen to
// come first in a batch with a thousand control crashes do not latch the
// comparison: it is checked after the whole batch.
TEST_F(TrackerTest, ABatchIsJudgedAsAWholeNotInItsArbitraryOrder) {
  std::vector<std::string> first, rest;  // shard 0 / any other shard
  for (int i = 0; first.size() < 10 || rest.size() < 2000; ++i) {
    const std::string h = Host(i);
    if ((HostKey(h) >> 58) == 0) {
      if (first.size() < 10) first.push_back(h);
    } else if (rest.size() < 2000) {
      rest.push_back(h);
    }
  }
  // 10 hosts exposed, 2000 in control; then a batch of crashes.
  auto run = [&](std::vector<TelemetryEvent> crashes) {
    Reset(3);
    std::vector<TelemetryEvent> batch;
    for (const auto& h : rest) {
      batch.push_back(Ev(h, EventType::kHeartbeat, "rel-1"));
    }
    for (const auto& h : first) {
      batch.push_back(Ev(h, EventType::kApplied, kRelease));
      batch.push_back(Ev(h, EventType::kHeartbeat, kRelease));
    }
    tracker_->Ingest(batch);
    tracker_->Ingest(crashes);
    return Counts(tracker_->Snapshot(), "crash");
  };
  std::vector<TelemetryEvent> crashes = {Ev(first[0], EventType::kCrash),
                                         Ev(first[1], EventType::kCrash)};
  for (int i = 0; i < 1000; ++i) {
    crashes.push_back(Ev(rest[i], EventType::kCrash));
  }
  SignalCounts c = run(crashes);
  EXPECT_EQ(c.treatment_affected, 2u);
  EXPECT_EQ(c.control_affected, 1000u);
  EXPECT_FALSE(c.rejected);
  // Crashes of 3 of the 10 exposed hosts alone do trip it.
  crashes.resize(2);
  crashes.push_back(Ev(first[2], EventType::kCrash));
  EXPECT_TRUE(run(crashes).rejected);
}

// Lagging telemetry restarts an exposed host's clocks only for
// max_telemetry_lag: a host that keeps reporting the previous release, and
// never loads this one, is apply_stuck after that.
TEST_F(TrackerTest, PreLoadTelemetryHelpsOnlyWithinTheLagBudget) {
  using Grant = RolloutTracker::Grant;
  tracker_->SetMaxStaleness(absl::Hours(2));
  tracker_->SetMaxTelemetryLag(absl::Minutes(20));
  Heartbeats(3);
  ASSERT_EQ(tracker_->TryReserve(HostKey(Host(0)), 0, 10), Grant::kReserved);
  tracker_->CommitReserved(HostKey(Host(0)), 0, /*paced=*/true);
  const int stuck = tracker_->SignalIndex("apply_stuck");
  for (int minute = 1; minute <= 40; ++minute) {
    clock_.Advance(absl::Minutes(1));
    tracker_->Ingest({Ev(Host(0), EventType::kHeartbeat, "rel-1"),
                      Ev(Host(1), EventType::kHeartbeat, "rel-1")});
    tracker_->Sweep(absl::Hours(1), absl::Minutes(5));
    const uint64_t affected = tracker_->Snapshot().cohorts[0].affected[stuck];
    // Until 20 minutes in, each heartbeat restarts the apply clock; then it
    // runs out 5 minutes later.
    EXPECT_EQ(affected, minute > 25 ? 1u : 0u) << minute;
  }
}

// A host that went dark while in control never comes up on anything: once
// exposed it is not at risk of apply_stuck either (its history carries).
TEST_F(TrackerTest, AHostDarkBeforeItsExposureIsNotAtRiskOfApplyStuck) {
  using Grant = RolloutTracker::Grant;
  tracker_->SetMaxStaleness(absl::Hours(2));
  Heartbeats(3);
  clock_.Advance(absl::Minutes(11));
  tracker_->Ingest({Ev(Host(1), EventType::kHeartbeat, "rel-1"),
                    Ev(Host(2), EventType::kHeartbeat, "rel-1")});
  tracker_->Sweep(absl::Minutes(10), absl::Minutes(10));  // host 0 silent
  // A dark host is not granted the release (kNotWatched); host 0 loads it
  // on its own, reports that, and goes dark again.
  EXPECT_EQ(tracker_->TryReserve(HostKey(Host(0)), 0, 10), Grant::kNotWatched);
  tracker_->Ingest({Ev(Host(0), EventType::kApplying, kRelease)});
  ASSERT_EQ(tracker_->TryReserve(HostKey(Host(1)), 0, 10), Grant::kReserved);
  tracker_->CommitReserved(HostKey(Host(1)), 0, /*paced=*/true);
  clock_.Advance(absl::Minutes(11));
  tracker_->Ingest({Ev(Host(2), EventType::kHeartbeat, "rel-1")});
  tracker_->Sweep(absl::Minutes(10), absl::Minutes(10));
  const TrackerSnapshot s = tracker_->Snapshot();
  const int stuck = tracker_->SignalIndex("apply_stuck");
  EXPECT_EQ(s.cohorts[0].affected[stuck], 1u);      // host 1 only
  EXPECT_EQ(s.cohorts[0].pre_affected[stuck], 1u);  // host 0
  EXPECT_EQ(Counts(s, "apply_stuck").control_affected, 0u);
}

TEST_F(TrackerTest, AppliedWithoutAHeartbeatOnTheReleaseIsNotUp) {
  tracker_->SetMaxStaleness(absl::Hours(1));
  Heartbeats(3);
  tracker_->Ingest({Ev(Host(0), EventType::kApplied, kRelease),
                    Ev(Host(1), EventType::kApplied, kRelease)});
  clock_.Advance(absl::Minutes(1));
  tracker_->Ingest({Ev(Host(1), EventType::kHeartbeat, "")});  // up
  clock_.Advance(absl::Minutes(6));
  tracker_->Sweep(absl::Hours(1), absl::Minutes(5));
  EXPECT_EQ(Counts(tracker_->Snapshot(), "apply_stuck").treatment_affected, 1u);
}

// K9: signal events whose name no rule watches are counted and visible.
TEST_F(TrackerTest, UnwatchedSignalsAreCounted) {
  Heartbeats(2);
  TelemetryEvent a = Ev(Host(0), EventType::kSignal);
  a.signal = "not_tracked";
  TelemetryEvent b = Ev(Host(1), EventType::kSignal);
  b.signal = "also_not";
  tracker_->Ingest({a, a, b});
  const TrackerSnapshot s = tracker_->Snapshot();
  ASSERT_EQ(s.unwatched_signals.size(), 2u);
  EXPECT_EQ(s.unwatched_signals[0],
            (std::pair<std::string, uint64_t>("not_tracked", 2)));
  EXPECT_EQ(s.unwatched_signals[1],
            (std::pair<std::string, uint64_t>("also_not", 1)));
  // Bounded: 40 more names fold into "(other)".
  for (int i = 0; i < 40; ++i) {
    TelemetryEvent e = Ev(Host(0), EventType::kSignal);
    e.signal = absl::StrFormat("name_%d", i);
    tracker_->Ingest({e});
  }
  const TrackerSnapshot t = tracker_->Snapshot();
  ASSERT_EQ(t.unwatched_signals.size(), 32u);
  EXPECT_EQ(t.unwatched_signals.back().first, "(other)");
  uint64_t total = 0;
  for (const auto& [name, n] : t.unwatched_signals) total += n;
  EXPECT_EQ(total, 43u);
}

TEST_F(TrackerTest, UncleanBootAndCustomSignals) {
  Heartbeats(3);
  TelemetryEvent clean = Ev(Host(0), EventType::kBoot);
  TelemetryEvent unclean = Ev(Host(1), EventType::kBoot);
  unclean.clean = false;
  TelemetryEvent custom = Ev(Host(2), EventType::kSignal);
  custom.signal = "av_scan_failed";
  TelemetryEvent unknown = Ev(Host(2), EventType::kSignal);
  unknown.signal = "not_tracked";
  tracker_->Ingest({clean, unclean, custom, unknown});
  const TrackerSnapshot s = tracker_->Snapshot();
  EXPECT_EQ(Counts(s, "unclean_reboot").control_affected, 1u);
  EXPECT_EQ(Counts(s, "av_scan_failed").control_affected, 1u);
  EXPECT_EQ(tracker_->SignalIndex("not_tracked"), -1);
  ASSERT_EQ(s.unwatched_signals.size(), 1u);
  EXPECT_EQ(s.unwatched_signals[0].first, "not_tracked");
}

TEST_F(TrackerTest, SilenceIsDerivedForBothArms) {
  tracker_->SetMaxStaleness(absl::Hours(1));
  Heartbeats(4);
  tracker_->Ingest({Ev(Host(0), EventType::kApplied, kRelease)});
  clock_.Advance(absl::Minutes(5));
  // Hosts 0 and 1 keep reporting; 2 and 3 go quiet.
  tracker_->Ingest({Ev(Host(0), EventType::kHeartbeat, kRelease),
                    Ev(Host(1), EventType::kHeartbeat, "rel-1")});
  clock_.Advance(absl::Minutes(6));
  EXPECT_EQ(tracker_->Sweep(absl::Minutes(10), absl::Minutes(10)), 2u);
  TrackerSnapshot s = tracker_->Snapshot();
  EXPECT_EQ(Counts(s, "silent").control_affected, 2u);
  EXPECT_EQ(Counts(s, "silent").treatment_affected, 0u);
  // Sweeping again finds nothing new.
  EXPECT_EQ(tracker_->Sweep(absl::Minutes(10), absl::Minutes(10)), 0u);
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(tracker_->Sweep(absl::Minutes(10), absl::Minutes(10)), 2u);
  s = tracker_->Snapshot();
  EXPECT_EQ(Counts(s, "silent").treatment_affected, 1u);
  EXPECT_EQ(s.cohorts[0].affected[tracker_->SignalIndex("silent")], 1u);
}

// When telemetry stops arriving altogether (our ingest outage, a restart),
// the hosts are not silent: their silence clocks restart when data resumes.
TEST_F(TrackerTest, TelemetryGapRestartsTheSilenceClock) {
  tracker_->SetMaxStaleness(absl::Minutes(2));
  Heartbeats(4);
  clock_.Advance(absl::Hours(1));  // nothing arrives for an hour
  tracker_->Ingest({Ev(Host(0), EventType::kHeartbeat, "rel-1")});
  EXPECT_EQ(tracker_->Sweep(absl::Minutes(10), absl::Minutes(10)), 0u);
  for (int minute = 0; minute < 11; ++minute) {
    clock_.Advance(absl::Minutes(1));
    tracker_->Ingest({Ev(Host(0), EventType::kHeartbeat, "rel-1")});
  }
  // Hosts 1..3 stayed silent for 10+ minutes after telemetry resumed.
  EXPECT_EQ(tracker_->Sweep(absl::Minutes(10), absl::Minutes(10)), 3u);
}

TEST_F(TrackerTest, ApplyStuckWhenAppliedNeverComes) {
  tracker_->SetMaxStaleness(absl::Hours(1));
  Heartbeats(2);
  tracker_->Ingest({Ev(Host(0), EventType::kApplying, kRelease),
                    Ev(Host(1), EventType::kApplying, kRelease)});
  clock_.Advance(absl::Minutes(2));
  tracker_->Ingest({Ev(Host(1), EventType::kApplied, kRelease),
                    Ev(Host(1), EventType::kHeartbeat, kRelease),
                    Ev(Host(0), EventType::kHeartbeat, "rel-1")});
  clock_.Advance(absl::Minutes(4));
  tracker_->Sweep(absl::Hours(1), absl::Minutes(5));
  const TrackerSnapshot s = tracker_->Snapshot();
  EXPECT_EQ(Counts(s, "apply_stuck").treatment_affected, 1u);
  EXPECT_EQ(Counts(s, "silent").treatment_affected, 0u);
}

TEST_F(TrackerTest, HealthyNeedsAppliedAndSurvivalWithoutSignals) {
  tracker_->SetHealthyAfter(absl::Minutes(1));
  tracker_->Ingest({Ev(Host(0), EventType::kApplied, kRelease),
                    Ev(Host(1), EventType::kApplied, kRelease),
                    Ev(Host(2), EventType::kApplying, kRelease)});
  clock_.Advance(absl::Seconds(30));
  tracker_->Ingest({Ev(Host(0), EventType::kHeartbeat, kRelease)});
  EXPECT_EQ(tracker_->CohortHealthy(0), 0u);  // too early
  clock_.Advance(absl::Seconds(40));
  tracker_->Ingest({Ev(Host(0), EventType::kHeartbeat, kRelease),
                    Ev(Host(1), EventType::kCrash),
                    Ev(Host(2), EventType::kHeartbeat, "rel-1")});
  // Host 1 crashed, host 2 never applied.
  EXPECT_EQ(tracker_->CohortHealthy(0), 1u);
}

TEST_F(TrackerTest, GrantsRespectTheBudget) {
  using Grant = RolloutTracker::Grant;
  int granted = 0;
  for (int i = 0; i < 20; ++i) {
    if (tracker_->TryReserve(HostKey(Host(i)), 0, 5) == Grant::kReserved) {
      tracker_->CommitReserved(HostKey(Host(i)), 0, /*paced=*/true);
      ++granted;
    }
  }
  EXPECT_EQ(granted, 5);
  EXPECT_EQ(tracker_->CohortGranted(0), 5u);
  // An exposed host keeps its exposure without using budget.
  EXPECT_EQ(tracker_->TryReserve(HostKey(Host(0)), 0, 5),
            Grant::kAlreadyExposed);
  // A cancelled reservation gives the unit back and exposes nobody.
  EXPECT_EQ(tracker_->TryReserve(HostKey(Host(50)), 0, 6), Grant::kReserved);
  tracker_->CancelReserved(0);
  EXPECT_FALSE(tracker_->IsExposed(HostKey(Host(50))));
  EXPECT_EQ(tracker_->CohortGranted(0), 5u);
  // Hosts exposed by reporting `applying` do not use grant budget.
  tracker_->Ingest({Ev(Host(100), EventType::kApplying, kRelease)});
  EXPECT_EQ(tracker_->CohortGranted(0), 5u);
  EXPECT_EQ(tracker_->CohortExposed(0), 6u);
}

TEST_F(TrackerTest, HostHoursAccumulate) {
  Heartbeats(10);
  tracker_->Ingest({Ev(Host(0), EventType::kApplied, kRelease),
                    Ev(Host(1), EventType::kApplied, kRelease)});
  clock_.Advance(absl::Hours(3));
  const TrackerSnapshot s = tracker_->Snapshot();
  EXPECT_NEAR(s.treatment_host_hours, 6.0, 0.01);
  EXPECT_NEAR(s.control_host_hours, 8 * 3.0, 0.05);
}

TEST_F(TrackerTest, TreatmentCrashesAgainstQuietControlRejectH0) {
  Heartbeats(2000);
  std::vector<TelemetryEvent> batch;
  for (int i = 0; i < 10; ++i) {
    batch.push_back(Ev(Host(i), EventType::kApplied, kRelease));
  }
  tracker_->Ingest(batch);
  EXPECT_FALSE(Counts(tracker_->Snapshot(), "crash").rejected);
  tracker_->Ingest({Ev(Host(0), EventType::kCrash),
                    Ev(Host(1), EventType::kCrash),
                    Ev(Host(2), EventType::kCrash)});
  const SignalCounts c = Counts(tracker_->Snapshot(), "crash");
  EXPECT_TRUE(c.compared);
  EXPECT_TRUE(c.rejected);
  EXPECT_GE(c.e_value, c.e_threshold);
}

// A network outage silences every host, whatever it runs: the comparison
// with control must not blame the release. Twenty outages with different host
// populations; at most a few percent may falsely reject (alpha = 0.01 per
// rollout, split over 2 signals).
TEST_F(TrackerTest, OutageSilencingBothArmsDoesNotRejectSilence) {
  int rejected = 0;
  for (int trial = 0; trial < 20; ++trial) {
    Reset(3);
    std::vector<TelemetryEvent> batch;
    for (int i = 0; i < 2000; ++i) {
      const std::string host = absl::StrFormat("t%d-host-%d", trial, i);
      batch.push_back(Ev(host,
                         i < 100 ? EventType::kApplied : EventType::kHeartbeat,
                         i < 100 ? kRelease : "rel-1"));
    }
    tracker_->Ingest(batch);
    clock_.Advance(absl::Minutes(30));
    tracker_->Sweep(absl::Minutes(10), absl::Hours(1));
    const SignalCounts c = Counts(tracker_->Snapshot(), "silent");
    EXPECT_EQ(c.treatment_affected, 100u);
    EXPECT_EQ(c.control_affected, 1900u);
    rejected += c.rejected;
  }
  EXPECT_LE(rejected, 1);
}

// K4: a restart restores every count the halt rules read exactly, and a
// host counted before the restart is not counted again after it.
TEST_F(TrackerTest, CheckpointAndRestoreAreExact) {
  tracker_->SetMaxStaleness(absl::Hours(1));
  Heartbeats(1000);
  std::vector<TelemetryEvent> batch;
  for (int i = 0; i < 10; ++i) {
    batch.push_back(Ev(Host(i), EventType::kApplied, kRelease));
    batch.push_back(Ev(Host(i), EventType::kHeartbeat, kRelease));
  }
  batch.push_back(Ev(Host(0), EventType::kCrash));
  batch.push_back(Ev(Host(500), EventType::kCrash));
  batch.push_back(Ev(Host(501), EventType::kCrash));
  tracker_->Ingest(batch);
  // Host 501 crashed in control, then is exposed in stage 1.
  tracker_->SetCurrentStage(1);
  tracker_->Ingest({Ev(Host(501), EventType::kApplying, kRelease)});
  using Grant = RolloutTracker::Grant;
  ASSERT_EQ(tracker_->TryReserve(HostKey(Host(600)), 1, 5), Grant::kReserved);
  tracker_->CommitReserved(HostKey(Host(600)), 1, /*paced=*/true);
  TelemetryEvent boot = Ev(Host(600), EventType::kBoot);
  tracker_->Ingest({boot});  // one attempt
  const TrackerSnapshot before = tracker_->Snapshot();
  std::vector<HostEvidence> evidence;
  const config::v1::TrackerCheckpoint cp = tracker_->Checkpoint(&evidence);
  EXPECT_EQ(cp.format(), 2u);
  // Hosts 0..9 (up on the release), 500, 501 (signals) and 600 (an
  // attempt).
  EXPECT_EQ(evidence.size(), 13u);
  // Nothing changed since: the next checkpoint has no records.
  std::vector<HostEvidence> none;
  tracker_->Checkpoint(&none);
  EXPECT_TRUE(none.empty());
  // The exposures the store holds (what Controller::Load passes).
  std::vector<Exposure> exposures;
  for (int i = 0; i < 10; ++i) {
    exposures.push_back({Host(i), 0, clock_.Now(), false});
  }
  exposures.push_back({Host(501), 1, clock_.Now(), false});
  exposures.push_back({Host(600), 1, clock_.Now(), true});

  // A restart: a new tracker over the same epoch, same rules.
  TrackerOptions o;
  o.num_stages = 3;
  o.release_id = kRelease;
  o.signals = {"crash", "unclean_reboot", "silent", "apply_stuck",
               "av_scan_failed"};
  o.epoch = before.created;
  RolloutTracker restored(o, &clock_);
  SignalRule crash;
  crash.set_signal("crash");
  crash.set_compare_with_control(true);
  SignalRule silent;
  silent.set_signal("silent");
  silent.set_compare_with_control(true);
  restored.SetRules({crash, silent}, 0.01);
  restored.SetBootLoopAttempts(2);
  restored.Restore(&cp, evidence, exposures);
  const TrackerSnapshot after = restored.Snapshot();
  EXPECT_EQ(after.treatment_hosts, before.treatment_hosts);
  for (const char* sig : {"crash", "apply_stuck"}) {
    SCOPED_TRACE(sig);
    const SignalCounts& b = Counts(before, sig);
    const SignalCounts& a = Counts(after, sig);
    EXPECT_EQ(a.treatment_affected, b.treatment_affected);
    EXPECT_EQ(a.treatment_pre_affected, b.treatment_pre_affected);
    EXPECT_EQ(a.control_affected, b.control_affected);
    EXPECT_EQ(a.e_value, b.e_value);
  }
  for (int st = 0; st < 3; ++st) {
    EXPECT_EQ(after.cohorts[st].exposed, before.cohorts[st].exposed);
    EXPECT_EQ(after.cohorts[st].affected, before.cohorts[st].affected);
    EXPECT_EQ(after.cohorts[st].pre_affected, before.cohorts[st].pre_affected);
    EXPECT_EQ(after.cohorts[st].control_expected,
              before.cohorts[st].control_expected);
    EXPECT_EQ(restored.CohortGranted(st), tracker_->CohortGranted(st));
    EXPECT_NEAR(after.cohorts[st].host_hours, before.cohorts[st].host_hours,
                1e-6);
  }
  // Host 0 crashes again: counted once. Host 501 crashes: its control
  // history still holds. Host 1 crashes: counted.
  restored.Ingest({Ev(Host(0), EventType::kCrash),
                   Ev(Host(501), EventType::kCrash),
                   Ev(Host(1), EventType::kCrash)});
  const int crash_idx = restored.SignalIndex("crash");
  EXPECT_EQ(restored.Snapshot().cohorts[0].affected[crash_idx], 2u);
  EXPECT_EQ(restored.Snapshot().cohorts[1].affected[crash_idx], 0u);
  // Host 600's attempt survived: one more boot makes two.
  restored.Ingest({boot});
  EXPECT_EQ(Counts(restored.Snapshot(), "apply_stuck").treatment_affected, 1u);
}

// When an exposed host began loading is evidence too. After a restart, the
// heartbeat on the previous release that it sent after its `applying` (in
// its own clock: a host back on what it ran before) is not pre-load
// telemetry: it neither clears the host's boot attempts nor restarts its
// apply clock, exactly as without the restart.
TEST_F(TrackerTest, LoadStartSurvivesARestart) {
  tracker_->SetBootLoopAttempts(3);
  const absl::Time loading = clock_.Now();
  TelemetryEvent applying = Ev(Host(1), EventType::kApplying, kRelease);
  applying.time = loading;
  tracker_->Ingest({applying});
  clock_.Advance(absl::Seconds(10));
  TelemetryEvent boot = Ev(Host(1), EventType::kBoot);  // one attempt each
  boot.time = clock_.Now();
  tracker_->Ingest({boot});
  tracker_->Ingest({boot});
  std::vector<HostEvidence> evidence;
  const config::v1::TrackerCheckpoint cp = tracker_->Checkpoint(&evidence);
  ASSERT_EQ(evidence.size(), 1u);
  EXPECT_NE(evidence[0].loading_since, absl::InfinitePast());

  TrackerOptions o;
  o.num_stages = 3;
  o.release_id = kRelease;
  o.signals = {"crash", "unclean_reboot", "silent", "apply_stuck",
               "av_scan_failed"};
  o.epoch = tracker_->Snapshot().created;
  RolloutTracker restored(o, &clock_);
  restored.SetBootLoopAttempts(3);
  restored.Restore(&cp, evidence, {{Host(1), 0, loading, false}});
  clock_.Advance(absl::Seconds(10));
  TelemetryEvent back = Ev(Host(1), EventType::kHeartbeat, "rel-1");
  back.time = loading + absl::Seconds(5);
  restored.Ingest({back});
  boot.time = clock_.Now();
  restored.Ingest({boot});  // the third attempt
  EXPECT_EQ(Counts(restored.Snapshot(), "apply_stuck").treatment_affected, 1u);
}

// A checkpoint whose write failed hands its records back: the next one
// writes them again.
TEST_F(TrackerTest, RequeuedEvidenceIsWrittenAgain) {
  Heartbeats(5);
  tracker_->Ingest({Ev(Host(0), EventType::kCrash)});
  std::vector<HostEvidence> first;
  tracker_->Checkpoint(&first);
  ASSERT_EQ(first.size(), 1u);
  tracker_->RequeueEvidence(first);
  std::vector<HostEvidence> second;
  tracker_->Checkpoint(&second);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].host_key, HostKey(Host(0)));
}

TEST_F(TrackerTest, MemoryPerHostIsCompact) {
  TrackerOptions o;
  o.release_id = kRelease;
  o.expected_hosts = 200000;
  RolloutTracker reserved(o, &clock_);
  o.expected_hosts = 0;
  RolloutTracker grown(o, &clock_);
  std::vector<TelemetryEvent> batch;
  for (int i = 0; i < 200000; ++i) {
    batch.push_back(Ev(Host(i), EventType::kHeartbeat, "rel-1"));
  }
  reserved.Ingest(batch);
  grown.Ingest(batch);
  ASSERT_EQ(reserved.TrackedHosts(), 200000u);
  const double reserved_bytes =
      static_cast<double>(reserved.MemoryBytes()) / reserved.TrackedHosts();
  const double grown_bytes =
      static_cast<double>(grown.MemoryBytes()) / grown.TrackedHosts();
  RecordProperty("bytes_per_host_reserved", std::to_string(reserved_bytes));
  RecordProperty("bytes_per_host_grown", std::to_string(grown_bytes));
  EXPECT_LE(reserved_bytes, 32.0);
  EXPECT_LE(grown_bytes, 48.0);
}

TEST_F(TrackerTest, BorrowedEventsIngestLikeOwnedOnes) {
  std::vector<TelemetryEvent> batch = {
      Ev(Host(0), EventType::kHeartbeat, "rel-1"),
      Ev(Host(1), EventType::kApplying, kRelease),
      Ev(Host(2), EventType::kApplied, kRelease),
      Ev(Host(0), EventType::kCrash),
      Ev(Host(3), EventType::kBoot),
      Ev(Host(4), EventType::kSignal),
  };
  batch[4].clean = false;
  batch[5].signal = "av_scan_failed";
  std::vector<Exposure> owned_exposed;
  tracker_->Ingest(batch, &owned_exposed);
  const TrackerSnapshot owned = tracker_->Snapshot();

  Reset(3);
  std::vector<TelemetryEventView> views;
  std::vector<uint64_t> keys;
  for (const TelemetryEvent& e : batch) {
    views.push_back(ViewOf(e));
    keys.push_back(HostKey(e.host_id));
  }
  std::vector<Exposure> borrowed_exposed;
  tracker_->IngestKeyed(views, keys, &borrowed_exposed);
  const TrackerSnapshot borrowed = tracker_->Snapshot();

  EXPECT_EQ(borrowed.tracked_hosts, owned.tracked_hosts);
  EXPECT_EQ(borrowed.treatment_hosts, 2u);
  EXPECT_EQ(borrowed.treatment_hosts, owned.treatment_hosts);
  EXPECT_EQ(borrowed.control_hosts, owned.control_hosts);
  for (const char* signal : {"crash", "unclean_reboot", "av_scan_failed"}) {
    EXPECT_EQ(Counts(borrowed, signal).control_affected, 1u) << signal;
    EXPECT_EQ(Counts(borrowed, signal).control_affected,
              Counts(owned, signal).control_affected)
        << signal;
  }
  ASSERT_EQ(borrowed_exposed.size(), owned_exposed.size());
  for (size_t i = 0; i < owned_exposed.size(); ++i) {
    EXPECT_EQ(borrowed_exposed[i].host_id, owned_exposed[i].host_id);
    EXPECT_EQ(borrowed_exposed[i].stage, owned_exposed[i].stage);
  }
}

// The population rule (TrackerOptions::control_by_check_in), checked over
// random sessions: a tracker fed every host's telemetry, whose hosts are
// admitted at random (Admit, TryReserve) or expose themselves by reporting
// the release, must read exactly like a tracker fed only the telemetry of
// the hosts it knows at that moment. Telemetry of hosts outside the
// population changes nothing in either arm (it is only counted), whatever
// the event, its order, or the clock.
TEST(TrackerPopulationTest, HostsOutsideThePopulationChangeNothing) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SCOPED_TRACE(absl::StrFormat("seed %d", seed));
    std::mt19937_64 rng(seed);
    FakeClock clock;
    TrackerOptions o;
    o.num_stages = 3;
    o.release_id = kRelease;
    o.signals = {"crash", "unclean_reboot", "silent", "apply_stuck",
                 "av_scan_failed"};
    o.control_by_check_in = true;
    RolloutTracker all(o, &clock);  // the rule under test
    o.control_by_check_in = false;
    RolloutTracker known_only(o, &clock);  // fed what `all` may count
    std::vector<SignalRule> rules;
    for (const char* s : {"crash", "silent", "av_scan_failed"}) {
      SignalRule r;
      r.set_signal(s);
      r.set_compare_with_control(true);
      rules.push_back(r);
    }
    all.SetRules(rules, 0.05);
    known_only.SetRules(rules, 0.05);
    for (RolloutTracker* t : {&all, &known_only}) {
      t->SetSilenceTimeout(absl::Seconds(60));
      t->SetHealthyAfter(absl::Seconds(5));
    }
    constexpr int kHosts = 60;
    std::vector<bool> known(kHosts, false);
    uint64_t left_out = 0, most_control = 0;
    auto event = [&](int h) {
      static constexpr EventType kTypes[] = {
          EventType::kApplying, EventType::kApplied, EventType::kHeartbeat,
          EventType::kCrash,    EventType::kBoot,    EventType::kSignal};
      TelemetryEvent e = Ev(Host(h), kTypes[rng() % 6]);
      // Mostly other releases: exposure is the exception.
      const int r = static_cast<int>(rng() % 12);
      e.release_id = r == 0 ? kRelease : r < 4 ? "" : "rel-1";
      if (e.type == EventType::kApplying || e.type == EventType::kApplied) {
        e.release_id = r < 2 ? kRelease : "rel-1";
      }
      if (e.type == EventType::kSignal) {
        e.signal = rng() % 3 == 0 ? "disk_warning" : "av_scan_failed";
      }
      if (e.type == EventType::kBoot) {
        e.clean = rng() % 2 == 0;
        e.boots_since_apply = static_cast<uint32_t>(rng() % 3);
      }
      e.time = clock.Now() - absl::Seconds(static_cast<int64_t>(rng() % 30));
      return e;
    };
    for (int step = 0; step < 400; ++step) {
      switch (rng() % 8) {
        case 0: {  // a check-in of a targeted host
          const int h = static_cast<int>(rng() % kHosts);
          EXPECT_EQ(all.Admit(HostKey(Host(h))),
                    known_only.IsExposed(HostKey(Host(h))));
          known[h] = true;
          break;
        }
        case 1: {  // a grant attempt, paced or not
          const int h = static_cast<int>(rng() % kHosts);
          const int stage = static_cast<int>(rng() % 3);
          const uint64_t budget =
              rng() % 4 == 0 ? RolloutTracker::kUnpaced : rng() % 6;
          const uint64_t key = HostKey(Host(h));
          const auto a = all.TryReserve(key, stage, budget);
          ASSERT_EQ(a, known_only.TryReserve(key, stage, budget));
          if (a == RolloutTracker::Grant::kReserved) {
            const bool paced = budget != RolloutTracker::kUnpaced;
            all.CommitReserved(key, stage, paced);
            known_only.CommitReserved(key, stage, paced);
          }
          known[h] = true;
          break;
        }
        case 2:
          clock.Advance(absl::Seconds(static_cast<int64_t>(rng() % 40)));
          all.Sweep(absl::Seconds(60), absl::Seconds(90));
          known_only.Sweep(absl::Seconds(60), absl::Seconds(90));
          break;
        case 3: {
          const int stage = static_cast<int>(rng() % 3);
          all.SetCurrentStage(stage);
          known_only.SetCurrentStage(stage);
          break;
        }
        default: {  // a batch from random hosts
          clock.Advance(absl::Seconds(static_cast<int64_t>(rng() % 5)));
          std::vector<TelemetryEvent> batch, counted;
          for (int k = 0, n = 1 + static_cast<int>(rng() % 12); k < n; ++k) {
            const int h = static_cast<int>(rng() % kHosts);
            TelemetryEvent e = event(h);
            const bool exposes =
                e.release_id == kRelease && (e.type == EventType::kApplying ||
                                             e.type == EventType::kApplied ||
                                             e.type == EventType::kHeartbeat);
            if (exposes) known[h] = true;
            if (known[h]) {
              counted.push_back(e);
            } else {
              ++left_out;
            }
            batch.push_back(std::move(e));
          }
          all.Ingest(batch);
          known_only.Ingest(counted);
          break;
        }
      }
      const TrackerSnapshot a = all.Snapshot();
      const TrackerSnapshot b = known_only.Snapshot();
      ASSERT_EQ(a.outside_population_events, left_out);
      ASSERT_EQ(a.tracked_hosts, b.tracked_hosts) << "step " << step;
      ASSERT_EQ(a.control_hosts, b.control_hosts) << "step " << step;
      most_control = std::max(most_control, a.control_hosts);
      ASSERT_EQ(a.treatment_hosts, b.treatment_hosts) << "step " << step;
      ASSERT_DOUBLE_EQ(a.control_host_hours, b.control_host_hours);
      ASSERT_DOUBLE_EQ(a.treatment_host_hours, b.treatment_host_hours);
      ASSERT_EQ(a.signal_counts.size(), b.signal_counts.size());
      for (size_t s = 0; s < a.signal_counts.size(); ++s) {
        const SignalCounts& x = a.signal_counts[s];
        const SignalCounts& y = b.signal_counts[s];
        SCOPED_TRACE(x.signal);
        ASSERT_EQ(x.treatment_affected, y.treatment_affected);
        ASSERT_EQ(x.control_affected, y.control_affected) << "step " << step;
        ASSERT_EQ(x.control_affected_current, y.control_affected_current);
        ASSERT_EQ(x.treatment_pre_affected, y.treatment_pre_affected);
        ASSERT_EQ(x.treatment_at_risk, y.treatment_at_risk);
        ASSERT_EQ(x.control_at_risk, y.control_at_risk);
        ASSERT_DOUBLE_EQ(x.e_value, y.e_value);
        ASSERT_EQ(x.rejected, y.rejected);
      }
      ASSERT_EQ(a.cohorts.size(), b.cohorts.size());
      for (size_t c = 0; c < a.cohorts.size(); ++c) {
        ASSERT_EQ(a.cohorts[c].exposed, b.cohorts[c].exposed);
        ASSERT_EQ(a.cohorts[c].applied, b.cohorts[c].applied);
        ASSERT_EQ(a.cohorts[c].healthy, b.cohorts[c].healthy);
        ASSERT_EQ(a.cohorts[c].affected, b.cohorts[c].affected);
        ASSERT_EQ(a.cohorts[c].control_expected, b.cohorts[c].control_expected);
      }
      // A name no rule watches is listed whoever sent it.
      const auto listed = [](const TrackerSnapshot& s) {
        uint64_t n = 0;
        for (const auto& [name, count] : s.unwatched_signals) n += count;
        return n;
      };
      ASSERT_GE(listed(a), listed(b));
    }
    // The session did exercise the rule.
    EXPECT_GT(left_out, 0u);
    EXPECT_GT(most_control, 3u);
  }
}

// Without the option every reporting host is in control (callers whose
// whole fleet is the release's population), and nothing is left out.
TEST_F(TrackerTest, WithoutCheckInAdmissionEveryReporterIsControl) {
  Heartbeats(5);
  EXPECT_EQ(tracker_->Snapshot().control_hosts, 5u);
  EXPECT_EQ(tracker_->Snapshot().outside_population_events, 0u);
  EXPECT_FALSE(tracker_->Admit(HostKey(Host(7))));  // a no-op
  EXPECT_EQ(tracker_->Snapshot().control_hosts, 5u);
}

// An admitted host enters control with its first telemetry, not at its
// check-in (a check-in is not a sign of life), and is never `silent` for
// telemetry it never sent.
TEST(TrackerPopulationTest, AdmittedHostsCountFromTheirFirstTelemetry) {
  FakeClock clock;
  TrackerOptions o;
  o.release_id = kRelease;
  o.control_by_check_in = true;
  RolloutTracker t(o, &clock);
  EXPECT_FALSE(t.Admit(HostKey("a")));
  EXPECT_FALSE(t.Admit(HostKey("a")));  // idempotent
  EXPECT_EQ(t.Snapshot().control_hosts, 0u);
  clock.Advance(absl::Hours(1));
  t.Ingest({Ev("b", EventType::kHeartbeat, "rel-1")});  // not admitted
  EXPECT_EQ(t.Sweep(absl::Minutes(10), absl::Minutes(10)), 0u);
  EXPECT_EQ(t.Snapshot().control_hosts, 0u);
  EXPECT_EQ(t.Snapshot().outside_population_events, 1u);
  t.Ingest({Ev("a", EventType::kCrash)});
  const TrackerSnapshot s = t.Snapshot();
  EXPECT_EQ(s.control_hosts, 1u);
  EXPECT_EQ(s.signal_counts[t.SignalIndex("crash")].control_affected, 1u);
  // Reporting the release exposes a host that never checked in.
  t.Ingest({Ev("c", EventType::kApplying, kRelease)});
  EXPECT_EQ(t.Snapshot().treatment_hosts, 1u);
  EXPECT_TRUE(t.Admit(HostKey("c")));
}

// Admission is evidence: a checkpoint records every admitted host, heard
// from or not, and a restored tracker counts their telemetry before they
// check in again (a host that crashed while the server was down reports
// the crash first).
TEST(TrackerPopulationTest, AdmissionSurvivesARestart) {
  FakeClock clock;
  TrackerOptions o;
  o.release_id = kRelease;
  o.control_by_check_in = true;
  RolloutTracker t(o, &clock);
  t.Admit(HostKey("quiet"));  // checked in, never heard from
  t.Admit(HostKey("talker"));
  t.Ingest({Ev("talker", EventType::kHeartbeat, "rel-1")});
  std::vector<HostEvidence> evidence;
  const config::v1::TrackerCheckpoint cp = t.Checkpoint(&evidence);
  ASSERT_EQ(evidence.size(), 2u);
  for (const HostEvidence& e : evidence) {
    EXPECT_FALSE(e.exposed);
    EXPECT_EQ((e.flags & kHostEvidenceAdmittedOnly) != 0,
              e.host_key == HostKey("quiet"));
  }
  std::vector<HostEvidence> none;
  t.Checkpoint(&none);
  EXPECT_TRUE(none.empty());  // nothing changed since

  o.epoch = t.Snapshot().created;
  RolloutTracker restored(o, &clock);
  restored.Restore(&cp, evidence, {});
  EXPECT_EQ(restored.Snapshot().control_hosts, 1u);  // quiet: not yet
  TelemetryEvent boot = Ev("quiet", EventType::kBoot);
  boot.clean = false;
  restored.Ingest({boot, Ev("talker", EventType::kCrash),
                   Ev("stranger", EventType::kCrash)});
  const TrackerSnapshot s = restored.Snapshot();
  EXPECT_EQ(s.control_hosts, 2u);
  EXPECT_EQ(s.signal_counts[restored.SignalIndex("crash")].control_affected,
            1u);
  EXPECT_EQ(
      s.signal_counts[restored.SignalIndex("unclean_reboot")].control_affected,
      1u);
  EXPECT_EQ(s.outside_population_events, 1u);  // the stranger's crash
  // Heard from now: its record says so.
  std::vector<HostEvidence> after;
  restored.Checkpoint(&after);
  bool quiet_rewritten = false;
  for (const HostEvidence& e : after) {
    if (e.host_key != HostKey("quiet")) continue;
    quiet_rewritten = true;
    EXPECT_EQ(e.flags & kHostEvidenceAdmittedOnly, 0u);
  }
  EXPECT_TRUE(quiet_rewritten);
}

TEST(ValidateTelemetryBatchTest, BorrowedEventsGetTheSameErrors) {
  std::vector<TelemetryEvent> batch = {Ev("h1", EventType::kHeartbeat),
                                       Ev("h 2", EventType::kHeartbeat)};
  std::vector<TelemetryEventView> views = {ViewOf(batch[0]), ViewOf(batch[1])};
  EXPECT_THAT(ValidateTelemetryBatch(views),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("events[1].host_id: must match")));
  EXPECT_EQ(ValidateTelemetryBatch(views), ValidateTelemetryBatch(batch));
  EXPECT_THAT(ValidateTelemetryBatch(views, 1),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("at most 1 events per batch (got 2)")));
}

TEST(ValidateTelemetryBatchTest, NamesTheEventAndField) {
  std::vector<TelemetryEvent> batch = {Ev("h1", EventType::kHeartbeat),
                                       Ev("", EventType::kHeartbeat)};
  EXPECT_THAT(ValidateTelemetryBatch(batch),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("events[1].host_id: must not be empty")));
  batch = {Ev("h1", EventType::kApplying, "")};
  EXPECT_THAT(ValidateTelemetryBatch(batch),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("events[0].release_id: must not be empty")));
  batch = {Ev("h1", EventType::kSignal)};
  EXPECT_THAT(ValidateTelemetryBatch(batch),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("events[0].signal: a signal event's name "
                                 "must match [a-z0-9_]{1,64} (got 0 "
                                 "characters)")));
  // K9: a name no rule could ever match is refused, not dropped.
  batch[0].signal = "Bad-Name";
  EXPECT_THAT(ValidateTelemetryBatch(batch),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("events[0].signal: a signal event's name "
                                 "must match [a-z0-9_]{1,64} (got 8 "
                                 "characters)")));
  batch[0].signal = std::string(65, 'a');
  EXPECT_FALSE(ValidateTelemetryBatch(batch).ok());
  batch[0].signal = "latency_regression";
  EXPECT_TRUE(ValidateTelemetryBatch(batch).ok());
  batch = {Ev("h 1", EventType::kHeartbeat)};
  EXPECT_THAT(ValidateTelemetryBatch(batch),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("events[0].host_id: must match")));
  TelemetryEvent bad = Ev("h1", EventType::kHeartbeat);
  bad.type = static_cast<EventType>(42);
  EXPECT_THAT(ValidateTelemetryBatch({bad}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("events[0].type: unknown event type 42")));
  batch.assign(11, Ev("h1", EventType::kHeartbeat));
  EXPECT_THAT(ValidateTelemetryBatch(batch, 10),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("at most 10 events per batch (got 11)")));
  EXPECT_TRUE(ValidateTelemetryBatch(std::vector<TelemetryEvent>()).ok());
  EXPECT_TRUE(ValidateTelemetryBatch(std::vector<TelemetryEventView>()).ok());
}

}  // namespace
}  // namespace ringfence
