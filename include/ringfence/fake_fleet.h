// FakeFleet: a small emulated fleet of agents for examples and tests.
//
// Each host polls Controller::Assign every `poll_interval`, reports
// `applying`/`applied` when its assignment changes, heartbeats, and crashes at
// a baseline hazard. A release can be given a behaviour: boot-looping (the
// host dies while applying and never reports again), a crash-rate multiplier,
// or a chance of crashing on apply. Driven by a FakeClock; deterministic for a
// given seed.
//
// This is a test utility, not the detection simulator (that one is built for
// millions of hosts and scenario files).
//
// Thread safety: not thread-safe; drive it from one thread.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"

namespace ringfence {

struct FakeFleetOptions {
  int hosts = 1000;
  std::string content_type = "channel-file/291";
  // How often each host polls and heartbeats (default 60s).
  absl::Duration poll_interval = absl::Seconds(60);
  // Baseline crash hazard per host-hour (default 0.001).
  double crash_per_host_hour = 0.001;
  // The first `dogfood_hosts` hosts carry the label "ring:dogfood".
  int dogfood_hosts = 20;
  // Host i belongs to tenant "tenant-<i % tenants>".
  int tenants = 50;
  // Release every host runs at the start ("" = none).
  std::string initial_release;
  uint64_t seed = 1;
};

struct ReleaseBehavior {
  // The host dies while loading the release and never reports again.
  bool boot_loop = false;
  // Multiplies the baseline crash hazard while the release runs.
  double crash_multiplier = 1.0;
  // Chance the host crashes (and reboots, unclean) when it loads the release.
  double crash_on_apply = 0.0;
};

class FakeFleet {
 public:
  FakeFleet(Controller* controller, FakeClock* clock, FakeFleetOptions options);

  void SetBehavior(const std::string& release_id, ReleaseBehavior behavior);

  // Step
  //
  // Advances the clock by `step`; hosts due to poll do so; their events are
  // ingested as one batch; then the controller's gate ticks.
  absl::Status Step(absl::Duration step);

  // Hosts currently running `release_id`.
  int Running(const std::string& release_id) const;
  // Hosts that died boot-looping.
  int Dead() const;
  // Distinct hosts that crashed or died while running a non-initial release.
  int Hurt() const;
  const std::string& host_id(int i) const { return hosts_[i].info.host_id; }

 private:
  struct Host {
    HostInfo info;
    std::string running;
    absl::Time next_poll;
    bool dead = false;
    bool hurt = false;
  };

  Controller* const controller_;
  FakeClock* const clock_;
  const FakeFleetOptions options_;
  std::mt19937_64 rng_;
  std::vector<Host> hosts_;
  absl::flat_hash_map<std::string, ReleaseBehavior> behaviors_;
};

}  // namespace ringfence
