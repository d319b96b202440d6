// End-to-end test of content validation on the server: ringfenced with
// --content_rules (tests/testdata/content/rules.textproto: channel file 291's
// schema, the capabilities of agents 7.11 (20 inputs to ipc_pipe_match) and
// 7.12 (21), and a vendor validator), driven over gRPC and with ringctl.
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "e2e_fixture.h"
#include "ringfence/audit.h"
#include "ringfence/signing.h"
#include "ringfence/sqlite_store.h"
#include "service/status_map.h"

namespace ringfence::e2e {
namespace {

using ::testing::ElementsAre;

std::string TestData(const std::string& name) {
  return absl::StrCat(RINGFENCE_TESTDATA_DIR, "/content/", name);
}

// The July 2024 regression: a criterion on field 21, which agents 7.11
// do not supply.
constexpr char kField21Finding[] =
    "instance \"cf291-i7\": field 21 (\"wildcard_21\") of template type "
    "\"ipc_pipe_match\" is not supplied by agents [7.11, 7.12): they supply "
    "20 inputs, the content needs 21";

class E2EContentTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (HasFatalFailure()) return;
    server_.reset();
    ASSERT_NO_FATAL_FAILURE(
        StartServer({"--content_rules=" + TestData("rules.textproto")}));
    payload_ = ReadFile(TestData("cf291_field21.textproto"));
    ASSERT_FALSE(payload_.empty());
  }

  // A release of `payload_` for agents [min, max).
  v1::CreateReleaseRequest Request(const std::string& id,
                                   const std::string& min,
                                   const std::string& max) const {
    v1::CreateReleaseRequest req;
    Release* r = req.mutable_release();
    r->set_id(id);
    r->set_content_type("channel-file/291");
    r->set_version("2024.07.19");
    const PayloadDigest d = ComputeDigest(payload_);
    r->set_digest_sha256(d.sha256_hex);
    r->set_size_bytes(d.size_bytes);
    r->set_fetch_url("https://updates.example/" + id);
    r->mutable_targeting()->set_min_agent_version(min);
    r->mutable_targeting()->set_max_agent_version(max);
    req.set_payload(payload_);
    return req;
  }

  grpc::Status Create(const v1::CreateReleaseRequest& req,
                      Release* out = nullptr) {
    Release resp;
    grpc::Status s =
        releases_->CreateRelease(Ctx(kPublisherToken).get(), req, &resp);
    if (out != nullptr) *out = resp;
    return s;
  }

  bool Stored(const std::string& id) {
    v1::GetReleaseRequest req;
    req.set_release_id(id);
    Release resp;
    return releases_->GetRelease(Ctx(kOperatorToken).get(), req, &resp).ok();
  }

  std::string payload_;
};

