// ringfence_bench: Google Benchmark suite for ringfence's hot paths.
//
//   BM_Assign*          Controller::Assign per answer path and over a 1M-host
//                       fleet; AudienceIndex::Place; BucketOf
//   BM_Ingest*          RolloutTracker::Ingest / IngestKeyed, 1M and 10M hosts
//                       (bytes_per_host); Controller::Ingest
//   BM_ValidateTelemetryBatch  what Controller::Ingest validates per batch
//   BM_GateEvaluate*    EvaluateGate on a snapshot; Controller::Evaluate
//   BM_Stats*           ConditionalMixtureTest::Observe
//
// Everything is single-threaded: the numbers are per core. Expensive fixtures
// (the 1M-host fleet, the 1M/10M-host trackers) are built once, lazily, and
// shared by every run of every benchmark that needs them; their construction
// is never timed. See bench/README.md for how to build, run and read this.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "bench/bench_main.h"
#include "ringfence/assign.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/gate.h"
#include "ringfence/hash.h"
#include "ringfence/model.h"
#include "ringfence/policy.h"
#include "ringfence/stats.h"
#include "ringfence/store.h"
#include "ringfence/telemetry.h"

namespace ringfence {
namespace {

constexpr char kContentType[] = "channel-file/291";
constexpr char kBaselineRelease[] = "cf291-good";
constexpr char kNewRelease[] = "cf291-next";

// The default plan (examples/plans/default.textproto).
constexpr char kPlanPath[] =
    RINGFENCE_SOURCE_DIR "/examples/plans/default.textproto";

// Tenants: 1000, of which 0-49 are early track (5 %), 50-79 late (3 %),
// 80-89 pinned (1 %); the rest are unlisted, i.e. general.
constexpr int kTenants = 1000;
constexpr int kEarlyTenants = 50;
constexpr int kLateTenants = 30;
constexpr int kPinnedTenants = 10;

// Events per ingest batch.
constexpr int kBatchEvents = 10000;
// Distinct pre-built batches per host count (rotated round-robin).
constexpr int kBatchesPerPool = 64;
// Hosts in the small per-scenario pools of the BM_Assign* path benchmarks.
constexpr size_t kScenarioPool = 4096;
// Hosts in the BM_AssignFleetMix fleet.
constexpr size_t kFleetHosts = 1000000;

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "ringfence_bench: %s: %s\n", what,
                 s.ToString().c_str());
    std::abort();
  }
}

void CheckThat(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "ringfence_bench: setup check failed: %s\n",
                 what.c_str());
    std::abort();
  }
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Host i's id: 32 lower-case hex characters (an EDR-style agent id),
// written into `out` (32 bytes) without allocating.
void WriteHostId(uint64_t i, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  const uint64_t a = SplitMix64(2 * i);
  const uint64_t b = SplitMix64(2 * i + 1);
  for (int k = 0; k < 16; ++k) {
    out[k] = kHex[(a >> (4 * k)) & 15];
    out[16 + k] = kHex[(b >> (4 * k)) & 15];
  }
}

std::string HostId(uint64_t i) {
  std::string s(32, '0');
  WriteHostId(i, s.data());
  return s;
}

FleetConfig MakeFleetConfig() {
  FleetConfig fleet;
  for (int t = 0; t < kEarlyTenants + kLateTenants + kPinnedTenants; ++t) {
    Tenant* tenant = fleet.add_tenants();
    tenant->set_name(absl::StrCat("tenant-", t));
    tenant->set_track(t < kEarlyTenants ? config::v1::TRACK_EARLY
                      : t < kEarlyTenants + kLateTenants
                          ? config::v1::TRACK_LATE
                          : config::v1::TRACK_PINNED);
  }
  return fleet;
}

// Host i of the synthetic fleet: a uniformly random tenant, a region label
// and a ring label ("ring:dogfood" for 0.1 % of hosts), one of three agent
// versions, platform windows 70 % / linux 25 % / macos 5 %.
HostInfo MakeHost(uint64_t i) {
  static const char* const kRegions[] = {
      "region:us-east-1",    "region:us-west-2",   "region:eu-west-1",
      "region:eu-central-1", "region:ap-south-1",  "region:ap-northeast-1",
      "region:sa-east-1",    "region:ca-central-1"};
  static const char* const kVersions[] = {"7.10.2", "7.11.0", "7.11.1"};
  const uint64_t r = SplitMix64(i ^ 0x5bd1e9955bd1e995ULL);
  HostInfo h;
  h.host_id = HostId(i);
  h.tenant = absl::StrCat("tenant-", r % kTenants);
  h.labels.emplace_back(kRegions[(r >> 10) % 8]);
  h.labels.emplace_back((r >> 20) % 1000 == 0 ? "ring:dogfood" : "ring:prod");
  h.agent_version = kVersions[(r >> 30) % 3];
  const uint64_t p = (r >> 40) % 100;
  h.platform = p < 70 ? "windows" : p < 95 ? "linux" : "macos";
  return h;
}

