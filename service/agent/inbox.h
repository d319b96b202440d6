// The report inbox of ringfence-agent: how a vendor's crash handler or
// watchdog tells the running agent about a CRASH or a failure SIGNAL.
//
// `ringfence-agent report` writes one small file per report into
// `<state_dir>/inbox/` (written whole, fsync'd, then renamed into place, so
// the agent never reads half a report); the agent moves each into its spool
// with Agent::Report and then deletes it. A report queued while the agent is
// not running is sent after its next start. Delivery is at least once: an
// agent killed between the append and the delete appends the report again
// on its next start (the server counts per-host signals once per host).
//
// Thread safety: free functions; one agent drains a state directory.
// InboxWatch is used from one thread.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ringfence/agent.h"

namespace ringfence::agent {

// QueueReport
//
// Writes a report of `type` (EventType::kCrash with an optional signature,
// or EventType::kSignal with a name) to the inbox of `state_dir`, durably.
// Errors: INVALID_ARGUMENT as Agent::ValidateReport; INTERNAL naming the
// file for I/O errors.
absl::Status QueueReport(const std::string& state_dir, EventType type,
                         absl::string_view signal);

// DrainInbox
//
// Moves every queued report, oldest first, into `agent` (Agent::Report) and
// deletes its file. A report the agent refuses as invalid is deleted
// and counted in `*rejected`. Returns the number moved; stops at the first
// I/O or spool error (the rest stay queued).
absl::StatusOr<int> DrainInbox(const std::string& state_dir, Agent* agent,
                               int* rejected);

// InboxWatch
//
// Tells the agent's loop when reports may have arrived, so that it sleeps
// until then or its next tick instead of waking every second to look. It
// watches `<state_dir>/inbox/` (created if missing) with inotify; a report
// renamed into place makes fd() readable. Where inotify is unavailable, or
// the watch cannot be set, watching() is false and the caller looks at the
// inbox on a timer instead.
//
// Example:
//   InboxWatch inbox(state_dir);
//   DrainInbox(state_dir, agent, &rejected);  // what came before the watch
//   poll({inbox.fd(), POLLIN}, ...);  // readable: reports may be there
//   inbox.Consume();
//   DrainInbox(state_dir, agent, &rejected);
class InboxWatch {
 public:
  explicit InboxWatch(const std::string& state_dir);
  ~InboxWatch();
  InboxWatch(const InboxWatch&) = delete;
  InboxWatch& operator=(const InboxWatch&) = delete;

  // Readable when the inbox changed; -1 when not watching.
  int fd() const { return watching() ? fd_ : -1; }
  bool watching() const { return fd_ >= 0 && wd_ >= 0; }

  // Reads the pending notifications without blocking (the caller then
  // drains the inbox); sets the watch again if the directory was removed
  // or moved, or tries to set it if it is not watching.
  void Consume();

 private:
  void AddWatch();

  const std::string dir_;
  int fd_ = -1;
  int wd_ = -1;
};

}  // namespace ringfence::agent
