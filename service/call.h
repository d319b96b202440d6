// What every call of the ringfence services does before and after the
// Controller: authenticate the bearer token, check the caller's role, check
// the request against its bounds (request_validation.h), and finish the
// call with the outcome as a grpc::Status.
//
// Example (a unary handler of a CallbackService):
//   return authorizer_->Unary(ctx, kReaderRoles, "GetRelease", *req,
//                             [&](const Principal&) {
//                               return ToGrpcStatus(...);
//                             });
//
// Thread safety: a CallAuthorizer is immutable; its methods may be called
// concurrently.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <optional>
#include <utility>

#include "absl/strings/string_view.h"
#include "service/auth.h"
#include "service/request_validation.h"
#include "service/status_map.h"

namespace ringfence {

// Who may call what (see ringfence.proto).
inline constexpr Roles kFleetRoles{Role::kHost, Role::kRelay, Role::kAdmin};
inline constexpr Roles kPublisherRoles{Role::kPublisher, Role::kAdmin};
inline constexpr Roles kReaderRoles{Role::kPublisher, Role::kOperator,
                                    Role::kAdmin};
inline constexpr Roles kOperatorRoles{Role::kOperator, Role::kAdmin};

// The metadata by which ringfenced's HTTP listener passes its client's
// verified certificate on to the gRPC handlers over the in-process channel:
// one kForwardedPeerUri value per URI subject alternative name, and the
// process's secret kForwardedPeerKey (ServerOptions::forwarded_peer_key),
// without which the URIs are refused.
inline constexpr char kForwardedPeerUri[] = "x-ringfence-peer-uri";
inline constexpr char kForwardedPeerKey[] = "x-ringfence-peer-key";

class CallAuthorizer {
 public:
  // `auth` nullopt: no authentication; every call is made by actor
  // "anonymous" with role admin. `authority` (ServerOptions::authority;
  // nullptr: always OK) is asked after a call is authorized: its error
  // fails the call. `forwarded_peer_key` (ServerOptions::forwarded_peer_key;
  // empty: none accepted) authenticates kForwardedPeerUri metadata.
  explicit CallAuthorizer(std::optional<TokenAuthenticator> auth,
                          std::function<absl::Status()> authority = nullptr,
                          std::string forwarded_peer_key = "")
      : auth_(std::move(auth)),
        authority_(std::move(authority)),
        forwarded_peer_key_(std::move(forwarded_peer_key)) {}

  // Check
  //
  // Authenticates the call and checks that its role is in `allowed`; on
  // success sets `*principal`. The caller is the principal its client
  // certificate names (a ringfence:// URI SAN, auth.h; over the HTTP
  // listener, the certificate it passed on with the key), else its
  // `authorization` metadata's token, else (no tokens configured) actor
  // "anonymous" with role admin. UNAUTHENTICATED or PERMISSION_DENIED
  // (naming `method`) otherwise; then the authority's error (UNAVAILABLE:
  // this replica may no longer lead). A host
  // principal is bound to its host: the Fleet handlers check each host id
  // with AuthorizeHost.
  grpc::Status Check(grpc::CallbackServerContext* ctx, const Roles& allowed,
                     absl::string_view method, Principal* principal) const;

  // Admit
  //
  // Check, then ValidateRequest(request) (INVALID_ARGUMENT naming the
  // field): what every call passes before its handler does anything.
  template <typename Request>
  grpc::Status Admit(grpc::CallbackServerContext* ctx, const Roles& allowed,
                     absl::string_view method, const Request& request,
                     Principal* principal) const {
    grpc::Status s = Check(ctx, allowed, method, principal);
    if (s.ok()) s = ToGrpcStatus(ValidateRequest(request));
    return s;
  }

  // Unary
  //
  // Runs `body(principal)` (returning grpc::Status) for an admitted unary
  // call (Admit), inline, and finishes the call with its status.
  template <typename Request, typename Body>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx,
                                  const Roles& allowed,
                                  absl::string_view method,
                                  const Request& request, Body&& body) const {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Principal principal;
    grpc::Status s = Admit(ctx, allowed, method, request, &principal);
    if (s.ok()) s = body(principal);
    reactor->Finish(s);
    return reactor;
  }

  // UnaryValidatingInPlace
  //
  // Unary for a hot path that validates its request itself, in the same
  // pass that converts it (GetAssignment: AnswerGetAssignment).
  template <typename Body>
  grpc::ServerUnaryReactor* UnaryValidatingInPlace(
      grpc::CallbackServerContext* ctx, const Roles& allowed,
      absl::string_view method, Body&& body) const {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Principal principal;
    grpc::Status s = Check(ctx, allowed, method, &principal);
    if (s.ok()) s = body(principal);
    reactor->Finish(s);
    return reactor;
  }

 private:
  // Authentication and the role check (Check without the authority).
  grpc::Status Authenticate(grpc::CallbackServerContext* ctx,
                            const Roles& allowed, absl::string_view method,
                            Principal* principal) const;

  const std::optional<TokenAuthenticator> auth_;
  const std::function<absl::Status()> authority_;
  const std::string forwarded_peer_key_;
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
