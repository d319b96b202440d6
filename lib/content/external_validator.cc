#include "ringfence/external_validator.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "ringfence/content/v1/content.pb.h"
#include "ringfence/error_text.h"

extern char** environ;

namespace ringfence {
namespace {

// stderr kept for failure messages.
constexpr size_t kMaxStderrBytes = 2048;
// Output quoted when it is not the findings JSON.
constexpr size_t kMaxQuotedOutput = 200;
// Longest wait in poll(): the child's exit is also checked this often.
constexpr int kPollSliceMs = 20;

// A file descriptor closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string Excerpt(absl::string_view s, size_t max) {
  return QuoteForError(absl::StripAsciiWhitespace(s), max);
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

// argv[0] as a path: itself if it has a '/', else the first executable match
// in PATH.
std::string ResolveProgram(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    return IsExecutableFile(program) ? program : "";
  }
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    const std::string candidate =
        absl::StrCat(dir.empty() ? "." : dir, "/", program);
    if (IsExecutableFile(candidate)) return candidate;
  }
  return "";
}

void SetNonBlocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

std::string SignalName(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev) : "an unknown signal";
}

// What happened to one child process.
struct ChildResult {
  int exec_errno = 0;  // the exec failed with this errno
  bool timed_out = false;
  bool output_overflow = false;
  int wait_status = 0;
  std::string out;
  std::string err;
};

class ExternalValidator : public ContentValidator {
 public:
  ExternalValidator(ExternalValidatorOptions options, std::string program)
      : options_(std::move(options)), program_(std::move(program)) {}

  std::string name() const override { return options_.name; }

  absl::StatusOr<std::vector<Finding>> Validate(
      absl::string_view payload) const override {
    absl::StatusOr<ChildResult> run = RunChild(payload);
    if (!run.ok()) return run.status();
    const ChildResult& r = *run;
    const std::string who =
        absl::StrCat("validator ", QuoteForError(options_.name));
    auto stderr_note = [&]() -> std::string {
      if (absl::StripAsciiWhitespace(r.err).empty()) return "";
      return absl::StrCat("; stderr: ", Excerpt(r.err, kMaxStderrBytes));
    };
    if (r.exec_errno != 0) {
      return Failed(absl::StrCat(who, " could not be started: ", program_, ": ",
                                 ::strerror(r.exec_errno)));
    }
    if (r.timed_out) {
      return Failed(absl::StrCat(
          who, " did not finish within ",
          absl::FormatDuration(options_.timeout),
          " and was killed; a validator that hangs rejects the payload",
          stderr_note()));
    }
    if (r.output_overflow) {  // it was killed for it
      return Failed(absl::StrCat(who, " wrote more than ",
                                 options_.max_output_bytes,
                                 " bytes to stdout"));
    }
    if (WIFSIGNALED(r.wait_status)) {
      const int sig = WTERMSIG(r.wait_status);
      return Failed(absl::StrCat(who, " crashed: killed by signal ", sig, " (",
                                 SignalName(sig), ")", stderr_note()));
    }
    if (!WIFEXITED(r.wait_status) || WEXITSTATUS(r.wait_status) != 0) {
      return Failed(absl::StrCat(who, " exited with status ",
                                 WEXITSTATUS(r.wait_status),
                                 " (0 means it ran)", stderr_note()));
    }
    content::v1::ValidatorOutput output;
    google::protobuf::util::JsonParseOptions json_options;
    json_options.ignore_unknown_fields = true;
    const auto parsed = google::protobuf::util::JsonStringToMessage(
        r.out, &output, json_options);
    if (!parsed.ok()) {
      return Failed(
          absl::StrCat(who, " printed output that is not the findings JSON (",
                       parsed.message().ToString(),
                       "): ", Excerpt(r.out, kMaxQuotedOutput), stderr_note()));
    }
    std::vector<Finding> findings;
    for (int i = 0; i < output.findings_size(); ++i) {
      const content::v1::Finding& f = output.findings(i);
      if (f.code().empty()) {
        return Failed(
            absl::StrCat(who, " printed findings[", i, "] without a code"));
      }
      if (f.severity() != "error" && f.severity() != "warning") {
        return Failed(absl::StrCat(
            who, " printed findings[", i, "] with severity ",
            Excerpt(f.severity(), 40), " (must be \"error\" or \"warning\")"));
      }
      Finding finding = FromProto(f);
      finding.source = options_.name;
      findings.push_back(std::move(finding));
    }
    return findings;
  }

