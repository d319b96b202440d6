// FaultyStore: wraps a Store and fails chosen operations on demand, to test
// that the controller fails closed.
#pragma once

#include <atomic>

#include "absl/status/status.h"
#include "ringfence/store.h"

namespace ringfence::testing {

class FaultyStore : public Store {
 public:
  explicit FaultyStore(Store* base) : base_(base) {}

  // While set, every write fails with `error`.
  void FailWrites(absl::Status error) {
    error_ = error;
    failing_ = true;
  }
  void Heal() { failing_ = false; }

  absl::Status PutRelease(const Release& r, const AuditEntry& a) override {
    if (failing_) return error_;
    return base_->PutRelease(r, a);
  }
  absl::StatusOr<Release> GetRelease(absl::string_view id) override {
    return base_->GetRelease(id);
  }
  absl::StatusOr<std::vector<Release>> ListReleases() override {
    return base_->ListReleases();
  }
  absl::Status CreateRollout(const Rollout& r, const AuditEntry& a) override {
    if (failing_) return error_;
    return base_->CreateRollout(r, a);
  }
  absl::Status CommitTransition(const Rollout& r, uint64_t v,
                                const AuditEntry& a,
                                const Decision* d) override {
    if (failing_) return error_;
    return base_->CommitTransition(r, v, a, d);
  }
  absl::StatusOr<Rollout> GetRollout(absl::string_view id) override {
    return base_->GetRollout(id);
  }
  absl::StatusOr<std::vector<Rollout>> ListRollouts() override {
    return base_->ListRollouts();
  }
  absl::Status AppendDecision(const Decision& d) override {
    if (failing_) return error_;
    return base_->AppendDecision(d);
  }
  absl::StatusOr<std::vector<Decision>> ListDecisions(absl::string_view id,
                                                      uint64_t after) override {
    return base_->ListDecisions(id, after);
  }
  absl::Status RecordExposures(absl::string_view id,
                               absl::Span<const Exposure> e) override {
    if (failing_) return error_;
    return base_->RecordExposures(id, e);
  }
  absl::StatusOr<std::vector<Exposure>> ListExposures(
      absl::string_view id) override {
    return base_->ListExposures(id);
  }
  absl::Status SetEmergencyStop(const EmergencyStop& s,
                                const AuditEntry& a) override {
    if (failing_) return error_;
    return base_->SetEmergencyStop(s, a);
  }
  absl::Status ClearEmergencyStop(absl::string_view t,
                                  const AuditEntry& a) override {
    if (failing_) return error_;
    return base_->ClearEmergencyStop(t, a);
  }
  absl::StatusOr<std::vector<EmergencyStop>> ListEmergencyStops() override {
    return base_->ListEmergencyStops();
  }
  absl::Status PutCheckpoint(absl::string_view id, absl::string_view bytes,
                             absl::Span<const HostEvidence> evidence) override {
    if (failing_) return error_;
    return base_->PutCheckpoint(id, bytes, evidence);
  }
  absl::StatusOr<std::vector<HostEvidence>> ListHostEvidence(
      absl::string_view id) override {
    return base_->ListHostEvidence(id);
  }
  absl::StatusOr<std::string> GetCheckpoint(absl::string_view id) override {
    return base_->GetCheckpoint(id);
  }
  absl::Status Probe() override {
    if (failing_) return error_;
    return base_->Probe();
  }
  absl::Status AppendAudit(const AuditEntry& a) override {
    if (failing_) return error_;
    return base_->AppendAudit(a);
  }
  absl::StatusOr<std::vector<AuditEntry>> ReadAudit(uint64_t after,
                                                    size_t limit) override {
    return base_->ReadAudit(after, limit);
  }
  absl::StatusOr<std::optional<uint64_t>> GetWebhookCursor(
      absl::string_view name) override {
    return base_->GetWebhookCursor(name);
  }
  absl::Status PutWebhookCursor(absl::string_view name, uint64_t seq) override {
    if (failing_) return error_;
    return base_->PutWebhookCursor(name, seq);
  }

 private:
  Store* const base_;
  std::atomic<bool> failing_{false};
  absl::Status error_;
};

}  // namespace ringfence::testing
