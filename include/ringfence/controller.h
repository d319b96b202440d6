// Controller: the rollout state machine, and the one object a vendor needs to
// run rollouts in-process.
//
//   PENDING --resume--> RUNNING(stage k) --gate PROMOTE--> RUNNING(k+1) ...
//     ... --> RUNNING(late track) --> COMPLETED
//   RUNNING <--pause/resume--> PAUSED
//   RUNNING/PAUSED/PENDING --gate HALT or emergency stop--> HALTED
//   RUNNING/PAUSED/PENDING --abort--> ABORTED
// HALTED and ABORTED are "rolled back": every host is assigned the baseline
// (last known good) release again.
//
// Safety invariants (what the gate promises; checked over randomized plans,
// fleets, event streams, operator actions and kill -9 restarts by
// tests/safety_harness_test.cc; docs/gate.md explains each):
//  1. A release whose halt rules have tripped never reaches COMPLETED,
//     whatever operators do: Promote and Resume run the halt rules on all
//     evidence ingested so far, under the same lock as the transition, and
//     halt instead. A completed rollout stays under its halt rules for
//     plan.post_completion_watch. (A release that silences every host at
//     once, leaving nobody reporting, looks like an outage of ringfence's
//     own telemetry: the gate holds and says so.)
//  2. No host is told to run a release unless it is the rollout's release
//     in a stage already reached, or a proven baseline (a release whose
//     rollout completed and was not halted since); a baseline the operator
//     vouched for (nothing of the content type ever completed) only after a
//     halt or abort. With no baseline the fallback is "unload".
//  3. Halted and aborted rollouts never expose another host.
//  4. Every exposure is committed to the Store before the host is told the
//     release (paced grants, hosts of earlier open stages, and every host of
//     a completed rollout under its watch); every transition is committed,
//     with its audit entry and deciding evidence, before it takes effect. If
//     the store fails, the controller fails closed.
//  5. Evidence survives restarts exactly: checkpoints (every
//     checkpoint_interval) carry the host evidence records and the tests'
//     state, so the same events give the same counts, e-values and halts
//     with and without a restart, except that (a) what arrived after the
//     last checkpoint is lost (a server that acknowledges batches through
//     AfterCheckpoint never loses one it acknowledged), (b) silence and
//     apply_stuck timers restart,
//     and promotion holds for a silence timeout of fresh telemetry, and
//     (c) control hosts not heard from since the restart keep counting as
//     control but cannot be found silent until they report.
//  6. Only telemetry on the release proves an exposed host alive; a
//     check-in proves nothing, and repeated ones without coming up are
//     boot-loop evidence. Missing or incomparable evidence HOLDs, never
//     promotes.
//  7. Built-in safety rules are always on unless switched off explicitly,
//     on record (policy.h).
// Also: a paused rollout keeps evaluating its halt rules; exposure within a
// stage is paced (slow start); earlier stages stay under their own rules
// after promotion.
//
// Example:
//   FakeClock clock;
//   StorePtr store = NewMemoryStore();
//   auto controller = Controller::Create(store.get(), &clock, {}).value();
//   controller->CreateRelease(release, "ci").IgnoreError();
//   controller->StartRollout({.release_id = release.id(), .plan = plan,
//                             .actor = "ci", .reason = "weekly"});
//   Assignment a = controller->Assign(host, "channel-file/291");
//   controller->Ingest(events);
//   controller->Tick();  // evaluates every active rollout's gate
//
// Thread safety: all methods are thread-safe. Assign() reads an immutable
// snapshot without locking (it takes one shard lock of the rollout's host
// table only for hosts in the current stage's paced audience).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "ringfence/approvals.h"
#include "ringfence/assign.h"
#include "ringfence/clock.h"
#include "ringfence/model.h"
#include "ringfence/store.h"
#include "ringfence/telemetry.h"

