// ringctl's connection to ringfenced: the channel and stubs, the bearer
// token and deadline of every call, and what a failed call prints and
// exits with.
//
// Thread safety: not thread-safe (one per process).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/ringctl/command_line.h"
#include "service/tls.h"

namespace ringfence::ringctl {

class Client {
 public:
  // Connects to flags.server (lazily, at the first call), over TLS if `tls`
  // is set; the token is flags.token.
  Client(const GlobalFlags& flags, const std::optional<ClientTls>& tls);

  // Sets the deadline of each call from --rpc-timeout (empty: 10s); false
  // on a bad value.
  bool SetRpcTimeout(const std::string& value);

  // A context for one call: its deadline and the token.
  std::unique_ptr<grpc::ClientContext> Context() const;

  v1::Releases::Stub& releases() { return *releases_; }
  v1::Rollouts::Stub& rollouts() { return *rollouts_; }
  v1::Cluster::Stub& cluster() { return *cluster_; }
  bool json() const { return json_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Releases::Stub> releases_;
  std::unique_ptr<v1::Rollouts::Stub> rollouts_;
  std::unique_ptr<v1::Cluster::Stub> cluster_;
  bool json_;
  std::string token_;
  absl::Duration rpc_timeout_ = absl::Seconds(10);
};

// Fail
//
// Prints a failed call's error on stderr ("ringctl: CODE: message"; a
// rejected release's findings one per line) and returns its exit code:
// kExitRejected if the server refused the request (INVALID_ARGUMENT,
// NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, OUT_OF_RANGE), else
// kExitError.
int Fail(const grpc::Status& status);

}  // namespace ringfence::ringctl
