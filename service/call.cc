#include "service/call.h"

#include <grpc/grpc_security_constants.h>
#include <openssl/crypto.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "service/status_map.h"

namespace ringfence {

grpc::Status CallAuthorizer::Check(grpc::CallbackServerContext* ctx,
                                   const Roles& allowed,
                                   absl::string_view method,
                                   Principal* principal) const {
  grpc::Status s = Authenticate(ctx, allowed, method, principal);
  if (s.ok() && authority_ != nullptr) {
    s = ToGrpcStatus(authority_());
  }
  return s;
}

grpc::Status CallAuthorizer::Authenticate(grpc::CallbackServerContext* ctx,
                                          const Roles& allowed,
                                          absl::string_view method,
                                          Principal* principal) const {
  const auto& metadata = ctx->client_metadata();
  // The HTTP listener's client certificate, passed on with the key only
  // ringfenced's own listener knows. Anyone else sending these is refused,
  // whatever else the call carries.
  const auto forwarded = metadata.equal_range(kForwardedPeerUri);
  const auto key = metadata.find(kForwardedPeerKey);
  const bool is_forwarded =
      forwarded.first != forwarded.second || key != metadata.end();
  if (is_forwarded &&
      (forwarded_peer_key_.empty() || key == metadata.end() ||
       key->second.size() != forwarded_peer_key_.size() ||
       CRYPTO_memcmp(key->second.data(), forwarded_peer_key_.data(),
                     forwarded_peer_key_.size()) != 0)) {
    return grpc::Status(
        grpc::StatusCode::UNAUTHENTICATED,
        absl::StrCat(kForwardedPeerUri,
                     " is accepted from ringfenced's own HTTP listener only"));
  }
  // A client certificate that names a principal is the caller's identity.
  std::vector<std::string> uris;
  if (const std::shared_ptr<const grpc::AuthContext> auth_context =
          ctx->auth_context();
      auth_context != nullptr && auth_context->IsPeerAuthenticated()) {
    for (const grpc::string_ref& v :
         auth_context->FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME)) {
      uris.emplace_back(v.data(), v.size());
    }
  } else if (is_forwarded) {
    for (auto it = forwarded.first; it != forwarded.second; ++it) {
      uris.emplace_back(it->second.data(), it->second.size());
    }
  }
  absl::StatusOr<std::optional<Principal>> from_certificate =
      PrincipalFromCertificateUris(uris);
  if (!from_certificate.ok()) return ToGrpcStatus(from_certificate.status());
  if (from_certificate->has_value()) {
    absl::Status s = Authorize(**from_certificate, allowed, method);
    if (!s.ok()) return ToGrpcStatus(s);
    *principal = **std::move(from_certificate);
    return grpc::Status::OK;
  }
  if (!auth_.has_value()) {
    *principal = Principal{Role::kAdmin, "anonymous", ""};
    return grpc::Status::OK;
  }
  absl::string_view header;
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    header = absl::string_view(it->second.data(), it->second.size());
  }
  absl::StatusOr<Principal> p = auth_->Authenticate(header);
  if (!p.ok()) return ToGrpcStatus(p.status());
  absl::Status s = Authorize(*p, allowed, method);
  if (!s.ok()) return ToGrpcStatus(s);
  *principal = *std::move(p);
  return grpc::Status::OK;
}

}  // namespace ringfence
