#include "ringfence/agent.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ringfence/status_macros.h"

namespace ringfence {

namespace {
constexpr char kStateFile[] = "state";
constexpr char kContentDir[] = "content";
constexpr char kSpoolDir[] = "spool";
}  // namespace

// The agent's durable state: the file `state`, written atomically, one
// "key value" per line (releases as hex of their binary protobuf).
struct Agent::State {
  enum Assigned { kNone = 0, kRelease = 1, kUnload = 2 };
  struct FallbackReport {
    std::string release_id;
    uint32_t boots = 0;
    uint64_t boot = 0;  // the boot that fell back (part of the event id)
  };

  uint64_t boot = 0;
  Assigned assigned_kind = kNone;
  Release assigned;
  bool has_current = false;
  Release current;
  bool has_last_good = false;
  Release last_good;
  // The applying marker: `marker` (== current) is loading and not healthy;
  // marker_boots boots found it so since marker_since.
  bool has_marker = false;
  Release marker;
  int marker_boots = 0;
  absl::Time marker_since = absl::UnixEpoch();
  std::vector<std::string> quarantined;
  std::vector<FallbackReport> fallback_reports;
  // The last run ended with Stop() (a clean shutdown). Cleared at every
  // boot; a state file without the key (no run yet) counts as clean.
  bool clean_stop = true;

  bool IsQuarantined(const std::string& id) const {
    return std::find(quarantined.begin(), quarantined.end(), id) !=
           quarantined.end();
  }

  std::string Encode() const {
    auto rel = [](bool has, const Release& r) {
      return has ? absl::BytesToHexString(r.SerializeAsString())
                 : std::string("-");
    };
    std::vector<std::string> reports;
    for (const FallbackReport& f : fallback_reports) {
      reports.push_back(absl::StrCat(f.release_id, ":", f.boots, ":", f.boot));
    }
    return absl::StrCat(
        "version 1\nboot ", boot, "\nassigned_kind ",
        static_cast<int>(assigned_kind), "\nassigned ",
        rel(assigned_kind == kRelease, assigned), "\ncurrent ",
        rel(has_current, current), "\nlast_good ",
        rel(has_last_good, last_good), "\nmarker ", rel(has_marker, marker),
        "\nmarker_boots ", marker_boots, "\nmarker_since ",
        absl::ToUnixSeconds(marker_since), "\nquarantined ",
        quarantined.empty() ? "-" : absl::StrJoin(quarantined, ","),
        "\nfallback_reports ",
        reports.empty() ? "-" : absl::StrJoin(reports, ","), "\nclean_stop ",
        clean_stop ? 1 : 0, "\n");
  }

