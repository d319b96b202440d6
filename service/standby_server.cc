#include "service/standby_server.h"

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ringfence/error_text.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/convert.h"
#include "service/request_validation.h"
#include "service/status_map.h"

namespace ringfence {
namespace {

// Metadata on a GetAssignment a follower forwarded.
constexpr char kForwardedKey[] = "ringfence-forwarded";

}  // namespace

// Every call that is not a health check: UNAVAILABLE, at once, once the
// caller is authenticated (who leads is not told to anyone who asks).
class StandbyServer::Answers final : public grpc::CallbackGenericService {
 public:
  explicit Answers(const CallAuthorizer* authorizer)
      : authorizer_(authorizer) {}

  void SetMessage(const std::string& message) {
    absl::MutexLock lock(&mu_);
    message_ = message;
  }

  grpc::Status Refused() {
    absl::MutexLock lock(&mu_);
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, message_);
  }

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* ctx) override {
    class Refusal final : public grpc::ServerGenericBidiReactor {
     public:
      explicit Refusal(const grpc::Status& status) { Finish(status); }
      void OnDone() override { delete this; }
    };
    // Any role: the refusal only says where to go.
    static constexpr Roles kAnyRole{Role::kHost, Role::kRelay, Role::kPublisher,
                                    Role::kOperator, Role::kAdmin};
    Principal principal;
    const std::string& method = ctx->method();
    const size_t slash = method.rfind('/');
    grpc::Status s = authorizer_->Check(
        ctx, kAnyRole,
        slash == std::string::npos ? method : method.substr(slash + 1),
        &principal);
    if (!s.ok()) return new Refusal(s);
    return new Refusal(Refused());
  }

 private:
  const CallAuthorizer* const authorizer_;
  absl::Mutex mu_;
  std::string message_ ABSL_GUARDED_BY(mu_) = "this replica stands by";
};

