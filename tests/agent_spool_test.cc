// Tests of the agent's telemetry spool (agent.h EventSpool): framing,
// recovery of torn and corrupt tails, the ack cursor, the size cap, and
// randomized crashes at any file operation.
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/agent.h"
#include "ringfence/agent_fs.h"
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
  EXPECT_LE(fs.List(kDir)->size(), 2u);  // cursor + at most the open tail
}

// The cursor's two slots (agent.h): each acknowledgement writes the other
// slot, so a damaged newest slot falls back to the acknowledgement before
// it, never to an older one and never to an error.
TEST(EventSpoolTest, ADamagedNewestCursorSlotFallsBackToThePreviousAck) {
  const std::string cursor = absl::StrCat(kDir, "/cursor");
  for (int acks = 2; acks <= 5; ++acks) {
    SCOPED_TRACE(absl::StrCat(acks, " acks"));
    MemoryFileSystem fs;
    auto spool = *EventSpool::Open(&fs, kDir);
    std::vector<uint64_t> seqs;
    for (int i = 0; i < 10; ++i) {
      seqs.push_back(*spool->Append(absl::StrCat("e", i), Ev(i)));
    }
    for (int a = 0; a < acks; ++a) ASSERT_OK(spool->Ack(seqs[a]));
    EXPECT_EQ(EventSpool::ReadCursor(&fs, kDir)->acked, seqs[acks - 1]);
    // The newest generation is `acks`, in slot (acks - 1) % 2.
    fs.files()[cursor][((acks - 1) % 2) * 4096 + 9] ^= 0x40;
    auto reopened = *EventSpool::Open(&fs, kDir);
    EXPECT_EQ(reopened->acked_seq(), seqs[acks - 2]);
    EXPECT_EQ(reopened->pending_count(), 10u - (acks - 1));
    // The next acknowledgement overwrites the damaged slot.
    ASSERT_OK(reopened->Ack(seqs[acks]));
    EXPECT_EQ(EventSpool::Open(&fs, kDir).value()->acked_seq(), seqs[acks]);
  }
}

TEST(EventSpoolTest, BothCursorSlotsDamagedIsDataLoss) {
  MemoryFileSystem fs;
  auto spool = *EventSpool::Open(&fs, kDir);
  for (int i = 0; i < 3; ++i) ASSERT_OK(spool->Append("e", Ev(i)).status());
  ASSERT_OK(spool->Ack(1));
  ASSERT_OK(spool->Ack(2));
  std::string& cursor = fs.files()[absl::StrCat(kDir, "/cursor")];
  cursor[20] ^= 1;
  cursor[4096 + 20] ^= 1;
  EXPECT_THAT(EventSpool::Open(&fs, kDir),
              testing::StatusIs(absl::StatusCode::kDataLoss));
}

TEST(EventSpoolTest, ATornFirstCursorWriteMeansNoCursor) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    MemoryFileSystem fs(seed);
    auto spool = *EventSpool::Open(&fs, kDir);
    for (int i = 0; i < 3; ++i) ASSERT_OK(spool->Append("e", Ev(i)).status());
    fs.CrashAtMutation(0, MemoryFileSystem::CrashMode::kTorn);
    EXPECT_FALSE(spool->Ack(2).ok());
    fs.Reboot();
    auto reopened = *EventSpool::Open(&fs, kDir);
    EXPECT_EQ(reopened->acked_seq(), 0u);
    EXPECT_EQ(reopened->pending_count(), 3u);
  }
}

// A file system whose removes of the old format's `ack` fail (an I/O error,
// not a crash) until told otherwise.
class AckRemoveFails final : public AgentFileSystem {
 public:
  explicit AckRemoveFails(MemoryFileSystem* fs) : fs_(fs) {}
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    return fs_->ReadFile(path);
  }
  absl::Status WriteFileAtomically(const std::string& path,
                                   absl::string_view contents) override {
    return fs_->WriteFileAtomically(path, contents);
  }
  absl::Status AppendDurably(const std::string& path,
                             absl::string_view data) override {
    return fs_->AppendDurably(path, data);
  }
  absl::Status WriteAtDurably(const std::string& path, uint64_t offset,
                              absl::string_view data) override {
    return fs_->WriteAtDurably(path, offset, data);
  }
  absl::Status Remove(const std::string& path) override {
    if (fail && absl::EndsWith(path, "/ack")) {
      return absl::InternalError("cannot remove: I/O error");
    }
    return fs_->Remove(path);
  }
  absl::StatusOr<std::vector<std::string>> List(
      const std::string& dir) override {
    return fs_->List(dir);
  }
  absl::Status MakeDirs(const std::string& dir) override {
    return fs_->MakeDirs(dir);
  }
  bool fail = true;

 private:
  MemoryFileSystem* fs_;
};

