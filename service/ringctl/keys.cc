// ringctl keygen and sign (offline): a publisher's Ed25519 key pair, and
// release signatures for Release.signature (ringfence/signing.h).
#include <cstdio>
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
  const absl::Status written = WriteKeyPairFiles(*keys, key_path, pub_path);
  if (!written.ok()) {
    std::fprintf(stderr, "ringctl keygen: %s\n",
                 std::string(written.message()).c_str());
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
    absl::StatusOr<std::string> fp = PublicKeyOf(private_pem);
    if (fp.ok()) fp = PublicKeyFingerprint(*fp);
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
