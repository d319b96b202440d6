// The Releases service (ringfence/v1/ringfence.proto): CreateRelease,
// GetRelease, ListReleases, ValidateRelease.
//
// CreateRelease and ValidateRelease run the release checks (ReleaseChecker:
// the model, the payload's digest, the publisher signature, the content
// rules); a refused CreateRelease is recorded in the audit log. Calls that
// send a payload go through the content validators, which may run external
// commands for their whole timeout: those run on a thread of their own, at
// most max_concurrent_validations at once (more: RESOURCE_EXHAUSTED).
//
// Thread safety: gRPC calls the handlers concurrently. The Controller,
// CallAuthorizer and ReleaseChecker must outlive the service.
#pragma once

#include <atomic>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringfence/controller.h"
#include "ringfence/release_check.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/call.h"

namespace ringfence {

class ReleasesService final : public v1::Releases::CallbackService {
 public:
  // REQUIRES: max_concurrent_validations >= 1.
  ReleasesService(Controller* controller, const CallAuthorizer* authorizer,
                  const ReleaseChecker* release_checker,
                  int max_concurrent_validations)
      : controller_(controller),
        authorizer_(authorizer),
        release_checker_(release_checker),
        max_validations_(max_concurrent_validations) {}

  grpc::ServerUnaryReactor* CreateRelease(grpc::CallbackServerContext* ctx,
                                          const v1::CreateReleaseRequest* req,
                                          Release* resp) override;
  grpc::ServerUnaryReactor* GetRelease(grpc::CallbackServerContext* ctx,
                                       const v1::GetReleaseRequest* req,
                                       Release* resp) override;
  grpc::ServerUnaryReactor* ListReleases(
      grpc::CallbackServerContext* ctx, const v1::ListReleasesRequest* req,
      v1::ListReleasesResponse* resp) override;
  grpc::ServerUnaryReactor* ValidateRelease(
      grpc::CallbackServerContext* ctx, const v1::ValidateReleaseRequest* req,
      v1::ValidateReleaseResponse* resp) override;

 private:
  // A call whose `request.payload()` (if any) goes through the content
  // validators: with a payload it runs Offloaded, without as any unary call.
  template <typename Request, typename Body>
  grpc::ServerUnaryReactor* WithPayload(grpc::CallbackServerContext* ctx,
                                        const Roles& allowed,
                                        absl::string_view method,
                                        const Request& request, Body&& body);

  // Like CallAuthorizer::Unary, but `body` runs on a thread of its own: for
  // work that can take long and must not hold one of gRPC's callback
  // threads. At most max_validations_ at once; beyond, RESOURCE_EXHAUSTED.
  // `body` may use the request and response until it returns (the call
  // finishes after).
  template <typename Request, typename Body>
  grpc::ServerUnaryReactor* Offloaded(grpc::CallbackServerContext* ctx,
                                      const Roles& allowed,
                                      absl::string_view method,
                                      const Request& request, Body&& body);

  // The release checks: the model, the payload's digest and size (if sent),
  // the publisher signature, and the content rules of its content type
  // (which need the payload). The content findings (none without a
  // payload), or the error that stopped the checks before them.
  absl::StatusOr<ValidationReport> CheckRelease(
      const Release& release, absl::string_view payload) const;

  // Everything a release must pass before it is stored (CheckRelease);
  // FAILED_PRECONDITION with the findings as error details if the content
  // is rejected.
  absl::Status Admit(const Release& release, absl::string_view payload) const;

  absl::Status ReadInto(const std::string& id, Release* out);

  Controller* const controller_;
  const CallAuthorizer* const authorizer_;
  const ReleaseChecker* const release_checker_;
  const int max_validations_;
  // Content validations running on their own threads.
  std::atomic<int> validations_{0};
};

}  // namespace ringfence
