#include "ringfence/clock.h"

#include <cassert>
#include <chrono>

#include "absl/time/clock.h"

namespace ringfence {
namespace {

class RealClockImpl final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

class MonotonicClockImpl final : public Clock {
 public:
  absl::Time Now() const override {
    return absl::UnixEpoch() +
           absl::FromChrono(
               std::chrono::steady_clock::now().time_since_epoch());
  }
};

}  // namespace

const Clock& RealClock() {
  static const RealClockImpl* const clock = new RealClockImpl;
  return *clock;
}

const Clock& MonotonicClock() {
  static const MonotonicClockImpl* const clock = new MonotonicClockImpl;
  return *clock;
}

FakeClock::FakeClock(absl::Time start) : now_ns_(absl::ToUnixNanos(start)) {}

absl::Time FakeClock::Now() const {
  return absl::FromUnixNanos(now_ns_.load(std::memory_order_acquire));
}

void FakeClock::Advance(absl::Duration d) {
  assert(d >= absl::ZeroDuration());
  now_ns_.fetch_add(absl::ToInt64Nanoseconds(d), std::memory_order_acq_rel);
}

void FakeClock::Set(absl::Time t) {
  now_ns_.store(absl::ToUnixNanos(t), std::memory_order_release);
}

}  // namespace ringfence
