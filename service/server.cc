#include "service/server.h"

#include <grpcpp/alarm.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ringfence/model.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/convert.h"
#include "service/status_map.h"

namespace ringfence {
namespace {

// Who may call what (see ringfence.proto).
constexpr Roles kFleetRoles{Role::kHost, Role::kAdmin};
constexpr Roles kPublisherRoles{Role::kPublisher, Role::kAdmin};
constexpr Roles kReaderRoles{Role::kPublisher, Role::kOperator, Role::kAdmin};
constexpr Roles kOperatorRoles{Role::kOperator, Role::kAdmin};

constexpr int kMaxContentTypesPerRequest = 64;

// What every service needs.
struct Context {
  Controller* controller;
  const std::optional<TokenAuthenticator>* auth;
  // Set when the server starts shutting down: streams end.
  const std::atomic<bool>* shutting_down;

  // Authenticates the call and checks its role; the principal on success.
  grpc::Status Check(grpc::CallbackServerContext* ctx, const Roles& allowed,
                     absl::string_view method, Principal* principal) const {
    if (!auth->has_value()) {
      *principal = Principal{Role::kAdmin, "anonymous"};
      return grpc::Status::OK;
    }
    absl::string_view header;
    const auto& metadata = ctx->client_metadata();
    if (auto it = metadata.find("authorization"); it != metadata.end()) {
      header = absl::string_view(it->second.data(), it->second.size());
    }
    absl::StatusOr<Principal> p = (*auth)->Authenticate(header);
    if (!p.ok()) return ToGrpcStatus(p.status());
    absl::Status s = Authorize(*p, allowed, method);
    if (!s.ok()) return ToGrpcStatus(s);
    *principal = *std::move(p);
    return grpc::Status::OK;
  }

  // Runs `body(principal)` for an authorized unary call and finishes the
  // call with its status.
  template <typename Body>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx,
                                  const Roles& allowed,
                                  absl::string_view method, Body&& body) const {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Principal principal;
    grpc::Status s = Check(ctx, allowed, method, &principal);
    if (s.ok()) s = body(principal);
    reactor->Finish(s);
    return reactor;
  }
};

// ---- Releases ---------------------------------------------------------------

class ReleasesService final : public v1::Releases::CallbackService {
 public:
  explicit ReleasesService(Context ctx) : c_(ctx) {}

  grpc::ServerUnaryReactor* CreateRelease(grpc::CallbackServerContext* ctx,
                                          const v1::CreateReleaseRequest* req,
                                          Release* resp) override {
    return c_.Unary(ctx, kPublisherRoles, "CreateRelease",
                    [&](const Principal& p) {
                      absl::Status s =
                          c_.controller->CreateRelease(req->release(), p.actor);
                      if (absl::IsInvalidArgument(s)) {
                        // The library names fields of the release.
                        s = absl::InvalidArgumentError(
                            absl::StrCat("release.", s.message()));
                      }
                      if (!s.ok()) return ToGrpcStatus(s);
                      return ToGrpcStatus(ReadInto(req->release().id(), resp));
                    });
  }

  grpc::ServerUnaryReactor* GetRelease(grpc::CallbackServerContext* ctx,
                                       const v1::GetReleaseRequest* req,
                                       Release* resp) override {
    return c_.Unary(ctx, kReaderRoles, "GetRelease", [&](const Principal&) {
      absl::Status s = ValidateId(req->release_id(), "release_id");
      if (s.ok()) s = ReadInto(req->release_id(), resp);
      return ToGrpcStatus(s);
    });
  }

  grpc::ServerUnaryReactor* ListReleases(
      grpc::CallbackServerContext* ctx, const v1::ListReleasesRequest* req,
      v1::ListReleasesResponse* resp) override {
    return c_.Unary(ctx, kReaderRoles, "ListReleases", [&](const Principal&) {
      absl::StatusOr<std::vector<Release>> releases =
          c_.controller->ListReleases();
      if (!releases.ok()) return ToGrpcStatus(releases.status());
      for (Release& r : *releases) {
        if (!req->content_type().empty() &&
            r.content_type() != req->content_type()) {
          continue;
        }
        *resp->add_releases() = std::move(r);
      }
      return grpc::Status::OK;
    });
  }

