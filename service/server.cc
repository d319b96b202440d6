#include "service/server.h"

#include <grpcpp/alarm.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ringfence/model.h"
#include "ringfence/status_macros.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "ringfence/validate.h"
#include "service/convert.h"
#include "service/status_map.h"

namespace ringfence {
namespace {

// Who may call what (see ringfence.proto).
constexpr Roles kFleetRoles{Role::kHost, Role::kAdmin};
constexpr Roles kPublisherRoles{Role::kPublisher, Role::kAdmin};
constexpr Roles kReaderRoles{Role::kPublisher, Role::kOperator, Role::kAdmin};
constexpr Roles kOperatorRoles{Role::kOperator, Role::kAdmin};

using EventProtos = google::protobuf::RepeatedPtrField<v1::TelemetryEvent>;

// Telemetry ingestion with a bounded number of events in flight: a batch
// reserves its events before it is converted and ingested and gives them
// back after; a batch that does not fit fails fast (RESOURCE_EXHAUSTED)
// rather than piling up behind a slow ingest.
class Ingestor {
 public:
  // REQUIRES: max_batch_events <= max_inflight_events.
  Ingestor(Controller* controller, uint64_t max_batch_events,
           uint64_t max_inflight_events, absl::Duration testing_delay)
      : controller_(controller),
        max_batch_events_(max_batch_events),
        max_inflight_events_(max_inflight_events),
        testing_delay_(testing_delay) {}

  // Ingests `events` and calls `done` with the outcome: at once on this
  // thread, or (with a testing delay) later on another. `events` must stay
  // valid until `done` is called.
  void Ingest(const EventProtos& events,
              std::function<void(grpc::Status)> done) {
    const uint64_t n = static_cast<uint64_t>(events.size());
    if (n > max_batch_events_) {
      // The controller would say the same, after a conversion.
      done(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("events: at most ", max_batch_events_,
                                     " events per batch (got ", n, ")")));
      return;
    }
    uint64_t in_flight = 0;
    if (!TryReserve(n, &in_flight)) {
      done(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("telemetry ingestion is saturated (", in_flight,
                       " events in flight, limit ", max_inflight_events_,
                       "): nothing of this batch of ", n,
                       " events was applied; retry it later, with backoff")));
      return;
    }
    if (testing_delay_ <= absl::ZeroDuration()) {
      done(ApplyAndRelease(events));
      return;
    }
    // The alarm's implementation is reference-counted, so deleting it in its
    // own callback is safe.
    auto* alarm = new grpc::Alarm();
    alarm->Set(std::chrono::system_clock::now() +
                   absl::ToChronoMilliseconds(testing_delay_),
               [this, alarm, &events, done = std::move(done)](bool) {
                 grpc::Status s = ApplyAndRelease(events);
                 delete alarm;
                 done(std::move(s));
               });
  }

 private:
  bool TryReserve(uint64_t n, uint64_t* in_flight) {
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

  grpc::Status ApplyAndRelease(const EventProtos& events) {
    // The events borrow the request's strings (no copies), and the views'
    // array is reused by the thread's next batch (no allocation).
    thread_local std::vector<TelemetryEventView> views;
    absl::Status s = EventViewsFromProto(events, &views);
    if (s.ok()) s = controller_->Ingest(views);
    const grpc::Status result = ToGrpcStatus(s);
    if (views.capacity() > kMaxRetainedViews) {
      views = std::vector<TelemetryEventView>();
    } else {
      views.clear();
    }
    in_flight_.fetch_sub(static_cast<uint64_t>(events.size()),
                         std::memory_order_relaxed);
    return result;
  }

  // A thread keeps the views' array of batches up to this size (~72 bytes
  // per event).
  static constexpr size_t kMaxRetainedViews = 16384;

  Controller* const controller_;
  const uint64_t max_batch_events_;
  const uint64_t max_inflight_events_;
  const absl::Duration testing_delay_;
  std::atomic<uint64_t> in_flight_{0};
};

// Request and response messages of one method, reused across calls. After
// its call a message is cleared, not freed, and keeps its allocations (the
// objects of repeated fields and the strings' buffers), so parsing the next
// request into it and filling the next response allocate almost nothing.
// For ReportTelemetry, a fresh heap message per call costs about twice the
// parse (a heap allocation per event, string and timestamp, and as many
// frees). The messages live on an arena, where Clear() leaves singular
// submessages (the events' timestamps) to the arena instead of freeing them;
// the arena is reset once it holds more than kMaxArenaBytes.
//
// Bounded: at most kMaxIdle holders wait in the pool, and a holder goes back
// only if `reusable(request, response)` says its messages are of a size a
// valid call has (strings and repeated fields bounded), so the pool never
// keeps the memory of an oversized request.
//
// Thread safety: thread-safe. Must outlive the grpc::Server using it.
template <typename Request, typename Response>
class ReusedMessages final : public grpc::MessageAllocator<Request, Response> {
 public:
  static constexpr size_t kMaxIdle = 8;
  static constexpr uint64_t kMaxArenaBytes = 4 << 20;
  using Reusable = bool (*)(const Request&, const Response&);

