// What the Controller's source files share (controller.cc: releases,
// rollouts, manual actions; controller_gate.cc: ticks, evaluation,
// checkpoints; controller_fleet.cc: assignments and telemetry;
// controller_approvals.cc): its per-rollout runtime, the view Assign()
// reads, and helpers on rollout records. Not installed.
#pragma once

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "ringfence/assign_rules.h"
#include "ringfence/controller.h"
#include "ringfence/policy.h"

namespace ringfence {

struct Controller::Runtime {
  explicit Runtime(std::string rollout_id) : id(std::move(rollout_id)) {}
  // A copy of record.id() that never changes, for lock-free readers.
  const std::string id;
  Rollout record;
  const Release* release = nullptr;
  const Release* baseline = nullptr;
  std::unique_ptr<const AudienceIndex> index;
  std::unique_ptr<const CompiledTargeting> targeting;
  std::unique_ptr<RolloutTracker> tracker;
  // EffectivePolicies(record.plan()): per stage, the late track last.
  std::vector<GatePolicy> policies;
  std::atomic<uint64_t> budget{0};
  uint64_t next_decision_seq = 1;
  std::string last_recorded_key;  // verdict + rule of the last stored decision
  absl::Time window_start = absl::InfinitePast();
  absl::Time last_sweep = absl::InfinitePast();
  absl::Time last_checkpoint = absl::InfinitePast();
  uint64_t window_base = 0;
};

// What Assign() reads for one content type.
struct Controller::ContentView {
  Runtime* rt = nullptr;  // the latest rollout, or nullptr
  ContentState cs;        // what the assignment rules read (assign_rules.h)
};

struct Controller::View {
  absl::flat_hash_map<std::string, ContentView> content;
};

namespace controller_internal {

// Batches up to this many events hash their hosts into a stack array.
constexpr size_t kInlineBatch = 1024;

inline bool IsActive(RolloutState s) {
  return s == config::v1::PENDING || s == config::v1::RUNNING ||
         s == config::v1::PAUSED;
}

// A COMPLETED rollout still under its post-completion watch. A watch that
// ended (ran out, or was ended by a later rollout) was committed with
// watch_until <= updated_at, so it stays ended even if the clock steps back.
inline bool Watching(const Rollout& r, absl::Time now) {
  if (r.state() != config::v1::COMPLETED || !r.has_watch_until()) return false;
  const absl::Time until = FromProto(r.watch_until());
  return until > FromProto(r.updated_at()) && until > now;
}

// Whether the gate still runs for `r`: active, or completed and watched.
inline bool Gated(const Rollout& r, absl::Time now) {
  return IsActive(r.state()) || Watching(r, now);
}

inline std::vector<std::string> SignalsOf(
    absl::Span<const GatePolicy> policies) {
  std::vector<std::string> out;
  for (const GatePolicy& policy : policies) {
    for (const SignalRule& r : policy.signals()) {
      if (std::find(out.begin(), out.end(), r.signal()) == out.end()) {
        out.push_back(r.signal());
      }
    }
  }
  return out;
}

inline absl::Duration PostCompletionWatch(const Plan& plan) {
  const absl::Duration d = FromProto(plan.post_completion_watch());
  return d == absl::ZeroDuration() ? absl::Hours(1) : d;
}

}  // namespace controller_internal
}  // namespace ringfence
