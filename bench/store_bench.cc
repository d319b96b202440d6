// Store benchmarks (SQLite, the embedded default): decision commit latency,
// exposure writes per second, checkpoint cost. Files live in $TMPDIR (or
// /tmp); every commit is fsync'd (WAL, synchronous=FULL), so the numbers
// depend on the disk.
//
// BM_Postgres*: the same transitions and exposure writes on PostgreSQL, on
// the server named by $RINGFENCE_BENCH_POSTGRES_DSN (a libpq connection
// string; scripts/pg-test-server.sh starts a local one), each in a fresh
// schema dropped afterwards. Without the variable they report an error.
// BM_PostgresFollowerRefresh: one poll of a follower replica (follower.h)
// over a running rollout with N exposed hosts, each with a checkpointed
// evidence record.
#include <benchmark/benchmark.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/follower.h"
#include "ringfence/hash.h"
#include "ringfence/postgres_store.h"
#include "ringfence/sqlite_store.h"
#include "ringfence/telemetry.h"

namespace ringfence {
namespace {

namespace fs = std::filesystem;

std::string FreshDir(const std::string& name) {
  const char* tmp = std::getenv("TMPDIR");
  const fs::path dir = fs::path(tmp != nullptr ? tmp : "/tmp") /
                       absl::StrCat("ringfence_store_bench_", name);
  fs::remove_all(dir);
  return dir.string();
}

StorePtr OpenOrDie(const std::string& dir) {
  SqliteStoreOptions o;
  o.data_dir = dir;
  auto s = OpenSqliteStore(o);
  if (!s.ok()) std::abort();
  return std::move(*s);
}

// A HALT: the rollout record, its audit entry (hash-chained) and the
// decision, in one durable transaction.
void CommitTransitions(benchmark::State& state, Store* store) {
  Rollout r;
  r.set_id("channel-file/291@1");
  r.set_release_id("rel");
  r.set_content_type("channel-file/291");
  r.set_state(config::v1::RUNNING);
  r.set_version(1);
  AuditEntry audit;
  audit.set_actor("gate");
  audit.set_action("halt");
  audit.set_reason("3 of 5 hosts exposed in stage canary showed \"silent\"");
  audit.set_rollout_id(r.id());
  if (!store->CreateRollout(r, audit).ok()) std::abort();
  Decision d;
  d.set_rollout_id(r.id());
  d.set_verdict(config::v1::HALT);
  d.set_summary(audit.reason());
  for (int i = 0; i < 4; ++i) d.add_signals()->set_signal("crash");
  uint64_t version = 1;
  for (auto _ : state) {
    r.set_version(version + 1);
    d.set_seq(version);
    if (!store->CommitTransition(r, version, audit, &d).ok()) std::abort();
    ++version;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_SqliteCommitTransition(benchmark::State& state) {
  const std::string dir = FreshDir("commit");
  StorePtr store = OpenOrDie(dir);
  CommitTransitions(state, store.get());
  store.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_SqliteCommitTransition)->Unit(benchmark::kMicrosecond);

// Exposure writes per second, by batch size (one transaction per batch).
void RecordExposures(benchmark::State& state, Store* store) {
  const int batch = static_cast<int>(state.range(0));
  std::vector<Exposure> exposures(batch);
  uint64_t next = 0;
  for (auto _ : state) {
    for (Exposure& e : exposures) {
      e.host_id = absl::StrCat("host-", next++);
      e.at = absl::FromUnixSeconds(1700000000);
    }
    if (!store->RecordExposures("ro-1", exposures).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

void BM_SqliteRecordExposures(benchmark::State& state) {
  const std::string dir = FreshDir("exposures");
  StorePtr store = OpenOrDie(dir);
  RecordExposures(state, store.get());
  store.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_SqliteRecordExposures)
    ->Arg(1)
    ->Arg(100)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond);

// Single-host grants from many threads at once (concurrent GetAssignment
// calls): group commit puts many grants in one fsync.
void BM_SqliteGrantConcurrent(benchmark::State& state) {
  static StorePtr* store = nullptr;
  static std::string* dir = nullptr;
  if (state.thread_index() == 0) {
    dir = new std::string(FreshDir("grants"));
    store = new StorePtr(OpenOrDie(*dir));
  }
  uint64_t next = static_cast<uint64_t>(state.thread_index()) << 40;
  std::vector<Exposure> one(1);
  for (auto _ : state) {
    one[0].host_id = absl::StrCat("host-", next++);
    one[0].at = absl::FromUnixSeconds(1700000000);
    if (!(*store)->RecordExposures("ro-1", one).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    store->reset();
    fs::remove_all(*dir);
    delete store;
    delete dir;
  }
}
BENCHMARK(BM_SqliteGrantConcurrent)
    ->Threads(1)
    ->Threads(16)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Holding a 10M-host rollout: writes 10M exposures in batches of 50,000,
// then reads them back (what a restart does). One iteration.
void BM_SqliteExposures10M(benchmark::State& state) {
  const std::string dir = FreshDir("exposures10m");
  StorePtr store = OpenOrDie(dir);
  constexpr int kHosts = 10000000, kBatch = 50000;
  std::vector<Exposure> exposures(kBatch);
  double read_seconds = 0;
  for (auto _ : state) {
    for (int b = 0; b < kHosts / kBatch; ++b) {
      for (int i = 0; i < kBatch; ++i) {
        exposures[i].host_id = absl::StrCat("host-", b * kBatch + i);
        exposures[i].stage = 3;
        exposures[i].at = absl::FromUnixSeconds(1700000000);
      }
      if (!store->RecordExposures("ro-1", exposures).ok()) std::abort();
    }
    const absl::Time t0 = absl::Now();
    auto all = store->ListExposures("ro-1");
    if (!all.ok() || all->size() != static_cast<size_t>(kHosts)) std::abort();
    read_seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  }
  state.SetItemsProcessed(state.iterations() * kHosts);
  state.counters["read_back_s"] = read_seconds;
  state.counters["db_bytes_per_host"] =
      static_cast<double>(fs::file_size(SqliteStorePath(dir))) / kHosts;
  store.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_SqliteExposures10M)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

// A telemetry checkpoint (sequential tests' evidence + per-cohort counts) of
// a rollout tracking N hosts: serialize and commit.
void BM_SqliteCheckpoint(benchmark::State& state) {
  const std::string dir = FreshDir("checkpoint");
  StorePtr store = OpenOrDie(dir);
  FakeClock clock;
  TrackerOptions o;
  o.num_stages = 5;
  o.release_id = "rel-2";
  o.expected_hosts = static_cast<uint64_t>(state.range(0));
  RolloutTracker tracker(o, &clock);
  std::vector<SignalRule> rules(3);
  rules[0].set_signal("crash");
  rules[1].set_signal("silent");
  rules[2].set_signal("unclean_reboot");
  for (auto& r : rules) r.set_compare_with_control(true);
  tracker.SetRules(rules, 0.01);
  {
    std::vector<TelemetryEvent> batch(1);
    std::vector<uint64_t> keys(1);
    const int64_t n = state.range(0);
    std::vector<TelemetryEvent> events(std::min<int64_t>(n, 100000));
    std::vector<uint64_t> event_keys(events.size());
    for (int64_t base = 0; base < n; base += events.size()) {
      const size_t m = std::min<int64_t>(events.size(), n - base);
      for (size_t i = 0; i < m; ++i) {
        events[i].type =
            (base + i) % 100 == 0 ? EventType::kCrash : EventType::kHeartbeat;
        event_keys[i] =
            (static_cast<uint64_t>(base + i) + 1) * 0x9e3779b97f4a7c15ULL;
      }
      tracker.IngestKeyed(absl::MakeConstSpan(events.data(), m),
                          absl::MakeConstSpan(event_keys.data(), m));
    }
  }
  // The first checkpoint writes the evidence record of every affected host
  // (1 % of them crashed); untimed. The timed ones are the steady state:
  // aggregates plus the records of hosts that changed since (none here).
  std::vector<HostEvidence> evidence;
  const std::string first = tracker.Checkpoint(&evidence).SerializeAsString();
  if (!store->PutCheckpoint("ro-1", first, evidence).ok()) std::abort();
  state.counters["initial_records"] = static_cast<double>(evidence.size());
  size_t bytes = 0;
  for (auto _ : state) {
    evidence.clear();
    const std::string cp = tracker.Checkpoint(&evidence).SerializeAsString();
    bytes = cp.size();
    if (!store->PutCheckpoint("ro-1", cp, evidence).ok()) std::abort();
  }
  state.counters["checkpoint_bytes"] = static_cast<double>(bytes);
  store.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_SqliteCheckpoint)
    ->Arg(1000000)
    ->Arg(10000000)
    ->Unit(benchmark::kMillisecond);

// The checkpoint after N hosts of the population checked in for the first
// time (TrackerOptions::control_by_check_in, what the Controller uses):
// each admitted host gets an evidence record, so that its telemetry after
// a restart counts before it checks in again. Timed: one checkpoint of N
// new records (serialize and commit); the admissions are untimed.
void BM_SqliteCheckpointNewAdmissions(benchmark::State& state) {
  const std::string dir = FreshDir("checkpoint_admissions");
  StorePtr store = OpenOrDie(dir);
  FakeClock clock;
  TrackerOptions o;
  o.num_stages = 5;
  o.release_id = "rel-2";
  o.control_by_check_in = true;
  RolloutTracker tracker(o, &clock);
  const int64_t n = state.range(0);
  uint64_t next = 1;
  size_t records = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int64_t i = 0; i < n; ++i) {
      tracker.Admit(next++ * 0x9e3779b97f4a7c15ULL);
    }
    std::vector<HostEvidence> evidence;
    state.ResumeTiming();
    const std::string cp = tracker.Checkpoint(&evidence).SerializeAsString();
    if (!store->PutCheckpoint("ro-1", cp, evidence).ok()) std::abort();
    records = evidence.size();
  }
  state.counters["records"] = static_cast<double>(records);
  state.SetItemsProcessed(state.iterations() * n);
  store.reset();
  fs::remove_all(dir);
}
BENCHMARK(BM_SqliteCheckpointNewAdmissions)
    ->Arg(1000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond);

// A PostgreSQL store in a fresh schema of the server named by
// $RINGFENCE_BENCH_POSTGRES_DSN, dropped when this goes away.
class PostgresBenchStore {
 public:
  PostgresBenchStore(benchmark::State& state, const std::string& name) {
    const char* dsn = std::getenv("RINGFENCE_BENCH_POSTGRES_DSN");
    if (dsn == nullptr || *dsn == '\0') {
      state.SkipWithError(
          "set RINGFENCE_BENCH_POSTGRES_DSN to a PostgreSQL connection "
          "string");
      return;
    }
    dsn_ = dsn;
    PostgresStoreOptions o;
    o.dsn = dsn_;
    o.schema = absl::StrCat("bench_", name, "_", getpid());
    o.pool_size = 16;
    schema_ = o.schema;
    Sql(absl::StrCat("DROP SCHEMA IF EXISTS ", schema_, " CASCADE"));
    auto s = OpenPostgresStore(o);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.status().message()).c_str());
      return;
    }
    store_ = std::move(*s);
  }
  ~PostgresBenchStore() {
    if (store_ == nullptr) return;
    store_.reset();
    Sql(absl::StrCat("DROP SCHEMA IF EXISTS ", schema_, " CASCADE"));
  }
  Store* get() { return store_.get(); }

 private:
  void Sql(const std::string& sql) {
    PGconn* c = PQconnectdb(dsn_.c_str());
    if (PQstatus(c) == CONNECTION_OK) {
      PQsetNoticeProcessor(
          c, [](void*, const char*) {}, nullptr);
      PQclear(PQexec(c, sql.c_str()));
    }
    PQfinish(c);
  }
  std::string dsn_;
  std::string schema_;
  StorePtr store_;
};

void BM_PostgresCommitTransition(benchmark::State& state) {
  PostgresBenchStore store(state, "commit");
  if (store.get() == nullptr) return;
  CommitTransitions(state, store.get());
}
// Real time: the server's work happens in another process, so this
// process's CPU time says little.
BENCHMARK(BM_PostgresCommitTransition)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_PostgresRecordExposures(benchmark::State& state) {
  PostgresBenchStore store(state, "exposures");
  if (store.get() == nullptr) return;
  RecordExposures(state, store.get());
}
BENCHMARK(BM_PostgresRecordExposures)
    ->Arg(1)
    ->Arg(100)
    ->Arg(10000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Single-host grants from many threads at once: no group commit here, each
// grant is its own transaction on one of the pool's connections.
void BM_PostgresGrantConcurrent(benchmark::State& state) {
  static PostgresBenchStore* store = nullptr;
  if (state.thread_index() == 0) {
    store = new PostgresBenchStore(state, "grants");
  }
  uint64_t next = static_cast<uint64_t>(state.thread_index()) << 40;
  std::vector<Exposure> one(1);
  for (auto _ : state) {
    if (store->get() == nullptr) break;
    one[0].host_id = absl::StrCat("host-", next++);
    one[0].at = absl::FromUnixSeconds(1700000000);
    if (!store->get()->RecordExposures("ro-1", one).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    delete store;
    store = nullptr;
  }
}
BENCHMARK(BM_PostgresGrantConcurrent)
    ->Threads(1)
    ->Threads(16)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

void BM_PostgresFollowerRefresh(benchmark::State& state) {
  PostgresBenchStore store(state, "follower");
  if (store.get() == nullptr) return;
  auto must = [&state](const absl::Status& s, const char* what) {
    if (s.ok()) return true;
    state.SkipWithError(absl::StrCat(what, ": ", s.ToString()).c_str());
    return false;
  };
  FakeClock clock;
  auto controller = Controller::Create(store.get(), &clock, {});
  if (!must(controller.status(), "Controller::Create")) return;
  Release release;
  release.set_id("cf-1");
  release.set_content_type("channel-file/1");
  release.set_version("1");
  release.set_digest_sha256(std::string(64, 'a'));
  release.set_size_bytes(1);
  if (!must((*controller)->CreateRelease(release, "bench"), "CreateRelease")) {
    return;
  }
  StartRolloutRequest req;
  req.rollout_id = "ro-1";
  req.release_id = "cf-1";
  if (!must(LoadMessageFile(RINGFENCE_SOURCE_DIR
                            "/examples/plans/default.textproto",
                            &req.plan),
            "plan")) {
    return;
  }
  req.allow_no_baseline = true;
  req.actor = "bench";
  req.reason = "bench";
  if (!must((*controller)->StartRollout(req).status(), "StartRollout")) return;
  const int hosts = static_cast<int>(state.range(0));
  std::vector<Exposure> exposures(hosts);
  std::vector<HostEvidence> evidence(hosts);
  for (int i = 0; i < hosts; ++i) {
    exposures[i].host_id = absl::StrCat("host-", i);
    exposures[i].at = clock.Now();
    evidence[i].host_key = HostKey(exposures[i].host_id);
    evidence[i].exposed = true;
    evidence[i].exposed_at = clock.Now();
    evidence[i].flags = 4;  // up
  }
  if (!must(store.get()->RecordExposures("ro-1", exposures), "exposures") ||
      !must(store.get()->PutCheckpoint("ro-1", "", evidence), "evidence")) {
    return;
  }
  auto follower = Follower::Create(store.get(), &clock, FollowerOptions());
  if (!must(follower.status(), "Follower::Create")) return;
  for (auto _ : state) {
    if (!must((*follower)->Refresh(), "Refresh")) break;
  }
  state.SetItemsProcessed(state.iterations() * hosts);
}
BENCHMARK(BM_PostgresFollowerRefresh)
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace ringfence
