#include "service/webhook_cursor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace ringfence {
namespace {

// A cursor file is a number and a newline; anything longer is not one.
constexpr size_t kMaxCursorBytes = 64;

absl::Status Fail(const std::string& path, absl::string_view what) {
  return absl::InternalError(
      absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::optional<uint64_t>> ReadWebhookCursor(
    const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<uint64_t>();
    return Fail(path, "cannot open");
  }
  char buf[kMaxCursorBytes + 1];
  size_t got = 0;
  while (got < sizeof(buf)) {
    const ssize_t n = ::read(fd, buf + got, sizeof(buf) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  uint64_t seq = 0;
  if (got > kMaxCursorBytes ||
      !absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::string_view(buf, got)),
                        &seq)) {
    return absl::DataLossError(
        absl::StrCat(path, ": not a webhook cursor (a decimal audit seq)"));
  }
  return std::optional<uint64_t>(seq);
}

absl::Status WriteWebhookCursor(const std::string& path, uint64_t seq) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  const std::string text = absl::StrCat(seq, "\n");
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Fail(tmp, "cannot create");
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool written = done == text.size() && ::fsync(fd) == 0;
  ::close(fd);
  if (!written) {
    ::unlink(tmp.c_str());
    return Fail(tmp, "cannot write");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Fail(path, "cannot rename into place");
  }
  // The rename is durable once the directory is.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Fail(dir, "cannot open directory");
  const bool synced = ::fsync(dfd) == 0;
  ::close(dfd);
  if (!synced) return Fail(dir, "cannot fsync directory");
  return absl::OkStatus();
}

}  // namespace ringfence
