// Tests of ringctl's offline commands (validate, keygen, sign): they run the
// binary named by $RINGCTL.
#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "e2e_process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/model.h"
#include "ringfence/signing.h"

namespace ringfence::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string ContentData(const std::string& name) {
  return absl::StrCat(RINGFENCE_TESTDATA_DIR, "/content/", name);
}

constexpr char kField21Message[] =
    "instance \"cf291-i7\": field 21 (\"wildcard_21\") of template type "
    "\"ipc_pipe_match\" is not supplied by agents [7.11, 7.12): they supply "
    "20 inputs, the content needs 21";

class RingctlOfflineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ringctl_ = Env("RINGCTL");
    ASSERT_FALSE(ringctl_.empty()) << "set RINGCTL to the ringctl binary";
    dir_ = MakeTempDir();
  }
  void TearDown() override {
    if (!dir_.empty()) RemoveTree(dir_);
  }

  CommandResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), ringctl_);
    return RunCommand(args);
  }

  CommandResult Validate(const std::string& file, const std::string& range,
                         std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "validate", "--schema=" + ContentData("channel_291.schema.textproto"),
        "--capabilities=" + ContentData("capabilities.textproto")};
    if (!range.empty()) args.push_back("--target-agents=" + range);
    for (std::string& e : extra) args.push_back(std::move(e));
    args.push_back(file);
    return Ctl(args);
  }

  std::string ringctl_;
  std::string dir_;
};

TEST_F(RingctlOfflineTest, Field21FileIsRejectedForAgents711To712) {
  CommandResult r =
      Validate(ContentData("cf291_field21.textproto"), "7.11..7.12");
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("FIELD_NOT_SUPPLIED"));
  EXPECT_THAT(r.out, HasSubstr(kField21Message));
  EXPECT_THAT(r.out, HasSubstr("instance=cf291-i7"));
  EXPECT_THAT(r.out, HasSubstr("field=wildcard_21(21)"));
  EXPECT_THAT(r.out, HasSubstr("REJECTED"));
}

TEST_F(RingctlOfflineTest, Field21FileIsRejectedAsJson) {
  CommandResult r = Validate(ContentData("cf291_field21.textproto"),
                             "[7.11, 7.12)", {"--json"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"FIELD_NOT_SUPPLIED\""));
  EXPECT_THAT(r.out, HasSubstr("cf291-i7"));
  EXPECT_THAT(r.out, HasSubstr("wildcard_21"));
}

TEST_F(RingctlOfflineTest, Field21FileIsAcceptedForAgents712To8) {
  CommandResult r = Validate(ContentData("cf291_field21.textproto"), "7.12..8");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, Not(HasSubstr("FIELD_NOT_SUPPLIED")));
  EXPECT_THAT(r.out, HasSubstr("valid"));
}

TEST_F(RingctlOfflineTest, WithoutTargetsEveryManifestEntryApplies) {
  CommandResult r = Validate(ContentData("cf291_field21.textproto"), "");
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr(kField21Message));
}

TEST_F(RingctlOfflineTest, BadSchemaPathIsExit3) {
  CommandResult r =
      Ctl({"validate", "--schema=" + dir_ + "/missing.textproto",
           "--capabilities=" + ContentData("capabilities.textproto"),
           "--target-agents=7.12..8", ContentData("cf291_field21.textproto")});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("--schema"));
}

TEST_F(RingctlOfflineTest, InvalidSchemaIsExit3) {
  const std::string schema = dir_ + "/bad.textproto";
  WriteFile(schema, "content_type: \"channel-file/291\"\n");  // no types
  CommandResult r =
      Ctl({"validate", "--schema=" + schema,
           "--capabilities=" + ContentData("capabilities.textproto"),
           ContentData("cf291_field21.textproto")});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
}