  explicit ReusedMessages(Reusable reusable) : reusable_(reusable) {}

  grpc::MessageHolder<Request, Response>* AllocateMessages() override {
    {
      absl::MutexLock lock(&mu_);
      if (!idle_.empty()) {
        Holder* h = idle_.back().release();
        idle_.pop_back();
        return h;
      }
    }
    return new Holder(this);
  }

 private:
  class Holder final : public grpc::MessageHolder<Request, Response> {
   public:
    explicit Holder(ReusedMessages* pool) : pool_(pool) { Create(); }
    void Release() override { pool_->Return(this); }

    // Readies the messages for the next call; false if this holder should
    // rather be freed.
    bool Recycle() {
      if (!pool_->reusable_(*this->request(), *this->response())) {
        return false;
      }
      if (arena_.SpaceAllocated() > kMaxArenaBytes) {
        arena_.Reset();
        Create();
      } else {
        this->request()->Clear();
        this->response()->Clear();
      }
      return true;
    }

   private:
    void Create() {
      this->set_request(
          google::protobuf::Arena::CreateMessage<Request>(&arena_));
      this->set_response(
          google::protobuf::Arena::CreateMessage<Response>(&arena_));
    }

    ReusedMessages* const pool_;
    google::protobuf::Arena arena_;
  };

  void Return(Holder* h) {
    std::unique_ptr<Holder> holder(h);
    if (!holder->Recycle()) return;
    absl::MutexLock lock(&mu_);
    if (idle_.size() < kMaxIdle) idle_.push_back(std::move(holder));
  }

  const Reusable reusable_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Holder>> idle_ ABSL_GUARDED_BY(mu_);
};

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

class TelemetryStreams;

// What every service needs.
struct Context {
  Controller* controller;
  const std::optional<TokenAuthenticator>* auth;
  // Set when the server starts shutting down: streams end.
  const std::atomic<bool>* shutting_down;
  Ingestor* ingestor;
  TelemetryStreams* streams;
  // Checks releases (metadata, digest, signature, content rules).
  const ReleaseChecker* release_checker;
  // Content validations running on their own threads, and the limit.
  std::atomic<int>* validations;
  int max_validations;

  // Authenticates the call and checks its role; the principal on success.
  grpc::Status Check(grpc::CallbackServerContext* ctx, const Roles& allowed,
                     absl::string_view method, Principal* principal) const {
    if (!auth->has_value()) {
      *principal = Principal{Role::kAdmin, "anonymous"};
      return grpc::Status::OK;
    }
    absl::string_view header;
    const auto& metadata = ctx->client_metadata();
    if (auto it = metadata.find("authorization"); it != metadata.end()) {
      header = absl::string_view(it->second.data(), it->second.size());
    }
    absl::StatusOr<Principal> p = (*auth)->Authenticate(header);
    if (!p.ok()) return ToGrpcStatus(p.status());
    absl::Status s = Authorize(*p, allowed, method);
    if (!s.ok()) return ToGrpcStatus(s);
    *principal = *std::move(p);
    return grpc::Status::OK;
  }

  // Runs `body(principal)` for an authorized unary call and finishes the
  // call with its status.
  template <typename Body>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx,
                                  const Roles& allowed,
                                  absl::string_view method, Body&& body) const {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Principal principal;
    grpc::Status s = Check(ctx, allowed, method, &principal);
    if (s.ok()) s = body(principal);
    reactor->Finish(s);
    return reactor;
  }

