#include "ringfence/assign.h"

#include "absl/strings/str_cat.h"
#include "ringfence/error_text.h"
#include "ringfence/hash.h"
#include "ringfence/status_macros.h"

namespace ringfence {

absl::Status ValidateHostInfo(const HostInfo& host) {
  RETURN_IF_ERROR(ValidateId(host.host_id, "host_id"));
  if (!host.tenant.empty()) RETURN_IF_ERROR(ValidateId(host.tenant, "tenant"));
  if (host.labels.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "labels: at most 64 labels (got ", host.labels.size(), ")"));
  }
  for (size_t i = 0; i < host.labels.size(); ++i) {
    // The field name is built only for an error (this runs on every
    // assignment request).
    if (IsValidId(host.labels[i])) continue;
    return ValidateId(host.labels[i], absl::StrCat("labels[", i, "]"));
  }
  if (!host.agent_version.empty() && !IsValidAgentVersion(host.agent_version)) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent_version: must be a dotted version like 7.11.0 "
                     "(got ",
                     QuoteForError(host.agent_version), ")"));
  }
  if (!host.platform.empty()) {
    RETURN_IF_ERROR(ValidateId(host.platform, "platform"));
  }
  return absl::OkStatus();
}

bool IsTargeted(const Targeting& t, const HostInfo& host) {
  if (!t.min_agent_version().empty() || !t.max_agent_version().empty()) {
    if (host.agent_version.empty()) return false;
    if (!t.min_agent_version().empty() &&
        CompareAgentVersions(host.agent_version, t.min_agent_version()) < 0) {
      return false;
    }
    if (!t.max_agent_version().empty() &&
        CompareAgentVersions(host.agent_version, t.max_agent_version()) >= 0) {
      return false;
    }
  }
  if (t.platforms_size() > 0) {
    for (const std::string& p : t.platforms()) {
      if (p == host.platform) return true;
    }
    return false;
  }
  return true;
}

CompiledTargeting::CompiledTargeting(const Targeting& t)
    : has_min_(!t.min_agent_version().empty()),
      has_max_(!t.max_agent_version().empty()),
      min_(Parse(t.min_agent_version())),
      max_(Parse(t.max_agent_version())),
      platforms_(t.platforms().begin(), t.platforms().end()) {}

CompiledTargeting::Version CompiledTargeting::Parse(absl::string_view v) {
  // Mirrors CompareAgentVersions: components beyond the fourth are ignored
  // (valid versions have at most four), non-numeric ones are 0.
  Version out;
  for (int i = 0; i < 4 && !v.empty(); ++i) {
    const size_t dot = v.find('.');
    const absl::string_view part = v.substr(0, dot);
    v = dot == absl::string_view::npos ? absl::string_view()
                                       : v.substr(dot + 1);
    uint64_t x = 0;
    bool ok = !part.empty() && part.size() <= 18;
    for (char c : part) {
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      x = x * 10 + static_cast<uint64_t>(c - '0');
    }
    out.part[i] = ok ? x : 0;
  }
  return out;
}

int CompiledTargeting::Compare(const Version& a, const Version& b) {
  for (int i = 0; i < 4; ++i) {
    if (a.part[i] != b.part[i]) return a.part[i] < b.part[i] ? -1 : 1;
  }
  return 0;
}

bool CompiledTargeting::Matches(const HostInfo& host) const {
  if (has_min_ || has_max_) {
    if (host.agent_version.empty()) return false;
    const Version v = Parse(host.agent_version);
    if (has_min_ && Compare(v, min_) < 0) return false;
    if (has_max_ && Compare(v, max_) >= 0) return false;
  }
  if (!platforms_.empty()) {
    for (const std::string& p : platforms_) {
      if (p == host.platform) return true;
    }
    return false;
  }
  return true;
}

TenantTracks::TenantTracks(const FleetConfig& fleet) {
  for (const Tenant& t : fleet.tenants()) tracks_[t.name()] = t.track();
}

Track TenantTracks::TrackOf(absl::string_view tenant) const {
  auto it = tracks_.find(tenant);
  if (it == tracks_.end() || it->second == config::v1::TRACK_UNSPECIFIED) {
    return config::v1::TRACK_GENERAL;
  }
  return it->second;
}

std::unique_ptr<const AudienceIndex> AudienceIndex::Build(
    const Plan& plan, absl::string_view salt) {
  std::unique_ptr<AudienceIndex> index(new AudienceIndex);
  index->num_stages_ = plan.stages_size();
  index->salt_seed_ = SaltSeed(salt);
  for (int s = 0; s < plan.stages_size(); ++s) {
    const Audience& a = plan.stages(s).audience();
    for (const std::string& h : a.hosts()) index->host_stage_.emplace(h, s);
    for (const std::string& l : a.labels()) index->label_stage_.emplace(l, s);
    if (a.early_track() && index->early_stage_ < 0) index->early_stage_ = s;
    if (a.percent() > 0) {
      index->percent_limits_.emplace_back(PercentToBucketLimit(a.percent()), s);
    }
  }
  return index;
}

uint32_t AudienceIndex::BucketOf(absl::string_view host_id) const {
  return ringfence::BucketOf(salt_seed_, host_id);
}

int AudienceIndex::Place(const HostInfo& host, Track track) const {
  if (track == config::v1::TRACK_PINNED) return -1;
  if (track == config::v1::TRACK_LATE) return num_stages_;
  int best = -1;
  auto consider = [&best](int s) {
    if (best < 0 || s < best) best = s;
  };
  if (!host_stage_.empty()) {
    auto it = host_stage_.find(host.host_id);
    if (it != host_stage_.end()) consider(it->second);
  }
  if (!label_stage_.empty()) {
    for (const std::string& l : host.labels) {
      auto it = label_stage_.find(l);
      if (it != label_stage_.end()) consider(it->second);
    }
  }
  if (track == config::v1::TRACK_EARLY && early_stage_ >= 0) {
    consider(early_stage_);
  }
  if (!percent_limits_.empty() && (best < 0 || best > 0)) {
    const uint32_t bucket = BucketOf(host.host_id);
    for (const auto& [limit, stage] : percent_limits_) {
      if (bucket < limit) {
        consider(stage);
        break;
      }
    }
  }
  return best;
}

}  // namespace ringfence
