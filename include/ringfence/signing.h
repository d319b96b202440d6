// Release integrity and publisher signatures.
//
// Integrity: a release records the SHA-256 (lower-case hex) and size of its
// payload; VerifyPayload checks a payload against them.
//
// Signatures: Ed25519 (RFC 8032, "pure", no pre-hash) over the canonical
// release message, a UTF-8 string with "\n" separators and no trailing
// newline. Format v2 (what SignRelease writes):
//
//   "ringfence-release-v2\n" + id + "\n" + content_type + "\n" +
//   digest_sha256 + "\n" + decimal(size_bytes) + "\n" +
//   targeting.min_agent_version + "\n" + targeting.max_agent_version +
//   "\n" + join(sorted(targeting.platforms), ",") + "\n" + version
//
// e.g. "ringfence-release-v2\ncf-291-0719\nchannel-file/291\n<64 hex>\n"
//      "40960\n7.12\n8\nlinux,windows\n2024.07.19". It is unambiguous:
// every field but the version is validated to contain neither "\n" nor ","
// (ValidateRelease), and the version is everything after the eighth "\n".
// So a signed release cannot be re-targeted (e.g. to agents that cannot
// read its content) without the signature failing. fetch_url and created_at
// are not signed (the digest pins the content wherever it is fetched from).
//
// Format v1 (legacy, still verified; ReleaseSignature.format 0 or 1):
//
//   "ringfence-release-v1\n" + id + "\n" + content_type + "\n" + version +
//   "\n" + digest_sha256 + "\n" + decimal(size_bytes)
//
// with the version everything between the third line and the last two. It
// does NOT cover the targeting.
//
// Release.signature holds a binary-encoded ReleaseSignature message
// (content.proto): field 1 `key_id` (string), field 2 `ed25519` (the 64
// signature bytes), field 3 `format` (2 for v2). To verify in another
// language: decode that message, look up the public key by key_id, build the
// message of its format and run Ed25519 verify. Keys are PEM: PKCS#8 "PRIVATE
// KEY" and SubjectPublicKeyInfo "PUBLIC KEY" (what `openssl genpkey -algorithm
// ed25519` writes).
//
// Error codes:
//   INVALID_ARGUMENT     the release metadata is invalid, the signature bytes
//                        are not a ReleaseSignature, a key is not Ed25519
//                        PEM, or VerifyPayload's payload does not match
//                        the recorded digest or size;
//   FAILED_PRECONDITION  unsigned while signatures are required;
//   PERMISSION_DENIED    signed by a key that is not trusted, or the
//                        signature does not verify (metadata or digest
//                        altered after signing, or a different key).
//
// Thread safety: all functions are pure (OpenSSL 3 is thread-safe).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringfence/model.h"

namespace ringfence {

struct PayloadDigest {
  // Lower-case hex SHA-256.
  std::string sha256_hex;
  uint64_t size_bytes = 0;
};

// ComputeDigest
//
// The digest and size to record in a Release for `payload`.
PayloadDigest ComputeDigest(absl::string_view payload);

// VerifyPayload
//
// OK if `payload` has the size and SHA-256 `release` records; otherwise
// INVALID_ARGUMENT naming the field and both values, e.g.
// `digest_sha256: release records 9f86…, the payload hashes to 60303…`.
absl::Status VerifyPayload(const Release& release, absl::string_view payload);

struct KeyPair {
  // PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"). Keep secret.
  std::string private_pem;
  // SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----").
  std::string public_pem;
};

// GenerateKeyPair
//
// A new Ed25519 key pair. INTERNAL if OpenSSL fails.
absl::StatusOr<KeyPair> GenerateKeyPair();

// PublicKeyOf
//
// The public key (SubjectPublicKeyInfo PEM) of the Ed25519 private key
// `private_pem` (PKCS#8 PEM). INVALID_ARGUMENT if it is not one.
absl::StatusOr<std::string> PublicKeyOf(absl::string_view private_pem);

// WriteKeyPairFiles
//
// Writes `keys` to two files: the private key to `private_key_path`, created
// with mode 0600 and never replacing an existing file (ALREADY_EXISTS), and
// the public key to `public_key_path`, mode 0644 (replaced if it exists). If
// the public key cannot be written, the private key file is removed again.
// Other failures are INTERNAL. Messages name the file: "cannot create
// publisher.key: File exists", "cannot write publisher.pub: ...".
//
//   absl::StatusOr<KeyPair> keys = GenerateKeyPair();
//   RETURN_IF_ERROR(WriteKeyPairFiles(*keys, "publisher.key",
//                                     "publisher.pub"));
absl::Status WriteKeyPairFiles(const KeyPair& keys,
                               const std::string& private_key_path,
                               const std::string& public_key_path);

// PublicKeyFingerprint
//
// A default key id for a public key: "ed25519:" + the first 16 hex
// characters of the SHA-256 of the raw 32-byte key. INVALID_ARGUMENT if
// `public_pem` is not an Ed25519 public key.
absl::StatusOr<std::string> PublicKeyFingerprint(absl::string_view public_pem);

// The canonical message formats (see above).
enum class SignatureFormat { kV1 = 1, kV2 = 2 };

// CanonicalReleaseMessage
//
// The message that is signed (see above). REQUIRES: ValidateRelease(release)
// is OK (SignRelease and VerifyReleaseSignature check).
std::string CanonicalReleaseMessage(
    const Release& release, SignatureFormat format = SignatureFormat::kV2);

// SignRelease
//
// The bytes to store in Release.signature: `release` (its signature field is
// ignored) signed with `private_pem`, tagged with `key_id` (an id, see
// ValidateId). INVALID_ARGUMENT for an invalid release, key id or key.
// `format` kV1 only to produce legacy signatures (tests, old agents).
absl::StatusOr<std::string> SignRelease(
    const Release& release, absl::string_view private_pem,
    absl::string_view key_id, SignatureFormat format = SignatureFormat::kV2);

// Publisher keys a server trusts: key id -> Ed25519 public key PEM.
using TrustedKeys = std::map<std::string, std::string>;

// ValidateTrustedKeys
//
// Checks every key id is an id and every PEM an Ed25519 public key
// (INVALID_ARGUMENT naming `trusted_keys["id"]`), so bad configuration fails
// at startup rather than at the first release.
absl::Status ValidateTrustedKeys(const TrustedKeys& keys);

// LoadTrustedKeysFile
//
// Reads a trusted-keys file (ringfenced --trusted_keys_file): one
// `key_id path/to/key.pub` per line (Ed25519 PEM public key; a relative
// path is relative to the file's directory), '#' starts a comment. NOT_FOUND
// if the file cannot be read; INVALID_ARGUMENT naming `file:line` for a
// malformed line, an unreadable key, a duplicate key id, or a key that is
// not Ed25519.
absl::StatusOr<TrustedKeys> LoadTrustedKeysFile(const std::string& path);

// VerifyReleaseSignature
//
// Checks `release.signature`:
//   * empty: FAILED_PRECONDITION if `require_signature`, else OK;
//   * otherwise it must verify, whether or not signatures are required:
//     key id not in `trusted_keys` or a signature that does not verify is
//     PERMISSION_DENIED; malformed signature bytes or an unknown format
//     INVALID_ARGUMENT. v1 signatures verify without looking at targeting.
// Does not look at the payload: pair it with VerifyPayload.
absl::Status VerifyReleaseSignature(const Release& release,
                                    const TrustedKeys& trusted_keys,
                                    bool require_signature);

}  // namespace ringfence
