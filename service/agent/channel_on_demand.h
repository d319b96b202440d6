// ChannelOnDemand: an AgentTransport that opens its gRPC channel for the
// calls of one wakeup and lets the agent's loop close it before a long
// wait.
//
// An open gRPC 1.51 channel keeps gRPC's threads alive (8 of them), and
// its timer threads wake a few times a second whether or not a call is
// made; with the last channel closed, gRPC shuts them all down. An agent
// that polls every minute spends less CPU reconnecting once a minute than
// keeping the channel open (bench/README.md, "Host agent footprint").
//
// Example:
//   ChannelOnDemand transport([&] {
//     return std::make_unique<GrpcAgentTransport>(MakeChannel(server, tls),
//                                                 token);
//   });
//   auto agent = Agent::Start(options, &fs, &clock, &transport, &hooks);
//   agent->Tick();
//   transport.Close();  // before a long wait
//
// Thread safety: not thread-safe; the agent's loop uses it from one thread.
#pragma once

#include <functional>
#include <memory>

#include "ringfence/agent.h"

namespace ringfence::agent {

class ChannelOnDemand final : public AgentTransport {
 public:
  using Factory = std::function<std::unique_ptr<AgentTransport>()>;
  explicit ChannelOnDemand(Factory open) : open_(std::move(open)) {}

  absl::StatusOr<AssignmentAnswer> GetAssignment(
      const AgentIdentity& identity, uint64_t telemetry_pending) override {
    return Open().GetAssignment(identity, telemetry_pending);
  }
  absl::Status ReportTelemetry(absl::Span<const SpooledEvent> batch,
                               absl::Duration* retry_after) override {
    return Open().ReportTelemetry(batch, retry_after);
  }

  // Closes the channel (and its connection); the next call opens another.
  void Close() { transport_.reset(); }

 private:
  AgentTransport& Open() {
    if (transport_ == nullptr) transport_ = open_();
    return *transport_;
  }

  const Factory open_;
  std::unique_ptr<AgentTransport> transport_;
};

}  // namespace ringfence::agent
