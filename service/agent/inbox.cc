#include "service/agent/inbox.h"

#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "ringfence/status_macros.h"

namespace ringfence::agent {
namespace {

namespace fs = std::filesystem;

constexpr char kSuffix[] = ".report";
// A report file is one type line and the signal: never larger than this.
constexpr size_t kMaxReportBytes = 512;

std::string InboxDir(const std::string& state_dir) {
  return state_dir + "/inbox";
}

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = open(path.c_str(), flags);
  if (fd < 0) return Errno("open", path);
  const int rc = fsync(fd);
  close(fd);
  if (rc != 0) return Errno("fsync", path);
  return absl::OkStatus();
}

}  // namespace

absl::Status QueueReport(const std::string& state_dir, EventType type,
                         absl::string_view signal) {
  RETURN_IF_ERROR(Agent::ValidateReport(type, signal));
  const std::string dir = InboxDir(state_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("create ", dir, ": ", ec.message()));
  }
  // Names sort by queueing time; the pid and a counter keep them unique.
  static std::atomic<int> counter{0};
  const std::string name =
      absl::StrCat(absl::ToUnixNanos(absl::Now()), "-", getpid(), "-",
                   counter.fetch_add(1), kSuffix);
  const std::string tmp = absl::StrCat(dir, "/.", name, ".tmp");
  const std::string body = absl::StrCat(
      type == EventType::kCrash ? "crash" : "signal", "\n", signal);
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return Errno("create", tmp);
  const bool written =
      write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size());
  const bool synced = written && fsync(fd) == 0;
  close(fd);
  if (!synced) {
    absl::Status s = Errno("write", tmp);
    unlink(tmp.c_str());
    return s;
  }
  const std::string path = absl::StrCat(dir, "/", name);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = Errno("rename", tmp);
    unlink(tmp.c_str());
    return s;
  }
  return FsyncPath(dir, O_RDONLY | O_DIRECTORY);
}

absl::StatusOr<int> DrainInbox(const std::string& state_dir, Agent* agent,
                               int* rejected) {
  const std::string dir = InboxDir(state_dir);
  std::error_code ec;
  if (!fs::exists(dir, ec)) return 0;
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > sizeof(kSuffix) && name[0] != '.' &&
        absl::EndsWith(name, kSuffix)) {
      names.push_back(name);
    }
  }
  if (ec)
    return absl::InternalError(absl::StrCat("list ", dir, ": ", ec.message()));
  std::sort(names.begin(), names.end());
  int moved = 0;
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    std::ifstream in(path, std::ios::binary);
    std::string body(kMaxReportBytes + 1, '\0');
    in.read(body.data(), static_cast<std::streamsize>(body.size()));
    body.resize(static_cast<size_t>(in.gcount()));
    absl::string_view text = body;
    absl::Status s;
    if (body.size() > kMaxReportBytes) {
      s = absl::InvalidArgumentError("report: too large");
    } else if (absl::ConsumePrefix(&text, "crash\n")) {
      s = agent->Report(EventType::kCrash, text);
    } else if (absl::ConsumePrefix(&text, "signal\n")) {
      s = agent->Report(EventType::kSignal, text);
    } else {
      s = absl::InvalidArgumentError("report: neither crash nor signal");
    }
    if (absl::IsInvalidArgument(s)) {
      if (rejected != nullptr) ++*rejected;
    } else if (!s.ok()) {
      return s;
    } else {
      ++moved;
    }
    if (unlink(path.c_str()) != 0) return Errno("delete", path);
  }
  return moved;
}

InboxWatch::InboxWatch(const std::string& state_dir)
    : dir_(InboxDir(state_dir)) {
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  AddWatch();
}

InboxWatch::~InboxWatch() {
  if (fd_ >= 0) close(fd_);
}

void InboxWatch::AddWatch() {
  if (fd_ < 0) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  // QueueReport renames a finished report into place (IN_MOVED_TO); a
  // report written in place is seen when closed (IN_CLOSE_WRITE).
  wd_ = inotify_add_watch(fd_, dir_.c_str(),
                          IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF |
                              IN_MOVE_SELF | IN_ONLYDIR);
}

void InboxWatch::Consume() {
  if (!watching()) {
    AddWatch();
    return;
  }
  alignas(inotify_event) char buf[4096];
  bool lost = false;
  for (;;) {
    const ssize_t n = read(fd_, buf, sizeof(buf));
    if (n <= 0) break;  // EAGAIN: nothing more
    for (ssize_t off = 0; off < n;) {
      const auto* e = reinterpret_cast<const inotify_event*>(buf + off);
      lost = lost || (e->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED));
      off += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
    }
  }
  if (lost) {
    // The directory was removed or moved away: watch the path again.
    if (wd_ >= 0) inotify_rm_watch(fd_, wd_);
    wd_ = -1;
    AddWatch();
  }
}

}  // namespace ringfence::agent