  // Like Unary, but `body` runs on a thread of its own: for work that can
  // take long (content validators run external commands for up to their
  // timeout) and must not hold one of gRPC's callback threads. At most
  // `max_validations` at once; beyond, RESOURCE_EXHAUSTED. `body` may use
  // the request and response until it returns (the call finishes after).
  template <typename Body>
  grpc::ServerUnaryReactor* Offloaded(grpc::CallbackServerContext* ctx,
                                      const Roles& allowed,
                                      absl::string_view method,
                                      Body&& body) const {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Principal principal;
    grpc::Status s = Check(ctx, allowed, method, &principal);
    if (s.ok() && validations->fetch_add(1) >= max_validations) {
      validations->fetch_sub(1);
      s = grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat(max_validations,
                       " content validations are running; retry later"));
    }
    if (!s.ok()) {
      reactor->Finish(s);
      return reactor;
    }
    std::thread([reactor, principal = std::move(principal),
                 counter = validations, body = std::forward<Body>(body)] {
      grpc::Status status = body(principal);
      counter->fetch_sub(1);
      reactor->Finish(std::move(status));
    }).detach();
    return reactor;
  }
};

// ---- Releases ---------------------------------------------------------------

class ReleasesService final : public v1::Releases::CallbackService {
 public:
  explicit ReleasesService(Context ctx) : c_(ctx) {}

  grpc::ServerUnaryReactor* CreateRelease(grpc::CallbackServerContext* ctx,
                                          const v1::CreateReleaseRequest* req,
                                          Release* resp) override {
    auto body = [this, req, resp](const Principal& p) {
      absl::Status s = Admit(req->release(), req->payload());
      if (!s.ok()) {
        // On the record: who tried to publish what, and why it was refused
        // (a malformed request is not worth an entry).
        if (!absl::IsInvalidArgument(s) || !req->payload().empty()) {
          c_.controller
              ->RecordReleaseRejected(req->release(), p.actor, s.message())
              .IgnoreError();
        }
        return ToGrpcStatus(s);
      }
      s = ReleaseFieldError(
          c_.controller->CreateRelease(req->release(), p.actor));
      if (!s.ok()) return ToGrpcStatus(s);
      return ToGrpcStatus(ReadInto(req->release().id(), resp));
    };
    return WithPayload(ctx, kPublisherRoles, "CreateRelease", req->payload(),
                       body);
  }

  grpc::ServerUnaryReactor* GetRelease(grpc::CallbackServerContext* ctx,
                                       const v1::GetReleaseRequest* req,
                                       Release* resp) override {
    return c_.Unary(ctx, kReaderRoles, "GetRelease", [&](const Principal&) {
      absl::Status s = ValidateId(req->release_id(), "release_id");
      if (s.ok()) s = ReadInto(req->release_id(), resp);
      return ToGrpcStatus(s);
    });
  }

