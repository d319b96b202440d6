// Tests of release integrity and signatures (signing.h).
#include "ringfence/signing.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/content/v1/content.pb.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A fixed key (generated once with `openssl genpkey -algorithm ed25519`), so
// the expected signature below is a golden value other implementations can
// check against: Ed25519 signatures are deterministic.
constexpr char kPrivatePem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIEwO2/0wmT3wSScSp0smuHH7E93Joausm6xpazH7NQL5\n"
    "-----END PRIVATE KEY-----\n";
constexpr char kPublicPem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAD0NCJO3I/DwD54LtwOaVaTMR5EAc1sbIbjhE95zQeHQ=\n"
    "-----END PUBLIC KEY-----\n";

constexpr char kPayload[] = "instances { id: \"i1\" template_type: \"t\" }\n";

Release MakeRelease() {
  Release r;
  r.set_id("cf-291-0719");
  r.set_content_type("channel-file/291");
  r.set_version("2024.07.19");
  const PayloadDigest d = ComputeDigest(kPayload);
  r.set_digest_sha256(d.sha256_hex);
  r.set_size_bytes(d.size_bytes);
  r.mutable_targeting()->set_min_agent_version("7.12");
  return r;
}

Release Signed(Release r, const std::string& private_pem = kPrivatePem,
               const std::string& key_id = "publisher-1",
               SignatureFormat format = SignatureFormat::kV2) {
  absl::StatusOr<std::string> sig = SignRelease(r, private_pem, key_id, format);
  EXPECT_TRUE(sig.ok()) << sig.status();
  if (sig.ok()) r.set_signature(*sig);
  return r;
}

const TrustedKeys& Trusted() {
  static const TrustedKeys* keys = new TrustedKeys{{"publisher-1", kPublicPem}};
  return *keys;
}

// ---- Integrity
// ---------------------------------------------------------------

