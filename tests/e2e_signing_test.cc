// End-to-end test of release signatures: ringfenced with --trusted_keys_file
// and --require_signatures, keys and signatures made by `ringctl keygen` and
// `ringctl sign`.
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "e2e_fixture.h"

namespace ringfence::e2e {
namespace {

TEST_F(E2ETest, RequiredSignaturesAreVerifiedOnCreateAndValidate) {
  // Keys first: the server reads them at startup.
  CommandResult r = Ctl({"keygen", "--out=" + dir_ + "/publisher"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string key_id(absl::StripAsciiWhitespace(r.out));
  // A relative path is relative to the keys file.
  WriteFile(dir_ + "/trusted-keys",
            absl::StrCat("# key_id public-key\n", key_id, " publisher.pub\n"));
  server_.reset();
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--trusted_keys_file=" + dir_ + "/trusted-keys",
                   "--require_signatures"}));

  const std::vector<std::string> release_flags = {
      "--id=cf291-signed", "--content-type=channel-file/291",
      std::string("--digest=") + kDigestA, "--size=40000",
      "--version=2024.07.19"};
  std::vector<std::string> sign = {"sign", "--key=" + dir_ + "/publisher.key"};
  sign.insert(sign.end(), release_flags.begin(), release_flags.end());
  r = Ctl(sign);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string signature(absl::StripAsciiWhitespace(r.out));

  // Unsigned: FAILED_PRECONDITION, nothing stored.
  std::vector<std::string> create = {"release", "create"};
  create.insert(create.end(), release_flags.begin(), release_flags.end());
  r = Ctl(create, kPublisherToken);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("FAILED_PRECONDITION"));

  // Signed, but the version was changed after signing: PERMISSION_DENIED.
  std::vector<std::string> altered = create;
  altered.back() = "--version=2024.07.20";
  altered.push_back("--signature=" + signature);
  r = Ctl(altered, kPublisherToken);
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED"));

  // ValidateRelease runs the same check.
  v1::ValidateReleaseRequest vreq;
  vreq.mutable_release()->set_id("cf291-signed");
  vreq.mutable_release()->set_content_type("channel-file/291");
  vreq.mutable_release()->set_digest_sha256(kDigestA);
  vreq.mutable_release()->set_size_bytes(40000);
  vreq.mutable_release()->set_version("2024.07.19");
  v1::ValidateReleaseResponse vresp;
  grpc::Status s =
      releases_->ValidateRelease(Ctx(kPublisherToken).get(), vreq, &vresp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << s.error_message();
  std::string raw;
  ASSERT_TRUE(absl::Base64Unescape(signature, &raw));
  vreq.mutable_release()->set_signature(raw);
  s = releases_->ValidateRelease(Ctx(kPublisherToken).get(), vreq, &vresp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_TRUE(vresp.ok());

  r = Ctl({"release", "get", "cf291-signed"}, kPublisherToken);
  EXPECT_NE(r.exit_code, 0) << "stored without a valid signature: " << r.out;

  // Correctly signed: created, with its signature.
  create.push_back("--signature=" + signature);
  r = Ctl(create, kPublisherToken);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("created release cf291-signed"));
  Release stored;
  v1::GetReleaseRequest get;
  get.set_release_id("cf291-signed");
  s = releases_->GetRelease(Ctx(kPublisherToken).get(), get, &stored);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(stored.signature(), raw);
}

TEST_F(E2ETest, BadTrustedKeysFileFailsStartup) {
  server_.reset();
  WriteFile(dir_ + "/trusted-keys", "k1 missing.pub\n");
  CommandResult bad =
      RunServerToExit({"--trusted_keys_file=" + dir_ + "/trusted-keys"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("--trusted_keys_file"));

  CommandResult unkeyed = RunServerToExit({"--require_signatures"});
  EXPECT_EQ(unkeyed.exit_code, 2) << unkeyed.err;
}

}  // namespace
}  // namespace ringfence::e2e
