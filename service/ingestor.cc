#include "service/ingestor.h"

#include <grpcpp/alarm.h>

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/convert.h"
#include "service/status_map.h"

namespace ringfence {

void Ingestor::Ingest(const EventProtos& events,
                      std::function<void(grpc::Status)> done,
                      bool acknowledge) {
  const uint64_t n = static_cast<uint64_t>(events.size());
  if (n > max_batch_events_) {
    // The controller would say the same, after a conversion.
    refused_too_large_.fetch_add(1, std::memory_order_relaxed);
    done(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      absl::StrCat("events: at most ", max_batch_events_,
                                   " events per batch (got ", n, ")")));
    return;
  }
  uint64_t in_flight = 0;
  if (!TryReserve(n, &in_flight)) {
    refused_saturated_.fetch_add(1, std::memory_order_relaxed);
    done(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("telemetry ingestion is saturated (", in_flight,
                     " events in flight, limit ", max_inflight_events_,
                     "): nothing of this batch of ", n,
                     " events was applied; retry it later, with backoff")));
    return;
  }
  if (testing_delay_ <= absl::ZeroDuration()) {
    grpc::Status s = ApplyAndRelease(events);
    if (acknowledge && s.ok()) {
      WhenDurable(std::move(done));
    } else {
      done(std::move(s));
    }
    return;
  }
  // The alarm's implementation is reference-counted, so deleting it in its
  // own callback is safe.
  auto* alarm = new grpc::Alarm();
  alarm->Set(std::chrono::system_clock::now() +
                 absl::ToChronoMilliseconds(testing_delay_),
             [this, alarm, &events, acknowledge,
              done = std::move(done)](bool) mutable {
               grpc::Status s = ApplyAndRelease(events);
               delete alarm;
               if (acknowledge && s.ok()) {
                 WhenDurable(std::move(done));
               } else {
                 done(std::move(s));
               }
             });
}

Ingestor::Counts Ingestor::counts() const {
  Counts c;
  c.events_ingested = events_ingested_.load(std::memory_order_relaxed);
  c.batches_ingested = batches_ingested_.load(std::memory_order_relaxed);
  c.refused_too_large = refused_too_large_.load(std::memory_order_relaxed);
  c.refused_saturated = refused_saturated_.load(std::memory_order_relaxed);
  c.failed = failed_.load(std::memory_order_relaxed);
  return c;
}

void Ingestor::WhenDurable(std::function<void(grpc::Status)> done) {
  if (!ack_after_checkpoint_) {
    done(grpc::Status::OK);
    return;
  }
  controller_->AfterCheckpoint(
      [done = std::move(done)](absl::Status s) { done(ToGrpcStatus(s)); });
}

bool Ingestor::TryReserve(uint64_t n, uint64_t* in_flight) {
  uint64_t cur = in_flight_.load(std::memory_order_relaxed);
  do {
    if (cur + n > max_inflight_events_) {
      *in_flight = cur;
      return false;
    }
  } while (!in_flight_.compare_exchange_weak(cur, cur + n,
                                             std::memory_order_relaxed));
  return true;
}

grpc::Status Ingestor::ApplyAndRelease(const EventProtos& events) {
  // The events borrow the request's strings (no copies), and the views'
  // array is reused by the thread's next batch (no allocation).
  thread_local std::vector<TelemetryEventView> views;
  absl::Status s = EventViewsFromProto(events, &views);
  if (s.ok()) s = controller_->Ingest(views);
  const grpc::Status result = ToGrpcStatus(s);
  if (s.ok()) {
    events_ingested_.fetch_add(events.size(), std::memory_order_relaxed);
    batches_ingested_.fetch_add(1, std::memory_order_relaxed);
  } else {
    failed_.fetch_add(1, std::memory_order_relaxed);
  }
  if (views.capacity() > kMaxRetainedViews) {
    views = std::vector<TelemetryEventView>();
  } else {
    views.clear();
  }
  in_flight_.fetch_sub(static_cast<uint64_t>(events.size()),
                       std::memory_order_relaxed);
  return result;
}

}  // namespace ringfence
