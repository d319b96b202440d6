// Child processes for the end-to-end tests: run a command and capture its
// output, or keep a server running in the background.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ringfence::e2e {

// A new empty directory under $TEST_TMPDIR or /tmp.
std::string MakeTempDir();

// Removes `dir` and everything in it.
void RemoveTree(const std::string& dir);

void WriteFile(const std::string& path, const std::string& contents);
std::string ReadFile(const std::string& path);

struct CommandResult {
  // The exit status; 128 + signal if killed; -1 if it could not run.
  int exit_code = -1;
  std::string out;
  std::string err;
};

// RunCommand
//
// Runs argv[0] with `argv`, environment = ours plus `env` ("NAME=value"),
// stdin from /dev/null. Kills it (SIGKILL) after `timeout`.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env = {},
                         absl::Duration timeout = absl::Seconds(30));

// A process running in the background, killed (SIGKILL) when destroyed if
// still running. stdout and stderr go to `log_path`.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv,
               const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  bool running();

  // Sends `sig`.
  void Signal(int sig);

  // Waits up to `timeout` for the exit; the exit code (128 + signal if
  // killed), or -1 on timeout.
  int Wait(absl::Duration timeout);

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

}  // namespace ringfence::e2e
