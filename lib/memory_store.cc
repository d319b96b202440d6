#include <map>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ringfence/audit.h"
#include "ringfence/error_text.h"
#include "ringfence/status_macros.h"
#include "ringfence/store.h"

namespace ringfence {
namespace {

class MemoryStore final : public Store {
 public:
  absl::Status PutRelease(const Release& release,
                          const AuditEntry& audit) override {
    absl::MutexLock lock(&mu_);
    if (releases_.contains(release.id())) {
      return absl::AlreadyExistsError(absl::StrCat(
          "release ", QuoteForError(release.id()), " already exists"));
    }
    releases_[release.id()] = release;
    release_order_.push_back(release.id());
    AppendAuditLocked(audit);
    return absl::OkStatus();
  }

  absl::StatusOr<Release> GetRelease(absl::string_view id) override {
    absl::MutexLock lock(&mu_);
    auto it = releases_.find(id);
    if (it == releases_.end()) {
      return absl::NotFoundError(
          absl::StrCat("release ", QuoteForError(id), " not found"));
    }
    return it->second;
  }

  absl::StatusOr<std::vector<Release>> ListReleases() override {
    absl::MutexLock lock(&mu_);
    std::vector<Release> out;
    for (const std::string& id : release_order_) out.push_back(releases_[id]);
    return out;
  }

  absl::Status CreateRollout(const Rollout& rollout,
                             const AuditEntry& audit) override {
    absl::MutexLock lock(&mu_);
    if (rollouts_.contains(rollout.id())) {
      return absl::AlreadyExistsError(absl::StrCat(
          "rollout ", QuoteForError(rollout.id()), " already exists"));
    }
    rollouts_[rollout.id()] = rollout;
    rollout_order_.push_back(rollout.id());
    AppendAuditLocked(audit);
    return absl::OkStatus();
  }

  absl::Status CommitTransition(const Rollout& rollout,
                                uint64_t expected_version,
                                const AuditEntry& audit,
                                const Decision* decision) override {
    absl::MutexLock lock(&mu_);
    if (decision != nullptr) {
      RETURN_IF_ERROR(CheckDecisionLocked(*decision));
    }
    auto it = rollouts_.find(rollout.id());
    if (it == rollouts_.end()) {
      return absl::NotFoundError(
          absl::StrCat("rollout ", QuoteForError(rollout.id()), " not found"));
    }
    if (it->second.version() != expected_version) {
      return absl::AbortedError(
          absl::StrCat("rollout ", QuoteForError(rollout.id()),
                       " changed concurrently (version ", it->second.version(),
                       ", expected ", expected_version, ")"));
    }
    it->second = rollout;
    AppendAuditLocked(audit);
    if (decision != nullptr)
      decisions_[decision->rollout_id()].push_back(*decision);
    return absl::OkStatus();
  }

  absl::StatusOr<Rollout> GetRollout(absl::string_view id) override {
    absl::MutexLock lock(&mu_);
    auto it = rollouts_.find(id);
    if (it == rollouts_.end()) {
      return absl::NotFoundError(
          absl::StrCat("rollout ", QuoteForError(id), " not found"));
    }
    return it->second;
  }

  absl::StatusOr<std::vector<Rollout>> ListRollouts() override {
    absl::MutexLock lock(&mu_);
    std::vector<Rollout> out;
    for (const std::string& id : rollout_order_) out.push_back(rollouts_[id]);
    return out;
  }

  absl::Status AppendDecision(const Decision& decision) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(CheckDecisionLocked(decision));
    decisions_[decision.rollout_id()].push_back(decision);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Decision>> ListDecisions(
      absl::string_view rollout_id, uint64_t after_seq) override {
    absl::MutexLock lock(&mu_);
    std::vector<Decision> out;
    auto it = decisions_.find(rollout_id);
    if (it == decisions_.end()) return out;
    for (const Decision& d : it->second) {
      if (d.seq() > after_seq) out.push_back(d);
    }
    return out;
  }