  absl::Status Decode(absl::string_view text) {
    auto bad = [](absl::string_view what) {
      return absl::DataLossError(absl::StrCat("agent state: bad ", what));
    };
    auto rel = [&](absl::string_view v, bool* has, Release* r) {
      *has = v != "-";
      if (*has && !r->ParseFromString(absl::HexStringToBytes(v))) {
        return false;
      }
      return true;
    };
    for (absl::string_view line :
         absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(line, absl::MaxSplits(' ', 1));
      const absl::string_view k = kv.first, v = kv.second;
      bool ok = true, has = false;
      if (k == "version") {
        ok = v == "1";
      } else if (k == "boot") {
        ok = absl::SimpleAtoi(v, &boot);
      } else if (k == "assigned_kind") {
        int n = 0;
        ok = absl::SimpleAtoi(v, &n) && n >= 0 && n <= 2;
        assigned_kind = static_cast<Assigned>(n);
      } else if (k == "assigned") {
        ok = rel(v, &has, &assigned);
      } else if (k == "current") {
        ok = rel(v, &has_current, &current);
      } else if (k == "last_good") {
        ok = rel(v, &has_last_good, &last_good);
      } else if (k == "marker") {
        ok = rel(v, &has_marker, &marker);
      } else if (k == "marker_boots") {
        ok = absl::SimpleAtoi(v, &marker_boots);
      } else if (k == "marker_since") {
        int64_t s = 0;
        ok = absl::SimpleAtoi(v, &s);
        marker_since = absl::FromUnixSeconds(s);
      } else if (k == "clean_stop") {
        ok = v == "0" || v == "1";
        clean_stop = v == "1";
      } else if (k == "quarantined") {
        if (v != "-") quarantined = absl::StrSplit(v, ',');
      } else if (k == "fallback_reports") {
        if (v == "-") continue;
        for (absl::string_view item : absl::StrSplit(v, ',')) {
          std::vector<absl::string_view> f = absl::StrSplit(item, ':');
          FallbackReport r;
          if (f.size() != 3 || !absl::SimpleAtoi(f[1], &r.boots) ||
              !absl::SimpleAtoi(f[2], &r.boot)) {
            return bad("fallback_reports");
          }
          r.release_id = std::string(f[0]);
          fallback_reports.push_back(r);
        }
      }
      if (!ok) return bad(k);
    }
    return absl::OkStatus();
  }
};

Agent::Agent(const AgentOptions& options, AgentFileSystem* fs,
             const Clock* clock, AgentTransport* transport, ContentHooks* hooks)
    : options_(options),
      fs_(fs),
      clock_(clock),
      transport_(transport),
      hooks_(hooks),
      state_(std::make_unique<State>()),
      rng_(options.seed) {}

Agent::~Agent() = default;

absl::StatusOr<std::unique_ptr<Agent>> Agent::Start(const AgentOptions& options,
                                                    AgentFileSystem* fs,
                                                    const Clock* clock,
                                                    AgentTransport* transport,
                                                    ContentHooks* hooks) {
  RETURN_IF_ERROR(ValidateId(options.identity.host_id, "identity.host_id"));
  RETURN_IF_ERROR(
      ValidateId(options.identity.content_type, "identity.content_type"));
  if (options.state_dir.empty()) {
    return absl::InvalidArgumentError("state_dir: must not be empty");
  }
  RETURN_IF_ERROR(ValidateTrustedKeys(options.trusted_keys));
  if (options.boot_loop_limit < 1) {
    return absl::InvalidArgumentError("boot_loop_limit: must be at least 1");
  }
  if (options.poll_interval <= absl::ZeroDuration() ||
      options.heartbeat_interval <= absl::ZeroDuration() ||
      options.send_backoff_initial <= absl::ZeroDuration() ||
      options.poll_jitter < 0 || options.poll_jitter >= 1 ||
      options.max_batch_events == 0 ||
      options.heartbeat_with_poll < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "intervals must be positive, poll_jitter in [0, 1), "
        "max_batch_events > 0, heartbeat_with_poll >= 0");
  }
  std::unique_ptr<Agent> agent(new Agent(options, fs, clock, transport, hooks));
  RETURN_IF_ERROR(agent->Boot());
  return agent;
}

std::string PayloadFileName(absl::string_view release_id) {
  // Ids may hold "/" and "..": name the file by the id's hash.
  return absl::StrCat(ComputeDigest(release_id).sha256_hex.substr(0, 32),
                      ".payload");
}

std::string Agent::PayloadPath(const std::string& release_id) const {
  return absl::StrCat(options_.state_dir, "/", kContentDir, "/",
                      PayloadFileName(release_id));
}

absl::Duration Agent::Jitter(absl::Duration d, double lo, double hi) {
  std::uniform_real_distribution<double> u(lo, hi);
  // Whole milliseconds: clocks need not resolve finer.
  return absl::Milliseconds(
      std::llround(absl::ToDoubleMilliseconds(d) * u(rng_)));
}

void Agent::Note(const absl::Status& s) {
  if (s.ok()) return;
  last_error_ = s;
  last_error_at_ = clock_->Now();
}

