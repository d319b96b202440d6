#include "ringfence/signing.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ringfence/audit.h"
#include "ringfence/content/v1/content.pb.h"
#include "ringfence/error_text.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

constexpr size_t kEd25519SignatureBytes = 64;
constexpr char kMessagePrefixV1[] = "ringfence-release-v1\n";
constexpr char kMessagePrefixV2[] = "ringfence-release-v2\n";

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

// The first queued OpenSSL error, for messages; clears the queue so errors
// never leak into unrelated OpenSSL calls on this thread.
std::string OpenSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

enum class KeyKind { kPrivate, kPublic };

absl::StatusOr<PkeyPtr> ReadKey(absl::string_view pem, KeyKind kind,
                                absl::string_view field) {
  if (pem.size() > 64 * 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": not a PEM key (", pem.size(), " bytes)"));
  }
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::InternalError(OpenSslError());
  PkeyPtr key(kind == KeyKind::kPrivate
                  ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr,
                                            const_cast<char*>(""))
                  : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr,
                                        const_cast<char*>("")));
  const absl::string_view what = kind == KeyKind::kPrivate
                                     ? "an Ed25519 private key (PKCS#8 PEM)"
                                     : "an Ed25519 public key (PEM)";
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": not ", what, ": ", OpenSslError()));
  }
  if (EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": not ", what, " (the key is ",
                     OBJ_nid2sn(EVP_PKEY_id(key.get())), ")"));
  }
  return key;
}

absl::StatusOr<std::string> WritePem(EVP_PKEY* key, KeyKind kind) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr) return absl::InternalError(OpenSslError());
  const int ok = kind == KeyKind::kPrivate
                     ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr,
                                                nullptr, 0, nullptr, nullptr)
                     : PEM_write_bio_PUBKEY(bio.get(), key);
  if (ok != 1) return absl::InternalError(OpenSslError());
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// Writes `contents` to the file `path` with `mode`; `exclusive` refuses to
// replace an existing file (ALREADY_EXISTS).
absl::Status WriteKeyFile(const std::string& path, absl::string_view contents,
                          mode_t mode, bool exclusive) {
  const int fd = open(
      path.c_str(),
      O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), mode);
  if (fd < 0) {
    const int error = errno;
    const std::string message =
        absl::StrCat("cannot create ", path, ": ", std::strerror(error));
    return error == EEXIST ? absl::AlreadyExistsError(message)
                           : absl::InternalError(message);
  }
  // The mode, whatever the umask (and an existing public key's mode).
  bool ok = fchmod(fd, mode) == 0;
  size_t done = 0;
  while (ok && done < contents.size()) {
    const ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) ok = false;
  if (!ok) {
    return absl::InternalError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// The canonical message needs the release's fields well-formed.
absl::Status CheckRelease(const Release& release) {
  return ValidateRelease(release);
}

}  // namespace

PayloadDigest ComputeDigest(absl::string_view payload) {
  return PayloadDigest{Sha256Hex(payload), payload.size()};
}

absl::Status VerifyPayload(const Release& release, absl::string_view payload) {
  if (release.size_bytes() != payload.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "size_bytes: release ", QuoteForError(release.id()), " records ",
        release.size_bytes(), " bytes, the payload has ", payload.size()));
  }
  const std::string digest = Sha256Hex(payload);
  if (release.digest_sha256() != digest) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest_sha256: release ", QuoteForError(release.id()),
                     " records ", QuoteForError(release.digest_sha256()),
                     ", the payload hashes to ", digest));
  }
  return absl::OkStatus();
}

absl::StatusOr<KeyPair> GenerateKeyPair() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1) {
    return absl::InternalError(OpenSslError());
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    return absl::InternalError(OpenSslError());
  }
  PkeyPtr key(raw);
  KeyPair pair;
  ASSIGN_OR_RETURN(pair.private_pem, WritePem(key.get(), KeyKind::kPrivate));
  ASSIGN_OR_RETURN(pair.public_pem, WritePem(key.get(), KeyKind::kPublic));
  return pair;
}

absl::StatusOr<std::string> PublicKeyOf(absl::string_view private_pem) {
  ASSIGN_OR_RETURN(PkeyPtr key,
                   ReadKey(private_pem, KeyKind::kPrivate, "private key"));
  return WritePem(key.get(), KeyKind::kPublic);
}

absl::Status WriteKeyPairFiles(const KeyPair& keys,
                               const std::string& private_key_path,
                               const std::string& public_key_path) {
  RETURN_IF_ERROR(WriteKeyFile(private_key_path, keys.private_pem, 0600,
                               /*exclusive=*/true));
  absl::Status s =
      WriteKeyFile(public_key_path, keys.public_pem, 0644, /*exclusive=*/false);
  if (!s.ok()) unlink(private_key_path.c_str());
  return s;
}

absl::StatusOr<std::string> PublicKeyFingerprint(absl::string_view public_pem) {
  ASSIGN_OR_RETURN(PkeyPtr key,
                   ReadKey(public_pem, KeyKind::kPublic, "public key"));
  unsigned char raw[64];
  size_t len = sizeof raw;
  if (EVP_PKEY_get_raw_public_key(key.get(), raw, &len) != 1) {
    return absl::InternalError(OpenSslError());
  }
  return absl::StrCat(
      "ed25519:",
      Sha256Hex(absl::string_view(reinterpret_cast<const char*>(raw), len))
          .substr(0, 16));
}

