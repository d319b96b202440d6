// A pool of the request and response messages of one method, reused across
// calls (a grpc::MessageAllocator). After its call a message is cleared, not
// freed, and keeps its allocations (the objects of repeated fields and the
// strings' buffers), so parsing the next request into it and filling the
// next response allocate almost nothing. For ReportTelemetry, a fresh heap
// message per call costs about twice the parse (a heap allocation per event,
// string and timestamp, and as many frees). The messages live on an arena,
// where Clear() leaves singular submessages (the events' timestamps) to the
// arena instead of freeing them; the arena is reset once it holds more than
// kMaxArenaBytes.
//
// Bounded: at most kMaxIdle holders wait in the pool, and a holder goes back
// only if `reusable(request, response)` says its messages are of a size a
// valid call has (strings and repeated fields bounded), so the pool never
// keeps the memory of an oversized request.
//
// Example:
//   ReusedMessages<v1::GetAssignmentRequest, v1::GetAssignmentResponse>
//       pool{&ReusableAssignment};
//   service.SetMessageAllocatorFor_GetAssignment(&pool);
//
// Thread safety: thread-safe. Must outlive the grpc::Server using it.
#pragma once

#include <grpcpp/support/message_allocator.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/arena.h"

namespace ringfence {

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

}  // namespace ringfence
