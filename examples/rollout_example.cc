// ringfence_example: runs two rollouts in-process against an emulated fleet
// with a fake clock and prints every gate decision.
//
//   1. a good release, which goes through every stage and completes;
//   2. a boot-looping release (hosts die while loading it and never report
//      again, as on 2024-07-19), which the gate halts in its first stage.
//
// Exits non-zero if either outcome differs, so ctest runs it as a check.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/fake_fleet.h"
#include "ringfence/gate.h"
#include "ringfence/model.h"
#include "ringfence/store.h"

ABSL_FLAG(int, hosts, 20000, "hosts in the emulated fleet");
ABSL_FLAG(std::string, plan,
          RINGFENCE_SOURCE_DIR "/examples/plans/default.textproto",
          "plan file (text-proto or JSON)");
ABSL_FLAG(bool, quiet, false, "print only the outcome of each rollout");
ABSL_FLAG(uint64_t, seed, 1, "random seed of the emulated fleet");

namespace {

using ringfence::Controller;
using ringfence::FakeClock;
using ringfence::FakeFleet;
using ringfence::Plan;
using ringfence::Release;

constexpr char kContentType[] = "channel-file/291";

Release MakeRelease(const std::string& id, char digest_char) {
  Release r;
  r.set_id(id);
  r.set_content_type(kContentType);
  r.set_version(id);
  r.set_digest_sha256(std::string(64, digest_char));
  r.set_size_bytes(40000);
  r.set_fetch_url("https://updates.example/" + id);
  return r;
}

struct Outcome {
  ringfence::RolloutState state;
  int stage;
  std::string stage_name;
  int exposed;
  int hurt;
  absl::Duration elapsed;
};

// Runs one rollout until it leaves the active states (or 24 simulated hours).
absl::StatusOr<Outcome> Run(Controller& controller, FakeClock& clock,
                            FakeFleet& fleet, const std::string& release_id,
                            const Plan& plan, bool quiet) {
  ringfence::StartRolloutRequest req;
  req.release_id = release_id;
  req.plan = plan;
  // The first release of the content type has nothing to fall back to.
  req.allow_no_baseline = true;
  req.actor = "example";
  req.reason = "demo rollout of " + release_id;
  auto started = controller.StartRollout(req);
  if (!started.ok()) return started.status();
  const std::string id = started->id();
  const absl::Time start = clock.Now();
  uint64_t seen_seq = 0;
  for (int step = 0; step < 24 * 360; ++step) {
    absl::Status s = fleet.Step(absl::Seconds(10));
    if (!s.ok()) return s;
    auto decisions = controller.ListDecisions(id, seen_seq);
    if (!decisions.ok()) return decisions.status();
    for (const ringfence::Decision& d : *decisions) {
      seen_seq = d.seq();
      if (!quiet) {
        std::printf("  t+%-8s stage %-10s %s\n",
                    absl::FormatDuration(
                        absl::Trunc(ringfence::FromProto(d.at()) - start,
                                    absl::Minutes(1)))
                        .c_str(),
                    ringfence::StageName(plan, d.stage()).c_str(),
                    d.summary().c_str());
      }
    }
    auto status = controller.GetRollout(id);
    if (!status.ok()) return status.status();
    const ringfence::Rollout& r = status->rollout;
    if (ringfence::IsTerminal(r.state())) {
      Outcome o;
      o.state = r.state();
      o.stage = static_cast<int>(r.stage());
      o.stage_name = ringfence::StageName(plan, o.stage);
      o.exposed = static_cast<int>(status->telemetry.treatment_hosts);
      o.hurt = fleet.Hurt();
      o.elapsed = clock.Now() - start;
      return o;
    }
  }
  return absl::DeadlineExceededError("rollout did not finish in 24 hours");
}

int Main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const bool quiet = absl::GetFlag(FLAGS_quiet);
  Plan plan;
  absl::Status s = ringfence::LoadMessageFile(absl::GetFlag(FLAGS_plan), &plan);
  if (s.ok()) s = ringfence::ValidatePlan(plan);
  if (!s.ok()) {
    std::fprintf(stderr, "plan: %s\n", std::string(s.message()).c_str());
    return 2;
  }

  FakeClock clock;
  ringfence::StorePtr store = ringfence::NewMemoryStore();
  ringfence::ControllerOptions options;
  // Two early-adopter tenants, one critical site on the late track, one
  // pinned tenant.
  for (auto [name, track] :
       {std::pair{"tenant-1", ringfence::config::v1::TRACK_EARLY},
        std::pair{"tenant-2", ringfence::config::v1::TRACK_EARLY},
        std::pair{"tenant-7", ringfence::config::v1::TRACK_LATE},
        std::pair{"tenant-9", ringfence::config::v1::TRACK_PINNED}}) {
    ringfence::Tenant* t = options.fleet.add_tenants();
    t->set_name(name);
    t->set_track(track);
  }
  auto controller = Controller::Create(store.get(), &clock, options);
  if (!controller.ok()) {
    std::fprintf(stderr, "%s\n", controller.status().ToString().c_str());
    return 1;
  }
  for (const Release& r :
       {MakeRelease("cf291-good", 'a'), MakeRelease("cf291-bootloop", 'b')}) {
    s = (*controller)->CreateRelease(r, "example");
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
  }

  ringfence::FakeFleetOptions fo;
  fo.hosts = absl::GetFlag(FLAGS_hosts);
  fo.content_type = kContentType;
  fo.seed = absl::GetFlag(FLAGS_seed);
  FakeFleet fleet(controller->get(), &clock, fo);
  fleet.SetBehavior("cf291-bootloop", {.boot_loop = true});

  int failures = 0;
  std::printf("== rollout 1: a good release (%d hosts) ==\n", fo.hosts);
  auto good = Run(**controller, clock, fleet, "cf291-good", plan, quiet);
  if (!good.ok()) {
    std::fprintf(stderr, "%s\n", good.status().ToString().c_str());
    return 1;
  }
  std::printf("-> %s after %s: %d hosts exposed, %d running it\n",
              std::string(ringfence::RolloutStateName(good->state)).c_str(),
              absl::FormatDuration(absl::Trunc(good->elapsed, absl::Minutes(1)))
                  .c_str(),
              good->exposed, fleet.Running("cf291-good"));
  if (good->state != ringfence::config::v1::COMPLETED) ++failures;

  std::printf("\n== rollout 2: a boot-looping release ==\n");
  auto bad = Run(**controller, clock, fleet, "cf291-bootloop", plan, quiet);
  if (!bad.ok()) {
    std::fprintf(stderr, "%s\n", bad.status().ToString().c_str());
    return 1;
  }
  // Let hosts poll once more so they see the revert.
  for (int i = 0; i < 12; ++i) (void)fleet.Step(absl::Seconds(10));
  std::printf(
      "-> %s in stage %s after %s: %d hosts exposed, %d boot-looping, "
      "%d of %d hosts back on cf291-good\n",
      std::string(ringfence::RolloutStateName(bad->state)).c_str(),
      bad->stage_name.c_str(),
      absl::FormatDuration(absl::Trunc(bad->elapsed, absl::Seconds(10)))
          .c_str(),
      bad->exposed, fleet.Dead(), fleet.Running("cf291-good"), fo.hosts);
  if (bad->state != ringfence::config::v1::HALTED || bad->stage != 0) {
    ++failures;
  }
  if (failures > 0) {
    std::printf("UNEXPECTED OUTCOME\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