 private:
  std::vector<Finding> Failed(std::string message) const {
    Finding f;
    f.code = codes::kValidatorFailed;
    f.severity = Severity::kError;
    f.message = std::move(message);
    f.source = options_.name;
    return {std::move(f)};
  }

  absl::StatusOr<ChildResult> RunChild(absl::string_view payload) const {
    // Everything the child needs is prepared before fork(): between fork
    // and exec only async-signal-safe calls are allowed.
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(program_.c_str()));
    for (size_t i = 1; i < options_.argv.size(); ++i) {
      argv.push_back(const_cast<char*>(options_.argv[i].c_str()));
    }
    argv.push_back(nullptr);
    const long max_fd = std::min<long>(::sysconf(_SC_OPEN_MAX), 65536);
    struct rlimit mem;
    mem.rlim_cur = mem.rlim_max = options_.memory_limit_bytes;
    struct rlimit no_core = {0, 0};

    // stdin is a socket so that writes to a child that stopped reading
    // fail with EPIPE (MSG_NOSIGNAL) instead of raising SIGPIPE here.
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      return absl::UnavailableError(
          absl::StrCat("socketpair: ", ::strerror(errno)));
    }
    Fd in_parent(sv[0]), in_child(sv[1]);
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      return absl::UnavailableError(absl::StrCat("pipe: ", ::strerror(errno)));
    }
    Fd out_parent(p[0]), out_child(p[1]);
    if (::pipe2(p, O_CLOEXEC) != 0) {
      return absl::UnavailableError(absl::StrCat("pipe: ", ::strerror(errno)));
    }
    Fd err_parent(p[0]), err_child(p[1]);
    // Carries exec's errno; closed by a successful exec (O_CLOEXEC).
    if (::pipe2(p, O_CLOEXEC) != 0) {
      return absl::UnavailableError(absl::StrCat("pipe: ", ::strerror(errno)));
    }
    Fd exec_parent(p[0]), exec_child(p[1]);

    const pid_t pid = ::fork();
    if (pid < 0) {
      return absl::UnavailableError(absl::StrCat("fork: ", ::strerror(errno)));
    }
    if (pid == 0) {
      ::setpgid(0, 0);
      ::dup2(in_child.get(), STDIN_FILENO);
      ::dup2(out_child.get(), STDOUT_FILENO);
      ::dup2(err_child.get(), STDERR_FILENO);
      // Nothing else of ours may leak into the validator.
      if (::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) !=
          0) {
        for (long fd = 3; fd < max_fd; ++fd) {
          ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
        }
      }
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::signal(SIGPIPE, SIG_DFL);
      ::setrlimit(RLIMIT_CORE, &no_core);
      if (options_.memory_limit_bytes > 0) ::setrlimit(RLIMIT_AS, &mem);
      ::execve(program_.c_str(), argv.data(), environ);
      const int e = errno;
      [[maybe_unused]] ssize_t ignored =
          ::write(exec_child.get(), &e, sizeof e);
      ::_exit(127);
    }
    ::setpgid(pid, pid);  // also here, so kill(-pid) works at once
    in_child.Close();
    out_child.Close();
    err_child.Close();
    exec_child.Close();

    ChildResult result;
    int e = 0;
    ssize_t n;
    do {
      n = ::read(exec_parent.get(), &e, sizeof e);
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(sizeof e)) {
      result.exec_errno = e;
      Reap(pid, &result);
      return result;
    }

    SetNonBlocking(in_parent.get());
    SetNonBlocking(out_parent.get());
    SetNonBlocking(err_parent.get());
    const absl::Time deadline = absl::Now() + options_.timeout;
    size_t written = 0;
    if (payload.empty()) {
      ::shutdown(in_parent.get(), SHUT_WR);
      in_parent.Close();
    }
    char buf[16384];
    while (true) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        result.timed_out = true;
        break;
      }
      struct pollfd fds[3];
      nfds_t nfds = 0;
      auto watch = [&](const Fd& fd, short events) {
        if (fd.get() >= 0) fds[nfds++] = {fd.get(), events, 0};
      };
      watch(in_parent, POLLOUT);
      watch(out_parent, POLLIN);
      watch(err_parent, POLLIN);
      const int timeout_ms = static_cast<int>(
          std::min<int64_t>(kPollSliceMs, absl::ToInt64Milliseconds(left) + 1));
      if (::poll(fds, nfds, timeout_ms) < 0 && errno != EINTR) {
        const int poll_errno = errno;
        ::kill(-pid, SIGKILL);
        Reap(pid, &result);
        return absl::UnavailableError(
            absl::StrCat("poll: ", ::strerror(poll_errno)));
      }
      if (in_parent.get() >= 0) {
        const ssize_t w =
            ::send(in_parent.get(), payload.data() + written,
                   payload.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) written += static_cast<size_t>(w);
        // EPIPE/ECONNRESET: the child stopped reading; its exit status and
        // output decide.
        if ((w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
             errno != EINTR) ||
            written == payload.size()) {
          ::shutdown(in_parent.get(), SHUT_WR);
          in_parent.Close();
        }
      }
      // Has the child exited? (WNOWAIT: it stays a zombie, so its process
      // group cannot be reused before the kill below.)
      siginfo_t info;
      info.si_pid = 0;
      const bool exited =
          ::waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == pid;
      // Drain after the exit check, so nothing written before the exit is
      // lost.
      Drain(&out_parent, &result.out, options_.max_output_bytes,
            &result.output_overflow, buf, sizeof buf);
      if (result.output_overflow) break;
      bool stderr_full = false;  // extra stderr is discarded
      Drain(&err_parent, &result.err, kMaxStderrBytes, &stderr_full, buf,
            sizeof buf);
      // Once the child exited, output still held open by something it
      // started is not waited for.
      if (exited) break;
    }
    // The whole group: the validator and anything it started.
    ::kill(-pid, SIGKILL);
    Reap(pid, &result);
    return result;
  }

  // Reads what is available from *fd into *out (up to `limit` bytes; more
  // sets *overflow). Closes *fd at EOF or on error.
  static void Drain(Fd* fd, std::string* out, size_t limit, bool* overflow,
                    char* buf, size_t buf_size) {
    while (fd->get() >= 0) {
      const ssize_t r = ::read(fd->get(), buf, buf_size);
      if (r > 0) {
        const size_t room = limit > out->size() ? limit - out->size() : 0;
        out->append(buf, std::min(room, static_cast<size_t>(r)));
        if (static_cast<size_t>(r) > room) *overflow = true;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      fd->Close();  // EOF or error
    }
  }

  static void Reap(pid_t pid, ChildResult* result) {
    while (::waitpid(pid, &result->wait_status, 0) < 0 && errno == EINTR) {
    }
  }

  const ExternalValidatorOptions options_;
  const std::string program_;
};

}  // namespace

absl::StatusOr<ContentValidatorPtr> NewExternalValidator(
    ExternalValidatorOptions options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("argv: must name a command");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("timeout: must be > 0 (got ",
                     absl::FormatDuration(options.timeout), ")"));
  }
  std::string program = ResolveProgram(options.argv[0]);
  if (program.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "argv[0]: ", Excerpt(options.argv[0], kMaxQuotedOutput),
        " is not an executable file",
        options.argv[0].find('/') == std::string::npos ? " in PATH" : ""));
  }
  if (options.name.empty()) {
    const size_t slash = options.argv[0].rfind('/');
    options.name = slash == std::string::npos
                       ? options.argv[0]
                       : options.argv[0].substr(slash + 1);
  }
  return std::make_unique<ExternalValidator>(std::move(options),
                                             std::move(program));
}

}  // namespace ringfence
