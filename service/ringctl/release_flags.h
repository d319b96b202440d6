// The flags that describe a release, shared by `release create`, `release
// validate` and `sign`: --id, --content-type, --payload or --digest and
// --size, --version, the targeting (--min-agent-version,
// --max-agent-version, --platforms), and for the release commands
// --fetch-url and --signature.
#pragma once

#include <optional>
#include <string>

#include "ringfence/model.h"
#include "service/ringctl/command_line.h"

namespace ringfence::ringctl {

struct ReleaseFlags {
  std::string id;
  std::string content_type;
  std::optional<std::string> payload;
  std::optional<std::string> digest;
  std::optional<std::string> size;
  std::string version;
  std::string min_agent_version;
  std::string max_agent_version;
  std::optional<std::string> platforms;
  // Release commands only.
  std::string fetch_url;
  std::optional<std::string> signature;
};

// What a command uses the flags for.
enum class ReleaseUse { kCreate, kValidate, kSign };

// AddReleaseFlags
//
// Adds the release flags `use` takes to `command`, into `*flags` (which must
// outlive the command line). --id and --content-type are required except for
// kValidate, which lets the server name what is missing.
void AddReleaseFlags(CommandLine& cli, CLI::App* command, ReleaseUse use,
                     ReleaseFlags* flags);

// ReleaseFromFlags
//
// The release the flags describe (and --payload's contents into `*payload`,
// if not null); false after a message on a bad value. --digest and --size
// default to the payload's; without a payload they are required if
// `require_digest`.
bool ReleaseFromFlags(const ReleaseFlags& flags, bool require_digest,
                      const Invocation& inv, Release* r,
                      std::string* payload = nullptr);

}  // namespace ringfence::ringctl