// Whether `signature` is kPublicPem's Ed25519 signature of `message`, checked
// with plain OpenSSL (no ringfence code), as another implementation would.
bool OpensslVerifies(const std::string& message, const std::string& signature) {
  BIO* bio = BIO_new_mem_buf(kPublicPem, -1);
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (key == nullptr) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key) == 1 &&
      EVP_DigestVerify(ctx,
                       reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(),
                       reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

TEST(ComputeDigest, Sha256AndSize) {
  const PayloadDigest d = ComputeDigest("abc");
  EXPECT_EQ(d.sha256_hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(d.size_bytes, 3u);
  EXPECT_EQ(ComputeDigest("").sha256_hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(VerifyPayload, AcceptsTheRecordedPayload) {
  EXPECT_OK(VerifyPayload(MakeRelease(), kPayload));
}

TEST(VerifyPayload, TamperedPayloadNamesBothDigests) {
  std::string tampered = kPayload;
  tampered[16] = '2';  // i1 -> i2, same size
  const Release r = MakeRelease();
  EXPECT_THAT(
      VerifyPayload(r, tampered),
      StatusIs(absl::StatusCode::kInvalidArgument,
               absl::StrCat("digest_sha256: release \"cf-291-0719\" "
                            "records \"",
                            r.digest_sha256(), "\", the payload hashes to ",
                            ComputeDigest(tampered).sha256_hex)));
}

TEST(VerifyPayload, SizeMismatchNamesBothSizes) {
  const Release r = MakeRelease();
  EXPECT_THAT(
      VerifyPayload(r, absl::StrCat(kPayload, "x")),
      StatusIs(absl::StatusCode::kInvalidArgument,
               absl::StrCat("size_bytes: release \"cf-291-0719\" records ",
                            r.size_bytes(), " bytes, the payload has ",
                            r.size_bytes() + 1)));
}

// ---- Keys
// ----------------------------------------------------------------------

TEST(GenerateKeyPair, ProducesUsablePemKeys) {
  absl::StatusOr<KeyPair> a = GenerateKeyPair();
  absl::StatusOr<KeyPair> b = GenerateKeyPair();
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_THAT(a->private_pem, StartsWith("-----BEGIN PRIVATE KEY-----\n"));
  EXPECT_THAT(a->public_pem, StartsWith("-----BEGIN PUBLIC KEY-----\n"));
  EXPECT_NE(a->private_pem, b->private_pem);
  EXPECT_OK(ValidateTrustedKeys({{"a", a->public_pem}, {"b", b->public_pem}}));

  const Release r = Signed(MakeRelease(), a->private_pem, "a");
  EXPECT_OK(VerifyReleaseSignature(r, {{"a", a->public_pem}}, true));
  EXPECT_THAT(VerifyReleaseSignature(r, {{"a", b->public_pem}}, true),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("does not match its signature by key \"a\"")));
}

TEST(PublicKeyFingerprint, IsStableAndShort) {
  absl::StatusOr<std::string> fp = PublicKeyFingerprint(kPublicPem);
  ASSERT_OK(fp);
  EXPECT_THAT(*fp, StartsWith("ed25519:"));
  EXPECT_EQ(fp->size(), 8u + 16u);
  EXPECT_EQ(*PublicKeyFingerprint(kPublicPem), *fp);
  EXPECT_OK(ValidateId(*fp, "key_id"));
  EXPECT_THAT(PublicKeyFingerprint(kPrivatePem),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("public key: not an Ed25519 public key")));
}

TEST(PublicKeyOf, IsThePrivateKeysPublicKey) {
  absl::StatusOr<std::string> fixed = PublicKeyOf(kPrivatePem);
  ASSERT_OK(fixed);
  EXPECT_EQ(*fixed, kPublicPem);
  absl::StatusOr<KeyPair> generated = GenerateKeyPair();
  ASSERT_OK(generated);
  absl::StatusOr<std::string> derived = PublicKeyOf(generated->private_pem);
  ASSERT_OK(derived);
  EXPECT_EQ(*derived, generated->public_pem);
  EXPECT_THAT(PublicKeyOf(kPublicPem),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("private key: not an Ed25519 private key")));
  EXPECT_THAT(PublicKeyOf("not a key\n"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("private key: not an Ed25519 private key")));
}

TEST(WriteKeyPairFiles, WritesBothAndNeverReplacesAPrivateKey) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/write-key-pair-test");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string key = dir + "/publisher.key";
  const std::string pub = dir + "/publisher.pub";
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto mode = [](const std::string& path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? st.st_mode & 0777 : 0u;
  };

  ASSERT_OK(WriteKeyPairFiles({kPrivatePem, kPublicPem}, key, pub));
  EXPECT_EQ(read(key), kPrivatePem);
  EXPECT_EQ(read(pub), kPublicPem);
  EXPECT_EQ(mode(key), 0600u);
  EXPECT_EQ(mode(pub), 0644u);

  // An existing private key stays, and so does its public key.
  absl::StatusOr<KeyPair> other = GenerateKeyPair();
  ASSERT_OK(other);
  EXPECT_THAT(WriteKeyPairFiles(*other, key, pub),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr(absl::StrCat("cannot create ", key, ": "))));
  EXPECT_EQ(read(key), kPrivatePem);
  EXPECT_EQ(read(pub), kPublicPem);

  // A public key that cannot be written takes its private key with it.
  const std::string key2 = dir + "/second.key";
  EXPECT_THAT(WriteKeyPairFiles(*other, key2, dir + "/missing/second.pub"),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("cannot create " + dir + "/missing/")));
  EXPECT_FALSE(std::filesystem::exists(key2));
  std::filesystem::remove_all(dir);
}

// ---- Signing
// -------------------------------------------------------------------

TEST(CanonicalReleaseMessage, IsTheDocumentedString) {
  Release r = MakeRelease();
  EXPECT_EQ(CanonicalReleaseMessage(r, SignatureFormat::kV1),
            absl::StrCat("ringfence-release-v1\ncf-291-0719\nchannel-file/"
                         "291\n2024.07.19\n",
                         r.digest_sha256(), "\n", r.size_bytes()));
  EXPECT_EQ(CanonicalReleaseMessage(r),
            absl::StrCat("ringfence-release-v2\ncf-291-0719\nchannel-file/"
                         "291\n",
                         r.digest_sha256(), "\n", r.size_bytes(),
                         "\n7.12\n\n\n2024.07.19"));
  // Platforms are a set: sorted.
  r.mutable_targeting()->set_max_agent_version("8");
  r.mutable_targeting()->add_platforms("windows");
  r.mutable_targeting()->add_platforms("linux");
  EXPECT_EQ(CanonicalReleaseMessage(r),
            absl::StrCat("ringfence-release-v2\ncf-291-0719\nchannel-file/"
                         "291\n",
                         r.digest_sha256(), "\n", r.size_bytes(),
                         "\n7.12\n8\nlinux,windows\n2024.07.19"));
}

