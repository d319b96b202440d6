// The README's library example, compiled and run by ctest so it stays true.
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
  ringfence::LoadMessageFile(
      RINGFENCE_SOURCE_DIR "/examples/plans/default.textproto", &plan)
      .IgnoreError();
  auto rollout = controller->StartRollout({.release_id = release.id(),
                                           .plan = plan,
                                           .allow_no_baseline = true,
                                           .actor = "ci",
                                           .reason = "weekly content"});
  if (!rollout.ok()) return 1;

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
  // host-1 is in a later stage: no release yet, keep what it runs.
  return status.ok() && a.release == nullptr &&
                 a.reason == ringfence::AssignReason::kNotYet
             ? 0
             : 1;
}
