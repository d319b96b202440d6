#include "service/fleet_service.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ringfence/assign.h"
#include "service/convert.h"
#include "service/status_map.h"

namespace ringfence {
namespace {

// Valid ids are at most 128 characters and signals at most 256; anything
// longer was rejected, and is not worth keeping the buffer of.
constexpr size_t kMaxReusedString = 256;

// A pooled telemetry request keeps up to ~1.5 KB of string buffers per event
// (std::string at most doubles its capacity), so at most ~3 MB per holder.
bool ReusableTelemetry(const v1::ReportTelemetryRequest& request,
                       const v1::ReportTelemetryResponse&) {
  constexpr int kMaxEvents = 2048;
  if (request.events_size() > kMaxEvents) return false;
  for (const v1::TelemetryEvent& e : request.events()) {
    if (e.host_id().size() > kMaxReusedString ||
        e.release_id().size() > kMaxReusedString ||
        e.signal().size() > kMaxReusedString) {
      return false;
    }
  }
  return true;
}

bool ReusableAssignment(const v1::GetAssignmentRequest& request,
                        const v1::GetAssignmentResponse& response) {
  constexpr int kMaxRepeated = 64;  // valid requests: <= 64 labels, types
  if (request.labels_size() > kMaxRepeated ||
      request.content_types_size() > kMaxRepeated ||
      response.assignments_size() > kMaxRepeated) {
    return false;
  }
  auto short_string = [](const std::string& s) {
    return s.size() <= kMaxReusedString;
  };
  if (!short_string(request.host_id()) || !short_string(request.tenant()) ||
      !short_string(request.agent_version()) ||
      !short_string(request.platform())) {
    return false;
  }
  for (const std::string& s : request.labels()) {
    if (!short_string(s)) return false;
  }
  for (const std::string& s : request.content_types()) {
    if (!short_string(s)) return false;
  }
  // Responses hold release fields, which are validated when created.
  return true;
}

// OK if `principal` may speak for the host of every event (AuthorizeHost);
// a batch with one event for another host is refused whole.
absl::Status AuthorizeEvents(
    const Principal& principal,
    const google::protobuf::RepeatedPtrField<v1::TelemetryEvent>& events) {
  if (principal.host_id.empty()) return absl::OkStatus();
  for (int i = 0; i < events.size(); ++i) {
    if (events[i].host_id() == principal.host_id) continue;
    return AuthorizeHost(principal, events[i].host_id(),
                         absl::StrCat("events[", i, "].host_id"));
  }
  return absl::OkStatus();
}

}  // namespace

class TelemetryStreamReactor;

// The open StreamTelemetry streams, so that Shutdown can end them at once
// (UNAVAILABLE: reconnect) instead of cancelling them after the grace
// period. EndAll calls into streams without holding the lock (Finish must
// not be called under a lock OnDone takes), so it holds a count on each;
// a stream whose OnDone runs meanwhile is deleted by EndAll.
class TelemetryStreams {
 public:
  // Registers `stream`; false if the server is shutting down (the caller
  // ends the stream).
  bool Add(TelemetryStreamReactor* stream) {
    absl::MutexLock lock(&mu_);
    streams_[stream] = Entry{};
    return !shutting_down_;
  }
  // From OnDone: whether the caller deletes `stream` (else EndAll will).
  bool Remove(TelemetryStreamReactor* stream) {
    absl::MutexLock lock(&mu_);
    auto it = streams_.find(stream);
    if (it == streams_.end()) return true;
    if (it->second.holds > 0) {
      it->second.done = true;
      return false;
    }
    streams_.erase(it);
    return true;
  }
  // Ends every open stream (new ones end as they open).
  void EndAll();

