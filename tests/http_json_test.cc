#include "service/http_json.h"

#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "ringfence/v1/ringfence.pb.h"
#include "service/http_server.h"
#include "service/status_map.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

struct Mapping {
  grpc::StatusCode code;
  int http;
  const char* name;
};

class HttpStatusTest : public ::testing::TestWithParam<Mapping> {};

TEST_P(HttpStatusTest, MapsCodeAndName) {
  EXPECT_EQ(HttpStatusFromGrpc(GetParam().code), GetParam().http);
  EXPECT_EQ(GrpcCodeName(GetParam().code), GetParam().name);
}

INSTANTIATE_TEST_SUITE_P(
    EveryCode, HttpStatusTest,
    ::testing::Values(
        Mapping{grpc::StatusCode::OK, 200, "OK"},
        Mapping{grpc::StatusCode::CANCELLED, 499, "CANCELLED"},
        Mapping{grpc::StatusCode::UNKNOWN, 500, "UNKNOWN"},
        Mapping{grpc::StatusCode::INVALID_ARGUMENT, 400, "INVALID_ARGUMENT"},
        Mapping{grpc::StatusCode::DEADLINE_EXCEEDED, 504, "DEADLINE_EXCEEDED"},
        Mapping{grpc::StatusCode::NOT_FOUND, 404, "NOT_FOUND"},
        Mapping{grpc::StatusCode::ALREADY_EXISTS, 409, "ALREADY_EXISTS"},
        Mapping{grpc::StatusCode::PERMISSION_DENIED, 403, "PERMISSION_DENIED"},
        Mapping{grpc::StatusCode::RESOURCE_EXHAUSTED, 429,
                "RESOURCE_EXHAUSTED"},
        Mapping{grpc::StatusCode::FAILED_PRECONDITION, 400,
                "FAILED_PRECONDITION"},
        Mapping{grpc::StatusCode::ABORTED, 409, "ABORTED"},
        Mapping{grpc::StatusCode::OUT_OF_RANGE, 400, "OUT_OF_RANGE"},
        Mapping{grpc::StatusCode::UNIMPLEMENTED, 501, "UNIMPLEMENTED"},
        Mapping{grpc::StatusCode::INTERNAL, 500, "INTERNAL"},
        Mapping{grpc::StatusCode::UNAVAILABLE, 503, "UNAVAILABLE"},
        Mapping{grpc::StatusCode::DATA_LOSS, 500, "DATA_LOSS"},
        Mapping{grpc::StatusCode::UNAUTHENTICATED, 401, "UNAUTHENTICATED"}));

TEST(JsonErrorTest, IsAnObjectWithCodeAndEscapedMessage) {
  const std::string body =
      JsonError(grpc::StatusCode::NOT_FOUND, "no rollout \"x\"\n(quoted)");
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(body, &parsed).ok())
      << body;
  EXPECT_EQ(parsed.fields().at("code").string_value(), "NOT_FOUND");
  EXPECT_EQ(parsed.fields().at("message").string_value(),
            "no rollout \"x\"\n(quoted)");
  EXPECT_EQ(parsed.fields_size(), 2);
}

TEST(JsonErrorTest, BoundsTheMessage) {
  const std::string body =
      JsonError(grpc::StatusCode::INTERNAL, std::string(100000, 'x'));
  EXPECT_LT(body.size(), kMaxStatusMessageBytes + 100);
}

TEST(ParseJsonBodyTest, AcceptsCanonicalAndProtoNames) {
  v1::ListAuditRequest req;
  ASSERT_TRUE(ParseJsonBody(
                  R"({"afterSeq": "7", "rollout_id": "r1", "limit": 5})", &req)
                  .ok());
  EXPECT_EQ(req.after_seq(), 7u);
  EXPECT_EQ(req.rollout_id(), "r1");
  EXPECT_EQ(req.limit(), 5u);
  v1::ListAuditRequest empty;
  EXPECT_TRUE(ParseJsonBody("", &empty).ok());
}

TEST(ParseJsonBodyTest, UnknownFieldIsInvalidArgumentNamingIt) {
  v1::RolloutActionRequest req;
  EXPECT_THAT(
      ParseJsonBody(R"({"reason": "r", "colour": "blue"})", &req),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("colour")));
}

TEST(ParseJsonBodyTest, MalformedAndHugeInputIsBounded) {
  v1::RolloutActionRequest req;
  EXPECT_THAT(ParseJsonBody("{not json", &req),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("request body: ")));
  const std::string long_name(100000, 'q');
  const absl::Status s =
      ParseJsonBody(absl::StrCat("{\"", long_name, "\": 1}"), &req);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(s.message().size(), 1000u);
}

TEST(ParseJsonBodyTest, WrongTypeIsInvalidArgument) {
  v1::ListAuditRequest req;
  EXPECT_THAT(ParseJsonBody(R"({"limit": "many"})", &req),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("limit")));
}

TEST(ParseQueryTest, StringsBoolsAndRepeatedNames) {
  v1::ListRolloutsRequest list;
  ASSERT_TRUE(ParseQuery({{"contentType", "ct/1"},
                          {"states", "RUNNING"},
                          {"states", "PAUSED"}},
                         &list)
                  .ok());
  EXPECT_EQ(list.content_type(), "ct/1");
  ASSERT_EQ(list.states_size(), 2);
  EXPECT_EQ(list.states(1), config::v1::PAUSED);
  v1::GetRolloutRequest get;
  ASSERT_TRUE(
      ParseQuery({{"includeDecisions", "true"}, {"decisionsAfterSeq", "3"}},
                 &get)
          .ok());
  EXPECT_TRUE(get.include_decisions());
  EXPECT_EQ(get.decisions_after_seq(), 3u);
  v1::ListAuditRequest audit;
  EXPECT_THAT(ParseQuery({{"colour", "blue"}}, &audit),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("query: "), HasSubstr("colour"))));
}

TEST(ToJsonTest, CanonicalMapping) {
  v1::ListAuditResponse resp;
  resp.set_next_after_seq(12);
  resp.add_entries()->set_rollout_id("r1");
  const std::string json = ToJson(resp);
  EXPECT_THAT(json, HasSubstr("\"nextAfterSeq\":\"12\""));
  EXPECT_THAT(json, HasSubstr("\"rolloutId\":\"r1\""));
  EXPECT_THAT(json, Not(HasSubstr("next_after_seq")));
}

TEST(CheckHttpAuthenticationTest, NoTokensOnlyOnLoopback) {
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  EXPECT_TRUE(CheckHttpAuthentication(options).ok());
  options.listen = "0.0.0.0:8080";
  EXPECT_THAT(CheckHttpAuthentication(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("http_listen")));
  // A client CA does not help: HTTP clients present no certificate.
  options.tls = ServerTls{};
  options.tls->client_ca_pem = "-----BEGIN CERTIFICATE-----";
  EXPECT_EQ(CheckHttpAuthentication(options).code(),
            absl::StatusCode::kFailedPrecondition);
  options.insecure_no_auth = true;
  EXPECT_TRUE(CheckHttpAuthentication(options).ok());
  options.insecure_no_auth = false;
  options.auth = TokenAuthenticator::Parse("t0ken operator alice", "t").value();
  EXPECT_TRUE(CheckHttpAuthentication(options).ok());
}

}  // namespace
}  // namespace ringfence