// With `targeting`, releases target agents >= 7.0 on windows and linux (macos
// hosts are not targeted), so every Assign evaluates a version comparison and
// a platform match, as a real channel-file release would. Without, IsTargeted
// is trivially true (to show what targeting costs).
Release MakeRelease(const std::string& id, char digest_char,
                    bool targeting = true) {
  Release r;
  r.set_id(id);
  r.set_content_type(kContentType);
  r.set_version(id);
  r.set_digest_sha256(std::string(64, digest_char));
  r.set_size_bytes(40000);
  r.set_fetch_url("https://updates.example/" + id);
  if (targeting) {
    r.mutable_targeting()->set_min_agent_version("7.0");
    r.mutable_targeting()->add_platforms("windows");
    r.mutable_targeting()->add_platforms("linux");
  }
  return r;
}

const Plan& BenchPlan() {
  static const Plan* plan = [] {
    auto* p = new Plan;
    Check(LoadMessageFile(kPlanPath, p), "parse plan");
    Check(ValidatePlan(*p), "validate plan");
    return p;
  }();
  return *plan;
}

std::vector<std::string> BuiltinSignals() {
  return {std::string(kSignalCrash), std::string(kSignalUncleanReboot),
          std::string(kSignalSilent), std::string(kSignalApplyStuck)};
}

// ---- A controller with one rollout ----------------------------------------

struct World {
  FakeClock clock;
  StorePtr store;
  std::unique_ptr<Controller> controller;
  std::string rollout_id;
  std::unique_ptr<const AudienceIndex> index;  // same salt as the rollout
  TenantTracks tracks{MakeFleetConfig()};
  bool targeting = true;
};

// A controller whose rollout of kNewRelease (baseline kBaselineRelease) is
// RUNNING in `stage` (0..3; 4 = late track), or COMPLETED if `stage` is 5.
// Stages are reached with Controller::Promote. `targeting`: see MakeRelease.
// `stage` > the plan's stages means completed; `watching` keeps a completed
// rollout under its post-completion watch (else the clock is moved past it,
// the steady state of a completed release).
std::unique_ptr<World> MakeWorld(int stage, bool targeting = true,
                                 bool watching = false) {
  auto w = std::make_unique<World>();
  w->store = NewMemoryStore();
  ControllerOptions options;
  options.fleet = MakeFleetConfig();
  auto c = Controller::Create(w->store.get(), &w->clock, options);
  Check(c.status(), "Controller::Create");
  w->controller = std::move(*c);
  Check(w->controller->CreateRelease(
            MakeRelease(kBaselineRelease, 'a', targeting), "bench"),
        "CreateRelease baseline");
  Check(w->controller->CreateRelease(MakeRelease(kNewRelease, 'b', targeting),
                                     "bench"),
        "CreateRelease new");
  StartRolloutRequest req;
  // The baseline must have completed a rollout: adopt it first.
  req.rollout_id = "cf291-good-rollout";
  req.release_id = kBaselineRelease;
  req.plan = BenchPlan();
  req.allow_no_baseline = true;
  req.actor = "bench";
  req.reason = "the release every host runs";
  Check(w->controller->StartRollout(req).status(), "StartRollout baseline");
  Check(w->controller->PromoteToCompletion(req.rollout_id, "bench", "adopt")
            .status(),
        "PromoteToCompletion baseline");
  // An explicit id (it is also the bucket salt), so host placement does not
  // depend on the id format the controller generates.
  req.rollout_id = "cf291-next-rollout";
  req.release_id = kNewRelease;
  req.baseline_release_id = kBaselineRelease;
  req.plan = BenchPlan();
  req.actor = "bench";
  req.reason = "benchmark rollout";
  auto r = w->controller->StartRollout(req);
  Check(r.status(), "StartRollout");
  w->rollout_id = r->id();
  w->index = AudienceIndex::Build(BenchPlan(), r->salt());
  for (int s = 0; s < stage; ++s) {
    auto p =
        w->controller->Promote(w->rollout_id, "bench", "benchmark scenario");
    Check(p.status(), "Promote");
  }
  w->targeting = targeting;
  if (stage > BenchPlan().stages_size() && !watching) {
    w->clock.Advance(absl::Hours(1) + absl::Seconds(1));  // the default watch
    Check(w->controller->Tick(), "Tick");
  }
  auto st = w->controller->GetRollout(w->rollout_id);
  Check(st.status(), "GetRollout");
  if (stage > BenchPlan().stages_size()) {
    CheckThat(st->rollout.state() == config::v1::COMPLETED, "completed");
  } else {
    CheckThat(st->rollout.state() == config::v1::RUNNING &&
                  static_cast<int>(st->rollout.stage()) == stage,
              absl::StrCat("running in stage ", stage));
  }
  return w;
}