 private:
  struct Entry {
    int holds = 0;
    bool done = false;
  };
  absl::Mutex mu_;
  absl::flat_hash_map<TelemetryStreamReactor*, Entry> streams_
      ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

// Reads a StreamTelemetry stream one batch at a time: the next read starts
// only after the batch before it was ingested, so a stream holds at most one
// batch and a slow ingest slows the client down (HTTP/2 flow control) rather
// than buffering. Invariants: until Finish is requested, exactly one of {a
// read, an ingest} is pending; Finish is called once, outside of mu_, as the
// last action of a reaction (OnDone may delete `this` right after it).
//
// Messages are read as bytes and parsed here: gRPC reports a message that
// does not parse like the end of the stream, which would acknowledge a
// stream whose last message was never applied. Here it ends the stream
// with INVALID_ARGUMENT naming it.
class TelemetryStreamReactor final
    : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  TelemetryStreamReactor(Ingestor* ingestor, TelemetryStreams* streams,
                         Principal principal, grpc::ByteBuffer* response)
      : ingestor_(ingestor),
        streams_(streams),
        principal_(std::move(principal)),
        response_bytes_(response) {
    const bool open = streams_->Add(this);
    {
      absl::MutexLock lock(&mu_);
      reading_ = open;
      finished_ = !open;
    }
    if (open) {
      StartRead(&raw_);
    } else {
      FinishWith(ShutdownStatus());
    }
  }

  void OnReadDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      if (finished_) return;  // EndForShutdown finished the call
      if (!ok) {
        // Half-closed by the client (or cancelled: then nobody listens).
        finished_ = true;
      }
    }
    if (!ok) {
      // The stream's answer acknowledges every batch: once they are
      // durable (Ingestor::WhenDurable).
      ingestor_->WhenDurable([this](grpc::Status s) {
        if (s.ok()) {
          FinishWith(grpc::Status::OK);
          return;
        }
        FinishWith(grpc::Status(
            s.error_code(),
            absl::StrCat(s.error_message(), " (", response_.accepted_batches(),
                         " messages of the stream were applied)")));
      });
      return;
    }
    if (!grpc::SerializationTraits<v1::TelemetryBatch>::Deserialize(&raw_,
                                                                    &batch_)
             .ok()) {
      OnIngested(grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          "does not parse as a ringfence.v1.TelemetryBatch (a string field "
          "that is not UTF-8, or bytes that are not this message)"));
      return;
    }
    if (absl::Status s = AuthorizeEvents(principal_, batch_.events());
        !s.ok()) {
      OnIngested(ToGrpcStatus(s));
      return;
    }
    ingestor_->Ingest(
        batch_.events(), [this](grpc::Status s) { OnIngested(std::move(s)); },
        /*acknowledge=*/false);
  }

  // Ends the stream with UNAVAILABLE now if it waits for a message, or
  // after the batch being ingested.
  void EndForShutdown() {
    {
      absl::MutexLock lock(&mu_);
      shutting_down_ = true;
      if (finished_ || !reading_) return;
      finished_ = true;
    }
    // The pending read completes (not ok) and changes nothing.
    FinishWith(ShutdownStatus());
  }

  void OnDone() override {
    if (streams_->Remove(this)) delete this;
  }

 private:
  void OnIngested(grpc::Status s) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      const uint64_t batches = response_.accepted_batches();
      if (!s.ok()) {
        finish = grpc::Status(
            s.error_code(),
            absl::StrCat(
                "message ", batches, " of the stream: ", s.error_message(),
                " (the ", batches, " messages before it, ",
                response_.accepted_events(), " events, were applied)"));
      } else {
        response_.set_accepted_batches(batches + 1);
        response_.set_accepted_events(
            response_.accepted_events() +
            static_cast<uint64_t>(batch_.events_size()));
        batch_.Clear();
        if (shutting_down_) {
          finish = ShutdownStatus();
        } else {
          reading_ = true;
        }
      }
      finished_ = finish.has_value();
    }
    if (finish) {
      FinishWith(*finish);
    } else {
      StartRead(&raw_);
    }
  }

  // Finish, with the response (what was applied) as the answer's bytes.
  void FinishWith(const grpc::Status& status) {
    bool own_buffer = false;
    (void)grpc::SerializationTraits<v1::StreamTelemetryResponse>::Serialize(
        response_, response_bytes_, &own_buffer);
    Finish(status);
  }

  grpc::Status ShutdownStatus() const {
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("the server is shutting down: reconnect and send the "
                     "rest (",
                     response_.accepted_batches(), " messages, ",
                     response_.accepted_events(), " events were applied)"));
  }

  Ingestor* const ingestor_;
  TelemetryStreams* const streams_;
  const Principal principal_;
  grpc::ByteBuffer* const response_bytes_;
  // Only the pending read or ingest touches them.
  v1::StreamTelemetryResponse response_;
  grpc::ByteBuffer raw_;
  v1::TelemetryBatch batch_;
  absl::Mutex mu_;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

