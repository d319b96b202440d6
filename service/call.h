// What every call of the ringfence services does before and after the
// Controller: authenticate the bearer token, check the caller's role, and
// finish the call with the outcome as a grpc::Status.
//
// Example (a unary handler of a CallbackService):
//   return authorizer_->Unary(ctx, kReaderRoles, "GetRelease",
//                             [&](const Principal&) {
//                               return ToGrpcStatus(...);
//                             });
//
// Thread safety: a CallAuthorizer is immutable; its methods may be called
// concurrently.
#pragma once

#include <grpcpp/grpcpp.h>

#include <optional>
#include <utility>

#include "absl/strings/string_view.h"
#include "service/auth.h"

namespace ringfence {

// Who may call what (see ringfence.proto).
inline constexpr Roles kFleetRoles{Role::kHost, Role::kAdmin};
inline constexpr Roles kPublisherRoles{Role::kPublisher, Role::kAdmin};
inline constexpr Roles kReaderRoles{Role::kPublisher, Role::kOperator,
                                    Role::kAdmin};
inline constexpr Roles kOperatorRoles{Role::kOperator, Role::kAdmin};

class CallAuthorizer {
 public:
  // `auth` nullopt: no authentication; every call is made by actor
  // "anonymous" with role admin.
  explicit CallAuthorizer(std::optional<TokenAuthenticator> auth)
      : auth_(std::move(auth)) {}

  // Check
  //
  // Authenticates the call (its `authorization` metadata) and checks that
  // its role is in `allowed`; on success sets `*principal`. UNAUTHENTICATED
  // or PERMISSION_DENIED (naming `method`) otherwise.
  grpc::Status Check(grpc::CallbackServerContext* ctx, const Roles& allowed,
                     absl::string_view method, Principal* principal) const;

  // Unary
  //
  // Runs `body(principal)` (returning grpc::Status) for an authorized unary
  // call, inline, and finishes the call with its status.
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

 private:
  const std::optional<TokenAuthenticator> auth_;
};

// A streaming call that fails before it starts: `Reactor` is the call's
// grpc::ServerWriteReactor<...> or grpc::ServerReadReactor<...>.
//
//   if (!s.ok()) return new FailedStream<grpc::ServerWriteReactor<M>>(s);
template <typename Reactor>
class FailedStream final : public Reactor {
 public:
  explicit FailedStream(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace ringfence
