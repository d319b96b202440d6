#include "service/http_json.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "ringfence/error_text.h"
#include "service/status_map.h"

namespace ringfence {
namespace {

namespace pb = ::google::protobuf;

absl::Status Parse(absl::string_view what, absl::string_view json,
                   pb::Message* request) {
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const absl::string_view text = json.empty() ? "{}" : json;
  const auto status = pb::util::JsonStringToMessage(
      pb::StringPiece(text.data(), text.size()), request, options);
  if (status.ok()) return absl::OkStatus();
  // The parser's words name the field (e.g. "colour: Cannot find field.");
  // they may quote the input, so they are bounded like any input.
  const auto words = status.message();
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": ",
      QuoteForError(absl::string_view(words.data(), words.size()))));
}

}  // namespace

int HttpStatusFromGrpc(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::ABORTED:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::CANCELLED:
      return 499;
    case grpc::StatusCode::UNIMPLEMENTED:
      return 501;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

std::string JsonError(grpc::StatusCode code, absl::string_view message) {
  pb::Struct body;
  auto& fields = *body.mutable_fields();
  fields["code"].set_string_value(std::string(GrpcCodeName(code)));
  fields["message"].set_string_value(
      std::string(message.substr(0, kMaxStatusMessageBytes)));
  std::string out;
  // A Struct of two strings always serializes.
  (void)pb::util::MessageToJsonString(body, &out);
  return out;
}

std::string JsonHeld(const grpc::Status& status, const pb::Message& request) {
  std::string body = JsonError(status.error_code(), status.error_message());
  body.pop_back();  // the closing brace of the error's object
  absl::StrAppend(&body, ",\"approvalRequest\":", ToJson(request), "}");
  return body;
}

absl::Status ParseJsonBody(absl::string_view body, pb::Message* request) {
  return Parse("request body", body, request);
}

absl::Status ParseQuery(
    const std::vector<std::pair<std::string, std::string>>& params,
    pb::Message* request) {
  std::map<std::string, std::vector<const std::string*>> by_name;
  for (const auto& [name, value] : params) by_name[name].push_back(&value);
  pb::Struct object;
  for (const auto& [name, values] : by_name) {
    auto scalar = [](const std::string& v) {
      pb::Value out;
      if (v == "true" || v == "false") {
        out.set_bool_value(v == "true");
      } else {
        out.set_string_value(v);
      }
      return out;
    };
    pb::Value& field = (*object.mutable_fields())[name];
    if (values.size() == 1) {
      field = scalar(*values[0]);
    } else {
      for (const std::string* v : values) {
        *field.mutable_list_value()->add_values() = scalar(*v);
      }
    }
  }
  std::string json;
  (void)pb::util::MessageToJsonString(object, &json);
  return Parse("query", json, request);
}

std::string ToJson(const pb::Message& message) {
  std::string out;
  const auto status = pb::util::MessageToJsonString(message, &out);
  if (!status.ok()) {
    return JsonError(grpc::StatusCode::INTERNAL,
                     "the response could not be written as JSON");
  }
  return out;
}

}  // namespace ringfence
