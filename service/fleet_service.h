// The Fleet service (ringfence/v1/ringfence.proto), what hosts call:
// GetAssignment, ReportTelemetry and the StreamTelemetry stream.
//
// Telemetry goes through the Ingestor (its backpressure: RESOURCE_EXHAUSTED
// when too many events are in flight). A StreamTelemetry stream reads one
// batch at a time: the next read starts only after the batch before it was
// ingested, so a stream holds at most one batch and a slow ingest slows the
// client down (HTTP/2 flow control) rather than buffering. EndStreams ends
// the open streams at shutdown. GetAssignment and ReportTelemetry messages
// come from pools of reused messages (reused_messages.h).
//
// Thread safety: gRPC calls the handlers concurrently; EndStreams may be
// called from any thread. The Controller, CallAuthorizer and Ingestor must
// outlive the service; the service must outlive the grpc::Server it is
// registered with.
#pragma once

#include <memory>

#include "ringfence/controller.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/call.h"
#include "service/ingestor.h"
#include "service/reused_messages.h"

namespace ringfence {

class TelemetryStreams;

// StreamTelemetry reads raw bytes and parses them itself (fleet_service.cc).
// The base has no typed StreamTelemetry (Fleet::CallbackService would add
// one, which the raw method would hide: clang's -Woverloaded-virtual).
class FleetService final
    : public v1::Fleet::WithRawCallbackMethod_StreamTelemetry<
          v1::Fleet::WithCallbackMethod_GetAssignment<
              v1::Fleet::WithCallbackMethod_ReportTelemetry<
                  v1::Fleet::Service>>> {
 public:
  FleetService(Controller* controller, const CallAuthorizer* authorizer,
               Ingestor* ingestor);
  ~FleetService() override;

  grpc::ServerUnaryReactor* GetAssignment(
      grpc::CallbackServerContext* ctx, const v1::GetAssignmentRequest* req,
      v1::GetAssignmentResponse* resp) override;
  grpc::ServerUnaryReactor* ReportTelemetry(
      grpc::CallbackServerContext* ctx, const v1::ReportTelemetryRequest* req,
      v1::ReportTelemetryResponse* resp) override;
  grpc::ServerReadReactor<grpc::ByteBuffer>* StreamTelemetry(
      grpc::CallbackServerContext* ctx, grpc::ByteBuffer* resp) override;

  // EndStreams
  //
  // Ends every open StreamTelemetry stream with UNAVAILABLE ("reconnect"),
  // at once if it waits for a message, else after the batch being ingested;
  // streams that open later end as they open. For Server::Shutdown.
  void EndStreams();

 private:
  Controller* const controller_;
  const CallAuthorizer* const authorizer_;
  Ingestor* const ingestor_;
  ReusedMessages<v1::ReportTelemetryRequest, v1::ReportTelemetryResponse>
      telemetry_messages_;
  ReusedMessages<v1::GetAssignmentRequest, v1::GetAssignmentResponse>
      assignment_messages_;
  const std::unique_ptr<TelemetryStreams> streams_;
};

}  // namespace ringfence
