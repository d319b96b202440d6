// libFuzzer target: the gRPC API of ringfenced (Releases, Rollouts, Fleet)
// with arbitrary request messages, through the real handlers: an input is a
// ringfence.fuzz.ApiCalls (fuzz/proto/api_calls.proto; binary, or text for
// the seeds), made in order over an in-process channel against a fresh
// ringfence::Server on a memory store and a fake clock. Besides the
// sanitizers it checks what the API promises whatever a request holds:
//   * every status fits in a client's default metadata limit (8 KiB);
//   * a refused call (INVALID_ARGUMENT) changes no release and no rollout;
//   * releases and rollouts can always be listed (each response well under
//     a client's default 4 MB).
//
//   api_fuzz fuzz/corpus/api_fuzz -runs=20000
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fuzz/api_calls.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/model.h"
#include "ringfence/store.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/server.h"

namespace {

namespace v1 = ::ringfence::v1;
using ::ringfence::fuzz::ApiCall;
using ::ringfence::fuzz::ApiCalls;

// Inputs beyond these are cut short: each call costs a round trip.
constexpr int kMaxCalls = 32;
constexpr int kMaxBatches = 8;
// What a client accepts by default: trailing metadata of 8 KiB (the
// status message, and its details base64-encoded), messages of 4 MB.
constexpr size_t kMaxMetadataBytes = 8 << 10;
constexpr size_t kMaxReadBytes = 4 << 20;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void CheckStatus(const grpc::Status& s) {
  Check(s.error_message().size() + (s.error_details().size() + 2) / 3 * 4 +
            200 <=
        kMaxMetadataBytes);
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
  return ctx;
}

class Api {
 public:
  Api() : store_(ringfence::NewMemoryStore()) {
    ringfence::ControllerOptions options;
    options.max_batch_events = 1000;
    // The two-person rule holds these (the fuzzer's calls all come from
    // one principal, so its approvals are refused as self-approvals).
    ringfence::ApprovalRule* rule = options.fleet.add_approval_rules();
    rule->set_content_type("*");
    rule->add_actions(ringfence::config::v1::GUARDED_PROMOTE);
    rule->add_actions(ringfence::config::v1::GUARDED_CLEAR_EMERGENCY_STOP);
    controller_ =
        ringfence::Controller::Create(store_.get(), &clock_, options).value();
    ringfence::ServerOptions server_options;
    server_options.listen = "";  // in-process only
    server_options.max_batch_events = 1000;
    server_options.max_inflight_events = 10000;
    server_ =
        ringfence::Server::Start(controller_.get(), std::move(server_options))
            .value();
    auto channel = server_->InProcessChannel();
    releases_ = v1::Releases::NewStub(channel);
    rollouts_ = v1::Rollouts::NewStub(channel);
    fleet_ = v1::Fleet::NewStub(channel);
    cluster_ = v1::Cluster::NewStub(channel);
  }
  ~Api() { server_->Shutdown(absl::ZeroDuration()); }

  // The releases and rollouts, serialized; checks that they can be read.
  std::string Listed() {
    v1::ListReleasesResponse releases;
    v1::ListRolloutsResponse rollouts;
    Check(releases_->ListReleases(Context().get(), {}, &releases).ok());
    Check(rollouts_->ListRollouts(Context().get(), {}, &rollouts).ok());
    Check(releases.ByteSizeLong() < kMaxReadBytes / 4);
    Check(rollouts.ByteSizeLong() < kMaxReadBytes / 4);
    // The gate refreshes its latest decision on its own.
    for (auto& r : *rollouts.mutable_rollouts()) r.clear_last_decision();
    return releases.SerializeAsString() + rollouts.SerializeAsString();
  }

  void Run(const ApiCall& call) {
    if (call.call_case() == ApiCall::kTick) {
      const absl::Duration d = ringfence::FromProto(call.tick());
      if (d > absl::ZeroDuration() && d < absl::Hours(24 * 365)) {
        clock_.Advance(d);
      }
      controller_->Tick().IgnoreError();
      return;
    }
    const std::string before = Listed();
    const grpc::Status s = Call(call);
    CheckStatus(s);
    if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
      Check(Listed() == before);
    }
  }

