#include "service/agent_http_transport.h"

#include <curl/curl.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "ringfence/error_text.h"
#include "service/agent_transport.h"
#include "service/curl_api.h"

namespace ringfence {
namespace {

constexpr char kProtobuf[] = "application/x-protobuf";

// libcurl's functions. REQUIRES: internal::LoadCurlApi() succeeded (Create
// checks it before anything else).
const internal::CurlApi& Api() { return **internal::LoadCurlApi(); }
// The longest Retry-After honoured.
constexpr absl::Duration kMaxRetryAfter = absl::Hours(1);

// The code an HTTP status stands for when the body names none (a proxy's
// error page, say): the inverse of HttpStatusFromGrpc where it is one to
// one, and "try again" for the gateway errors.
absl::StatusCode CodeFromHttpStatus(long status) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kAborted;
    case 413:
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 499:
      return absl::StatusCode::kCancelled;
    case 500:
      return absl::StatusCode::kInternal;
    case 501:
      return absl::StatusCode::kUnimplemented;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return status >= 500 ? absl::StatusCode::kUnavailable
                           : absl::StatusCode::kUnknown;
  }
}

// The status of a non-200 answer: the code and message of the server's JSON
// error body ({"code": "NOT_FOUND", "message": "..."}), else the HTTP
// status's code with the start of the body.
absl::Status StatusFromAnswer(long http_status, const std::string& body) {
  google::protobuf::Struct json;
  if (google::protobuf::util::JsonStringToMessage(body, &json).ok()) {
    const auto& fields = json.fields();
    auto code = fields.find("code");
    auto message = fields.find("message");
    if (code != fields.end() && message != fields.end()) {
      for (int c = 1; c <= 16; ++c) {
        const auto status_code = static_cast<absl::StatusCode>(c);
        if (code->second.string_value() ==
            absl::StatusCodeToString(status_code)) {
          return absl::Status(status_code, message->second.string_value());
        }
      }
    }
  }
  return absl::Status(CodeFromHttpStatus(http_status),
                      absl::StrCat("HTTP ", http_status, ": ",
                                   QuoteForError(body.substr(0, 200))));
}

}  // namespace

bool IsHttpServerAddress(absl::string_view server) {
  return absl::StartsWithIgnoreCase(server, "http://") ||
         absl::StartsWithIgnoreCase(server, "https://");
}

// libcurl's handles. The share handle keeps the TLS session (and resolved
// names) across easy handles, so CloseConnection can drop the connection
// with its easy handle and the next connection still resumes the session.
struct HttpAgentTransport::Curl {
  ~Curl() {
    if (easy != nullptr) Api().easy_cleanup(easy);
    if (share != nullptr) Api().share_cleanup(share);
    Api().slist_free_all(headers);
    Api().slist_free_all(connect_to);
  }

  CURLSH* share = nullptr;
  CURL* easy = nullptr;  // nullptr when closed
  curl_slist* headers = nullptr;
  curl_slist* connect_to = nullptr;
  // scheme://host:port, the host being the TLS name to check.
  std::string base_url;
  std::string response;
  bool response_too_long = false;
  size_t max_response_bytes = 0;
  char error[CURL_ERROR_SIZE] = {0};

  static size_t Write(char* data, size_t size, size_t n, void* self_ptr) {
    auto* self = static_cast<Curl*>(self_ptr);
    if (self->response.size() + size * n > self->max_response_bytes) {
      self->response_too_long = true;
      return 0;  // aborts the transfer
    }
    self->response.append(data, size * n);
    return size * n;
  }
};

HttpAgentTransport::HttpAgentTransport(HttpAgentOptions options)
    : options_(std::move(options)), curl_(std::make_unique<Curl>()) {}

HttpAgentTransport::~HttpAgentTransport() = default;

