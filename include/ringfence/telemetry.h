// Telemetry: ingest of host events and the per-rollout aggregates the gate
// reads.
//
// A RolloutTracker follows one rollout. It keeps a compact per-host record
// (24 bytes per slot: a 64-bit host key and 16 bytes of state) and aggregates
// per stage x arm x signal: distinct affected hosts and host-time of exposure.
// Treatment = hosts exposed to the rollout's release; control = hosts of
// the release's population that report telemetry and are not exposed (still
// on the previous release, observed over the same time).
//
// The population. With TrackerOptions::control_by_check_in (what the
// Controller uses), a host enters the control arm only once it is admitted:
// it checked in for the rollout's content type and the release targets it
// (Admit, TryReserve), or it reported running the release. Telemetry of any
// other host is not evidence about this release and is left out (counted in
// TrackerSnapshot::outside_population_events): a fleet's other platforms,
// agent versions or content types have their own crash rates, and mixing
// them into control would compare the release's hosts with hosts it could
// never reach (lower rates there make every release look bad; higher ones
// hide a bad one). An admitted host counts in control from its first
// telemetry on, as before: a check-in is never a sign of life. Admission is
// part of the host's evidence: every admitted host has a record
// (Checkpoint), so after a restart its telemetry counts before it checks in
// again (a host that crashed while the server was down reports the crash
// first). A checkpoint written before these records existed keeps the
// places of its unrecorded control hosts until they are heard from.
// Without the option, every host that reports is in control (for callers
// whose whole fleet is the release's population).
//
// Signals are counted once per host and arm: a crash-looping host counts once,
// and duplicate or replayed events change nothing (every update is monotone:
// flags only get set, times only move forward). A host keeps its history
// when it is exposed: a host that showed a signal while in control (a
// chronic crasher) is not at risk of that signal in treatment and counts
// neither for nor against the release (survival analysis: a host leaves the
// risk set when it is affected).
//
// Signs of life. A control host is alive when it sends any event. An
// exposed host is alive only when its telemetry shows it running the
// release (`applied`, a heartbeat naming the release); a GetAssignment
// check-in proves nothing. Telemetry that lags: a heartbeat on the previous
// release that the host sent before it began loading this one (before its
// `applying`, in its own clock; any, until that arrives) shows the host's
// telemetry is behind its exposure, so its silence and apply clocks start
// again when it arrives and its attempts so far are dropped (a host whose
// pipeline lags is judged from when its pipeline caught up), for up to
// policy.max_telemetry_lag after its exposure. `silent` (no sign
// of life for policy.silence_timeout) and `apply_stuck` (exposed and not up on
// the release within policy.apply_timeout) are derived by Sweep(). A host that
// checks in or boots policy.boot_loop_attempts times after its exposure
// without coming up on the release is `apply_stuck` at once: that is a boot
// loop that dies before sending anything. (Pre-load telemetry drops the
// attempts of a host whose telemetry lags; a host never heard from before
// has none to send, so fleets whose telemetry lags by more than
// boot_loop_attempts - 1 poll intervals need a higher limit.)
//
// Control hazard. Each control host that becomes affected adds, for every
// cohort, (cohort hosts at risk) / (control hosts at risk) to the cohort's
// expected count of that signal, and its square over the control at-risk
// count squared to the variance: the Nelson-Aalen estimate of how many of
// the cohort's hosts the control arm's hazard, over the same hours, would
// have affected. The gate's breakers and ceilings compare against it.
//
// Every newly affected host is fed, with the number of hosts at risk in each
// arm at that instant, to the signal's anytime-valid sequential test
// (stats.h), so the e-values the gate reads are valid under continuous
// evaluation. Hosts that become known at one instant (one ingest batch, one
// silence sweep) are fed in an arbitrary order, so a test's threshold is
// checked after the whole batch, not between two of its hosts.
//
// Times are *receive* times from the tracker's Clock, not host clocks: a host
// whose clock is wrong can neither hide nor fake silence.
//
// Thread safety: all methods are thread-safe. The host table is split into
// shards with a mutex each; Ingest locks each shard once per batch.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ringfence/clock.h"
#include "ringfence/model.h"
#include "ringfence/stats.h"
#include "ringfence/store.h"

