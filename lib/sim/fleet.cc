#include "fleet.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace ringfence::internal {
namespace {

using config::v1::SimSegment;
using config::v1::TimeZoneMix;
using config::v1::Weighted;

// Interns strings into a table of at most 256 values.
class Interner {
 public:
  explicit Interner(std::vector<std::string>* table) : table_(table) {}
  uint8_t Get(const std::string& v) {
    auto [it, inserted] = index_.try_emplace(v, table_->size());
    if (inserted) table_->push_back(v);
    return static_cast<uint8_t>(it->second);
  }

 private:
  std::vector<std::string>* table_;
  absl::flat_hash_map<std::string, size_t> index_;
};

// A weighted choice among interned values.
struct Choice {
  std::vector<uint8_t> values;
  std::vector<double> cumulative;
  uint8_t Pick(std::mt19937_64& rng) const {
    if (values.size() == 1) return values[0];
    const double x =
        std::uniform_real_distribution<double>(0, cumulative.back())(rng);
    const size_t i = std::upper_bound(cumulative.begin(), cumulative.end(), x) -
                     cumulative.begin();
    return values[std::min(i, values.size() - 1)];
  }
};

Choice MakeChoice(const google::protobuf::RepeatedPtrField<Weighted>& own,
                  const google::protobuf::RepeatedPtrField<Weighted>& fleet,
                  const std::string& fallback, Interner& interner) {
  const auto& list = own.empty() ? fleet : own;
  Choice c;
  double total = 0;
  for (const Weighted& w : list) {
    if (w.weight() <= 0) continue;
    c.values.push_back(interner.Get(w.value()));
    total += w.weight();
    c.cumulative.push_back(total);
  }
  if (c.values.empty()) {
    c.values.push_back(interner.Get(fallback));
    c.cumulative.push_back(1);
  }
  return c;
}

Choice MakeTzChoice(
    const google::protobuf::RepeatedPtrField<TimeZoneMix>& own,
    const google::protobuf::RepeatedPtrField<TimeZoneMix>& fleet,
    std::vector<double>* offsets) {
  const auto& list = own.empty() ? fleet : own;
  Choice c;
  double total = 0;
  auto intern = [&](double h) {
    for (size_t i = 0; i < offsets->size(); ++i) {
      if ((*offsets)[i] == h) return static_cast<uint8_t>(i);
    }
    offsets->push_back(h);
    return static_cast<uint8_t>(offsets->size() - 1);
  };
  for (const TimeZoneMix& z : list) {
    if (z.weight() <= 0) continue;
    c.values.push_back(intern(z.utc_offset_hours()));
    total += z.weight();
    c.cumulative.push_back(total);
  }
  if (c.values.empty()) {
    c.values.push_back(intern(0));
    c.cumulative.push_back(1);
  }
  return c;
}

bool Contains(const google::protobuf::RepeatedPtrField<std::string>& list,
              const std::string& v) {
  return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
}

// Marks round(fraction * size) hosts of [begin, begin + size) with `trait`,
// chosen at random.
void MarkRandom(std::vector<uint8_t>& traits, uint32_t begin, uint32_t size,
                double fraction, uint8_t trait, std::mt19937_64& rng) {
  uint64_t want = static_cast<uint64_t>(std::llround(fraction * size));
  want = std::min<uint64_t>(want, size);
  if (want == 0) return;
  if (want > size / 2) {
    // Dense: a partial shuffle.
    std::vector<uint32_t> idx(size);
    for (uint32_t i = 0; i < size; ++i) idx[i] = begin + i;
    for (uint64_t i = 0; i < want; ++i) {
      const uint64_t j = i + rng() % (size - i);
      std::swap(idx[i], idx[j]);
      traits[idx[i]] |= trait;
    }
    return;
  }
  for (uint64_t got = 0; got < want;) {
    const uint32_t h = begin + static_cast<uint32_t>(rng() % size);
    if (traits[h] & trait) continue;
    traits[h] |= trait;
    ++got;
  }
}

}  // namespace

void WriteHostId(uint32_t i, char* out) {
  out[0] = 'h';
  for (int d = kHostIdLength - 1; d >= 1; --d) {
    out[d] = static_cast<char>('0' + i % 10);
    i /= 10;
  }
}