  grpc::ServerUnaryReactor* ListReleases(
      grpc::CallbackServerContext* ctx, const v1::ListReleasesRequest* req,
      v1::ListReleasesResponse* resp) override {
    return c_.Unary(ctx, kReaderRoles, "ListReleases", [&](const Principal&) {
      absl::StatusOr<std::vector<Release>> releases =
          c_.controller->ListReleases();
      if (!releases.ok()) return ToGrpcStatus(releases.status());
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

  grpc::ServerUnaryReactor* ValidateRelease(
      grpc::CallbackServerContext* ctx, const v1::ValidateReleaseRequest* req,
      v1::ValidateReleaseResponse* resp) override {
    auto body = [this, req, resp](const Principal&) {
      absl::StatusOr<ValidationReport> report =
          CheckRelease(req->release(), req->payload());
      if (!report.ok()) return ToGrpcStatus(report.status());
      const content::v1::ValidationResult result = ToProto(*report);
      resp->set_ok(result.ok());
      *resp->mutable_findings() = result.findings();
      return grpc::Status::OK;
    };
    return WithPayload(ctx, kReaderRoles, "ValidateRelease", req->payload(),
                       body);
  }

 private:
  // A call whose `payload` (if any) goes through the content validators,
  // which may run for their whole timeout: those calls run on a thread of
  // their own (Context::Offloaded), the others as any unary call.
  template <typename Body>
  grpc::ServerUnaryReactor* WithPayload(grpc::CallbackServerContext* ctx,
                                        const Roles& allowed,
                                        absl::string_view method,
                                        absl::string_view payload,
                                        Body&& body) const {
    if (payload.empty()) {
      return c_.Unary(ctx, allowed, method, std::forward<Body>(body));
    }
    return c_.Offloaded(ctx, allowed, method, std::forward<Body>(body));
  }

  // The release checks: the model, the payload's digest and size (if sent),
  // the publisher signature, and the content rules of its content type
  // (which need the payload). The content findings (none without a
  // payload), or the error that stopped the checks before them.
  absl::StatusOr<ValidationReport> CheckRelease(
      const Release& release, absl::string_view payload) const {
    if (payload.empty()) {
      RETURN_IF_ERROR(
          ReleaseFieldError(c_.release_checker->CheckWithoutPayload(release)));
      return ValidationReport();
    }
    absl::StatusOr<ValidationReport> report =
        c_.release_checker->Check(release, payload);
    if (!report.ok()) return ReleaseFieldError(report.status());
    return report;
  }

  // Everything a release must pass before it is stored (CheckRelease);
  // FAILED_PRECONDITION with the findings as error details if the content
  // is rejected.
  absl::Status Admit(const Release& release, absl::string_view payload) const {
    ASSIGN_OR_RETURN(const ValidationReport report,
                     CheckRelease(release, payload));
    return RejectionStatus(report);
  }

  // The library names fields of the release; the API's field is `release`.
  static absl::Status ReleaseFieldError(absl::Status s) {
    if (!absl::IsInvalidArgument(s)) return s;
    return absl::InvalidArgumentError(absl::StrCat("release.", s.message()));
  }

  absl::Status ReadInto(const std::string& id, Release* out) {
    absl::StatusOr<Release> r = c_.controller->GetRelease(id);
    if (!r.ok()) return r.status();
    *out = *std::move(r);
    return absl::OkStatus();
  }

  const Context c_;
};

// ---- Rollouts ---------------------------------------------------------------

// What makes a watcher's view of a rollout different enough to send.
std::string ChangeKey(const RolloutStatus& st) {
  std::string key = absl::StrCat(
      st.rollout.version(), "/", st.rollout.state(), "/", st.rollout.stage(),
      "/", st.telemetry.treatment_hosts, "/", st.telemetry.control_hosts, "/",
      st.stage_exposure_budget, "/");
  for (const SignalCounts& c : st.telemetry.signal_counts) {
    absl::StrAppend(&key, c.treatment_affected, ":", c.control_affected, ",");
  }
  if (st.rollout.has_last_decision()) {
    const Decision& d = st.rollout.last_decision();
    absl::StrAppend(&key, "/", d.verdict(), "/",
                    d.evidence_size() > 0 ? d.evidence(0).rule() : "");
  }
  return key;
}

// Streams a rollout's status: polls the controller on a grpc::Alarm and
// writes when the ChangeKey changes; finishes after a terminal state.
// Invariants: outside of mu_, exactly one of {a write, an alarm} is pending
// until Finish is requested; Finish is called only when neither is, and
// outside of mu_ as the last action of a reaction (OnDone may delete `this`
// as soon as Finish is called).
class WatchReactor final
    : public grpc::ServerWriteReactor<v1::GetRolloutResponse> {
 public:
  WatchReactor(Controller* controller, const std::atomic<bool>* shutting_down,
               std::string rollout_id, absl::Duration interval)
      : controller_(controller),
        shutting_down_(shutting_down),
        rollout_id_(std::move(rollout_id)),
        interval_(interval) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      PollLocked();
      finish = TakeFinishLocked();
    }
    if (finish) Finish(*finish);
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (!ok || cancelled_) {
        RequestFinishLocked(
            grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      } else if (terminal_) {
        RequestFinishLocked(grpc::Status::OK);
      } else {
        ScheduleLocked();
      }
      finish = TakeFinishLocked();
    }
    if (finish) Finish(*finish);
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    // The pending alarm's callback (ok=false) or write completion finishes.
    if (alarm_pending_) alarm_->Cancel();
  }

  void OnDone() override { delete this; }

 private:
  void OnAlarm(bool ok) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      alarm_pending_ = false;
      if (!ok || cancelled_) {
        RequestFinishLocked(
            grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
      } else {
        PollLocked();
      }
      finish = TakeFinishLocked();
    }
    if (finish) Finish(*finish);
  }

