// ringfence-agent: the host side of ringfence as a daemon. It polls
// ringfenced for the release of one content type, verifies it (SHA-256,
// Ed25519 against pinned publisher keys), marks it applying durably, runs
// --load-command, reports APPLYING / APPLIED / HEARTBEAT / BOOT from a
// crash-safe spool, and falls back to the last known good release on its
// own when the host boot-loops (ringfence/agent.h, docs/agent.md).
//
//   ringfence-agent run --server=rollouts.example:7443 --token-file=T
//       --host-id=web-0042 --content-type=channel-file/291
//       --state-dir=/var/lib/ringfence-agent
//       --load-command='/usr/lib/vendor/load-channel-file "$1"'
//   ringfence-agent run --server=https://rollouts.example:8443 ...
//   ringfence-agent run --config=/etc/ringfence-agent/channel-file.textproto
//   ringfence-agent status --state-dir=/var/lib/ringfence-agent
//   ringfence-agent report --state-dir=/var/lib/ringfence-agent --crash
//       --signature='segv in parse_channel_file+0x21'
//
// --config reads the flags from a text-format AgentConfig
// (ringfence/agent/v1/agent_config.proto); a flag given on the command line
// wins over the file. `report` queues a CRASH or SIGNAL for the agent of
// that state directory (service/agent/inbox.h), for a vendor's crash
// handler or watchdog.
//
// Each start of `run` is a boot. SIGTERM/SIGINT: exit 0 (state is durable
// at every step). Exit codes: 0 stopped, 2 bad flags or state, 1 other
// errors. Logs go to stderr.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ringfence/agent.h"
#include "ringfence/agent_fs.h"
#include "ringfence/agent_server.h"
#include "ringfence/clock.h"
#include "ringfence/error_text.h"
#include "ringfence/signing.h"
#include "service/agent/command_hooks.h"
#include "service/agent/config.h"
#include "service/agent/inbox.h"
#include "service/agent/status_text.h"

namespace {

std::atomic<bool> g_stop{false};
// The signal handler writes a byte here to end the main loop's wait at once
// (the self-pipe trick: write() is async-signal-safe).
int g_wake_pipe[2] = {-1, -1};

void OnSignal(int) {
  g_stop.store(true);
  if (g_wake_pipe[1] >= 0) {
    const char b = 1;
    [[maybe_unused]] ssize_t n = write(g_wake_pipe[1], &b, 1);
  }
}

// Waits up to `d`, or until a signal arrives or `inbox_fd` (if not -1)
// becomes readable. Returns whether it did.
bool WaitFor(absl::Duration d, int inbox_fd) {
  pollfd p[2] = {{g_wake_pipe[0], POLLIN, 0}, {inbox_fd, POLLIN, 0}};
  // Rounded up: waking a little early would only mean waking again.
  const int ms = static_cast<int>(
      absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1))));
  return poll(p, inbox_fd >= 0 ? 2 : 1, ms) > 0 && (p[1].revents & POLLIN);
}

void Log(const std::string& line) {
  std::cerr << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                absl::UTCTimeZone())
            << " ringfence-agent: " << ringfence::EscapeControlCharacters(line)
            << std::endl;
}

struct Flags {
  std::string server = "127.0.0.1:7443";
  std::string token_file;
  std::string tls_ca, tls_cert, tls_key, tls_server_name;
  std::string trusted_keys_file;
  bool allow_unsigned = false;
  ringfence::AgentOptions agent;
  ringfence::agent::CommandHooksOptions hooks;
  double poll_s = 60, heartbeat_s = 60;
  double call_deadline_s = 10;
  uint64_t spool_max_bytes = 0;  // 0: SpoolOptions' default
};