TEST_F(E2EContentTest, The21stFieldIsRejectedForAgentsSupplying20) {
  grpc::Status s = Create(Request("cf291-0719", "7.11", "7.12"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << s.error_message();
  EXPECT_THAT(s.error_message(), AllOf(HasSubstr("content rejected: "),
                                       HasSubstr("FIELD_NOT_SUPPLIED: "),
                                       HasSubstr(kField21Finding)));
  // The findings travel as error details, in full.
  std::optional<content::v1::ValidationResult> result =
      ValidationResultFromStatus(s);
  ASSERT_TRUE(result.has_value()) << "no findings in the error details";
  EXPECT_FALSE(result->ok());
  bool found = false;
  for (const content::v1::Finding& f : result->findings()) {
    if (f.code() == "FIELD_NOT_SUPPLIED" && f.message() == kField21Finding) {
      found = true;
      EXPECT_EQ(f.severity(), "error");
      EXPECT_EQ(f.instance(), "cf291-i7");
      EXPECT_EQ(f.field_index(), 21u);
      EXPECT_EQ(f.agents(), "[7.11, 7.12)");
    }
  }
  EXPECT_TRUE(found) << result->DebugString();
  EXPECT_FALSE(Stored("cf291-0719")) << "a rejected release was stored";

  // The same file for agents that supply 21 inputs: created, and the vendor
  // validator's warning does not block it.
  Release created;
  s = Create(Request("cf291-0720", "7.12", "8"), &created);
  ASSERT_THAT(s, GrpcOk());
  EXPECT_EQ(created.id(), "cf291-0720");
  EXPECT_TRUE(Stored("cf291-0720"));

  // The refusal is on the audit record, with who tried and why.
  server_.reset();
  SqliteStoreOptions options;
  options.data_dir = dir_ + "/data";
  options.read_only = true;
  absl::StatusOr<StorePtr> store = OpenSqliteStore(options);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::vector<AuditEntry>> audit = (*store)->ReadAudit(0, 100);
  ASSERT_TRUE(audit.ok()) << audit.status();
  std::vector<std::string> actions;
  for (const AuditEntry& e : *audit) {
    actions.push_back(e.action());
    if (e.action() == "reject_release") {
      EXPECT_EQ(e.actor(), "ci-pipeline");
      EXPECT_THAT(e.reason(),
                  AllOf(HasSubstr("release cf291-0719 of channel-file/291 "
                                  "refused: content rejected: 7 errors"),
                        HasSubstr("FIELD_NOT_SUPPLIED")));
    }
  }
  EXPECT_THAT(actions, ElementsAre("reject_release", "create_release"));
  absl::StatusOr<AuditVerification> chain = VerifyAuditLog(**store);
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_TRUE(chain->ok) << "broken at " << chain->first_broken_seq;
}

TEST_F(E2EContentTest, ValidateReleaseReturnsTheFindingsAndStoresNothing) {
  const v1::CreateReleaseRequest create = Request("cf291-v", "7.11", "7.12");
  v1::ValidateReleaseRequest req;
  *req.mutable_release() = create.release();
  req.set_payload(create.payload());
  v1::ValidateReleaseResponse resp;
  ASSERT_THAT(releases_->ValidateRelease(Ctx(kOperatorToken).get(), req, &resp),
              GrpcOk());
  EXPECT_FALSE(resp.ok());
  std::vector<std::string> codes;
  for (const content::v1::Finding& f : resp.findings()) {
    codes.push_back(f.code());
  }
  EXPECT_THAT(codes, Contains("FIELD_NOT_SUPPLIED"));
  // The vendor validator ran too, on the whole payload.
  EXPECT_THAT(codes, Contains("VENDOR_NOTE"));
  EXPECT_FALSE(Stored("cf291-v"));

  req.mutable_release()->mutable_targeting()->set_min_agent_version("7.12");
  req.mutable_release()->mutable_targeting()->set_max_agent_version("8");
  ASSERT_THAT(releases_->ValidateRelease(Ctx(kOperatorToken).get(), req, &resp),
              GrpcOk());
  EXPECT_TRUE(resp.ok());
  EXPECT_FALSE(Stored("cf291-v"));
}

TEST_F(E2EContentTest, PayloadIsRequiredAndMustMatchTheDigest) {
  // No payload for a content type with rules: refused, nothing stored.
  v1::CreateReleaseRequest req = Request("cf291-nopayload", "7.12", "8");
  req.clear_payload();
  grpc::Status s = Create(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("payload: required"));
  EXPECT_FALSE(Stored("cf291-nopayload"));

  // A payload altered after the digest was recorded.
  req = Request("cf291-tampered", "7.12", "8");
  req.mutable_payload()->back() ^= 1;
  s = Create(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("release.digest_sha256: "));
  EXPECT_FALSE(Stored("cf291-tampered"));

  // Content types without rules need no payload.
  ASSERT_THAT(CreateRelease("cf999-norules", "channel-file/999"), GrpcOk());
}

TEST_F(E2EContentTest, RingctlSendsThePayloadAndPrintsTheFindings) {
  const std::string file = TestData("cf291_field21.textproto");
  CommandResult r =
      Ctl({"release", "create", "--id=cf291-ctl",
           "--content-type=channel-file/291", "--payload=" + file,
           "--min-agent-version=7.11", "--max-agent-version=7.12"},
          kPublisherToken);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr("FAILED_PRECONDITION: content rejected: "
                                     "7 error(s), 2 warning(s):\n"),
                           HasSubstr("  error FIELD_NOT_SUPPLIED: "),
                           HasSubstr(kField21Finding)));

  r = Ctl({"release", "validate", "--id=cf291-ctl",
           "--content-type=channel-file/291", "--payload=" + file,
           "--min-agent-version=7.11", "--max-agent-version=7.12"},
          kPublisherToken);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.out, AllOf(HasSubstr("error FIELD_NOT_SUPPLIED: "),
                           HasSubstr("release cf291-ctl is rejected")));

  // Digest and size default to the file's.
  r = Ctl({"release", "create", "--id=cf291-ctl",
           "--content-type=channel-file/291", "--payload=" + file,
           "--min-agent-version=7.12", "--max-agent-version=8"},
          kPublisherToken);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = Ctl({"release", "get", "cf291-ctl", "--json"}, kPublisherToken);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(ComputeDigest(payload_).sha256_hex));
}

