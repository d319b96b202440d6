#include "service/fleet_emulator.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ringfence/v1/ringfence.grpc.pb.h"

namespace ringfence::service {

struct FleetEmulator::Host {
  v1::GetAssignmentRequest info;
  // Its own stub (one target), or nullptr: the shared stubs.
  std::unique_ptr<v1::Fleet::Stub> stub;
  // Guarded by the emulator's mu_ for readers; written by its worker.
  std::string running;
  bool dead = false;
  v1::AssignReason reason = v1::ASSIGN_REASON_UNSPECIFIED;
  // Release -> the reason of the assignment that first told it.
  std::map<std::string, v1::AssignReason> told;
  // The ReportTelemetry call in flight (at most one per host), and what the
  // host runs once it is acknowledged.
  bool reporting = false;
  std::unique_ptr<grpc::ClientContext> report_context;
  v1::ReportTelemetryRequest report;
  v1::ReportTelemetryResponse reply;
  std::string next_running;
  bool next_dead = false;
};

FleetEmulator::FleetEmulator(FleetOptions options)
    : options_(std::move(options)) {
  for (const std::string& target : options_.targets) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    // A replica that was down comes back within a second or so: reconnect
    // soon, not after gRPC's default backoff of up to two minutes.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    shared_stubs_.push_back(
        v1::Fleet::NewStub(MakeChannel(target, options_.tls, args)));
  }
  for (int i = 0; i < options_.hosts; ++i) {
    auto h = std::make_unique<Host>();
    h->info.set_host_id(absl::StrFormat("host-%03d", i));
    h->info.set_tenant(absl::StrCat("tenant-", i % 3));
    if (i < options_.dogfood_hosts) h->info.add_labels("ring:dogfood");
    h->info.set_agent_version("7.11.0");
    h->info.set_platform("windows");
    h->info.add_content_types(options_.content_type);
    if (shared_stubs_.empty()) {
      // A channel per host, as real agents have.
      grpc::ChannelArguments args;
      args.SetInt("grpc.use_local_subchannel_pool", 1);
      h->stub =
          v1::Fleet::NewStub(MakeChannel(options_.target, options_.tls, args));
    }
    hosts_.push_back(std::move(h));
  }
}

FleetEmulator::~FleetEmulator() { Stop(); }

void FleetEmulator::Start() {
  started_ = true;
  for (int w = 0; w < options_.threads; ++w) {
    threads_.emplace_back([this, w] { Loop(w); });
  }
}

void FleetEmulator::Stop() {
  if (!started_) return;
  started_ = false;
  stop_.Notify();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  // Calls in flight end by their deadline.
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* n) { return *n == 0; }, &reports_in_flight_));
}

v1::Fleet::Stub& FleetEmulator::StubOf(const Host& host, size_t* target) const {
  *target = current_target_.load();
  if (host.stub != nullptr) return *host.stub;
  return *shared_stubs_[*target];
}

void FleetEmulator::MaybeFailOver(size_t target, const grpc::Status& s) {
  if (shared_stubs_.size() < 2 || (s.error_code() != grpc::UNAVAILABLE &&
                                   s.error_code() != grpc::DEADLINE_EXCEEDED)) {
    return;
  }
  current_target_.compare_exchange_strong(target,
                                          (target + 1) % shared_stubs_.size());
}

void FleetEmulator::Loop(int worker) {
  do {
    for (size_t i = worker; i < hosts_.size(); i += options_.threads) {
      PollOnce(*hosts_[i]);
    }
  } while (!stop_.WaitForNotificationWithTimeout(options_.poll_interval));
}