absl::Status Agent::SaveState() {
  return fs_->WriteFileAtomically(
      absl::StrCat(options_.state_dir, "/", kStateFile), state_->Encode());
}

absl::Status Agent::Spool(EventType type, const std::string& release_id,
                          const std::string& step, const std::string& signal,
                          uint32_t boot_count, bool clean) {
  TelemetryEvent e;
  e.host_id = options_.identity.host_id;
  e.type = type;
  e.time = clock_->Now();
  e.release_id = release_id;
  e.signal = signal;
  e.boot_id = state_->boot;
  if (type == EventType::kBoot) {
    e.boots_since_apply = boot_count;
    e.clean = clean;
  }
  const std::string id = absl::StrCat(options_.identity.host_id, "/",
                                      release_id.empty() ? "-" : release_id,
                                      "/", state_->boot, "/", step);
  RETURN_IF_ERROR(spool_->Append(id, e, boot_count).status());
  if (spool_->dropped_events() > dropped_reported_) {
    // The cap dropped unacknowledged events: say so (once per total).
    dropped_reported_ = spool_->dropped_events();
    e.type = EventType::kSignal;
    e.release_id.clear();
    e.signal = "telemetry_dropped";
    RETURN_IF_ERROR(
        spool_
            ->Append(absl::StrCat(options_.identity.host_id, "/-/",
                                  state_->boot, "/dropped-", dropped_reported_),
                     e)
            .status());
  }
  return absl::OkStatus();
}

absl::Status Agent::Verify(const Release& release, absl::string_view payload) {
  if (release.content_type() != options_.identity.content_type) {
    return absl::InvalidArgumentError(absl::StrCat(
        "content_type: release ", release.id(), " is ", release.content_type(),
        ", this agent runs ", options_.identity.content_type));
  }
  RETURN_IF_ERROR(VerifyReleaseSignature(release, options_.trusted_keys,
                                         options_.require_signature));
  return VerifyPayload(release, payload);
}

absl::StatusOr<std::string> Agent::EnsurePayload(const Release& release,
                                                 bool* rejected) {
  *rejected = false;
  if (!IsValidId(release.id())) {
    *rejected = true;
    return ValidateId(release.id(), "release.id");
  }
  const std::string path = PayloadPath(release.id());
  absl::StatusOr<std::string> stored = fs_->ReadFile(path);
  if (stored.ok() && Verify(release, *stored).ok()) return path;
  if (!stored.ok() && !absl::IsNotFound(stored.status())) {
    return stored.status();
  }
  ASSIGN_OR_RETURN(std::string payload, hooks_->Fetch(release));
  absl::Status verified = Verify(release, payload);
  if (!verified.ok()) {
    *rejected = true;
    return verified;
  }
  RETURN_IF_ERROR(fs_->WriteFileAtomically(path, payload));
  return path;
}

absl::Status Agent::LoadMarked(const Release& release) {
  // REQUIRES: the marker for `release` is durable (state file).
  loaded_ = false;
  bool rejected = false;
  absl::StatusOr<std::string> path = EnsurePayload(release, &rejected);
  if (!path.ok()) {
    next_apply_ = clock_->Now() + Jitter(options_.poll_interval, 0.5, 1.5);
    return path.status();
  }
  ++loads_;
  RETURN_IF_ERROR(Spool(EventType::kApplying, release.id(),
                        absl::StrCat("applying-", loads_)));
  absl::Status loaded = hooks_->Load(release, *path);
  if (!loaded.ok()) {
    // A failed load counts like a boot that found the release not healthy.
    ++state_->marker_boots;
    RETURN_IF_ERROR(SaveState());
    if (state_->marker_boots >= options_.boot_loop_limit) return FallBack();
    next_apply_ = clock_->Now() + Jitter(options_.poll_interval, 0.5, 1.5);
    return loaded;
  }
  loaded_ = true;
  loaded_at_ = clock_->Now();
  return Spool(EventType::kApplied, release.id(),
               absl::StrCat("applied-", loads_));
}

