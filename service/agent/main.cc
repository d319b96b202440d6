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
//   ringfence-agent status --state-dir=/var/lib/ringfence-agent
//
// Each start of `run` is a boot. SIGTERM/SIGINT: exit 0 (state is durable
// at every step). Exit codes: 0 stopped, 2 bad flags or state, 1 other
// errors. Logs go to stderr.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ringfence/agent.h"
#include "ringfence/agent_fs.h"
#include "ringfence/clock.h"
#include "ringfence/signing.h"
#include "service/agent/command_hooks.h"
#include "service/agent/status_text.h"
#include "service/agent_transport.h"
#include "service/tls.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

void Log(const std::string& line) {
  std::cerr << absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                                absl::UTCTimeZone())
            << " ringfence-agent: " << line << std::endl;
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
};

int Run(Flags& f) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(f.agent.state_dir, ec);
  f.agent.state_dir = fs::absolute(f.agent.state_dir).string();
  f.agent.poll_interval = absl::Seconds(f.poll_s);
  f.agent.heartbeat_interval = absl::Seconds(f.heartbeat_s);
  f.agent.require_signature = !f.allow_unsigned;
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
  }
  absl::StatusOr<std::optional<ringfence::ClientTls>> tls =
      ringfence::LoadClientTls(f.tls_ca, f.tls_cert, f.tls_key);
  if (!tls.ok()) {
    Log(absl::StrCat("TLS flags: ", tls.status().message()));
    return 2;
  }
  if (tls->has_value() && !f.tls_server_name.empty()) {
    (*tls)->server_name_override = f.tls_server_name;
  }
  f.agent.seed = std::hash<std::string>()(f.agent.identity.host_id) ^
                 static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  ringfence::GrpcAgentTransport transport(
      ringfence::MakeChannel(f.server, *tls), token);
  ringfence::agent::CommandHooks hooks(f.hooks);
  std::unique_ptr<ringfence::AgentFileSystem> files =
      ringfence::NewPosixFileSystem();
  absl::StatusOr<std::unique_ptr<ringfence::Agent>> agent =
      ringfence::Agent::Start(f.agent, files.get(), &ringfence::RealClock(),
                              &transport, &hooks);
  if (!agent.ok()) {
    Log(absl::StrCat("cannot start: ", agent.status().ToString()));
    return absl::IsInvalidArgument(agent.status()) ||
                   absl::IsDataLoss(agent.status())
               ? 2
               : 1;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  const std::string status_path = f.agent.state_dir + "/status";
  std::string last_status;
  Log(absl::StrCat("started: host ", f.agent.identity.host_id, ", ",
                   f.agent.identity.content_type, ", server ", f.server));
  while (!g_stop.load()) {
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
    const absl::Duration wait =
        std::clamp((*agent)->NextWakeup() - absl::Now(), absl::Milliseconds(10),
                   absl::Milliseconds(200));
    absl::SleepFor(wait);
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
  run->add_option("--server", f.server, "ringfenced host:port")
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
                  "this host's stable id")
      ->required();
  run->add_option("--content-type", f.agent.identity.content_type,
                  "the content type this agent runs")
      ->required();
  run->add_option("--tenant", f.agent.identity.tenant, "the host's tenant");
  run->add_option("--label", f.agent.identity.labels,
                  "a label (repeatable), e.g. ring:dogfood");
  run->add_option("--agent-version", f.agent.identity.agent_version,
                  "dotted version of the consuming agent");
  run->add_option("--platform", f.agent.identity.platform, "e.g. linux");
  run->add_option("--state-dir", f.agent.state_dir,
                  "where state, content and the spool live")
      ->required();
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
  run->add_option("--boot-loop-limit", f.agent.boot_loop_limit,
                  "boots that find a release still loading before falling "
                  "back")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  std::string status_dir;
  CLI::App* status = app.add_subcommand(
      "status", "print what the agent runs and why (from --state-dir)");
  status->add_option("--state-dir", status_dir)->required();
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
  return Run(f);
}
