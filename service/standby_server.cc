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

namespace ringfence {

// Every call that is not a health check: UNAVAILABLE, at once.
class StandbyServer::Answers final : public grpc::CallbackGenericService {
 public:
  void SetMessage(const std::string& message) {
    absl::MutexLock lock(&mu_);
    message_ = message;
  }

  grpc::ServerGenericBidiReactor* CreateReactor(
      grpc::GenericCallbackServerContext* /*ctx*/) override {
    class Refusal final : public grpc::ServerGenericBidiReactor {
     public:
      explicit Refusal(const std::string& message) {
        Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, message));
      }
      void OnDone() override { delete this; }
    };
    absl::MutexLock lock(&mu_);
    return new Refusal(message_);
  }

 private:
  absl::Mutex mu_;
  std::string message_ ABSL_GUARDED_BY(mu_) = "this replica stands by";
};

absl::StatusOr<std::unique_ptr<StandbyServer>> StandbyServer::Start(
    const std::string& listen, const std::optional<ServerTls>& tls,
    std::optional<TokenAuthenticator> auth, ClusterOptions cluster) {
  std::unique_ptr<StandbyServer> standby(new StandbyServer());
  standby->answers_ = std::make_unique<Answers>();
  standby->authorizer_ = std::make_unique<CallAuthorizer>(std::move(auth));
  standby->cluster_ = std::make_unique<ClusterService>(
      standby->authorizer_.get(), std::move(cluster), v1::REPLICA_ROLE_STANDBY);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // As the Server: refuse to share the port with another process.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(listen, ServerCredentials(tls), &standby->port_);
  // Registered services take their calls; the generic one every other.
  builder.RegisterService(standby->cluster_.get());
  builder.RegisterCallbackGenericService(standby->answers_.get());
  standby->server_ = builder.BuildAndStart();
  if (standby->server_ == nullptr || standby->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", QuoteForError(listen),
                     " (address in use, not host:port, or TLS material "
                     "refused?)"));
  }
  standby->cluster_->SetBound(listen, standby->port_);
  if (grpc::HealthCheckServiceInterface* health =
          standby->server_->GetHealthCheckService();
      health != nullptr) {
    health->SetServingStatus(v1::Cluster::service_full_name(), true);
    for (const char* service :
         {v1::Releases::service_full_name(), v1::Rollouts::service_full_name(),
          v1::Fleet::service_full_name()}) {
      health->SetServingStatus(service, false);
    }
  }
  return standby;
}

StandbyServer::~StandbyServer() { Shutdown(); }

void StandbyServer::SetMessage(const std::string& message) {
  answers_->SetMessage(message);
}

void StandbyServer::Shutdown() {
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
