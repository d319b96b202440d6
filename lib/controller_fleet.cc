// Controller: the fleet's side (assignments, telemetry ingest).
#include <algorithm>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "controller_internal.h"
#include "ringfence/error_text.h"
#include "ringfence/gate.h"
#include "ringfence/hash.h"
#include "ringfence/status_macros.h"

namespace ringfence {

using config::v1::ABORTED;
using config::v1::COMPLETED;
using config::v1::HALT;
using config::v1::HALTED;
using config::v1::HOLD;
using config::v1::PAUSED;
using config::v1::PENDING;
using config::v1::PROMOTE;
using config::v1::RUNNING;

using controller_internal::Gated;
using controller_internal::kInlineBatch;

// ---- Fleet --------------------------------------------------------------

Assignment Controller::Assign(const HostInfo& host,
                              absl::string_view content_type) {
  const View* view = view_.load(std::memory_order_acquire);
  if (view == nullptr) return Assignment();
  auto it = view->content.find(content_type);
  if (it == view->content.end()) return Assignment();
  const ContentState& cs = it->second.cs;
  const AssignRule rule = ApplyAssignRules(cs, tenants_, host);
  Runtime* rt = it->second.rt;
  if (!rule.needs_exposure) {
    // Its telemetry counts in the control arm from now on (telemetry.h,
    // "The population"); TryReserve admits the hosts it refuses.
    if (rule.of_population) rt->tracker->Admit(HostKey(host.host_id));
    return rule.answer;
  }
  const uint64_t key = HostKey(host.host_id);
  const bool store_ok = store_healthy_.load(std::memory_order_acquire);
  if (rule.frozen || !store_ok) {
    // Frozen: only hosts that already have the release keep it.
    if (rt->tracker->Admit(key)) {
      Assignment a = ExposedAnswer(cs, rule);
      a.reason = cs.state == COMPLETED ? AssignReason::kCompleted
                                       : AssignReason::kExposed;
      return a;
    }
    return NotExposedAnswer(
        cs, rule,
        store_ok ? AssignReason::kPaused : AssignReason::kStoreUnavailable);
  }
  const uint64_t budget = rule.paced
                              ? rt->budget.load(std::memory_order_acquire)
                              : RolloutTracker::kUnpaced;
  switch (rt->tracker->TryReserve(key, cs.stage, budget,
                                  host.telemetry_pending > 0)) {
    case RolloutTracker::Grant::kNoBudget:
      return NotExposedAnswer(cs, rule, AssignReason::kWaitingForPacing);
    case RolloutTracker::Grant::kNotWatched:
      return NotExposedAnswer(cs, rule, AssignReason::kNotWatched);
    case RolloutTracker::Grant::kAlreadyExposed:
      break;
    case RolloutTracker::Grant::kReserved: {
      Exposure e;
      e.host_id = host.host_id;
      e.stage = static_cast<uint32_t>(cs.stage);
      e.at = clock_->Now();
      e.granted = rule.paced;
      absl::Status s = store_->RecordExposures(rt->id, {e});
      if (!s.ok()) {
        NoteStoreResult(s);
        if (rule.paced) rt->tracker->CancelReserved(cs.stage);
        return NotExposedAnswer(cs, rule, AssignReason::kStoreUnavailable);
      }
      rt->tracker->CommitReserved(key, cs.stage, rule.paced);
      // A halt, abort or emergency stop published meanwhile wins: the
      // exposure is on record, but the host is not told the release.
      const View* latest = view_.load(std::memory_order_acquire);
      if (latest != view) {
        auto lt = latest->content.find(content_type);
        if (lt != latest->content.end()) {
          const ContentState& now = lt->second.cs;
          if (now.emergency_stop || lt->second.rt != rt ||
              now.state == HALTED || now.state == ABORTED) {
            Assignment a = rule.answer;
            a.release = now.baseline;
            a.unload = a.release == nullptr;
            a.reason = now.emergency_stop ? AssignReason::kEmergencyStop
                                          : AssignReason::kRolledBack;
            return a;
          }
        }
      }
      break;
    }
  }
  return ExposedAnswer(cs, rule);
}

absl::Status Controller::Ingest(absl::Span<const TelemetryEvent> events) {
  if (events.size() > options_.max_batch_events) {
    return ValidateTelemetryBatch(events, options_.max_batch_events);
  }
  std::vector<TelemetryEventView> views;
  views.reserve(events.size());
  for (const TelemetryEvent& e : events) views.push_back(ViewOf(e));
  return Ingest(views);
}

absl::Status Controller::Ingest(absl::Span<const TelemetryEventView> events) {
  RETURN_IF_ERROR(ValidateTelemetryBatch(events, options_.max_batch_events));
  std::vector<Runtime*> active;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    for (const auto& rt : runtimes_) {
      if (Gated(rt->record, now)) active.push_back(rt.get());
    }
  }
  if (active.empty()) return absl::OkStatus();
  // Counted once applied (AfterCheckpoint): a Tick that reads the count
  // checkpoints after every batch it covers was applied.
  struct CountWhenApplied {
    std::atomic<uint64_t>* n;
    ~CountWhenApplied() { n->fetch_add(1, std::memory_order_acq_rel); }
  } count{&ingested_batches_};
  // Hashed once for every rollout.
  absl::InlinedVector<uint64_t, kInlineBatch> keys(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    keys[i] = HostKey(events[i].host_id);
  }
  absl::Status result;
  for (Runtime* rt : active) {
    std::vector<Exposure> exposed;
    rt->tracker->IngestKeyed(events, keys, &exposed);
    if (exposed.empty()) continue;
    // Hosts that report running the release are exposed whether or not we
    // granted it: record who got what, for rollback and restarts.
    absl::Status s = store_->RecordExposures(rt->id, exposed);
    NoteStoreResult(s);
    if (!s.ok() && result.ok()) result = s;
  }
  return result;
}

}  // namespace ringfence
