// The README's library example ("Using the library"). ctest builds and runs
// it in the tree (test readme_example); scripts/test-install.sh builds it as
// a project of its own against an installed ringfence (CMakeLists.txt here).
// Run it from the repository root: it reads examples/plans/default.textproto.
#include <cstdio>
#include <string>
#include <vector>

#include "ringfence/controller.h"

int main() {
  ringfence::FakeClock clock;  // or ringfence::RealClock()
  ringfence::StorePtr store = ringfence::NewMemoryStore();
  auto controller =
      ringfence::Controller::Create(store.get(), &clock, {}).value();

  ringfence::Release release;  // digest, size, targeting...
  release.set_id("cf291-2024-07-19.1");
  release.set_content_type("channel-file/291");
  release.set_digest_sha256(std::string(64, 'a'));
  release.set_size_bytes(40000);
  controller->CreateRelease(release, "ci").IgnoreError();

  ringfence::Plan plan;  // text-proto or JSON
  ringfence::LoadMessageFile("examples/plans/default.textproto", &plan)
      .IgnoreError();
  // The first release of a content type has nothing to fall back to: a halt
  // tells hosts to unload it, which the start must acknowledge.
  auto rollout = controller->StartRollout({.release_id = release.id(),
                                           .plan = plan,
                                           .allow_no_baseline = true,
                                           .actor = "ci",
                                           .reason = "weekly content"});
  if (!rollout.ok()) {
    std::fprintf(stderr, "StartRollout: %s\n",
                 rollout.status().ToString().c_str());
    return 1;
  }

  // Hosts ask which release to run, and report telemetry.
  ringfence::HostInfo host{.host_id = "host-1",
                           .tenant = "acme",
                           .agent_version = "7.11.0",
                           .platform = "windows"};
  ringfence::Assignment a = controller->Assign(host, "channel-file/291");
  std::vector<ringfence::TelemetryEvent> events =
      /* applying, applied, heartbeat,
         crash, boot, custom signals */
      {};
  controller->Ingest(events).IgnoreError();

  // The gate: call periodically (the service does it every second).
  controller->Tick().IgnoreError();
  auto status =
      controller->GetRollout(rollout->id());  // state, stage, evidence

  // Operators.
  controller->Pause(rollout->id(), "alice", "investigating ticket 1234")
      .IgnoreError();

  // Not in the README: what the run showed. host-1 is in a later stage: no
  // release yet, keep what it runs.
  if (!status.ok() || a.release != nullptr ||
      a.reason != ringfence::AssignReason::kNotYet) {
    std::fprintf(stderr, "unexpected: %s\n",
                 status.status().ToString().c_str());
    return 1;
  }
  const auto paused = controller->GetRollout(rollout->id());
  std::printf("rollout %s of %s: %s at stage %u; host-1: not yet\n",
              rollout->id().c_str(), release.id().c_str(),
              paused.ok() ? ringfence::config::v1::RolloutState_Name(
                                paused->rollout.state())
                                .c_str()
                          : "?",
              static_cast<unsigned>(status->rollout.stage()));
  return paused.ok() ? 0 : 1;
}