void SimHosts::FillInfo(uint32_t i, absl::string_view id,
                        HostInfo* info) const {
  info->host_id.assign(id.data(), id.size());
  info->tenant = tenants[tenant[i]];
  info->agent_version = versions[version[i]];
  info->platform = platforms[platform[i]];
  info->labels = segment_labels[segment[i]];
  if (traits[i] & kTraitDogfood) info->labels.push_back(kDogfoodLabel);
}

SimHosts DrawFleet(const Scenario& s, std::mt19937_64& rng) {
  const config::v1::SimFleet& f = s.fleet();
  const config::v1::SimBehavior& b = s.behavior();
  const config::v1::SimEffect& e = s.effect();
  SimHosts h;
  h.n = static_cast<uint32_t>(f.hosts());
  Interner versions(&h.versions), platforms(&h.platforms), regions(&h.regions),
      tenants(&h.tenants);
  google::protobuf::RepeatedPtrField<Weighted> fleet_tenants;
  for (const auto& t : f.tenants()) {
    Weighted* w = fleet_tenants.Add();
    w->set_value(t.name());
    w->set_weight(t.weight());
    Tenant* ct = h.fleet_config.add_tenants();
    ct->set_name(t.name());
    ct->set_track(t.track());
  }
  const TenantTracks tracks(h.fleet_config);

  // Segments: fixed sizes first, the rest by weight (largest remainder).
  std::vector<SimSegment> segs(f.segments().begin(), f.segments().end());
  if (segs.empty()) segs.emplace_back();
  std::vector<uint64_t> sizes(segs.size(), 0);
  uint64_t fixed = 0;
  double total_weight = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    if (segs[i].hosts() > 0) {
      sizes[i] = segs[i].hosts();
      fixed += sizes[i];
    } else {
      total_weight += segs[i].weight() > 0 ? segs[i].weight() : 1;
    }
  }
  const uint64_t rest = h.n > fixed ? h.n - fixed : 0;
  if (total_weight > 0) {
    uint64_t given = 0;
    std::vector<std::pair<double, size_t>> remainders;
    for (size_t i = 0; i < segs.size(); ++i) {
      if (segs[i].hosts() > 0) continue;
      const double share = (segs[i].weight() > 0 ? segs[i].weight() : 1) /
                           total_weight * static_cast<double>(rest);
      sizes[i] = static_cast<uint64_t>(share);
      given += sizes[i];
      remainders.emplace_back(share - std::floor(share), i);
    }
    std::sort(remainders.rbegin(), remainders.rend());
    for (size_t k = 0; given < rest; ++k, ++given) {
      ++sizes[remainders[k % remainders.size()].second];
    }
  }

  h.version.resize(h.n);
  h.platform.resize(h.n);
  h.region.resize(h.n);
  h.tenant.resize(h.n);
  h.tz.resize(h.n);
  h.segment.resize(h.n);
  h.traits.assign(h.n, 0);
  const bool any_labels =
      std::any_of(segs.begin(), segs.end(),
                  [](const SimSegment& sg) { return sg.labels_size() > 0; });
  const bool heterogeneous =
      b.crash_frailty_shape() > 0 ||
      std::any_of(segs.begin(), segs.end(), [](const SimSegment& sg) {
        return sg.has_crash_multiplier() && sg.crash_multiplier() != 1;
      });
  if (heterogeneous) h.crash_weight.assign(h.n, 1.0f);
  std::gamma_distribution<double> frailty(
      b.crash_frailty_shape() > 0 ? b.crash_frailty_shape() : 1,
      b.crash_frailty_shape() > 0 ? 1 / b.crash_frailty_shape() : 1);
  uint32_t next = 0;
  for (size_t si = 0; si < segs.size(); ++si) {
    const SimSegment& sg = segs[si];
    h.segments.push_back(sg.name().empty() ? absl::StrCat("segment", si)
                                           : sg.name());
    h.segment_labels.emplace_back(sg.labels().begin(), sg.labels().end());
    const Choice cv =
        MakeChoice(sg.agent_versions(), f.agent_versions(), "7.11.0", versions);
    const Choice cp =
        MakeChoice(sg.platforms(), f.platforms(), "windows", platforms);
    const Choice cr = MakeChoice(sg.regions(), f.regions(), "default", regions);
    const Choice ct =
        MakeChoice(sg.tenants(), fleet_tenants, "general", tenants);
    const Choice cz =
        MakeTzChoice(sg.time_zones(), f.time_zones(), &h.tz_offsets_hours);
    const uint32_t begin = next;
    const uint32_t size =
        static_cast<uint32_t>(std::min<uint64_t>(sizes[si], h.n - next));
    const double mult = sg.has_crash_multiplier() ? sg.crash_multiplier() : 1;
    for (uint32_t i = begin; i < begin + size; ++i) {
      h.segment[i] = static_cast<uint8_t>(si);
      h.version[i] = cv.Pick(rng);
      h.platform[i] = cp.Pick(rng);
      h.region[i] = cr.Pick(rng);
      h.tenant[i] = ct.Pick(rng);
      h.tz[i] = cz.Pick(rng);
      if (heterogeneous) {
        double w =
            b.crash_frailty_shape() > 0 ? std::min(50.0, frailty(rng)) : 1.0;
        h.crash_weight[i] = static_cast<float>(w * mult);
      }
    }
    MarkRandom(h.traits, begin, size,
               sg.has_chronic_fraction() ? sg.chronic_fraction()
                                         : b.chronic_crashers().fraction(),
               kTraitChronic, rng);
    MarkRandom(h.traits, begin, size,
               sg.has_flapper_fraction() ? sg.flapper_fraction()
                                         : b.flappers().fraction(),
               kTraitFlapper, rng);
    next += size;
  }
  h.n = next;
  if (!any_labels) {
    const uint32_t dogfood =
        f.dogfood_hosts() == 0 ? 20 : std::min(f.dogfood_hosts(), h.n);
    MarkRandom(h.traits, 0, h.n, static_cast<double>(dogfood) / h.n,
               kTraitDogfood, rng);
  }
  if (!h.crash_weight.empty()) {
    h.max_crash_weight =
        *std::max_element(h.crash_weight.begin(), h.crash_weight.end());
  }
  const auto& lags = b.telemetry().host_lags();
  if (!lags.empty()) {
    std::vector<double> cum;
    for (const auto& l : lags) {
      cum.push_back((cum.empty() ? 0 : cum.back()) + std::max(0.0, l.weight()));
    }
    h.lag_class.resize(h.n);
    std::uniform_real_distribution<double> u(0, cum.back());
    for (uint32_t i = 0; i < h.n; ++i) {
      const double x = u(rng);
      h.lag_class[i] = static_cast<uint8_t>(std::min<size_t>(
          std::upper_bound(cum.begin(), cum.end(), x) - cum.begin(),
          cum.size() - 1));
    }
  }
  // Targeting and tracks.
  std::vector<uint8_t> seg_ok(h.segments.size()), ver_ok(h.versions.size()),
      plat_ok(h.platforms.size()), reg_ok(h.regions.size()),
      ten_ok(h.tenants.size()), pinned(h.tenants.size());
  for (size_t i = 0; i < h.segments.size(); ++i) {
    seg_ok[i] = Contains(e.segments(), h.segments[i]);
  }
  for (size_t i = 0; i < h.versions.size(); ++i) {
    ver_ok[i] = Contains(e.agent_versions(), h.versions[i]);
  }
  for (size_t i = 0; i < h.platforms.size(); ++i) {
    plat_ok[i] = Contains(e.platforms(), h.platforms[i]);
  }
  for (size_t i = 0; i < h.regions.size(); ++i) {
    reg_ok[i] = Contains(e.regions(), h.regions[i]);
  }
  for (size_t i = 0; i < h.tenants.size(); ++i) {
    ten_ok[i] = Contains(e.tenants(), h.tenants[i]);
    pinned[i] = tracks.TrackOf(h.tenants[i]) == config::v1::TRACK_PINNED;
  }
  for (uint32_t i = 0; i < h.n; ++i) {
    if (seg_ok[h.segment[i]] && ver_ok[h.version[i]] &&
        plat_ok[h.platform[i]] && reg_ok[h.region[i]] && ten_ok[h.tenant[i]]) {
      h.traits[i] |= kTraitAffected;
    }
    if (pinned[h.tenant[i]]) h.traits[i] |= kTraitPinned;
  }
  return h;
}

}  // namespace ringfence::internal
