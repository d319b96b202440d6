#include "ringfence/clock.h"

#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace ringfence {
namespace {

TEST(FakeClockTest, StartsAtAFixedTimeAndOnlyMovesWhenTold) {
  FakeClock clock;
  const absl::Time t0 = clock.Now();
  EXPECT_EQ(t0, absl::FromUnixSeconds(1700000000));
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(absl::Minutes(90));
  EXPECT_EQ(clock.Now(), t0 + absl::Minutes(90));
  clock.Set(t0 + absl::Hours(5));
  EXPECT_EQ(clock.Now(), t0 + absl::Hours(5));
}

TEST(FakeClockTest, ConcurrentAdvancesAllCount) {
  FakeClock clock(absl::UnixEpoch());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&clock] {
      for (int i = 0; i < 1000; ++i) clock.Advance(absl::Milliseconds(1));
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(clock.Now(), absl::UnixEpoch() + absl::Seconds(4));
}

TEST(RealClockTest, TracksTheWallClock) {
  const absl::Time before = absl::Now();
  const absl::Time now = RealClock().Now();
  EXPECT_GE(now, before);
  EXPECT_LE(now - before, absl::Seconds(5));
}

TEST(MonotonicClockTest, NeverGoesBackAndMeasuresIntervals) {
  const Clock& clock = MonotonicClock();
  absl::Time last = clock.Now();
  for (int i = 0; i < 1000; ++i) {
    const absl::Time now = clock.Now();
    ASSERT_GE(now, last);
    last = now;
  }
  const absl::Time start = clock.Now();
  absl::SleepFor(absl::Milliseconds(20));
  const absl::Duration slept = clock.Now() - start;
  EXPECT_GE(slept, absl::Milliseconds(20));
  EXPECT_LE(slept, absl::Seconds(5));
}

}  // namespace
}  // namespace ringfence