TEST(SignRelease, GoldenV1SignatureVerifiesWithPlainOpenSsl) {
  const Release r =
      Signed(MakeRelease(), kPrivatePem, "publisher-1", SignatureFormat::kV1);
  content::v1::ReleaseSignature envelope;
  ASSERT_TRUE(envelope.ParseFromString(r.signature()));
  EXPECT_EQ(envelope.key_id(), "publisher-1");
  ASSERT_EQ(envelope.ed25519().size(), 64u);
  // Deterministic, and the same bytes the OpenSSL CLI computes from the
  // documented message:
  //   printf
  //   'ringfence-release-v1\ncf-291-0719\nchannel-file/291\n2024.07.19\n<digest>\n42'
  //   > msg openssl pkeyutl -sign -inkey key.pem -rawin -in msg | xxd -p
  EXPECT_EQ(
      Signed(MakeRelease(), kPrivatePem, "publisher-1", SignatureFormat::kV1)
          .signature(),
      r.signature());
  EXPECT_EQ(envelope.format(), 0u);  // v1 envelopes are unchanged
  EXPECT_OK(VerifyReleaseSignature(r, Trusted(), true));
  EXPECT_EQ(absl::BytesToHexString(envelope.ed25519()),
            "c0fa75578cd1933f5bf73da5d6012ec73425616eda9ff85ae6dcca0b14620dd2"
            "918c9661847423068ef304f50173d228a69c055f478371c765c3d5ed667c9c0e");
  EXPECT_EQ(r.digest_sha256(),
            "70bf0dec180f8de8b1bfdce48c977536bd81cfff1ce03ea3562ff00d6723aac5");
  EXPECT_EQ(r.size_bytes(), 42u);

  // What another implementation does: the documented message, the public
  // key, Ed25519 verify. No ringfence code involved.
  EXPECT_TRUE(
      OpensslVerifies(absl::StrCat("ringfence-release-v1\n", r.id(), "\n",
                                   r.content_type(), "\n", r.version(), "\n",
                                   r.digest_sha256(), "\n", r.size_bytes()),
                      envelope.ed25519()));
}

