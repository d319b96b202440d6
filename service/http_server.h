// The HTTP/JSON API of ringfenced, and its Prometheus metrics, on a listener
// of its own (--http_listen).
//
// One implementation of each call: every /v1 route is forwarded as a call
// on the gRPC server's in-process channel, with the request's
// `Authorization` header (and nothing else of the HTTP request) as the
// call's `authorization` metadata. So the gRPC handler authenticates the
// token, checks the role, validates the request and writes the audit log,
// exactly as for a gRPC client. The in-process call carries no client
// certificate and no peer address the handlers would trust: over HTTP a
// caller is who its bearer token says (or, on a server without tokens,
// "anonymous" admin, which StartHttpServer allows only on a loopback
// address or with insecure_no_auth; mutual TLS does not count, since HTTP
// clients present no certificate here).
//
// Routes (bodies and responses in protobuf's canonical JSON mapping; GET
// parameters as URL query parameters):
//   GET  /v1/releases                  ListReleases (?contentType=)
//   GET  /v1/releases/{id}             GetRelease
//   GET  /v1/rollouts                  ListRollouts (?contentType=&
//                                        releaseId=&states=RUNNING...)
//   GET  /v1/rollouts/{id}             GetRollout (?includeDecisions=true)
//   POST /v1/rollouts/{id}/pause       PauseRollout   {"reason": "..."}
//   POST /v1/rollouts/{id}/resume      ResumeRollout
//   POST /v1/rollouts/{id}/abort       AbortRollout
//   POST /v1/rollouts/{id}/promote     PromoteRollout
//   POST /v1/emergency-stop            EmergencyStop  {"contentType", "reason"}
//   POST /v1/emergency-stop/clear      ClearEmergencyStop (same body)
//   GET  /v1/gate                      CheckGate (?releaseId=&stage=)
//   GET  /v1/cluster                   Cluster.GetClusterStatus
//   GET  /v1/audit                     ListAudit (?afterSeq=&limit=&
//                                        rolloutId=)
//   POST /v1/fleet/assignment          Fleet.GetAssignment   } binary
//   POST /v1/fleet/telemetry           Fleet.ReportTelemetry } protobuf
//   GET  /metrics                      Prometheus text format
//   GET  /, /ui/dashboard.{js,css}     the operator's dashboard (service/ui/,
//                                        compiled in; it calls the routes
//                                        above with the operator's token)
// The two Fleet routes are for agents (agent_http_transport.h): the body is
// the binary protobuf request, Content-Type application/x-protobuf (else
// 415; a body that does not parse is 400 naming the message), and a 200's
// body is the binary protobuf response. The Fleet handler authenticates and
// binds the host as over gRPC: a host token may only ask and report for its
// own host (403 otherwise).
// Every response carries Content-Security-Policy "default-src 'self';
// frame-ancestors 'none'", X-Content-Type-Options: nosniff and
// Referrer-Policy: no-referrer. A request other than GET/HEAD whose Origin
// header is not this server's own origin (IsSameOrigin) is 403 before any
// handler runs.
// Errors: the gRPC status as an HTTP status (HttpStatusFromGrpc) with a
// JSON body {"code": "...", "message": "..."} (http_json.h), on every route;
// RESOURCE_EXHAUSTED (429) also carries Retry-After: 5 (seconds). A body
// over max_body_bytes is 413, an unknown route 404, before any handler
// runs.
//
// Thread safety: Start and Shutdown from one thread; port() from any. The
// channel's server and `metrics` must outlive the HttpServer.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/auth.h"
#include "service/tls.h"

namespace grpc {
class Channel;
}  // namespace grpc
namespace httplib {
class Server;
}  // namespace httplib

namespace ringfence {

struct HttpServerOptions {
  // "host:port" or "[v6]:port"; port 0 picks a free port (see port()).
  std::string listen = "127.0.0.1:0";
  // Serve HTTPS with this certificate chain and key (nullopt, the default:
  // plain HTTP). With a client CA in it, a client may present a
  // certificate signed by it (one that does not verify fails the
  // handshake); one naming a ringfence:// principal is the caller's
  // identity, as over gRPC. Clients without one are authenticated by
  // token. Files are read once (no reload).
  std::optional<ServerTls> tls;
  // ServerOptions::forwarded_peer_key of the gRPC server behind `channel`:
  // sent with a client certificate's URIs. Empty: certificates are not
  // passed on (callers are authenticated by token only).
  std::string forwarded_peer_key;
  // The gRPC server's bearer tokens, for GET /metrics (the API's calls are
  // authenticated by the gRPC handlers). nullopt: no tokens configured.
  std::optional<TokenAuthenticator> auth;
  // Serve GET /metrics without a token even when `auth` is set (default
  // false: /metrics needs a token of role publisher, operator or admin).
  bool metrics_no_auth = false;
  // As ServerOptions::insecure_no_auth: serve without tokens on an address
  // other machines can reach (default false: Start refuses to).
  bool insecure_no_auth = false;
  // Largest request body in bytes (default 1 MiB); larger: 413.
  size_t max_body_bytes = 1 << 20;
  // Socket read and write timeouts (default 10s each).
  absl::Duration read_timeout = absl::Seconds(10);
  absl::Duration write_timeout = absl::Seconds(10);
  // Deadline of each forwarded gRPC call (default 30s).
  absl::Duration call_deadline = absl::Seconds(30);
  // Connections served at once (default 8), and connections accepted and
  // waiting for a thread (default 64); beyond that the listener stops
  // accepting until one frees (the kernel's backlog holds the rest).
  int threads = 8;
  int max_queued_connections = 64;
};

// CheckHttpAuthentication
//
// OK unless `options` would serve every HTTP caller as admin (no `auth`)
// on an address that is not loopback without insecure_no_auth: then
// FAILED_PRECONDITION saying so.
absl::Status CheckHttpAuthentication(const HttpServerOptions& options);

// IsSameOrigin
//
// Whether `origin` (a browser's Origin header) is the origin the request
// was sent to: "http://" (or "https://" if `https`) followed by `host`,
// the request's Host header, compared case-insensitively with the
// scheme's default port elided. "null" and anything with a path are not.
//
//   IsSameOrigin("http://127.0.0.1:8080", "127.0.0.1:8080", false)  // true
//   IsSameOrigin("https://evil.example", "127.0.0.1:8080", false)   // false
bool IsSameOrigin(absl::string_view origin, absl::string_view host, bool https);

class HttpServer {
 public:
  // Start
  //
  // Binds `options.listen` and serves in background threads, forwarding
  // the API to `channel` (Server::InProcessChannel()) and answering GET
  // /metrics with `render_metrics()` (Server::RenderMetrics). UNAVAILABLE
  // if the address cannot be bound; INVALID_ARGUMENT for a malformed
  // `listen`, bounds, or TLS material OpenSSL refuses; FAILED_PRECONDITION
  // if CheckHttpAuthentication fails.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      std::shared_ptr<grpc::Channel> channel,
      std::function<std::string()> render_metrics, HttpServerOptions options);
  // Shuts down if Shutdown was not called.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port.
  int port() const { return port_; }

  // Shutdown
  //
  // Stops accepting, lets the connections being served finish (each within
  // its timeouts; an idle keep-alive connection within the 5 s keep-alive
  // timeout), and joins the threads.
  void Shutdown();

 private:
  struct Routes;
  HttpServer() = default;

  std::unique_ptr<Routes> routes_;
  std::unique_ptr<httplib::Server> http_;
  std::thread listener_;
  int port_ = 0;
};

}  // namespace ringfence
