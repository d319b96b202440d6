// The simulator's fleet: the hosts a Scenario describes, drawn for one seed.
// Internal to lib/sim.
//
// Thread safety: DrawFleet is reentrant; a SimHosts is a plain value.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringfence/assign.h"
#include "ringfence/sim.h"

namespace ringfence::internal {

// Per-host traits.
enum : uint8_t {
  kTraitChronic = 1,   // crashes whatever it runs
  kTraitFlapper = 2,   // network flaps
  kTraitDogfood = 4,   // carries "ring:dogfood" (fleet.dogfood_hosts)
  kTraitAffected = 8,  // the effect applies to it (targeting)
  kTraitPinned = 16,   // its tenant's track is TRACK_PINNED
};

inline constexpr char kDogfoodLabel[] = "ring:dogfood";

struct SimHosts {
  uint32_t n = 0;
  // Distinct attribute values; hosts store indices into them.
  std::vector<std::string> versions, platforms, regions, tenants, segments;
  std::vector<double> tz_offsets_hours;
  std::vector<std::vector<std::string>> segment_labels;
  std::vector<uint8_t> version, platform, region, tenant, tz, segment;
  std::vector<uint8_t> traits;
  // Baseline crash hazard of each host relative to
  // behavior.crash_per_host_hour (frailty x segment multiplier); empty when
  // every host is 1.
  std::vector<float> crash_weight;
  float max_crash_weight = 1;
  // Per-host delivery lag class (index into telemetry.host_lags; empty
  // when there are no classes).
  std::vector<uint8_t> lag_class;
  // Tenant tracks, for ControllerOptions and placement.
  FleetConfig fleet_config;

  double CrashWeight(uint32_t i) const {
    return crash_weight.empty() ? 1.0 : crash_weight[i];
  }
  // The HostInfo a host sends with its poll (host id `id`).
  void FillInfo(uint32_t i, absl::string_view id, HostInfo* info) const;
};

// DrawFleet
//
// The hosts of `scenario` for one seed. REQUIRES: ValidateScenario(scenario).
SimHosts DrawFleet(const Scenario& scenario, std::mt19937_64& rng);

// HostIdOf
//
// "h%08u"-style ids: fixed width, so a fleet's ids fit one buffer.
inline constexpr int kHostIdLength = 9;
void WriteHostId(uint32_t i, char* out);

// ApplyDeprecatedFields
//
// `scenario` with the first format's fields (behavior.flapping_hosts) read
// as their current equivalents.
Scenario ApplyDeprecatedFields(const Scenario& scenario);

}  // namespace ringfence::internal
