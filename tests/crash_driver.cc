// ringfence_crash_driver: runs two rollouts (a good release, then a
// boot-looping one) on a SQLite store, resuming from whatever the store holds,
// so a test can SIGKILL it at random instants and restart it. Prints one line
// per committed change it observes ("COMMITTED <rollout> <version> <state>"),
// flushed before going on, and "DONE" when both rollouts have finished.
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ringfence/controller.h"
#include "ringfence/fake_fleet.h"
#include "ringfence/sqlite_store.h"

ABSL_FLAG(std::string, data_dir, "", "store directory");
ABSL_FLAG(uint64_t, seed, 1, "fleet seed");
ABSL_FLAG(int, hosts, 300, "emulated hosts");

namespace {

using namespace ringfence;  // NOLINT: a small driver

constexpr char kType[] = "channel-file/291";
constexpr char kPlan[] = R"pb(
  policy {
    silence_timeout { seconds: 300 }
    apply_timeout { seconds: 300 }
    min_exposed_hosts: 3
  }
  stages {
    name: "canary"
    audience { labels: "ring:dogfood" }
    bake_time { seconds: 600 }
    policy {
      silence_timeout { seconds: 300 }
      apply_timeout { seconds: 300 }
      min_exposed_hosts: 3
      signals {
        signal: "silent"
        max_affected_hosts: 3
        compare_with_control: true
      }
      signals { signal: "apply_stuck" max_affected_hosts: 3 }
      signals {
        signal: "crash"
        max_affected_hosts: 3
        compare_with_control: true
      }
    }
  }
  stages {
    name: "half"
    audience { percent: 50 }
    bake_time { seconds: 900 }
  }
  stages {
    name: "all"
    audience { percent: 100 }
    bake_time { seconds: 900 }
  }
)pb";

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "crash_driver: %s\n", s.ToString().c_str());
  return 1;
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  SqliteStoreOptions so;
  so.data_dir = dir;
  auto store = OpenSqliteStore(so);
  if (!store.ok()) return Fail(store.status());

  // Simulated time survives restarts through a small file (not part of the
  // store: losing its last write only replays a few seconds).
  const std::string clock_file = dir + "/sim_clock";
  int64_t start = 1700000000;
  {
    std::ifstream in(clock_file);
    std::string line;
    if (std::getline(in, line)) {
      int64_t t;
      if (absl::SimpleAtoi(line, &t) && t > start) start = t;
    }
  }
  FakeClock clock(absl::FromUnixSeconds(start + 10));
  auto controller = Controller::Create(store->get(), &clock, {});
  if (!controller.ok()) return Fail(controller.status());
  Controller& c = **controller;

  for (const char* id : {"good", "bad"}) {
    Release r;
    r.set_id(id);
    r.set_content_type(kType);
    r.set_digest_sha256(std::string(64, id[0] == 'g' ? 'a' : 'b'));
    r.set_size_bytes(100);
    absl::Status s = c.CreateRelease(r, "driver");
    if (!s.ok() && !absl::IsAlreadyExists(s)) return Fail(s);
  }
  Plan plan;
  if (absl::Status s = ParseTextOrJson(kPlan, &plan); !s.ok()) return Fail(s);

  FakeFleetOptions fo;
  fo.hosts = absl::GetFlag(FLAGS_hosts);
  fo.content_type = kType;
  fo.dogfood_hosts = 20;
  fo.seed = absl::GetFlag(FLAGS_seed) + static_cast<uint64_t>(start);
  FakeFleet fleet(&c, &clock, fo);
  fleet.SetBehavior("bad", {.boot_loop = true});

  absl::flat_hash_map<std::string, uint64_t> seen_version;
  auto report = [&]() -> absl::Status {
    auto rollouts = c.ListRollouts();
    if (!rollouts.ok()) return rollouts.status();
    for (const Rollout& r : *rollouts) {
      uint64_t& v = seen_version[r.id()];
      if (r.version() != v) {
        v = r.version();
        std::printf("COMMITTED %s %llu %s %u\n", r.id().c_str(),
                    static_cast<unsigned long long>(r.version()),
                    std::string(RolloutStateName(r.state())).c_str(),
                    r.stage());
        std::fflush(stdout);
      }
    }
    return absl::OkStatus();
  };

  for (const char* release : {"good", "bad"}) {
    const std::string id = absl::StrCat(release, "-rollout");
    if (!c.GetRollout(id).ok()) {
      StartRolloutRequest req;
      req.rollout_id = id;
      req.release_id = release;
      req.plan = plan;
      req.allow_no_baseline = true;
      req.actor = "driver";
      req.reason = "crash test";
      auto started = c.StartRollout(req);
      if (!started.ok()) return Fail(started.status());
    }
    if (absl::Status s = report(); !s.ok()) return Fail(s);
    for (int step = 0; step < 24 * 360; ++step) {
      auto st = c.GetRollout(id);
      if (!st.ok()) return Fail(st.status());
      if (IsTerminal(st->rollout.state())) break;
      if (absl::Status s = fleet.Step(absl::Seconds(10)); !s.ok()) {
        return Fail(s);
      }
      if (absl::Status s = report(); !s.ok()) return Fail(s);
      std::ofstream(clock_file, std::ios::trunc)
          << absl::ToUnixSeconds(clock.Now()) << "\n";
    }
  }
  std::printf("DONE\n");
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