namespace ringfence {

namespace internal {
class HostTable;
struct HostState;
}  // namespace internal

enum class EventType : uint8_t {
  // The host is about to load `release_id`.
  kApplying = 1,
  // The host loaded `release_id` and is running it.
  kApplied = 2,
  // The host is alive; `release_id` is the release of the rollout's content
  // type it currently runs (may be empty).
  kHeartbeat = 3,
  // The agent (or the host) crashed; `signal` may carry a signature. May
  // arrive after the reboot.
  kCrash = 4,
  // The host booted; `clean` says whether the previous shutdown was clean.
  kBoot = 5,
  // A vendor-defined signal named `signal`.
  kSignal = 6,
};

// TelemetryEvent
//
// One host event. Field requirements by type are checked by
// ValidateTelemetryBatch().
struct TelemetryEvent {
  std::string host_id;
  EventType type = EventType::kHeartbeat;
  // When it happened on the host (informational; see the file comment).
  absl::Time time = absl::UnixEpoch();
  std::string release_id;
  // kCrash: crash signature (optional); kSignal: the signal name.
  std::string signal;
  // kBoot only.
  bool clean = true;
  uint64_t boot_id = 0;
  // kBoot only: boots since the host began applying the release it is
  // loading (1 = the first boot after `applying`); 0 = not reported. The
  // tracker keeps the largest seen, so a replayed boot counts once.
  uint32_t boots_since_apply = 0;
};

// TelemetryEventView
//
// A TelemetryEvent whose strings are borrowed, e.g. from a parsed request,
// so that a batch can be validated and ingested without copying them. The
// strings must outlive the call the view is passed to.
struct TelemetryEventView {
  absl::string_view host_id;
  EventType type = EventType::kHeartbeat;
  absl::Time time = absl::UnixEpoch();
  absl::string_view release_id;
  absl::string_view signal;
  bool clean = true;
  uint64_t boot_id = 0;
  uint32_t boots_since_apply = 0;
};

// ViewOf
//
// A view of `event` (valid while `event` is).
inline TelemetryEventView ViewOf(const TelemetryEvent& event) {
  return {event.host_id, event.type,  event.time,    event.release_id,
          event.signal,  event.clean, event.boot_id, event.boots_since_apply};
}
inline const TelemetryEventView& ViewOf(const TelemetryEventView& event) {
  return event;
}

absl::string_view EventTypeName(EventType type);

// ValidateTelemetryBatch
//
// INVALID_ARGUMENT naming the first bad event, e.g.
// `events[3].host_id: must not be empty`. At most `max_events` events.
absl::Status ValidateTelemetryBatch(absl::Span<const TelemetryEvent> events,
                                    size_t max_events = 100000);
absl::Status ValidateTelemetryBatch(absl::Span<const TelemetryEventView> events,
                                    size_t max_events = 100000);

// Aggregates of one stage's cohort (the hosts newly exposed in that stage).
struct CohortCounts {
  uint64_t exposed = 0;
  uint64_t applied = 0;
  uint64_t healthy = 0;
  double host_hours = 0;
  // Per signal: hosts affected after their exposure; hosts that showed the
  // signal before it (not at risk); the control hazard's expected count of
  // affected hosts over the same hours, and its variance (see above).
  std::array<uint64_t, kMaxSignals> affected{};
  std::array<uint64_t, kMaxSignals> pre_affected{};
  std::array<double, kMaxSignals> control_expected{};
  std::array<double, kMaxSignals> control_expected_var{};
};

// Aggregates of one signal over the whole rollout.
struct SignalCounts {
  std::string signal;
  uint64_t treatment_affected = 0;
  // Control hosts that showed the signal while in control (total), and those
  // of them still in control.
  uint64_t control_affected = 0;
  uint64_t control_affected_current = 0;
  // Exposed hosts that showed the signal before their exposure.
  uint64_t treatment_pre_affected = 0;
  // Hosts at risk now (not yet affected) in each arm.
  uint64_t treatment_at_risk = 0;
  uint64_t control_at_risk = 0;
  double e_value = 1.0;
  double e_threshold = 0;  // 0 = not compared with control
  bool compared = false;
  // The test crossed its threshold at some point (sticky).
  bool rejected = false;
};

// TrackerSnapshot
//
// A consistent-enough copy of a tracker's aggregates for the gate. Counters
// are read without stopping ingest, so two counters may differ by the events
// of one in-flight batch; every counter is itself exact.
struct TrackerSnapshot {
  absl::Time now;
  // When the last telemetry batch was received; InfinitePast() if never.
  absl::Time last_ingest = absl::InfinitePast();
  absl::Time created = absl::InfinitePast();
  // Start of the current stretch of continuous telemetry (the first batch
  // after the tracker started or after a gap longer than max_staleness).
  // Silence cannot be judged before silence_timeout has passed since then.
  absl::Time fresh_since = absl::InfiniteFuture();
  uint64_t tracked_hosts = 0;
  uint64_t treatment_hosts = 0;
  double treatment_host_hours = 0;
  uint64_t control_hosts = 0;
  double control_host_hours = 0;
  std::vector<std::string> signals;  // index -> name
  std::vector<SignalCounts> signal_counts;
  std::vector<CohortCounts> cohorts;  // per stage
  // Signal events whose name no rule watches: (name, events), at most 32
  // names; the rest are summed under "(other)".
  std::vector<std::pair<std::string, uint64_t>> unwatched_signals;
  // Events left out because their host is not (yet) in the release's
  // population (TrackerOptions::control_by_check_in), since the tracker
  // started; not checkpointed.
  uint64_t outside_population_events = 0;
};

// TrackerOptions
struct TrackerOptions {
  // Number of stages (plan stages + 1 for the late track).
  int num_stages = 1;
  // Signals tracked, in index order (at most kMaxSignals). Built-in ones
  // (crash, unclean_reboot, silent, apply_stuck, local_fallback) are added
  // if absent.
  std::vector<std::string> signals;
  // Hosts to size the table for (0 = grow on demand).
  uint64_t expected_hosts = 0;
  // The release whose `applying`/`applied`/heartbeat mark a host exposed.
  std::string release_id;
  // Times are kept in seconds since this instant (InfinitePast() = the
  // tracker's creation). A restored tracker uses its rollout's creation
  // time, so exposures from before a restart keep their times.
  absl::Time epoch = absl::InfinitePast();
  // Whether only admitted hosts (Admit, TryReserve, or reporting the
  // release) count in control; see "The population" in the file comment.
  bool control_by_check_in = false;
};

class RolloutTracker {
 public:
  RolloutTracker(const TrackerOptions& options, const Clock* clock);
  ~RolloutTracker();
  RolloutTracker(const RolloutTracker&) = delete;
  RolloutTracker& operator=(const RolloutTracker&) = delete;