 private:
  absl::Status ReadInto(const std::string& id, Release* out) {
    absl::StatusOr<Release> r = c_.controller->GetRelease(id);
    if (!r.ok()) return r.status();
    *out = *std::move(r);
    return absl::OkStatus();
  }

  const Context c_;
};

// ---- Rollouts ---------------------------------------------------------------

// What makes a watcher's view of a rollout different enough to send.
std::string ChangeKey(const RolloutStatus& st) {
  std::string key = absl::StrCat(
      st.rollout.version(), "/", st.rollout.state(), "/", st.rollout.stage(),
      "/", st.telemetry.treatment_hosts, "/", st.telemetry.control_hosts, "/",
      st.stage_exposure_budget, "/");
  for (const SignalCounts& c : st.telemetry.signal_counts) {
    absl::StrAppend(&key, c.treatment_affected, ":", c.control_affected, ",");
  }
  if (st.rollout.has_last_decision()) {
    const Decision& d = st.rollout.last_decision();
    absl::StrAppend(&key, "/", d.verdict(), "/",
                    d.evidence_size() > 0 ? d.evidence(0).rule() : "");
  }
  return key;
}

// Streams a rollout's status: polls the controller on a grpc::Alarm and
// writes when the ChangeKey changes; finishes after a terminal state.
// Invariants: outside of mu_, exactly one of {a write, an alarm} is pending
// until Finish is requested; Finish is called only when neither is, and
// outside of mu_ as the last action of a reaction (OnDone may delete `this`
// as soon as Finish is called).
class WatchReactor final
    : public grpc::ServerWriteReactor<v1::GetRolloutResponse> {
 public:
  WatchReactor(Controller* controller, const std::atomic<bool>* shutting_down,
               std::string rollout_id, absl::Duration interval)
      : controller_(controller),
        shutting_down_(shutting_down),
        rollout_id_(std::move(rollout_id)),
        interval_(interval) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      PollLocked();
      finish = TakeFinishLocked();
    }
    if (finish) Finish(*finish);
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (!ok || cancelled_) {
        RequestFinishLocked(
            grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      } else if (terminal_) {
        RequestFinishLocked(grpc::Status::OK);
      } else {
        ScheduleLocked();
      }
      finish = TakeFinishLocked();
    }
    if (finish) Finish(*finish);
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    // The pending alarm's callback (ok=false) or write completion finishes.
    if (alarm_pending_) alarm_->Cancel();
  }

  void OnDone() override { delete this; }

 private:
  void OnAlarm(bool ok) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      alarm_pending_ = false;
      if (!ok || cancelled_) {
        RequestFinishLocked(
            grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      } else {
        PollLocked();
      }
      finish = TakeFinishLocked();
    }
    if (finish) Finish(*finish);
  }

  void PollLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (shutting_down_->load(std::memory_order_acquire)) {
      // Clients reconnect to another (or the restarted) server.
      RequestFinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                       "the server is shutting down"));
      return;
    }
    absl::StatusOr<RolloutStatus> st = controller_->GetRollout(rollout_id_);
    if (!st.ok()) {
      RequestFinishLocked(ToGrpcStatus(st.status()));
      return;
    }
    std::string key = ChangeKey(*st);
    if (key == last_key_) {
      ScheduleLocked();
      return;
    }
    last_key_ = std::move(key);
    terminal_ = IsTerminal(st->rollout.state());
    response_ = RolloutStatusToProto(*st);
    StartWrite(&response_);
  }

  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // The previous alarm may be the one whose callback is running now, so it
    // is destroyed one round later.
    retired_alarm_ = std::move(alarm_);
    alarm_ = std::make_unique<grpc::Alarm>();
    alarm_pending_ = true;
    alarm_->Set(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(interval_),
                [this](bool ok) { OnAlarm(ok); });
  }

  void RequestFinishLocked(grpc::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_requested_) return;
    finish_requested_ = true;
    finish_ = std::move(status);
  }

  std::optional<grpc::Status> TakeFinishLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::optional<grpc::Status> out = std::move(finish_);
    finish_.reset();
    return out;
  }

  Controller* const controller_;
  const std::atomic<bool>* const shutting_down_;
  const std::string rollout_id_;
  const absl::Duration interval_;
  absl::Mutex mu_;
  std::unique_ptr<grpc::Alarm> alarm_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Alarm> retired_alarm_ ABSL_GUARDED_BY(mu_);
  bool alarm_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool terminal_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);
  std::string last_key_ ABSL_GUARDED_BY(mu_);
  v1::GetRolloutResponse response_ ABSL_GUARDED_BY(mu_);
};

