// ringfence_demo_fleet: an emulated fleet of hosts talking gRPC to
// ringfenced (GetAssignment, ReportTelemetry), for the demo. Hosts that load
// a release named by --boot_loop die while loading it and never report
// again, as on 2024-07-19. Runs until SIGTERM/SIGINT; prints a status line
// every --status_interval.
#include <csignal>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "service/fleet_emulator.h"

ABSL_FLAG(std::string, target, "127.0.0.1:7443", "ringfenced host:port");
ABSL_FLAG(std::string, token, "", "bearer token with role host");
ABSL_FLAG(std::string, content_type, "channel-file/291", "content type");
ABSL_FLAG(int, hosts, 200, "hosts to emulate");
ABSL_FLAG(int, dogfood_hosts, 10, "hosts labelled ring:dogfood");
ABSL_FLAG(absl::Duration, poll_interval, absl::Milliseconds(500),
          "how often each host polls and heartbeats");
ABSL_FLAG(std::string, boot_loop, "",
          "comma-separated releases that kill the hosts that load them");
ABSL_FLAG(absl::Duration, status_interval, absl::Seconds(0),
          "print fleet status this often (0 = never)");

namespace {

absl::Notification* stop = nullptr;

void OnSignal(int) {
  // Notify is async-signal-safe enough here: a single atomic store + futex.
  if (stop != nullptr && !stop->HasBeenNotified()) stop->Notify();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  ringfence::service::FleetOptions o;
  o.target = absl::GetFlag(FLAGS_target);
  o.token = absl::GetFlag(FLAGS_token);
  o.content_type = absl::GetFlag(FLAGS_content_type);
  o.hosts = absl::GetFlag(FLAGS_hosts);
  o.dogfood_hosts = absl::GetFlag(FLAGS_dogfood_hosts);
  o.poll_interval = absl::GetFlag(FLAGS_poll_interval);
  o.threads = 4;
  for (absl::string_view r :
       absl::StrSplit(absl::GetFlag(FLAGS_boot_loop), ',', absl::SkipEmpty())) {
    o.boot_loop_releases.insert(std::string(r));
  }
  absl::Notification done;
  stop = &done;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  ringfence::service::FleetEmulator fleet(o);
  fleet.Start();
  const absl::Duration every = absl::GetFlag(FLAGS_status_interval);
  while (!done.WaitForNotificationWithTimeout(
      every > absl::ZeroDuration() ? every : absl::Seconds(1))) {
    if (every > absl::ZeroDuration()) {
      std::printf("fleet: %d hosts, %d boot-looping, %d RPC errors\n", o.hosts,
                  fleet.Dead(), fleet.errors());
      std::fflush(stdout);
    }
  }
  fleet.Stop();
  return 0;
}
