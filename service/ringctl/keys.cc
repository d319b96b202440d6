// ringctl keygen and sign (offline): a publisher's Ed25519 key pair, and
// release signatures for Release.signature (ringfence/signing.h).
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "ringfence/model.h"
#include "ringfence/signing.h"
#include "service/ringctl/commands.h"
#include "service/ringctl/release_flags.h"

namespace ringfence::ringctl {
namespace {

// Writes `contents` to a new file `path` with `mode`; `exclusive` refuses
// to replace an existing file. False (after a message) on failure.
bool WriteNewFile(const std::string& path, const std::string& contents,
                  mode_t mode, bool exclusive) {
  const int fd = open(
      path.c_str(),
      O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), mode);
  if (fd < 0) {
    std::fprintf(stderr, "ringctl keygen: cannot create %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return false;
  }
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
    std::fprintf(stderr, "ringctl keygen: cannot write %s: %s\n", path.c_str(),
                 std::strerror(errno));
  }
  return ok;
}

// The public key PEM of a private key PEM; empty if it is not a key.
std::string PublicPemOf(const std::string& private_pem) {
  std::string out;
  BIO* in =
      BIO_new_mem_buf(private_pem.data(), static_cast<int>(private_pem.size()));
  if (in == nullptr) return out;
  EVP_PKEY* key = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  if (key == nullptr) return out;
  BIO* mem = BIO_new(BIO_s_mem());
  if (mem != nullptr && PEM_write_bio_PUBKEY(mem, key) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem, &data);
    if (n > 0) out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(mem);
  EVP_PKEY_free(key);
  return out;
}

int KeyGen(const Invocation& inv, const std::string& prefix) {
  absl::StatusOr<KeyPair> keys = GenerateKeyPair();
  if (!keys.ok()) {
    std::fprintf(stderr, "ringctl keygen: %s\n",
                 std::string(keys.status().message()).c_str());
    return kExitError;
  }
  absl::StatusOr<std::string> key_id = PublicKeyFingerprint(keys->public_pem);
  if (!key_id.ok()) {
    std::fprintf(stderr, "ringctl keygen: %s\n",
                 std::string(key_id.status().message()).c_str());
    return kExitError;
  }
  const std::string key_path = prefix + ".key";
  const std::string pub_path = prefix + ".pub";
  if (!WriteNewFile(key_path, keys->private_pem, 0600, /*exclusive=*/true)) {
    return kExitError;
  }
  if (!WriteNewFile(pub_path, keys->public_pem, 0644, /*exclusive=*/false)) {
    unlink(key_path.c_str());
    return kExitError;
  }
  if (inv.json()) {
    std::printf(
        "{\"key_id\": \"%s\", \"private_key\": \"%s\", "
        "\"public_key\": \"%s\"}\n",
        key_id->c_str(), absl::CHexEscape(key_path).c_str(),
        absl::CHexEscape(pub_path).c_str());
  } else {
    std::printf("%s\n", key_id->c_str());
    std::fprintf(stderr, "wrote %s (private, keep secret) and %s\n",
                 key_path.c_str(), pub_path.c_str());
  }
  return kExitOk;
}

struct SignFlags {
  std::string key;
  std::string key_id;
  ReleaseFlags release;
};

int Sign(const Invocation& inv, const SignFlags& f) {
  Release release;
  if (!ReleaseFromFlags(f.release, /*require_digest=*/true, inv, &release)) {
    return kExitError;
  }
  std::string private_pem;
  if (!ReadWholeFile("sign", f.key, &private_pem)) return kExitError;
  std::string key_id = f.key_id;
  if (key_id.empty()) {
    absl::StatusOr<std::string> fp =
        PublicKeyFingerprint(PublicPemOf(private_pem));
    if (!fp.ok()) {
      std::fprintf(stderr,
                   "ringctl sign: --key %s: not an Ed25519 private key\n",
                   f.key.c_str());
      return kExitError;
    }
    key_id = *std::move(fp);
  }
  absl::StatusOr<std::string> signature =
      SignRelease(release, private_pem, key_id);
  if (!signature.ok()) {
    std::fprintf(stderr, "ringctl sign: %s\n",
                 std::string(signature.status().message()).c_str());
    return kExitError;
  }
  const std::string b64 = absl::Base64Escape(*signature);
  if (inv.json()) {
    std::printf("{\"key_id\": \"%s\", \"signature\": \"%s\"}\n",
                absl::CHexEscape(key_id).c_str(), b64.c_str());
  } else {
    std::printf("%s\n", b64.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddKeyCommands(CommandLine& cli) {
  auto prefix = std::make_shared<std::string>();
  CLI::App* app = cli.AddCommand(
      {"keygen"}, "write a new Ed25519 key pair (offline)",
      CommandLine::kOffline,
      [prefix](const Invocation& inv) { return KeyGen(inv, *prefix); });
  cli.SetDetails(app,
                 "Writes PREFIX.key (private, mode 0600, never overwritten) "
                 "and PREFIX.pub, and prints the key id (the public key's "
                 "fingerprint).");
  cli.AddFlag(app, "out", prefix.get(), "where to write the key pair",
              CommandLine::kRequired)
      ->type_name("PREFIX");

  auto sign = std::make_shared<SignFlags>();
  app = cli.AddCommand(
      {"sign"}, "sign a release (offline)", CommandLine::kOffline,
      [sign](const Invocation& inv) { return Sign(inv, *sign); });
  cli.SetDetails(app,
                 "Prints the signature, base64, for release create "
                 "--signature (Release.signature). The release flags are "
                 "those of release create.");
  cli.AddFlag(app, "key", &sign->key, "the publisher's private key",
              CommandLine::kRequired)
      ->type_name("PREFIX.key");
  AddReleaseFlags(cli, app, ReleaseUse::kSign, &sign->release);
  cli.AddFlag(app, "key-id", &sign->key_id,
              "the key id the signature names (default: the key's "
              "fingerprint)")
      ->type_name("K");
}

}  // namespace ringfence::ringctl