TEST_F(E2EContentTest, AssignmentsCarryTheSignature) {
  CommandResult r = Ctl({"keygen", "--out=" + dir_ + "/publisher"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string key_id(absl::StripAsciiWhitespace(r.out));
  WriteFile(dir_ + "/trusted-keys", key_id + " publisher.pub\n");
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--content_rules=" + TestData("rules.textproto"),
                   "--trusted_keys_file=" + dir_ + "/trusted-keys",
                   "--require_signatures"}));

  const std::string file = TestData("cf291_field21.textproto");
  // `command` for the release, targeting agents [min_version, 8), then
  // `extra`.
  auto release = [&](std::vector<std::string> command,
                     const std::string& min_version,
                     std::vector<std::string> extra) {
    const std::vector<std::string> flags = {
        "--id=cf291-signed",
        "--content-type=channel-file/291",
        "--version=2024.07.20",
        "--payload=" + file,
        "--min-agent-version=" + min_version,
        "--max-agent-version=8"};
    command.insert(command.end(), flags.begin(), flags.end());
    command.insert(command.end(), extra.begin(), extra.end());
    return command;
  };
  r = Ctl(release({"sign", "--key=" + dir_ + "/publisher.key"}, "7.12", {}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string signature(absl::StripAsciiWhitespace(r.out));
  r = Ctl(release({"release", "create"}, "7.12", {"--signature=" + signature}),
          kPublisherToken);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // The same signature on the release re-targeted to agents 7.11: refused.
  r = Ctl(release({"release", "create"}, "7.11", {"--signature=" + signature}),
          kPublisherToken);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr("PERMISSION_DENIED"),
                           HasSubstr("or targeting changed")));

  ASSERT_THAT(StartRollout("signed-1", "cf291-signed", ParsePlan(kLivePlan)),
              GrpcOk());
  v1::GetAssignmentRequest req;
  req.set_host_id("dogfood-1");
  req.add_labels("ring:dogfood");
  req.set_agent_version("7.12.3");
  req.add_content_types("channel-file/291");
  v1::GetAssignmentResponse resp;
  ASSERT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &resp),
              GrpcOk());
  ASSERT_EQ(resp.assignments_size(), 1);
  const v1::ContentAssignment& a = resp.assignments(0);
  ASSERT_EQ(a.release_id(), "cf291-signed") << a.DebugString();
  EXPECT_EQ(a.digest_sha256(), ComputeDigest(payload_).sha256_hex);
  // What an agent does: verify the signature with the publisher's key.
  std::string raw;
  ASSERT_TRUE(absl::Base64Unescape(signature, &raw));
  EXPECT_EQ(a.signature(), raw);
  Release as_seen;
  as_seen.set_id(a.release_id());
  as_seen.set_content_type(a.content_type());
  as_seen.set_version(a.version());
  as_seen.set_digest_sha256(a.digest_sha256());
  as_seen.set_size_bytes(a.size_bytes());
  as_seen.set_signature(a.signature());
  *as_seen.mutable_targeting() = a.targeting();
  TrustedKeys keys = {{key_id, ReadFile(dir_ + "/publisher.pub")}};
  EXPECT_TRUE(VerifyReleaseSignature(as_seen, keys, true).ok());
  as_seen.set_version("2024.07.21");
  EXPECT_FALSE(VerifyReleaseSignature(as_seen, keys, true).ok());
  as_seen.set_version(a.version());
  as_seen.mutable_targeting()->set_min_agent_version("7.11");
  EXPECT_FALSE(VerifyReleaseSignature(as_seen, keys, true).ok());
}

