#include "service/ringctl/release_flags.h"

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "ringfence/signing.h"

namespace ringfence::ringctl {

void AddReleaseFlags(CommandLine& cli, CLI::App* command, ReleaseUse use,
                     ReleaseFlags* flags) {
  const CommandLine::Need need = use == ReleaseUse::kValidate
                                     ? CommandLine::kOptional
                                     : CommandLine::kRequired;
  cli.AddFlag(command, "id", &flags->id, "the release's id", need)
      ->type_name("ID");
  cli.AddFlag(command, "content-type", &flags->content_type,
              "its content type, e.g. channel-file/291", need)
      ->type_name("TYPE");
  cli.AddFlag(command, "payload", &flags->payload,
              use == ReleaseUse::kSign
                  ? "the content file: digest and size default to its own"
                  : "the content file, sent for the server's content rules; "
                    "digest and size default to its own")
      ->type_name("FILE");
  cli.AddFlag(command, "digest", &flags->digest,
              "SHA-256 of the payload, lower-case hex (without --payload)")
      ->type_name("SHA256");
  cli.AddFlag(command, "size", &flags->size,
              "size of the payload in bytes (without --payload)")
      ->type_name("BYTES");
  cli.AddFlag(command, "version", &flags->version, "the content's version")
      ->type_name("V");
  if (use != ReleaseUse::kSign) {
    cli.AddFlag(command, "fetch-url", &flags->fetch_url,
                "where hosts fetch the payload")
        ->type_name("URL");
  }
  cli.AddFlag(command, "platforms", &flags->platforms,
              "targeted platforms, comma-separated (default: all)")
      ->type_name("a,b");
  cli.AddFlag(command, "min-agent-version", &flags->min_agent_version,
              "oldest agent version targeted")
      ->type_name("V");
  cli.AddFlag(command, "max-agent-version", &flags->max_agent_version,
              "agent versions targeted are below this one")
      ->type_name("V");
  if (use != ReleaseUse::kSign) {
    cli.AddFlag(command, "signature", &flags->signature,
                "the publisher's signature, base64 (what `ringctl sign` "
                "prints)")
        ->type_name("BASE64");
  }
}

bool ReleaseFromFlags(const ReleaseFlags& flags, bool require_digest,
                      const Invocation& inv, Release* r, std::string* payload) {
  r->set_id(flags.id);
  r->set_content_type(flags.content_type);
  r->set_digest_sha256(flags.digest.value_or(""));
  uint64_t size = 0;
  if (flags.size.has_value() && !absl::SimpleAtoi(*flags.size, &size)) {
    inv.Usage("--size must be a number of bytes");
    return false;
  }
  r->set_size_bytes(size);
  if (flags.payload.has_value()) {
    std::string contents;
    if (!ReadWholeFile("release", *flags.payload, &contents)) return false;
    const PayloadDigest d = ComputeDigest(contents);
    if (!flags.digest.has_value()) r->set_digest_sha256(d.sha256_hex);
    if (!flags.size.has_value()) r->set_size_bytes(d.size_bytes);
    if (payload != nullptr) *payload = std::move(contents);
  } else if (require_digest &&
             (!flags.digest.has_value() || !flags.size.has_value())) {
    inv.Usage("--digest and --size are required without --payload");
    return false;
  }
  r->set_version(flags.version);
  r->set_fetch_url(flags.fetch_url);
  if (flags.signature.has_value()) {
    std::string signature;
    if (!absl::Base64Unescape(*flags.signature, &signature)) {
      inv.Usage("--signature must be base64 (what `ringctl sign` prints)");
      return false;
    }
    r->set_signature(signature);
  }
  r->mutable_targeting()->set_min_agent_version(flags.min_agent_version);
  r->mutable_targeting()->set_max_agent_version(flags.max_agent_version);
  if (flags.platforms.has_value()) {
    for (absl::string_view p :
         absl::StrSplit(*flags.platforms, ',', absl::SkipEmpty())) {
      r->mutable_targeting()->add_platforms(std::string(p));
    }
  }
  return true;
}

}  // namespace ringfence::ringctl
