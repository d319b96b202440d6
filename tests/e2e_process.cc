#include "e2e_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace ringfence::e2e {
namespace {

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Spawns argv with stdout/stderr redirected to the given files.
pid_t Spawn(const std::vector<std::string>& argv,
            const std::vector<std::string>& extra_env,
            const std::string& out_path, const std::string& err_path) {
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) env_storage.push_back(*e);
  for (const std::string& e : extra_env) env_storage.push_back(e);
  std::vector<char*> env;
  for (std::string& e : env_storage) env.push_back(e.data());
  env.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (err_path == out_path) {
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  } else {
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
  }
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0], &actions, nullptr, args.data(), env.data()) !=
      0) {
    pid = -1;
  }
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// Waits for `pid` up to `timeout`; the exit code or -1 on timeout.
int WaitFor(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return DecodeStatus(status);
    if (r < 0) return -1;
    if (absl::Now() >= deadline) return -1;
    absl::SleepFor(absl::Milliseconds(5));
  }
}

}  // namespace

std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string tmpl =
      absl::StrCat(base != nullptr ? base : "/tmp", "/ringfence-e2e-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) return "";
  return tmpl;
}

void RemoveTree(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::trunc | std::ios::binary);
  out << contents;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

CommandResult RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env,
                         absl::Duration timeout) {
  CommandResult result;
  const std::string dir = MakeTempDir();
  const std::string out = dir + "/out", err = dir + "/err";
  const pid_t pid = Spawn(argv, env, out, err);
  if (pid > 0) {
    result.exit_code = WaitFor(pid, timeout);
    if (result.exit_code < 0) {
      kill(pid, SIGKILL);
      WaitFor(pid, absl::Seconds(5));
      result.err = "(timed out)\n";
    }
    result.out = ReadFile(out);
    result.err += ReadFile(err);
  }
  RemoveTree(dir);
  return result;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv,
                           const std::string& log_path)
    : pid_(Spawn(argv, {}, log_path, log_path)) {}

ChildProcess::~ChildProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    Wait(absl::Seconds(10));
  }
}

bool ChildProcess::running() {
  if (pid_ <= 0 || exit_code_ >= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    exit_code_ = DecodeStatus(status);
    return false;
  }
  return true;
}

void ChildProcess::Signal(int sig) {
  if (running()) kill(pid_, sig);
}

int ChildProcess::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  if (exit_code_ >= 0) return exit_code_;
  exit_code_ = WaitFor(pid_, timeout);
  return exit_code_;
}

}  // namespace ringfence::e2e
