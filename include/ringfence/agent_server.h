// Connecting the agent core (ringfence/agent.h) to ringfenced: the
// transport ringfence-agent itself uses, for C++ programs that embed the
// agent instead of running it.
//
// OpenAgentServer picks the protocol from the address:
//   - "host:port": the gRPC Fleet service (GetAssignment, ReportTelemetry),
//     in plaintext, or over TLS when a CA or a client certificate is given;
//   - "http://host:port", "https://host:port": the HTTP listener's Fleet
//     routes (binary protobuf over HTTP/1.1 on a small client over
//     OpenSSL; docs/agent-protocol.md). No gRPC threads.
// Either way the calls, their errors and the backpressure hints are those
// of AgentTransport (agent.h).
//
// CMake: find_package(ringfence CONFIG REQUIRED COMPONENTS api agent) and
// link ringfence::agent.
//
// Example:
//   AgentServerOptions server;
//   server.server = "rollouts.example:7443";
//   server.token = token;
//   server.tls_ca = "/etc/ringfence-agent/ca.pem";
//   absl::StatusOr<std::unique_ptr<AgentServerTransport>> transport =
//       OpenAgentServer(server);
//   if (!transport.ok()) return transport.status();
//   auto agent = Agent::Start(options, fs.get(), &RealClock(),
//                             transport->get(), &hooks);
//   while (...) {
//     (*agent)->Tick();
//     (*transport)->CloseConnection();  // before a long wait
//     ...
//   }
//
// Thread safety: a transport is used from one thread (the agent's loop).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ringfence/agent.h"

namespace ringfence {

struct AgentServerOptions {
  // "host:port" (gRPC), or "http://host:port" / "https://host:port".
  std::string server;
  // Sent as a bearer token when not empty (a host's token, or a relay's).
  std::string token;
  // PEM file paths. tls_ca: the CA(s) that sign the server's certificate
  // (https:// without it: the system's CAs; gRPC without it and without a
  // client certificate: plaintext). tls_cert and tls_key: the host's client
  // certificate for mutual TLS (gRPC, or https:// to a listener with a
  // client CA); one naming ringfence://host/<id> binds the agent to that
  // host.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  // The name to check the server's certificate against instead of the
  // host in `server` (TLS only).
  std::string tls_server_name;
  // Each call's deadline, connecting included.
  absl::Duration deadline = absl::Seconds(10);
};

// AgentServerTransport: an AgentTransport whose connection can be closed
// between wakeups.
class AgentServerTransport : public AgentTransport {
 public:
  // CloseConnection
  //
  // Closes the connection (for gRPC, the channel, which stops gRPC's
  // threads) before a long wait; the next call opens another. Over https
  // the TLS session is kept for resumption.
  virtual void CloseConnection() = 0;
};

// OpenAgentServer
//
// A transport to `options.server`; connects on the first call, not here.
// Errors: INVALID_ARGUMENT naming the option (a malformed http(s)://
// address, TLS options for http://, tls_server_name without TLS, a deadline not
// above zero, a PEM file that holds no certificate or key, or a key that does
// not match); NOT_FOUND for a file that cannot be read.
absl::StatusOr<std::unique_ptr<AgentServerTransport>> OpenAgentServer(
    const AgentServerOptions& options);

}  // namespace ringfence
