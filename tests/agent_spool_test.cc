// Tests of the agent's telemetry spool (agent.h EventSpool): framing,
// recovery of torn and corrupt tails, the ack cursor, the size cap, and
// randomized crashes at any file operation.
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/agent.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

constexpr char kDir[] = "/s/spool";

TelemetryEvent Ev(int i) {
  TelemetryEvent e;
  e.host_id = "host-1";
  e.type = i % 2 ? EventType::kHeartbeat : EventType::kSignal;
  e.time = absl::FromUnixSeconds(1700000000 + i);
  e.release_id = absl::StrCat("r", i % 3);
  e.signal = i % 2 ? "" : "some_signal";
  e.boot_id = i;
  return e;
}

bool Same(const SpooledEvent& a, const SpooledEvent& b) {
  return a.seq == b.seq && a.event_id == b.event_id &&
         a.boot_count == b.boot_count && a.event.host_id == b.event.host_id &&
         a.event.type == b.event.type && a.event.time == b.event.time &&
         a.event.release_id == b.event.release_id &&
         a.event.signal == b.event.signal &&
         a.event.boot_id == b.event.boot_id && a.event.clean == b.event.clean;
}

TEST(EventSpoolTest, RoundTripsAndAcks) {
  MemoryFileSystem fs;
  auto spool = *EventSpool::Open(&fs, kDir);
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(spool->Append(absl::StrCat("e", i), Ev(i), i).status());
  }
  auto reopened = *EventSpool::Open(&fs, kDir);
  std::vector<SpooledEvent> a = spool->Pending(100), b = reopened->Pending(100);
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(Same(a[i], b[i])) << i;
    EXPECT_EQ(b[i].event_id, absl::StrCat("e", i));
    EXPECT_EQ(b[i].boot_count, static_cast<uint32_t>(i));
  }
  ASSERT_OK(reopened->Ack(b[6].seq));
  EXPECT_EQ(reopened->pending_count(), 3u);
  auto again = *EventSpool::Open(&fs, kDir);
  ASSERT_EQ(again->pending_count(), 3u);
  EXPECT_EQ(again->Pending(1)[0].event_id, "e7");
  // New appends continue the sequence.
  EXPECT_EQ(*again->Append("e10", Ev(10)), 11u);
}

TEST(EventSpoolTest, TornAndCorruptTailsAreIgnored) {
  MemoryFileSystem fs;
  {
    auto spool = *EventSpool::Open(&fs, kDir);
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK(spool->Append(absl::StrCat("e", i), Ev(i)).status());
    }
  }
  std::string* seg = nullptr;
  for (auto& [path, data] : fs.files()) {
    if (path.find("seg-") != std::string::npos) seg = &data;
  }
  ASSERT_NE(seg, nullptr);
  const std::string intact = *seg;
  // Torn: a partial fourth record.
  *seg = intact + intact.substr(0, 13);
  {
    auto spool = *EventSpool::Open(&fs, kDir);
    EXPECT_EQ(spool->pending_count(), 3u);
    // Appends after a torn tail go to a new segment and survive.
    ASSERT_OK(spool->Append("e3", Ev(3)).status());
    auto reopened = *EventSpool::Open(&fs, kDir);
    ASSERT_EQ(reopened->pending_count(), 4u);
    EXPECT_EQ(reopened->Pending(4)[3].event_id, "e3");
  }
  // Corrupt: a flipped byte in the second record drops it and what follows
  // in that segment.
  fs.files().clear();
  {
    auto spool = *EventSpool::Open(&fs, kDir);
    for (int i = 0; i < 3; ++i) {
      ASSERT_OK(spool->Append(absl::StrCat("e", i), Ev(i)).status());
    }
  }
  for (auto& [path, data] : fs.files()) {
    if (path.find("seg-") != std::string::npos) {
      data[data.size() / 2] ^= 0x40;
    }
  }
  auto spool = *EventSpool::Open(&fs, kDir);
  EXPECT_EQ(spool->pending_count(), 1u);
}

