#include "service/agent_http_transport.h"

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
#include "service/http1_client.h"

namespace ringfence {
namespace {

constexpr char kProtobuf[] = "application/x-protobuf";

// The longest Retry-After honoured.
constexpr absl::Duration kMaxRetryAfter = absl::Hours(1);

// The code an HTTP status stands for when the body names none (a proxy's
// error page, say): the inverse of HttpStatusFromGrpc where it is one to
// one, and "try again" for the gateway errors.
absl::StatusCode CodeFromHttpStatus(int status) {
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
absl::Status StatusFromAnswer(int http_status, const std::string& body) {
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
          // Bounded: the server's own messages are at most 2 KiB.
          return absl::Status(
              status_code, CutForError(message->second.string_value(), 2048));
        }
      }
    }
  }
  return absl::Status(
      CodeFromHttpStatus(http_status),
      absl::StrCat("HTTP ", http_status, ": ", QuoteForError(body, 200)));
}

}  // namespace

bool IsHttpServerAddress(absl::string_view server) {
  return absl::StartsWithIgnoreCase(server, "http://") ||
         absl::StartsWithIgnoreCase(server, "https://");
}

HttpAgentTransport::HttpAgentTransport(HttpAgentOptions options,
                                       std::unique_ptr<Http1Client> client)
    : options_(std::move(options)), client_(std::move(client)) {
  headers_ = absl::StrCat("Content-Type: ", kProtobuf,
                          "\r\nAccept: ", kProtobuf, "\r\n");
  if (!options_.token.empty()) {
    absl::StrAppend(&headers_, "Authorization: Bearer ", options_.token,
                    "\r\n");
  }
}

HttpAgentTransport::~HttpAgentTransport() = default;

absl::StatusOr<std::unique_ptr<HttpAgentTransport>> HttpAgentTransport::Create(
    HttpAgentOptions options) {
  if (options.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("deadline: must be above zero");
  }
  // A header line cannot carry a line break or other control character.
  for (unsigned char c : options.token) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("token: contains a control character");
    }
  }
  absl::StatusOr<Http1Target> target = ParseHttpUrl("server", options.server);
  if (!target.ok()) return target.status();
  if (!options.server_name.empty()) {
    if (options.server_name.find_first_of(" \t\r\n/:[]@") !=
        std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("server_name: ", QuoteForError(options.server_name),
                       " is not a host name"));
    }
    target->name = options.server_name;
  }
  target->ca_file = options.ca_file;
  target->cert_file = options.cert_file;
  target->key_file = options.key_file;
  absl::StatusOr<std::unique_ptr<Http1Client>> client =
      Http1Client::Create(*std::move(target));
  if (!client.ok()) return client.status();
  return std::unique_ptr<HttpAgentTransport>(
      new HttpAgentTransport(std::move(options), *std::move(client)));
}

void HttpAgentTransport::CloseConnection() { client_->Close(); }

absl::StatusOr<std::string> HttpAgentTransport::Post(
    const char* path, const std::string& body, absl::Duration* retry_after) {
  absl::StatusOr<Http1Response> answer =
      client_->Post(path, headers_, body, absl::Now() + options_.deadline,
                    options_.max_response_bytes);
  if (!answer.ok()) {
    return absl::Status(answer.status().code(),
                        absl::StrCat(path, ": ", answer.status().message()));
  }
  if (answer->status == 200) return std::move(answer->body);
  absl::Status error = StatusFromAnswer(answer->status, answer->body);
  if (retry_after != nullptr && absl::IsResourceExhausted(error)) {
    *retry_after = options_.backpressure_retry;
    int64_t seconds = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(answer->retry_after),
                         &seconds) &&
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
