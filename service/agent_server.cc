// OpenAgentServer (ringfence/agent_server.h): GrpcAgentTransport on a
// channel opened per wakeup, or HttpAgentTransport.
#include "ringfence/agent_server.h"

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "ringfence/error_text.h"
#include "service/agent_http_transport.h"
#include "service/agent_transport.h"
#include "service/tls.h"

namespace ringfence {
namespace {

// gRPC: a channel opened for the calls of one wakeup. An open gRPC 1.51
// channel keeps gRPC's threads alive (8 of them) and its timers wake a few
// times a second; with the last channel closed, gRPC stops them all.
class GrpcServer final : public AgentServerTransport {
 public:
  GrpcServer(AgentServerOptions options, std::optional<ClientTls> tls)
      : options_(std::move(options)), tls_(std::move(tls)) {}

  absl::StatusOr<AssignmentAnswer> GetAssignment(
      const AgentIdentity& identity, uint64_t telemetry_pending) override {
    return Open().GetAssignment(identity, telemetry_pending);
  }
  absl::Status ReportTelemetry(absl::Span<const SpooledEvent> batch,
                               absl::Duration* retry_after) override {
    return Open().ReportTelemetry(batch, retry_after);
  }
  void CloseConnection() override { transport_.reset(); }

 private:
  AgentTransport& Open() {
    if (transport_ == nullptr) {
      transport_ = std::make_unique<GrpcAgentTransport>(
          MakeChannel(options_.server, tls_), options_.token,
          options_.deadline);
    }
    return *transport_;
  }

  const AgentServerOptions options_;
  const std::optional<ClientTls> tls_;
  std::unique_ptr<GrpcAgentTransport> transport_;
};

// A gRPC target is host:port or a gRPC resolver's URI (dns:///host:port,
// unix:///path, ipv4:..., ...). Another scheme before "://" (ftp://, ws://)
// is a mistake, refused rather than resolved as a host name.
absl::Status CheckGrpcTarget(absl::string_view server) {
  const size_t scheme_end = server.find("://");
  if (scheme_end == absl::string_view::npos) return absl::OkStatus();
  const absl::string_view scheme = server.substr(0, scheme_end);
  for (absl::string_view known :
       {"dns", "unix", "unix-abstract", "ipv4", "ipv6", "vsock", "xds"}) {
    if (absl::EqualsIgnoreCase(scheme, known)) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "server: ", QuoteForError(server),
      " has an unknown scheme; use host:port (gRPC), http://host:port or "
      "https://host:port"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AgentServerTransport>> OpenAgentServer(
    const AgentServerOptions& options) {
  if (options.server.empty()) {
    return absl::InvalidArgumentError(
        "server: must name the server (host:port, http://host:port or "
        "https://host:port)");
  }
  if (options.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("deadline: must be above zero");
  }
  if (IsHttpServerAddress(options.server)) {
    const bool https = absl::StartsWithIgnoreCase(options.server, "https://");
    if (!https &&
        (!options.tls_ca.empty() || !options.tls_server_name.empty())) {
      return absl::InvalidArgumentError(
          "tls_ca, tls_server_name: the server is http://, without TLS; use "
          "https://");
    }
    if (!https && (!options.tls_cert.empty() || !options.tls_key.empty())) {
      return absl::InvalidArgumentError(
          "tls_cert, tls_key: the server is http://, without TLS; use "
          "https://");
    }
    // The files checked as for gRPC, errors named alike (each names its
    // field).
    if (absl::StatusOr<std::optional<ClientTls>> tls =
            LoadClientTls(options.tls_ca, options.tls_cert, options.tls_key);
        !tls.ok()) {
      return tls.status();
    }
    HttpAgentOptions http;
    http.server = options.server;
    http.token = options.token;
    http.ca_file = options.tls_ca;
    http.server_name = options.tls_server_name;
    http.cert_file = options.tls_cert;
    http.key_file = options.tls_key;
    http.deadline = options.deadline;
    // Its errors name their fields (server, deadline, token, ...).
    absl::StatusOr<std::unique_ptr<HttpAgentTransport>> t =
        HttpAgentTransport::Create(std::move(http));
    if (!t.ok()) return t.status();
    return std::unique_ptr<AgentServerTransport>(*std::move(t));
  }
  if (absl::Status s = CheckGrpcTarget(options.server); !s.ok()) return s;
  absl::StatusOr<std::optional<ClientTls>> tls =
      LoadClientTls(options.tls_ca, options.tls_cert, options.tls_key);
  if (!tls.ok()) return tls.status();
  if (!options.tls_server_name.empty()) {
    if (!tls->has_value()) {
      return absl::InvalidArgumentError(
          "tls_server_name: needs TLS (tls_ca, or tls_cert and tls_key)");
    }
    (*tls)->server_name_override = options.tls_server_name;
  }
  return std::make_unique<GrpcServer>(options, *std::move(tls));
}

}  // namespace ringfence