  void PollLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (shutting_down_->load(std::memory_order_acquire)) {
      // Clients reconnect to another (or the restarted) server.
      RequestFinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                       "the server is shutting down"));
      return;
    }
    absl::StatusOr<RolloutStatus> st = controller_->GetRollout(rollout_id_);
    if (!st.ok()) {
      RequestFinishLocked(ToGrpcStatus(st.status()));
      return;
    }
    std::string key = ChangeKey(*st);
    if (key == last_key_) {
      ScheduleLocked();
      return;
    }
    last_key_ = std::move(key);
    terminal_ = IsTerminal(st->rollout.state());
    response_ = RolloutStatusToProto(*st);
    StartWrite(&response_);
  }

  void ScheduleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // The previous alarm may be the one whose callback is running now, so it
    // is destroyed one round later.
    retired_alarm_ = std::move(alarm_);
    alarm_ = std::make_unique<grpc::Alarm>();
    alarm_pending_ = true;
    alarm_->Set(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(interval_),
                [this](bool ok) { OnAlarm(ok); });
  }

  void RequestFinishLocked(grpc::Status status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_requested_) return;
    finish_requested_ = true;
    finish_ = std::move(status);
  }

  std::optional<grpc::Status> TakeFinishLocked()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::optional<grpc::Status> out = std::move(finish_);
    finish_.reset();
    return out;
  }

  Controller* const controller_;
  const std::atomic<bool>* const shutting_down_;
  const std::string rollout_id_;
  const absl::Duration interval_;
  absl::Mutex mu_;
  std::unique_ptr<grpc::Alarm> alarm_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Alarm> retired_alarm_ ABSL_GUARDED_BY(mu_);
  bool alarm_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool terminal_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);
  std::string last_key_ ABSL_GUARDED_BY(mu_);
  v1::GetRolloutResponse response_ ABSL_GUARDED_BY(mu_);
};

