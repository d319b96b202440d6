#include "service/fleet_emulator.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ringfence/v1/ringfence.grpc.pb.h"

namespace ringfence::service {

struct FleetEmulator::Host {
  v1::GetAssignmentRequest info;
  std::unique_ptr<v1::Fleet::Stub> stub;
  // Guarded by the emulator's mu_ for readers; written by its worker.
  std::string running;
  bool dead = false;
  v1::AssignReason reason = v1::ASSIGN_REASON_UNSPECIFIED;
};

FleetEmulator::FleetEmulator(FleetOptions options)
    : options_(std::move(options)) {
  for (int i = 0; i < options_.hosts; ++i) {
    auto h = std::make_unique<Host>();
    h->info.set_host_id(absl::StrFormat("host-%03d", i));
    h->info.set_tenant(absl::StrCat("tenant-", i % 3));
    if (i < options_.dogfood_hosts) h->info.add_labels("ring:dogfood");
    h->info.set_agent_version("7.11.0");
    h->info.set_platform("windows");
    h->info.add_content_types(options_.content_type);
    // A channel per host, as real agents have.
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    h->stub =
        v1::Fleet::NewStub(MakeChannel(options_.target, options_.tls, args));
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
    if (host.dead) return;
  }
  auto context = [&] {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(5));
    if (!options_.token.empty()) {
      ctx->AddMetadata("authorization", "Bearer " + options_.token);
    }
    return ctx;
  };
  auto fail = [&](absl::string_view what, const grpc::Status& s) {
    errors_.fetch_add(1);
    absl::MutexLock lock(&mu_);
    if (first_error_.empty()) {
      first_error_ = absl::StrCat(host.info.host_id(), " ", what, ": ",
                                  s.error_code(), " ", s.error_message());
    }
  };
  v1::GetAssignmentResponse assignment;
  grpc::Status s =
      host.stub->GetAssignment(context().get(), host.info, &assignment);
  if (!s.ok() || assignment.assignments_size() != 1) {
    fail("GetAssignment", s);
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
  v1::ReportTelemetryResponse reply;
  s = host.stub->ReportTelemetry(context().get(), report, &reply);
  if (!s.ok()) {
    // Not applied (e.g. RESOURCE_EXHAUSTED): the next poll reports again.
    fail("ReportTelemetry", s);
    return;
  }
  polls_.fetch_add(1);
  absl::MutexLock lock(&mu_);
  host.running = running;
  host.dead = dead;
}

int FleetEmulator::Running(const std::string& release_id) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& h : hosts_) n += !h->dead && h->running == release_id;
  return n;
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