absl::Status Agent::FallBack() {
  State& s = *state_;
  const Release bad = s.marker;
  const uint32_t boots = static_cast<uint32_t>(s.marker_boots);
  if (!s.IsQuarantined(bad.id())) s.quarantined.push_back(bad.id());
  s.fallback_reports.push_back({bad.id(), boots, s.boot});
  const bool target = s.has_last_good && !s.IsQuarantined(s.last_good.id());
  if (target) {
    s.has_marker = true;
    s.marker = s.last_good;
    s.marker_boots = 0;
    s.marker_since = clock_->Now();
    s.has_current = true;
    s.current = s.last_good;
  } else {
    s.has_marker = false;
    s.has_current = false;
  }
  RETURN_IF_ERROR(SaveState());
  if (target) return LoadMarked(s.current);
  loaded_ = false;
  RETURN_IF_ERROR(hooks_->Unload());
  loaded_ = true;
  loaded_at_ = clock_->Now();
  return absl::OkStatus();
}

absl::Status Agent::Boot() {
  const absl::Time now = clock_->Now();
  RETURN_IF_ERROR(fs_->MakeDirs(options_.state_dir));
  RETURN_IF_ERROR(
      fs_->MakeDirs(absl::StrCat(options_.state_dir, "/", kContentDir)));
  absl::StatusOr<std::string> text =
      fs_->ReadFile(absl::StrCat(options_.state_dir, "/", kStateFile));
  if (text.ok()) {
    RETURN_IF_ERROR(state_->Decode(*text));
  } else if (!absl::IsNotFound(text.status())) {
    return text.status();
  }
  ASSIGN_OR_RETURN(
      spool_,
      EventSpool::Open(fs_, absl::StrCat(options_.state_dir, "/", kSpoolDir),
                       options_.spool));
  dropped_reported_ = spool_->dropped_events();
  State& s = *state_;
  ++s.boot;
  const bool clean = s.clean_stop;
  s.clean_stop = false;
  RETURN_IF_ERROR(SaveState());
  next_heartbeat_ = now + options_.heartbeat_interval;
  next_poll_ = now;
  next_send_ = now;

  if (s.has_marker) {
    // The boot-loop guard: the release was loading and never came up
    // healthy. Count this boot before anything else.
    if (now - s.marker_since > options_.boot_loop_window) {
      s.marker_boots = 0;
      s.marker_since = now;
    }
    ++s.marker_boots;
    RETURN_IF_ERROR(SaveState());
    // Tell the gate, idempotently: boots_since_apply is the count, so a
    // re-sent BOOT counts once toward apply_stuck.
    RETURN_IF_ERROR(Spool(EventType::kBoot, s.marker.id(), "boot", "",
                          static_cast<uint32_t>(s.marker_boots), clean));
    if (s.marker_boots >= options_.boot_loop_limit) {
      Note(FallBack());
      return absl::OkStatus();
    }
    Note(LoadMarked(s.marker));
    return absl::OkStatus();
  }
  if (!clean) {
    // The last run ended without Stop(): the agent or the host died.
    RETURN_IF_ERROR(Spool(EventType::kBoot, "", "boot", "", 0, clean));
  }
  if (s.has_current) Note(LoadCurrent());
  return absl::OkStatus();
}

absl::Status Agent::Stop() {
  state_->clean_stop = true;
  return SaveState();
}

absl::Status Agent::LoadCurrent() {
  // The healthy current release, at boot (or retried after a failure).
  loaded_ = false;
  bool rejected = false;
  absl::StatusOr<std::string> path = EnsurePayload(state_->current, &rejected);
  if (!path.ok()) {
    next_apply_ = clock_->Now() + Jitter(options_.poll_interval, 0.5, 1.5);
    return path.status();
  }
  ++loads_;
  absl::Status loaded = hooks_->Load(state_->current, *path);
  if (!loaded.ok()) {
    next_apply_ = clock_->Now() + Jitter(options_.poll_interval, 0.5, 1.5);
    return loaded;
  }
  loaded_ = true;
  loaded_at_ = clock_->Now();
  return Spool(EventType::kApplied, state_->current.id(),
               absl::StrCat("applied-", loads_));
}