absl::StatusOr<std::unique_ptr<HttpAgentTransport>> HttpAgentTransport::Create(
    HttpAgentOptions options) {
  if (options.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("deadline: must be above zero");
  }
  if (absl::StatusOr<const internal::CurlApi*> api = internal::LoadCurlApi();
      !api.ok()) {
    return api.status();
  }
  if (Api().global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    return absl::InternalError("cannot initialize libcurl");
  }
  const std::string quoted = QuoteForError(options.server);
  std::unique_ptr<CURLU, decltype(Api().url_cleanup)> url(Api().url(),
                                                          Api().url_cleanup);
  if (url == nullptr || Api().url_set(url.get(), CURLUPART_URL,
                                      options.server.c_str(), 0) != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("server: ", quoted, " is not an http(s):// URL"));
  }
  auto part = [&](CURLUPart which, unsigned flags = 0) -> std::string {
    char* value = nullptr;
    if (Api().url_get(url.get(), which, &value, flags) != CURLUE_OK) return "";
    std::string s = value;
    Api().free(value);
    return s;
  };
  const std::string scheme = part(CURLUPART_SCHEME);
  const std::string host = part(CURLUPART_HOST);
  const std::string port = part(CURLUPART_PORT, CURLU_DEFAULT_PORT);
  const std::string path = part(CURLUPART_PATH);
  if ((scheme != "http" && scheme != "https") || host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "server: ", quoted, " is not http://host:port or https://host:port"));
  }
  if (!(path.empty() || path == "/") || !part(CURLUPART_QUERY).empty() ||
      !part(CURLUPART_FRAGMENT).empty() || !part(CURLUPART_USER).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("server: ", quoted,
                     " must be scheme://host:port alone (no path, query, "
                     "fragment or user)"));
  }
  std::unique_ptr<HttpAgentTransport> t(
      new HttpAgentTransport(std::move(options)));
  Curl& c = *t->curl_;
  c.max_response_bytes = t->options_.max_response_bytes;
  const std::string& name = t->options_.server_name;
  // Another name to check the certificate against: the URL names it, and
  // the connection goes to the host given.
  c.base_url =
      absl::StrCat(scheme, "://", name.empty() ? host : name, ":", port);
  if (!name.empty()) {
    c.connect_to = Api().slist_append(
        nullptr, absl::StrCat(name, ":", port, ":", host, ":", port).c_str());
  }
  c.share = Api().share_init();
  if (c.share == nullptr) {
    return absl::InternalError("cannot initialize libcurl");
  }
  Api().share_setopt(c.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  Api().share_setopt(c.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  c.headers = Api().slist_append(
      nullptr, absl::StrCat("Content-Type: ", kProtobuf).c_str());
  c.headers = Api().slist_append(c.headers,
                                 absl::StrCat("Accept: ", kProtobuf).c_str());
  // No "Expect: 100-continue" round trip for larger batches.
  c.headers = Api().slist_append(c.headers, "Expect:");
  if (!t->options_.token.empty()) {
    c.headers = Api().slist_append(
        c.headers,
        absl::StrCat("Authorization: Bearer ", t->options_.token).c_str());
  }
  return t;
}

void HttpAgentTransport::CloseConnection() {
  if (curl_->easy == nullptr) return;
  Api().easy_cleanup(curl_->easy);
  curl_->easy = nullptr;
}

absl::StatusOr<std::string> HttpAgentTransport::Post(
    const char* path, const std::string& body, absl::Duration* retry_after) {
  Curl& c = *curl_;
  if (c.easy == nullptr) {
    c.easy = Api().easy_init();
    if (c.easy == nullptr) {
      return absl::InternalError("cannot initialize libcurl");
    }
    CURL* e = c.easy;
    Api().easy_setopt(e, CURLOPT_SHARE, c.share);
    Api().easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    Api().easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    Api().easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    Api().easy_setopt(e, CURLOPT_HTTPHEADER, c.headers);
    if (c.connect_to != nullptr) {
      Api().easy_setopt(e, CURLOPT_CONNECT_TO, c.connect_to);
    }
    if (!options_.ca_file.empty()) {
      Api().easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
    }
    // Only the server's own answer counts: no proxy from the environment.
    Api().easy_setopt(e, CURLOPT_NOPROXY, "*");
    Api().easy_setopt(e, CURLOPT_USERAGENT, "ringfence-agent");
    Api().easy_setopt(e, CURLOPT_ERRORBUFFER, c.error);
    Api().easy_setopt(e, CURLOPT_WRITEFUNCTION, &Curl::Write);
    Api().easy_setopt(e, CURLOPT_WRITEDATA, &c);
  }
  CURL* e = c.easy;
  const std::string url = c.base_url + path;
  Api().easy_setopt(e, CURLOPT_URL, url.c_str());
  Api().easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
  Api().easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                    static_cast<curl_off_t>(body.size()));
  Api().easy_setopt(e, CURLOPT_TIMEOUT_MS,
                    static_cast<long>(std::max<int64_t>(
                        1, absl::ToInt64Milliseconds(options_.deadline))));
  c.response.clear();
  c.response_too_long = false;
  c.error[0] = '\0';
  const CURLcode code = Api().easy_perform(e);
  if (code != CURLE_OK) {
    const std::string why =
        c.error[0] != '\0' ? c.error : Api().easy_strerror(code);
    if (c.response_too_long) {
      return absl::ResourceExhaustedError(
          absl::StrCat(path, ": response longer than ",
                       options_.max_response_bytes, " bytes"));
    }
    if (code == CURLE_OPERATION_TIMEDOUT) {
      return absl::DeadlineExceededError(absl::StrCat(path, ": ", why));
    }
    return absl::UnavailableError(absl::StrCat(path, ": ", why));
  }
  long status = 0;
  Api().easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (status == 200) return std::move(c.response);
  absl::Status error = StatusFromAnswer(status, c.response);
  if (retry_after != nullptr && absl::IsResourceExhausted(error)) {
    *retry_after = options_.backpressure_retry;
    curl_header* h = nullptr;
    int64_t seconds = 0;
    if (Api().easy_header(e, "Retry-After", 0, CURLH_HEADER, -1, &h) ==
            CURLHE_OK &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(h->value), &seconds) &&
        seconds >= 0) {
      *retry_after = std::min(absl::Seconds(seconds), kMaxRetryAfter);
    }
  }
  return error;
}

absl::StatusOr<AssignmentAnswer> HttpAgentTransport::GetAssignment(
    const AgentIdentity& identity, uint64_t telemetry_pending) {
  absl::StatusOr<std::string> body =
      Post("/v1/fleet/assignment",
           AssignmentRequest(identity, telemetry_pending).SerializeAsString(),
           nullptr);
  if (!body.ok()) return body.status();
  v1::GetAssignmentResponse response;
  if (!response.ParseFromString(*body)) {
    return absl::InternalError(
        absl::StrCat("/v1/fleet/assignment: the answer (", body->size(),
                     " bytes) is not a binary GetAssignmentResponse"));
  }
  return AnswerFromResponse(identity, response);
}

absl::Status HttpAgentTransport::ReportTelemetry(
    absl::Span<const SpooledEvent> batch, absl::Duration* retry_after) {
  absl::StatusOr<std::string> body =
      Post("/v1/fleet/telemetry", TelemetryRequest(batch).SerializeAsString(),
           retry_after);
  return body.status();
}

}  // namespace ringfence
