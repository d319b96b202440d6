#include "service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/call.h"
#include "service/fleet_service.h"
#include "service/ingestor.h"
#include "service/releases_service.h"
#include "service/rollouts_service.h"

namespace ringfence {

struct Server::Services {
  std::unique_ptr<CallAuthorizer> authorizer;
  // Set when the server starts shutting down: streams end.
  std::atomic<bool> shutting_down{false};
  std::unique_ptr<Ingestor> ingestor;
  // Checks releases (metadata, digest, signature, content rules).
  std::unique_ptr<ReleaseChecker> release_checker;
  std::unique_ptr<ReleasesService> releases;
  std::unique_ptr<RolloutsService> rollouts;
  std::unique_ptr<FleetService> fleet;
};

absl::StatusOr<std::unique_ptr<Server>> Server::Start(Controller* controller,
                                                      ServerOptions options) {
  if (options.max_streams_per_connection <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_streams_per_connection: must be > 0 (got ",
                     options.max_streams_per_connection, ")"));
  }
  if (options.max_batch_events == 0 ||
      options.max_inflight_events < options.max_batch_events) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_inflight_events (", options.max_inflight_events,
        ") must be at least max_batch_events (", options.max_batch_events,
        "), which must be > 0: else a full batch could never be admitted"));
  }
  std::unique_ptr<Server> server(new Server());
  server->controller_ = controller;
  server->services_ = std::make_unique<Services>();
  Services& svc = *server->services_;
  svc.authorizer = std::make_unique<CallAuthorizer>(std::move(options.auth));
  svc.ingestor = std::make_unique<Ingestor>(
      controller, options.max_batch_events, options.max_inflight_events,
      options.testing_ingest_delay);
  svc.release_checker = std::move(options.release_checker);
  if (svc.release_checker == nullptr) {
    absl::StatusOr<std::unique_ptr<ReleaseChecker>> checker =
        ReleaseChecker::Create({});
    if (!checker.ok()) return checker.status();
    svc.release_checker = *std::move(checker);
  }
  svc.releases = std::make_unique<ReleasesService>(
      controller, svc.authorizer.get(), svc.release_checker.get(),
      std::max(1, options.max_concurrent_validations));
  svc.rollouts = std::make_unique<RolloutsService>(
      controller, svc.authorizer.get(), &svc.shutting_down);
  svc.fleet = std::make_unique<FleetService>(controller, svc.authorizer.get(),
                                             svc.ingestor.get());

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Refuse to share the port with another process (the default allows it).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, ServerCredentials(options.tls),
                           &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options.max_streams_per_connection);
  builder.RegisterService(svc.releases.get());
  builder.RegisterService(svc.rollouts.get());
  builder.RegisterService(svc.fleet.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on \"", options.listen,
                     "\" (address in use, not host:port, or TLS material "
                     "refused?)"));
  }
  server->health_ = server->server_->GetHealthCheckService();
  if (server->health_ != nullptr) {
    for (const char* service :
         {v1::Releases::service_full_name(), v1::Rollouts::service_full_name(),
          v1::Fleet::service_full_name()}) {
      server->health_->SetServingStatus(service, true);
    }
    server->UpdateHealth();
  }
  return server;
}

bool Server::UpdateHealth() {
  const bool healthy = controller_->store_healthy();
  if (health_ != nullptr) {
    // Agents fail over; reads and operator actions stay available.
    health_->SetServingStatus(v1::Fleet::service_full_name(), healthy);
  }
  return healthy;
}

Server::~Server() {
  if (!shut_down_ && server_ != nullptr) Shutdown(absl::ZeroDuration());
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  services_->shutting_down.store(true, std::memory_order_release);
  if (health_ != nullptr) health_->Shutdown();
  services_->fleet->EndStreams();
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(grace));
  server_->Wait();
}

}  // namespace ringfence
