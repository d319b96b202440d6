// An emulated fleet of hosts (end-to-end tests, the demo): each host is a gRPC
// client of ringfenced's Fleet service that polls GetAssignment, applies what
// it is told (reporting `applying` and `applied`), and heartbeats, in real
// time. Hosts that load a boot-looping release report `applying` and then
// never report again, as on 2024-07-19.
//
// Thread safety: Start/Stop from one thread; the accessors from any.
#pragma once

#include <grpcpp/support/status.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/tls.h"

namespace ringfence::service {

struct FleetOptions {
  // host:port of ringfenced.
  std::string target;
  // Several servers (replicas of one cluster), instead of `target` if not
  // empty. The hosts then share one channel per server (1,000 hosts need
  // not open 1,000 connections to each) and call one server at a time: a
  // call that fails with UNAVAILABLE (a standby refusing it, a server that
  // is down) or DEADLINE_EXCEEDED (a server that is stopped) moves every
  // host to the next server, until they find whichever replica leads.
  std::vector<std::string> targets;
  // Deadline of each call (default 5s).
  absl::Duration call_timeout = absl::Seconds(5);
  // Bearer token with role relay or admin: one token speaks for every
  // emulated host (empty: none).
  std::string token;
  // TLS to the server (nullopt: plaintext); with a client certificate for
  // mutual TLS.
  std::optional<ClientTls> tls;
  std::string content_type = "channel-file/291";
  int hosts = 30;
  // The first `dogfood_hosts` hosts carry the label "ring:dogfood".
  int dogfood_hosts = 5;
  // How often each host polls and heartbeats.
  absl::Duration poll_interval = absl::Milliseconds(100);
  // Releases whose hosts die while loading them.
  std::set<std::string> boot_loop_releases;
  // Worker threads driving the hosts.
  int threads = 3;
};

class FleetEmulator {
 public:
  explicit FleetEmulator(FleetOptions options);
  ~FleetEmulator();  // Stop()s

  void Start();
  void Stop();

  // Live hosts currently running `release_id`.
  int Running(const std::string& release_id) const;
  // Their host ids.
  std::vector<std::string> HostsRunning(const std::string& release_id) const;
  // The host ids of the hosts that died.
  std::vector<std::string> DeadHosts() const;
  // The hosts that were told to apply `release_id`, with the reason of the
  // assignment that told them (the first time).
  std::map<std::string, v1::AssignReason> Told(
      const std::string& release_id) const;
  // Hosts that died boot-looping.
  int Dead() const;
  // Live hosts whose last assignment had `reason`.
  int WithReason(v1::AssignReason reason) const;
  // Completed polls (GetAssignment and ReportTelemetry both succeeded).
  int polls() const { return polls_.load(); }
  // Failed RPCs, and the first failure's message.
  int errors() const { return errors_.load(); }
  std::string first_error() const;

 private:
  struct Host;
  void Loop(int worker);
  // The stub `host` calls now, and which of several targets it is.
  v1::Fleet::Stub& StubOf(const Host& host, size_t* target) const;
  // After a call to `target` failed with `s`: on UNAVAILABLE or
  // DEADLINE_EXCEEDED, moves the hosts to the next of several targets
  // (unless another call moved them already).
  void MaybeFailOver(size_t target, const grpc::Status& s);
  void PollOnce(Host& host);
  void FailLocked(const Host& host, absl::string_view what,
                  const grpc::Status& s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FleetOptions options_;
  // One stub per target, shared by the hosts (with several targets).
  std::vector<std::unique_ptr<v1::Fleet::Stub>> shared_stubs_;
  std::atomic<size_t> current_target_{0};
  std::vector<std::unique_ptr<Host>> hosts_;
  std::vector<std::thread> threads_;
  absl::Notification stop_;
  bool started_ = false;
  std::atomic<int> polls_{0};
  std::atomic<int> errors_{0};
  mutable absl::Mutex mu_;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
  int reports_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ringfence::service