TEST(SignRelease, RejectsInvalidInput) {
  Release r = MakeRelease();
  r.clear_digest_sha256();
  EXPECT_THAT(SignRelease(r, kPrivatePem, "publisher-1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "digest_sha256: must be 64 lower-case hex characters "
                       "(got 0 characters)"));
  EXPECT_THAT(SignRelease(MakeRelease(), kPrivatePem, "bad key id"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("key_id: must match")));
  EXPECT_THAT(SignRelease(MakeRelease(), "not a key", "publisher-1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("private key: not an Ed25519 private key")));
  EXPECT_THAT(SignRelease(MakeRelease(), kPublicPem, "publisher-1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("private key: not an Ed25519 private key")));
}

TEST(SignRelease, RejectsKeysOfOtherAlgorithms) {
  EVP_PKEY* ec = EVP_EC_gen("P-256");
  ASSERT_NE(ec, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  ASSERT_EQ(
      PEM_write_bio_PrivateKey(bio, ec, nullptr, nullptr, 0, nullptr, nullptr),
      1);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  const std::string pem(data, len);
  BIO_free(bio);
  EVP_PKEY_free(ec);
  EXPECT_THAT(SignRelease(MakeRelease(), pem, "publisher-1"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "private key: not an Ed25519 private key (PKCS#8 PEM) "
                       "(the key is id-ecPublicKey)"));
}

// ---- Verification
// --------------------------------------------------------------

TEST(VerifyReleaseSignature, AcceptsAValidSignature) {
  EXPECT_OK(VerifyReleaseSignature(Signed(MakeRelease()), Trusted(), true));
  EXPECT_OK(VerifyReleaseSignature(Signed(MakeRelease()), Trusted(), false));
}

TEST(VerifyReleaseSignature, UnsignedWhenRequiredIsFailedPrecondition) {
  EXPECT_THAT(VerifyReleaseSignature(MakeRelease(), Trusted(), true),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "signature: release \"cf-291-0719\" is unsigned, and "
                       "releases must be signed by a trusted publisher key"));
  EXPECT_OK(VerifyReleaseSignature(MakeRelease(), Trusted(), false));
}

TEST(VerifyReleaseSignature, UnknownKeyIsPermissionDenied) {
  const Release r = Signed(MakeRelease(), kPrivatePem, "publisher-9");
  for (bool required : {true, false}) {
    EXPECT_THAT(VerifyReleaseSignature(r, Trusted(), required),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         "signature: release \"cf-291-0719\" is signed by key "
                         "\"publisher-9\", which is not a trusted publisher "
                         "key"));
  }
  EXPECT_THAT(VerifyReleaseSignature(r, {}, false),
              StatusIs(absl::StatusCode::kPermissionDenied));
}

// Each signed field, altered after signing.
struct Alteration {
  const char* name;
  void (*alter)(Release*);
};

void PrintTo(const Alteration& a, std::ostream* os) { *os << a.name; }

class AlteredReleaseTest : public ::testing::TestWithParam<Alteration> {};

TEST_P(AlteredReleaseTest, IsPermissionDenied) {
  Release r = Signed(MakeRelease());
  GetParam().alter(&r);
  EXPECT_THAT(VerifyReleaseSignature(r, Trusted(), false),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("does not match its signature by key "
                                 "\"publisher-1\": its id, content type, "
                                 "version, digest, size or targeting "
                                 "changed after signing, or another key "
                                 "signed it")));
}

INSTANTIATE_TEST_SUITE_P(
    SignedFields, AlteredReleaseTest,
    ::testing::Values(
        Alteration{"Id", [](Release* r) { r->set_id("cf-291-0720"); }},
        Alteration{"ContentType",
                   [](Release* r) { r->set_content_type("channel-file/292"); }},
        Alteration{"Version", [](Release* r) { r->set_version("2024.07.20"); }},
        Alteration{"Digest",
                   [](Release* r) {
                     r->set_digest_sha256(ComputeDigest("other").sha256_hex);
                   }},
        Alteration{"Size",
                   [](Release* r) { r->set_size_bytes(r->size_bytes() + 1); }},
        Alteration{"SignatureBit",
                   [](Release* r) {
                     content::v1::ReleaseSignature envelope;
                     ASSERT_TRUE(envelope.ParseFromString(r->signature()));
                     envelope.mutable_ed25519()->back() ^= 0x01;
                     r->set_signature(envelope.SerializeAsString());
                   }}),
    [](const ::testing::TestParamInfo<Alteration>& info) {
      return info.param.name;
    });

TEST(VerifyReleaseSignature, V2CoversTheTargeting) {
  Release r = MakeRelease();
  r.mutable_targeting()->add_platforms("windows");
  r = Signed(r);
  content::v1::ReleaseSignature envelope;
  ASSERT_TRUE(envelope.ParseFromString(r.signature()));
  EXPECT_EQ(envelope.format(), 2u);
  EXPECT_OK(VerifyReleaseSignature(r, Trusted(), true));

  // What another implementation does: the documented v2 message, plain
  // OpenSSL.
  EXPECT_TRUE(OpensslVerifies(
      absl::StrCat("ringfence-release-v2\n", r.id(), "\n", r.content_type(),
                   "\n", r.digest_sha256(), "\n", r.size_bytes(),
                   "\n7.12\n\nwindows\n", r.version()),
      envelope.ed25519()));

  // Re-targeted after signing: refused.
  for (int i = 0; i < 3; ++i) {
    Release moved = r;
    if (i == 0) moved.mutable_targeting()->set_min_agent_version("7.11");
    if (i == 1) moved.mutable_targeting()->set_max_agent_version("9");
    if (i == 2) moved.mutable_targeting()->add_platforms("linux");
    EXPECT_THAT(VerifyReleaseSignature(moved, Trusted(), true),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         HasSubstr("digest, size or targeting changed")))
        << i;
  }
}

TEST(VerifyReleaseSignature, V1SignaturesDoNotCoverTargeting) {
  Release r =
      Signed(MakeRelease(), kPrivatePem, "publisher-1", SignatureFormat::kV1);
  r.mutable_targeting()->set_min_agent_version("7.11");
  EXPECT_OK(VerifyReleaseSignature(r, Trusted(), true));
}

TEST(VerifyReleaseSignature, UnknownFormatIsInvalidArgument) {
  Release r = Signed(MakeRelease());
  content::v1::ReleaseSignature envelope;
  ASSERT_TRUE(envelope.ParseFromString(r.signature()));
  envelope.set_format(3);
  r.set_signature(envelope.SerializeAsString());
  EXPECT_THAT(VerifyReleaseSignature(r, Trusted(), true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown signature format 3")));
}

TEST(VerifyReleaseSignature, VersionsWithNewlinesAreUnambiguous) {
  // Only the version may contain "\n"; a release that moves part of it into
  // another field is invalid, so no two valid releases share a message.
  Release r = MakeRelease();
  r.set_version("a\nb");
  EXPECT_OK(VerifyReleaseSignature(Signed(r), Trusted(), true));
  r = Signed(r, kPrivatePem, "publisher-1", SignatureFormat::kV1);
  EXPECT_OK(VerifyReleaseSignature(r, Trusted(), true));
  Release moved = r;
  moved.set_content_type("channel-file/291\na");
  moved.set_version("b");
  EXPECT_EQ(CanonicalReleaseMessage(moved, SignatureFormat::kV1),
            CanonicalReleaseMessage(r, SignatureFormat::kV1));
  EXPECT_THAT(VerifyReleaseSignature(moved, Trusted(), true),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("content_type: must match")));
}

TEST(VerifyReleaseSignature, MalformedSignatureIsInvalidArgument) {
  Release r = MakeRelease();
  r.set_signature("\xff\xff\xff");
  EXPECT_THAT(VerifyReleaseSignature(r, Trusted(), false),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "signature: release \"cf-291-0719\": not a ringfence "
                       "signature (a ReleaseSignature with a key id and a "
                       "64-byte Ed25519 signature; got 3 bytes)"));
  content::v1::ReleaseSignature truncated;
  truncated.set_key_id("publisher-1");
  truncated.set_ed25519(std::string(63, 'x'));
  r.set_signature(truncated.SerializeAsString());
  EXPECT_THAT(VerifyReleaseSignature(r, Trusted(), false),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a ringfence signature")));
}

TEST(VerifyReleaseSignature, InvalidReleaseIsInvalidArgument) {
  Release r = Signed(MakeRelease());
  r.set_size_bytes(0);
  EXPECT_THAT(
      VerifyReleaseSignature(r, Trusted(), false),
      StatusIs(absl::StatusCode::kInvalidArgument, "size_bytes: must be > 0"));
}

TEST(ValidateTrustedKeys, NamesTheBadKey) {
  EXPECT_OK(ValidateTrustedKeys(Trusted()));
  EXPECT_THAT(ValidateTrustedKeys({{"k1", kPublicPem}, {"k2", "garbage"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("trusted_keys[\"k2\"]: not an Ed25519 public "
                                 "key (PEM)")));
  EXPECT_THAT(ValidateTrustedKeys({{"", kPublicPem}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "trusted_keys[\"\"]: must not be empty"));
  EXPECT_THAT(ValidateTrustedKeys({{"k", kPrivatePem}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("trusted_keys[\"k\"]: not an Ed25519 public "
                                 "key")));
}

TEST(LoadTrustedKeysFile, ReadsKeysRelativeToTheFileAndNamesBadLines) {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/trusted-keys-test");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/keys");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(absl::StrCat(dir, "/", name)) << text;
    return absl::StrCat(dir, "/", name);
  };
  write("keys/publisher.pub", kPublicPem);
  absl::StatusOr<TrustedKeys> keys = LoadTrustedKeysFile(
      write("ok", "# key_id path\npublisher-1 keys/publisher.pub  # ci\n\n"));
  ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(keys->at("publisher-1"), kPublicPem);

  EXPECT_THAT(LoadTrustedKeysFile(write("bad", "publisher-1\n")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("bad:1: expected `key_id path/to/key.pub`")));
  EXPECT_THAT(LoadTrustedKeysFile(write("missing", "\nk1 nope.pub\n")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("missing:2: cannot read")));
  EXPECT_THAT(LoadTrustedKeysFile(write(
                  "dup", "k1 keys/publisher.pub\nk1 keys/publisher.pub\n")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("dup:2: duplicate key id \"k1\"")));
  write("keys/private.pem", kPrivatePem);
  EXPECT_THAT(LoadTrustedKeysFile(write("private", "k1 keys/private.pem\n")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not an Ed25519 public key")));
  EXPECT_THAT(LoadTrustedKeysFile(dir + "/absent"),
              StatusIs(absl::StatusCode::kNotFound));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ringfence