std::string CanonicalReleaseMessage(const Release& release,
                                    SignatureFormat format) {
  if (format == SignatureFormat::kV1) {
    return absl::StrCat(kMessagePrefixV1, release.id(), "\n",
                        release.content_type(), "\n", release.version(), "\n",
                        release.digest_sha256(), "\n", release.size_bytes());
  }
  const Targeting& t = release.targeting();
  std::vector<std::string> platforms(t.platforms().begin(),
                                     t.platforms().end());
  std::sort(platforms.begin(), platforms.end());
  return absl::StrCat(kMessagePrefixV2, release.id(), "\n",
                      release.content_type(), "\n", release.digest_sha256(),
                      "\n", release.size_bytes(), "\n", t.min_agent_version(),
                      "\n", t.max_agent_version(), "\n",
                      absl::StrJoin(platforms, ","), "\n", release.version());
}

absl::StatusOr<std::string> SignRelease(const Release& release,
                                        absl::string_view private_pem,
                                        absl::string_view key_id,
                                        SignatureFormat format) {
  RETURN_IF_ERROR(CheckRelease(release));
  RETURN_IF_ERROR(ValidateId(key_id, "key_id"));
  ASSIGN_OR_RETURN(PkeyPtr key,
                   ReadKey(private_pem, KeyKind::kPrivate, "private key"));
  const std::string message = CanonicalReleaseMessage(release, format);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned char sig[kEd25519SignatureBytes];
  size_t sig_len = sizeof sig;
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) !=
          1 ||
      EVP_DigestSign(ctx.get(), sig, &sig_len,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1) {
    return absl::InternalError(absl::StrCat("signing: ", OpenSslError()));
  }
  content::v1::ReleaseSignature envelope;
  envelope.set_key_id(std::string(key_id));
  envelope.set_ed25519(reinterpret_cast<const char*>(sig), sig_len);
  if (format != SignatureFormat::kV1) {
    envelope.set_format(static_cast<uint32_t>(format));
  }
  return envelope.SerializeAsString();
}

absl::Status ValidateTrustedKeys(const TrustedKeys& keys) {
  for (const auto& [id, pem] : keys) {
    const std::string field =
        absl::StrCat("trusted_keys[", QuoteForError(id), "]");
    RETURN_IF_ERROR(ValidateId(id, field));
    RETURN_IF_ERROR(ReadKey(pem, KeyKind::kPublic, field).status());
  }
  return absl::OkStatus();
}

absl::Status VerifyReleaseSignature(const Release& release,
                                    const TrustedKeys& trusted_keys,
                                    bool require_signature) {
  if (release.signature().empty()) {
    if (!require_signature) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "signature: release ", QuoteForError(release.id()),
        " is unsigned, and releases must be signed by a trusted publisher "
        "key"));
  }
  RETURN_IF_ERROR(CheckRelease(release));
  content::v1::ReleaseSignature envelope;
  if (!envelope.ParseFromString(release.signature()) ||
      envelope.key_id().empty() ||
      envelope.ed25519().size() != kEd25519SignatureBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "signature: release ", QuoteForError(release.id()),
        ": not a ringfence signature (a ReleaseSignature with a key id and a "
        "64-byte Ed25519 signature; got ",
        release.signature().size(), " bytes)"));
  }
  if (envelope.format() > static_cast<uint32_t>(SignatureFormat::kV2)) {
    return absl::InvalidArgumentError(
        absl::StrCat("signature: release ", QuoteForError(release.id()),
                     ": unknown signature format ", envelope.format(),
                     " (this server knows formats 1 and 2)"));
  }
  const SignatureFormat format =
      envelope.format() == 2 ? SignatureFormat::kV2 : SignatureFormat::kV1;
  const auto it = trusted_keys.find(envelope.key_id());
  if (it == trusted_keys.end()) {
    return absl::PermissionDeniedError(
        absl::StrCat("signature: release ", QuoteForError(release.id()),
                     " is signed by key ", QuoteForError(envelope.key_id()),
                     ", which is not a trusted publisher key"));
  }
  ASSIGN_OR_RETURN(
      PkeyPtr key,
      ReadKey(it->second, KeyKind::kPublic,
              absl::StrCat("trusted_keys[", QuoteForError(it->first), "]")));
  const std::string message = CanonicalReleaseMessage(release, format);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr,
                                             nullptr, key.get()) != 1) {
    return absl::InternalError(absl::StrCat("verifying: ", OpenSslError()));
  }
  const int ok = EVP_DigestVerify(
      ctx.get(),
      reinterpret_cast<const unsigned char*>(envelope.ed25519().data()),
      envelope.ed25519().size(),
      reinterpret_cast<const unsigned char*>(message.data()), message.size());
  if (ok != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError(
        absl::StrCat("signature: release ", QuoteForError(release.id()),
                     " does not match its signature by key ",
                     QuoteForError(envelope.key_id()),
                     ": its id, content type, version, digest, size",
                     format == SignatureFormat::kV2 ? " or targeting" : "",
                     " changed after signing, or another key signed it"));
  }
  return absl::OkStatus();
}

absl::StatusOr<TrustedKeys> LoadTrustedKeysFile(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string contents, ReadFileToString(path));
  TrustedKeys keys;
  int n = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++n;
    line = line.substr(0, line.find('#'));
    std::vector<std::string> words =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (words.empty()) continue;
    const std::string where = absl::StrCat(path, ":", n);
    if (words.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected `key_id path/to/key.pub`"));
    }
    const std::string key_path = ResolvePath(path, words[1]);
    absl::StatusOr<std::string> pem = ReadFileToString(key_path);
    if (!pem.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": cannot read ", key_path));
    }
    if (!keys.emplace(words[0], *std::move(pem)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": duplicate key id ", QuoteForError(words[0])));
    }
  }
  absl::Status s = ValidateTrustedKeys(keys);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  return keys;
}

}  // namespace ringfence
