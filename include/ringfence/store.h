// Store: where ringfence keeps what it must not forget.
//
// The controller writes through this interface *before* a change takes
// effect: a transition is visible to hosts only after CommitTransition
// returned OK; an exposure is granted only after RecordExposures returned OK.
// Any error makes the controller fail closed (no new exposure).
//
// Implementations: NewMemoryStore() (tests, embedding without persistence),
// OpenSqliteStore() (sqlite_store.h, the embedded default).
//
// Audit entries passed in are completed by the store: it assigns `seq`
// (consecutive from 1) and chains them (audit.h: prev_hash, hash).
//
// Thread safety: implementations must be safe for concurrent use.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ringfence/model.h"

namespace ringfence {

// One host exposed to a rollout's release.
struct Exposure {
  std::string host_id;
  uint32_t stage = 0;
  absl::Time at;
  // Granted by an assignment in a paced stage (counts against the stage's
  // exposure budget); false for hosts exposed in an open stage or that
  // reported running the release on their own.
  bool granted = true;
};

// HostEvidence
//
// What a rollout's tracker knows about one host that the halt rules count:
// which signals it showed, in which arm, and its apply progress. Checkpoints
// write the records that changed (upsert by host key), so that after a
// restart every affected host counts once, exactly as before. A tracker
// that admits hosts by check-in (TrackerOptions::control_by_check_in) also
// records every admitted control host, so that a host's telemetry after a
// restart counts before it checks in again.
struct HostEvidence {
  uint64_t host_key = 0;  // HostKey(host_id) (hash.h)
  bool exposed = false;
  uint32_t stage = 0;     // cohort, if exposed
  absl::Time exposed_at;  // if exposed
  uint32_t flags = 0;     // applied / up / granted and the attempt count
  uint32_t affected = 0;  // bit per signal (TrackerCheckpoint.signals)
  uint32_t pre_affected = 0;
  // If exposed: when it began loading the release, in its own clock (the
  // time of its first telemetry about the release), which tells its
  // telemetry from before the load from what it sent since; InfinitePast()
  // until that arrives. Stored to the second.
  absl::Time loading_since = absl::InfinitePast();
};

// HostEvidence::flags bit: the host checked in (it is of the release's
// population) but no telemetry of it was heard yet, so it counts in no arm.
// Records without it that are not exposed are control hosts heard from.
inline constexpr uint32_t kHostEvidenceAdmittedOnly = 1u << 8;

// An emergency stop of a content type: no rollout of it may expose hosts.
struct EmergencyStop {
  std::string content_type;
  std::string actor;
  std::string reason;
  absl::Time at;
};

class Store {
 public:
  virtual ~Store() = default;

  // PutRelease
  //
  // Stores a new release. ALREADY_EXISTS if the id is taken.
  virtual absl::Status PutRelease(const Release& release,
                                  const AuditEntry& audit) = 0;
  // GetRelease: NOT_FOUND if absent.
  virtual absl::StatusOr<Release> GetRelease(absl::string_view id) = 0;
  virtual absl::StatusOr<std::vector<Release>> ListReleases() = 0;

  // CreateRollout
  //
  // Stores a new rollout with its audit entry, atomically. ALREADY_EXISTS if
  // the id is taken.
  virtual absl::Status CreateRollout(const Rollout& rollout,
                                     const AuditEntry& audit) = 0;

  // CommitTransition
  //
  // Atomically replaces the rollout (if its stored version equals
  // `expected_version`; else ABORTED), appends `audit`, and appends
  // `decision` if not null (the gate decision that caused the transition).
  virtual absl::Status CommitTransition(const Rollout& rollout,
                                        uint64_t expected_version,
                                        const AuditEntry& audit,
                                        const Decision* decision) = 0;

  virtual absl::StatusOr<Rollout> GetRollout(absl::string_view id) = 0;
  // All rollouts, in creation order.
  virtual absl::StatusOr<std::vector<Rollout>> ListRollouts() = 0;

