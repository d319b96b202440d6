// UnixSocketProxy: relays connections from a Unix socket of its own to
// another one, and can stop relaying without closing anything, as a network
// partition does (the peers' sent bytes wait, unanswered, until it resumes).
// For tests that cut one process off from PostgreSQL (whose test server
// listens on a Unix socket only: libpq's host=DIR means DIR/.s.PGSQL.5432).
//
// Example:
//   UnixSocketProxy proxy(pg_socket_dir + "/.s.PGSQL.5432",
//                         my_dir + "/.s.PGSQL.5432");
//   ... connect through host=my_dir ...
//   proxy.Cut();     // calls hang
//   proxy.Resume();  // the waiting bytes flow on
//
// Thread safety: Cut and Resume may be called from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace ringfence::e2e {

class UnixSocketProxy {
 public:
  // Listens on `listen_path` (a Unix socket path, replaced if it exists) and
  // relays each connection to `target_path`. started() says whether it
  // listens.
  UnixSocketProxy(std::string target_path, std::string listen_path);
  // Stops listening and relaying; closes every connection.
  ~UnixSocketProxy();
  UnixSocketProxy(const UnixSocketProxy&) = delete;
  UnixSocketProxy& operator=(const UnixSocketProxy&) = delete;

  bool started() const { return listen_fd_ >= 0; }

  // Cut: stop moving bytes (and accepting) until Resume.
  void Cut() { cut_.store(true); }
  void Resume() { cut_.store(false); }

 private:
  void AcceptLoop();
  void Relay(int client_fd, int server_fd);

  const std::string target_path_;
  const std::string listen_path_;
  int listen_fd_ = -1;
  std::atomic<bool> cut_{false};
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<std::thread> relays_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ringfence::e2e
