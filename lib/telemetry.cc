#include "ringfence/telemetry.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "host_table.h"
#include "ringfence/hash.h"

namespace ringfence {

using internal::HostState;
using internal::HostTable;

namespace {

constexpr int kPrefetchDistance = 16;

std::atomic<uint64_t>* NewCounters(size_t n) {
  auto* c = new std::atomic<uint64_t>[n];
  for (size_t i = 0; i < n; ++i) c[i].store(0, std::memory_order_relaxed);
  return c;
}

}  // namespace

absl::string_view EventTypeName(EventType type) {
  switch (type) {
    case EventType::kApplying:
      return "applying";
    case EventType::kApplied:
      return "applied";
    case EventType::kHeartbeat:
      return "heartbeat";
    case EventType::kCrash:
      return "crash";
    case EventType::kBoot:
      return "boot";
    case EventType::kSignal:
      return "signal";
  }
  return "unknown";
}

namespace {

template <typename Event>
absl::Status ValidateBatch(absl::Span<const Event> events, size_t max_events) {
  if (events.size() > max_events) {
    return absl::InvalidArgumentError(
        absl::StrCat("events: at most ", max_events, " events per batch (got ",
                     events.size(), ")"));
  }
  // Field names are only built for the event that fails.
  auto field = [](size_t i, absl::string_view name) {
    return absl::StrCat("events[", i, "].", name);
  };
  for (size_t i = 0; i < events.size(); ++i) {
    const TelemetryEventView e = ViewOf(events[i]);
    if (!IsValidId(e.host_id))
      return ValidateId(e.host_id, field(i, "host_id"));
    switch (e.type) {
      case EventType::kApplying:
      case EventType::kApplied:
        if (!IsValidId(e.release_id)) {
          return ValidateId(e.release_id, field(i, "release_id"));
        }
        break;
      case EventType::kHeartbeat:
        if (!e.release_id.empty() && !IsValidId(e.release_id)) {
          return ValidateId(e.release_id, field(i, "release_id"));
        }
        break;
      case EventType::kCrash:
      case EventType::kBoot:
        break;
      case EventType::kSignal:
        if (!IsValidSignalName(e.signal)) {
          // The name is not echoed: it may be anything up to 256 bytes.
          return absl::InvalidArgumentError(absl::StrCat(
              field(i, "signal"),
              ": a signal event's name must match [a-z0-9_]{1,64} (got ",
              e.signal.size(), " characters)"));
        }
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat(field(i, "type"), ": unknown event type ",
                         static_cast<int>(e.type)));
    }
    if (e.signal.size() > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat(field(i, "signal"), ": must be at most 256 characters"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTelemetryBatch(absl::Span<const TelemetryEvent> events,
                                    size_t max_events) {
  return ValidateBatch(events, max_events);
}

absl::Status ValidateTelemetryBatch(absl::Span<const TelemetryEventView> events,
                                    size_t max_events) {
  return ValidateBatch(events, max_events);
}

struct RolloutTracker::Aggregates {
  explicit Aggregates(int stages)
      : num_stages(stages),
        cohort_exposed(NewCounters(stages)),
        cohort_granted(NewCounters(stages)),
        cohort_applied(NewCounters(stages)),
        cohort_healthy(NewCounters(stages)),
        cohort_sum_exposed_at(NewCounters(stages)),
        cohort_affected(NewCounters(static_cast<size_t>(stages) * kMaxSignals)),
        cohort_pre_affected(
            NewCounters(static_cast<size_t>(stages) * kMaxSignals)),
        treatment_affected(NewCounters(kMaxSignals)),
        treatment_pre_affected(NewCounters(kMaxSignals)),
        control_affected_total(NewCounters(kMaxSignals)),
        control_affected_current(NewCounters(kMaxSignals)) {}

  const int num_stages;
  std::unique_ptr<std::atomic<uint64_t>[]> cohort_exposed;
  // Exposures granted by TryExpose (what pacing budgets count).
  std::unique_ptr<std::atomic<uint64_t>[]> cohort_granted;
  std::unique_ptr<std::atomic<uint64_t>[]> cohort_applied;
  std::unique_ptr<std::atomic<uint64_t>[]> cohort_healthy;
  std::unique_ptr<std::atomic<uint64_t>[]> cohort_sum_exposed_at;
  std::unique_ptr<std::atomic<uint64_t>[]> cohort_affected;  // stage*K + sig
  std::unique_ptr<std::atomic<uint64_t>[]> cohort_pre_affected;
  std::unique_ptr<std::atomic<uint64_t>[]> treatment_affected;
  // Exposed hosts that showed the signal in control (not at risk).
  std::unique_ptr<std::atomic<uint64_t>[]> treatment_pre_affected;
  std::unique_ptr<std::atomic<uint64_t>[]> control_affected_total;
  // Affected hosts still in control (a host leaving for treatment leaves it).
  std::unique_ptr<std::atomic<uint64_t>[]> control_affected_current;
  std::atomic<uint64_t> tracked{0};
  std::atomic<uint64_t> treatment_hosts{0};
  std::atomic<uint64_t> control_hosts{0};
  // Control host-time: open intervals are hosts * now - sum(first_seen);
  // closed ones (hosts that moved to treatment) accumulate here.
  std::atomic<uint64_t> control_sum_first_seen{0};
  std::atomic<uint64_t> control_closed_seconds{0};
};

RolloutTracker::RolloutTracker(const TrackerOptions& options,
                               const Clock* clock)
    : clock_(clock),
      epoch_((options.epoch == absl::InfinitePast() ? clock->Now()
                                                    : options.epoch) -
             absl::Seconds(1)),
      release_id_(options.release_id),
      control_by_check_in_(options.control_by_check_in),
      num_stages_(std::max(1, options.num_stages)),
      table_(std::make_unique<HostTable>()),
      agg_(std::make_unique<Aggregates>(std::max(1, options.num_stages))) {
  for (const std::string& s : options.signals) {
    if (signals_.size() < static_cast<size_t>(kMaxSignals) &&
        std::find(signals_.begin(), signals_.end(), s) == signals_.end()) {
      signals_.push_back(s);
    }
  }
  for (absl::string_view b : {kSignalCrash, kSignalUncleanReboot, kSignalSilent,
                              kSignalApplyStuck, kSignalLocalFallback}) {
    if (std::find(signals_.begin(), signals_.end(), b) == signals_.end()) {
      if (signals_.size() < static_cast<size_t>(kMaxSignals)) {
        signals_.emplace_back(b);
      }
    }
  }
  if (options.expected_hosts > 0) table_->Reserve(options.expected_hosts);
  dirty_ = std::make_unique<std::vector<uint64_t>[]>(HostTable::kShards);
  for (absl::string_view s : {kSignalCrash, kSignalUncleanReboot}) {
    const int i = SignalIndex(s);
    if (i >= 0) reboot_history_mask_ |= static_cast<uint8_t>(1u << i);
  }
  if (const int i = SignalIndex(kSignalSilent); i >= 0) {
    silent_mask_ = static_cast<uint8_t>(1u << i);
  }
  if (const int i = SignalIndex(kSignalApplyStuck); i >= 0) {
    apply_stuck_mask_ = static_cast<uint8_t>(1u << i);
  }
  absl::MutexLock lock(&test_mu_);
  tests_.resize(signals_.size());
  control_expected_.assign(static_cast<size_t>(num_stages_) * kMaxSignals, 0);
  control_expected_var_.assign(static_cast<size_t>(num_stages_) * kMaxSignals,
                               0);
}

RolloutTracker::~RolloutTracker() = default;

int RolloutTracker::SignalIndex(absl::string_view signal) const {
  for (size_t i = 0; i < signals_.size(); ++i) {
    if (signals_[i] == signal) return static_cast<int>(i);
  }
  return -1;
}

void RolloutTracker::SetRules(absl::Span<const SignalRule> rules,
                              double alpha) {
  int compared = 0;
  for (const SignalRule& r : rules) {
    if (r.compare_with_control() && SignalIndex(r.signal()) >= 0) ++compared;
  }
  absl::MutexLock lock(&test_mu_);
  std::vector<bool> keep(signals_.size(), false);
  for (const SignalRule& r : rules) {
    const int idx = SignalIndex(r.signal());
    if (idx < 0 || !r.compare_with_control()) continue;
    keep[idx] = true;
    MixtureTestOptions o;
    o.margin = r.margin();
    o.alpha = alpha / compared;
    const auto& cur = tests_[idx];
    if (cur != nullptr && cur->options().margin == o.margin &&
        cur->options().alpha == o.alpha) {
      continue;
    }
    // A changed margin or budget restarts the test: evidence gathered under
    // another null hypothesis is not evidence under this one.
    tests_[idx] = std::make_unique<ConditionalMixtureTest>(o);
  }
  for (size_t i = 0; i < keep.size(); ++i) {
    if (!keep[i]) tests_[i].reset();
  }
}

void RolloutTracker::SetSilenceTimeout(absl::Duration d) {
  silence_timeout_s_.store(std::max<int64_t>(0, absl::ToInt64Seconds(d)),
                           std::memory_order_relaxed);
}

void RolloutTracker::SetMaxTelemetryLag(absl::Duration d) {
  max_telemetry_lag_s_.store(static_cast<uint32_t>(std::clamp<int64_t>(
                                 absl::ToInt64Seconds(d), 0, UINT32_MAX)),
                             std::memory_order_relaxed);
}

void RolloutTracker::SetBootLoopAttempts(uint32_t attempts) {
  boot_loop_attempts_.store(attempts, std::memory_order_relaxed);
}

void RolloutTracker::SetHealthyAfter(absl::Duration d) {
  healthy_after_s_.store(
      static_cast<uint32_t>(std::max<int64_t>(0, absl::ToInt64Seconds(d))),
      std::memory_order_relaxed);
}

void RolloutTracker::SetMaxStaleness(absl::Duration d) {
  max_staleness_ns_.store(absl::ToInt64Nanoseconds(d),
                          std::memory_order_relaxed);
}

void RolloutTracker::SetCurrentStage(int stage) {
  current_stage_.store(std::clamp(stage, 0, num_stages_ - 1),
                       std::memory_order_relaxed);
}

uint32_t RolloutTracker::ToSeconds(absl::Time t) const {
  const int64_t s = absl::ToInt64Seconds(t - epoch_);
  return static_cast<uint32_t>(std::clamp<int64_t>(s, 1, UINT32_MAX));
}

bool RolloutTracker::Counted(const HostState& h) {
  return h.last_seen != 0 || h.exposed_at != 0;
}

void RolloutTracker::OnInsert(HostState* h, uint32_t now_s) {
  h->last_seen = now_s;
  // After a restart, the first hosts heard from take the places the
  // checkpoint kept for the control hosts not yet heard from again.
  uint64_t p = phantom_control_.load(std::memory_order_relaxed);
  while (p > 0 && !phantom_control_.compare_exchange_weak(
                      p, p - 1, std::memory_order_relaxed)) {
  }
  if (p > 0) {
    h->first_seen = restore_s_;
    return;
  }
  h->first_seen = now_s;
  agg_->tracked.fetch_add(1, std::memory_order_relaxed);
  agg_->control_hosts.fetch_add(1, std::memory_order_relaxed);
  agg_->control_sum_first_seen.fetch_add(now_s, std::memory_order_relaxed);
}

void RolloutTracker::MarkDirty(uint64_t key, HostState* h) {
  if (h->flags & internal::kDirty) return;
  h->flags |= internal::kDirty;
  dirty_[HostTable::ShardOf(key)].push_back(key);
}

void RolloutTracker::Expose(uint64_t key, HostState* h, int stage,
                            uint32_t now_s, bool granted) {
  if (h->exposed_at != 0) return;
  Aggregates& a = *agg_;
  // The control history stays with the host. A host that went dark while in
  // control is not at risk of `apply_stuck` either: a dark host never comes
  // up on anything, whatever it was told.
  const uint8_t history =
      h->affected | ((h->affected & silent_mask_) ? apply_stuck_mask_ : 0);
  {
    // The at-risk counts the sequential tests and the control hazard read
    // change here; keep them consistent with the affected counters by
    // updating under test_mu_.
    absl::MutexLock lock(&test_mu_);
    a.control_hosts.fetch_sub(1, std::memory_order_relaxed);
    a.control_sum_first_seen.fetch_sub(h->first_seen,
                                       std::memory_order_relaxed);
    a.control_closed_seconds.fetch_add(now_s - std::min(now_s, h->first_seen),
                                       std::memory_order_relaxed);
    for (size_t s = 0; s < signals_.size(); ++s) {
      if (h->affected & (1u << s)) {
        a.control_affected_current[s].fetch_sub(1, std::memory_order_relaxed);
      }
      if (history & (1u << s)) {
        a.treatment_pre_affected[s].fetch_add(1, std::memory_order_relaxed);
        a.cohort_pre_affected[stage * kMaxSignals + s].fetch_add(
            1, std::memory_order_relaxed);
      }
    }
    a.treatment_hosts.fetch_add(1, std::memory_order_relaxed);
    a.cohort_exposed[stage].fetch_add(1, std::memory_order_relaxed);
    a.cohort_sum_exposed_at[stage].fetch_add(now_s, std::memory_order_relaxed);
  }
  h->pre_affected = history;
  h->affected = 0;
  h->flags = static_cast<uint8_t>((h->flags & internal::kDirty) |
                                  (granted ? internal::kGranted : 0));
  h->exposed_at = now_s;
  h->last_seen = now_s;
  h->first_seen = 0;  // from now on: when it began loading (host clock)
  h->stage = static_cast<uint8_t>(stage);
  if (h->pre_affected != 0) MarkDirty(key, h);
}

void RolloutTracker::MarkAffected(int signal, uint64_t key, HostState* h) {
  const uint8_t bit = static_cast<uint8_t>(1u << signal);
  if ((h->affected | h->pre_affected) & bit) return;
  h->affected |= bit;
  MarkDirty(key, h);
  Aggregates& a = *agg_;
  const bool treatment = h->exposed_at != 0;
  absl::MutexLock lock(&test_mu_);
  auto load = [](const std::atomic<uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  const uint64_t t_hosts = load(a.treatment_hosts);
  const uint64_t t_out = load(a.treatment_affected[signal]) +
                         load(a.treatment_pre_affected[signal]);
  const uint64_t c_hosts = load(a.control_hosts);
  const uint64_t c_out = load(a.control_affected_current[signal]);
  const double n_t = static_cast<double>(t_hosts - std::min(t_hosts, t_out));
  const double n_c = static_cast<double>(c_hosts - std::min(c_hosts, c_out));
  if (treatment) {
    a.treatment_affected[signal].fetch_add(1, std::memory_order_relaxed);
    a.cohort_affected[h->stage * kMaxSignals + signal].fetch_add(
        1, std::memory_order_relaxed);
  } else {
    a.control_affected_total[signal].fetch_add(1, std::memory_order_relaxed);
    a.control_affected_current[signal].fetch_add(1, std::memory_order_relaxed);
    if (n_c > 0) {
      // Nelson-Aalen: this control event's hazard, applied to every
      // cohort's hosts at risk now.
      for (int st = 0; st < num_stages_; ++st) {
        const size_t i = static_cast<size_t>(st) * kMaxSignals + signal;
        const uint64_t exposed = load(a.cohort_exposed[st]);
        const uint64_t out =
            load(a.cohort_affected[i]) + load(a.cohort_pre_affected[i]);
        if (exposed <= out) continue;
        const double r = static_cast<double>(exposed - out);
        control_expected_[i] += r / n_c;
        control_expected_var_[i] += r * r / (n_c * n_c);
      }
    }
  }
  // Settled at the end of the batch or sweep (SettleTests): the order of
  // the hosts of one instant is arbitrary.
  if (tests_[signal] != nullptr) {
    tests_[signal]->ObserveDeferred(treatment, n_t, n_c);
  }
}

void RolloutTracker::SettleTests() {
  absl::MutexLock lock(&test_mu_);
  for (const auto& t : tests_) {
    if (t != nullptr) t->Settle();
  }
}

void RolloutTracker::MarkApplied(uint64_t key, HostState* h) {
  if (h->flags & internal::kApplied) return;
  h->flags |= internal::kApplied;
  agg_->cohort_applied[h->stage].fetch_add(1, std::memory_order_relaxed);
  MarkDirty(key, h);
}

void RolloutTracker::MarkUp(uint64_t key, HostState* h) {
  if (h->flags & internal::kUp) return;
  h->flags |= internal::kUp;
  // A restart must know the host came up: its later check-ins are no
  // attempts, and its heartbeats without a release id are signs of life.
  MarkDirty(key, h);
}

void RolloutTracker::AddAttempt(uint64_t key, HostState* h) {
  const uint32_t n =
      (h->flags & internal::kAttemptsMask) >> internal::kAttemptsShift;
  RaiseAttempts(key, h, n + 1);
}

void RolloutTracker::RaiseAttempts(uint64_t key, HostState* h,
                                   uint32_t attempts) {
  if (h->exposed_at == 0 || (h->flags & internal::kUp)) return;
  // A host that was crashing or rebooting before its exposure (a chronic
  // crasher) boots and checks in whatever it runs: no evidence of a loop.
  if (h->pre_affected & reboot_history_mask_) return;
  const uint32_t n =
      (h->flags & internal::kAttemptsMask) >> internal::kAttemptsShift;
  attempts = std::min<uint32_t>(attempts, 7);
  if (attempts <= n) return;
  h->flags = static_cast<uint8_t>((h->flags & ~internal::kAttemptsMask) |
                                  (attempts << internal::kAttemptsShift));
  MarkDirty(key, h);
  const uint32_t limit = boot_loop_attempts_.load(std::memory_order_relaxed);
  if (limit > 0 && attempts >= limit) {
    const int idx = SignalIndex(kSignalApplyStuck);
    if (idx >= 0) MarkAffected(idx, key, h);
  }
}

void RolloutTracker::MaybeHealthy(HostState* h) {
  if (h->exposed_at == 0 || (h->flags & internal::kHealthy) ||
      !(h->flags & internal::kUp) || h->affected != 0) {
    return;
  }
  if (h->last_seen - std::min(h->last_seen, h->exposed_at) <
      healthy_after_s_.load(std::memory_order_relaxed)) {
    return;
  }
  h->flags |= internal::kHealthy;
  agg_->cohort_healthy[h->stage].fetch_add(1, std::memory_order_relaxed);
}

void RolloutTracker::CountUnwatched(absl::string_view signal) {
  constexpr size_t kMaxNames = 32;
  absl::MutexLock lock(&unwatched_mu_);
  for (auto& [name, n] : unwatched_) {
    if (name == signal) {
      ++n;
      return;
    }
  }
  if (unwatched_.size() < kMaxNames) {
    unwatched_.emplace_back(std::string(signal), 1);
    return;
  }
  for (auto& [name, n] : unwatched_) {
    if (name == "(other)") {
      ++n;
      return;
    }
  }
  unwatched_.back() = {"(other)", unwatched_.back().second + 1};
}

void RolloutTracker::ApplyEvent(const TelemetryEventView& e, uint64_t key,
                                uint32_t now_s, HostState* h) {
  if (!Counted(*h)) {
    OnInsert(h, now_s);
    // Heard from: its record (admitted only, or none) must say so.
    if (control_by_check_in_) MarkDirty(key, h);
  }
  const bool release = e.release_id == release_id_;
  auto expose_here = [&] {
    if (h->exposed_at == 0) {
      Expose(key, h, current_stage_.load(std::memory_order_relaxed), now_s,
             /*granted=*/false);
    }
  };
  // A control host is alive whatever it sends; an exposed one only when it
  // shows that it runs the release.
  bool life = h->exposed_at == 0;
  if (h->exposed_at != 0 && !(h->flags & internal::kUp) &&
      e.type == EventType::kHeartbeat && !release && !e.release_id.empty() &&
      (h->first_seen == 0 || ToSeconds(e.time) < h->first_seen) &&
      now_s - std::min(now_s, h->exposed_at) <=
          max_telemetry_lag_s_.load(std::memory_order_relaxed)) {
    // Pre-load telemetry: the host still running the previous release, sent
    // before it began loading this one, arriving now. The host's telemetry
    // is behind its exposure, so nothing it did since could have arrived
    // yet: its silence and apply clocks start again now, and its check-ins
    // and boots so far are no evidence of a loop.
    h->last_seen = std::max(h->last_seen, now_s);
    if (h->flags & internal::kAttemptsMask) {
      h->flags &= static_cast<uint8_t>(~internal::kAttemptsMask);
      MarkDirty(key, h);
    }
  }
  switch (e.type) {
    case EventType::kApplying:
      // Not an attempt: an agent reports it once per load, and a host whose
      // telemetry lags would look like it was looping.
      if (release) expose_here();
      break;
    case EventType::kApplied:
      if (!release) break;
      expose_here();
      MarkApplied(key, h);
      life = true;
      break;
    case EventType::kHeartbeat:
      if (release) {
        expose_here();
        MarkApplied(key, h);
        MarkUp(key, h);
        life = true;
      } else if (e.release_id.empty() && (h->flags & internal::kApplied)) {
        MarkUp(key, h);
        life = true;
      }
      break;
    case EventType::kCrash: {
      const int idx = SignalIndex(kSignalCrash);
      if (idx >= 0) MarkAffected(idx, key, h);
      break;
    }
    case EventType::kBoot:
      if (!e.clean) {
        const int idx = SignalIndex(kSignalUncleanReboot);
        if (idx >= 0) MarkAffected(idx, key, h);
      }
      // The host's own count is idempotent (a replayed boot counts once);
      // without one, each boot event received is one attempt.
      if (e.boots_since_apply > 0) {
        RaiseAttempts(key, h, e.boots_since_apply);
      } else {
        AddAttempt(key, h);
      }
      break;
    case EventType::kSignal: {
      const int idx = SignalIndex(e.signal);
      if (idx >= 0) {
        MarkAffected(idx, key, h);
      } else {
        CountUnwatched(e.signal);
      }
      break;
    }
  }
  if (release && h->exposed_at != 0 && h->first_seen == 0 &&
      (e.type == EventType::kApplying || e.type == EventType::kApplied ||
       e.type == EventType::kHeartbeat)) {
    // When it began loading the release, in its own clock: part of its
    // evidence (which of its telemetry is pre-load), so recorded.
    h->first_seen = ToSeconds(e.time);
    MarkDirty(key, h);
  }
  if (life && now_s > h->last_seen) h->last_seen = now_s;
  MaybeHealthy(h);
}

void RolloutTracker::Ingest(absl::Span<const TelemetryEvent> events,
                            std::vector<Exposure>* newly_exposed) {
  std::vector<uint64_t> keys(events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    keys[i] = HostKey(events[i].host_id);
  }
  IngestImpl(events, keys.data(), newly_exposed);
}

void RolloutTracker::IngestKeyed(absl::Span<const TelemetryEvent> events,
                                 absl::Span<const uint64_t> host_keys) {
  IngestImpl(events, host_keys.data(), nullptr);
}

void RolloutTracker::IngestKeyed(absl::Span<const TelemetryEventView> events,
                                 absl::Span<const uint64_t> host_keys,
                                 std::vector<Exposure>* newly_exposed) {
  IngestImpl(events, host_keys.data(), newly_exposed);
}

template <typename Event>
void RolloutTracker::IngestImpl(absl::Span<const Event> events,
                                const uint64_t* keys,
                                std::vector<Exposure>* newly_exposed) {
  const absl::Time now = clock_->Now();
  const uint32_t now_s = ToSeconds(now);
  const int64_t now_ns = absl::ToUnixNanos(now);
  const int64_t prev_ns = last_ingest_ns_.exchange(now_ns);
  if (prev_ns == 0 ||
      now_ns - prev_ns > max_staleness_ns_.load(std::memory_order_relaxed)) {
    silence_floor_s_.store(now_s, std::memory_order_relaxed);
  }
  const size_t n = events.size();
  if (n == 0) return;
  // Counting sort of event indices by shard, so each shard is locked once
  // per batch and events of one host keep their order.
  uint32_t start[HostTable::kShards + 1] = {};
  for (size_t i = 0; i < n; ++i) ++start[HostTable::ShardOf(keys[i]) + 1];
  for (int s = 0; s < HostTable::kShards; ++s) start[s + 1] += start[s];
  // On the stack for batches of up to 1024 events: no allocation.
  absl::InlinedVector<uint32_t, 1024> order(n);
  {
    uint32_t fill[HostTable::kShards];
    std::copy(start, start + HostTable::kShards, fill);
    for (size_t i = 0; i < n; ++i) {
      order[fill[HostTable::ShardOf(keys[i])]++] = static_cast<uint32_t>(i);
    }
  }
  for (int s = 0; s < HostTable::kShards; ++s) {
    const uint32_t b = start[s], e = start[s + 1];
    if (b == e) continue;
    absl::MutexLock lock(&table_->ShardMutex(s));
    for (uint32_t j = b; j < std::min(e, b + kPrefetchDistance); ++j) {
      table_->Prefetch(keys[order[j]]);
    }
    for (uint32_t j = b; j < e; ++j) {
      if (j + kPrefetchDistance < e) {
        table_->Prefetch(keys[order[j + kPrefetchDistance]]);
      }
      const uint32_t i = order[j];
      const TelemetryEventView e = ViewOf(events[i]);
      HostState* h;
      if (control_by_check_in_) {
        // Only admitted hosts, and hosts that report running the release
        // (the events that expose them), are tracked.
        h = table_->Find(keys[i]);
        if (h == nullptr) {
          const bool exposes =
              e.release_id == release_id_ && (e.type == EventType::kApplying ||
                                              e.type == EventType::kApplied ||
                                              e.type == EventType::kHeartbeat);
          if (!exposes) {
            outside_population_events_.fetch_add(1, std::memory_order_relaxed);
            // A name no rule watches is the vendor's vocabulary, not
            // evidence about an arm: listed whoever sent it.
            if (e.type == EventType::kSignal && SignalIndex(e.signal) < 0) {
              CountUnwatched(e.signal);
            }
            continue;
          }
          bool inserted = false;
          h = table_->FindOrInsert(keys[i], &inserted);
        }
      } else {
        bool inserted = false;
        h = table_->FindOrInsert(keys[i], &inserted);
      }
      const bool was_exposed = h->exposed_at != 0;
      ApplyEvent(e, keys[i], now_s, h);
      if (newly_exposed != nullptr && !was_exposed && h->exposed_at != 0) {
        newly_exposed->push_back({std::string(events[i].host_id), h->stage,
                                  epoch_ + absl::Seconds(now_s),
                                  /*granted=*/false});
      }
    }
  }
  // The batch arrived at one instant: the sequential tests are checked
  // once, after all of it (ObserveDeferred).
  SettleTests();
}

RolloutTracker::Grant RolloutTracker::TryReserve(uint64_t host_key, int stage,
                                                 uint64_t stage_budget,
                                                 bool telemetry_behind) {
  stage = std::clamp(stage, 0, num_stages_ - 1);
  absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(host_key)));
  HostState* h = table_->Find(host_key);
  if (h != nullptr && h->exposed_at != 0) {
    if (telemetry_behind) return Grant::kAlreadyExposed;
    // Checking in again without coming up on the release: one attempt.
    const uint8_t before = h->affected;
    AddAttempt(host_key, h);
    if (h->affected != before) SettleTests();
    return Grant::kAlreadyExposed;
  }
  if (h != nullptr) {
    // Known, in control, and dark for longer than the silence timeout (the
    // sweep's test for `silent`): not watched, so not told the release.
    const int64_t now_s = ToSeconds(clock_->Now());
    const uint32_t floor_s = silence_floor_s_.load(std::memory_order_relaxed);
    if (h->last_seen != 0 &&
        now_s - std::max(h->last_seen, floor_s) >
            silence_timeout_s_.load(std::memory_order_relaxed)) {
      return Grant::kNotWatched;
    }
  }
  if (stage_budget == kUnpaced) return Grant::kReserved;
  std::atomic<uint64_t>& granted = agg_->cohort_granted[stage];
  uint64_t cur = granted.load(std::memory_order_relaxed);
  do {
    if (cur >= stage_budget) {
      if (h == nullptr && control_by_check_in_) {
        bool inserted = false;
        MarkDirty(host_key, table_->FindOrInsert(host_key, &inserted));
      }
      return Grant::kNoBudget;
    }
  } while (
      !granted.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
  return Grant::kReserved;
}

void RolloutTracker::CommitReserved(uint64_t host_key, int stage, bool paced) {
  stage = std::clamp(stage, 0, num_stages_ - 1);
  const uint32_t now_s = ToSeconds(clock_->Now());
  absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(host_key)));
  bool inserted = false;
  HostState* h = table_->FindOrInsert(host_key, &inserted);
  if (!Counted(*h)) OnInsert(h, now_s);
  Expose(host_key, h, stage, now_s, paced);
}

void RolloutTracker::CancelReserved(int stage) {
  stage = std::clamp(stage, 0, num_stages_ - 1);
  agg_->cohort_granted[stage].fetch_sub(1, std::memory_order_relaxed);
}

bool RolloutTracker::IsExposed(uint64_t host_key) const {
  absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(host_key)));
  const HostState* h = table_->Find(host_key);
  return h != nullptr && h->exposed_at != 0;
}

bool RolloutTracker::Admit(uint64_t host_key) {
  absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(host_key)));
  if (!control_by_check_in_) {
    const HostState* h = table_->Find(host_key);
    return h != nullptr && h->exposed_at != 0;
  }
  bool inserted = false;
  HostState* h = table_->FindOrInsert(host_key, &inserted);
  // Admission is evidence: recorded at the next checkpoint.
  if (inserted) MarkDirty(host_key, h);
  return h->exposed_at != 0;
}

