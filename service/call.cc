#include "service/call.h"

#include "absl/status/statusor.h"
#include "service/status_map.h"

namespace ringfence {

grpc::Status CallAuthorizer::Check(grpc::CallbackServerContext* ctx,
                                   const Roles& allowed,
                                   absl::string_view method,
                                   Principal* principal) const {
  if (!auth_.has_value()) {
    *principal = Principal{Role::kAdmin, "anonymous"};
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
