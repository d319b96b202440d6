#include "ringfence/telemetry.h"

#include <algorithm>
#include <cmath>

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
        if (e.signal.empty() || e.signal.size() > 64) {
          return absl::InvalidArgumentError(
              absl::StrCat(field(i, "signal"),
                           ": must be 1..64 characters for a signal event"));
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
        treatment_affected(NewCounters(kMaxSignals)),
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
  std::unique_ptr<std::atomic<uint64_t>[]> treatment_affected;
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
      epoch_(clock->Now() - absl::Seconds(1)),
      release_id_(options.release_id),
      num_stages_(std::max(1, options.num_stages)),
      table_(std::make_unique<HostTable>()),
      agg_(std::make_unique<Aggregates>(std::max(1, options.num_stages))) {
  for (const std::string& s : options.signals) {
    if (signals_.size() < static_cast<size_t>(kMaxSignals) &&
        std::find(signals_.begin(), signals_.end(), s) == signals_.end()) {
      signals_.push_back(s);
    }
  }
  for (absl::string_view b :
       {kSignalCrash, kSignalUncleanReboot, kSignalSilent, kSignalApplyStuck}) {
    if (std::find(signals_.begin(), signals_.end(), b) == signals_.end()) {
      if (signals_.size() < static_cast<size_t>(kMaxSignals)) {
        signals_.emplace_back(b);
      }
    }
  }
  if (options.expected_hosts > 0) table_->Reserve(options.expected_hosts);
  absl::MutexLock lock(&test_mu_);
  tests_.resize(signals_.size());
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

void RolloutTracker::OnInsert(HostState* h, uint32_t now_s) {
  h->first_seen = now_s;
  h->last_seen = now_s;
  agg_->tracked.fetch_add(1, std::memory_order_relaxed);
  agg_->control_hosts.fetch_add(1, std::memory_order_relaxed);
  agg_->control_sum_first_seen.fetch_add(now_s, std::memory_order_relaxed);
}

void RolloutTracker::Expose(HostState* h, int stage, uint32_t now_s) {
  if (h->exposed_at != 0) return;
  Aggregates& a = *agg_;
  {
    // The at-risk counts the sequential tests read change here; keep them
    // consistent with the affected counters by updating under test_mu_.
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
    }
    a.treatment_hosts.fetch_add(1, std::memory_order_relaxed);
  }
  h->affected = 0;
  h->flags = 0;
  h->exposed_at = now_s;
  h->stage = static_cast<uint8_t>(stage);
  a.cohort_exposed[stage].fetch_add(1, std::memory_order_relaxed);
  a.cohort_sum_exposed_at[stage].fetch_add(now_s, std::memory_order_relaxed);
}

void RolloutTracker::MarkAffected(int signal, HostState* h) {
  const uint8_t bit = static_cast<uint8_t>(1u << signal);
  if (h->affected & bit) return;
  h->affected |= bit;
  Aggregates& a = *agg_;
  const bool treatment = h->exposed_at != 0;
  absl::MutexLock lock(&test_mu_);
  const double n_t = static_cast<double>(
      a.treatment_hosts.load(std::memory_order_relaxed) -
      a.treatment_affected[signal].load(std::memory_order_relaxed));
  const double n_c = static_cast<double>(
      a.control_hosts.load(std::memory_order_relaxed) -
      a.control_affected_current[signal].load(std::memory_order_relaxed));
  if (treatment) {
    a.treatment_affected[signal].fetch_add(1, std::memory_order_relaxed);
    a.cohort_affected[h->stage * kMaxSignals + signal].fetch_add(
        1, std::memory_order_relaxed);
  } else {
    a.control_affected_total[signal].fetch_add(1, std::memory_order_relaxed);
    a.control_affected_current[signal].fetch_add(1, std::memory_order_relaxed);
  }
  if (tests_[signal] != nullptr) tests_[signal]->Observe(treatment, n_t, n_c);
}

void RolloutTracker::MaybeHealthy(HostState* h) {
  if (h->exposed_at == 0 || (h->flags & internal::kHealthy) ||
      !(h->flags & internal::kApplied) || h->affected != 0) {
    return;
  }
  if (h->last_seen - std::min(h->last_seen, h->exposed_at) <
      healthy_after_s_.load(std::memory_order_relaxed)) {
    return;
  }
  h->flags |= internal::kHealthy;
  agg_->cohort_healthy[h->stage].fetch_add(1, std::memory_order_relaxed);
}

void RolloutTracker::ApplyEvent(const TelemetryEventView& e, uint32_t now_s,
                                HostState* h, bool inserted) {
  if (inserted) OnInsert(h, now_s);
  if (now_s > h->last_seen) h->last_seen = now_s;
  auto mark_applied = [&] {
    if (h->exposed_at == 0) {
      Expose(h, current_stage_.load(std::memory_order_relaxed), now_s);
    }
    if (!(h->flags & internal::kApplied)) {
      h->flags |= internal::kApplied;
      agg_->cohort_applied[h->stage].fetch_add(1, std::memory_order_relaxed);
    }
  };
  switch (e.type) {
    case EventType::kApplying:
      if (e.release_id == release_id_ && h->exposed_at == 0) {
        Expose(h, current_stage_.load(std::memory_order_relaxed), now_s);
      }
      break;
    case EventType::kApplied:
      if (e.release_id == release_id_) mark_applied();
      break;
    case EventType::kHeartbeat:
      if (!e.release_id.empty() && e.release_id == release_id_) {
        mark_applied();
      }
      break;
    case EventType::kCrash: {
      const int idx = SignalIndex(kSignalCrash);
      if (idx >= 0) MarkAffected(idx, h);
      break;
    }
    case EventType::kBoot:
      if (!e.clean) {
        const int idx = SignalIndex(kSignalUncleanReboot);
        if (idx >= 0) MarkAffected(idx, h);
      }
      break;
    case EventType::kSignal: {
      const int idx = SignalIndex(e.signal);
      if (idx >= 0) MarkAffected(idx, h);
      break;
    }
  }
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
      bool inserted = false;
      HostState* h = table_->FindOrInsert(keys[i], &inserted);
      const bool was_exposed = h->exposed_at != 0;
      ApplyEvent(ViewOf(events[i]), now_s, h, inserted);
      if (newly_exposed != nullptr && !was_exposed && h->exposed_at != 0) {
        newly_exposed->push_back({std::string(events[i].host_id), h->stage,
                                  epoch_ + absl::Seconds(now_s)});
      }
    }
  }
}

