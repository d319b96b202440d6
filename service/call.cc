#include "service/call.h"

#include <grpc/grpc_security_constants.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
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
  // A client certificate that names a principal is the caller's identity.
  if (const std::shared_ptr<const grpc::AuthContext> auth_context =
          ctx->auth_context();
      auth_context != nullptr && auth_context->IsPeerAuthenticated()) {
    std::vector<std::string> uris;
    for (const grpc::string_ref& v :
         auth_context->FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME)) {
      uris.emplace_back(v.data(), v.size());
    }
    absl::StatusOr<std::optional<Principal>> from_certificate =
        PrincipalFromCertificateUris(uris);
    if (!from_certificate.ok()) {
      return ToGrpcStatus(from_certificate.status());
    }
    if (from_certificate->has_value()) {
      absl::Status s = Authorize(**from_certificate, allowed, method);
      if (!s.ok()) return ToGrpcStatus(s);
      *principal = **std::move(from_certificate);
      return grpc::Status::OK;
    }
  }
  if (!auth_.has_value()) {
    *principal = Principal{Role::kAdmin, "anonymous", ""};
    return grpc::Status::OK;
  }
  absl::string_view header;
  const auto& metadata = ctx->client_metadata();
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
