#include "service/http_server.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ringfence/error_text.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/call.h"
#include "service/http_json.h"
#include "service/server.h"
#include "service/status_map.h"
#include "service/ui_assets.h"

namespace ringfence {
namespace {

constexpr char kJson[] = "application/json";
constexpr char kProtobuf[] = "application/x-protobuf";

// How long a client told RESOURCE_EXHAUSTED (429) should wait, in seconds:
// the same as GrpcAgentTransport's default backoff after that code.
constexpr int kRetryAfterSeconds = 5;

void SendError(httplib::Response& res, grpc::StatusCode code,
               absl::string_view message) {
  res.status = HttpStatusFromGrpc(code);
  if (code == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    res.set_header("Retry-After", std::to_string(kRetryAfterSeconds));
  }
  res.set_content(JsonError(code, message), kJson);
}

void SendStatus(httplib::Response& res, const absl::Status& s) {
  SendError(res, static_cast<grpc::StatusCode>(s.code()), s.message());
}

// Whether a Content-Type header names `type`, parameters (";
// charset=...") aside, case-insensitively.
bool HasContentType(const httplib::Request& in, absl::string_view type) {
  const std::string header = in.get_header_value("Content-Type");
  absl::string_view value = header;
  value = value.substr(0, value.find(';'));
  return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(value), type);
}

// `host[:port]` in lower case, without the scheme's default port.
std::string NormalizeAuthority(absl::string_view authority, bool https) {
  std::string a = absl::AsciiStrToLower(authority);
  absl::string_view view = a;
  if (absl::ConsumeSuffix(&view, https ? ":443" : ":80")) {
    return std::string(view);
  }
  return a;
}

// A fixed set of threads serving connections, with a bounded queue: when
// it is full, enqueue (the accept loop) waits, so accepted connections
// cannot pile up without bound. Shutdown serves what is queued, then joins.
class BoundedThreadPool final : public httplib::TaskQueue {
 public:
  BoundedThreadPool(int threads, size_t max_queued) : max_queued_(max_queued) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this] { Work(); });
    }
  }
  ~BoundedThreadPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    space_.wait(lock, [&] { return jobs_.size() < max_queued_ || stopping_; });
    jobs_.push_back(std::move(fn));
    work_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
    }
    work_.notify_all();
    space_.notify_all();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        work_.wait(lock, [&] { return !jobs_.empty() || stopping_; });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        space_.notify_one();
      }
      fn();
    }
  }

  const size_t max_queued_;
  std::mutex mu_;
  std::condition_variable work_, space_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Host and port of "host:port" / "[v6]:port".
absl::Status SplitListen(const std::string& listen, std::string* host,
                         int* port) {
  size_t colon;
  if (!listen.empty() && listen[0] == '[') {
    const size_t end = listen.find(']');
    if (end == std::string::npos || end + 1 >= listen.size() ||
        listen[end + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat(
          "http_listen: ", QuoteForError(listen), " is not [v6]:port"));
    }
    *host = listen.substr(1, end - 1);
    colon = end + 1;
  } else {
    colon = listen.rfind(':');
    if (colon == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "http_listen: ", QuoteForError(listen), " is not host:port"));
    }
    *host = listen.substr(0, colon);
  }
  if (!absl::SimpleAtoi(listen.substr(colon + 1), port) || *port < 0 ||
      *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("http_listen: ", QuoteForError(listen),
                     ": the port must be a number in [0, 65535]"));
  }
  if (host->empty()) *host = "0.0.0.0";
  return absl::OkStatus();
}

// Asks clients for a certificate signed by one of the PEM CAs in
// `client_ca_pem`, verified if given, not required (token callers present
// none).
bool AcceptClientCertificates(const std::string& client_ca_pem, SSL_CTX& ctx) {
  BIO* pem = BIO_new_mem_buf(client_ca_pem.data(),
                             static_cast<int>(client_ca_pem.size()));
  if (pem == nullptr) return false;
  X509_STORE* store = SSL_CTX_get_cert_store(&ctx);
  int added = 0;
  bool ok = true;
  while (X509* ca = PEM_read_bio_X509(pem, nullptr, nullptr, nullptr)) {
    ok = ok && X509_STORE_add_cert(store, ca) == 1 &&
         SSL_CTX_add_client_CA(&ctx, ca) == 1;
    X509_free(ca);
    ++added;
  }
  BIO_free(pem);
  ERR_clear_error();  // the end of the file reads as an error
  if (!ok || added == 0) return false;
  SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
  // Sessions of verified clients resume only within this context.
  static constexpr unsigned char kContext[] = "ringfence-http";
  return SSL_CTX_set_session_id_context(&ctx, kContext, sizeof(kContext) - 1) ==
         1;
}