TEST_F(RingctlOfflineTest, MissingFileAndBadRangeAreExit3) {
  CommandResult r = Validate(dir_ + "/nope.bin", "7.12..8");
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  r = Validate(ContentData("cf291_field21.textproto"), "8..7");
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  r = Ctl({"validate", "--schema=x"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
}

TEST_F(RingctlOfflineTest, KeygenAndSignProduceAVerifyingSignature) {
  const std::string prefix = dir_ + "/publisher";
  CommandResult r = Ctl({"keygen", "--out=" + prefix});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string key_id(absl::StripAsciiWhitespace(r.out));
  const std::string public_pem = ReadFile(prefix + ".pub");
  absl::StatusOr<std::string> fingerprint = PublicKeyFingerprint(public_pem);
  ASSERT_TRUE(fingerprint.ok()) << fingerprint.status();
  EXPECT_EQ(key_id, *fingerprint);
  struct stat st;
  ASSERT_EQ(stat((prefix + ".key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_THAT(ReadFile(prefix + ".key"), HasSubstr("BEGIN PRIVATE KEY"));

  // keygen never overwrites a private key.
  r = Ctl({"keygen", "--out=" + prefix});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_EQ(ReadFile(prefix + ".pub"), public_pem);

  const PayloadDigest digest = ComputeDigest("channel file 291 payload");
  r = Ctl({"sign", "--key=" + prefix + ".key", "--id=cf291-0719",
           "--content-type=channel-file/291", "--digest=" + digest.sha256_hex,
           absl::StrCat("--size=", digest.size_bytes), "--version=2024.07.19"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::string signature;
  ASSERT_TRUE(
      absl::Base64Unescape(absl::StripAsciiWhitespace(r.out), &signature))
      << r.out;

  Release release;
  release.set_id("cf291-0719");
  release.set_content_type("channel-file/291");
  release.set_digest_sha256(digest.sha256_hex);
  release.set_size_bytes(digest.size_bytes);
  release.set_version("2024.07.19");
  release.set_signature(signature);
  const TrustedKeys keys = {{key_id, public_pem}};
  EXPECT_TRUE(VerifyReleaseSignature(release, keys, true).ok());

  // Altered metadata does not verify; an unknown key is not trusted.
  Release altered = release;
  altered.set_version("2024.07.20");
  EXPECT_EQ(VerifyReleaseSignature(altered, keys, true).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(VerifyReleaseSignature(release, {}, true).code(),
            absl::StatusCode::kPermissionDenied);

  // An explicit --key-id is what the signature carries.
  r = Ctl({"sign", "--key=" + prefix + ".key", "--id=cf291-0719",
           "--content-type=channel-file/291", "--digest=" + digest.sha256_hex,
           absl::StrCat("--size=", digest.size_bytes), "--version=2024.07.19",
           "--key-id=publisher-1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"key_id\": \"publisher-1\""));
  const std::string json_out(absl::StripAsciiWhitespace(r.out));
  const size_t at = json_out.find("\"signature\": \"");
  ASSERT_NE(at, std::string::npos) << r.out;
  const size_t start = at + std::string("\"signature\": \"").size();
  ASSERT_TRUE(absl::Base64Unescape(
      json_out.substr(start, json_out.find('"', start) - start), &signature));
  release.set_signature(signature);
  EXPECT_TRUE(
      VerifyReleaseSignature(release, {{"publisher-1", public_pem}}, true)
          .ok());
}

TEST_F(RingctlOfflineTest, SignRejectsBadInput) {
  const std::string prefix = dir_ + "/k";
  ASSERT_EQ(Ctl({"keygen", "--out=" + prefix}).exit_code, 0);
  const PayloadDigest digest = ComputeDigest("x");
  // Not a key.
  WriteFile(dir_ + "/junk.key", "not a key\n");
  CommandResult r =
      Ctl({"sign", "--key=" + dir_ + "/junk.key", "--id=a",
           "--content-type=t/1", "--digest=" + digest.sha256_hex, "--size=1"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  // A bad digest.
  r = Ctl({"sign", "--key=" + prefix + ".key", "--id=a", "--content-type=t/1",
           "--digest=xyz", "--size=1"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  // A missing flag.
  r = Ctl({"sign", "--key=" + prefix + ".key", "--id=a"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
}

// `plan explain` prints every stage's effective rules with where each value
// comes from: a vendor rule adds to the built-in ones, a disabled built-in
// shows its reason, and a plan that leaves crash unwatched is refused.
TEST_F(RingctlOfflineTest, PlanExplainShowsTheEffectiveRules) {
  const std::string plan = dir_ + "/plan.textproto";
  ASSERT_TRUE(WriteFileAtomically(plan, R"pb(
                name: "explained"
                policy {
                  signals { signal: "latency_regression" max_affected_hosts: 3 }
                  signals {
                    signal: "unclean_reboot"
                    disabled: true
                    disabled_reason: "our agents reboot uncleanly on update"
                  }
                }
                stages {
                  name: "dogfood"
                  audience { labels: "ring:dogfood" }
                  bake_time { seconds: 600 }
                  policy { signals { signal: "crash" max_affected_hosts: 1 } }
                }
                stages {
                  name: "all"
                  audience { percent: 100 }
                  bake_time { seconds: 600 }
                }
              )pb")
                  .ok());
  CommandResult r = Ctl({"plan", "explain", plan});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("stage dogfood:"));
  EXPECT_THAT(r.out, HasSubstr("crash                      breaker 1 hosts "
                               "[stage]; no ceiling [default]; compared with "
                               "control [default]"));
  EXPECT_THAT(r.out, HasSubstr("latency_regression (vendor) breaker 3 hosts "
                               "[plan]"));
  EXPECT_THAT(r.out, HasSubstr("unclean_reboot             DISABLED [plan]: "
                               "our agents reboot uncleanly on update"));
  EXPECT_THAT(r.out, HasSubstr("the late-track stage:"));

  ASSERT_TRUE(WriteFileAtomically(plan, R"pb(
                stages {
                  name: "all"
                  audience { percent: 100 }
                  bake_time { seconds: 600 }
                  policy {
                    signals {
                      signal: "crash"
                      max_affected_hosts: 0
                      compare_with_control: false
                    }
                  }
                }
              )pb")
                  .ok());
  r = Ctl({"plan", "explain", plan});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("stages[0].policy.signals[0]: leaves \"crash\" "
                               "with no halting rule in stage all"));
}

}  // namespace
}  // namespace ringfence::e2e