// The Fleet service of a follower: GetAssignment from the snapshot or the
// leader; ReportTelemetry and each message of a StreamTelemetry stream
// forwarded to the leader. StreamTelemetry reads raw bytes and parses them
// itself, as the leader's FleetService does (fleet_service.h).
class StandbyServer::FollowerFleet final
    : public v1::Fleet::WithRawCallbackMethod_StreamTelemetry<
          v1::Fleet::WithCallbackMethod_GetAssignment<
              v1::Fleet::WithCallbackMethod_ReportTelemetry<
                  v1::Fleet::Service>>> {
 public:
  FollowerFleet(FollowerServing serving, const CallAuthorizer* authorizer,
                Answers* answers)
      : serving_(std::move(serving)),
        authorizer_(authorizer),
        answers_(answers) {}

  // Whether health may say SERVING: the snapshot is within its bound and
  // the calls that need the leader can be forwarded.
  bool Serving() const {
    return serving_.leader_credentials != nullptr && serving_.follower->Fresh();
  }

  grpc::ServerUnaryReactor* GetAssignment(
      grpc::CallbackServerContext* ctx, const v1::GetAssignmentRequest* req,
      v1::GetAssignmentResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Principal principal;
    grpc::Status s =
        authorizer_->Check(ctx, kFleetRoles, "GetAssignment", &principal);
    if (s.ok()) {
      s = ToGrpcStatus(AuthorizeHost(principal, req->host_id(), "host_id"));
    }
    HostInfo host = HostFromProto(*req);
    if (s.ok()) s = ToGrpcStatus(ValidateGetAssignment(*req, host));
    if (!s.ok()) {
      reactor->Finish(s);
      return reactor;
    }
    const std::vector<std::string> types(req->content_types().begin(),
                                         req->content_types().end());
    FollowerAnswer answer = serving_.follower->Assign(host, types);
    if (answer.verdict == FollowerVerdict::kForward) {
      if (serving_.leader_credentials == nullptr) {
        // Not set up to call the leader: the caller does.
        reactor->Finish(answers_->Refused());
        return reactor;
      }
      // A call another replica forwarded is never forwarded again (the
      // lease moved meanwhile: no loop between replicas).
      if (ctx->client_metadata().count(kForwardedKey) == 0 &&
          Forward(ctx, reactor, req, resp, host, types, answer.leader_epoch)) {
        return reactor;
      }
      // No leader known (it died and nobody took over yet): grant nothing.
      answer = serving_.follower->NoGrantAnswer(host, types);
    }
    reactor->Finish(Reply(answer, types, resp));
    return reactor;
  }

  // Forwarded to the leader and its answer relayed (after an accepted batch
  // the leader acknowledges once it is checkpointed, as for any caller): a
  // host's check-ins and its telemetry reach the same place, so a check-in
  // the leader counts as a boot-loop attempt is followed by the telemetry
  // that shows the host came up. UNAVAILABLE naming the leader when it
  // cannot be asked.
  grpc::ServerUnaryReactor* ReportTelemetry(
      grpc::CallbackServerContext* ctx, const v1::ReportTelemetryRequest* req,
      v1::ReportTelemetryResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Principal principal;
    grpc::Status s =
        authorizer_->Check(ctx, kFleetRoles, "ReportTelemetry", &principal);
    if (!s.ok()) {
      reactor->Finish(s);
      return reactor;
    }
    std::shared_ptr<v1::Fleet::Stub> stub =
        serving_.leader_credentials == nullptr ||
                ctx->client_metadata().count(kForwardedKey) > 0
            ? nullptr
            : LeaderStub();
    if (stub == nullptr) {
      reactor->Finish(answers_->Refused());
      return reactor;
    }
    struct Call {
      grpc::ClientContext client;
      std::shared_ptr<v1::Fleet::Stub> stub;
    };
    auto* call = new Call{{}, stub};
    PrepareForward(ctx, &call->client);
    stub->async()->ReportTelemetry(
        &call->client, req, resp, [this, call, reactor](grpc::Status s) {
          delete call;
          reactor->Finish(s.ok() ? s : LeaderError(s));
        });
    return reactor;
  }

  // Each message of the stream is forwarded to the leader as a
  // ReportTelemetry (ForwardedStream), with the caller's credentials; the
  // stream's answer counts the messages the leader acknowledged.
  // UNAVAILABLE naming the leader when it cannot be asked.
  grpc::ServerReadReactor<grpc::ByteBuffer>* StreamTelemetry(
      grpc::CallbackServerContext* ctx, grpc::ByteBuffer* resp) override;

 private:
  class ForwardedStream;

  // A forwarded call's error as the caller gets it: the leader's own answer
  // (INVALID_ARGUMENT, PERMISSION_DENIED, RESOURCE_EXHAUSTED, ...) as it
  // is; not reaching it (UNAVAILABLE, or its deadline) UNAVAILABLE naming
  // the leader, for the caller to re-send.
  grpc::Status LeaderError(const grpc::Status& s) {
    if (s.error_code() != grpc::StatusCode::UNAVAILABLE &&
        s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return s;
    }
    const grpc::Status refusal = answers_->Refused();
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("forwarding to the leader failed (", s.error_message(),
                     "); ", refusal.error_message()));
  }

  grpc::Status Reply(const FollowerAnswer& answer,
                     const std::vector<std::string>& types,
                     v1::GetAssignmentResponse* resp) {
    if (answer.verdict != FollowerVerdict::kAnswered) {
      const grpc::Status refusal = answers_->Refused();
      return grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat("this replica's snapshot of the store is ",
                       answer.as_of == absl::InfinitePast()
                           ? std::string("not loaded yet")
                           : absl::StrCat("older than its bound (as of ",
                                          absl::FormatTime(answer.as_of), ")"),
                       "; ", refusal.error_message()));
    }
    resp->Clear();
    for (size_t i = 0; i < types.size(); ++i) {
      AssignmentToProto(types[i], answer.assignments[i],
                        resp->add_assignments());
    }
    return grpc::Status::OK;
  }

  // The leader's stub, or nullptr if it is unknown.
  std::shared_ptr<v1::Fleet::Stub> LeaderStub() {
    if (serving_.leader_address == nullptr) return nullptr;
    const std::string address = serving_.leader_address();
    if (address.empty()) return nullptr;
    absl::MutexLock lock(&mu_);
    if (address != address_ || stub_ == nullptr) {
      address_ = address;
      stub_ = v1::Fleet::NewStub(
          grpc::CreateChannel(address, serving_.leader_credentials));
    }
    return stub_;
  }

  // A forwarded call: the deadline, the mark that stops a second forward,
  // and the caller's credentials (the leader authorizes the call itself).
  void PrepareForward(grpc::CallbackServerContext* ctx,
                      grpc::ClientContext* client) {
    client->set_deadline(
        absl::ToChronoTime(absl::Now() + serving_.forward_deadline));
    client->AddMetadata(kForwardedKey, "1");
    for (const auto& [key, value] : ctx->client_metadata()) {
      if (key == "authorization") {
        client->AddMetadata(std::string(key.data(), key.size()),
                            std::string(value.data(), value.size()));
      }
    }
  }

  // Asks the leader, finishing the call with its answer (or, if it cannot
  // be reached, the answer that grants nothing). False if there is no
  // leader to ask.
  bool Forward(grpc::CallbackServerContext* ctx,
               grpc::ServerUnaryReactor* reactor,
               const v1::GetAssignmentRequest* req,
               v1::GetAssignmentResponse* resp, const HostInfo& host,
               const std::vector<std::string>& types, int64_t leader_epoch) {
    std::shared_ptr<v1::Fleet::Stub> stub = LeaderStub();
    if (stub == nullptr) return false;
    struct Call {
      grpc::ClientContext client;
      std::shared_ptr<v1::Fleet::Stub> stub;
      HostInfo host;
      std::vector<std::string> types;
      int64_t leader_epoch;
    };
    auto* call = new Call{{}, stub, host, types, leader_epoch};
    PrepareForward(ctx, &call->client);
    stub->async()->GetAssignment(
        &call->client, req, resp, [this, call, reactor, resp](grpc::Status s) {
          if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
              s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
            // The leader cannot say: grant nothing (the host keeps what it
            // runs, or its baseline, as the leader answers when it cannot
            // record an exposure).
            s = Reply(serving_.follower->NoGrantAnswer(call->host, call->types),
                      call->types, resp);
          } else if (s.ok()) {
            // The leader admitted the host (follower.h): answered here next.
            serving_.follower->NoteAdmitted(call->host, call->types,
                                            call->leader_epoch);
          }
          delete call;
          reactor->Finish(s);
        });
    return true;
  }

  const FollowerServing serving_;
  const CallAuthorizer* const authorizer_;
  Answers* const answers_;
  absl::Mutex mu_;
  std::string address_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<v1::Fleet::Stub> stub_ ABSL_GUARDED_BY(mu_);
};