// A vendor validator that hangs is killed at its timeout and the release is
// rejected; one that crashes is a rejection too. Validations run off gRPC's
// threads, at most --max_concurrent_validations at once.
TEST_F(E2EContentTest, HangingOrCrashingValidatorsRejectAndAreBounded) {
  const std::string schema = TestData("channel_291.schema.textproto");
  const std::string caps = TestData("capabilities.textproto");
  WriteFile(dir_ + "/rules.textproto",
            absl::StrCat("content_types { schema_file: \"", schema,
                         "\" capabilities_file: \"", caps,
                         "\" external_validators { argv: \"",
                         TestData("hang_validator.sh"),
                         "\" timeout_seconds: 2 } }\n"));
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--content_rules=" + dir_ + "/rules.textproto",
                   "--max_concurrent_validations=1"}));

  // Two at once: one validates (and is rejected when the validator is
  // killed), the other is turned away at once.
  const v1::CreateReleaseRequest a = Request("cf291-hang-a", "7.12", "8");
  const v1::CreateReleaseRequest b = Request("cf291-hang-b", "7.12", "8");
  grpc::Status sa, sb;
  const absl::Time start = absl::Now();
  std::thread ta([&] { sa = Create(a); });
  absl::SleepFor(absl::Milliseconds(300));
  sb = Create(b);
  ta.join();
  EXPECT_EQ(sb.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << sb.error_message();
  EXPECT_THAT(sb.error_message(), HasSubstr("retry later"));
  EXPECT_EQ(sa.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << sa.error_message();
  EXPECT_THAT(sa.error_message(),
              AllOf(HasSubstr("VALIDATOR_FAILED"),
                    HasSubstr("did not finish within 2s and was killed")));
  EXPECT_GE(absl::Now() - start, absl::Seconds(2));
  EXPECT_FALSE(Stored("cf291-hang-a"));
  EXPECT_FALSE(Stored("cf291-hang-b"));
  // The server answers other calls while a validation runs, and the slot
  // is free again afterwards.
  EXPECT_THAT(CreateRelease("cf999-other", "channel-file/999"), GrpcOk());

  WriteFile(dir_ + "/rules.textproto",
            absl::StrCat("content_types { schema_file: \"", schema,
                         "\" capabilities_file: \"", caps,
                         "\" external_validators { argv: \"",
                         TestData("crash_validator.sh"), "\" } }\n"));
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--content_rules=" + dir_ + "/rules.textproto"}));
  const grpc::Status s = Create(Request("cf291-crash", "7.12", "8"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("VALIDATOR_FAILED"));
  EXPECT_FALSE(Stored("cf291-crash"));
}

TEST_F(E2EContentTest, BadContentRulesFailStartup) {
  server_.reset();
  WriteFile(dir_ + "/rules.textproto",
            "content_types { schema_file: \"missing.textproto\" "
            "capabilities_file: \"caps.textproto\" }\n");
  CommandResult bad =
      RunServerToExit({"--content_rules=" + dir_ + "/rules.textproto"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_THAT(bad.err, AllOf(HasSubstr("--content_rules"),
                             HasSubstr("content_types[0].schema_file")));
}

}  // namespace
}  // namespace ringfence::e2e