namespace ringfence {

struct ControllerOptions {
  // Tenants and their tracks (default: none, every tenant general).
  FleetConfig fleet;
  // Expected hosts per rollout, to size host tables (default 0: grow).
  uint64_t expected_hosts = 0;
  // Largest telemetry batch accepted (default 100,000 events).
  size_t max_batch_events = 100000;
  // How often Tick() checkpoints each active rollout's telemetry evidence
  // (default 1s: at most ~1s of evidence is lost in a crash).
  absl::Duration checkpoint_interval = absl::Seconds(1);
  // False = shadow mode for the simulator's baselines (sim.h): the gate's
  // halt rules are evaluated but never act, so a baseline decider follows
  // the same stages, pacing and promotions as ringfence until its own rule
  // aborts the rollout. Default true; never false in production.
  bool enforce_halts = true;
};

struct StartRolloutRequest {
  // Optional; generated ("<content-type>@<n>") when empty.
  std::string rollout_id;
  std::string release_id;
  Plan plan;
  // Optional; default: the release of the content type's last completed
  // rollout. An explicit one must have completed a rollout and not been
  // halted since; a release that never was is accepted only while no
  // release of the content type has (the release the fleet ran before
  // ringfence, vouched for by the actor: hosts outside the rollout are not
  // moved onto it, only a halt or abort tells hosts to run it).
  std::string baseline_release_id;
  // With no baseline at all (the first release of a content type), a halt
  // or abort tells every host to unload the content type: the start is
  // refused unless this acknowledges it.
  bool allow_no_baseline = false;
  std::string actor;
  std::string reason;
  // Create in PENDING; a Resume() starts it.
  bool start_pending = false;
};

// Why a host got the answer it got.
enum class AssignReason {
  kNoRelease,         // nothing has been released for this content type
  kNotTargeted,       // the release does not target the host's agent/platform
  kPinned,            // the host's tenant is pinned to N-1
  kNotInAudience,     // no stage of the plan selects the host
  kNotYet,            // a later stage selects the host
  kWaitingForPacing,  // in the current stage, but its exposure budget is used
  kExposed,           // exposed in the current (paced) stage
  kStageOpen,         // in an earlier, fully open stage
  kCompleted,         // the rollout completed
  kPaused,            // paused or pending: exposure frozen
  kRolledBack,        // halted or aborted: last known good
  kEmergencyStop,     // the content type is under emergency stop
  kStoreUnavailable,  // the store failed: fail closed
  kNotWatched,        // the host's telemetry is not arriving: not exposed
};
absl::string_view AssignReasonName(AssignReason r);

// Assignment
//
// The answer for one content type. `release` is the release to run; nullptr
// means "no release known: keep what you run", unless `unload` is set:
// stop running (and remove) any release of the content type, because the
// rollout of its first release was halted or aborted, or the content type
// is under emergency stop, and no release is proven to fall back to.
// Pointers stay valid for the controller's lifetime.
struct Assignment {
  const Release* release = nullptr;
  bool unload = false;
  AssignReason reason = AssignReason::kNoRelease;
  const std::string* rollout_id = nullptr;  // nullptr if none
  int stage = -1;
};

// RolloutStatus: a rollout with its live aggregates.
struct RolloutStatus {
  Rollout rollout;
  TrackerSnapshot telemetry;
  uint64_t stage_exposure_budget = 0;
};

// The answer to CI's "is release R cleared for stage S?".
enum class GateStatus { kCleared, kPending, kRejected };
struct GateCheck {
  GateStatus status = GateStatus::kPending;
  Rollout rollout;
  std::string explanation;
};

class Controller {
 public:
  // Create
  //
  // Loads every rollout, exposure and emergency stop from `store` and resumes
  // them. Telemetry aggregates start empty: the freshness rule holds until
  // telemetry arrives, and exposed hosts that stay silent for the silence
  // timeout after the restart are caught. `store` and `clock` must outlive
  // the controller.
  static absl::StatusOr<std::unique_ptr<Controller>> Create(
      Store* store, const Clock* clock, ControllerOptions options);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // ---- Releases ----
  absl::Status CreateRelease(const Release& release, absl::string_view actor);
  absl::StatusOr<Release> GetRelease(absl::string_view id);
  absl::StatusOr<std::vector<Release>> ListReleases();

  // ---- Rollouts ----
  absl::StatusOr<Rollout> StartRollout(const StartRolloutRequest& request);
  absl::StatusOr<Rollout> Pause(absl::string_view rollout_id,
                                absl::string_view actor,
                                absl::string_view reason);
  absl::StatusOr<Rollout> Resume(absl::string_view rollout_id,
                                 absl::string_view actor,
                                 absl::string_view reason);
  absl::StatusOr<Rollout> Abort(absl::string_view rollout_id,
                                absl::string_view actor,
                                absl::string_view reason);
  // Promote
  //
  // Moves to the next stage past the gate; recorded as an override.
  absl::StatusOr<Rollout> Promote(absl::string_view rollout_id,
                                  absl::string_view actor,
                                  absl::string_view reason);
  // PromoteToCompletion
  //
  // Promotes stage by stage until COMPLETED, each step an audited override
  // that the halt rules still check (Promote). This is how a release that
  // every host already runs (deployed before ringfence) becomes its content
  // type's proven baseline, so that later rollouts can fall back to it.
  absl::StatusOr<Rollout> PromoteToCompletion(absl::string_view rollout_id,
                                              absl::string_view actor,
                                              absl::string_view reason);

  // EmergencyStop
  //
  // Halts every active rollout of `content_type` (and any completed one
  // still under its post-completion watch) and refuses new ones until
  // ClearEmergencyStop. Clearing never resumes a rollout: hosts return to
  // the content type's proven release only.
  absl::Status EmergencyStop(absl::string_view content_type,
                             absl::string_view actor, absl::string_view reason);
  absl::Status ClearEmergencyStop(absl::string_view content_type,
                                  absl::string_view actor,
                                  absl::string_view reason);