// Relays a StreamTelemetry stream to the leader one message at a time:
// each message goes to the leader as a ReportTelemetry, and the next is
// read only once the leader acknowledged it. Until Finish, exactly one of
// {a read, a forwarded call} is pending, so the reactions never run
// concurrently; Finish is the last thing a reaction does (OnDone deletes
// `this`).
//
// Why a ReportTelemetry per message rather than a stream to the leader: the
// leader answers a ReportTelemetry once its batch is applied (with
// --ack_telemetry_after_checkpoint, once it is checkpointed), while its own
// stream acknowledges nothing before it ends. So this stream's answer
// counts exactly the messages the leader acknowledged, a message is never
// counted that the leader did not accept, and the follower holds at most
// one batch per stream (the caller's writes wait in HTTP/2 flow control
// meanwhile). Each message also gets the forward deadline (a stopped leader
// fails the stream within it, instead of holding it open), goes to the
// replica that leads when it is sent, and takes the path of a forwarded
// ReportTelemetry (the caller's credentials, authorized by the leader; the
// mark that stops a second forward). The cost: one leader acknowledgement
// per message, up to a tick each with acknowledgement after checkpoint,
// where the leader's own stream applies messages back to back.
//
// Messages are read as bytes and parsed here, as the leader does: gRPC
// reports a message that does not parse like the end of the stream, which
// would answer OK for a stream whose last message was never forwarded.
class StandbyServer::FollowerFleet::ForwardedStream final
    : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  ForwardedStream(FollowerFleet* fleet, grpc::CallbackServerContext* ctx,
                  grpc::ByteBuffer* response)
      : fleet_(fleet), ctx_(ctx), response_bytes_(response) {
    StartRead(&raw_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // Half-closed by the caller (or cancelled: then nobody listens). Every
      // message counted was acknowledged by the leader.
      FinishWith(grpc::Status::OK);
      return;
    }
    v1::TelemetryBatch batch;
    if (!grpc::SerializationTraits<v1::TelemetryBatch>::Deserialize(&raw_,
                                                                    &batch)
             .ok()) {
      FinishWith(Failed(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "does not parse as a ringfence.v1.TelemetryBatch (a string field "
          "that is not UTF-8, or bytes that are not this message)")));
      return;
    }
    stub_ = fleet_->LeaderStub();
    if (stub_ == nullptr) {
      // No leader known (it died and nobody took over yet).
      FinishWith(Failed(fleet_->answers_->Refused()));
      return;
    }
    // TelemetryBatch and ReportTelemetryRequest hold the same events.
    request_.mutable_events()->Swap(batch.mutable_events());
    client_ = std::make_unique<grpc::ClientContext>();
    fleet_->PrepareForward(ctx_, client_.get());
    stub_->async()->ReportTelemetry(client_.get(), &request_, &reply_,
                                    [this](grpc::Status s) { OnForwarded(s); });
  }

  void OnDone() override { delete this; }

 private:
  void OnForwarded(const grpc::Status& s) {
    if (!s.ok()) {
      FinishWith(Failed(fleet_->LeaderError(s)));
      return;
    }
    response_.set_accepted_batches(response_.accepted_batches() + 1);
    response_.set_accepted_events(response_.accepted_events() +
                                  reply_.accepted_events());
    request_.Clear();
    reply_.Clear();
    StartRead(&raw_);
  }

  // `s` as the failure of the stream's next message, saying what was
  // acknowledged before it (the leader's own stream says the same).
  grpc::Status Failed(const grpc::Status& s) const {
    const uint64_t batches = response_.accepted_batches();
    return grpc::Status(
        s.error_code(),
        absl::StrCat("message ", batches, " of the stream: ", s.error_message(),
                     " (the ", batches, " messages before it, ",
                     response_.accepted_events(), " events, were applied)"));
  }

  // Finish, with the response (what the leader acknowledged) as the
  // answer's bytes.
  void FinishWith(const grpc::Status& status) {
    bool own_buffer = false;
    (void)grpc::SerializationTraits<v1::StreamTelemetryResponse>::Serialize(
        response_, response_bytes_, &own_buffer);
    Finish(status);
  }

  FollowerFleet* const fleet_;
  grpc::CallbackServerContext* const ctx_;
  grpc::ByteBuffer* const response_bytes_;
  // Only the pending read or forwarded call touches them.
  v1::StreamTelemetryResponse response_;
  grpc::ByteBuffer raw_;
  std::shared_ptr<v1::Fleet::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> client_;
  v1::ReportTelemetryRequest request_;
  v1::ReportTelemetryResponse reply_;
};