RolloutTracker::Grant RolloutTracker::TryReserve(uint64_t host_key, int stage,
                                                 uint64_t stage_budget) {
  stage = std::clamp(stage, 0, num_stages_ - 1);
  const uint32_t now_s = ToSeconds(clock_->Now());
  absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(host_key)));
  bool inserted = false;
  HostState* h = table_->FindOrInsert(host_key, &inserted);
  if (inserted) OnInsert(h, now_s);
  if (now_s > h->last_seen) h->last_seen = now_s;
  if (h->exposed_at != 0) return Grant::kAlreadyExposed;
  std::atomic<uint64_t>& granted = agg_->cohort_granted[stage];
  uint64_t cur = granted.load(std::memory_order_relaxed);
  do {
    if (cur >= stage_budget) return Grant::kNoBudget;
  } while (
      !granted.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
  return Grant::kReserved;
}

void RolloutTracker::CommitReserved(uint64_t host_key, int stage) {
  stage = std::clamp(stage, 0, num_stages_ - 1);
  const uint32_t now_s = ToSeconds(clock_->Now());
  absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(host_key)));
  bool inserted = false;
  HostState* h = table_->FindOrInsert(host_key, &inserted);
  if (inserted) OnInsert(h, now_s);
  Expose(h, stage, now_s);
}