// Fills the flags not given on the command line (`given(name)` false) from
// `c`. Returns an error naming the field for a value out of range.
absl::Status ApplyConfig(const ringfence::agent::v1::AgentConfig& c,
                         const std::function<bool(const char*)>& given,
                         Flags& f) {
  auto str = [&](const char* flag, const std::string& v, std::string& out) {
    if (!given(flag) && !v.empty()) out = v;
  };
  str("--server", c.server(), f.server);
  str("--token-file", c.token_file(), f.token_file);
  str("--tls-ca", c.tls_ca(), f.tls_ca);
  str("--tls-cert", c.tls_cert(), f.tls_cert);
  str("--tls-key", c.tls_key(), f.tls_key);
  str("--tls-server-name", c.tls_server_name(), f.tls_server_name);
  str("--host-id", c.host_id(), f.agent.identity.host_id);
  str("--content-type", c.content_type(), f.agent.identity.content_type);
  str("--tenant", c.tenant(), f.agent.identity.tenant);
  str("--agent-version", c.agent_version(), f.agent.identity.agent_version);
  str("--platform", c.platform(), f.agent.identity.platform);
  str("--state-dir", c.state_dir(), f.agent.state_dir);
  str("--load-command", c.load_command(), f.hooks.load_command);
  str("--unload-command", c.unload_command(), f.hooks.unload_command);
  str("--fetch-command", c.fetch_command(), f.hooks.fetch_command);
  str("--trusted-keys-file", c.trusted_keys_file(), f.trusted_keys_file);
  if (!given("--label") && c.labels_size() > 0) {
    f.agent.identity.labels.assign(c.labels().begin(), c.labels().end());
  }
  if (!given("--allow-unsigned") && c.has_allow_unsigned()) {
    f.allow_unsigned = c.allow_unsigned();
  }
  auto seconds = [&](const char* flag, const char* field, bool has, double v,
                     double& out, double lo = 0.05,
                     double hi = 86400) -> absl::Status {
    if (given(flag) || !has) return absl::OkStatus();
    if (!(v >= lo && v <= hi)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": must be in [", lo, ", ", hi, "] seconds, got ", v));
    }
    out = v;
    return absl::OkStatus();
  };
  if (absl::Status s =
          seconds("--poll-interval", "poll_interval_s", c.has_poll_interval_s(),
                  c.poll_interval_s(), f.poll_s);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = seconds("--heartbeat-interval", "heartbeat_interval_s",
                               c.has_heartbeat_interval_s(),
                               c.heartbeat_interval_s(), f.heartbeat_s);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          seconds("--call-deadline", "call_deadline_s", c.has_call_deadline_s(),
                  c.call_deadline_s(), f.call_deadline_s, 0.1, 300);
      !s.ok()) {
    return s;
  }
  if (!given("--boot-loop-limit") && c.has_boot_loop_limit()) {
    if (c.boot_loop_limit() < 1 || c.boot_loop_limit() > 100) {
      return absl::InvalidArgumentError(absl::StrCat(
          "boot_loop_limit: must be in [1, 100], got ", c.boot_loop_limit()));
    }
    f.agent.boot_loop_limit = c.boot_loop_limit();
  }
  if (!given("--spool-max-bytes") && c.has_spool_max_bytes()) {
    f.spool_max_bytes = c.spool_max_bytes();
  }
  return absl::OkStatus();
}

// Gives the pages of the files the agent maps (its executable, libc and
// libm) back to the kernel (MADV_PAGEOUT: clean pages are dropped, their
// contents stay those of the file; pages another process maps too stay).
// Called once, before the first long wait: code and data only start-up
// used (flag parsing, protobuf descriptors, gRPC's, OpenSSL's and the
// libraries' initialization, the relocations) then leave the resident
// set, and what a poll uses is paged in again by the next one and stays.
// Best effort: a kernel without MADV_PAGEOUT (before Linux 5.4) refuses it
// and nothing changes.
void PageOutMappedFiles() {
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    // start-end perms offset dev inode path
    uintptr_t start = 0, end = 0;
    int path_at = 0;
    if (std::sscanf(line.c_str(),
                    "%" SCNxPTR "-%" SCNxPTR " %*s %*s %*s %*s %n", &start,
                    &end, &path_at) < 2 ||
        path_at == 0 || line.compare(path_at, 1, "/") != 0 ||
        line.compare(path_at, 5, "/dev/") == 0) {
      continue;  // anonymous memory, the stack, [vdso], devices
    }
    madvise(reinterpret_cast<void*>(start), end - start, MADV_PAGEOUT);
  }
}

// Before a wait at least this long the agent closes its gRPC channel
// (AgentServerTransport::CloseConnection, ringfence/agent_server.h). Measured:
// an open idle channel costs about 0.17 ms of CPU a second, reopening one about
// 1 ms, 3 ms with a TLS handshake; so the short gap between a heartbeat and a
// poll keeps it open, the rest of a minute's interval does not. Over HTTP the
// connection is closed as well: the server would close it idle after 5 s
// anyway, and an open one holds one of its connection threads.
constexpr absl::Duration kCloseChannelAfter = absl::Seconds(20);