  // ---- The two-person rule (approvals.h) ----
  // With FleetConfig.approval_rules, a guarded call above (StartRollout,
  // Resume, Promote, PromoteToCompletion, ClearEmergencyStop) that passes
  // its checks answers FAILED_PRECONDITION carrying an ApprovalRequest
  // (ApprovalRequestFromStatus) instead of acting, and records the request.

  // Approve
  //
  // Runs the pending request `request_id` as its requester's call would
  // run now (every check again, the halt rules included), with `approver`
  // and `reason` on its audit entry. Errors: NOT_FOUND (no such pending
  // request), FAILED_PRECONDITION (expired), PERMISSION_DENIED (`approver`
  // made the request), INVALID_ARGUMENT (ids, reason), or the action's
  // own error, after which the request stays pending until it expires.
  struct ApprovalOutcome {
    ApprovalRequest request;
    std::optional<Rollout> rollout;  // the rollout acted on, if any
  };
  absl::StatusOr<ApprovalOutcome> Approve(absl::string_view request_id,
                                          absl::string_view approver,
                                          absl::string_view reason);
  // RejectApproval
  //
  // Settles a pending request without acting ("approval_rejected" in the
  // audit log). Any principal may reject, the requester too (withdrawing
  // it). Errors as Approve's, without PERMISSION_DENIED.
  absl::Status RejectApproval(absl::string_view request_id,
                              absl::string_view actor,
                              absl::string_view reason);
  // The requests pending now, oldest first.
  std::vector<ApprovalRequest> ListApprovals();

  absl::StatusOr<RolloutStatus> GetRollout(absl::string_view rollout_id);
  absl::StatusOr<std::vector<Rollout>> ListRollouts();
  absl::StatusOr<std::vector<Decision>> ListDecisions(
      absl::string_view rollout_id, uint64_t after_seq = 0);
  // ReadAudit
  //
  // The store's audit entries with seq > after_seq, oldest first, at most
  // `limit` (Store::ReadAudit), hash-chain links included.
  absl::StatusOr<std::vector<AuditEntry>> ReadAudit(uint64_t after_seq,
                                                    size_t limit);

  // CheckGate
  //
  // Whether `release_id` is cleared for the stage named `stage` (empty: the
  // whole fleet, i.e. the rollout completed).
  absl::StatusOr<GateCheck> CheckGate(absl::string_view release_id,
                                      absl::string_view stage);

  // ---- Gate ----
  // Evaluate
  //
  // Runs the gate of one rollout now and applies its verdict.
  absl::StatusOr<Decision> Evaluate(absl::string_view rollout_id);
  // Tick
  //
  // Evaluates every active rollout (and checkpoints its evidence). While the
  // store is unhealthy, first probes it (Store::Probe), so that health
  // recovers even when nothing else writes. Returns the first error.
  absl::Status Tick();

  // RecordReleaseRejected
  //
  // Appends a "reject_release" audit entry: `actor` tried to create
  // `release` and was refused because of `why` (content findings, a bad
  // signature, a payload that does not match its digest). The refusal
  // stands whatever this returns; an error means it was not recorded.
  absl::Status RecordReleaseRejected(const Release& release,
                                     absl::string_view actor,
                                     absl::string_view why);

  // ---- Fleet ----
  // Assign
  //
  // Which release of `content_type` `host` should run now. REQUIRES:
  // ValidateHostInfo(host).ok() (the service validates).
  Assignment Assign(const HostInfo& host, absl::string_view content_type);

  // Ingest
  //
  // Validates the whole batch (INVALID_ARGUMENT naming the event and field;
  // nothing is applied) and then applies it to every active rollout.
  absl::Status Ingest(absl::Span<const TelemetryEvent> events);

  // AfterCheckpoint
  //
  // Calls `done` once every event ingested before this call is in a
  // committed checkpoint of each rollout it counts for (the next Tick
  // checkpoints at once while calls wait): OK; or UNAVAILABLE if a
  // checkpoint failed (nothing is lost that was applied, but it would not
  // survive a restart: the sender should re-send). A server acknowledges a
  // telemetry batch this way so that a crash between the acknowledgement
  // and the checkpoint cannot lose evidence the host will not send again.
  // `done` runs on the Tick's thread (outside the controller's locks) or,
  // with nothing to wait for, at once. The destructor calls the ones still
  // waiting with UNAVAILABLE.
  void AfterCheckpoint(std::function<void(absl::Status)> done);
  // The same for borrowed events (the service ingests from the request).
  absl::Status Ingest(absl::Span<const TelemetryEventView> events);