  // SetRules
  //
  // Sets which signals are compared with control and their margins, and the
  // rollout's false-halt budget `alpha` (split evenly over compared signals).
  // Tests keep their accumulated evidence across calls. Unknown signal names
  // are ignored.
  void SetRules(absl::Span<const SignalRule> rules, double alpha);

  // Ingest
  //
  // Applies a batch. REQUIRES: ValidateTelemetryBatch(events).ok() (the
  // controller validates; the tracker skips events it cannot use). Hosts that
  // become exposed by reporting the release (`applying`, `applied`, or a
  // heartbeat running it) are appended to `newly_exposed` if not null, so the
  // caller can persist them.
  void Ingest(absl::Span<const TelemetryEvent> events,
              std::vector<Exposure>* newly_exposed = nullptr);

  // Ingest for pre-hashed hosts (simulator, benchmarks): `host_keys[i]` is
  // HostKey(events[i].host_id); events[i].host_id is not read.
  void IngestKeyed(absl::Span<const TelemetryEvent> events,
                   absl::Span<const uint64_t> host_keys);

  // Ingest of borrowed events whose hosts were hashed once for every tracker
  // of a batch (Controller::Ingest). REQUIRES: the validation Ingest
  // requires, and host_keys[i] == HostKey(events[i].host_id).
  void IngestKeyed(absl::Span<const TelemetryEventView> events,
                   absl::Span<const uint64_t> host_keys,
                   std::vector<Exposure>* newly_exposed);

  // Exposure grants, in two phases so an exposure is persisted before it
  // takes effect: TryReserve() checks the host and, in a paced stage, takes
  // one unit of the stage's budget; the caller persists the exposure, then
  // calls CommitReserved() (or CancelReserved() if persisting failed, which
  // gives the unit back and leaves the host unexposed). A check-in of a host
  // already exposed and not yet up on the release counts as one attempt
  // (boot-loop evidence), unless `telemetry_behind` (the host says it has
  // telemetry not yet delivered: whether it came up is still on its way).
  // Check-ins never count as signs of life. A refused host is admitted
  // (Admit), and otherwise left as it was.
  //
  // A host whose telemetry has not reached the tracker for longer than the
  // silence timeout (SetSilenceTimeout; it polls, but is dark: a one-way
  // partition, a broken agent pipeline) is refused, paced stage or open
  // (kNotWatched): exposed, it could neither prove healthy nor show harm,
  // and its darkness would count against the release as `silent` and
  // `apply_stuck`. It is granted once its telemetry arrives again. A host
  // the tracker never heard from is not dark (with no control arm, hosts
  // report only once exposed).
  enum class Grant { kAlreadyExposed, kReserved, kNoBudget, kNotWatched };
  // `stage_budget` is the number of hosts the stage may grant in all;
  // kUnpaced for a stage that is fully open (nothing is counted).
  static constexpr uint64_t kUnpaced = UINT64_MAX;
  Grant TryReserve(uint64_t host_key, int stage, uint64_t stage_budget,
                   bool telemetry_behind = false);
  void CommitReserved(uint64_t host_key, int stage, bool paced);
  void CancelReserved(int stage);

