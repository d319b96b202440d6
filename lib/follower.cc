#include "ringfence/follower.h"

#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "host_table.h"
#include "ringfence/hash.h"
#include "ringfence/status_macros.h"

namespace ringfence {

using config::v1::COMPLETED;
using config::v1::PAUSED;
using config::v1::RUNNING;

// One rollout compiled for the rules (rebuilt when its version changes).
struct Follower::RolloutData {
  Rollout record;
  std::string id;
  std::shared_ptr<const Release> release;
  std::shared_ptr<const Release> baseline;  // nullptr if none named
  std::unique_ptr<const AudienceIndex> index;
  std::unique_ptr<const CompiledTargeting> targeting;
};

struct Follower::Snapshot {
  struct Content {
    ContentState cs;
    // Host ids with a durable exposure to the latest rollout (only for a
    // rollout whose answers depend on them).
    absl::flat_hash_set<std::string> exposed;
    // HostKey()s of the hosts whose checkpointed evidence says they came up
    // on the release: their check-ins are no boot-loop evidence
    // (RolloutTracker counts check-ins of exposed hosts only until then).
    absl::flat_hash_set<uint64_t> up;
  };
  absl::Time as_of = absl::InfinitePast();
  std::vector<std::shared_ptr<const RolloutData>> rollouts;  // owned here
  absl::flat_hash_map<std::string, Content> content;
};

namespace {

// The watch of a completed rollout is over for a follower only once the
// leader committed it over (watch_until <= updated_at): the follower's
// clock never decides that a release is proven.
bool WatchingCommitted(const Rollout& r) {
  return r.state() == COMPLETED && r.has_watch_until() &&
         FromProto(r.watch_until()) > FromProto(r.updated_at());
}

// Whether answers under this rollout depend on the hosts' exposures.
bool NeedsExposures(const Rollout& r) {
  return r.state() == RUNNING || r.state() == PAUSED || WatchingCommitted(r);
}

// One host's admission to one rollout's population.
uint64_t AdmissionKey(const std::string& rollout_id,
                      const std::string& host_id) {
  return HostKey(host_id) ^ (HostKey(rollout_id) * 0x9E3779B97F4A7C15ULL);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Follower>> Follower::Create(
    Store* store, const Clock* clock, FollowerOptions options) {
  RETURN_IF_ERROR(ValidateFleetConfig(options.fleet));
  if (options.max_staleness <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_staleness: must be positive, got ",
                     absl::FormatDuration(options.max_staleness)));
  }
  return std::unique_ptr<Follower>(
      new Follower(store, clock, std::move(options)));
}

Follower::Follower(Store* store, const Clock* clock, FollowerOptions options)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      tenants_(options_.fleet) {}

Follower::~Follower() = default;

absl::Status Follower::Refresh() {
  auto snapshot = std::make_shared<Snapshot>();
  // Every commit before this instant is visible to the reads below.
  snapshot->as_of = clock_->Now();
  ASSIGN_OR_RETURN(std::vector<EmergencyStop> stops,
                   store_->ListEmergencyStops());
  ASSIGN_OR_RETURN(std::vector<Rollout> rollouts, store_->ListRollouts());
  auto release = [&](const std::string& id)
      -> absl::StatusOr<std::shared_ptr<const Release>> {
    auto it = releases_.find(id);
    if (it != releases_.end()) return it->second;
    ASSIGN_OR_RETURN(Release r, store_->GetRelease(id));
    auto p = std::make_shared<const Release>(std::move(r));
    releases_.emplace(id, p);
    return p;
  };
  absl::flat_hash_map<std::string, std::shared_ptr<const RolloutData>> next;
  for (Rollout& r : rollouts) {
    std::shared_ptr<const RolloutData> data;
    if (auto it = rollouts_.find(r.id());
        it != rollouts_.end() && it->second->record.version() == r.version()) {
      data = it->second;
    } else {
      auto d = std::make_shared<RolloutData>();
      d->id = r.id();
      ASSIGN_OR_RETURN(d->release, release(r.release_id()));
      if (!r.baseline_release_id().empty()) {
        ASSIGN_OR_RETURN(d->baseline, release(r.baseline_release_id()));
      }
      d->index = AudienceIndex::Build(r.plan(), r.salt());
      d->targeting =
          std::make_unique<const CompiledTargeting>(d->release->targeting());
      d->record = std::move(r);
      data = std::move(d);
    }
    next[data->id] = data;
    snapshot->rollouts.push_back(data);
    // In creation order: the latest rollout of a content type wins.
    Snapshot::Content& c = snapshot->content[data->record.content_type()];
    FoldRollout(data->record, &data->id, data->release.get(),
                data->baseline.get(), data->index.get(), data->targeting.get(),
                WatchingCommitted(data->record), &c.cs);
  }
  for (const EmergencyStop& stop : stops) {
    snapshot->content[stop.content_type].cs.emergency_stop = true;
  }
  // The exposures of the rollouts that decide answers, read after their
  // records: any exposure committed before as_of is among them.
  for (auto& [type, c] : snapshot->content) {
    if (c.cs.rollout_id == nullptr) continue;
    const RolloutData& d = *next.at(*c.cs.rollout_id);
    if (c.cs.emergency_stop || !NeedsExposures(d.record)) continue;
    ASSIGN_OR_RETURN(std::vector<Exposure> exposures,
                     store_->ListExposures(d.id));
    c.exposed.reserve(exposures.size());
    for (Exposure& e : exposures) c.exposed.insert(std::move(e.host_id));
    ASSIGN_OR_RETURN(std::vector<HostEvidence> evidence,
                     store_->ListExposedHostEvidence(d.id));
    for (const HostEvidence& e : evidence) {
      if (e.exposed && (e.flags & internal::kUp) != 0) c.up.insert(e.host_key);
    }
  }
  rollouts_ = std::move(next);
  absl::MutexLock lock(&mu_);
  current_ = std::move(snapshot);
  return absl::OkStatus();
}

std::shared_ptr<const Follower::Snapshot> Follower::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::Time Follower::as_of() const {
  std::shared_ptr<const Snapshot> s = Current();
  return s == nullptr ? absl::InfinitePast() : s->as_of;
}

bool Follower::Fresh() const {
  std::shared_ptr<const Snapshot> s = Current();
  return s != nullptr && clock_->Now() - s->as_of <= options_.max_staleness;
}

FollowerAnswer Follower::Assign(
    const HostInfo& host, absl::Span<const std::string> content_types) const {
  return Answer(host, content_types, /*forward=*/true);
}

FollowerAnswer Follower::NoGrantAnswer(
    const HostInfo& host, absl::Span<const std::string> content_types) const {
  return Answer(host, content_types, /*forward=*/false);
}

FollowerAnswer Follower::Answer(const HostInfo& host,
                                absl::Span<const std::string> content_types,
                                bool forward) const {
  FollowerAnswer out;
  std::shared_ptr<const Snapshot> s = Current();
  if (s == nullptr) return out;
  out.as_of = s->as_of;
  if (clock_->Now() - s->as_of > options_.max_staleness) return out;
  out.assignments.reserve(content_types.size());
  absl::MutexLock admitted(&admitted_mu_);
  out.leader_epoch = epoch_;
  for (const std::string& type : content_types) {
    auto it = s->content.find(type);
    if (it == s->content.end()) {
      out.assignments.emplace_back();
      continue;
    }
    const ContentState& cs = it->second.cs;
    const AssignRule rule = ApplyAssignRules(cs, tenants_, host);
    const bool exposed =
        rule.needs_exposure && it->second.exposed.contains(host.host_id);
    if (forward && rule.of_population && !exposed &&
        !admitted_.contains(AdmissionKey(*cs.rollout_id, host.host_id))) {
      // Its first check-in under this leader: the leader admits it to the
      // rollout's control arm (an exposed host is admitted by its exposure).
      out.verdict = FollowerVerdict::kForward;
      out.assignments.clear();
      return out;
    }
    if (!rule.needs_exposure) {
      out.assignments.push_back(rule.answer);
    } else if (exposed) {
      // The leader counts a check-in of an exposed host that has not come
      // up on the release as a boot-loop attempt (not while paused): such
      // check-ins go to the leader.
      if (forward && !rule.frozen &&
          !it->second.up.contains(HostKey(host.host_id))) {
        out.verdict = FollowerVerdict::kForward;
        out.assignments.clear();
        return out;
      }
      out.assignments.push_back(ExposedAnswer(cs, rule));
    } else if (rule.frozen) {
      out.assignments.push_back(
          NotExposedAnswer(cs, rule, AssignReason::kPaused));
    } else if (forward) {
      out.verdict = FollowerVerdict::kForward;
      out.assignments.clear();
      return out;
    } else {
      out.assignments.push_back(
          NotExposedAnswer(cs, rule, AssignReason::kStoreUnavailable));
    }
  }
  out.verdict = FollowerVerdict::kAnswered;
  out.snapshot = std::move(s);
  return out;
}

void Follower::SetLeaderEpoch(int64_t epoch) {
  absl::MutexLock lock(&admitted_mu_);
  if (epoch == epoch_) return;
  epoch_ = epoch;
  admitted_.clear();
}

void Follower::NoteAdmitted(const HostInfo& host,
                            absl::Span<const std::string> content_types,
                            int64_t epoch) {
  std::shared_ptr<const Snapshot> s = Current();
  if (s == nullptr) return;
  absl::MutexLock lock(&admitted_mu_);
  if (epoch != epoch_) return;
  if (admitted_.size() >= kMaxAdmissions) admitted_.clear();
  for (const std::string& type : content_types) {
    auto it = s->content.find(type);
    if (it == s->content.end() || it->second.cs.rollout_id == nullptr) continue;
    admitted_.insert(AdmissionKey(*it->second.cs.rollout_id, host.host_id));
  }
}

}  // namespace ringfence