uint64_t RolloutTracker::Sweep(absl::Duration silence_timeout,
                               absl::Duration apply_timeout) {
  const uint32_t now_s = ToSeconds(clock_->Now());
  const int64_t silence_s = absl::ToInt64Seconds(silence_timeout);
  const int64_t apply_s = absl::ToInt64Seconds(apply_timeout);
  const int silent = SignalIndex(kSignalSilent);
  const int stuck = SignalIndex(kSignalApplyStuck);
  const uint32_t floor_s = silence_floor_s_.load(std::memory_order_relaxed);
  uint64_t newly = 0;
  for (int s = 0; s < HostTable::kShards; ++s) {
    absl::MutexLock lock(&table_->ShardMutex(s));
    table_->ForEach(s, [&](uint64_t key, HostState* h) {
      const uint8_t before = h->affected;
      if (silent >= 0 && h->last_seen != 0 &&
          static_cast<int64_t>(now_s) - std::max(h->last_seen, floor_s) >
              silence_s) {
        MarkAffected(silent, key, h);
      }
      // The apply clock runs from the exposure, or from the latest pre-load
      // telemetry or `applied` (last_seen of a host not up yet).
      if (stuck >= 0 && h->exposed_at != 0 && !(h->flags & internal::kUp) &&
          static_cast<int64_t>(now_s) -
                  std::max({h->exposed_at, h->last_seen, floor_s}) >
              apply_s) {
        MarkAffected(stuck, key, h);
      }
      if (h->affected != before) ++newly;
    });
  }
  if (newly > 0) SettleTests();
  return newly;
}

