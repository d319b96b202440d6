// Clock: the one way ringfence reads time.
//
// Every component that needs the current time takes a `const Clock&` (or
// pointer) so tests and the simulator can drive hours of rollout in
// milliseconds with a FakeClock.
//
// Thread safety: all methods of both implementations may be called from any
// thread concurrently.
#pragma once

#include <atomic>
#include <memory>

#include "absl/time/time.h"

namespace ringfence {

class Clock {
 public:
  virtual ~Clock() = default;

  // Now
  //
  // Returns the current time.
  virtual absl::Time Now() const = 0;
};

// RealClock
//
// Returns the process-wide wall clock.
const Clock& RealClock();

// MonotonicClock
//
// Returns a clock that never jumps (CLOCK_MONOTONIC, std::steady_clock): its
// times are the Unix epoch plus the time since an unspecified start, so they
// mean nothing as dates. For measuring intervals that must hold when the
// wall clock is stepped (NTP, an operator), e.g. how long a lease surely
// lasts (service/replica_lease.h).
const Clock& MonotonicClock();

// FakeClock
//
// A clock that only moves when told to. Starts at `start` (default: the Unix
// epoch plus 1,700,000,000 s, a date in 2023, so times are never zero).
class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000));

  absl::Time Now() const override;

  // Advance
  //
  // Moves the clock forward by `d`. REQUIRES: d >= 0.
  void Advance(absl::Duration d);

  // Set
  //
  // Moves the clock to `t`. REQUIRES: t >= Now().
  void Set(absl::Time t);

 private:
  std::atomic<int64_t> now_ns_;
};

}  // namespace ringfence
