// Follower: a replica that is not the leader answering GetAssignment from a
// read-only snapshot of the store (docs/architecture.md, "Followers").
//
// The snapshot holds, per content type, the latest rollout's record, its
// release and baseline, emergency stops, and the durable exposures and
// checkpointed "came up" evidence of the rollouts whose answers depend on
// them (running, paused, or completed and
// under their post-completion watch). Refresh() rebuilds it from the store
// (the owner calls it every poll interval); it never writes.
//
// Assign() applies the leader's rules (assign_rules.h) and answers locally
// only what needs no new exposure and carries no evidence:
//   * a host with a durable exposure in the snapshot whose checkpointed
//     host evidence says it came up on the release (or any exposed host of
//     a paused rollout): the release (the rolled-back answer once the
//     snapshot says halted, aborted or emergency stop). The leader counts
//     the check-in of an exposed host that has not come up as a boot-loop
//     attempt (telemetry.h), so those go to the leader;
//   * a host outside what any open stage may grant (not targeted, pinned,
//     not in the audience, a later stage, pending, or paused without an
//     exposure): the baseline, as the leader answers;
//   * a completed rollout whose watch the leader committed as over: the
//     release (proven; the leader records no exposure for it either).
// Anything else (the host would get a new exposure, or its check-in is
// evidence) is kForward: only the leader grants and counts. A check-in is
// evidence once per host, rollout and leader, too: the leader admits a host
// of the release's population to the rollout's control arm when it checks
// in (telemetry.h, "The population"), so a host's first such check-in is
// forwarded, and answered locally once NoteAdmitted() recorded the leader's
// answer (until the leader changes: SetLeaderEpoch). So a follower never
// tells a host a rollout's release that its snapshot does not show as durably
// exposed.
//
// Staleness: a snapshot is "as of" the follower's clock when its refresh
// started: every commit before then is in it. Assign() answers kStale (the
// caller fails closed) once the snapshot is older than `max_staleness`, so
// every local answer reflects every commit (a halt, an emergency stop) made
// more than `max_staleness` before it.
//
// Example:
//   Follower follower(store, &RealClock(), {.fleet = fleet});
//   follower.Refresh();                       // every poll interval
//   FollowerAnswer answer = follower.Assign(host, {"channel-file/291"});
//   if (answer.verdict == FollowerVerdict::kAnswered) ... answer.assignments
//
// Thread safety: Assign(), NoGrantAnswer(), as_of() and Fresh() are
// thread-safe (a short lock copies the snapshot's pointer); Refresh() is
// called from one thread at a time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ringfence/assign_rules.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/store.h"

namespace ringfence {

struct FollowerOptions {
  // Tenants and tracks (the leader's --fleet_config).
  FleetConfig fleet;
  // A snapshot older than this answers nothing (kStale).
  absl::Duration max_staleness = absl::Seconds(1);
};

enum class FollowerVerdict {
  kAnswered,  // `assignments` holds the answer
  kForward,   // a content type may need a new exposure: ask the leader
  kStale,     // no snapshot, or one older than max_staleness: fail closed
};

// FollowerAnswer: Assign()'s result. `assignments` (one per content type,
// in order, when kAnswered) point into `snapshot`, which they keep alive.
struct FollowerAnswer {
  FollowerVerdict verdict = FollowerVerdict::kStale;
  std::vector<Assignment> assignments;
  std::shared_ptr<const void> snapshot;
  // When the snapshot's refresh started (InfinitePast if none).
  absl::Time as_of = absl::InfinitePast();
  // The leader epoch the answer was made under (SetLeaderEpoch), for
  // NoteAdmitted.
  int64_t leader_epoch = 0;
};

class Follower {
 public:
  // `store` and `clock` must outlive the Follower. INVALID_ARGUMENT (naming
  // the field) if options.fleet or max_staleness is not valid.
  static absl::StatusOr<std::unique_ptr<Follower>> Create(
      Store* store, const Clock* clock, FollowerOptions options);
  ~Follower();

  // Refresh
  //
  // Reads the store and publishes a new snapshot. On error the previous
  // snapshot stays (and ages towards kStale).
  absl::Status Refresh();

  // Assign
  //
  // For `host` (valid: ValidateHostInfo) and each of `content_types`.
  FollowerAnswer Assign(const HostInfo& host,
                        absl::Span<const std::string> content_types) const;

  // NoGrantAnswer
  //
  // What `host` is told for `content_type` when the leader cannot be asked:
  // Assign()'s answer where it has one, and for a host that would need a new
  // exposure the baseline (kStoreUnavailable: nothing granted, as the
  // leader answers while its store fails). kStale if the snapshot is.
  FollowerAnswer NoGrantAnswer(
      const HostInfo& host, absl::Span<const std::string> content_types) const;

  // When the current snapshot's refresh started (InfinitePast if none).
  absl::Time as_of() const;

  // Fresh
  //
  // Whether Assign() answers from the snapshot now rather than kStale: one
  // is loaded and it is at most max_staleness old by the follower's clock.
  // What a follower's health follows (standby_server.h).
  bool Fresh() const;

  // SetLeaderEpoch
  //
  // The lease epoch of the leader that forwarded calls reach (ClusterView).
  // Admissions are the leader's in-memory state: a new epoch (a takeover, a
  // restart) forgets those recorded, so every host's next check-in goes to
  // the new leader once.
  void SetLeaderEpoch(int64_t epoch);

  // NoteAdmitted
  //
  // The leader answered `host`'s forwarded check-in for `content_types`,
  // forwarded under `epoch` (FollowerAnswer::leader_epoch): it admitted the
  // host to the populations of those content types' rollouts, so the host's
  // later check-ins are answered locally. Ignored if the epoch has changed
  // since. At most kMaxAdmissions are kept (then all are forgotten: hosts
  // are forwarded once more).
  void NoteAdmitted(const HostInfo& host,
                    absl::Span<const std::string> content_types, int64_t epoch);
  static constexpr size_t kMaxAdmissions = 4'000'000;

 private:
  struct Snapshot;
  struct RolloutData;
  Follower(Store* store, const Clock* clock, FollowerOptions options);
  std::shared_ptr<const Snapshot> Current() const;
  FollowerAnswer Answer(const HostInfo& host,
                        absl::Span<const std::string> content_types,
                        bool forward) const;

  Store* const store_;
  const Clock* const clock_;
  const FollowerOptions options_;
  const TenantTracks tenants_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Snapshot> current_ ABSL_GUARDED_BY(mu_);
  // Used by Refresh only: releases (immutable) and compiled rollouts by id
  // and version, reused across snapshots.
  absl::flat_hash_map<std::string, std::shared_ptr<const Release>> releases_;
  absl::flat_hash_map<std::string, std::shared_ptr<const RolloutData>>
      rollouts_;
  // Hosts the leader of `epoch_` admitted, by AdmissionKey(rollout, host).
  mutable absl::Mutex admitted_mu_;
  int64_t epoch_ ABSL_GUARDED_BY(admitted_mu_) = 0;
  absl::flat_hash_set<uint64_t> admitted_ ABSL_GUARDED_BY(admitted_mu_);
};

}  // namespace ringfence