// kScenarioPool hosts of the synthetic fleet that are targeted, not pinned
// and placed in [min_stage, max_stage] by the rollout's audience index, and
// get `want` from Controller::Assign (checked outside any timing). Paths with
// side effects (the paced stage) set `settle`: a first Assign pass uses up
// the exposure budget and the hosts it exposed are dropped; otherwise every
// candidate must get `want`.
std::vector<HostInfo> ScenarioHosts(World& w, int min_stage, int max_stage,
                                    AssignReason want, bool settle = false) {
  const Release release = MakeRelease(kNewRelease, 'b', w.targeting);
  const size_t candidates = kScenarioPool + (settle ? 1024 : 0);
  std::vector<HostInfo> cand;
  for (uint64_t i = 0; cand.size() < candidates; ++i) {
    HostInfo h = MakeHost(i);
    if (!IsTargeted(release.targeting(), h)) continue;
    const Track track = w.tracks.TrackOf(h.tenant);
    if (track == config::v1::TRACK_PINNED) continue;
    const int placed = w.index->Place(h, track);
    if (placed < min_stage || placed > max_stage) continue;
    cand.push_back(std::move(h));
  }
  if (settle) {
    for (const HostInfo& h : cand) {
      benchmark::DoNotOptimize(w.controller->Assign(h, kContentType));
    }
  }
  std::vector<HostInfo> out;
  for (HostInfo& h : cand) {
    const Assignment a = w.controller->Assign(h, kContentType);
    if (a.reason == want) {
      if (out.size() < kScenarioPool) out.push_back(std::move(h));
      continue;
    }
    CheckThat(settle, absl::StrCat("host ", h.host_id, " got ",
                                   AssignReasonName(a.reason), ", want ",
                                   AssignReasonName(want)));
  }
  CheckThat(out.size() == kScenarioPool, "scenario pool size");
  return out;
}