  absl::Status RecordExposures(absl::string_view rollout_id,
                               absl::Span<const Exposure> exposures) override {
    absl::MutexLock lock(&mu_);
    auto& m = exposures_[rollout_id];
    for (const Exposure& e : exposures) m.emplace(e.host_id, e);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<Exposure>> ListExposures(
      absl::string_view rollout_id) override {
    absl::MutexLock lock(&mu_);
    std::vector<Exposure> out;
    auto it = exposures_.find(rollout_id);
    if (it == exposures_.end()) return out;
    for (const auto& [host, e] : it->second) out.push_back(e);
    return out;
  }

  absl::Status SetEmergencyStop(const EmergencyStop& stop,
                                const AuditEntry& audit) override {
    absl::MutexLock lock(&mu_);
    stops_[stop.content_type] = stop;
    AppendAuditLocked(audit);
    return absl::OkStatus();
  }

  absl::Status ClearEmergencyStop(absl::string_view content_type,
                                  const AuditEntry& audit) override {
    absl::MutexLock lock(&mu_);
    if (stops_.erase(std::string(content_type)) == 0) {
      return absl::NotFoundError(absl::StrCat("content type ",
                                              QuoteForError(content_type),
                                              " has no emergency stop"));
    }
    AppendAuditLocked(audit);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<EmergencyStop>> ListEmergencyStops() override {
    absl::MutexLock lock(&mu_);
    std::vector<EmergencyStop> out;
    for (const auto& [type, stop] : stops_) out.push_back(stop);
    return out;
  }

  absl::Status PutCheckpoint(absl::string_view rollout_id,
                             absl::string_view bytes,
                             absl::Span<const HostEvidence> evidence) override {
    absl::MutexLock lock(&mu_);
    checkpoints_[rollout_id] = std::string(bytes);
    auto& m = evidence_[rollout_id];
    for (const HostEvidence& e : evidence) m[e.host_key] = e;
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<HostEvidence>> ListHostEvidence(
      absl::string_view rollout_id) override {
    absl::MutexLock lock(&mu_);
    std::vector<HostEvidence> out;
    auto it = evidence_.find(rollout_id);
    if (it == evidence_.end()) return out;
    out.reserve(it->second.size());
    for (const auto& [key, e] : it->second) out.push_back(e);
    return out;
  }

  absl::StatusOr<std::string> GetCheckpoint(
      absl::string_view rollout_id) override {
    absl::MutexLock lock(&mu_);
    auto it = checkpoints_.find(rollout_id);
    if (it == checkpoints_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no checkpoint for rollout "
                       ", rollout_id, "
                       ""));
    }
    return it->second;
  }

  absl::Status Probe() override { return absl::OkStatus(); }

  absl::Status AppendAudit(const AuditEntry& audit) override {
    absl::MutexLock lock(&mu_);
    AppendAuditLocked(audit);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<AuditEntry>> ReadAudit(uint64_t after_seq,
                                                    size_t limit) override {
    absl::MutexLock lock(&mu_);
    std::vector<AuditEntry> out;
    for (size_t i = after_seq; i < audit_.size() && out.size() < limit; ++i) {
      out.push_back(audit_[i]);
    }
    return out;
  }

  absl::StatusOr<std::optional<uint64_t>> GetWebhookCursor(
      absl::string_view name) override {
    absl::MutexLock lock(&mu_);
    auto it = webhook_cursors_.find(name);
    if (it == webhook_cursors_.end()) return std::nullopt;
    return it->second;
  }

  absl::Status PutWebhookCursor(absl::string_view name, uint64_t seq) override {
    absl::MutexLock lock(&mu_);
    webhook_cursors_[name] = seq;
    return absl::OkStatus();
  }

 private:
  absl::Status CheckDecisionLocked(const Decision& decision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = decisions_.find(decision.rollout_id());
    if (it != decisions_.end() && !it->second.empty() &&
        it->second.back().seq() >= decision.seq()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "decision ", decision.seq(), " of rollout ",
          QuoteForError(decision.rollout_id()), " already recorded"));
    }
    return absl::OkStatus();
  }

  void AppendAuditLocked(const AuditEntry& audit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::string prev =
        audit_.empty() ? std::string(kAuditGenesisHash) : audit_.back().hash();
    audit_.push_back(audit);
    audit_.back().set_seq(audit_.size());
    ChainAuditEntry(prev, &audit_.back());
  }

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Release> releases_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> release_order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Rollout> rollouts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> rollout_order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::vector<Decision>> decisions_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::map<std::string, Exposure>> exposures_
      ABSL_GUARDED_BY(mu_);
  std::map<std::string, EmergencyStop> stops_ ABSL_GUARDED_BY(mu_);
  std::vector<AuditEntry> audit_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::string> checkpoints_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, HostEvidence>>
      evidence_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> webhook_cursors_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace

StorePtr NewMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace ringfence
