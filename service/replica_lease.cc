#include "service/replica_lease.h"

#include <algorithm>
#include <climits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ringfence/error_text.h"

namespace ringfence {

ReplicaLease::ReplicaLease(PostgresStore* store, ReplicaLeaseOptions options)
    : store_(store),
      options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &MonotonicClock()) {}

absl::StatusOr<PostgresLease> ReplicaLease::Acquire() {
  const absl::Time start = clock_->Now();
  absl::StatusOr<PostgresLease> lease =
      store_->AcquireLease(options_.replica_id, options_.ttl);
  if (lease.ok() && lease->held) {
    // The database counted the TTL from an instant after `start`; allow for
    // its clock running a little slower than this one.
    const absl::Duration lasts =
        std::min(lease->remaining, options_.ttl) - options_.ttl / 20;
    renewed_at_ns_.store(absl::ToUnixNanos(start), std::memory_order_relaxed);
    held_until_ns_.store(absl::ToUnixNanos(start + lasts),
                         std::memory_order_release);
  }
  return lease;
}

absl::Status ReplicaLease::CheckHeld() const {
  const int64_t until_ns = held_until_ns_.load(std::memory_order_acquire);
  if (until_ns == INT64_MIN) {
    return absl::UnavailableError("this replica does not hold the lease");
  }
  const absl::Time now = clock_->Now();
  const absl::Time until = absl::FromUnixNanos(until_ns);
  if (now < until) return absl::OkStatus();
  const absl::Time renewed =
      absl::FromUnixNanos(renewed_at_ns_.load(std::memory_order_relaxed));
  return absl::UnavailableError(absl::StrCat(
      "this replica may no longer lead: its lease was last renewed ",
      absl::FormatDuration(absl::Trunc(now - renewed, absl::Milliseconds(1))),
      " ago and may have expired ",
      absl::FormatDuration(absl::Trunc(now - until, absl::Milliseconds(1))),
      " ago (PostgreSQL unreachable, or this process paused?); it answers "
      "again once it renews the lease, or another replica leads"));
}

ReplicaLease::~ReplicaLease() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (renewer_.joinable()) renewer_.join();
}

absl::Status ReplicaLease::Release() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (renewer_.joinable()) renewer_.join();
  held_until_ns_.store(INT64_MIN, std::memory_order_release);
  absl::Status s = store_->ReleaseLease();
  // The row now says standby (the lease expired), not leader.
  if (s.ok()) Record();
  return s;
}

void ReplicaLease::Log(const std::string& message) {
  if (message == last_logged_) return;
  last_logged_ = message;
  if (options_.log) options_.log(message);
}

void ReplicaLease::Record() {
  const absl::Status s =
      store_->RecordReplica(options_.replica_id, options_.address);
  std::string error = s.ok() ? "" : s.ToString();
  if (!error.empty() && error != last_record_error_ && options_.log) {
    options_.log(
        absl::StrCat("cannot record this replica for cluster status: ", error));
  }
  last_record_error_ = std::move(error);
}

std::optional<std::string> ReplicaLease::DuplicateHolder() {
  if (options_.address.empty()) return std::nullopt;
  absl::StatusOr<ClusterView> cluster = store_->ReadCluster();
  if (!cluster.ok() || cluster->holder != options_.replica_id ||
      cluster->expires_in <= absl::ZeroDuration()) {
    return std::nullopt;
  }
  for (const ReplicaRecord& r : cluster->replicas) {
    if (r.replica_id != options_.replica_id) continue;
    if (r.address.empty() || r.address == options_.address) break;
    return absl::StrCat(
        "another process holds the lease under this replica's id ",
        QuoteForError(options_.replica_id), " (advertising ",
        QuoteForError(r.address), ", not ", QuoteForError(options_.address),
        "; lease epoch ", cluster->epoch,
        "): is --replica_id duplicated? Standing by until its lease "
        "expires");
  }
  return std::nullopt;
}

absl::StatusOr<int64_t> ReplicaLease::WaitUntilLeading(
    const std::function<bool(absl::Duration)>& wait,
    const std::function<void(const std::string&)>& standing_by) {
  while (true) {
    // A live holder under this id but at another address is another
    // process, not an earlier run of this one: taking over at once would
    // fence a healthy leader (and recording this replica would overwrite
    // its row).
    if (std::optional<std::string> duplicate = DuplicateHolder();
        duplicate.has_value()) {
      Log(*duplicate);
      standing_by(*duplicate);
      if (wait(options_.interval)) {
        return absl::CancelledError("stopped while standing by");
      }
      continue;
    }
    absl::StatusOr<PostgresLease> lease = Acquire();
    if (absl::IsFailedPrecondition(lease.status())) return lease.status();
    Record();
    if (lease.ok() && lease->held) {
      last_logged_.clear();
      return lease->epoch;
    }
    std::string leader;
    if (!lease.ok()) {
      leader =
          absl::StrCat("the lease cannot be read: ", lease.status().ToString());
    } else if (lease->holder.empty()) {
      leader = "no replica leads yet";
    } else {
      leader = absl::StrCat("replica ", QuoteForError(lease->holder),
                            " leads (lease epoch ", lease->epoch, ")");
    }
    Log(absl::StrCat("standing by: ", leader));
    standing_by(leader);
    if (wait(options_.interval)) {
      return absl::CancelledError("stopped while standing by");
    }
  }
}

void ReplicaLease::StartRenewing() {
  renewer_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.interval)) {
      absl::StatusOr<PostgresLease> lease = Acquire();
      if (absl::IsFailedPrecondition(lease.status())) {
        // Superseded: the store told its owner; nothing more to renew.
        held_until_ns_.store(INT64_MIN, std::memory_order_release);
        return;
      }
      Record();
      if (!lease.ok()) {
        Log(absl::StrCat("cannot renew the lease: ", lease.status().ToString(),
                         " (once it expires another replica may take over; "
                         "this one's writes are then refused)"));
      } else if (!lease->held) {
        // Expired and taken over; the store's next write finds out.
        held_until_ns_.store(INT64_MIN, std::memory_order_release);
        Log(absl::StrCat("lost the lease: replica ",
                         QuoteForError(lease->holder), " leads (lease epoch ",
                         lease->epoch, ")"));
      } else if (!last_logged_.empty()) {
        Log("lease renewed again");
        last_logged_.clear();
      }
    }
  });
}

}  // namespace ringfence