void RolloutTracker::CancelReserved(int stage) {
  stage = std::clamp(stage, 0, num_stages_ - 1);
  agg_->cohort_granted[stage].fetch_sub(1, std::memory_order_relaxed);
}

void RolloutTracker::MarkExposed(uint64_t host_key, int stage,
                                 absl::Time exposed_at, absl::Time seen_at) {
  stage = std::clamp(stage, 0, num_stages_ - 1);
  const uint32_t t = ToSeconds(exposed_at);
  const uint32_t seen = ToSeconds(seen_at);
  absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(host_key)));
  bool inserted = false;
  HostState* h = table_->FindOrInsert(host_key, &inserted);
  if (inserted) OnInsert(h, std::min(t, seen));
  if (seen > h->last_seen) h->last_seen = seen;
  Expose(h, stage, t);
}

bool RolloutTracker::IsExposed(uint64_t host_key) const {
  absl::MutexLock lock(&table_->ShardMutex(HostTable::ShardOf(host_key)));
  const HostState* h = table_->Find(host_key);
  return h != nullptr && h->exposed_at != 0;
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
    table_->ForEach(s, [&](uint64_t, HostState* h) {
      const uint8_t before = h->affected;
      if (silent >= 0 && h->last_seen != 0 &&
          static_cast<int64_t>(now_s) - std::max(h->last_seen, floor_s) >
              silence_s) {
        MarkAffected(silent, h);
      }
      if (stuck >= 0 && h->exposed_at != 0 &&
          !(h->flags & internal::kApplied) &&
          static_cast<int64_t>(now_s) - std::max(h->exposed_at, floor_s) >
              apply_s) {
        MarkAffected(stuck, h);
      }
      if (h->affected != before) ++newly;
    });
  }
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
    for (size_t sig = 0; sig < signals_.size(); ++sig) {
      c.affected[sig] = a.cohort_affected[st * kMaxSignals + sig].load(
          std::memory_order_relaxed);
    }
    out.treatment_host_hours += c.host_hours;
  }
  absl::MutexLock lock(&test_mu_);
  if (!restored_affected_.empty()) {
    for (int st = 0; st < num_stages_; ++st) {
      for (size_t sig = 0; sig < signals_.size(); ++sig) {
        uint64_t& a = out.cohorts[st].affected[sig];
        a = std::max(a, restored_affected_[st * kMaxSignals + sig]);
      }
    }
  }
  for (size_t sig = 0; sig < signals_.size(); ++sig) {
    SignalCounts sc;
    sc.signal = signals_[sig];
    sc.treatment_affected =
        a.treatment_affected[sig].load(std::memory_order_relaxed);
    sc.control_affected =
        a.control_affected_total[sig].load(std::memory_order_relaxed);
    sc.control_affected_current =
        a.control_affected_current[sig].load(std::memory_order_relaxed);
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

config::v1::TrackerCheckpoint RolloutTracker::Checkpoint() const {
  config::v1::TrackerCheckpoint cp;
  *cp.mutable_at() = ToProtoTime(clock_->Now());
  for (const std::string& s : signals_) cp.add_signals(s);
  const TrackerSnapshot snap = Snapshot();
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
      c->add_affected(snap.cohorts[st].affected[sig]);
    }
  }
  return cp;
}

void RolloutTracker::Restore(const config::v1::TrackerCheckpoint& cp) {
  absl::MutexLock lock(&test_mu_);
  for (const auto& t : cp.tests()) {
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
  restored_affected_.assign(static_cast<size_t>(num_stages_) * kMaxSignals, 0);
  for (const auto& c : cp.cohorts()) {
    if (static_cast<int>(c.stage()) >= num_stages_) continue;
    for (int i = 0; i < c.affected_size() && i < cp.signals_size(); ++i) {
      const int idx = SignalIndex(cp.signals(i));
      if (idx < 0) continue;
      restored_affected_[c.stage() * kMaxSignals + idx] = c.affected(i);
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
