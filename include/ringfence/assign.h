// Assignment: which release of a content type a host should run.
//
// Bucketing is deterministic and stateless (hash.h): the same host lands in
// the same bucket for a rollout in every process and version. An
// AudienceIndex compiles a plan's stage audiences once; Place() then answers,
// for a host, the first stage whose (cumulative) audience contains it:
//   * hosts / labels selectors: the first stage listing the host / a label;
//   * early_track: hosts of TRACK_EARLY tenants;
//   * percent: bucket < PercentToBucketLimit(percent), over early + general
//     hosts (percent limits increase, so the first such stage is found by a
//     scan of a few integers).
// Tracks: TRACK_PINNED hosts are never placed (they stay on N-1);
// TRACK_LATE hosts are placed only in the late-track stage (index
// plan.stages_size()).
//
// Thread safety: an AudienceIndex is immutable after Build(); Place() is a
// const, lock-free read callable from any number of threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringfence/model.h"

namespace ringfence {

// What a host tells ringfence about itself when it asks for an assignment.
struct HostInfo {
  std::string host_id;
  std::string tenant;
  std::vector<std::string> labels;
  std::string agent_version;
  std::string platform;
  // Telemetry events the host has not yet delivered (0: none, or not
  // reported). With a backlog, a check-in is no boot-loop evidence
  // (RolloutTracker::TryReserve).
  uint64_t telemetry_pending = 0;
};

// ValidateHostInfo
//
// INVALID_ARGUMENT naming the field (host_id, tenant, labels[i],
// agent_version, platform).
absl::Status ValidateHostInfo(const HostInfo& host);

// IsTargeted
//
// Whether `host` is within `targeting` (agent version range, platforms).
// A host that does not report its agent version is outside any targeting that
// names a version bound: missing data never passes.
bool IsTargeted(const Targeting& targeting, const HostInfo& host);

// CompiledTargeting
//
// IsTargeted() with the release's version bounds parsed once, for the
// assignment hot path. Same answers as IsTargeted().
class CompiledTargeting {
 public:
  explicit CompiledTargeting(const Targeting& targeting);
  bool Matches(const HostInfo& host) const;

 private:
  struct Version {
    uint64_t part[4] = {0, 0, 0, 0};
  };
  static Version Parse(absl::string_view v);
  static int Compare(const Version& a, const Version& b);

  bool has_min_ = false, has_max_ = false;
  Version min_, max_;
  std::vector<std::string> platforms_;
};

// TenantTracks
//
// Immutable tenant -> track map built from a FleetConfig.
class TenantTracks {
 public:
  TenantTracks() = default;
  explicit TenantTracks(const FleetConfig& fleet);
  // The track of `tenant`; TRACK_GENERAL for unknown tenants.
  Track TrackOf(absl::string_view tenant) const;

 private:
  absl::flat_hash_map<std::string, Track> tracks_;
};

class AudienceIndex {
 public:
  // Build
  //
  // Compiles `plan` (which must have passed ValidatePlan) with bucket salt
  // `salt`.
  static std::unique_ptr<const AudienceIndex> Build(const Plan& plan,
                                                    absl::string_view salt);

  // Place
  //
  // The first stage whose audience contains the host, `late_stage()` for a
  // TRACK_LATE host, or -1 if no stage ever does (pinned hosts, hosts
  // matching no selector).
  int Place(const HostInfo& host, Track track) const;

  // The bucket of `host_id` under this rollout's salt.
  uint32_t BucketOf(absl::string_view host_id) const;

  int late_stage() const { return num_stages_; }
  int num_stages() const { return num_stages_; }

 private:
  AudienceIndex() = default;

  int num_stages_ = 0;
  uint64_t salt_seed_ = 0;
  absl::flat_hash_map<std::string, int> host_stage_;
  absl::flat_hash_map<std::string, int> label_stage_;
  int early_stage_ = -1;
  // (exclusive bucket limit, stage), increasing.
  std::vector<std::pair<uint32_t, int>> percent_limits_;
};

}  // namespace ringfence
