// CommandHooks: the vendor's side of ringfence-agent as shell commands.
//
//   fetch   `fetch_command URL` writes the payload to its stdout (exit 0);
//           a file:// URL is read directly.
//   load    `load_command PAYLOAD_PATH RELEASE_ID` loads the verified
//           payload (exit 0 = loaded). It may kill the host or the agent:
//           the agent marked the release applying, durably, before it ran.
//   unload  `unload_command` stops running the content type (exit 0).
//
// Commands run with /bin/sh -c, with RINGFENCE_RELEASE_ID and
// RINGFENCE_PAYLOAD set as well as the positional arguments; their stderr is
// the agent's. Errors: INTERNAL naming the command and its exit status;
// NOT_FOUND for an unreadable file:// payload.
//
// Thread safety: not thread-safe (the agent calls it from one thread).
#pragma once

#include <string>

#include "ringfence/agent.h"

namespace ringfence::agent {

struct CommandHooksOptions {
  std::string fetch_command = "curl -fsSL --max-time 300";
  std::string load_command;
  std::string unload_command;
};

class CommandHooks final : public ContentHooks {
 public:
  explicit CommandHooks(CommandHooksOptions options)
      : options_(std::move(options)) {}

  absl::StatusOr<std::string> Fetch(const Release& release) override;
  absl::Status Load(const Release& release,
                    const std::string& payload_path) override;
  absl::Status Unload() override;

 private:
  CommandHooksOptions options_;
};

// RunCommand
//
// Runs `command` with /bin/sh -c and positional arguments `args` ($1...),
// extra environment `env` ("NAME=value"); its stdout in *out if `out` is set
// (at most max_out bytes; more is an error). OK iff it exited 0.
absl::Status RunCommand(const std::string& command,
                        const std::vector<std::string>& args,
                        const std::vector<std::string>& env, std::string* out,
                        size_t max_out = size_t{1} << 30);

}  // namespace ringfence::agent
