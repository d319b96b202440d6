// A program that embeds the host agent (ringfence/agent.h) on the
// installed ringfence::agent target, reaching ringfenced through
// ringfence/agent_server.h:
//   ringfence_agent_consumer host:port|http(s)://host:port state_dir
// One wakeup (heartbeat, assignment poll, telemetry sent), then it prints
// what the agent runs and how many events wait to be sent.
#include <cstdio>
#include <memory>
#include <string>

#include "ringfence/agent.h"
#include "ringfence/agent_fs.h"
#include "ringfence/agent_server.h"
#include "ringfence/clock.h"

namespace {

// This example loads nothing: a real agent fetches the payload from
// release.fetch_url() and hands it to the program that uses the content.
class NoContent final : public ringfence::ContentHooks {
 public:
  absl::StatusOr<std::string> Fetch(const ringfence::Release&) override {
    return absl::UnimplementedError("this example fetches nothing");
  }
  absl::Status Load(const ringfence::Release&, const std::string&) override {
    return absl::UnimplementedError("this example loads nothing");
  }
  absl::Status Unload() override { return absl::OkStatus(); }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s host:port|http(s)://host:port state_dir\n",
                 argv[0]);
    return 2;
  }
  ringfence::AgentServerOptions server;
  server.server = argv[1];
  absl::StatusOr<std::unique_ptr<ringfence::AgentServerTransport>> transport =
      ringfence::OpenAgentServer(server);
  if (!transport.ok()) {
    std::fprintf(stderr, "%s\n", transport.status().ToString().c_str());
    return 2;
  }
  ringfence::AgentOptions options;
  options.identity.host_id = "embedded-1";
  options.identity.content_type = "channel-file/291";
  options.state_dir = argv[2];
  options.require_signature = false;
  std::unique_ptr<ringfence::AgentFileSystem> fs =
      ringfence::NewPosixFileSystem();
  NoContent hooks;
  absl::StatusOr<std::unique_ptr<ringfence::Agent>> agent =
      ringfence::Agent::Start(options, fs.get(), &ringfence::RealClock(),
                              transport->get(), &hooks);
  if (!agent.ok()) {
    std::fprintf(stderr, "%s\n", agent.status().ToString().c_str());
    return 1;
  }
  const absl::Status tick = (*agent)->Tick();
  (*transport)->CloseConnection();  // as before a long wait
  const ringfence::AgentStatus status = (*agent)->GetStatus();
  std::printf("agent: tick %s; running \"%s\"; %zu events pending\n",
              tick.ok() ? "OK" : tick.ToString().c_str(),
              status.running.c_str(), status.spool_pending);
  return tick.ok() && (*agent)->Stop().ok() ? 0 : 1;
}
