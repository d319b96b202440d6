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

}  // namespace ringfence::agent
