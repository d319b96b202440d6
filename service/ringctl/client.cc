#include "service/ringctl/client.h"

#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "ringfence/content/v1/content.pb.h"
#include "ringfence/validate.h"
#include "service/ringctl/format.h"
#include "service/status_map.h"

namespace ringfence::ringctl {

Client::Client(const GlobalFlags& flags, const std::optional<ClientTls>& tls)
    : channel_(MakeChannel(flags.server, tls)),
      releases_(v1::Releases::NewStub(channel_)),
      rollouts_(v1::Rollouts::NewStub(channel_)),
      cluster_(v1::Cluster::NewStub(channel_)),
      json_(flags.json),
      token_(flags.token) {}

bool Client::SetRpcTimeout(const std::string& value) {
  if (value.empty()) return true;
  return absl::ParseDuration(value, &rpc_timeout_) &&
         rpc_timeout_ > absl::ZeroDuration();
}

std::unique_ptr<grpc::ClientContext> Client::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(rpc_timeout_));
  if (!token_.empty()) {
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
  }
  return ctx;
}

int Fail(const grpc::Status& s) {
  // Held by the two-person rule: nothing failed, nothing happened yet.
  if (std::optional<config::v1::ApprovalRequest> held =
          ApprovalRequestFromStatus(s)) {
    std::fprintf(stderr, "ringctl: %s\n", s.error_message().c_str());
    std::printf("pending approval: %s\n",
                DescribeApprovalRequest(*held).c_str());
    return kExitNotYet;
  }
  // A rejected release carries all its findings: list them, one per line,
  // instead of the message that strings the first ones together.
  if (std::optional<content::v1::ValidationResult> result =
          ValidationResultFromStatus(s)) {
    const int errors = FromProto(*result).errors();
    std::fprintf(stderr,
                 "ringctl: %s: content rejected: %d error(s), %d "
                 "warning(s):\n",
                 GrpcCodeName(s.error_code()).c_str(), errors,
                 result->findings_size() - errors);
    for (const content::v1::Finding& f : result->findings()) {
      std::fprintf(stderr, "  %s %s: %s\n", f.severity().c_str(),
                   f.code().c_str(), f.message().c_str());
    }
  } else {
    std::fprintf(stderr, "ringctl: %s: %s\n",
                 GrpcCodeName(s.error_code()).c_str(),
                 s.error_message().c_str());
  }
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitRejected;
    default:
      return kExitError;
  }
}

}  // namespace ringfence::ringctl