void RunAssign(benchmark::State& state, Controller& c,
               const std::vector<HostInfo>& hosts) {
  size_t i = 0;
  for (auto _ : state) {
    Assignment a = c.Assign(hosts[i], kContentType);
    benchmark::DoNotOptimize(a);
    if (++i == hosts.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

// BM_AssignNotYet / Completed / StageOpen: 4,096 hosts (cache-resident)
// that all take the same path. Arg `targeting`: see MakeRelease.
//
// (a) Current stage 0 (dogfood); hosts placed in a later stage: kNotYet.
// Lock-free: view lookup, targeting, tenant track, Place (label lookups and
// the bucket hash).
void BM_AssignNotYet(benchmark::State& state) {
  auto w = MakeWorld(0, state.range(0) != 0);
  const auto hosts = ScenarioHosts(*w, 1, 4, AssignReason::kNotYet);
  RunAssign(state, *w->controller, hosts);
}
BENCHMARK(BM_AssignNotYet)->ArgName("targeting")->Arg(1)->Arg(0);

// (b) Rollout completed and its post-completion watch over: kCompleted
// without placing the host, lock-free.
void BM_AssignCompleted(benchmark::State& state) {
  auto w = MakeWorld(5, state.range(0) != 0);
  const auto hosts = ScenarioHosts(*w, -1, 4, AssignReason::kCompleted);
  RunAssign(state, *w->controller, hosts);
}
BENCHMARK(BM_AssignCompleted)->ArgName("targeting")->Arg(1)->Arg(0);

// (b') Rollout completed, under its post-completion watch: every host told
// the release has an exposure record first, so each lookup takes a
// host-table shard lock (hosts already exposed: no store write).
void BM_AssignCompletedWatched(benchmark::State& state) {
  auto w = MakeWorld(5, state.range(0) != 0, /*watching=*/true);
  const auto hosts = ScenarioHosts(*w, -1, 4, AssignReason::kCompleted);
  RunAssign(state, *w->controller, hosts);
}
BENCHMARK(BM_AssignCompletedWatched)->ArgName("targeting")->Arg(1)->Arg(0);

// (c) Current stage 3 (fleet); hosts of stages 0-2 (dogfood label, early
// tenants, 1 % bucket): kStageOpen. Takes a host-table shard lock: a host
// of an open stage gets an exposure record before it is told (hosts
// already exposed: no store write).
void BM_AssignStageOpen(benchmark::State& state) {
  auto w = MakeWorld(3, state.range(0) != 0);
  const auto hosts = ScenarioHosts(*w, 0, 2, AssignReason::kStageOpen);
  RunAssign(state, *w->controller, hosts);
}
BENCHMARK(BM_AssignStageOpen)->ArgName("targeting")->Arg(1)->Arg(0);

// (e) Current stage 3 (fleet, paced, budget 50 used up); hosts placed in
// stage 3: kWaitingForPacing. Takes a host-table shard lock (exposure grant).
void BM_AssignWaitingForPacing(benchmark::State& state) {
  auto w = MakeWorld(3, state.range(0) != 0);
  const auto hosts =
      ScenarioHosts(*w, 3, 3, AssignReason::kWaitingForPacing, true);
  RunAssign(state, *w->controller, hosts);
}
BENCHMARK(BM_AssignWaitingForPacing)->ArgName("targeting")->Arg(1)->Arg(0);

// (d) The whole synthetic fleet, round-robin.
const std::vector<HostInfo>& Fleet() {
  static const std::vector<HostInfo>* fleet = [] {
    auto* f = new std::vector<HostInfo>;
    f->reserve(kFleetHosts);
    for (uint64_t i = 0; i < kFleetHosts; ++i) f->push_back(MakeHost(i));
    return f;
  }();
  return *fleet;
}

// One world per stage, warmed up by one pass over the fleet (so paced-stage
// hosts are already in the rollout's host table and the exposure budget is
// used up, as in steady state).
World& FleetWorld(int stage, bool targeting) {
  static auto* worlds =
      new std::map<std::pair<int, bool>, std::unique_ptr<World>>;
  auto& w = (*worlds)[{stage, targeting}];
  if (w == nullptr) {
    w = MakeWorld(stage, targeting);
    for (const HostInfo& h : Fleet()) {
      benchmark::DoNotOptimize(w->controller->Assign(h, kContentType));
    }
  }
  return *w;
}

// Args: the current stage (0 dogfood, 2 1pct, 3 fleet with pacing; 5 =
// completed) and `targeting` (see MakeRelease). The label gives the mix of
// answers; `locked_pct` is the share of lookups that took a host-table shard
// lock (kExposed, kWaitingForPacing).
void BM_AssignFleetMix(benchmark::State& state) {
  const auto& fleet = Fleet();
  World& w = FleetWorld(static_cast<int>(state.range(0)), state.range(1) != 0);
  Controller& c = *w.controller;
  std::array<uint64_t, 16> reasons{};
  size_t i = 0;
  for (auto _ : state) {
    Assignment a = c.Assign(fleet[i], kContentType);
    benchmark::DoNotOptimize(a);
    ++reasons[static_cast<size_t>(a.reason) & 15];
    if (++i == fleet.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  const double n =
      static_cast<double>(std::max<int64_t>(1, state.iterations()));
  std::string label;
  for (size_t r = 0; r < reasons.size(); ++r) {
    if (reasons[r] == 0) continue;
    absl::StrAppendFormat(&label, "%s%s=%.1f%%", label.empty() ? "" : " ",
                          AssignReasonName(static_cast<AssignReason>(r)),
                          100.0 * static_cast<double>(reasons[r]) / n);
  }
  state.SetLabel(label);
  state.counters["locked_pct"] =
      100.0 *
      static_cast<double>(
          reasons[static_cast<size_t>(AssignReason::kExposed)] +
          reasons[static_cast<size_t>(AssignReason::kWaitingForPacing)]) /
      n;
}
BENCHMARK(BM_AssignFleetMix)
    ->ArgNames({"stage", "targeting"})
    ->Args({0, 1})
    ->Args({2, 1})
    ->Args({3, 1})
    ->Args({5, 1})
    ->Args({0, 0})
    ->Args({3, 0});

std::vector<HostInfo> PoolHosts() {
  std::vector<HostInfo> hosts;
  for (uint64_t i = 0; i < kScenarioPool; ++i) hosts.push_back(MakeHost(i));
  return hosts;
}

// AudienceIndex::Place alone, over the fleet's host mix (tracks precomputed).
void BM_AssignPlace(benchmark::State& state) {
  const auto index = AudienceIndex::Build(BenchPlan(), "cf291-next-rollout");
  const TenantTracks tracks(MakeFleetConfig());
  const auto hosts = PoolHosts();
  std::vector<Track> track(hosts.size());
  for (size_t i = 0; i < hosts.size(); ++i) {
    track[i] = tracks.TrackOf(hosts[i].tenant);
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(index->Place(hosts[i], track[i]));
    if (++i == hosts.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AssignPlace);

// hash.h BucketOf (MurmurHash64A of a 32-byte host id + mod).
void BM_BucketOf(benchmark::State& state) {
  const uint64_t seed = SaltSeed("cf291-next-rollout");
  std::vector<std::string> ids;
  for (uint64_t i = 0; i < kScenarioPool; ++i) ids.push_back(HostId(i));
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(BucketOf(seed, ids[i]));
    if (++i == ids.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BucketOf);

// ---- Telemetry ingest -----------------------------------------------------

// Pre-built heartbeat batches for uniformly random hosts among `hosts`. The
// heartbeats carry the baseline release (hosts still on N-1: the common
// case), so each is a table lookup and a last_seen update.
struct EventPool {
  std::vector<std::vector<TelemetryEvent>> batches;
  std::vector<std::vector<uint64_t>> keys;
};

const EventPool& Events(int64_t hosts) {
  static auto* pools = new std::map<int64_t, std::unique_ptr<EventPool>>;
  auto& p = (*pools)[hosts];
  if (p == nullptr) {
    p = std::make_unique<EventPool>();
    std::mt19937_64 rng(static_cast<uint64_t>(hosts));
    std::uniform_int_distribution<uint64_t> pick(
        0, static_cast<uint64_t>(hosts) - 1);
    for (int b = 0; b < kBatchesPerPool; ++b) {
      std::vector<TelemetryEvent> events(kBatchEvents);
      std::vector<uint64_t> keys(kBatchEvents);
      for (int e = 0; e < kBatchEvents; ++e) {
        events[e].host_id = HostId(pick(rng));
        events[e].type = EventType::kHeartbeat;
        events[e].release_id = kBaselineRelease;
        keys[e] = HostKey(events[e].host_id);
      }
      p->batches.push_back(std::move(events));
      p->keys.push_back(std::move(keys));
    }
  }
  return *p;
}

struct IngestFixture {
  FakeClock clock;
  std::unique_ptr<RolloutTracker> tracker;
};

// A tracker holding `hosts` hosts (each inserted by one heartbeat), with
// TrackerOptions.expected_hosts = hosts if `reserved`, else 0 (grown). Built
// once per (hosts, reserved) and shared by BM_Ingest* and BM_IngestKeyed*.
IngestFixture& Tracker(int64_t hosts, bool reserved) {
  static auto* fixtures =
      new std::map<std::pair<int64_t, bool>, std::unique_ptr<IngestFixture>>;
  auto& f = (*fixtures)[{hosts, reserved}];
  if (f == nullptr) {
    const absl::Time start = absl::Now();
    f = std::make_unique<IngestFixture>();
    TrackerOptions o;
    o.num_stages = BenchPlan().stages_size() + 1;
    o.signals = BuiltinSignals();
    o.expected_hosts = reserved ? static_cast<uint64_t>(hosts) : 0;
    o.release_id = kNewRelease;
    f->tracker = std::make_unique<RolloutTracker>(o, &f->clock);
    constexpr int kChunk = 100000;
    std::vector<TelemetryEvent> events(kChunk);
    for (auto& e : events) {
      e.type = EventType::kHeartbeat;
      e.release_id = kBaselineRelease;
    }
    std::vector<uint64_t> keys(kChunk);
    char id[32];
    for (int64_t base = 0; base < hosts; base += kChunk) {
      const int n = static_cast<int>(std::min<int64_t>(kChunk, hosts - base));
      for (int i = 0; i < n; ++i) {
        WriteHostId(static_cast<uint64_t>(base + i), id);
        keys[i] = HostKey(absl::string_view(id, sizeof(id)));
      }
      f->tracker->IngestKeyed(absl::MakeConstSpan(events.data(), n),
                              absl::MakeConstSpan(keys.data(), n));
    }
    CheckThat(f->tracker->TrackedHosts() == static_cast<uint64_t>(hosts),
              "tracked hosts after setup");
    std::fprintf(stderr,
                 "ringfence_bench: tracker setup: %lld hosts (%s) inserted in "
                 "%.2f s\n",
                 static_cast<long long>(hosts), reserved ? "reserved" : "grown",
                 absl::ToDoubleSeconds(absl::Now() - start));
  }
  return *f;
}

void IngestCounters(benchmark::State& state, const RolloutTracker& t) {
  state.SetItemsProcessed(state.iterations() * kBatchEvents);
  const uint64_t tracked = t.TrackedHosts();
  state.counters["bytes_per_host"] =
      static_cast<double>(t.MemoryBytes()) / static_cast<double>(tracked);
  state.counters["hosts"] = static_cast<double>(tracked);
}

// Arg: tracked hosts. Each iteration ingests one batch of 10,000 heartbeats;
// the fake clock advances 1 s per batch so last_seen is really written.
// `hot`: every iteration ingests the same batch (10,000 hosts whose slots
// stay cached): the compute-bound floor, for diagnosis only.
void RunIngest(benchmark::State& state, bool reserved, bool keyed,
               bool hot = false) {
  const int64_t hosts = state.range(0);
  const EventPool& pool = Events(hosts);
  IngestFixture& f = Tracker(hosts, reserved);
  RolloutTracker& t = *f.tracker;
  size_t b = 0;
  for (auto _ : state) {
    f.clock.Advance(absl::Seconds(1));
    if (keyed) {
      t.IngestKeyed(pool.batches[b], pool.keys[b]);
    } else {
      t.Ingest(pool.batches[b]);
    }
    if (!hot && ++b == pool.batches.size()) b = 0;
  }
  IngestCounters(state, t);
}

// Host id strings hashed by the tracker (HostKey per event).
void BM_IngestReserved(benchmark::State& state) {
  RunIngest(state, /*reserved=*/true, /*keyed=*/false);
}
void BM_IngestGrown(benchmark::State& state) {
  RunIngest(state, /*reserved=*/false, /*keyed=*/false);
}
// Pre-hashed host keys.
void BM_IngestKeyedReserved(benchmark::State& state) {
  RunIngest(state, /*reserved=*/true, /*keyed=*/true);
}
void BM_IngestKeyedGrown(benchmark::State& state) {
  RunIngest(state, /*reserved=*/false, /*keyed=*/true);
}
BENCHMARK(BM_IngestReserved)->Arg(1000000)->Arg(10000000);
BENCHMARK(BM_IngestGrown)->Arg(1000000)->Arg(10000000);
BENCHMARK(BM_IngestKeyedReserved)->Arg(1000000)->Arg(10000000);
BENCHMARK(BM_IngestKeyedGrown)->Arg(1000000)->Arg(10000000);
// Diagnostic: the same 10,000 hosts in every batch (cache-resident slots).
void BM_IngestKeyedHotSet(benchmark::State& state) {
  RunIngest(state, /*reserved=*/true, /*keyed=*/true, /*hot=*/true);
}
BENCHMARK(BM_IngestKeyedHotSet)->Arg(1000000);

// What Controller::Ingest adds before the tracker sees a batch: validation
// of the same 10,000-heartbeat batches.
void BM_ValidateTelemetryBatch(benchmark::State& state) {
  const EventPool& pool = Events(1000000);
  size_t b = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(ValidateTelemetryBatch(pool.batches[b]));
    if (++b == pool.batches.size()) b = 0;
  }
  state.SetItemsProcessed(state.iterations() * kBatchEvents);
}
BENCHMARK(BM_ValidateTelemetryBatch);

// Controller with one active rollout (stage 0) and `hosts` hosts (each
// checked in once, which admits it to the rollout's population, and sent one
// heartbeat). One per (hosts, user): BM_IngestController moves its
// clock, which must not make BM_GateEvaluateController's hosts silent.
enum class WorldUser { kIngest, kEvaluate };
World& IngestWorld(int64_t hosts, WorldUser user) {
  static auto* worlds =
      new std::map<std::pair<int64_t, WorldUser>, std::unique_ptr<World>>;
  auto& w = (*worlds)[{hosts, user}];
  if (w == nullptr) {
    w = MakeWorld(0, /*targeting=*/false);  // every host is of it
    for (int64_t i = 0; i < hosts; ++i) {
      benchmark::DoNotOptimize(w->controller->Assign(
          MakeHost(static_cast<uint64_t>(i)), kContentType));
    }
    std::vector<TelemetryEvent> events(kBatchEvents);
    for (int64_t base = 0; base < hosts; base += kBatchEvents) {
      const int n =
          static_cast<int>(std::min<int64_t>(kBatchEvents, hosts - base));
      for (int i = 0; i < n; ++i) {
        events[i].host_id = HostId(static_cast<uint64_t>(base + i));
        events[i].type = EventType::kHeartbeat;
        events[i].release_id = kBaselineRelease;
      }
      Check(w->controller->Ingest(absl::MakeConstSpan(events.data(), n)),
            "Controller::Ingest");
    }
    auto st = w->controller->GetRollout(w->rollout_id);
    Check(st.status(), "GetRollout");
    CheckThat(st->telemetry.tracked_hosts == static_cast<uint64_t>(hosts),
              "tracked hosts");
  }
  return *w;
}

// The vendor's in-process entry point: Controller::Ingest = validation + the
// tracker's Ingest (one active rollout), same batches as BM_IngestGrown.
void BM_IngestController(benchmark::State& state) {
  const int64_t hosts = state.range(0);
  const EventPool& pool = Events(hosts);
  World& w = IngestWorld(hosts, WorldUser::kIngest);
  size_t b = 0;
  for (auto _ : state) {
    w.clock.Advance(absl::Seconds(1));
    benchmark::DoNotOptimize(w.controller->Ingest(pool.batches[b]));
    if (++b == pool.batches.size()) b = 0;
  }
  state.SetItemsProcessed(state.iterations() * kBatchEvents);
  state.counters["hosts"] = static_cast<double>(hosts);
}
BENCHMARK(BM_IngestController)->Arg(1000000);

// ---- Gate -----------------------------------------------------------------

// A tracker for the 4-stage plan in stage 3 ("fleet"): 100,000 hosts, of
// which 20 / 500 / 1,000 / 2,000 were exposed in stages 0-3 and applied the
// release; a few crashes in treatment and control, below every rule.
// Two hours have passed; telemetry is fresh.
struct GateFixture {
  FakeClock clock;
  std::unique_ptr<RolloutTracker> tracker;
  TrackerSnapshot snapshot;
  // Kept per rollout, as the controller does.
  std::vector<GatePolicy> policies;
  GateInput input;
};

const GateFixture& Gate() {
  static GateFixture* g = [] {
    auto* g = new GateFixture;
    const Plan& plan = BenchPlan();
    TrackerOptions o;
    o.num_stages = plan.stages_size() + 1;
    o.signals = BuiltinSignals();
    o.release_id = kNewRelease;
    g->tracker = std::make_unique<RolloutTracker>(o, &g->clock);
    RolloutTracker& t = *g->tracker;
    // The fixture compresses two hours of steady telemetry into a few
    // batches; the 30-minute jumps between them are not outages, so they
    // must not restart the silence clock (which would hold for freshness).
    t.SetMaxStaleness(absl::Hours(3));
    const absl::Time start = g->clock.Now();
    constexpr int kHosts = 100000;
    std::vector<uint64_t> keys(kHosts);
    for (int i = 0; i < kHosts; ++i) keys[i] = HostKey(HostId(i));
    auto ingest = [&](EventType type, const std::string& release, int begin,
                      int end) {
      std::vector<TelemetryEvent> events(end - begin);
      for (auto& e : events) {
        e.type = type;
        e.release_id = release;
      }
      t.IngestKeyed(events,
                    absl::MakeConstSpan(keys.data() + begin,
                                        static_cast<size_t>(end - begin)));
    };
    ingest(EventType::kHeartbeat, kBaselineRelease, 0, kHosts);
    const int cohort[] = {20, 500, 1000, 2000};
    int next = 0;
    for (int st = 0; st < plan.stages_size(); ++st) {
      const GatePolicy policy = EffectivePolicy(plan, st);
      t.SetRules(std::vector<SignalRule>(policy.signals().begin(),
                                         policy.signals().end()),
                 policy.alpha());
      t.SetCurrentStage(st);
      // Hosts reporting `applying` for the release join the current cohort.
      ingest(EventType::kApplying, kNewRelease, next, next + cohort[st]);
      next += cohort[st];
      CheckThat(t.CohortExposed(st) == static_cast<uint64_t>(cohort[st]),
                absl::StrCat("cohort ", st, " exposed"));
      g->clock.Advance(absl::Minutes(30));
    }
    ingest(EventType::kApplied, kNewRelease, 0, next);
    g->clock.Set(start + absl::Hours(2));
    ingest(EventType::kHeartbeat, kNewRelease, 0, next);
    ingest(EventType::kHeartbeat, kBaselineRelease, next, kHosts);
    // Crashes at the same rate in both arms (~0.03 %): one 1pct host and 30
    // control hosts, below every breaker and far from the control test's
    // threshold.
    ingest(EventType::kCrash, "", 700, 701);
    for (int i = 0; i < 30; ++i) {
      ingest(EventType::kCrash, "", 50000 + i * 100, 50000 + i * 100 + 1);
    }
    g->snapshot = t.Snapshot();
    g->input.plan = &plan;
    g->input.stage = 3;
    g->input.state = config::v1::RUNNING;
    g->input.stage_started_at = g->clock.Now() - absl::Minutes(100);
    g->input.now = g->clock.Now();
    g->input.telemetry = &g->snapshot;
    g->policies = EffectivePolicies(plan);
    g->input.policies = &g->policies;
    return g;
  }();
  return *g;
}

void RunGate(benchmark::State& state, const GateInput& in, Verdict want) {
  const Decision check = EvaluateGate(in);
  CheckThat(check.verdict() == want,
            absl::StrCat("gate verdict ", VerdictName(check.verdict()), ": ",
                         check.summary()));
  for (auto _ : state) {
    Decision d = EvaluateGate(in);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::string(VerdictName(want)));
}

// Every rule checked, all pass: PROMOTE (the longest non-halting path).
void BM_GateEvaluate(benchmark::State& state) {
  RunGate(state, Gate().input, config::v1::PROMOTE);
}
BENCHMARK(BM_GateEvaluate)->Unit(benchmark::kMicrosecond);

// The dogfood cohort's crash breaker trips (3 affected): HALT with evidence.
void BM_GateEvaluateHalt(benchmark::State& state) {
  TrackerSnapshot snap = Gate().snapshot;
  const int crash = Gate().tracker->SignalIndex(kSignalCrash);
  snap.cohorts[0].affected[crash] = 3;
  GateInput in = Gate().input;
  in.telemetry = &snap;
  RunGate(state, in, config::v1::HALT);
}
BENCHMARK(BM_GateEvaluateHalt)->Unit(benchmark::kMicrosecond);

// Controller::Evaluate of a RUNNING rollout (stage 0, baking) with
// `range(0)` tracked hosts: a Snapshot, EvaluateGate, the budget update.
// The silence/apply-stuck Sweep runs at most every silence_timeout / 60 and
// the fake clock does not move, so timed calls do not sweep (BM_TrackerSweep
// times the sweep). Steady state: the verdict (HOLD, bake_time) does not
// change, so no store write happens after setup.
void BM_GateEvaluateController(benchmark::State& state) {
  const int64_t hosts = state.range(0);
  World& w = IngestWorld(hosts, WorldUser::kEvaluate);
  {
    auto d = w.controller->Evaluate(w.rollout_id);
    Check(d.status(), "Evaluate");
    CheckThat(d->verdict() == config::v1::HOLD,
              absl::StrCat("steady HOLD: ", d->summary()));
  }
  for (auto _ : state) {
    auto d = w.controller->Evaluate(w.rollout_id);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["hosts"] = static_cast<double>(hosts);
}
BENCHMARK(BM_GateEvaluateController)
    ->Arg(100000)
    ->Arg(1000000)
    ->Unit(benchmark::kMicrosecond);

// RolloutTracker::Sweep over every slot of the reserved ingest tracker with
// `range(0)` hosts, with timeouts no host has reached: the full scan that
// Controller::Evaluate runs at most every silence_timeout / 60, each shard
// under its lock.
void BM_TrackerSweep(benchmark::State& state) {
  IngestFixture& f = Tracker(state.range(0), /*reserved=*/true);
  const absl::Duration never = absl::Hours(24 * 365);
  for (auto _ : state) {
    const uint64_t affected = f.tracker->Sweep(never, never);
    CheckThat(affected == 0, "no host reaches a one-year timeout");
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.counters["hosts"] = static_cast<double>(state.range(0));
}
BENCHMARK(BM_TrackerSweep)
    ->Arg(1000000)
    ->Arg(10000000)
    ->Unit(benchmark::kMillisecond);

// ---- Stats ----------------------------------------------------------------

// ConditionalMixtureTest::Observe with the default 20-point grid (margin 0.2,
// alpha 0.01 / 3 as the tracker sets it for 3 compared signals), on affected
// hosts drawn under H0: treatment arm 5..5,000 hosts, 100,000 in all.
void BM_StatsObserve(benchmark::State& state) {
  struct Trial {
    bool treatment;
    double n_t, n_c;
  };
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<Trial> trials(4096);
  for (size_t i = 0; i < trials.size(); ++i) {
    const double n_t = 5.0 + 4995.0 * static_cast<double>(i) /
                                 static_cast<double>(trials.size());
    const double n_c = 100000.0 - n_t;
    trials[i] = {u(rng) < n_t / (n_t + n_c), n_t, n_c};
  }
  MixtureTestOptions o;
  o.margin = 0.2;
  o.alpha = 0.01 / 3;
  ConditionalMixtureTest test(o);
  size_t i = 0;
  for (auto _ : state) {
    const Trial& t = trials[i];
    test.Observe(t.treatment, t.n_t, t.n_c);
    if (++i == trials.size()) i = 0;
  }
  benchmark::DoNotOptimize(test.log_e_value());
  state.SetItemsProcessed(state.iterations());
  state.counters["grid"] =
      static_cast<double>(test.options().relative_risks.size());
}
BENCHMARK(BM_StatsObserve);

}  // namespace
}  // namespace ringfence

int main(int argc, char** argv) { return ringfence::RunBenchmarks(argc, argv); }
