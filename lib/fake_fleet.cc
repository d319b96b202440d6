#include "ringfence/fake_fleet.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ringfence {

FakeFleet::FakeFleet(Controller* controller, FakeClock* clock,
                     FakeFleetOptions options)
    : controller_(controller),
      clock_(clock),
      options_(std::move(options)),
      rng_(options_.seed) {
  hosts_.resize(options_.hosts);
  std::uniform_real_distribution<double> phase(0, 1);
  for (int i = 0; i < options_.hosts; ++i) {
    Host& h = hosts_[i];
    h.info.host_id = absl::StrFormat("host-%06d", i);
    h.info.tenant = absl::StrCat("tenant-", i % std::max(1, options_.tenants));
    if (i < options_.dogfood_hosts) h.info.labels.push_back("ring:dogfood");
    h.info.agent_version = "7.11.0";
    h.info.platform = "windows";
    h.running = options_.initial_release;
    // Spread the first polls over one interval.
    h.next_poll = clock_->Now() + options_.poll_interval * phase(rng_);
  }
}

void FakeFleet::SetBehavior(const std::string& release_id,
                            ReleaseBehavior behavior) {
  behaviors_[release_id] = behavior;
}

absl::Status FakeFleet::Step(absl::Duration step) {
  clock_->Advance(step);
  const absl::Time now = clock_->Now();
  std::vector<TelemetryEvent> events;
  std::uniform_real_distribution<double> u(0, 1);
  const double interval_hours = absl::ToDoubleHours(options_.poll_interval);
  auto event = [&](const Host& h, EventType type, const std::string& release) {
    TelemetryEvent e;
    e.host_id = h.info.host_id;
    e.type = type;
    e.time = now;
    e.release_id = release;
    return e;
  };
  for (Host& h : hosts_) {
    if (h.dead || h.next_poll > now) continue;
    h.next_poll += options_.poll_interval;
    const Assignment a = controller_->Assign(h.info, options_.content_type);
    if (a.unload) h.running.clear();
    if (a.release != nullptr && a.release->id() != h.running) {
      const std::string& target = a.release->id();
      events.push_back(event(h, EventType::kApplying, target));
      const auto it = behaviors_.find(target);
      const ReleaseBehavior b =
          it == behaviors_.end() ? ReleaseBehavior{} : it->second;
      if (b.boot_loop) {
        h.dead = true;
        h.hurt = true;
        continue;
      }
      if (b.crash_on_apply > 0 && u(rng_) < b.crash_on_apply) {
        events.push_back(event(h, EventType::kCrash, target));
        TelemetryEvent boot = event(h, EventType::kBoot, "");
        boot.clean = false;
        boot.boot_id = rng_();
        events.push_back(boot);
        h.hurt = true;
      }
      h.running = target;
      events.push_back(event(h, EventType::kApplied, target));
    }
    events.push_back(event(h, EventType::kHeartbeat, h.running));
    const auto it = behaviors_.find(h.running);
    const double mult =
        it == behaviors_.end() ? 1.0 : it->second.crash_multiplier;
    const double p =
        1 - std::exp(-options_.crash_per_host_hour * mult * interval_hours);
    if (u(rng_) < p) {
      events.push_back(event(h, EventType::kCrash, h.running));
      TelemetryEvent boot = event(h, EventType::kBoot, "");
      boot.clean = false;
      boot.boot_id = rng_();
      events.push_back(boot);
      if (h.running != options_.initial_release) h.hurt = true;
    }
  }
  for (size_t i = 0; i < events.size(); i += 50000) {
    const size_t n = std::min<size_t>(50000, events.size() - i);
    absl::Status s =
        controller_->Ingest(absl::MakeConstSpan(events.data() + i, n));
    if (!s.ok()) return s;
  }
  // Halts of rollouts that are no longer active are not errors of the fleet.
  absl::Status s = controller_->Tick();
  if (!s.ok() && !absl::IsFailedPrecondition(s)) return s;
  return absl::OkStatus();
}

int FakeFleet::Running(const std::string& release_id) const {
  int n = 0;
  for (const Host& h : hosts_) n += (!h.dead && h.running == release_id);
  return n;
}

int FakeFleet::Dead() const {
  int n = 0;
  for (const Host& h : hosts_) n += h.dead;
  return n;
}

int FakeFleet::Hurt() const {
  int n = 0;
  for (const Host& h : hosts_) n += h.hurt;
  return n;
}

}  // namespace ringfence