grpc::ServerReadReactor<grpc::ByteBuffer>*
StandbyServer::FollowerFleet::StreamTelemetry(grpc::CallbackServerContext* ctx,
                                              grpc::ByteBuffer* resp) {
  Principal principal;
  grpc::Status s =
      authorizer_->Check(ctx, kFleetRoles, "StreamTelemetry", &principal);
  if (s.ok() && (serving_.leader_credentials == nullptr ||
                 ctx->client_metadata().count(kForwardedKey) > 0)) {
    s = answers_->Refused();
  }
  if (!s.ok()) {
    return new FailedStream<grpc::ServerReadReactor<grpc::ByteBuffer>>(s);
  }
  return new ForwardedStream(this, ctx, resp);
}

absl::StatusOr<std::unique_ptr<StandbyServer>> StandbyServer::Start(
    const std::string& listen, const std::optional<ServerTls>& tls,
    std::optional<TokenAuthenticator> auth, ClusterOptions cluster,
    FollowerServing follower) {
  std::unique_ptr<StandbyServer> standby(new StandbyServer());
  standby->authorizer_ = std::make_unique<CallAuthorizer>(std::move(auth));
  standby->answers_ = std::make_unique<Answers>(standby->authorizer_.get());
  standby->cluster_ = std::make_unique<ClusterService>(
      standby->authorizer_.get(), std::move(cluster), v1::REPLICA_ROLE_STANDBY);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // As the Server: refuse to share the port with another process.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(listen, ServerCredentials(tls), &standby->port_);
  // Registered services take their calls; the generic one every other.
  builder.RegisterService(standby->cluster_.get());
  if (follower.follower != nullptr) {
    standby->poll_ = std::move(follower.poll);
    standby->poll_interval_ = follower.poll_interval;
    standby->fleet_ = std::make_unique<FollowerFleet>(
        std::move(follower), standby->authorizer_.get(),
        standby->answers_.get());
    builder.RegisterService(standby->fleet_.get());
  }
  builder.RegisterCallbackGenericService(standby->answers_.get());
  standby->server_ = builder.BuildAndStart();
  if (standby->server_ == nullptr || standby->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", QuoteForError(listen),
                     " (address in use, not host:port, or TLS material "
                     "refused?)"));
  }
  standby->cluster_->SetBound(listen, standby->port_);
  standby->health_ = standby->server_->GetHealthCheckService();
  if (standby->health_ != nullptr) {
    standby->health_->SetServingStatus(v1::Cluster::service_full_name(), true);
    for (const char* service :
         {v1::Releases::service_full_name(), v1::Rollouts::service_full_name(),
          v1::Fleet::service_full_name()}) {
      standby->health_->SetServingStatus(service, false);
    }
  }
  StandbyServer* self = standby.get();
  if (self->poll_ != nullptr) {
    // A fresh snapshot says SERVING as soon as it is loaded.
    self->poller_ = std::thread([self] {
      do {
        self->poll_();
        self->UpdateFleetHealth();
      } while (
          !self->stop_.WaitForNotificationWithTimeout(self->poll_interval_));
    });
  }
  if (self->fleet_ != nullptr) {
    // Not on the poll thread alone: a poll waiting on the database (up to
    // its statement timeouts) must not keep an aging snapshot SERVING.
    self->health_watcher_ = std::thread([self] {
      do {
        self->UpdateFleetHealth();
      } while (
          !self->stop_.WaitForNotificationWithTimeout(self->poll_interval_));
    });
  }
  return standby;
}

