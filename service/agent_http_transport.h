// HttpAgentTransport: the agent core's link to ringfenced over its HTTP
// listener (ringfence/agent.h's AgentTransport on the Fleet routes of
// http_server.h), on Http1Client (http1_client.h).
//
// The same calls as GrpcAgentTransport, carried as binary protobuf over
// HTTP/1.1: GetAssignment is POST /v1/fleet/assignment with a
// GetAssignmentRequest, ReportTelemetry is POST /v1/fleet/telemetry with a
// ReportTelemetryRequest (Content-Type application/x-protobuf). No gRPC
// runtime is involved, so a call starts no threads and touches far less
// code than a gRPC channel (bench/README.md, "Host agent footprint").
//
// One connection is kept: it (and, over https, the TLS session) is reused
// while the server keeps it open. CloseConnection() closes the connection
// before a long wait but keeps the TLS session, so the next connection
// resumes it. No proxy from the environment is used: only the server's own
// answer counts.
//
// Errors are absl::Status with the call's gRPC code: the code named in the
// server's JSON error body ({"code": "PERMISSION_DENIED", ...}), else the
// HTTP status's (401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 413 and 429
// RESOURCE_EXHAUSTED, 503 and other 5xx but 500 UNAVAILABLE, 504
// DEADLINE_EXCEEDED, ...); a connection that fails is UNAVAILABLE, one past
// `deadline` DEADLINE_EXCEEDED. RESOURCE_EXHAUSTED on ReportTelemetry sets
// *retry_after to the server's Retry-After (seconds, at most an hour), or to
// `backpressure_retry` without one.
//
// Example:
//   HttpAgentOptions options;
//   options.server = "https://rollouts.example:8443";
//   options.token = token;
//   options.ca_file = "/etc/ringfence-agent/ca.pem";
//   auto transport = HttpAgentTransport::Create(options);
//   auto agent = Agent::Start(agent_options, &fs, &clock, transport->get(),
//                             &hooks);
//
// Thread safety: not thread-safe (one connection); the agent makes its
// calls from one thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ringfence/agent.h"
#include "ringfence/agent_server.h"
#include "service/http1_client.h"

namespace ringfence {

struct HttpAgentOptions {
  // The HTTP listener: "http://host:port" or "https://host:port" (a path,
  // query or user name is refused).
  std::string server;
  // Sent as "Authorization: Bearer <token>" when not empty.
  std::string token;
  // https: a PEM file of the CA(s) to verify the server's certificate with
  // (empty, the default: the system's CAs).
  std::string ca_file;
  // https: the name to check the server's certificate against instead of
  // the host in `server` (empty, the default: that host). The connection
  // still goes to the host in `server`.
  std::string server_name;
  // https: the client certificate chain and its key (PEM files) for a
  // listener under mutual TLS; a certificate naming ringfence://host/<id>
  // binds the agent to that host (service/README.md, "Authentication").
  // Both or neither.
  std::string cert_file, key_file;
  // Each call's deadline, connecting included (default 10s).
  absl::Duration deadline = absl::Seconds(10);
  // The wait after RESOURCE_EXHAUSTED without a Retry-After (default 5s).
  absl::Duration backpressure_retry = absl::Seconds(5);
  // The largest response body read (default 4 MiB); a longer one fails the
  // call with RESOURCE_EXHAUSTED.
  size_t max_response_bytes = size_t{4} << 20;
};

// IsHttpServerAddress
//
// Whether `server` names an HTTP listener ("http://..." or "https://...",
// case-insensitively) rather than a gRPC target.
bool IsHttpServerAddress(absl::string_view server);

class HttpAgentTransport final : public AgentServerTransport {
 public:
  // Create
  //
  // INVALID_ARGUMENT naming the field for a `server` that is not
  // http(s)://host[:port], a deadline not above zero, a token with a
  // control character or a server_name that is not a host name; NOT_FOUND
  // for a ca_file that cannot be read (https). Connects on the first call,
  // not here.
  static absl::StatusOr<std::unique_ptr<HttpAgentTransport>> Create(
      HttpAgentOptions options);
  ~HttpAgentTransport() override;
  HttpAgentTransport(const HttpAgentTransport&) = delete;
  HttpAgentTransport& operator=(const HttpAgentTransport&) = delete;

  absl::StatusOr<AssignmentAnswer> GetAssignment(
      const AgentIdentity& identity, uint64_t telemetry_pending) override;
  absl::Status ReportTelemetry(absl::Span<const SpooledEvent> batch,
                               absl::Duration* retry_after) override;

  // CloseConnection
  //
  // Closes the connection to the server, if one is open (the next call
  // opens another, resuming the TLS session over https).
  void CloseConnection() override;

 private:
  HttpAgentTransport(HttpAgentOptions options,
                     std::unique_ptr<Http1Client> client);

  // POSTs `body` to `path`; the response body on 200, else the error. Sets
  // *retry_after (if not null) from a 429's Retry-After.
  absl::StatusOr<std::string> Post(const char* path, const std::string& body,
                                   absl::Duration* retry_after);

  const HttpAgentOptions options_;
  std::unique_ptr<Http1Client> client_;
  // Content-Type, Accept and Authorization, as header lines.
  std::string headers_;
};

}  // namespace ringfence