TrackerSnapshot RolloutTracker::Snapshot() const {
  TrackerSnapshot out;
  const absl::Time now = clock_->Now();
  const double now_s = static_cast<double>(ToSeconds(now));
  out.now = now;
  out.created = epoch_ + absl::Seconds(1);
  const int64_t li = last_ingest_ns_.load(std::memory_order_relaxed);
  out.last_ingest = li == 0 ? absl::InfinitePast() : absl::FromUnixNanos(li);
  const uint32_t floor_s = silence_floor_s_.load(std::memory_order_relaxed);
  out.fresh_since =
      floor_s == 0 ? absl::InfiniteFuture() : epoch_ + absl::Seconds(floor_s);
  const Aggregates& a = *agg_;
  out.tracked_hosts = a.tracked.load(std::memory_order_relaxed);
  out.outside_population_events =
      outside_population_events_.load(std::memory_order_relaxed);
  out.treatment_hosts = a.treatment_hosts.load(std::memory_order_relaxed);
  out.control_hosts = a.control_hosts.load(std::memory_order_relaxed);
  out.control_host_hours =
      std::max(0.0, static_cast<double>(out.control_hosts) * now_s -
                        static_cast<double>(a.control_sum_first_seen.load(
                            std::memory_order_relaxed)) +
                        static_cast<double>(a.control_closed_seconds.load(
                            std::memory_order_relaxed))) /
      3600.0;
  out.signals = signals_;
  out.cohorts.resize(num_stages_);
  for (int st = 0; st < num_stages_; ++st) {
    CohortCounts& c = out.cohorts[st];
    c.exposed = a.cohort_exposed[st].load(std::memory_order_relaxed);
    c.applied = a.cohort_applied[st].load(std::memory_order_relaxed);
    c.healthy = a.cohort_healthy[st].load(std::memory_order_relaxed);
    c.host_hours =
        std::max(0.0, static_cast<double>(c.exposed) * now_s -
                          static_cast<double>(a.cohort_sum_exposed_at[st].load(
                              std::memory_order_relaxed))) /
        3600.0;
    out.treatment_host_hours += c.host_hours;
  }
  auto load = [](const std::atomic<uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  {
    absl::MutexLock lock(&unwatched_mu_);
    out.unwatched_signals = unwatched_;
  }
  absl::MutexLock lock(&test_mu_);
  for (int st = 0; st < num_stages_; ++st) {
    CohortCounts& c = out.cohorts[st];
    for (size_t sig = 0; sig < signals_.size(); ++sig) {
      const size_t i = static_cast<size_t>(st) * kMaxSignals + sig;
      c.affected[sig] = load(a.cohort_affected[i]);
      if (!restored_affected_.empty()) c.affected[sig] += restored_affected_[i];
      c.pre_affected[sig] = load(a.cohort_pre_affected[i]);
      c.control_expected[sig] = control_expected_[i];
      c.control_expected_var[sig] = control_expected_var_[i];
    }
  }
  for (size_t sig = 0; sig < signals_.size(); ++sig) {
    SignalCounts sc;
    sc.signal = signals_[sig];
    sc.treatment_affected = load(a.treatment_affected[sig]);
    sc.treatment_pre_affected = load(a.treatment_pre_affected[sig]);
    sc.control_affected = load(a.control_affected_total[sig]);
    sc.control_affected_current = load(a.control_affected_current[sig]);
    const uint64_t t_out = sc.treatment_affected + sc.treatment_pre_affected;
    sc.treatment_at_risk =
        out.treatment_hosts - std::min(out.treatment_hosts, t_out);
    const uint64_t c_hosts = load(a.control_hosts);
    sc.control_at_risk =
        c_hosts - std::min(c_hosts, sc.control_affected_current);
    if (tests_[sig] != nullptr) {
      sc.compared = true;
      sc.e_value = tests_[sig]->e_value();
      sc.e_threshold = tests_[sig]->threshold();
      sc.rejected = tests_[sig]->rejected();
    }
    out.signal_counts.push_back(sc);
  }
  return out;
}

config::v1::TrackerCheckpoint RolloutTracker::Checkpoint(
    std::vector<HostEvidence>* evidence) {
  config::v1::TrackerCheckpoint cp;
  *cp.mutable_at() = ToProtoTime(clock_->Now());
  cp.set_format(2);
  for (const std::string& s : signals_) cp.add_signals(s);
  {
    const Aggregates& a = *agg_;
    const int64_t now_s = ToSeconds(clock_->Now());
    const int64_t hosts = a.control_hosts.load(std::memory_order_relaxed);
    const int64_t open =
        hosts * now_s - static_cast<int64_t>(a.control_sum_first_seen.load(
                            std::memory_order_relaxed));
    cp.set_control_hosts(static_cast<uint64_t>(hosts));
    cp.set_control_host_seconds(
        a.control_closed_seconds.load(std::memory_order_relaxed) +
        static_cast<uint64_t>(std::max<int64_t>(0, open)));
  }
  // Host records first, so that every record is at least as new as the
  // aggregates written with it.
  for (int sh = 0; sh < HostTable::kShards; ++sh) {
    absl::MutexLock lock(&table_->ShardMutex(sh));
    std::vector<uint64_t> keys;
    keys.swap(dirty_[sh]);
    for (uint64_t key : keys) {
      HostState* h = table_->Find(key);
      if (h == nullptr) continue;
      h->flags &= static_cast<uint8_t>(~internal::kDirty);
      HostEvidence e;
      e.host_key = key;
      e.exposed = h->exposed_at != 0;
      e.stage = h->stage;
      e.exposed_at =
          e.exposed ? epoch_ + absl::Seconds(h->exposed_at) : absl::UnixEpoch();
      e.flags = h->flags & (internal::kApplied | internal::kUp |
                            internal::kGranted | internal::kAttemptsMask);
      if (!Counted(*h)) e.flags |= kHostEvidenceAdmittedOnly;
      if (e.exposed && h->first_seen != 0) {
        e.loading_since = epoch_ + absl::Seconds(h->first_seen);
      }
      e.affected = h->affected;
      e.pre_affected = h->pre_affected;
      evidence->push_back(e);
    }
  }
  {
    absl::MutexLock lock(&unwatched_mu_);
    for (const auto& [name, n] : unwatched_) {
      auto* u = cp.add_unwatched();
      u->set_signal(name);
      u->set_events(n);
    }
  }
  absl::MutexLock lock(&test_mu_);
  for (size_t sig = 0; sig < signals_.size(); ++sig) {
    const auto& t = tests_[sig];
    if (t == nullptr) continue;
    auto* out = cp.add_tests();
    out->set_signal(signals_[sig]);
    out->set_margin(t->options().margin);
    out->set_alpha(t->options().alpha);
    for (double v : t->log_likelihood_ratios()) out->add_log_lr(v);
    out->set_rejected(t->rejected());
    out->set_treatment_events(t->treatment_events());
    out->set_control_events(t->control_events());
  }
  for (int st = 0; st < num_stages_; ++st) {
    auto* c = cp.add_cohorts();
    c->set_stage(static_cast<uint32_t>(st));
    for (size_t sig = 0; sig < signals_.size(); ++sig) {
      const size_t i = static_cast<size_t>(st) * kMaxSignals + sig;
      c->add_control_expected(control_expected_[i]);
      c->add_control_expected_var(control_expected_var_[i]);
    }
  }
  return cp;
}

void RolloutTracker::RequeueEvidence(absl::Span<const HostEvidence> evidence) {
  for (const HostEvidence& e : evidence) {
    absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(e.host_key)));
    HostState* h = table_->Find(e.host_key);
    if (h != nullptr) MarkDirty(e.host_key, h);
  }
}