void TelemetryStreams::EndAll() {
  std::vector<TelemetryStreamReactor*> open;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (auto& [stream, entry] : streams_) {
      if (entry.done) continue;
      ++entry.holds;
      open.push_back(stream);
    }
  }
  for (TelemetryStreamReactor* stream : open) stream->EndForShutdown();
  std::vector<TelemetryStreamReactor*> finished;
  {
    absl::MutexLock lock(&mu_);
    for (TelemetryStreamReactor* stream : open) {
      auto it = streams_.find(stream);
      if (--it->second.holds == 0 && it->second.done) {
        finished.push_back(stream);
        streams_.erase(it);
      }
    }
  }
  for (TelemetryStreamReactor* stream : finished) delete stream;
}

FleetService::FleetService(Controller* controller,
                           const CallAuthorizer* authorizer, Ingestor* ingestor)
    : controller_(controller),
      authorizer_(authorizer),
      ingestor_(ingestor),
      telemetry_messages_(&ReusableTelemetry),
      assignment_messages_(&ReusableAssignment),
      streams_(std::make_unique<TelemetryStreams>()) {
  SetMessageAllocatorFor_ReportTelemetry(&telemetry_messages_);
  SetMessageAllocatorFor_GetAssignment(&assignment_messages_);
}

FleetService::~FleetService() = default;

grpc::ServerUnaryReactor* FleetService::GetAssignment(
    grpc::CallbackServerContext* ctx, const v1::GetAssignmentRequest* req,
    v1::GetAssignmentResponse* resp) {
  return authorizer_->UnaryValidatingInPlace(
      ctx, kFleetRoles, "GetAssignment", [&](const Principal& p) {
        if (absl::Status s = AuthorizeHost(p, req->host_id(), "host_id");
            !s.ok()) {
          return ToGrpcStatus(s);
        }
        // Per thread, reused: its strings keep their buffers (a valid
        // request's strings are short; an invalid one's are dropped below).
        thread_local HostInfo host;
        absl::Status s = AnswerGetAssignment(*controller_, *req, &host, resp);
        if (!s.ok()) {
          host = HostInfo();
          return ToGrpcStatus(s);
        }
        return grpc::Status::OK;
      });
}

grpc::ServerUnaryReactor* FleetService::ReportTelemetry(
    grpc::CallbackServerContext* ctx, const v1::ReportTelemetryRequest* req,
    v1::ReportTelemetryResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Principal principal;
  grpc::Status s =
      authorizer_->Check(ctx, kFleetRoles, "ReportTelemetry", &principal);
  if (s.ok()) s = ToGrpcStatus(AuthorizeEvents(principal, req->events()));
  if (!s.ok()) {
    reactor->Finish(s);
    return reactor;
  }
  ingestor_->Ingest(req->events(), [reactor, req, resp](grpc::Status s) {
    if (s.ok()) {
      resp->set_accepted_events(static_cast<uint32_t>(req->events_size()));
    }
    reactor->Finish(s);
  });
  return reactor;
}

grpc::ServerReadReactor<grpc::ByteBuffer>* FleetService::StreamTelemetry(
    grpc::CallbackServerContext* ctx, grpc::ByteBuffer* resp) {
  Principal principal;
  grpc::Status s =
      authorizer_->Check(ctx, kFleetRoles, "StreamTelemetry", &principal);
  if (!s.ok()) {
    return new FailedStream<grpc::ServerReadReactor<grpc::ByteBuffer>>(s);
  }
  return new TelemetryStreamReactor(ingestor_, streams_.get(),
                                    std::move(principal), resp);
}

void FleetService::EndStreams() { streams_->EndAll(); }

}  // namespace ringfence
