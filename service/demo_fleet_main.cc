// ringfence_demo_fleet: an emulated fleet of hosts talking gRPC to
// ringfenced (GetAssignment, ReportTelemetry), for the demo. Hosts that load
// a release named by --boot_loop die while loading it and never report
// again, as on 2024-07-19. Runs until SIGTERM/SIGINT; prints a status line
// every --status_interval. --tls_ca (and --tls_cert/--tls_key for mutual
// TLS) connect over TLS, as ringctl does.
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
ABSL_FLAG(std::string, token, "",
          "bearer token with role relay (it speaks for every emulated host) or "
          "admin");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA certificates that sign the server's certificate (connect "
          "over TLS)");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate chain for mutual TLS (with --tls_key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "name to verify the server's certificate against (default: the "
          "--target host)");
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
  absl::StatusOr<std::optional<ringfence::ClientTls>> tls =
      ringfence::LoadClientTls(absl::GetFlag(FLAGS_tls_ca),
                               absl::GetFlag(FLAGS_tls_cert),
                               absl::GetFlag(FLAGS_tls_key));
  if (!tls.ok()) {
    std::fprintf(stderr, "ringfence_demo_fleet: --%s\n",
                 std::string(tls.status().message()).c_str());
    return 2;
  }
  o.tls = *std::move(tls);
  if (const std::string name = absl::GetFlag(FLAGS_tls_server_name);
      !name.empty()) {
    if (!o.tls.has_value()) {
      std::fprintf(stderr,
                   "ringfence_demo_fleet: --tls_server_name needs TLS "
                   "(--tls_ca or --tls_cert)\n");
      return 2;
    }
    o.tls->server_name_override = name;
  }
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
