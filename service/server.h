// The ringfence gRPC server: the Releases, Rollouts and Fleet services of
// ringfence/v1/ringfence.proto over a Controller, plus grpc.health.v1 health
// checking and server reflection.
//
// The services only translate (protos <-> library types, absl::Status ->
// grpc::Status via ToGrpcStatus) and authenticate (auth.h); every decision
// is the Controller's. They use the gRPC callback API; unary handlers run the
// (short, thread-safe) Controller call inline.
//
// Example:
//   ServerOptions options;
//   options.listen = "127.0.0.1:0";
//   auto server = Server::Start(controller.get(), std::move(options)).value();
//   std::printf("listening on %d\n", server->port());
//   ...
//   server->Shutdown(absl::Seconds(5));
//
// Thread safety: Start and Shutdown are called from one thread; port() is
// safe from any. The Controller must outlive the Server.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ringfence/controller.h"
#include "service/auth.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace ringfence {

struct ServerOptions {
  // Address to listen on, "host:port" (default "127.0.0.1:7443"); port 0
  // picks a free port (see Server::port()).
  std::string listen = "127.0.0.1:7443";
  // Bearer tokens. nullopt (the default) = no authentication: every call is
  // made by actor "anonymous" with role admin (local use only).
  std::optional<TokenAuthenticator> auth;
  // Largest request message in bytes (default 16 MiB).
  int max_receive_message_bytes = 16 << 20;
};

class Server {
 public:
  // Start
  //
  // Builds the services over `controller` and starts listening.
  // UNAVAILABLE if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Server>> Start(Controller* controller,
                                                       ServerOptions options);
  // Shuts down (with no grace) if Shutdown was not called.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The bound port.
  int port() const { return port_; }

  // Shutdown
  //
  // Stops accepting calls, reports NOT_SERVING to health checks, ends open
  // WatchRollout streams (UNAVAILABLE, at their next poll), lets calls in
  // flight finish for up to `grace`, then cancels the rest and waits for
  // them.
  void Shutdown(absl::Duration grace);

 private:
  struct Services;
  Server() = default;

  std::unique_ptr<Services> services_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace ringfence
