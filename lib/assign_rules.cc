#include "ringfence/assign_rules.h"

namespace ringfence {

using config::v1::ABORTED;
using config::v1::COMPLETED;
using config::v1::HALTED;
using config::v1::PAUSED;
using config::v1::PENDING;
using config::v1::RUNNING;

void FoldRollout(const Rollout& rollout, const std::string* rollout_id,
                 const Release* release, const Release* baseline,
                 const AudienceIndex* index, const CompiledTargeting* targeting,
                 bool watching, ContentState* cs) {
  // A release that completed a rollout and was not halted since.
  const Release* last_good = cs->baseline;
  if (cs->rollout_id != nullptr && cs->state == COMPLETED) {
    last_good = cs->release;
  }
  cs->rollout_id = rollout_id;
  cs->state = rollout.state();
  cs->stage = static_cast<int>(rollout.stage());
  cs->watching = watching;
  cs->release = release;
  cs->baseline = baseline != nullptr ? baseline : last_good;
  cs->baseline_vouched = baseline != nullptr && rollout.baseline_vouched();
  cs->index = index;
  cs->targeting = targeting;
}

Assignment RolledBackAnswer(const ContentState& cs, const TenantTracks& tenants,
                            const HostInfo& host, AssignReason reason) {
  Assignment a;
  a.rollout_id = cs.rollout_id;
  a.release = cs.baseline;
  a.reason = reason;
  // Only hosts the release could have reached unload: a host outside its
  // targeting, or pinned, keeps whatever it runs.
  a.unload = a.release == nullptr && cs.targeting->Matches(host) &&
             tenants.TrackOf(host.tenant) != config::v1::TRACK_PINNED;
  return a;
}

Assignment ExposedAnswer(const ContentState& cs, const AssignRule& rule) {
  Assignment a = rule.answer;
  a.release = cs.release;
  a.unload = false;
  a.reason = rule.exposed_reason;
  return a;
}

Assignment NotExposedAnswer(const ContentState& cs, const AssignRule& rule,
                            AssignReason reason) {
  Assignment a = rule.answer;
  a.release = cs.baseline_vouched ? nullptr : cs.baseline;
  a.unload = false;
  a.reason = reason;
  return a;
}

AssignRule ApplyAssignRules(const ContentState& cs, const TenantTracks& tenants,
                            const HostInfo& host) {
  AssignRule rule;
  Assignment& a = rule.answer;
  if (cs.rollout_id == nullptr) {
    a.reason = cs.emergency_stop ? AssignReason::kEmergencyStop
                                 : AssignReason::kNoRelease;
    return rule;
  }
  a.rollout_id = cs.rollout_id;
  // Hosts the rollout has not reached run the proven baseline (a vouched
  // one is not pushed to them: they keep what they run).
  auto baseline = [&](AssignReason reason) {
    a.release = cs.baseline_vouched ? nullptr : cs.baseline;
    a.reason = reason;
    return rule;
  };
  // Rolled back: every host runs the baseline; with none, stops running
  // the content type.
  if (cs.emergency_stop) {
    a = RolledBackAnswer(cs, tenants, host, AssignReason::kEmergencyStop);
    return rule;
  }
  if (cs.state == HALTED || cs.state == ABORTED) {
    a = RolledBackAnswer(cs, tenants, host, AssignReason::kRolledBack);
    return rule;
  }
  if (!cs.targeting->Matches(host)) {
    return baseline(AssignReason::kNotTargeted);
  }
  rule.of_population = true;
  const Track track = tenants.TrackOf(host.tenant);
  if (track == config::v1::TRACK_PINNED) return baseline(AssignReason::kPinned);
  if (cs.state == COMPLETED && !cs.watching) {
    // The watch is over: the release is proven, like a baseline.
    rule.of_population = false;
    a.release = cs.release;
    a.reason = AssignReason::kCompleted;
    return rule;
  }
  int placed = -1;
  if (cs.state != COMPLETED) {
    placed = cs.index->Place(host, track);
    a.stage = placed;
    if (placed < 0) return baseline(AssignReason::kNotInAudience);
    if (placed > cs.stage) return baseline(AssignReason::kNotYet);
    if (cs.state == PENDING) return baseline(AssignReason::kPaused);
  }
  // Every host told the release has a durable exposure first: paced hosts
  // of the current stage against its budget, hosts of earlier (open) stages
  // and, during the post-completion watch, every host, unpaced, counted in
  // the current stage's cohort.
  rule.needs_exposure = true;
  rule.frozen = cs.state == PAUSED;
  rule.paced = cs.state == RUNNING && placed == cs.stage;
  if (rule.frozen) {
    rule.exposed_reason = AssignReason::kExposed;
  } else {
    rule.exposed_reason = cs.state == COMPLETED ? AssignReason::kCompleted
                          : rule.paced          ? AssignReason::kExposed
                                                : AssignReason::kStageOpen;
  }
  return rule;
}

}  // namespace ringfence