 private:
  grpc::Status Call(const ApiCall& call) {
    auto ctx = Context();
    switch (call.call_case()) {
      case ApiCall::kCreateRelease: {
        ringfence::Release resp;
        return releases_->CreateRelease(ctx.get(), call.create_release(),
                                        &resp);
      }
      case ApiCall::kGetRelease: {
        ringfence::Release resp;
        return releases_->GetRelease(ctx.get(), call.get_release(), &resp);
      }
      case ApiCall::kListReleases: {
        v1::ListReleasesResponse resp;
        return releases_->ListReleases(ctx.get(), call.list_releases(), &resp);
      }
      case ApiCall::kValidateRelease: {
        v1::ValidateReleaseResponse resp;
        return releases_->ValidateRelease(ctx.get(), call.validate_release(),
                                          &resp);
      }
      case ApiCall::kStartRollout: {
        ringfence::Rollout resp;
        return rollouts_->StartRollout(ctx.get(), call.start_rollout(), &resp);
      }
      case ApiCall::kGetRollout: {
        v1::GetRolloutResponse resp;
        return rollouts_->GetRollout(ctx.get(), call.get_rollout(), &resp);
      }
      case ApiCall::kListRollouts: {
        v1::ListRolloutsResponse resp;
        return rollouts_->ListRollouts(ctx.get(), call.list_rollouts(), &resp);
      }
      case ApiCall::kWatchRollout: {
        auto reader = rollouts_->WatchRollout(ctx.get(), call.watch_rollout());
        v1::GetRolloutResponse update;
        if (reader->Read(&update)) ctx->TryCancel();
        const grpc::Status s = reader->Finish();
        return s.error_code() == grpc::StatusCode::CANCELLED ? grpc::Status()
                                                             : s;
      }
      case ApiCall::kPauseRollout: {
        ringfence::Rollout resp;
        return rollouts_->PauseRollout(ctx.get(), call.pause_rollout(), &resp);
      }
      case ApiCall::kResumeRollout: {
        ringfence::Rollout resp;
        return rollouts_->ResumeRollout(ctx.get(), call.resume_rollout(),
                                        &resp);
      }
      case ApiCall::kAbortRollout: {
        ringfence::Rollout resp;
        return rollouts_->AbortRollout(ctx.get(), call.abort_rollout(), &resp);
      }
      case ApiCall::kPromoteRollout: {
        ringfence::Rollout resp;
        return rollouts_->PromoteRollout(ctx.get(), call.promote_rollout(),
                                         &resp);
      }
      case ApiCall::kEmergencyStop: {
        v1::EmergencyStopResponse resp;
        return rollouts_->EmergencyStop(ctx.get(), call.emergency_stop(),
                                        &resp);
      }
      case ApiCall::kClearEmergencyStop: {
        v1::ClearEmergencyStopResponse resp;
        return rollouts_->ClearEmergencyStop(
            ctx.get(), call.clear_emergency_stop(), &resp);
      }
      case ApiCall::kCheckGate: {
        v1::CheckGateResponse resp;
        return rollouts_->CheckGate(ctx.get(), call.check_gate(), &resp);
      }
      case ApiCall::kGetAssignment: {
        v1::GetAssignmentResponse resp;
        return fleet_->GetAssignment(ctx.get(), call.get_assignment(), &resp);
      }
      case ApiCall::kReportTelemetry: {
        v1::ReportTelemetryResponse resp;
        return fleet_->ReportTelemetry(ctx.get(), call.report_telemetry(),
                                       &resp);
      }
      case ApiCall::kStreamTelemetry: {
        v1::StreamTelemetryResponse resp;
        auto writer = fleet_->StreamTelemetry(ctx.get(), &resp);
        const auto& batches = call.stream_telemetry().batches();
        for (int i = 0; i < batches.size() && i < kMaxBatches; ++i) {
          if (!writer->Write(batches.Get(i))) break;
        }
        writer->WritesDone();
        return writer->Finish();
      }
      case ApiCall::kListAudit: {
        v1::ListAuditResponse resp;
        return rollouts_->ListAudit(ctx.get(), call.list_audit(), &resp);
      }
      case ApiCall::kListApprovals: {
        v1::ListApprovalsResponse resp;
        return rollouts_->ListApprovals(ctx.get(), call.list_approvals(),
                                        &resp);
      }
      case ApiCall::kApprove: {
        v1::ApproveResponse resp;
        return rollouts_->Approve(ctx.get(), call.approve(), &resp);
      }
      case ApiCall::kReject: {
        v1::RejectResponse resp;
        return rollouts_->Reject(ctx.get(), call.reject(), &resp);
      }
      case ApiCall::kGetClusterStatus: {
        v1::GetClusterStatusResponse resp;
        return cluster_->GetClusterStatus(ctx.get(), call.get_cluster_status(),
                                          &resp);
      }
      case ApiCall::kTick:
      case ApiCall::CALL_NOT_SET:
        break;
    }
    return grpc::Status();
  }

  ringfence::FakeClock clock_;
  ringfence::StorePtr store_;
  std::unique_ptr<ringfence::Controller> controller_;
  std::unique_ptr<ringfence::Server> server_;
  std::unique_ptr<v1::Releases::Stub> releases_;
  std::unique_ptr<v1::Rollouts::Stub> rollouts_;
  std::unique_ptr<v1::Fleet::Stub> fleet_;
  std::unique_ptr<v1::Cluster::Stub> cluster_;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ApiCalls calls;
  if (!calls.ParseFromArray(data, static_cast<int>(size))) {
    calls.Clear();
    if (!google::protobuf::TextFormat::ParseFromString(
            std::string(reinterpret_cast<const char*>(data), size), &calls)) {
      return 0;
    }
  }
  if (calls.calls_size() == 0) return 0;
  Api api;
  for (int i = 0; i < calls.calls_size() && i < kMaxCalls; ++i) {
    api.Run(calls.calls(i));
  }
  return 0;
}