// A stream that fails before it starts.
class FailedWriteReactor final
    : public grpc::ServerWriteReactor<v1::GetRolloutResponse> {
 public:
  explicit FailedWriteReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

class FailedReadReactor final
    : public grpc::ServerReadReactor<v1::TelemetryBatch> {
 public:
  explicit FailedReadReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

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
class TelemetryStreamReactor final
    : public grpc::ServerReadReactor<v1::TelemetryBatch> {
 public:
  TelemetryStreamReactor(Ingestor* ingestor, TelemetryStreams* streams,
                         v1::StreamTelemetryResponse* response)
      : ingestor_(ingestor), streams_(streams), response_(response) {
    const bool open = streams_->Add(this);
    {
      absl::MutexLock lock(&mu_);
      reading_ = open;
      finished_ = !open;
    }
    if (open) {
      StartRead(&batch_);
    } else {
      Finish(ShutdownStatus());
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
      Finish(grpc::Status::OK);
      return;
    }
    ingestor_->Ingest(batch_.events(),
                      [this](grpc::Status s) { OnIngested(std::move(s)); });
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
    Finish(ShutdownStatus());
  }

  void OnDone() override {
    if (streams_->Remove(this)) delete this;
  }

 private:
  void OnIngested(grpc::Status s) {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      const uint64_t batches = response_->accepted_batches();
      if (!s.ok()) {
        finish = grpc::Status(
            s.error_code(),
            absl::StrCat(
                "message ", batches, " of the stream: ", s.error_message(),
                " (the ", batches, " messages before it, ",
                response_->accepted_events(), " events, were applied)"));
      } else {
        response_->set_accepted_batches(batches + 1);
        response_->set_accepted_events(
            response_->accepted_events() +
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
      Finish(*finish);
    } else {
      StartRead(&batch_);
    }
  }

  grpc::Status ShutdownStatus() const {
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("the server is shutting down: reconnect and send the "
                     "rest (",
                     response_->accepted_batches(), " messages, ",
                     response_->accepted_events(), " events were applied)"));
  }

  Ingestor* const ingestor_;
  TelemetryStreams* const streams_;
  v1::StreamTelemetryResponse* const response_;
  // Only the pending read or ingest touches it.
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

class RolloutsService final : public v1::Rollouts::CallbackService {
 public:
  explicit RolloutsService(Context ctx) : c_(ctx) {}

  grpc::ServerUnaryReactor* StartRollout(grpc::CallbackServerContext* ctx,
                                         const v1::StartRolloutRequest* req,
                                         Rollout* resp) override {
    return c_.Unary(ctx, kPublisherRoles, "StartRollout",
                    [&](const Principal& p) {
                      StartRolloutRequest r;
                      r.rollout_id = req->rollout_id();
                      r.release_id = req->release_id();
                      r.plan = req->plan();
                      r.baseline_release_id = req->baseline_release_id();
                      r.actor = p.actor;
                      r.reason = req->reason();
                      r.start_pending = req->start_pending();
                      r.allow_no_baseline = req->allow_no_baseline();
                      return Reply(c_.controller->StartRollout(r), resp);
                    });
  }

  grpc::ServerUnaryReactor* GetRollout(grpc::CallbackServerContext* ctx,
                                       const v1::GetRolloutRequest* req,
                                       v1::GetRolloutResponse* resp) override {
    return c_.Unary(ctx, kReaderRoles, "GetRollout", [&](const Principal&) {
      absl::Status s = ValidateId(req->rollout_id(), "rollout_id");
      if (!s.ok()) return ToGrpcStatus(s);
      absl::StatusOr<RolloutStatus> st =
          c_.controller->GetRollout(req->rollout_id());
      if (!st.ok()) return ToGrpcStatus(st.status());
      *resp = RolloutStatusToProto(*st);
      if (req->include_decisions()) {
        absl::StatusOr<std::vector<Decision>> d = c_.controller->ListDecisions(
            req->rollout_id(), req->decisions_after_seq());
        if (!d.ok()) return ToGrpcStatus(d.status());
        for (Decision& decision : *d) {
          *resp->add_decisions() = std::move(decision);
        }
      }
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* ListRollouts(
      grpc::CallbackServerContext* ctx, const v1::ListRolloutsRequest* req,
      v1::ListRolloutsResponse* resp) override {
    return c_.Unary(ctx, kReaderRoles, "ListRollouts", [&](const Principal&) {
      absl::StatusOr<std::vector<Rollout>> rollouts =
          c_.controller->ListRollouts();
      if (!rollouts.ok()) return ToGrpcStatus(rollouts.status());
      for (Rollout& r : *rollouts) {
        if (!req->content_type().empty() &&
            r.content_type() != req->content_type()) {
          continue;
        }
        if (!req->release_id().empty() && r.release_id() != req->release_id()) {
          continue;
        }
        if (req->states_size() > 0 &&
            std::find(req->states().begin(), req->states().end(), r.state()) ==
                req->states().end()) {
          continue;
        }
        *resp->add_rollouts() = std::move(r);
      }
      return grpc::Status::OK;
    });
  }

  grpc::ServerWriteReactor<v1::GetRolloutResponse>* WatchRollout(
      grpc::CallbackServerContext* ctx,
      const v1::WatchRolloutRequest* req) override {
    Principal principal;
    grpc::Status s = c_.Check(ctx, kReaderRoles, "WatchRollout", &principal);
    if (s.ok()) s = ToGrpcStatus(ValidateId(req->rollout_id(), "rollout_id"));
    absl::Duration interval = absl::Seconds(1);
    if (s.ok() && req->has_poll_interval()) {
      interval = FromProto(req->poll_interval());
      if (interval < absl::Milliseconds(100) || interval > absl::Hours(1)) {
        s = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                         "poll_interval: must be in [100ms, 1h]");
      }
    }
    if (!s.ok()) return new FailedWriteReactor(s);
    return new WatchReactor(c_.controller, c_.shutting_down, req->rollout_id(),
                            interval);
  }

  grpc::ServerUnaryReactor* PauseRollout(grpc::CallbackServerContext* ctx,
                                         const v1::RolloutActionRequest* req,
                                         Rollout* resp) override {
    return Manual(ctx, req, resp, "PauseRollout", Action::kPause);
  }
  grpc::ServerUnaryReactor* ResumeRollout(grpc::CallbackServerContext* ctx,
                                          const v1::RolloutActionRequest* req,
                                          Rollout* resp) override {
    return Manual(ctx, req, resp, "ResumeRollout", Action::kResume);
  }
  grpc::ServerUnaryReactor* AbortRollout(grpc::CallbackServerContext* ctx,
                                         const v1::RolloutActionRequest* req,
                                         Rollout* resp) override {
    return Manual(ctx, req, resp, "AbortRollout", Action::kAbort);
  }
  grpc::ServerUnaryReactor* PromoteRollout(grpc::CallbackServerContext* ctx,
                                           const v1::RolloutActionRequest* req,
                                           Rollout* resp) override {
    return Manual(ctx, req, resp, "PromoteRollout", Action::kPromote);
  }

  grpc::ServerUnaryReactor* EmergencyStop(
      grpc::CallbackServerContext* ctx, const v1::EmergencyStopRequest* req,
      v1::EmergencyStopResponse* resp) override {
    return c_.Unary(
        ctx, kOperatorRoles, "EmergencyStop", [&](const Principal& p) {
          // The rollouts active before the stop are the ones it halts.
          absl::StatusOr<std::vector<Rollout>> before =
              c_.controller->ListRollouts();
          if (!before.ok()) return ToGrpcStatus(before.status());
          absl::Status s = c_.controller->EmergencyStop(req->content_type(),
                                                        p.actor, req->reason());
          if (!s.ok()) return ToGrpcStatus(s);
          resp->set_content_type(req->content_type());
          for (const Rollout& r : *before) {
            if (r.content_type() != req->content_type() ||
                IsTerminal(r.state())) {
              continue;
            }
            absl::StatusOr<RolloutStatus> now =
                c_.controller->GetRollout(r.id());
            if (now.ok() && now->rollout.state() == config::v1::HALTED) {
              resp->add_halted_rollout_ids(r.id());
            }
          }
          return grpc::Status::OK;
        });
  }

  grpc::ServerUnaryReactor* ClearEmergencyStop(
      grpc::CallbackServerContext* ctx,
      const v1::ClearEmergencyStopRequest* req,
      v1::ClearEmergencyStopResponse*) override {
    return c_.Unary(ctx, kOperatorRoles, "ClearEmergencyStop",
                    [&](const Principal& p) {
                      return ToGrpcStatus(c_.controller->ClearEmergencyStop(
                          req->content_type(), p.actor, req->reason()));
                    });
  }

  grpc::ServerUnaryReactor* CheckGate(grpc::CallbackServerContext* ctx,
                                      const v1::CheckGateRequest* req,
                                      v1::CheckGateResponse* resp) override {
    return c_.Unary(ctx, kReaderRoles, "CheckGate", [&](const Principal&) {
      absl::StatusOr<GateCheck> check =
          c_.controller->CheckGate(req->release_id(), req->stage());
      if (!check.ok()) return ToGrpcStatus(check.status());
      *resp = GateCheckToProto(*check);
      return grpc::Status::OK;
    });
  }

 private:
  enum class Action { kPause, kResume, kAbort, kPromote };

  grpc::ServerUnaryReactor* Manual(grpc::CallbackServerContext* ctx,
                                   const v1::RolloutActionRequest* req,
                                   Rollout* resp, absl::string_view method,
                                   Action action) {
    return c_.Unary(ctx, kOperatorRoles, method, [&](const Principal& p) {
      Controller& c = *c_.controller;
      const std::string& id = req->rollout_id();
      const std::string& reason = req->reason();
      switch (action) {
        case Action::kPause:
          return Reply(c.Pause(id, p.actor, reason), resp);
        case Action::kResume:
          return Reply(c.Resume(id, p.actor, reason), resp);
        case Action::kAbort:
          return Reply(c.Abort(id, p.actor, reason), resp);
        case Action::kPromote:
          break;
      }
      return Reply(c.Promote(id, p.actor, reason), resp);
    });
  }

  static grpc::Status Reply(absl::StatusOr<Rollout> r, Rollout* resp) {
    if (!r.ok()) return ToGrpcStatus(r.status());
    *resp = *std::move(r);
    return grpc::Status::OK;
  }

  const Context c_;
};

// ---- Fleet ------------------------------------------------------------------

class FleetService final : public v1::Fleet::CallbackService {
 public:
  explicit FleetService(Context ctx) : c_(ctx) {}

  grpc::ServerUnaryReactor* GetAssignment(
      grpc::CallbackServerContext* ctx, const v1::GetAssignmentRequest* req,
      v1::GetAssignmentResponse* resp) override {
    return c_.Unary(ctx, kFleetRoles, "GetAssignment", [&](const Principal&) {
      // Per thread, reused: its strings keep their buffers (a valid request's
      // strings are short; an invalid one's are dropped below).
      thread_local HostInfo host;
      absl::Status s = AnswerGetAssignment(*c_.controller, *req, &host, resp);
      if (!s.ok()) {
        host = HostInfo();
        return ToGrpcStatus(s);
      }
      return grpc::Status::OK;
    });
  }

  grpc::ServerUnaryReactor* ReportTelemetry(
      grpc::CallbackServerContext* ctx, const v1::ReportTelemetryRequest* req,
      v1::ReportTelemetryResponse* resp) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    Principal principal;
    grpc::Status s = c_.Check(ctx, kFleetRoles, "ReportTelemetry", &principal);
    if (!s.ok()) {
      reactor->Finish(s);
      return reactor;
    }
    c_.ingestor->Ingest(req->events(), [reactor, req, resp](grpc::Status s) {
      if (s.ok()) {
        resp->set_accepted_events(static_cast<uint32_t>(req->events_size()));
      }
      reactor->Finish(s);
    });
    return reactor;
  }

  grpc::ServerReadReactor<v1::TelemetryBatch>* StreamTelemetry(
      grpc::CallbackServerContext* ctx,
      v1::StreamTelemetryResponse* resp) override {
    Principal principal;
    grpc::Status s = c_.Check(ctx, kFleetRoles, "StreamTelemetry", &principal);
    if (!s.ok()) return new FailedReadReactor(s);
    return new TelemetryStreamReactor(c_.ingestor, c_.streams, resp);
  }

 private:
  const Context c_;
};

}  // namespace

struct Server::Services {
  std::optional<TokenAuthenticator> auth;
  std::atomic<bool> shutting_down{false};
  std::unique_ptr<Ingestor> ingestor;
  ReusedMessages<v1::ReportTelemetryRequest, v1::ReportTelemetryResponse>
      telemetry_messages{&ReusableTelemetry};
  ReusedMessages<v1::GetAssignmentRequest, v1::GetAssignmentResponse>
      assignment_messages{&ReusableAssignment};
  TelemetryStreams streams;
  std::unique_ptr<ReleaseChecker> release_checker;
  std::atomic<int> validations{0};
  std::unique_ptr<ReleasesService> releases;
  std::unique_ptr<RolloutsService> rollouts;
  std::unique_ptr<FleetService> fleet;
};

absl::StatusOr<std::unique_ptr<Server>> Server::Start(Controller* controller,
                                                      ServerOptions options) {
  if (options.max_streams_per_connection <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_streams_per_connection: must be > 0 (got ",
                     options.max_streams_per_connection, ")"));
  }
  if (options.max_batch_events == 0 ||
      options.max_inflight_events < options.max_batch_events) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_inflight_events (", options.max_inflight_events,
        ") must be at least max_batch_events (", options.max_batch_events,
        "), which must be > 0: else a full batch could never be admitted"));
  }
  std::unique_ptr<Server> server(new Server());
  server->controller_ = controller;
  server->services_ = std::make_unique<Services>();
  Services& svc = *server->services_;
  svc.auth = std::move(options.auth);
  svc.ingestor = std::make_unique<Ingestor>(
      controller, options.max_batch_events, options.max_inflight_events,
      options.testing_ingest_delay);
  svc.release_checker = std::move(options.release_checker);
  if (svc.release_checker == nullptr) {
    absl::StatusOr<std::unique_ptr<ReleaseChecker>> checker =
        ReleaseChecker::Create({});
    if (!checker.ok()) return checker.status();
    svc.release_checker = *std::move(checker);
  }
  const Context ctx{
      controller,         &svc.auth,
      &svc.shutting_down, svc.ingestor.get(),
      &svc.streams,       svc.release_checker.get(),
      &svc.validations,   std::max(1, options.max_concurrent_validations)};
  svc.releases = std::make_unique<ReleasesService>(ctx);
  svc.rollouts = std::make_unique<RolloutsService>(ctx);
  svc.fleet = std::make_unique<FleetService>(ctx);
  svc.fleet->SetMessageAllocatorFor_ReportTelemetry(&svc.telemetry_messages);
  svc.fleet->SetMessageAllocatorFor_GetAssignment(&svc.assignment_messages);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Refuse to share the port with another process (the default allows it).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen, ServerCredentials(options.tls),
                           &server->port_);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             options.max_streams_per_connection);
  builder.RegisterService(svc.releases.get());
  builder.RegisterService(svc.rollouts.get());
  builder.RegisterService(svc.fleet.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on \"", options.listen,
                     "\" (address in use, not host:port, or TLS material "
                     "refused?)"));
  }
  server->health_ = server->server_->GetHealthCheckService();
  if (server->health_ != nullptr) {
    for (const char* service :
         {v1::Releases::service_full_name(), v1::Rollouts::service_full_name(),
          v1::Fleet::service_full_name()}) {
      server->health_->SetServingStatus(service, true);
    }
    server->UpdateHealth();
  }
  return server;
}

bool Server::UpdateHealth() {
  const bool healthy = controller_->store_healthy();
  if (health_ != nullptr) {
    // Agents fail over; reads and operator actions stay available.
    health_->SetServingStatus(v1::Fleet::service_full_name(), healthy);
  }
  return healthy;
}

Server::~Server() {
  if (!shut_down_ && server_ != nullptr) Shutdown(absl::ZeroDuration());
}

void Server::Shutdown(absl::Duration grace) {
  if (shut_down_ || server_ == nullptr) return;
  shut_down_ = true;
  services_->shutting_down.store(true, std::memory_order_release);
  if (health_ != nullptr) health_->Shutdown();
  services_->streams.EndAll();
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(grace));
  server_->Wait();
}

}  // namespace ringfence