  // IsExposed
  bool IsExposed(uint64_t host_key) const;

  // Admit
  //
  // The host checked in for the rollout's content type and the release
  // targets it: it belongs to the population (see the file comment), and
  // its telemetry counts in control from now on. Not a sign of life. A
  // no-op without control_by_check_in or for a known host. Returns whether
  // the host is exposed (IsExposed, under the same lock).
  bool Admit(uint64_t host_key);

  // Sweep
  //
  // Derives `silent` and `apply_stuck` for hosts whose timeouts passed.
  // Returns the number of newly affected hosts.
  uint64_t Sweep(absl::Duration silence_timeout, absl::Duration apply_timeout);

  // SetSilenceTimeout
  //
  // policy.silence_timeout, for refusing dark hosts (TryReserve). Default
  // 10 minutes.
  void SetSilenceTimeout(absl::Duration d);

  // SetMaxTelemetryLag
  //
  // policy.max_telemetry_lag: pre-load telemetry restarts an exposed host's
  // clocks only this long after its exposure (default 1h).
  void SetMaxTelemetryLag(absl::Duration d);

  // SetBootLoopAttempts
  //
  // See the file comment (policy.boot_loop_attempts; 0 = never).
  void SetBootLoopAttempts(uint32_t attempts);

  // SetHealthyAfter
  //
  // A host becomes healthy (for pacing) once it reported `applied` and was
  // seen again at least `d` after its exposure.
  void SetHealthyAfter(absl::Duration d);

  // SetMaxStaleness
  //
  // A batch arriving after a gap longer than `d` (or the first batch ever)
  // restarts every host's silence clock: the gap was ours, not the hosts',
  // so nobody is `silent` until silence_timeout after telemetry resumed.
  void SetMaxStaleness(absl::Duration d);

  // SetCurrentStage
  //
  // The cohort that hosts exposed outside an assignment grant (an `applying`
  // or `applied` for the release the tracker did not grant) are counted in.
  void SetCurrentStage(int stage);

  // Snapshot
  TrackerSnapshot Snapshot() const;

  // Checkpoint
  //
  // The sequential tests' evidence, the control hazard accumulators and
  // the unwatched-signal counts; appends to `evidence` the records of hosts
  // whose evidence changed since the last call (store.h HostEvidence). If
  // the caller fails to persist them it must hand them back with
  // RequeueEvidence, so the next checkpoint writes them again.
  config::v1::TrackerCheckpoint Checkpoint(std::vector<HostEvidence>* evidence);
  void RequeueEvidence(absl::Span<const HostEvidence> evidence);

  // Restore
  //
  // Rebuilds the tracker after a restart (call once, after SetRules, before
  // any ingest): every host of `evidence` with its signals, arm and apply
  // progress; every exposure of `exposures` (hosts exposed after the last
  // checkpoint, or with nothing to record); the tests whose signal, margin
  // and alpha match; the control hazard. The halt rules then count exactly
  // what they counted at the checkpoint. Restored hosts are taken as seen
  // at the restart: the time the tracker was down is not their silence
  // (the gate's freshness rule holds promotion until a silence timeout of
  // telemetry has been watched). `checkpoint` may be null (none taken).
  void Restore(const config::v1::TrackerCheckpoint* checkpoint,
               absl::Span<const HostEvidence> evidence,
               absl::Span<const Exposure> exposures);

  // Exposed hosts in `stage`'s cohort: hosts whose exposure happened while
  // `stage` was the current stage (granted, or reported applying).
  uint64_t CohortExposed(int stage) const;
  // Exposures of `stage` granted by TryExpose (what pacing counts).
  uint64_t CohortGranted(int stage) const;
  // Healthy hosts in `stage`'s cohort (applied, seen healthy_after later,
  // never affected).
  uint64_t CohortHealthy(int stage) const;

  // Bytes used by the host table, for the memory benchmark.
  size_t MemoryBytes() const;
  uint64_t TrackedHosts() const;

