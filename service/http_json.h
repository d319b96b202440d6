// The HTTP/JSON face of the API's messages and statuses: gRPC status codes
// as HTTP statuses, errors as JSON bodies, requests parsed from protobuf's
// canonical JSON mapping (and from query parameters) and responses written
// in it. The HTTP listener (http_server.h) uses these; nothing here does
// I/O.
//
// Errors are a JSON object with the gRPC code's name and the service's
// message (already bounded and quoted by the service, error_text.h):
//
//   {"code": "INVALID_ARGUMENT", "message": "reason: must not be empty"}
//
// Thread safety: pure functions.
#pragma once

#include <grpcpp/support/status.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace ringfence {

// HttpStatusFromGrpc
//
// The HTTP status for a gRPC code: OK 200; INVALID_ARGUMENT,
// FAILED_PRECONDITION, OUT_OF_RANGE 400; UNAUTHENTICATED 401;
// PERMISSION_DENIED 403; NOT_FOUND 404; ALREADY_EXISTS, ABORTED 409;
// RESOURCE_EXHAUSTED 429; CANCELLED 499; UNIMPLEMENTED 501; UNAVAILABLE
// 503; DEADLINE_EXCEEDED 504; anything else 500.
int HttpStatusFromGrpc(grpc::StatusCode code);

// JsonError
//
// The JSON error body {"code": GrpcCodeName(code), "message": message},
// `message` JSON-escaped and cut to kMaxStatusMessageBytes (status_map.h).
std::string JsonError(grpc::StatusCode code, absl::string_view message);

// JsonHeld
//
// The body of a call the two-person rule held (answered 202 Accepted):
// JsonError's fields and "approvalRequest", the request in the canonical
// JSON mapping.
std::string JsonHeld(const grpc::Status& status,
                     const google::protobuf::Message& request);

// ParseJsonBody
//
// Merges a JSON request body (protobuf's canonical JSON mapping; field
// names in lowerCamelCase or as in the .proto) into `request`. An empty
// body is an empty object. INVALID_ARGUMENT naming the problem, e.g. an
// unknown field ("request body: \"colour: Cannot find field.\""), with the
// parser's words quoted and cut (QuoteForError).
absl::Status ParseJsonBody(absl::string_view body,
                           google::protobuf::Message* request);

// ParseQuery
//
// Merges URL query parameters (already decoded; a name may repeat) into
// `request` as if they were a JSON object of strings: a repeated name
// becomes an array, "true"/"false" become booleans, everything else a
// string (which the JSON mapping accepts for numbers and enums too).
// INVALID_ARGUMENT as ParseJsonBody, "query: ..." (e.g. an unknown
// parameter).
absl::Status ParseQuery(
    const std::vector<std::pair<std::string, std::string>>& params,
    google::protobuf::Message* request);

// ToJson
//
// `message` in the canonical JSON mapping (lowerCamelCase names, fields at
// their default value left out).
std::string ToJson(const google::protobuf::Message& message);

}  // namespace ringfence