void FleetEmulator::PollOnce(Host& host) {
  {
    absl::MutexLock lock(&mu_);
    if (host.dead || host.reporting) return;
  }
  auto context = [&] {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(options_.call_timeout));
    if (!options_.token.empty()) {
      ctx->AddMetadata("authorization", "Bearer " + options_.token);
    }
    return ctx;
  };
  v1::GetAssignmentResponse assignment;
  size_t target = 0;
  grpc::Status s = StubOf(host, &target)
                       .GetAssignment(context().get(), host.info, &assignment);
  if (!s.ok()) MaybeFailOver(target, s);
  if (!s.ok() || assignment.assignments_size() != 1) {
    absl::MutexLock lock(&mu_);
    FailLocked(host, "GetAssignment", s);
    return;
  }
  const v1::ContentAssignment& a = assignment.assignments(0);
  v1::ReportTelemetryRequest report;
  auto event = [&](v1::EventType type, const std::string& release) {
    v1::TelemetryEvent* e = report.add_events();
    e->set_host_id(host.info.host_id());
    e->set_type(type);
    e->mutable_time()->set_seconds(absl::ToUnixSeconds(absl::Now()));
    e->set_release_id(release);
  };
  std::string running;
  bool dead = false;
  {
    absl::MutexLock lock(&mu_);
    host.reason = a.reason();
    running = host.running;
    if (a.has_release()) host.told.emplace(a.release_id(), a.reason());
  }
  if (a.unload()) running.clear();  // nothing proven to fall back to
  if (a.has_release() && a.release_id() != running) {
    event(v1::APPLYING, a.release_id());
    if (options_.boot_loop_releases.count(a.release_id()) > 0) {
      dead = true;
    } else {
      running = a.release_id();
      event(v1::APPLIED, running);
    }
  }
  if (!dead) event(v1::HEARTBEAT, running);
  // Asynchronous, as hosts are independent: a server that answers only once
  // the batch is durable (up to a tick later) does not hold up the other
  // hosts of this worker. The host skips its polls until the answer.
  {
    absl::MutexLock lock(&mu_);
    host.reporting = true;
    ++reports_in_flight_;
    host.report = std::move(report);
    host.reply.Clear();
    host.next_running = running;
    host.next_dead = dead;
  }
  host.report_context = context();
  StubOf(host, &target)
      .async()
      ->ReportTelemetry(host.report_context.get(), &host.report, &host.reply,
                        [this, &host, target](grpc::Status status) {
                          absl::MutexLock lock(&mu_);
                          if (status.ok()) {
                            polls_.fetch_add(1);
                            host.running = host.next_running;
                            host.dead = host.next_dead;
                          } else {
                            // Not applied (e.g. RESOURCE_EXHAUSTED): the next
                            // poll reports again.
                            FailLocked(host, "ReportTelemetry", status);
                            MaybeFailOver(target, status);
                          }
                          host.reporting = false;
                          --reports_in_flight_;
                        });
}

void FleetEmulator::FailLocked(const Host& host, absl::string_view what,
                               const grpc::Status& s) {
  errors_.fetch_add(1);
  if (first_error_.empty()) {
    first_error_ = absl::StrCat(host.info.host_id(), " ", what, ": ",
                                s.error_code(), " ", s.error_message());
  }
}

int FleetEmulator::Running(const std::string& release_id) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& h : hosts_) n += !h->dead && h->running == release_id;
  return n;
}

std::vector<std::string> FleetEmulator::HostsRunning(
    const std::string& release_id) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& h : hosts_) {
    if (!h->dead && h->running == release_id) out.push_back(h->info.host_id());
  }
  return out;
}

std::vector<std::string> FleetEmulator::DeadHosts() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& h : hosts_) {
    if (h->dead) out.push_back(h->info.host_id());
  }
  return out;
}

std::map<std::string, v1::AssignReason> FleetEmulator::Told(
    const std::string& release_id) const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, v1::AssignReason> out;
  for (const auto& h : hosts_) {
    auto it = h->told.find(release_id);
    if (it != h->told.end()) out.emplace(h->info.host_id(), it->second);
  }
  return out;
}

int FleetEmulator::Dead() const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& h : hosts_) n += h->dead;
  return n;
}

int FleetEmulator::WithReason(v1::AssignReason reason) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& h : hosts_) n += !h->dead && h->reason == reason;
  return n;
}

std::string FleetEmulator::first_error() const {
  absl::MutexLock lock(&mu_);
  return first_error_;
}

}  // namespace ringfence::service