// A stream that fails before it starts.
class FailedWriteReactor final
    : public grpc::ServerWriteReactor<v1::GetRolloutResponse> {
 public:
  explicit FailedWriteReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

class RolloutsService final : public v1::Rollouts::CallbackService {
 public:
  explicit RolloutsService(Context ctx) : c_(ctx) {}

  grpc::ServerUnaryReactor* StartRollout(grpc::CallbackServerContext* ctx,
                                         const v1::StartRolloutRequest* req,
                                         Rollout* resp) override {
    return c_.Unary(ctx, kPublisherRoles, "StartRollout",
                    [&](const Principal& p) {
                      StartRolloutRequest r;
                      r.rollout_id = req->rollout_id();
                      r.release_id = req->release_id();
                      r.plan = req->plan();
                      r.baseline_release_id = req->baseline_release_id();
                      r.actor = p.actor;
                      r.reason = req->reason();
                      r.start_pending = req->start_pending();
                      return Reply(c_.controller->StartRollout(r), resp);
                    });
  }

  grpc::ServerUnaryReactor* GetRollout(grpc::CallbackServerContext* ctx,
                                       const v1::GetRolloutRequest* req,
                                       v1::GetRolloutResponse* resp) override {
    return c_.Unary(ctx, kReaderRoles, "GetRollout", [&](const Principal&) {
      absl::Status s = ValidateId(req->rollout_id(), "rollout_id");
      if (!s.ok()) return ToGrpcStatus(s);
      absl::StatusOr<RolloutStatus> st =
          c_.controller->GetRollout(req->rollout_id());
      if (!st.ok()) return ToGrpcStatus(st.status());
      *resp = RolloutStatusToProto(*st);
      if (req->include_decisions()) {
        absl::StatusOr<std::vector<Decision>> d = c_.controller->ListDecisions(
            req->rollout_id(), req->decisions_after_seq());
        if (!d.ok()) return ToGrpcStatus(d.status());
        for (Decision& decision : *d) {
          *resp->add_decisions() = std::move(decision);
        }
      }
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* ListRollouts(
      grpc::CallbackServerContext* ctx, const v1::ListRolloutsRequest* req,
      v1::ListRolloutsResponse* resp) override {
    return c_.Unary(ctx, kReaderRoles, "ListRollouts", [&](const Principal&) {
      absl::StatusOr<std::vector<Rollout>> rollouts =
          c_.controller->ListRollouts();
      if (!rollouts.ok()) return ToGrpcStatus(rollouts.status());
      for (Rollout& r : *rollouts) {
        if (!req->content_type().empty() &&
            r.content_type() != req->content_type()) {
          continue;
        }
        if (!req->release_id().empty() && r.release_id() != req->release_id()) {
          continue;
        }
        if (req->states_size() > 0 &&
            std::find(req->states().begin(), req->states().end(), r.state()) ==
                req->states().end()) {
          continue;
        }
        *resp->add_rollouts() = std::move(r);
      }
      return grpc::Status::OK;
    });
  }

  grpc::ServerWriteReactor<v1::GetRolloutResponse>* WatchRollout(
      grpc::CallbackServerContext* ctx,
      const v1::WatchRolloutRequest* req) override {
    Principal principal;
    grpc::Status s = c_.Check(ctx, kReaderRoles, "WatchRollout", &principal);
    if (s.ok()) s = ToGrpcStatus(ValidateId(req->rollout_id(), "rollout_id"));
    absl::Duration interval = absl::Seconds(1);
    if (s.ok() && req->has_poll_interval()) {
      interval = FromProto(req->poll_interval());
      if (interval < absl::Milliseconds(100) || interval > absl::Hours(1)) {
        s = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         "poll_interval: must be in [100ms, 1h]");
      }
    }
    if (!s.ok()) return new FailedWriteReactor(s);
    return new WatchReactor(c_.controller, c_.shutting_down, req->rollout_id(),
                            interval);
  }

  grpc::ServerUnaryReactor* PauseRollout(grpc::CallbackServerContext* ctx,
                                         const v1::RolloutActionRequest* req,
                                         Rollout* resp) override {
    return Manual(ctx, req, resp, "PauseRollout", Action::kPause);
  }
  grpc::ServerUnaryReactor* ResumeRollout(grpc::CallbackServerContext* ctx,
                                          const v1::RolloutActionRequest* req,
                                          Rollout* resp) override {
    return Manual(ctx, req, resp, "ResumeRollout", Action::kResume);
  }
  grpc::ServerUnaryReactor* AbortRollout(grpc::CallbackServerContext* ctx,
                                         const v1::RolloutActionRequest* req,
                                         Rollout* resp) override {
    return Manual(ctx, req, resp, "AbortRollout", Action::kAbort);
  }
  grpc::ServerUnaryReactor* PromoteRollout(grpc::CallbackServerContext* ctx,
                                           const v1::RolloutActionRequest* req,
                                           Rollout* resp) override {
    return Manual(ctx, req, resp, "PromoteRollout", Action::kPromote);
  }

  grpc::ServerUnaryReactor* EmergencyStop(
      grpc::CallbackServerContext* ctx, const v1::EmergencyStopRequest* req,
      v1::EmergencyStopResponse* resp) override {
    return c_.Unary(
        ctx, kOperatorRoles, "EmergencyStop", [&](const Principal& p) {
          // The rollouts active before the stop are the ones it halts.
          absl::StatusOr<std::vector<Rollout>> before =
              c_.controller->ListRollouts();
          if (!before.ok()) return ToGrpcStatus(before.status());
          absl::Status s = c_.controller->EmergencyStop(req->content_type(),
                                                        p.actor, req->reason());
          if (!s.ok()) return ToGrpcStatus(s);
          resp->set_content_type(req->content_type());
          for (const Rollout& r : *before) {
            if (r.content_type() != req->content_type() ||
                IsTerminal(r.state())) {
              continue;
            }
            absl::StatusOr<RolloutStatus> now =
                c_.controller->GetRollout(r.id());
            if (now.ok() && now->rollout.state() == config::v1::HALTED) {
              resp->add_halted_rollout_ids(r.id());
            }
          }
          return grpc::Status::OK;
        });
  }

  grpc::ServerUnaryReactor* ClearEmergencyStop(
      grpc::CallbackServerContext* ctx,
      const v1::ClearEmergencyStopRequest* req,
      v1::ClearEmergencyStopResponse*) override {
    return c_.Unary(ctx, kOperatorRoles, "ClearEmergencyStop",
                    [&](const Principal& p) {
                      return ToGrpcStatus(c_.controller->ClearEmergencyStop(
                          req->content_type(), p.actor, req->reason()));
                    });
  }

  grpc::ServerUnaryReactor* CheckGate(grpc::CallbackServerContext* ctx,
                                      const v1::CheckGateRequest* req,
                                      v1::CheckGateResponse* resp) override {
    return c_.Unary(ctx, kReaderRoles, "CheckGate", [&](const Principal&) {
      absl::StatusOr<GateCheck> check =
          c_.controller->CheckGate(req->release_id(), req->stage());
      if (!check.ok()) return ToGrpcStatus(check.status());
      *resp = GateCheckToProto(*check);
      return grpc::Status::OK;
    });
  }

 private:
  enum class Action { kPause, kResume, kAbort, kPromote };

  grpc::ServerUnaryReactor* Manual(grpc::CallbackServerContext* ctx,
                                   const v1::RolloutActionRequest* req,
                                   Rollout* resp, absl::string_view method,
                                   Action action) {
    return c_.Unary(ctx, kOperatorRoles, method, [&](const Principal& p) {
      Controller& c = *c_.controller;
      const std::string& id = req->rollout_id();
      const std::string& reason = req->reason();
      switch (action) {
        case Action::kPause:
          return Reply(c.Pause(id, p.actor, reason), resp);
        case Action::kResume:
          return Reply(c.Resume(id, p.actor, reason), resp);
        case Action::kAbort:
          return Reply(c.Abort(id, p.actor, reason), resp);
        case Action::kPromote:
          break;
      }
      return Reply(c.Promote(id, p.actor, reason), resp);
    });
  }

  static grpc::Status Reply(absl::StatusOr<Rollout> r, Rollout* resp) {
    if (!r.ok()) return ToGrpcStatus(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }

  const Context c_;
};

// ---- Fleet ------------------------------------------------------------------

class FleetService final : public v1::Fleet::CallbackService {
 public:
  explicit FleetService(Context ctx) : c_(ctx) {}

  grpc::ServerUnaryReactor* GetAssignment(
      grpc::CallbackServerContext* ctx, const v1::GetAssignmentRequest* req,
      v1::GetAssignmentResponse* resp) override {
    return c_.Unary(ctx, kFleetRoles, "GetAssignment", [&](const Principal&) {
      const HostInfo host = HostFromProto(*req);
      absl::Status s = ValidateHostInfo(host);
      if (s.ok() && req->content_types_size() == 0) {
        s = absl::InvalidArgumentError(
            "content_types: must name at least one content type");
      }
      if (s.ok() && req->content_types_size() > kMaxContentTypesPerRequest) {
        s = absl::InvalidArgumentError(
            absl::StrCat("content_types: at most ", kMaxContentTypesPerRequest,
                         " (got ", req->content_types_size(), ")"));
      }
      for (int i = 0; s.ok() && i < req->content_types_size(); ++i) {
        s = ValidateId(req->content_types(i),
                       absl::StrCat("content_types[", i, "]"));
      }
      if (!s.ok()) return ToGrpcStatus(s);
      for (const std::string& type : req->content_types()) {
        *resp->add_assignments() =
            AssignmentToProto(type, c_.controller->Assign(host, type));
      }
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* ReportTelemetry(
      grpc::CallbackServerContext* ctx, const v1::ReportTelemetryRequest* req,
      v1::ReportTelemetryResponse* resp) override {
    return c_.Unary(ctx, kFleetRoles, "ReportTelemetry", [&](const Principal&) {
      absl::StatusOr<std::vector<TelemetryEvent>> events =
          EventsFromProto(*req);
      if (!events.ok()) return ToGrpcStatus(events.status());
      absl::Status s = c_.controller->Ingest(*events);
      if (!s.ok()) return ToGrpcStatus(s);
      resp->set_accepted_events(static_cast<uint32_t>(events->size()));
      return grpc::Status::OK;
    });
  }

 private:
  const Context c_;
};

}  // namespace

struct Server::Services {
  std::optional<TokenAuthenticator> auth;
  std::atomic<bool> shutting_down{false};
  std::unique_ptr<ReleasesService> releases;
  std::unique_ptr<RolloutsService> rollouts;
  std::unique_ptr<FleetService> fleet;
};

absl::StatusOr<std::unique_ptr<Server>> Server::Start(Controller* controller,
                                                      ServerOptions options) {
  std::unique_ptr<Server> server(new Server());
  server->services_ = std::make_unique<Services>();
  Services& svc = *server->services_;
  svc.auth = std::move(options.auth);
  const Context ctx{controller, &svc.auth, &svc.shutting_down};
  svc.releases = std::make_unique<ReleasesService>(ctx);
  svc.rollouts = std::make_unique<RolloutsService>(ctx);
  svc.fleet = std::make_unique<FleetService>(ctx);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Refuse to share the port with another process (the default allows it).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(),
                           &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.RegisterService(svc.releases.get());
  builder.RegisterService(svc.rollouts.get());
  builder.RegisterService(svc.fleet.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on \"", options.listen,
                     "\" (address in use, or not host:port?)"));
  }
  return server;
}

Server::~Server() {
  if (!shut_down_ && server_ != nullptr) Shutdown(absl::ZeroDuration());
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  services_->shutting_down.store(true, std::memory_order_release);
  if (grpc::HealthCheckServiceInterface* health =
          server_->GetHealthCheckService()) {
    health->Shutdown();
  }
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(grace));
  server_->Wait();
}

}  // namespace ringfence
