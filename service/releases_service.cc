#include "service/releases_service.h"

#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ringfence/model.h"
#include "ringfence/status_macros.h"
#include "ringfence/validate.h"
#include "service/status_map.h"

namespace ringfence {
namespace {

// The library names fields of the release; the API's field is `release`.
absl::Status ReleaseFieldError(absl::Status s) {
  if (!absl::IsInvalidArgument(s)) return s;
  return absl::InvalidArgumentError(absl::StrCat("release.", s.message()));
}

}  // namespace

template <typename Request, typename Body>
grpc::ServerUnaryReactor* ReleasesService::WithPayload(
    grpc::CallbackServerContext* ctx, const Roles& allowed,
    absl::string_view method, const Request& request, Body&& body) {
  if (request.payload().empty()) {
    return authorizer_->Unary(ctx, allowed, method, request,
                              std::forward<Body>(body));
  }
  return Offloaded(ctx, allowed, method, request, std::forward<Body>(body));
}

template <typename Request, typename Body>
grpc::ServerUnaryReactor* ReleasesService::Offloaded(
    grpc::CallbackServerContext* ctx, const Roles& allowed,
    absl::string_view method, const Request& request, Body&& body) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Principal principal;
  grpc::Status s =
      authorizer_->Admit(ctx, allowed, method, request, &principal);
  if (s.ok() && validations_.fetch_add(1) >= max_validations_) {
    validations_.fetch_sub(1);
    s = grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat(max_validations_,
                     " content validations are running; retry later"));
  }
  if (!s.ok()) {
    reactor->Finish(s);
    return reactor;
  }
  std::thread([reactor, principal = std::move(principal),
               counter = &validations_, body = std::forward<Body>(body)] {
    grpc::Status status = body(principal);
    counter->fetch_sub(1);
    reactor->Finish(std::move(status));
  }).detach();
  return reactor;
}

grpc::ServerUnaryReactor* ReleasesService::CreateRelease(
    grpc::CallbackServerContext* ctx, const v1::CreateReleaseRequest* req,
    Release* resp) {
  auto body = [this, req, resp](const Principal& p) {
    absl::Status s = Admit(req->release(), req->payload());
    if (!s.ok()) {
      // On the record: who tried to publish what, and why it was refused
      // (a malformed request is not worth an entry).
      if (!absl::IsInvalidArgument(s) || !req->payload().empty()) {
        controller_->RecordReleaseRejected(req->release(), p.actor, s.message())
            .IgnoreError();
      }
      return ToGrpcStatus(s);
    }
    s = ReleaseFieldError(controller_->CreateRelease(req->release(), p.actor));
    if (!s.ok()) return ToGrpcStatus(s);
    return ToGrpcStatus(ReadInto(req->release().id(), resp));
  };
  return WithPayload(ctx, kPublisherRoles, "CreateRelease", *req, body);
}

grpc::ServerUnaryReactor* ReleasesService::GetRelease(
    grpc::CallbackServerContext* ctx, const v1::GetReleaseRequest* req,
    Release* resp) {
  return authorizer_->Unary(
      ctx, kReaderRoles, "GetRelease", *req, [&](const Principal&) {
        return ToGrpcStatus(ReadInto(req->release_id(), resp));
      });
}

grpc::ServerUnaryReactor* ReleasesService::ListReleases(
    grpc::CallbackServerContext* ctx, const v1::ListReleasesRequest* req,
    v1::ListReleasesResponse* resp) {
  return authorizer_->Unary(ctx, kReaderRoles, "ListReleases", *req,
                            [&](const Principal&) {
                              absl::StatusOr<std::vector<Release>> releases =
                                  controller_->ListReleases();
                              if (!releases.ok())
                                return ToGrpcStatus(releases.status());
                              for (Release& r : *releases) {
                                if (!req->content_type().empty() &&
                                    r.content_type() != req->content_type()) {
                                  continue;
                                }
                                *resp->add_releases() = std::move(r);
                              }
                              return grpc::Status::OK;
                            });
}

grpc::ServerUnaryReactor* ReleasesService::ValidateRelease(
    grpc::CallbackServerContext* ctx, const v1::ValidateReleaseRequest* req,
    v1::ValidateReleaseResponse* resp) {
  auto body = [this, req, resp](const Principal&) {
    absl::StatusOr<ValidationReport> report =
        CheckRelease(req->release(), req->payload());
    if (!report.ok()) return ToGrpcStatus(report.status());
    const content::v1::ValidationResult result = ToProto(*report);
    resp->set_ok(result.ok());
    *resp->mutable_findings() = result.findings();
    return grpc::Status::OK;
  };
  return WithPayload(ctx, kReaderRoles, "ValidateRelease", *req, body);
}

absl::StatusOr<ValidationReport> ReleasesService::CheckRelease(
    const Release& release, absl::string_view payload) const {
  if (payload.empty()) {
    RETURN_IF_ERROR(
        ReleaseFieldError(release_checker_->CheckWithoutPayload(release)));
    return ValidationReport();
  }
  absl::StatusOr<ValidationReport> report =
      release_checker_->Check(release, payload);
  if (!report.ok()) return ReleaseFieldError(report.status());
  return report;
}

absl::Status ReleasesService::Admit(const Release& release,
                                    absl::string_view payload) const {
  ASSIGN_OR_RETURN(const ValidationReport report,
                   CheckRelease(release, payload));
  return RejectionStatus(report);
}

absl::Status ReleasesService::ReadInto(const std::string& id, Release* out) {
  absl::StatusOr<Release> r = controller_->GetRelease(id);
  if (!r.ok()) return r.status();
  *out = *std::move(r);
  return absl::OkStatus();
}

}  // namespace ringfence