// The old `ack` is superseded once a cursor is written: failing to remove
// it fails nothing (the acknowledgement took effect; before, it stranded
// the acknowledged events in the pending queue, to be sent again and
// again), and the next write tries again.
TEST(EventSpoolTest, AnOldAckThatCannotBeRemovedFailsNoAcknowledgement) {
  MemoryFileSystem mem;
  AckRemoveFails fs(&mem);
  {
    auto spool = *EventSpool::Open(&fs, kDir);
    for (int i = 0; i < 8; ++i) ASSERT_OK(spool->Append("e", Ev(i)).status());
  }
  ASSERT_OK(mem.WriteFileAtomically(absl::StrCat(kDir, "/ack"), "2 0\n"));
  auto spool = *EventSpool::Open(&fs, kDir);
  ASSERT_EQ(spool->pending_count(), 6u);
  ASSERT_OK(spool->Ack(5));
  EXPECT_EQ(spool->pending_count(), 3u);
  EXPECT_EQ(spool->Pending(1)[0].seq, 6u);
  EXPECT_TRUE(mem.files().count(absl::StrCat(kDir, "/ack")));
  EXPECT_EQ(EventSpool::Open(&fs, kDir).value()->acked_seq(), 5u);
  fs.fail = false;
  ASSERT_OK(spool->Ack(6));
  EXPECT_FALSE(mem.files().count(absl::StrCat(kDir, "/ack")));
  EXPECT_EQ(EventSpool::Open(&fs, kDir).value()->acked_seq(), 6u);
}

// A spool from before the two-slot cursor: its `ack` file is read, and
// removed once the first cursor is written.
TEST(EventSpoolTest, AnOldAckFileIsReadAndReplacedByTheCursor) {
  MemoryFileSystem fs;
  {
    auto spool = *EventSpool::Open(&fs, kDir);
    for (int i = 0; i < 8; ++i) ASSERT_OK(spool->Append("e", Ev(i)).status());
  }
  ASSERT_OK(fs.WriteFileAtomically(absl::StrCat(kDir, "/ack"), "5 2\n"));
  auto spool = *EventSpool::Open(&fs, kDir);
  EXPECT_EQ(spool->acked_seq(), 5u);
  EXPECT_EQ(spool->dropped_events(), 2u);
  EXPECT_EQ(spool->pending_count(), 3u);
  ASSERT_OK(spool->Ack(6));
  EXPECT_FALSE(fs.files().count(absl::StrCat(kDir, "/ack")));
  auto reopened = *EventSpool::Open(&fs, kDir);
  EXPECT_EQ(reopened->acked_seq(), 6u);
  EXPECT_EQ(reopened->dropped_events(), 2u);
  ASSERT_OK(fs.WriteFileAtomically(absl::StrCat(kDir, "/ack"), "garbage"));
  // A valid cursor wins over any `ack` left behind.
  EXPECT_EQ(EventSpool::Open(&fs, kDir).value()->acked_seq(), 6u);
  fs.files().erase(absl::StrCat(kDir, "/cursor"));
  EXPECT_THAT(EventSpool::Open(&fs, kDir),
              testing::StatusIs(absl::StatusCode::kDataLoss));
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
    // The cursor survives a crash exactly: the last acknowledgement that
    // returned OK, or the one the crash interrupted.
    uint64_t acked = 0, acking = 0;
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
          acking = std::max(acked, batch.back().seq);
          if (spool->Ack(batch.back().seq).ok()) acked = acking;
        }
      }
      if (fs.crashed()) {
        ++crashes;
        fs.Reboot();
        absl::StatusOr<std::unique_ptr<EventSpool>> s =
            EventSpool::Open(&fs, kDir, opt);
        ASSERT_OK(s.status());
        spool = *std::move(s);
        ASSERT_TRUE(spool->acked_seq() == acked || spool->acked_seq() == acking)
            << spool->acked_seq() << " after acks to " << acked << " and "
            << acking;
        acked = acking = spool->acked_seq();
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
