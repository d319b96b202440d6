// ToGrpcStatus keeps what leaves the server within what any client accepts
// (service/status_map.h).
#include "service/status_map.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "gmock/gmock.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "ringfence/validate.h"

namespace ringfence {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(ToGrpcStatusTest, KeepsCodeAndShortMessage) {
  const grpc::Status s =
      ToGrpcStatus(absl::NotFoundError("rollout \"x\" not found"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "rollout \"x\" not found");
  EXPECT_TRUE(s.error_details().empty());
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(ToGrpcStatusTest, CutsALongMessageAndSaysItsLength) {
  const std::string echoed(1 << 20, 's');
  const grpc::Status s = ToGrpcStatus(
      absl::NotFoundError("stage: rollout has no stage \"" + echoed + "\""));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LE(s.error_message().size(), kMaxStatusMessageBytes);
  EXPECT_THAT(s.error_message(), StartsWith("stage: rollout has no stage"));
  EXPECT_THAT(s.error_message(), EndsWith("(message of 1048606 bytes cut)"));
}

TEST(ToGrpcStatusTest, CountsBytesGrpcPercentEncodesThrice) {
  const grpc::Status s =
      ToGrpcStatus(absl::InvalidArgumentError(std::string(5000, '\x01')));
  size_t encoded = 0;
  for (char c : s.error_message()) {
    const unsigned char u = static_cast<unsigned char>(c);
    encoded += (u < 0x20 || u > 0x7e || u == '%') ? 3 : 1;
  }
  EXPECT_LE(encoded, kMaxStatusMessageBytes);
  EXPECT_THAT(s.error_message(), EndsWith("(message of 5000 bytes cut)"));
}

content::v1::ValidationResult ManyFindings(int n) {
  content::v1::ValidationResult result;
  result.set_ok(false);
  for (int i = 0; i < n; ++i) {
    content::v1::Finding* f = result.add_findings();
    f->set_code("FIELD_OUT_OF_RANGE");
    f->set_severity("error");
    f->set_instance("i" + std::to_string(i));
    f->set_message("value 1000 is above the maximum 100");
  }
  return result;
}

absl::Status Rejected(const content::v1::ValidationResult& result) {
  absl::Status s =
      absl::FailedPreconditionError("content rejected: many errors");
  s.SetPayload(kValidationResultTypeUrl,
               absl::Cord(result.SerializeAsString()));
  return s;
}

TEST(ToGrpcStatusTest, KeepsFindingsThatFit) {
  const grpc::Status s = ToGrpcStatus(Rejected(ManyFindings(3)));
  EXPECT_EQ(s.error_message(), "content rejected: many errors");
  const auto result = ValidationResultFromStatus(s);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->findings_size(), 3);
  EXPECT_FALSE(result->ok());
}

TEST(ToGrpcStatusTest, KeepsTheFirstFindingsThatFitAndSaysHowMany) {
  const grpc::Status s = ToGrpcStatus(Rejected(ManyFindings(100000)));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_LE(s.error_details().size(), kMaxStatusDetailsBytes);
  EXPECT_LE(s.error_message().size(), kMaxStatusMessageBytes);
  const auto result = ValidationResultFromStatus(s);
  ASSERT_TRUE(result.has_value());
  EXPECT_GT(result->findings_size(), 10);
  EXPECT_FALSE(result->ok());
  EXPECT_EQ(result->findings(0).instance(), "i0");
  EXPECT_THAT(s.error_message(),
              HasSubstr("; the error details hold the first " +
                        std::to_string(result->findings_size()) +
                        " of 100000 findings"));
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  EXPECT_EQ(details.message(), s.error_message());
}

TEST(ToGrpcStatusTest, LeavesOutOtherPayloadsThatDoNotFit) {
  absl::Status status = absl::InternalError("boom");
  status.SetPayload("type.example/big", absl::Cord(std::string(1 << 16, 'b')));
  const grpc::Status s = ToGrpcStatus(status);
  EXPECT_TRUE(s.error_details().empty());
  EXPECT_THAT(s.error_message(), HasSubstr("boom; error details of 65"));
}

}  // namespace
}  // namespace ringfence
