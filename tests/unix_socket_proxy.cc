#include "unix_socket_proxy.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <utility>

namespace ringfence::e2e {
namespace {

// Fills `addr` for `path`; false if the path is too long.
bool UnixAddress(const std::string& path, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof(*addr));
  addr->sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr->sun_path)) return false;
  std::memcpy(addr->sun_path, path.c_str(), path.size() + 1);
  return true;
}

// Writes all of `data`; false if the peer is gone (no SIGPIPE: the test
// process must survive a killed peer).
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

constexpr int kPollMs = 20;

}  // namespace

UnixSocketProxy::UnixSocketProxy(std::string target_path,
                                 std::string listen_path)
    : target_path_(std::move(target_path)),
      listen_path_(std::move(listen_path)) {
  sockaddr_un addr;
  if (!UnixAddress(listen_path_, &addr)) return;
  unlink(listen_path_.c_str());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 64) != 0) {
    close(fd);
    return;
  }
  listen_fd_ = fd;
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

UnixSocketProxy::~UnixSocketProxy() {
  stop_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> relays;
  {
    absl::MutexLock lock(&mu_);
    relays.swap(relays_);
  }
  for (std::thread& t : relays) t.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  unlink(listen_path_.c_str());
}

void UnixSocketProxy::AcceptLoop() {
  while (!stop_.load()) {
    if (cut_.load()) {
      // Cut off: connection attempts wait in the backlog.
      usleep(kPollMs * 1000);
      continue;
    }
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, kPollMs) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    sockaddr_un addr;
    const int server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (server < 0 || !UnixAddress(target_path_, &addr) ||
        connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
            0) {
      if (server >= 0) close(server);
      close(client);
      continue;
    }
    absl::MutexLock lock(&mu_);
    relays_.emplace_back([this, client, server] { Relay(client, server); });
  }
}

void UnixSocketProxy::Relay(int client_fd, int server_fd) {
  char buffer[16384];
  bool open = true;
  while (open && !stop_.load()) {
    if (cut_.load()) {
      usleep(kPollMs * 1000);
      continue;
    }
    pollfd p[2] = {{client_fd, POLLIN, 0}, {server_fd, POLLIN, 0}};
    if (poll(p, 2, kPollMs) <= 0) continue;
    for (int i = 0; i < 2 && open; ++i) {
      if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = read(p[i].fd, buffer, sizeof(buffer));
      open = n > 0 && WriteAll(p[1 - i].fd, buffer, static_cast<size_t>(n));
    }
  }
  close(client_fd);
  close(server_fd);
}

}  // namespace ringfence::e2e