// Once SIGTERM or SIGINT has arrived, calls to the server fail at once
// (CANCELLED) instead of being made: a stop waits for the call in flight
// (at most one --call-deadline), not for each call left in the tick. What
// was not sent stays in the spool for the next start.
class StopAwareTransport final : public ringfence::AgentTransport {
 public:
  explicit StopAwareTransport(ringfence::AgentTransport* server)
      : server_(server) {}

  absl::StatusOr<ringfence::AssignmentAnswer> GetAssignment(
      const ringfence::AgentIdentity& identity,
      uint64_t telemetry_pending) override {
    if (g_stop.load()) return Stopping();
    return server_->GetAssignment(identity, telemetry_pending);
  }
  absl::Status ReportTelemetry(absl::Span<const ringfence::SpooledEvent> batch,
                               absl::Duration* retry_after) override {
    if (g_stop.load()) return Stopping();
    return server_->ReportTelemetry(batch, retry_after);
  }

 private:
  static absl::Status Stopping() {
    return absl::CancelledError("stopping (SIGTERM or SIGINT): call not made");
  }
  ringfence::AgentTransport* server_;
};

int Run(Flags& f) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(f.agent.state_dir, ec);
  f.agent.state_dir = fs::absolute(f.agent.state_dir).string();
  f.agent.poll_interval = absl::Seconds(f.poll_s);
  f.agent.heartbeat_interval = absl::Seconds(f.heartbeat_s);
  f.agent.require_signature = !f.allow_unsigned;
  if (f.spool_max_bytes != 0) f.agent.spool.max_bytes = f.spool_max_bytes;
  if (!f.trusted_keys_file.empty()) {
    absl::StatusOr<ringfence::TrustedKeys> keys =
        ringfence::LoadTrustedKeysFile(f.trusted_keys_file);
    if (!keys.ok()) {
      Log(absl::StrCat("--trusted-keys-file: ", keys.status().message()));
      return 2;
    }
    f.agent.trusted_keys = *std::move(keys);
  }
  std::string token;
  if (!f.token_file.empty()) {
    std::ifstream in(f.token_file);
    if (!in) {
      Log("--token-file: cannot read " + f.token_file);
      return 2;
    }
    std::getline(in, token);
    token = std::string(absl::StripAsciiWhitespace(token));
    if (token.empty()) {
      Log("--token-file: " + f.token_file +
          " holds no token on its first line");
      return 2;
    }
  }
  f.agent.seed = std::hash<std::string>()(f.agent.identity.host_id) ^
                 static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  // http(s)://: the HTTP listener's Fleet routes; else gRPC.
  ringfence::AgentServerOptions server;
  server.server = f.server;
  server.token = token;
  server.tls_ca = f.tls_ca;
  server.tls_cert = f.tls_cert;
  server.tls_key = f.tls_key;
  server.tls_server_name = f.tls_server_name;
  server.deadline = absl::Seconds(f.call_deadline_s);
  absl::StatusOr<std::unique_ptr<ringfence::AgentServerTransport>> transport =
      ringfence::OpenAgentServer(server);
  if (!transport.ok()) {
    // The message names the option: the config file's field, the flag
    // with dashes (tls_ca: --tls-ca).
    Log(absl::StrCat("server options: ", transport.status().message()));
    return 2;
  }
  StopAwareTransport stop_aware(transport->get());
  ringfence::agent::CommandHooks hooks(f.hooks);
  std::unique_ptr<ringfence::AgentFileSystem> files =
      ringfence::NewPosixFileSystem();
  absl::StatusOr<std::unique_ptr<ringfence::Agent>> agent =
      ringfence::Agent::Start(f.agent, files.get(), &ringfence::RealClock(),
                              &stop_aware, &hooks);
  if (!agent.ok()) {
    Log(absl::StrCat("cannot start: ", agent.status().ToString()));
    return absl::IsInvalidArgument(agent.status()) ||
                   absl::IsDataLoss(agent.status())
               ? 2
               : 1;
  }
  if (pipe2(g_wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    Log("cannot create a pipe");
    return 1;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  const std::string status_path = f.agent.state_dir + "/status";
  std::string last_status;
  Log(absl::StrCat("started: host ", f.agent.identity.host_id, ", ",
                   f.agent.identity.content_type, ", server ", f.server));
  // Reports are picked up when inotify says the inbox changed; without
  // it, the inbox is looked at every second.
  ringfence::agent::InboxWatch inbox(f.agent.state_dir);
  if (!inbox.watching()) {
    Log("inbox: inotify unavailable; looking for reports every second");
  }
  bool drain = true;  // what was queued before the watch
  bool paged_out = false;
  while (!g_stop.load()) {
    if (drain || !inbox.watching()) {
      int rejected = 0;
      absl::StatusOr<int> reports = ringfence::agent::DrainInbox(
          f.agent.state_dir, agent->get(), &rejected);
      if (!reports.ok())
        Log(absl::StrCat("inbox: ", reports.status().ToString()));
      if (rejected > 0) {
        Log(absl::StrCat("inbox: ", rejected, " malformed report(s) deleted"));
      }
    }
    if (absl::Now() >= (*agent)->NextWakeup()) {
      absl::Status s = (*agent)->Tick();
      if (!s.ok()) Log(absl::StrCat("tick: ", s.ToString()));
    }
    const std::string status =
        ringfence::agent::AgentStatusText((*agent)->GetStatus());
    if (status != last_status) {
      // For `ringfence-agent status`: written whole, then renamed.
      std::ofstream(status_path + ".tmp") << status;
      fs::rename(status_path + ".tmp", status_path, ec);
      last_status = status;
    }
    // Without a watch, at most a second so that reports are picked up
    // within one. With one, at most a minute: the wait is measured on the
    // wall clock's reading, and a clock stepped back delays no more.
    const absl::Duration max_wait =
        inbox.watching() ? absl::Seconds(60) : absl::Seconds(1);
    const absl::Duration wait = std::clamp((*agent)->NextWakeup() - absl::Now(),
                                           absl::Milliseconds(10), max_wait);
    if (wait >= kCloseChannelAfter) {
      (*transport)->CloseConnection();
      if (!paged_out) {
        paged_out = true;
        PageOutMappedFiles();
      }
    }
    // A signal ends the wait at once.
    drain = WaitFor(wait, inbox.fd());
    if (drain) inbox.Consume();
  }
  // A clean end: the next start does not report an unclean boot.
  if (absl::Status s = (*agent)->Stop(); !s.ok()) {
    Log(absl::StrCat("stop: ", s.ToString()));
    return 1;
  }
  Log("stopped (SIGTERM or SIGINT)");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "ringfence-agent: the host side of ringfence (polls ringfenced, "
      "verifies, loads with --load-command, reports telemetry, falls back "
      "on its own when the host boot-loops)."};
  app.require_subcommand(1);
  Flags f;
  CLI::App* run = app.add_subcommand("run", "run the agent (one boot)");
  run->add_option("--server", f.server,
                  "ringfenced's gRPC host:port, or its HTTP listener as "
                  "http://host:port or https://host:port")
      ->capture_default_str();
  run->add_option("--token-file", f.token_file,
                  "file whose first line is this host's bearer token");
  run->add_option("--tls-ca", f.tls_ca, "CA of the server's certificate");
  run->add_option("--tls-cert", f.tls_cert,
                  "client certificate (mutual TLS; SAN "
                  "URI:ringfence://host/<host-id>)");
  run->add_option("--tls-key", f.tls_key, "its key");
  run->add_option("--tls-server-name", f.tls_server_name,
                  "name to check the server's certificate against");
  run->add_option("--host-id", f.agent.identity.host_id,
                  "this host's stable id");
  run->add_option("--content-type", f.agent.identity.content_type,
                  "the content type this agent runs");
  run->add_option("--tenant", f.agent.identity.tenant, "the host's tenant");
  run->add_option("--label", f.agent.identity.labels,
                  "a label (repeatable), e.g. ring:dogfood");
  run->add_option("--agent-version", f.agent.identity.agent_version,
                  "dotted version of the consuming agent");
  run->add_option("--platform", f.agent.identity.platform, "e.g. linux");
  run->add_option("--state-dir", f.agent.state_dir,
                  "where state, content and the spool live");
  run->add_option("--load-command", f.hooks.load_command,
                  "loads a verified payload: sh -c CMD with $1 = payload "
                  "path, $2 = release id");
  run->add_option("--unload-command", f.hooks.unload_command,
                  "stops running the content type");
  run->add_option("--fetch-command", f.hooks.fetch_command,
                  "writes the payload at URL $1 to stdout (file:// URLs are "
                  "read directly)")
      ->capture_default_str();
  run->add_option("--trusted-keys-file", f.trusted_keys_file,
                  "publisher keys: lines 'key_id path/to/key.pub'");
  run->add_flag("--allow-unsigned", f.allow_unsigned,
                "load releases without a publisher signature");
  run->add_option("--poll-interval", f.poll_s, "seconds between polls")
      ->check(CLI::Range(0.05, 86400.0))
      ->capture_default_str();
  run->add_option("--heartbeat-interval", f.heartbeat_s,
                  "seconds between heartbeats")
      ->check(CLI::Range(0.05, 86400.0))
      ->capture_default_str();
  run->add_option("--call-deadline", f.call_deadline_s,
                  "seconds each call to the server may take, connecting "
                  "included")
      ->check(CLI::Range(0.1, 300.0))
      ->capture_default_str();
  run->add_option("--boot-loop-limit", f.agent.boot_loop_limit,
                  "boots that find a release still loading before falling "
                  "back")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  run->add_option("--spool-max-bytes", f.spool_max_bytes,
                  "the spool's size cap (default 4 MiB)")
      ->check(CLI::Range(uint64_t{128} << 10, uint64_t{1} << 40));
  std::string config_path;
  run->add_option("--config", config_path,
                  "a text-format AgentConfig; flags given here win over it");
  std::string status_dir;
  CLI::App* status = app.add_subcommand(
      "status", "print what the agent runs and why (from --state-dir)");
  status->add_option("--state-dir", status_dir)->required();
  std::string report_dir, report_signal, report_signature;
  bool report_crash = false;
  CLI::App* report = app.add_subcommand(
      "report",
      "queue a CRASH (--crash [--signature=S]) or a failure signal "
      "(--signal=NAME) for the agent of --state-dir; it is sent with the "
      "next batch, after a restart if the agent is not running");
  report->add_option("--state-dir", report_dir)->required();
  CLI::Option* crash_opt = report->add_flag("--crash", report_crash,
                                            "the content's consumer crashed");
  report
      ->add_option("--signature", report_signature,
                   "crash signature (at most 256 characters)")
      ->needs(crash_opt);
  report->add_option("--signal", report_signal, "signal name, [a-z0-9_]{1,64}")
      ->excludes(crash_opt);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (status->parsed()) {
    std::ifstream in(status_dir + "/status");
    if (!in) {
      std::cerr << "no status in " << status_dir
                << " (has ringfence-agent run started there?)\n";
      return 1;
    }
    std::cout << in.rdbuf();
    return 0;
  }
  if (report->parsed()) {
    if (!report_crash && report_signal.empty()) {
      std::cerr << "report: give --crash or --signal=NAME\n";
      return 2;
    }
    absl::Status s = ringfence::agent::QueueReport(
        report_dir,
        report_crash ? ringfence::EventType::kCrash
                     : ringfence::EventType::kSignal,
        report_crash ? report_signature : report_signal);
    if (!s.ok()) {
      std::cerr << "report: " << s.message() << "\n";
      return absl::IsInvalidArgument(s) ? 2 : 1;
    }
    return 0;
  }
  if (!config_path.empty()) {
    absl::StatusOr<ringfence::agent::v1::AgentConfig> config =
        ringfence::agent::LoadAgentConfig(config_path);
    absl::Status s = config.status();
    if (s.ok()) {
      s = ApplyConfig(
          *config, [&](const char* flag) { return run->count(flag) > 0; }, f);
    }
    if (!s.ok()) {
      Log(absl::StrCat("--config: ", s.message()));
      return 2;
    }
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, const std::string*>{"host_id (--host-id)",
                                                   &f.agent.identity.host_id},
        {"content_type (--content-type)", &f.agent.identity.content_type},
        {"state_dir (--state-dir)", &f.agent.state_dir}}) {
    if (value->empty()) {
      Log(absl::StrCat(flag, " is required (a flag or in --config)"));
      return 2;
    }
  }
  return Run(f);
}