TEST(EventSpoolTest, CapDropsOldestAndCountsTheLoss) {
  MemoryFileSystem fs;
  SpoolOptions opt{.max_bytes = 1024, .segment_bytes = 256};
  auto spool = *EventSpool::Open(&fs, kDir, opt);
  for (int i = 0; i < 100; ++i) {
    ASSERT_OK(spool->Append(absl::StrCat("e", i), Ev(i)).status());
    EXPECT_LE(spool->bytes(), opt.max_bytes);
  }
  EXPECT_GT(spool->dropped_events(), 0u);
  EXPECT_EQ(spool->pending_count() + spool->dropped_events(), 100u);
  // The newest survive; the loss is durable.
  EXPECT_EQ(spool->Pending(1000).back().event_id, "e99");
  auto reopened = *EventSpool::Open(&fs, kDir, opt);
  EXPECT_EQ(reopened->dropped_events(), spool->dropped_events());
  EXPECT_EQ(reopened->pending_count(), spool->pending_count());
}

TEST(EventSpoolTest, AckedSegmentsAreRemoved) {
  MemoryFileSystem fs;
  SpoolOptions opt{.max_bytes = 1 << 20, .segment_bytes = 256};
  auto spool = *EventSpool::Open(&fs, kDir, opt);
  uint64_t last = 0;
  for (int i = 0; i < 50; ++i)
    last = *spool->Append(absl::StrCat("e", i), Ev(i));
  ASSERT_OK(spool->Ack(last));
  EXPECT_EQ(spool->pending_count(), 0u);
  EXPECT_LE(spool->bytes(), opt.segment_bytes);
  EXPECT_LE(fs.List(kDir)->size(), 2u);  // ack + at most the open tail
}

// Crashes at random file operations (any mode), random send failures and
// re-sends: the server ends with every event whose append returned OK,
// nothing that was never appended, and duplicates only as identical
// copies of one id.
TEST(EventSpoolTest, RandomCrashesLoseNothing) {
  constexpr MemoryFileSystem::CrashMode kModes[] = {
      MemoryFileSystem::CrashMode::kBefore, MemoryFileSystem::CrashMode::kTorn,
      MemoryFileSystem::CrashMode::kAfter};
  int crashes = 0, duplicates = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937_64 rng(seed);
    MemoryFileSystem fs(seed);
    SpoolOptions opt{.max_bytes = 1 << 20, .segment_bytes = 300};
    auto spool = *EventSpool::Open(&fs, kDir, opt);
    std::set<std::string> produced, maybe;
    std::map<std::string, SpooledEvent> server;
    int next = 0;
    for (int step = 0; step < 300; ++step) {
      if (rng() % 15 == 0) {
        fs.CrashAtMutation(rng() % 4, kModes[rng() % 3]);
      }
      if (rng() % 3 != 0) {
        const std::string id = absl::StrCat("e", next);
        absl::StatusOr<uint64_t> seq = spool->Append(id, Ev(next));
        ++next;
        (seq.ok() ? produced : maybe).insert(id);
      } else {
        std::vector<SpooledEvent> batch = spool->Pending(1 + rng() % 8);
        if (!batch.empty() && rng() % 4 != 0) {
          for (const SpooledEvent& e : batch) {
            auto [it, fresh] = server.emplace(e.event_id, e);
            if (!fresh) {
              ++duplicates;
              ASSERT_TRUE(Same(it->second, e)) << e.event_id;
            }
          }
          spool->Ack(batch.back().seq).IgnoreError();
        }
      }
      if (fs.crashed()) {
        ++crashes;
        fs.Reboot();
        absl::StatusOr<std::unique_ptr<EventSpool>> s =
            EventSpool::Open(&fs, kDir, opt);
        ASSERT_OK(s.status());
        spool = *std::move(s);
      }
    }
    fs.Reboot();  // cancels a crash still scheduled
    while (spool->pending_count() > 0) {
      std::vector<SpooledEvent> batch = spool->Pending(16);
      for (const SpooledEvent& e : batch) {
        auto [it, fresh] = server.emplace(e.event_id, e);
        if (!fresh) {
          ASSERT_TRUE(Same(it->second, e)) << e.event_id;
        }
      }
      ASSERT_OK(spool->Ack(batch.back().seq));
    }
    EXPECT_EQ(spool->dropped_events(), 0u);
    for (const std::string& id : produced) {
      EXPECT_TRUE(server.count(id)) << "lost " << id;
    }
    for (const auto& [id, e] : server) {
      EXPECT_TRUE(produced.count(id) || maybe.count(id)) << "invented " << id;
    }
  }
  EXPECT_GT(crashes, 500);
  EXPECT_GT(duplicates, 0);
}

}  // namespace
}  // namespace ringfence
