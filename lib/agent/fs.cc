#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ringfence/agent_fs.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status FsyncDir(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open directory", dir);
  const int rc = fsync(fd);
  close(fd);
  if (rc != 0) return Errno("cannot fsync directory", dir);
  return absl::OkStatus();
}

// Writes all of `data`: at the file offset, or with pwrite from `offset`
// if it is not negative.
absl::Status WriteAll(int fd, absl::string_view data, const std::string& path,
                      off_t offset = -1) {
  while (!data.empty()) {
    const ssize_t n = offset < 0 ? write(fd, data.data(), data.size())
                                 : pwrite(fd, data.data(), data.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return Errno("cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
    if (offset >= 0) offset += n;
  }
  return absl::OkStatus();
}

class PosixFileSystem final : public AgentFileSystem {
 public:
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        return absl::NotFoundError(absl::StrCat(path, ": no such file"));
      }
      return Errno("cannot open", path);
    }
    std::string out;
    char buf[1 << 16];
    for (;;) {
      const ssize_t n = read(fd, buf, sizeof(buf));
      if (n < 0) {
        if (errno == EINTR) continue;
        const absl::Status s = Errno("cannot read", path);
        close(fd);
        return s;
      }
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    close(fd);
    return out;
  }

  absl::Status WriteFileAtomically(const std::string& path,
                                   absl::string_view contents) override {
    const std::string tmp = path + ".tmp";
    const int fd =
        open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot create", tmp);
    absl::Status s = WriteAll(fd, contents, tmp);
    if (s.ok() && fsync(fd) != 0) s = Errno("cannot fsync", tmp);
    close(fd);
    if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) {
      s = Errno("cannot rename to", path);
    }
    if (!s.ok()) {
      unlink(tmp.c_str());
      return s;
    }
    return FsyncDir(DirOf(path));
  }

  absl::Status AppendDurably(const std::string& path,
                             absl::string_view data) override {
    struct stat st;
    const bool existed = stat(path.c_str(), &st) == 0;
    const int fd =
        open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot open", path);
    absl::Status s = WriteAll(fd, data, path);
    if (s.ok() && fdatasync(fd) != 0) s = Errno("cannot fsync", path);
    close(fd);
    if (!s.ok()) return s;
    if (!existed) return FsyncDir(DirOf(path));
    return absl::OkStatus();
  }

  absl::Status WriteAtDurably(const std::string& path, uint64_t offset,
                              absl::string_view data) override {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return Errno("cannot open", path);
    absl::Status s = WriteAll(fd, data, path, static_cast<off_t>(offset));
    if (s.ok() && fdatasync(fd) != 0) s = Errno("cannot fsync", path);
    close(fd);
    if (!s.ok()) return s;
    // The directory entry: once per path and file system object, whoever
    // created the file (an earlier call, or an earlier process, may have
    // died between creating it and this fsync).
    {
      absl::MutexLock lock(&mu_);
      if (entry_synced_.contains(path)) return absl::OkStatus();
    }
    RETURN_IF_ERROR(FsyncDir(DirOf(path)));
    absl::MutexLock lock(&mu_);
    entry_synced_.insert(path);
    return absl::OkStatus();
  }

  absl::Status Remove(const std::string& path) override {
    if (unlink(path.c_str()) != 0) {
      if (errno == ENOENT) return absl::OkStatus();
      return Errno("cannot remove", path);
    }
    return FsyncDir(DirOf(path));
  }

  absl::StatusOr<std::vector<std::string>> List(
      const std::string& dir) override {
    std::vector<std::string> names;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == ENOENT) return names;
      return Errno("cannot list", dir);
    }
    while (struct dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st;
      const std::string path = absl::StrCat(dir, "/", name);
      if (stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        names.push_back(name);
      }
    }
    closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  absl::Status MakeDirs(const std::string& dir) override {
    if (dir.empty()) return absl::OkStatus();
    struct stat st;
    if (stat(dir.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) return absl::OkStatus();
      return absl::InternalError(absl::StrCat(dir, ": not a directory"));
    }
    const std::string parent = DirOf(dir);
    if (parent != dir) {
      absl::Status s = MakeDirs(parent);
      if (!s.ok()) return s;
    }
    if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return Errno("cannot create directory", dir);
    }
    return FsyncDir(parent);
  }

 private:
  absl::Mutex mu_;
  // Paths WriteAtDurably has fsynced the directory entry of.
  absl::flat_hash_set<std::string> entry_synced_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<AgentFileSystem> NewPosixFileSystem() {
  return std::make_unique<PosixFileSystem>();
}