absl::Status Agent::ApplyAssigned(const Release& release) {
  bool rejected = false;
  absl::StatusOr<std::string> path = EnsurePayload(release, &rejected);
  if (!path.ok()) {
    next_apply_ = clock_->Now() + Jitter(options_.poll_interval, 0.5, 1.5);
    if (rejected && refused_this_boot_.insert(release.id()).second) {
      // Refused, never loaded; reported once per boot.
      RETURN_IF_ERROR(Spool(EventType::kSignal, release.id(), "refused",
                            "content_rejected"));
    }
    return path.status();
  }
  State& s = *state_;
  s.quarantined.clear();
  s.has_marker = true;
  s.marker = release;
  s.marker_boots = 0;
  s.marker_since = clock_->Now();
  s.has_current = true;
  s.current = release;
  loaded_ = false;
  RETURN_IF_ERROR(SaveState());
  return LoadMarked(release);
}

absl::Status Agent::DoUnload() {
  State& s = *state_;
  s.has_current = false;
  s.has_marker = false;
  loaded_ = false;
  RETURN_IF_ERROR(SaveState());
  RETURN_IF_ERROR(hooks_->Unload());
  loaded_ = true;
  loaded_at_ = clock_->Now();
  return absl::OkStatus();
}

absl::Status Agent::Poll() {
  const absl::Time now = clock_->Now();
  next_poll_ = now + Jitter(options_.poll_interval, 1 - options_.poll_jitter,
                            1 + options_.poll_jitter);
  absl::StatusOr<AssignmentAnswer> answer =
      transport_->GetAssignment(options_.identity, spool_->pending_count());
  // No answer, or "keep what you run": keep running what we run.
  if (!answer.ok()) return answer.status();
  last_contact_ = clock_->Now();
  // The server answers again: send the backlog now rather than at the end
  // of a backoff grown while it was down (a retry hint still holds).
  if (spool_->pending_count() > 0) {
    next_send_ = std::min(next_send_, std::max(now, send_hint_until_));
  }
  State& s = *state_;
  if (answer->unload) {
    if (s.assigned_kind == State::kUnload) return absl::OkStatus();
    s.assigned_kind = State::kUnload;
    s.assigned.Clear();
    return SaveState();
  }
  if (!answer->has_release) return absl::OkStatus();
  bool changed = false;
  if (!s.quarantined.empty() && !s.IsQuarantined(answer->release.id())) {
    // The server assigns a different release: the quarantine ends.
    s.quarantined.clear();
    changed = true;
  }
  if (s.assigned_kind == State::kRelease &&
      s.assigned.SerializeAsString() == answer->release.SerializeAsString()) {
    return changed ? SaveState() : absl::OkStatus();
  }
  if (s.assigned_kind != State::kRelease ||
      s.assigned.id() != answer->release.id()) {
    next_apply_ = absl::InfinitePast();  // a new release: try it now
  }
  s.assigned_kind = State::kRelease;
  s.assigned = answer->release;
  return SaveState();
}

absl::Status Agent::Reconcile() {
  State& s = *state_;
  const absl::Time now = clock_->Now();
  if (s.assigned_kind == State::kUnload) {
    if (s.has_current || s.has_marker) return DoUnload();
    return absl::OkStatus();
  }
  if (s.assigned_kind == State::kRelease &&
      !(s.has_current && s.current.id() == s.assigned.id()) &&
      !s.IsQuarantined(s.assigned.id())) {
    if (now < next_apply_) return absl::OkStatus();
    return ApplyAssigned(s.assigned);
  }
  if (s.has_current && !loaded_ && now >= next_apply_) {
    // A load of the current release failed earlier in this boot: retry.
    return s.has_marker ? LoadMarked(s.current) : LoadCurrent();
  }
  return absl::OkStatus();
}