void RolloutTracker::RestoreHost(uint64_t key, bool exposed, int stage,
                                 uint32_t exposed_s, uint32_t loading_s,
                                 uint32_t flags, uint8_t affected,
                                 uint8_t pre_affected, uint32_t now_s) {
  stage = std::clamp(stage, 0, num_stages_ - 1);
  Aggregates& a = *agg_;
  absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(key)));
  bool inserted = false;
  HostState* h = table_->FindOrInsert(key, &inserted);
  if (!inserted) return;  // restored once
  OnInsert(h, now_s);
  // Replays the host's history as it happened: control signals first, then
  // the exposure, then the signals it showed on the release.
  // (apply_stuck in a history is derived from silence: never control.)
  const uint8_t control =
      exposed ? static_cast<uint8_t>(pre_affected & ~apply_stuck_mask_)
              : affected;
  h->affected = control;
  for (size_t s = 0; s < signals_.size(); ++s) {
    if (control & (1u << s)) {
      a.control_affected_total[s].fetch_add(1, std::memory_order_relaxed);
      a.control_affected_current[s].fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (!exposed) return;
  const bool granted = (flags & internal::kGranted) != 0;
  Expose(key, h, stage, std::min(exposed_s, now_s), granted);
  if (granted) {
    a.cohort_granted[stage].fetch_add(1, std::memory_order_relaxed);
  }
  h->last_seen = now_s;
  h->first_seen = loading_s;
  if (flags & internal::kApplied) MarkApplied(key, h);
  h->flags |=
      static_cast<uint8_t>(flags & (internal::kUp | internal::kAttemptsMask));
  h->affected = static_cast<uint8_t>(affected & ~h->pre_affected);
  for (size_t s = 0; s < signals_.size(); ++s) {
    if (h->affected & (1u << s)) {
      a.treatment_affected[s].fetch_add(1, std::memory_order_relaxed);
      a.cohort_affected[stage * kMaxSignals + s].fetch_add(
          1, std::memory_order_relaxed);
    }
  }
}

void RolloutTracker::Restore(const config::v1::TrackerCheckpoint* cp,
                             absl::Span<const HostEvidence> evidence,
                             absl::Span<const Exposure> exposures) {
  const uint32_t now_s = ToSeconds(clock_->Now());
  // Bit i of a record is cp->signals(i); map it to this tracker's index.
  std::vector<int> remap;
  if (cp != nullptr) {
    for (const std::string& name : cp->signals()) {
      remap.push_back(SignalIndex(name));
    }
  } else {
    for (size_t i = 0; i < signals_.size(); ++i) {
      remap.push_back(static_cast<int>(i));
    }
  }
  auto mask = [&](uint32_t bits) {
    uint8_t out = 0;
    for (size_t i = 0; i < remap.size() && i < 32; ++i) {
      if ((bits & (1u << i)) && remap[i] >= 0) out |= 1u << remap[i];
    }
    return out;
  };
  absl::flat_hash_map<uint64_t, const Exposure*> exposed_by_key;
  for (const Exposure& e : exposures) {
    exposed_by_key.emplace(HostKey(e.host_id), &e);
  }
  for (const HostEvidence& r : evidence) {
    auto it = exposed_by_key.find(r.host_key);
    if (r.exposed) {
      const uint32_t loading_s = r.loading_since == absl::InfinitePast()
                                     ? 0
                                     : ToSeconds(r.loading_since);
      RestoreHost(r.host_key, true, static_cast<int>(r.stage),
                  ToSeconds(r.exposed_at), loading_s, r.flags, mask(r.affected),
                  mask(r.pre_affected), now_s);
    } else if (it != exposed_by_key.end()) {
      // In control at the checkpoint, exposed since: its control signals
      // are its history.
      const Exposure& e = *it->second;
      RestoreHost(r.host_key, true, static_cast<int>(e.stage), ToSeconds(e.at),
                  0, e.granted ? internal::kGranted : 0, 0, mask(r.affected),
                  now_s);
    } else if (r.flags & kHostEvidenceAdmittedOnly) {
      // Checked in, never heard from: admitted, in no arm yet.
      absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(r.host_key)));
      bool inserted = false;
      table_->FindOrInsert(r.host_key, &inserted);
    } else {
      RestoreHost(r.host_key, false, 0, 0, 0, 0, mask(r.affected), 0, now_s);
    }
  }
  for (const auto& [key, e] : exposed_by_key) {
    RestoreHost(key, true, static_cast<int>(e->stage), ToSeconds(e->at), 0,
                e->granted ? internal::kGranted : 0, 0, 0, now_s);
  }
  if (cp == nullptr) return;
  {
    // Control hosts of the checkpoint that have no record keep counting
    // from now on, until they are heard from (OnInsert).
    Aggregates& a = *agg_;
    const uint64_t restored = a.control_hosts.load(std::memory_order_relaxed);
    const uint64_t phantom =
        cp->control_hosts() > restored ? cp->control_hosts() - restored : 0;
    restore_s_ = now_s;
    a.control_hosts.fetch_add(phantom, std::memory_order_relaxed);
    a.tracked.fetch_add(phantom, std::memory_order_relaxed);
    a.control_sum_first_seen.fetch_add(phantom * now_s,
                                       std::memory_order_relaxed);
    a.control_closed_seconds.fetch_add(cp->control_host_seconds(),
                                       std::memory_order_relaxed);
    phantom_control_.store(phantom, std::memory_order_relaxed);
  }
  {
    absl::MutexLock lock(&unwatched_mu_);
    for (const auto& u : cp->unwatched()) {
      unwatched_.emplace_back(u.signal(), u.events());
    }
  }
  absl::MutexLock lock(&test_mu_);
  for (const auto& t : cp->tests()) {
    const int idx = SignalIndex(t.signal());
    if (idx < 0 || tests_[idx] == nullptr) continue;
    ConditionalMixtureTest& test = *tests_[idx];
    if (test.options().margin != t.margin() ||
        test.options().alpha != t.alpha()) {
      continue;
    }
    test.Restore(std::vector<double>(t.log_lr().begin(), t.log_lr().end()),
                 t.rejected(), t.treatment_events(), t.control_events());
  }
  for (const auto& c : cp->cohorts()) {
    if (static_cast<int>(c.stage()) >= num_stages_) continue;
    const size_t base = static_cast<size_t>(c.stage()) * kMaxSignals;
    for (int i = 0; i < cp->signals_size() && i < c.control_expected_size();
         ++i) {
      if (remap[i] < 0) continue;
      control_expected_[base + remap[i]] = c.control_expected(i);
      control_expected_var_[base + remap[i]] = c.control_expected_var(i);
    }
    if (cp->format() >= 2) continue;
    // Format 1: counts without host records.
    if (restored_affected_.empty()) {
      restored_affected_.assign(static_cast<size_t>(num_stages_) * kMaxSignals,
                                0);
    }
    for (int i = 0; i < c.affected_size() && i < cp->signals_size(); ++i) {
      if (remap[i] >= 0) restored_affected_[base + remap[i]] = c.affected(i);
    }
  }
}

uint64_t RolloutTracker::CohortExposed(int stage) const {
  if (stage < 0 || stage >= num_stages_) return 0;
  return agg_->cohort_exposed[stage].load(std::memory_order_relaxed);
}

uint64_t RolloutTracker::CohortGranted(int stage) const {
  if (stage < 0 || stage >= num_stages_) return 0;
  return agg_->cohort_granted[stage].load(std::memory_order_relaxed);
}

uint64_t RolloutTracker::CohortHealthy(int stage) const {
  if (stage < 0 || stage >= num_stages_) return 0;
  return agg_->cohort_healthy[stage].load(std::memory_order_relaxed);
}

size_t RolloutTracker::MemoryBytes() const { return table_->MemoryBytes(); }

uint64_t RolloutTracker::TrackedHosts() const {
  return agg_->tracked.load(std::memory_order_relaxed);
}

}  // namespace ringfence