// Whether gRPC can carry `value` as metadata: printable ASCII only.
bool IsPrintableAscii(absl::string_view value) {
  return std::all_of(value.begin(), value.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7e; });
}

// The URI subject alternative names of the client certificate `ssl`
// verified (none without one).
std::vector<std::string> VerifiedPeerUris(const SSL* ssl) {
  std::vector<std::string> uris;
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return uris;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return uris;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                      static_cast<size_t>(ASN1_STRING_length(uri)));
  }
  GENERAL_NAMES_free(names);
  return uris;
}

// Loads a PEM chain (leaf first) and key into `ctx`, and the client CAs if
// any.
bool SetUpTls(const ServerTls& tls, SSL_CTX& ctx) {
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  BIO* certs = BIO_new_mem_buf(tls.cert_chain_pem.data(),
                               static_cast<int>(tls.cert_chain_pem.size()));
  bool ok = certs != nullptr;
  X509* leaf =
      ok ? PEM_read_bio_X509(certs, nullptr, nullptr, nullptr) : nullptr;
  ok = leaf != nullptr && SSL_CTX_use_certificate(&ctx, leaf) == 1;
  X509_free(leaf);
  while (ok) {
    X509* extra = PEM_read_bio_X509(certs, nullptr, nullptr, nullptr);
    if (extra == nullptr) break;
    if (SSL_CTX_add0_chain_cert(&ctx, extra) != 1) {
      X509_free(extra);
      ok = false;
    }
  }
  BIO_free(certs);
  ERR_clear_error();  // the end of the chain reads as an error
  if (!ok) return false;
  BIO* key_bio = BIO_new_mem_buf(tls.private_key_pem.data(),
                                 static_cast<int>(tls.private_key_pem.size()));
  EVP_PKEY* key = key_bio != nullptr ? PEM_read_bio_PrivateKey(key_bio, nullptr,
                                                               nullptr, nullptr)
                                     : nullptr;
  BIO_free(key_bio);
  ok = key != nullptr && SSL_CTX_use_PrivateKey(&ctx, key) == 1 &&
       SSL_CTX_check_private_key(&ctx) == 1;
  EVP_PKEY_free(key);
  if (ok && !tls.client_ca_pem.empty()) {
    ok = AcceptClientCertificates(tls.client_ca_pem, ctx);
  }
  return ok;
}

}  // namespace

struct HttpServer::Routes {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Releases::Stub> releases;
  std::unique_ptr<v1::Rollouts::Stub> rollouts;
  std::unique_ptr<v1::Cluster::Stub> cluster;
  std::unique_ptr<v1::Fleet::Stub> fleet;
  std::function<std::string()> render_metrics;
  HttpServerOptions options;

  // Forwards one call: `request` (with what the route took from the path)
  // is completed from the query (GET) or the JSON body (POST), then
  // `call(ctx, request, &response)` runs on the in-process channel.
  template <typename Request, typename Response, typename Call>
  void Forward(const httplib::Request& in, httplib::Response& out,
               Request request, Call call) {
    Request from_client;
    absl::Status parsed;
    if (in.method == "GET") {
      std::vector<std::pair<std::string, std::string>> params(in.params.begin(),
                                                              in.params.end());
      parsed = ParseQuery(params, &from_client);
    } else {
      parsed = ParseJsonBody(in.body, &from_client);
    }
    if (!parsed.ok()) return SendStatus(out, parsed);
    // What the path names wins only if the body does not contradict it.
    absl::Status conflict = CheckPathFields(request, from_client);
    if (!conflict.ok()) return SendStatus(out, conflict);
    from_client.MergeFrom(request);

    grpc::ClientContext ctx;
    if (!PrepareCall(in, out, ctx)) return;
    Response response;
    const grpc::Status s = call(&ctx, from_client, &response);
    if (!s.ok()) {
      if (std::optional<config::v1::ApprovalRequest> held =
              ApprovalRequestFromStatus(s)) {
        // Accepted for a second principal's approval; nothing done yet.
        out.status = 202;
        out.set_content(JsonHeld(s, *held), kJson);
        return;
      }
      return SendError(out, s.error_code(), s.error_message());
    }
    out.status = 200;
    out.set_content(ToJson(response), kJson);
  }

