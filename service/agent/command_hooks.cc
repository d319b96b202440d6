#include "service/agent/command_hooks.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ringfence/error_text.h"

extern char** environ;

namespace ringfence::agent {

absl::Status RunCommand(const std::string& command,
                        const std::vector<std::string>& args,
                        const std::vector<std::string>& env, std::string* out,
                        size_t max_out) {
  std::vector<std::string> argv_s = {"/bin/sh", "-c", command,
                                     "ringfence-agent"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) env_s.emplace_back(*e);
  env_s.insert(env_s.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int pipe_fds[2] = {-1, -1};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (out != nullptr) {
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
      posix_spawn_file_actions_destroy(&actions);
      return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
    }
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  } else {
    // The agent's stdout is its log: keep commands' output on stderr.
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  }
  pid_t pid = 0;
  const int rc =
      posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (out != nullptr) close(pipe_fds[1]);
  if (rc != 0) {
    if (out != nullptr) close(pipe_fds[0]);
    return absl::InternalError(absl::StrCat(
        "cannot run ", QuoteForError(command), ": ", std::strerror(rc)));
  }
  bool too_long = false;
  if (out != nullptr) {
    out->clear();
    char buf[65536];
    for (;;) {
      const ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (out->size() + static_cast<size_t>(n) > max_out) {
        too_long = true;
        continue;  // drain, so the command can finish
      }
      out->append(buf, static_cast<size_t>(n));
    }
    close(pipe_fds[0]);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat(QuoteForError(command),
                     WIFEXITED(status)
                         ? absl::StrCat(" exited ", WEXITSTATUS(status))
                         : absl::StrCat(" died of signal ", WTERMSIG(status))));
  }
  if (too_long) {
    return absl::ResourceExhaustedError(absl::StrCat(
        QuoteForError(command), " wrote more than ", max_out, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CommandHooks::Fetch(const Release& release) {
  const std::string& url = release.fetch_url();
  // The agent checks the size and digest; do not read far past the size.
  const size_t max = static_cast<size_t>(release.size_bytes()) + 1;
  if (absl::StartsWith(url, "file://")) {
    std::ifstream in(url.substr(7), std::ios::binary);
    if (!in) {
      return absl::NotFoundError(
          absl::StrCat("cannot read ", QuoteForError(url)));
    }
    std::string data;
    data.resize(max);
    in.read(data.data(), static_cast<std::streamsize>(max));
    data.resize(static_cast<size_t>(in.gcount()));
    return data;
  }
  std::string out;
  absl::Status s = RunCommand(options_.fetch_command, {url}, {}, &out, max);
  if (!s.ok()) return s;
  return out;
}

absl::Status CommandHooks::Load(const Release& release,
                                const std::string& payload_path) {
  if (options_.load_command.empty()) return absl::OkStatus();
  return RunCommand(options_.load_command, {payload_path, release.id()},
                    {"RINGFENCE_RELEASE_ID=" + release.id(),
                     "RINGFENCE_PAYLOAD=" + payload_path},
                    nullptr);
}

absl::Status CommandHooks::Unload() {
  if (options_.unload_command.empty()) return absl::OkStatus();
  return RunCommand(options_.unload_command, {}, {}, nullptr);
}

}  // namespace ringfence::agent
