// Assignment rules: what a host is told for one content type, as a pure
// function of the content type's published state. Shared by the leader
// (Controller::Assign, which may then grant a new exposure) and by a
// follower replica answering from a snapshot of the store (follower.h,
// which never grants: it answers only what needs no new exposure).
//
// ApplyAssignRules decides everything that does not depend on the host's
// exposure. When the answer does (the host is in a stage that is running,
// paused, or a completed rollout under its watch), it says so
// (`needs_exposure`), and the caller completes the answer:
//   * the host has a durable exposure: ExposedAnswer();
//   * it has none and the rollout is frozen (PAUSED): the baseline
//     (NotExposedAnswer(kPaused));
//   * it has none and may get one: only the leader grants (records the
//     exposure durably, then ExposedAnswer()); otherwise NotExposedAnswer().
//
// Thread safety: pure functions over immutable inputs.
#pragma once

#include <string>

#include "ringfence/assign.h"
#include "ringfence/controller.h"
#include "ringfence/model.h"

namespace ringfence {

// ContentState
//
// One content type's published state: its latest rollout (if any) and what
// the rules read of it. Pointers are borrowed from the owner of the state
// (the Controller's view, a follower's snapshot) and stay valid while it
// does.
struct ContentState {
  // The latest rollout's id; nullptr if the content type has none.
  const std::string* rollout_id = nullptr;
  RolloutState state = config::v1::ROLLOUT_STATE_UNSPECIFIED;
  int stage = 0;
  // COMPLETED and still under its post-completion watch: exposures are
  // recorded, as in a running stage.
  bool watching = false;
  const Release* release = nullptr;
  // Last known good (a release that completed a rollout, or one the
  // operator vouched for); nullptr = none: a rollback tells hosts to unload.
  const Release* baseline = nullptr;
  // A vouched baseline is told only after a halt or abort.
  bool baseline_vouched = false;
  bool emergency_stop = false;
  // The latest rollout's compiled audience and release targeting (set
  // whenever rollout_id is).
  const AudienceIndex* index = nullptr;
  const CompiledTargeting* targeting = nullptr;
};

// FoldRollout
//
// Folds the next rollout of a content type, in creation order, into `cs`:
// the latest rollout wins, and the last known good release is the latest
// completed one (or the baseline of the latest rollout if none completed
// since). `release`, `baseline` (nullptr if the rollout names none), `index`
// and `targeting` belong to `rollout`; `watching` is Watching(rollout).
// Does not touch `cs->emergency_stop`.
void FoldRollout(const Rollout& rollout, const std::string* rollout_id,
                 const Release* release, const Release* baseline,
                 const AudienceIndex* index, const CompiledTargeting* targeting,
                 bool watching, ContentState* cs);

// AssignRule: what the rules decided for one host and content type.
struct AssignRule {
  // The answer, unless needs_exposure (then its rollout_id and stage are
  // set, and the caller completes it).
  Assignment answer;
  // The answer is the release if the host has (or gets) a durable exposure,
  // and not otherwise.
  bool needs_exposure = false;
  // PAUSED: no new exposure; exposed hosts keep the release.
  bool frozen = false;
  // A new exposure would count against the current stage's pacing budget.
  bool paced = false;
  // The reason told with the release to an exposed host.
  AssignReason exposed_reason = AssignReason::kExposed;
  // The release targets the host and its rollout is gated (not rolled back,
  // not under emergency stop, not past its watch): the host is of the
  // release's population, and the leader admits it to the rollout's
  // control arm (telemetry.h, "The population").
  bool of_population = false;
};

// ApplyAssignRules
//
// The rules for `host` under `cs` (invariant 2 of controller.h: the release
// only in a stage already reached, a proven baseline otherwise; rolled back
// and emergency-stopped content types answer the baseline or unload).
AssignRule ApplyAssignRules(const ContentState& cs, const TenantTracks& tenants,
                            const HostInfo& host);

// ExposedAnswer: `rule`'s answer for a host with a durable exposure.
Assignment ExposedAnswer(const ContentState& cs, const AssignRule& rule);

// NotExposedAnswer: `rule`'s answer for a host without one (the baseline,
// unless vouched), with `reason`.
Assignment NotExposedAnswer(const ContentState& cs, const AssignRule& rule,
                            AssignReason reason);

// RolledBackAnswer
//
// What a host is told once the content type is rolled back (halted,
// aborted) or under emergency stop: the baseline, or unload if there is
// none and the release could have reached the host.
Assignment RolledBackAnswer(const ContentState& cs, const TenantTracks& tenants,
                            const HostInfo& host, AssignReason reason);

}  // namespace ringfence