  // Sets the forwarded call's deadline and passes the request's
  // Authorization header (and nothing else of it) as the call's
  // `authorization` metadata. False, with `out` answered, for a header
  // gRPC cannot carry.
  bool PrepareCall(const httplib::Request& in, httplib::Response& out,
                   grpc::ClientContext& ctx) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoMilliseconds(options.call_deadline));
    // A verified client certificate's URIs, for the handlers to take the
    // principal from (call.h, kForwardedPeerUri).
    if (in.ssl != nullptr && !options.forwarded_peer_key.empty()) {
      std::vector<std::string> uris = VerifiedPeerUris(in.ssl);
      for (const std::string& uri : uris) {
        if (!IsPrintableAscii(uri)) {
          SendError(out, grpc::StatusCode::UNAUTHENTICATED,
                    "the client certificate has a URI that is not printable "
                    "ASCII");
          return false;
        }
        ctx.AddMetadata(kForwardedPeerUri, uri);
      }
      if (!uris.empty()) {
        ctx.AddMetadata(kForwardedPeerKey, options.forwarded_peer_key);
      }
    }
    if (!in.has_header("Authorization")) return true;
    const std::string authorization = in.get_header_value("Authorization");
    if (!IsPrintableAscii(authorization)) {
      SendError(out, grpc::StatusCode::UNAUTHENTICATED,
                "the Authorization header must be \"Bearer <token>\" in "
                "printable ASCII");
      return false;
    }
    ctx.AddMetadata("authorization", authorization);
    return true;
  }

  // Forwards one call whose request and response are binary protobuf
  // (application/x-protobuf) rather than JSON: the Fleet routes, for
  // agents. Errors are JSON as everywhere else.
  template <typename Request, typename Response, typename Call>
  void ForwardProtobuf(const httplib::Request& in, httplib::Response& out,
                       Call call) {
    if (!HasContentType(in, kProtobuf)) {
      out.status = 415;
      out.set_content(
          JsonError(grpc::StatusCode::INVALID_ARGUMENT,
                    absl::StrCat("request body: Content-Type must be ",
                                 kProtobuf, " (a binary ",
                                 Request::descriptor()->full_name(), ")")),
          kJson);
      return;
    }
    Request request;
    if (!request.ParseFromString(in.body)) {
      return SendError(out, grpc::StatusCode::INVALID_ARGUMENT,
                       absl::StrCat("request body: not a binary ",
                                    Request::descriptor()->full_name(), " (",
                                    in.body.size(), " bytes)"));
    }
    grpc::ClientContext ctx;
    if (!PrepareCall(in, out, ctx)) return;
    Response response;
    const grpc::Status s = call(&ctx, request, &response);
    if (!s.ok()) return SendError(out, s.error_code(), s.error_message());
    out.status = 200;
    out.set_content(response.SerializeAsString(), kProtobuf);
  }

  // The fields the path sets (non-default in `path`) must be unset or equal
  // in `body`.
  static absl::Status CheckPathFields(const google::protobuf::Message& path,
                                      const google::protobuf::Message& body) {
    const google::protobuf::Reflection* r = path.GetReflection();
    std::vector<const google::protobuf::FieldDescriptor*> fields;
    r->ListFields(path, &fields);
    for (const auto* f : fields) {
      if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_STRING ||
          f->is_repeated()) {
        continue;
      }
      const std::string in_body = r->GetString(body, f);
      if (!in_body.empty() && in_body != r->GetString(path, f)) {
        return absl::InvalidArgumentError(absl::StrCat(
            f->json_name(), ": the body says ", QuoteForError(in_body),
            " but the path says ", QuoteForError(r->GetString(path, f))));
      }
    }
    return absl::OkStatus();
  }

  bool MetricsAllowed(const httplib::Request& in, httplib::Response& out) {
    if (!options.auth.has_value() || options.metrics_no_auth) return true;
    // A client certificate naming a principal is the caller, as for the
    // API's routes.
    if (in.ssl != nullptr && !options.forwarded_peer_key.empty()) {
      absl::StatusOr<std::optional<Principal>> from_certificate =
          PrincipalFromCertificateUris(VerifiedPeerUris(in.ssl));
      absl::Status s = from_certificate.status();
      if (s.ok() && from_certificate->has_value()) {
        s = Authorize(**from_certificate, kReaderRoles, "GET /metrics");
        if (s.ok()) return true;
      }
      if (!s.ok()) {
        SendStatus(out, s);
        return false;
      }
    }
    absl::StatusOr<Principal> p =
        options.auth->Authenticate(in.get_header_value("Authorization"));
    absl::Status s =
        p.ok() ? Authorize(*p, kReaderRoles, "GET /metrics") : p.status();
    if (s.ok()) return true;
    SendStatus(out, s);
    return false;
  }

  void Install(httplib::Server& http) {
    using Req = httplib::Request;
    using Res = httplib::Response;
    http.Get("/v1/releases", [this](const Req& in, Res& out) {
      Forward<v1::ListReleasesRequest, v1::ListReleasesResponse>(
          in, out, {}, [this](auto* ctx, const auto& req, auto* resp) {
            return releases->ListReleases(ctx, req, resp);
          });
    });
    http.Get("/v1/releases/(.+)", [this](const Req& in, Res& out) {
      v1::GetReleaseRequest req;
      req.set_release_id(in.matches[1].str());
      Forward<v1::GetReleaseRequest, config::v1::Release>(
          in, out, req, [this](auto* ctx, const auto& r, auto* resp) {
            return releases->GetRelease(ctx, r, resp);
          });
    });
    http.Get("/v1/rollouts", [this](const Req& in, Res& out) {
      Forward<v1::ListRolloutsRequest, v1::ListRolloutsResponse>(
          in, out, {}, [this](auto* ctx, const auto& req, auto* resp) {
            return rollouts->ListRollouts(ctx, req, resp);
          });
    });
    http.Get("/v1/rollouts/(.+)", [this](const Req& in, Res& out) {
      v1::GetRolloutRequest req;
      req.set_rollout_id(in.matches[1].str());
      Forward<v1::GetRolloutRequest, v1::GetRolloutResponse>(
          in, out, req, [this](auto* ctx, const auto& r, auto* resp) {
            return rollouts->GetRollout(ctx, r, resp);
          });
    });
    http.Post("/v1/rollouts/(.+)/(pause|resume|abort|promote)",
              [this](const Req& in, Res& out) {
                v1::RolloutActionRequest req;
                req.set_rollout_id(in.matches[1].str());
                const std::string action = in.matches[2].str();
                Forward<v1::RolloutActionRequest, config::v1::Rollout>(
                    in, out, req,
                    [this, &action](auto* ctx, const auto& r, auto* resp) {
                      auto* stub = rollouts.get();
                      if (action == "pause") {
                        return stub->PauseRollout(ctx, r, resp);
                      }
                      if (action == "resume") {
                        return stub->ResumeRollout(ctx, r, resp);
                      }
                      if (action == "abort") {
                        return stub->AbortRollout(ctx, r, resp);
                      }
                      return stub->PromoteRollout(ctx, r, resp);
                    });
              });
    http.Post("/v1/emergency-stop", [this](const Req& in, Res& out) {
      Forward<v1::EmergencyStopRequest, v1::EmergencyStopResponse>(
          in, out, {}, [this](auto* ctx, const auto& r, auto* resp) {
            return rollouts->EmergencyStop(ctx, r, resp);
          });
    });
    http.Post("/v1/emergency-stop/clear", [this](const Req& in, Res& out) {
      Forward<v1::ClearEmergencyStopRequest, v1::ClearEmergencyStopResponse>(
          in, out, {}, [this](auto* ctx, const auto& r, auto* resp) {
            return rollouts->ClearEmergencyStop(ctx, r, resp);
          });
    });
    http.Get("/v1/gate", [this](const Req& in, Res& out) {
      Forward<v1::CheckGateRequest, v1::CheckGateResponse>(
          in, out, {}, [this](auto* ctx, const auto& r, auto* resp) {
            return rollouts->CheckGate(ctx, r, resp);
          });
    });
    http.Get("/v1/cluster", [this](const Req& in, Res& out) {
      Forward<v1::GetClusterStatusRequest, v1::GetClusterStatusResponse>(
          in, out, {}, [this](auto* ctx, const auto& r, auto* resp) {
            return cluster->GetClusterStatus(ctx, r, resp);
          });
    });
    http.Get("/v1/approvals", [this](const Req& in, Res& out) {
      Forward<v1::ListApprovalsRequest, v1::ListApprovalsResponse>(
          in, out, {}, [this](auto* ctx, const auto& r, auto* resp) {
            return rollouts->ListApprovals(ctx, r, resp);
          });
    });
    http.Post("/v1/approvals/([^/]+)/approve", [this](const Req& in, Res& out) {
      v1::ApproveRequest req;
      req.set_request_id(in.matches[1].str());
      Forward<v1::ApproveRequest, v1::ApproveResponse>(
          in, out, req, [this](auto* ctx, const auto& r, auto* resp) {
            return rollouts->Approve(ctx, r, resp);
          });
    });
    http.Post("/v1/approvals/([^/]+)/reject", [this](const Req& in, Res& out) {
      v1::RejectRequest req;
      req.set_request_id(in.matches[1].str());
      Forward<v1::RejectRequest, v1::RejectResponse>(
          in, out, req, [this](auto* ctx, const auto& r, auto* resp) {
            return rollouts->Reject(ctx, r, resp);
          });
    });
    http.Get("/v1/audit", [this](const Req& in, Res& out) {
      Forward<v1::ListAuditRequest, v1::ListAuditResponse>(
          in, out, {}, [this](auto* ctx, const auto& r, auto* resp) {
            return rollouts->ListAudit(ctx, r, resp);
          });
    });
    // Agents: binary protobuf in and out (agent_http_transport.h).
    http.Post("/v1/fleet/assignment", [this](const Req& in, Res& out) {
      ForwardProtobuf<v1::GetAssignmentRequest, v1::GetAssignmentResponse>(
          in, out, [this](auto* ctx, const auto& r, auto* resp) {
            return fleet->GetAssignment(ctx, r, resp);
          });
    });
    http.Post("/v1/fleet/telemetry", [this](const Req& in, Res& out) {
      ForwardProtobuf<v1::ReportTelemetryRequest, v1::ReportTelemetryResponse>(
          in, out, [this](auto* ctx, const auto& r, auto* resp) {
            return fleet->ReportTelemetry(ctx, r, resp);
          });
    });
    // The dashboard: static, compiled in, served to anyone (it holds no
    // data; every call it makes needs the token the operator types in).
    const auto serve = [&http](const char* path, const char* body,
                               const char* type) {
      http.Get(path, [body, type](const Req&, Res& out) {
        out.status = 200;
        out.set_header("Cache-Control", "no-cache");
        out.set_content(body, type);
      });
    };
    serve("/", internal::kDashboardHtml, "text/html; charset=utf-8");
    serve("/ui/dashboard.js", internal::kDashboardJs,
          "text/javascript; charset=utf-8");
    serve("/ui/dashboard.css", internal::kDashboardCss,
          "text/css; charset=utf-8");
    http.Get("/metrics", [this](const Req& in, Res& out) {
      if (!MetricsAllowed(in, out)) return;
      out.status = 200;
      out.set_content(render_metrics(), "text/plain; version=0.0.4");
    });
    // A browser sends Origin with every cross-origin POST: another site's
    // page may not make one here, token or not. Reads are not refused:
    // without CORS headers such a page cannot read the answer, and
    // clients other than browsers send no Origin.
    http.set_pre_routing_handler([this](const Req& in, Res& out) {
      if (in.method == "GET" || in.method == "HEAD" ||
          !in.has_header("Origin")) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      if (IsSameOrigin(in.get_header_value("Origin"),
                       in.get_header_value("Host"), options.tls.has_value())) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      SendError(out, grpc::StatusCode::PERMISSION_DENIED,
                "cross-origin request refused: the Origin header does not "
                "name this server");
      return httplib::Server::HandlerResponse::Handled;
    });
    // Errors httplib produces itself (no route, body too large, bad
    // request line) get the same JSON shape as the API's.
    http.set_error_handler([](const Req&, Res& out) {
      if (!out.body.empty()) return;
      grpc::StatusCode code = grpc::StatusCode::INVALID_ARGUMENT;
      std::string message = "malformed HTTP request";
      if (out.status == 404) {
        code = grpc::StatusCode::NOT_FOUND;
        message = "no such route (see the routes of the HTTP API)";
      } else if (out.status == 413) {
        code = grpc::StatusCode::RESOURCE_EXHAUSTED;
        message = "request body too large (see --http_max_body_bytes)";
      } else if (out.status == 405) {
        code = grpc::StatusCode::UNIMPLEMENTED;
        message = "method not allowed on this route";
      } else if (out.status >= 500) {
        code = grpc::StatusCode::INTERNAL;
        message = "internal error";
      }
      out.set_content(JsonError(code, message), kJson);
    });
  }
};