  // The index of `signal`, or -1.
  int SignalIndex(absl::string_view signal) const;

 private:
  friend class internal::HostTable;
  struct Aggregates;

  void ApplyEvent(const TelemetryEventView& e, uint64_t key, uint32_t now_s,
                  internal::HostState* h);
  // Whether `h` is counted in an arm (heard from, or exposed); an admitted
  // host is not until its first telemetry.
  static bool Counted(const internal::HostState& h);
  void OnInsert(internal::HostState* h, uint32_t now_s);
  // Moves a host from control to `stage`'s cohort, keeping its control
  // history as pre_affected.
  void Expose(uint64_t key, internal::HostState* h, int stage, uint32_t now_s,
              bool granted);
  void MarkAffected(int signal, uint64_t key, internal::HostState* h);
  // Checks every sequential test's threshold (the end of a batch or sweep).
  void SettleTests();
  void MarkApplied(uint64_t key, internal::HostState* h);
  void MarkUp(uint64_t key, internal::HostState* h);
  void AddAttempt(uint64_t key, internal::HostState* h);
  // Raises the host's attempt count to `attempts` (capped at 7) if lower:
  // idempotent, for counts the host reports itself.
  void RaiseAttempts(uint64_t key, internal::HostState* h, uint32_t attempts);
  void MarkDirty(uint64_t key, internal::HostState* h);
  void MaybeHealthy(internal::HostState* h);
  void CountUnwatched(absl::string_view signal);
  // loading_s: when an exposed host began loading (HostState::first_seen;
  // 0 = not known).
  void RestoreHost(uint64_t key, bool exposed, int stage, uint32_t exposed_s,
                   uint32_t loading_s, uint32_t flags, uint8_t affected,
                   uint8_t pre_affected, uint32_t now_s);
  template <typename Event>
  void IngestImpl(absl::Span<const Event> events, const uint64_t* keys,
                  std::vector<Exposure>* newly_exposed);
  uint32_t ToSeconds(absl::Time t) const;

  const Clock* const clock_;
  const absl::Time epoch_;
  std::vector<std::string> signals_;
  std::string release_id_;
  const bool control_by_check_in_;
  int num_stages_;
  std::atomic<uint64_t> outside_population_events_{0};
  std::unique_ptr<internal::HostTable> table_;
  std::unique_ptr<Aggregates> agg_;
  std::atomic<int64_t> last_ingest_ns_{0};
  std::atomic<uint32_t> healthy_after_s_{60};
  std::atomic<int> current_stage_{0};
  std::atomic<int64_t> max_staleness_ns_{
      absl::ToInt64Nanoseconds(absl::Minutes(2))};
  // Silence is measured from max(last_seen, silence_floor_s_).
  std::atomic<uint32_t> silence_floor_s_{0};

  std::atomic<uint32_t> boot_loop_attempts_{3};
  std::atomic<uint32_t> max_telemetry_lag_s_{3600};
  // Bits of crash and unclean_reboot: a host with either in its history
  // before exposure accumulates no boot-loop attempts.
  uint8_t reboot_history_mask_ = 0;
  uint8_t silent_mask_ = 0, apply_stuck_mask_ = 0;
  // Control hosts a restored checkpoint counted that have not been heard
  // from since the restart (at restore_s_), see OnInsert.
  std::atomic<uint64_t> phantom_control_{0};
  uint32_t restore_s_ = 0;
  std::atomic<int64_t> silence_timeout_s_{600};

  // Affected counts of a checkpoint written before host evidence records
  // existed (format 1), per stage x signal: added to the live counts (a host
  // counted twice errs towards halting).
  std::vector<uint64_t> restored_affected_ ABSL_GUARDED_BY(test_mu_);

  mutable absl::Mutex test_mu_;
  std::vector<std::unique_ptr<ConditionalMixtureTest>> tests_
      ABSL_GUARDED_BY(test_mu_);  // per signal; null = not compared
  // Control hazard's expected count and variance, per stage x signal.
  std::vector<double> control_expected_ ABSL_GUARDED_BY(test_mu_);
  std::vector<double> control_expected_var_ ABSL_GUARDED_BY(test_mu_);

  // Keys of hosts whose evidence changed since the last checkpoint, per
  // shard (guarded by the shard's mutex).
  std::unique_ptr<std::vector<uint64_t>[]> dirty_;

  mutable absl::Mutex unwatched_mu_;
  std::vector<std::pair<std::string, uint64_t>> unwatched_
      ABSL_GUARDED_BY(unwatched_mu_);
};

}  // namespace ringfence