StandbyServer::~StandbyServer() { Shutdown(); }

void StandbyServer::SetMessage(const std::string& message) {
  answers_->SetMessage(message);
}

void StandbyServer::UpdateFleetHealth() {
  // Judged under the lock: the poll thread and the watcher each set what
  // they last saw, never an older view over a newer one.
  absl::MutexLock lock(&health_mu_);
  const bool serving = fleet_->Serving();
  if (shutting_down_ || serving == fleet_serving_ || health_ == nullptr) {
    return;
  }
  fleet_serving_ = serving;
  health_->SetServingStatus(v1::Fleet::service_full_name(), serving);
}

void StandbyServer::Shutdown() {
  {
    // NOT_SERVING first: stopping the poll may wait for the database.
    absl::MutexLock lock(&health_mu_);
    if (!shutting_down_ && health_ != nullptr) {
      health_->SetServingStatus(v1::Fleet::service_full_name(), false);
    }
    shutting_down_ = true;
  }
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (poller_.joinable()) poller_.join();
  if (health_watcher_.joinable()) health_watcher_.join();
  if (server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
}

std::string ListenOnPort(const std::string& listen, int port) {
  if (absl::StartsWith(listen, "unix:") ||
      absl::StartsWith(listen, "unix-abstract:")) {
    return listen;
  }
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return absl::StrCat(listen, ":", port);
  return absl::StrCat(listen.substr(0, colon), ":", port);
}

}  // namespace ringfence