  // AppendDecision: records a gate decision (seq unique per rollout).
  virtual absl::Status AppendDecision(const Decision& decision) = 0;
  // Decisions of a rollout with seq > after_seq, oldest first.
  virtual absl::StatusOr<std::vector<Decision>> ListDecisions(
      absl::string_view rollout_id, uint64_t after_seq) = 0;

  // RecordExposures: durably records exposed hosts (idempotent per host).
  virtual absl::Status RecordExposures(
      absl::string_view rollout_id, absl::Span<const Exposure> exposures) = 0;
  virtual absl::StatusOr<std::vector<Exposure>> ListExposures(
      absl::string_view rollout_id) = 0;

  // SetEmergencyStop / ClearEmergencyStop, each with its audit entry.
  virtual absl::Status SetEmergencyStop(const EmergencyStop& stop,
                                        const AuditEntry& audit) = 0;
  virtual absl::Status ClearEmergencyStop(absl::string_view content_type,
                                          const AuditEntry& audit) = 0;
  virtual absl::StatusOr<std::vector<EmergencyStop>> ListEmergencyStops() = 0;

  // PutCheckpoint / GetCheckpoint: the latest serialized telemetry aggregates
  // of a rollout (opaque bytes; NOT_FOUND if none), with the host evidence
  // records that changed since the previous checkpoint, upserted by host key
  // in the same transaction.
  virtual absl::Status PutCheckpoint(
      absl::string_view rollout_id, absl::string_view bytes,
      absl::Span<const HostEvidence> evidence) = 0;
  virtual absl::StatusOr<std::string> GetCheckpoint(
      absl::string_view rollout_id) = 0;
  // Every host evidence record of a rollout (any order).
  virtual absl::StatusOr<std::vector<HostEvidence>> ListHostEvidence(
      absl::string_view rollout_id) = 0;
  // The records of a rollout's exposed hosts only (any order): what a
  // follower reads every poll, without the fleet's control hosts. This
  // default filters ListHostEvidence; the SQL stores read an index.
  virtual absl::StatusOr<std::vector<HostEvidence>> ListExposedHostEvidence(
      absl::string_view rollout_id) {
    absl::StatusOr<std::vector<HostEvidence>> all =
        ListHostEvidence(rollout_id);
    if (!all.ok()) return all.status();
    std::vector<HostEvidence> out;
    for (HostEvidence& h : *all) {
      if (h.exposed) out.push_back(h);
    }
    return out;
  }

  // AppendAudit: an audit entry on its own (e.g. a rejected request).
  virtual absl::Status AppendAudit(const AuditEntry& audit) = 0;
  // Audit entries with seq > after_seq, oldest first, at most `limit`.
  virtual absl::StatusOr<std::vector<AuditEntry>> ReadAudit(uint64_t after_seq,
                                                            size_t limit) = 0;

  // GetWebhookCursor / PutWebhookCursor: a webhook's delivery cursor, the
  // highest audit seq the webhook `name` has acknowledged or skipped
  // (service/webhook_notifier.h); nullopt if it has none. Kept with the
  // audit log it points into, so that the replica that takes over next
  // goes on from where the last leader's notifications stopped (and a
  // superseded leader cannot move it: the write is fenced as every other).
  // Put replaces the cursor durably.
  virtual absl::StatusOr<std::optional<uint64_t>> GetWebhookCursor(
      absl::string_view name) = 0;
  virtual absl::Status PutWebhookCursor(absl::string_view name,
                                        uint64_t seq) = 0;

  // Probe: a durable write that changes nothing, to find out whether writes
  // work again after a failure (the controller probes while its store is
  // unhealthy, so health recovers without waiting for real work). The
  // default, for stores that cannot probe, is UNIMPLEMENTED.
  virtual absl::Status Probe() {
    return absl::UnimplementedError("this store cannot probe");
  }
};

using StorePtr = std::unique_ptr<Store>;

// NewMemoryStore
//
// A Store that keeps everything in memory (lost when destroyed). Assigns
// audit sequence numbers from 1.
StorePtr NewMemoryStore();

}  // namespace ringfence
