// Telemetry ingestion with backpressure: a bounded number of events in
// flight across all calls. A batch reserves its events before it is
// converted and ingested, and gives them back after; a batch that does not
// fit fails at once with RESOURCE_EXHAUSTED ("retry later") rather than
// piling up behind a slow ingest.
//
// Example (a ReportTelemetry handler):
//   ingestor->Ingest(req->events(), [reactor](grpc::Status s) {
//     reactor->Finish(s);
//   });
//
// Thread safety: thread-safe. The Controller must outlive the Ingestor, and
// the Ingestor every Ingest call in flight.
#pragma once

#include <grpcpp/support/status.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "absl/time/time.h"
#include "ringfence/controller.h"
#include "ringfence/v1/ringfence.pb.h"

namespace ringfence {

using EventProtos = google::protobuf::RepeatedPtrField<v1::TelemetryEvent>;

class Ingestor {
 public:
  // REQUIRES: 0 < max_batch_events <= max_inflight_events.
  // `testing_delay` (normally zero) holds each batch that long, without a
  // thread, between reserving and ingesting it, to make ingestion slow on
  // purpose in tests. With `ack_after_checkpoint`, a batch's `done` is called
  // only once the batch is in a committed checkpoint
  // (Controller::AfterCheckpoint: the controller must be ticked), so an
  // acknowledged event survives a crash of the server.
  Ingestor(Controller* controller, uint64_t max_batch_events,
           uint64_t max_inflight_events, absl::Duration testing_delay,
           bool ack_after_checkpoint = false)
      : controller_(controller),
        max_batch_events_(max_batch_events),
        max_inflight_events_(max_inflight_events),
        testing_delay_(testing_delay),
        ack_after_checkpoint_(ack_after_checkpoint) {}

  // Ingest
  //
  // Ingests `events` and calls `done` with the outcome: at once on this
  // thread, or (with a testing delay) later on another. `events` must stay
  // valid until `done` is called. INVALID_ARGUMENT for a batch over
  // max_batch_events; RESOURCE_EXHAUSTED if it does not fit in the budget.
  // `acknowledge` false calls `done` once the batch is applied, whatever
  // the ack_after_checkpoint option (a stream acknowledges at its end, with
  // WhenDurable).
  void Ingest(const EventProtos& events, std::function<void(grpc::Status)> done,
              bool acknowledge = true);

  // WhenDurable
  //
  // With ack_after_checkpoint: calls `done` once everything applied so far
  // is in a committed checkpoint (UNAVAILABLE if one failed); without it,
  // at once with OK.
  void WhenDurable(std::function<void(grpc::Status)> done);

  // What this Ingestor has done since it was built (for metrics): events
  // applied, and batches refused whole because they were over
  // max_batch_events (too_large), did not fit in the budget (saturated),
  // or failed validation or the store (failed).
  struct Counts {
    uint64_t events_ingested = 0;
    uint64_t batches_ingested = 0;
    uint64_t refused_too_large = 0;
    uint64_t refused_saturated = 0;
    uint64_t failed = 0;
  };
  Counts counts() const;

 private:
  bool TryReserve(uint64_t n, uint64_t* in_flight);
  grpc::Status ApplyAndRelease(const EventProtos& events);

  // A thread keeps the views' array of batches up to this size (~72 bytes
  // per event).
  static constexpr size_t kMaxRetainedViews = 16384;

  Controller* const controller_;
  const uint64_t max_batch_events_;
  const uint64_t max_inflight_events_;
  const absl::Duration testing_delay_;
  const bool ack_after_checkpoint_;
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> events_ingested_{0}, batches_ingested_{0},
      refused_too_large_{0}, refused_saturated_{0}, failed_{0};
};

}  // namespace ringfence