// ---- MemoryFileSystem
// --------------------------------------------------------

absl::Status MemoryFileSystem::Dead() const {
  return absl::UnavailableError("simulated crash: the process is dead");
}

size_t MemoryFileSystem::TornLength(size_t size) {
  return size > 1 ? 1 + rng_() % (size - 1) : 0;
}

bool MemoryFileSystem::Tick() {
  const bool crash = crash_at_ == 0;
  if (crash_at_ >= 0) --crash_at_;
  ++mutations_;
  return crash;
}

void MemoryFileSystem::CrashAtMutation(int64_t k, CrashMode mode) {
  crash_at_ = k;
  crash_mode_ = mode;
}

absl::StatusOr<std::string> MemoryFileSystem::ReadFile(
    const std::string& path) {
  if (crashed_) return Dead();
  auto it = files_.find(path);
  if (it == files_.end()) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  return it->second;
}

absl::Status MemoryFileSystem::WriteFileAtomically(const std::string& path,
                                                   absl::string_view contents) {
  if (crashed_) return Dead();
  if (Tick()) {
    crashed_ = true;
    switch (crash_mode_) {
      case CrashMode::kBefore:
        break;
      case CrashMode::kTorn: {
        const size_t n = contents.empty() ? 0 : rng_() % contents.size();
        files_[path + ".tmp"] = std::string(contents.substr(0, n));
        break;
      }
      case CrashMode::kAfter:
        files_[path] = std::string(contents);
        break;
    }
    return Dead();
  }
  files_[path] = std::string(contents);
  files_.erase(path + ".tmp");
  return absl::OkStatus();
}

absl::Status MemoryFileSystem::AppendDurably(const std::string& path,
                                             absl::string_view data) {
  if (crashed_) return Dead();
  if (Tick()) {
    crashed_ = true;
    switch (crash_mode_) {
      case CrashMode::kBefore:
        break;
      case CrashMode::kTorn:
        files_[path].append(data.data(), TornLength(data.size()));
        break;
      case CrashMode::kAfter:
        files_[path].append(data.data(), data.size());
        break;
    }
    return Dead();
  }
  files_[path].append(data.data(), data.size());
  return absl::OkStatus();
}

absl::Status MemoryFileSystem::WriteAtDurably(const std::string& path,
                                              uint64_t offset,
                                              absl::string_view data) {
  if (crashed_) return Dead();
  size_t n = data.size();
  if (Tick()) {
    crashed_ = true;
    switch (crash_mode_) {
      case CrashMode::kBefore:
        n = 0;
        break;
      case CrashMode::kTorn:
        n = TornLength(data.size());
        break;
      case CrashMode::kAfter:
        break;
    }
  }
  if (n > 0) {
    std::string& file = files_[path];
    if (file.size() < offset + n) file.resize(offset + n, '\0');
    file.replace(offset, n, data.data(), n);
  }
  return crashed_ ? Dead() : absl::OkStatus();
}

absl::Status MemoryFileSystem::Remove(const std::string& path) {
  if (crashed_) return Dead();
  if (Tick()) {
    crashed_ = true;
    if (crash_mode_ == CrashMode::kAfter) files_.erase(path);
    return Dead();
  }
  files_.erase(path);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MemoryFileSystem::List(
    const std::string& dir) {
  if (crashed_) return Dead();
  std::vector<std::string> names;
  const std::string prefix = dir + "/";
  for (auto it = files_.lower_bound(prefix);
       it != files_.end() && absl::StartsWith(it->first, prefix); ++it) {
    const std::string rest = it->first.substr(prefix.size());
    if (rest.find('/') == std::string::npos) names.push_back(rest);
  }
  return names;
}

absl::Status MemoryFileSystem::MakeDirs(const std::string& dir) {
  (void)dir;
  if (crashed_) return Dead();
  return absl::OkStatus();
}

}  // namespace ringfence