absl::Status Agent::HeartbeatDue() {
  const absl::Time now = clock_->Now();
  if (now < next_heartbeat_) return absl::OkStatus();
  next_heartbeat_ = now + options_.heartbeat_interval;
  State& s = *state_;
  const std::string running =
      s.has_current && loaded_ ? s.current.id() : std::string();
  ++heartbeats_;
  RETURN_IF_ERROR(Spool(EventType::kHeartbeat, running,
                        absl::StrCat("heartbeat-", heartbeats_)));
  if (!loaded_ || now < loaded_at_ + options_.heartbeat_interval) {
    return absl::OkStatus();
  }
  // Healthy: loaded, and alive a heartbeat interval later.
  if (s.has_marker) {
    s.has_last_good = true;
    s.last_good = s.marker;
    s.has_marker = false;
    s.marker_boots = 0;
    RETURN_IF_ERROR(SaveState());
    // Keep only the payloads of the current and the last good release.
    ASSIGN_OR_RETURN(
        std::vector<std::string> names,
        fs_->List(absl::StrCat(options_.state_dir, "/", kContentDir)));
    for (const std::string& name : names) {
      if (name != PayloadFileName(s.last_good.id())) {
        RETURN_IF_ERROR(fs_->Remove(
            absl::StrCat(options_.state_dir, "/", kContentDir, "/", name)));
      }
    }
  }
  if (!s.fallback_reports.empty()) {
    for (const State::FallbackReport& f : s.fallback_reports) {
      TelemetryEvent e;
      e.host_id = options_.identity.host_id;
      e.type = EventType::kSignal;
      e.time = now;
      e.release_id = f.release_id;
      e.signal = std::string(kSignalLocalFallback);
      e.boot_id = f.boot;
      RETURN_IF_ERROR(spool_
                          ->Append(absl::StrCat(options_.identity.host_id, "/",
                                                f.release_id, "/", f.boot,
                                                "/local_fallback"),
                                   e, f.boots)
                          .status());
    }
    s.fallback_reports.clear();
    RETURN_IF_ERROR(SaveState());
  }
  return absl::OkStatus();
}

absl::Status Agent::SendDue() {
  for (int i = 0; i < 64; ++i) {
    const absl::Time now = clock_->Now();
    if (spool_->pending_count() == 0 || now < next_send_) break;
    std::vector<SpooledEvent> batch =
        spool_->Pending(options_.max_batch_events);
    absl::Duration retry_after = absl::ZeroDuration();
    absl::Status sent = transport_->ReportTelemetry(batch, &retry_after);
    if (!sent.ok()) {
      ++send_failures_;
      absl::Duration backoff = options_.send_backoff_initial *
                               std::pow(2.0, std::min(send_failures_ - 1, 30));
      backoff = std::min(backoff, options_.send_backoff_max);
      next_send_ = now + std::max(Jitter(backoff, 0.5, 1.5), retry_after);
      send_hint_until_ = now + retry_after;
      return sent;
    }
    send_failures_ = 0;
    last_contact_ = clock_->Now();
    RETURN_IF_ERROR(spool_->Ack(batch.back().seq));
  }
  return absl::OkStatus();
}