  // Whether the store is accepting writes (false = failing closed).
  bool store_healthy() const {
    return store_healthy_.load(std::memory_order_acquire);
  }

 private:
  struct Runtime;
  struct ContentView;
  struct View;
  // An approval being carried out: the request and who approved it.
  struct Approval {
    const ApprovalRequest* request = nullptr;
    absl::string_view approver;
    absl::string_view reason;
  };

  Controller(Store* store, const Clock* clock, ControllerOptions options);
  absl::Status Load();

  Runtime* FindLocked(absl::string_view id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Runtime*> NewRuntimeLocked(const Rollout& rollout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<const Release*> ReleaseLocked(absl::string_view id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits `next` (a modified copy of rt->record) with an audit entry, then
  // applies it in memory and republishes assignments.
  absl::Status CommitLocked(Runtime* rt, Rollout next, absl::string_view actor,
                            absl::string_view action, absl::string_view reason,
                            const Decision* decision,
                            const Approval* approval = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A manual action. Without `approval`, a guarded one is held (HoldLocked)
  // as a request for `request_action` (default: `action`).
  absl::StatusOr<Rollout> ManualLocked(
      absl::string_view id, absl::string_view actor, absl::string_view reason,
      absl::string_view action, const Approval* approval = nullptr,
      absl::string_view request_action = {}) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Rollout> StartRolloutLocked(const StartRolloutRequest& request,
                                             const Approval* approval)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Rollout> PromoteToCompletionLocked(absl::string_view id,
                                                    absl::string_view actor,
                                                    absl::string_view reason,
                                                    const Approval* approval)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status ClearEmergencyStopLocked(absl::string_view content_type,
                                        absl::string_view actor,
                                        absl::string_view reason,
                                        const Approval* approval)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Rebuilds the pending approval requests from the audit log (only with
  // approval rules), reading only its recent end.
  absl::Status LoadApprovalsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // If `actions` are guarded for `content_type` and no approval is being
  // carried out: records `request` (completed here) and returns the held
  // status (or the store's error). OK: go ahead.
  absl::Status MaybeHoldLocked(const Approval* approval,
                               absl::string_view content_type,
                               absl::Span<const GuardedAction> actions,
                               ApprovalRequest request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // kFull: decide and act (halt, promote, complete). kHaltsOnly: act only
  // on a HALT (manual actions, the post-completion watch).
  enum class EvaluateMode { kFull, kHaltsOnly };
  absl::StatusOr<Decision> EvaluateLocked(Runtime* rt, EvaluateMode mode)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ConfigureStageLocked(Runtime* rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tick's body under mu_: checkpoints every gated rollout (due ones, or all
  // with `force_checkpoints`), the first checkpoint error in *checkpoints.
  absl::Status TickLocked(bool force_checkpoints, absl::Status* checkpoints)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Calls the AfterCheckpoint callbacks of batches up to `covered`.
  void SettleAcks(uint64_t covered, const absl::Status& checkpoints)
      ABSL_LOCKS_EXCLUDED(acks_mu_);
  absl::Status CheckpointLocked(Runtime* rt, bool force)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateBudgetLocked(Runtime* rt) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoteStoreResult(const absl::Status& s);
  AuditEntry MakeAudit(absl::string_view actor, absl::string_view action,
                       absl::string_view reason) const;
  // Names `approval`'s request and approver on `audit` (nothing if null).
  static void StampApproval(const Approval* approval, AuditEntry* audit);

  Store* const store_;
  const Clock* const clock_;
  const ControllerOptions options_;
  const TenantTracks tenants_;
  std::atomic<bool> store_healthy_{true};

  absl::Mutex mu_;
  // AfterCheckpoint: Ingest calls that applied events, counted after they
  // applied them; the callbacks waiting, with the count at their call.
  std::atomic<uint64_t> ingested_batches_{0};
  absl::Mutex acks_mu_ ABSL_ACQUIRED_AFTER(mu_);
  std::vector<std::pair<uint64_t, std::function<void(absl::Status)>>> acks_
      ABSL_GUARDED_BY(acks_mu_);
  // The count up to which batches are in committed checkpoints.
  uint64_t durable_batches_ ABSL_GUARDED_BY(acks_mu_) = 0;
  // Never erased: published views point into them.
  std::vector<std::unique_ptr<Runtime>> runtimes_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Runtime*> by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<const Release>> releases_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ringfence::EmergencyStop> stops_
      ABSL_GUARDED_BY(mu_);
  uint64_t rollout_counter_ ABSL_GUARDED_BY(mu_) = 0;
  ApprovalBook approvals_ ABSL_GUARDED_BY(mu_);

  // The published assignment view; retired views are kept until destruction
  // so lock-free readers never see freed memory (views change only on
  // transitions, so they are few).
  std::atomic<const View*> view_{nullptr};
  std::vector<std::unique_ptr<const View>> views_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ringfence
