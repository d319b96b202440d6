// A ContentValidator that runs an external command — typically the vendor's
// real content parser — on the payload.
//
// The protocol:
//   * the command is run directly (argv, no shell), in its own process group,
//     with the payload on stdin and the parent's environment;
//   * it must exit 0 and print, on stdout, JSON of the ValidatorOutput message
//     (ringfence/content/v1/content.proto):
//       {"findings": [{"code": "OFFSET_OUT_OF_RANGE", "severity": "error",
//                      "instance": "i7", "field": "offset", "message": "..."}]}
//     `severity` is "error" or "warning", `code` is required, unknown keys are
//     ignored; no findings: {"findings": []} or {} (no output at all is
//     not JSON, hence a failure);
//   * stderr is collected and quoted in failure messages.
//
// Anything else is a VALIDATOR_FAILED error finding, so the payload is
// rejected: a non-zero exit, death by a signal (a crash), running past the
// timeout (the whole process group is killed with SIGKILL), output that is
// not the JSON above or is larger than max_output_bytes, or a command that
// cannot be started. The memory limit is RLIMIT_AS of the child (allocation
// beyond it fails inside the command, which then typically exits non-zero or
// crashes). Core dumps of the child are disabled.
//
// Thread safety: Validate() may be called concurrently; each call runs its
// own child process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ringfence/validate.h"

namespace ringfence {

struct ExternalValidatorOptions {
  // Name for Finding::source and messages. Default: the base name of
  // argv[0].
  std::string name;
  // The command. REQUIRES: non-empty. argv[0] is a path, or a name looked up
  // in PATH when it has no '/'.
  std::vector<std::string> argv;
  // Wall-clock limit for one run (default 30 s). Must be > 0.
  absl::Duration timeout = absl::Seconds(30);
  // RLIMIT_AS of the child in bytes (default 1 GiB); 0 = no limit.
  uint64_t memory_limit_bytes = uint64_t{1} << 30;
  // More stdout than this is a failure (default 4 MiB).
  size_t max_output_bytes = size_t{4} << 20;
};

// NewExternalValidator
//
// A validator running `options.argv`. INVALID_ARGUMENT for empty argv or a
// non-positive timeout; NOT_FOUND if argv[0] is not an executable file (or
// not found in PATH).
absl::StatusOr<ContentValidatorPtr> NewExternalValidator(
    ExternalValidatorOptions options);

}  // namespace ringfence