absl::Status Agent::Tick() {
  absl::Status first;
  auto step = [&](absl::Status s) {
    if (!s.ok()) {
      Note(s);
      if (first.ok()) first = s;
    }
  };
  const uint64_t heartbeats_before = heartbeats_;
  step(HeartbeatDue());
  const bool heartbeat_sent = heartbeats_ != heartbeats_before;
  // Between loading a release and its health the agent does not poll: the
  // server counts a check-in of a host not yet up on its release as a
  // boot-loop attempt (docs/agent-protocol.md), so a host polls once per
  // boot while applying. Health comes at most two heartbeat intervals later.
  if (!AwaitingHealth()) {
    const absl::Time now = clock_->Now();
    const absl::Duration window = std::min(
        options_.heartbeat_with_poll,
        std::min(options_.heartbeat_interval, options_.poll_interval) / 4);
    // A poll due soon is made with the heartbeat that just went out, and a
    // heartbeat due soon goes out with the poll: one wakeup and one
    // connection for both (AgentOptions::heartbeat_with_poll).
    if (now >= next_poll_ || (heartbeat_sent && next_poll_ - now <= window)) {
      step(Poll());
      if (!heartbeat_sent && next_heartbeat_ - now <= window) {
        next_heartbeat_ = now;
        step(HeartbeatDue());
      }
    }
  }
  step(Reconcile());
  step(SendDue());
  return first;
}

absl::Status Agent::ValidateReport(EventType type, absl::string_view signal) {
  if (type == EventType::kSignal) {
    const bool valid =
        !signal.empty() && signal.size() <= 64 &&
        std::all_of(signal.begin(), signal.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        });
    if (!valid) {
      return absl::InvalidArgumentError(
          absl::StrCat("signal: a signal name is [a-z0-9_]{1,64}, got ",
                       signal.size(), " characters that are not"));
    }
  } else if (type == EventType::kCrash) {
    if (signal.size() > 256) {
      return absl::InvalidArgumentError(
          absl::StrCat("signal: a crash signature is at most 256 characters, "
                       "got ",
                       signal.size()));
    }
  } else {
    return absl::InvalidArgumentError(
        "type: a host reports CRASH or SIGNAL events; the agent reports the "
        "others itself");
  }
  return absl::OkStatus();
}

absl::Status Agent::Report(EventType type, absl::string_view signal) {
  RETURN_IF_ERROR(ValidateReport(type, signal));
  const State& s = *state_;
  const std::string running = s.has_current && loaded_ ? s.current.id() : "";
  RETURN_IF_ERROR(Spool(type, running, absl::StrCat("report-", reports_ + 1),
                        std::string(signal)));
  ++reports_;
  return absl::OkStatus();
}

bool Agent::AwaitingHealth() const { return loaded_ && state_->has_marker; }

absl::Time Agent::NextWakeup() const {
  absl::Time t = AwaitingHealth() ? next_heartbeat_
                                  : std::min(next_heartbeat_, next_poll_);
  if (spool_->pending_count() > 0)
    t = std::max(std::min(t, next_send_), clock_->Now());
  const State& s = *state_;
  const bool apply_pending =
      (s.assigned_kind == State::kRelease &&
       !(s.has_current && s.current.id() == s.assigned.id()) &&
       !s.IsQuarantined(s.assigned.id())) ||
      (s.has_current && !loaded_);
  if (apply_pending && next_apply_ > clock_->Now()) {
    t = std::min(t, next_apply_);
  }
  return t;
}

AgentStatus Agent::GetStatus() const {
  const State& s = *state_;
  AgentStatus st;
  st.boot = s.boot;
  st.running = s.has_current && loaded_ ? s.current.id() : "";
  st.last_good = s.has_last_good ? s.last_good.id() : "";
  st.applying = s.has_marker ? s.marker.id() : "";
  st.applying_boots = s.marker_boots;
  st.quarantined = absl::StrJoin(s.quarantined, ",");
  st.assigned = s.assigned_kind == State::kRelease  ? s.assigned.id()
                : s.assigned_kind == State::kUnload ? "unload"
                                                    : "";
  st.spool_pending = spool_->pending_count();
  st.spool_dropped = spool_->dropped_events();
  st.last_error = last_error_;
  st.last_error_at = last_error_at_;
  st.last_contact = last_contact_;
  return st;
}

}  // namespace ringfence