bool IsSameOrigin(absl::string_view origin, absl::string_view host,
                  bool https) {
  absl::string_view authority = origin;
  if (!absl::ConsumePrefix(&authority, https ? "https://" : "http://") ||
      authority.empty() || host.empty() ||
      authority.find_first_of("/?#@") != absl::string_view::npos) {
    return false;  // includes "null" (opaque origins)
  }
  return NormalizeAuthority(authority, https) ==
         NormalizeAuthority(host, https);
}

absl::Status CheckHttpAuthentication(const HttpServerOptions& options) {
  if (options.auth.has_value() || options.insecure_no_auth ||
      IsLoopbackAddress(options.listen)) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "http_listen: ", QuoteForError(options.listen),
      " is not a loopback address, and without bearer tokens "
      "(--auth_tokens_file) every HTTP caller would be admin (HTTP "
      "clients need present no certificate); configure tokens, listen on "
      "127.0.0.1, or accept that explicitly with --insecure_no_auth"));
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    std::shared_ptr<grpc::Channel> channel,
    std::function<std::string()> render_metrics, HttpServerOptions options) {
  if (absl::Status s = CheckHttpAuthentication(options); !s.ok()) return s;
  if (options.threads <= 0 || options.max_queued_connections <= 0 ||
      options.max_body_bytes == 0) {
    return absl::InvalidArgumentError(
        "http: threads, max_queued_connections and max_body_bytes must be > "
        "0");
  }
  std::string host;
  int port = 0;
  if (absl::Status s = SplitListen(options.listen, &host, &port); !s.ok()) {
    return s;
  }
  std::unique_ptr<HttpServer> server(new HttpServer());
  if (options.tls.has_value()) {
    const ServerTls tls = *options.tls;
    auto https = std::make_unique<httplib::SSLServer>(
        [tls](SSL_CTX& ctx) { return SetUpTls(tls, ctx); });
    if (!https->is_valid()) {
      return absl::InvalidArgumentError(
          "http: the TLS certificate chain or key was refused");
    }
    server->http_ = std::move(https);
  } else {
    server->http_ = std::make_unique<httplib::Server>();
  }
  httplib::Server& http = *server->http_;
  const int threads = options.threads;
  const size_t queued = static_cast<size_t>(options.max_queued_connections);
  http.new_task_queue = [threads, queued] {
    return new BoundedThreadPool(threads, queued);
  };
  http.set_payload_max_length(options.max_body_bytes);
  http.set_read_timeout(absl::ToChronoMicroseconds(options.read_timeout));
  http.set_write_timeout(absl::ToChronoMicroseconds(options.write_timeout));
  http.set_keep_alive_timeout(5);
  // An answer is written as its headers and then its body: with Nagle's
  // algorithm on, the body waits for the client's delayed acknowledgement
  // of the headers (about 40 ms on Linux) on every request of a kept
  // connection (bench/http1_bench.cc, BM_HttpListenerKeptConnection).
  http.set_tcp_nodelay(true);
  // An agent polling every second keeps its connection (httplib's default
  // closes it after 5 requests).
  http.set_keep_alive_max_count(100);
  // On every response: the dashboard runs only its own script, in no
  // frame, and leaks no URL; API responses get the same (harmless there).
  http.set_default_headers({
      {"Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
  });

  server->routes_ = std::make_unique<Routes>();
  Routes& routes = *server->routes_;
  routes.releases = v1::Releases::NewStub(channel);
  routes.rollouts = v1::Rollouts::NewStub(channel);
  routes.cluster = v1::Cluster::NewStub(channel);
  routes.fleet = v1::Fleet::NewStub(channel);
  routes.channel = std::move(channel);
  routes.render_metrics = std::move(render_metrics);
  routes.options = std::move(options);
  routes.Install(http);

  server->port_ = port == 0 ? http.bind_to_any_port(host)
                            : (http.bind_to_port(host, port) ? port : -1);
  if (server->port_ <= 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", QuoteForError(routes.options.listen),
        " for HTTP (address in use, or not an address of this machine?)"));
  }
  server->listener_ = std::thread([&http] { http.listen_after_bind(); });
  // Shutdown may come at once; stop() is only safe once listening.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!http.is_running() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  return server;
}

HttpServer::~HttpServer() { Shutdown(); }

void HttpServer::Shutdown() {
  if (http_ == nullptr) return;
  http_->stop();
  if (listener_.joinable()) listener_.join();
  http_.reset();
}

}  // namespace ringfence
