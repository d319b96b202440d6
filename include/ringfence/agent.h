// The host agent's core: the state machine that fetches, verifies, loads and
// reports one content type's releases on one host, with a durable telemetry
// spool and a boot-loop guard. No gRPC and no real I/O policy: it is driven
// through interfaces (AgentFileSystem, AgentTransport, ContentHooks, Clock)
// so that tests run hours of simulated time, with crashes at every durable
// step, in milliseconds. docs/agent.md describes the protocol.
//
// Use:
//
//   auto agent = Agent::Start(options, &fs, &clock, &transport, &hooks);
//   while (running) {                    // the caller owns the loop
//     sleep_until(agent->NextWakeup());
//     agent->Tick().IgnoreError();       // errors are also in GetStatus()
//   }
//
// Every process start of the agent is a "boot" (Start counts them durably).
//
// Thread safety: an Agent is used from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ringfence/agent_fs.h"
#include "ringfence/clock.h"
#include "ringfence/model.h"
#include "ringfence/signing.h"
#include "ringfence/telemetry.h"

namespace ringfence {

// ---- Telemetry spool
// ---------------------------------------------------------

// SpooledEvent
//
// One telemetry event in the spool.
struct SpooledEvent {
  // Position in the spool: 1, 2, 3, ... (never reused, even after a crash).
  uint64_t seq = 0;
  // Deterministic id, "<host>/<release or ->/<boot>/<step>" (see Agent):
  // a re-send after a crash carries the same id and the same event.
  std::string event_id;
  TelemetryEvent event;
  // local_fallback signals: the boot count that triggered the fallback
  // (the ringfence.v1 wire event has no field for it yet); BOOT events:
  // boots since the release began applying, also in
  // event.boots_since_apply (what the server counts); 0 otherwise.
  uint32_t boot_count = 0;
};

struct SpoolOptions {
  // Cap on the spool's bytes on disk. When an append would exceed it, the
  // oldest segment is dropped, acknowledged or not (a last resort), and its
  // unacknowledged events are counted in dropped_events(). At least
  // 2 * segment_bytes.
  size_t max_bytes = 4 << 20;
  // Segment files are rotated at this size.
  size_t segment_bytes = 64 << 10;
};

// EventSpool
//
// A bounded append log of telemetry events in a directory of segment files
// `seg-<first seq, 20 digits>.log`. Each record is
//
//   u32 length (LE) | u32 CRC32C of the payload (LE) | payload
//
// and the payload is: u64 seq | u8 type | i64 time (Unix ns) | u8 clean |
// u64 boot_id | u32 boot_count | then four strings, each u32 length +
// bytes: event_id, host_id, release_id, signal (all integers LE). Recovery
// reads each segment up to its first record that is torn, too long or fails
// its CRC and ignores the rest; appends then go to a new segment, so
// garbage never precedes a good record.
//
// The file `cursor` is the acknowledgement cursor: every record with
// seq <= acked was delivered; segments wholly at or below it are removed.
// It holds two 32-byte slots, at byte 0 and byte 4096 (different pages and
// sectors, so a torn write of one cannot touch the other), each
//
//   u64 generation | u64 acked | u64 dropped events | u32 CRC32C of the
//   24 bytes before it | u32 zero        (all LE)
//
// written in place in turn (generation g to slot (g - 1) % 2, then
// fdatasync): one write and one flush per acknowledgement, no rename and no
// directory fsync. Recovery takes the valid slot of the highest generation;
// a crash during a write tears only the slot being written, so the other
// still holds the previous cursor. No valid slot in a file too short to
// hold the second one is a first write that never completed (no cursor);
// both slots present and neither valid is DATA_LOSS. A spool written before
// this format (`ack`, "<acked seq> <dropped events>\n", written atomically)
// is read when `cursor` has no valid slot, and `ack` is removed once the
// first cursor is written.
struct SpoolCursor {
  uint64_t acked = 0;
  uint64_t dropped = 0;
};

class EventSpool {
 public:
  // Open
  //
  // Recovers the spool in `dir` (creating it). Errors are the file system's.
  static absl::StatusOr<std::unique_ptr<EventSpool>> Open(
      AgentFileSystem* fs, const std::string& dir, SpoolOptions options = {});

  // Append
  //
  // Appends `event` durably; returns its seq. On error the event may or may
  // not be in the spool (a crash), and later appends go to a new segment.
  // INVALID_ARGUMENT if the record exceeds 64 KiB.
  absl::StatusOr<uint64_t> Append(const std::string& event_id,
                                  const TelemetryEvent& event,
                                  uint32_t boot_count = 0);

  // Pending
  //
  // Up to `max` unacknowledged events, oldest first.
  std::vector<SpooledEvent> Pending(size_t max) const;
  size_t pending_count() const { return pending_.size(); }

  // Ack
  //
  // Durably records that every event with seq <= `seq` was delivered, then
  // removes the segments that holds only such events.
  absl::Status Ack(uint64_t seq);

  // Unacknowledged events dropped by the size cap, ever (durable).
  uint64_t dropped_events() const { return dropped_; }
  uint64_t acked_seq() const { return acked_; }
  size_t bytes() const;

  // ReadAll
  //
  // Every intact record in `dir` (acknowledged or not), in seq order, as
  // recovery sees them; for tests and diagnostics.
  static absl::StatusOr<std::vector<SpooledEvent>> ReadAll(
      AgentFileSystem* fs, const std::string& dir);

  // ReadCursor
  //
  // The acknowledgement cursor in `dir` as recovery reads it (zeros if there
  // is none); for tests and diagnostics. DATA_LOSS as Open.
  static absl::StatusOr<SpoolCursor> ReadCursor(AgentFileSystem* fs,
                                                const std::string& dir);

 private:
  struct Segment {
    std::string name;
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;  // 0 if empty
    size_t bytes = 0;
  };
  EventSpool(AgentFileSystem* fs, std::string dir, SpoolOptions options)
      : fs_(fs), dir_(std::move(dir)), options_(options) {}
  absl::Status Recover();
  absl::Status WriteCursor(uint64_t acked, uint64_t dropped);
  absl::Status DropOldest();
  absl::Status RemoveAckedSegments();

  AgentFileSystem* fs_;
  std::string dir_;
  SpoolOptions options_;
  std::deque<Segment> segments_;
  // The last segment accepts appends (false after a torn tail or a failed
  // append).
  bool tail_open_ = false;
  uint64_t next_seq_ = 1;
  uint64_t acked_ = 0;
  uint64_t dropped_ = 0;
  // The generation of the cursor slot last written (0: none yet).
  uint64_t cursor_generation_ = 0;
  // A pre-`cursor` `ack` file is on disk (removed after the first write).
  bool legacy_ack_ = false;
  std::deque<SpooledEvent> pending_;
};

// ---- Interfaces
// ----------------------------------------------------------------

// What the agent asks for (mirrors ringfence.v1 GetAssignmentRequest, for
// one content type).
struct AgentIdentity {
  std::string host_id;
  std::string tenant;
  std::vector<std::string> labels;
  std::string agent_version;
  std::string platform;
  std::string content_type;
};

// AssignmentAnswer
//
// The server's answer for the content type (mirrors ringfence.v1
// ContentAssignment): `release` holds id, content_type, version,
// digest_sha256, size_bytes, fetch_url, signature and targeting.
struct AssignmentAnswer {
  // False: "no release known: keep what you run" (also what a server that
  // fails closed answers).
  bool has_release = false;
  Release release;
  // Stop running and remove the content type (has_release is false).
  bool unload = false;
};

// AgentTransport
//
// The agent's link to ringfenced (a gRPC implementation is not part of the
// library).
class AgentTransport {
 public:
  virtual ~AgentTransport() = default;

  // GetAssignment
  //
  // The server's answer for `identity`, whose spool holds
  // `telemetry_pending` events not yet delivered (GetAssignmentRequest's
  // field of that name). Any error means "no answer": the agent keeps
  // running what it runs.
  virtual absl::StatusOr<AssignmentAnswer> GetAssignment(
      const AgentIdentity& identity, uint64_t telemetry_pending) = 0;

  // ReportTelemetry
  //
  // Delivers `batch` (oldest first). OK means every event was accepted.
  // On error the agent re-sends the same events later; the transport may set
  // `*retry_after` (initially zero) to the server's hint, which the agent
  // waits at least.
  virtual absl::Status ReportTelemetry(absl::Span<const SpooledEvent> batch,
                                       absl::Duration* retry_after) = 0;
};

// ContentHooks
//
// The vendor's side: how a release's payload is fetched and loaded.
class ContentHooks {
 public:
  virtual ~ContentHooks() = default;

  // Fetch
  //
  // The payload bytes of `release` (e.g. downloaded from
  // release.fetch_url()). The agent verifies them before anything else.
  virtual absl::StatusOr<std::string> Fetch(const Release& release) = 0;

  // Load
  //
  // Loads `release`, whose verified payload is the file `payload_path` in
  // the agent's state directory (read it through the same AgentFileSystem),
  // replacing whatever of the content type was loaded. May crash the host.
  virtual absl::Status Load(const Release& release,
                            const std::string& payload_path) = 0;

  // Unload
  //
  // Stops running any release of the content type.
  virtual absl::Status Unload() = 0;
};

// PayloadFileName
//
// The name of a release's verified payload in the agent's content store
// (`<state_dir>/content/`): the first 32 hex digits of the SHA-256 of the
// release id, then ".payload" (ids may contain "/" and "..").
std::string PayloadFileName(absl::string_view release_id);

// ---- The agent
// -------------------------------------------------------------------

struct AgentOptions {
  AgentIdentity identity;
  // Where the agent keeps its state, content store and spool.
  std::string state_dir;
  // Publisher keys (key id -> Ed25519 public key PEM); see signing.h.
  TrustedKeys trusted_keys;
  // Refuse unsigned releases.
  bool require_signature = true;
  // GetAssignment every poll_interval, each wait drawn uniformly from
  // [1 - poll_jitter, 1 + poll_jitter] times it.
  absl::Duration poll_interval = absl::Seconds(60);
  double poll_jitter = 0.2;
  // A HEARTBEAT every heartbeat_interval; content is healthy once it loaded
  // and one interval later the agent is still alive.
  absl::Duration heartbeat_interval = absl::Seconds(60);
  // Polls and heartbeats share wakeups: a heartbeat due within this long
  // after a poll goes out with the poll, and a poll due within this long
  // after a heartbeat is made with it (over one connection: one wakeup,
  // one connection and, over TLS, one handshake per interval instead of
  // two). Either may come up to this much early, never late. At most a
  // quarter of the shorter interval is used; 0: never. Not while a loaded
  // release awaits its health (no poll then).
  absl::Duration heartbeat_with_poll = absl::Seconds(15);
  // Boot-loop guard: on the boot_loop_limit-th boot that finds a release
  // still loading and not healthy (within boot_loop_window of the first),
  // the agent falls back instead of loading it.
  int boot_loop_limit = 3;
  absl::Duration boot_loop_window = absl::Hours(1);
  SpoolOptions spool;
  // At most this many events per ReportTelemetry call.
  size_t max_batch_events = 500;
  // Failed sends back off exponentially from send_backoff_initial to
  // send_backoff_max, each wait times a uniform factor in [0.5, 1.5]; a
  // successful poll ends the wait (the server is back), except a retry hint
  // the server gave.
  absl::Duration send_backoff_initial = absl::Seconds(1);
  absl::Duration send_backoff_max = absl::Minutes(5);
  // Seeds the jitter.
  uint64_t seed = 0;
};

struct AgentStatus {
  // This boot (1 for the first start on a state directory).
  uint64_t boot = 0;
  // The release loaded (empty: none).
  std::string running;
  // The last release that came up healthy (the fallback).
  std::string last_good;
  // The release being loaded and not yet healthy (empty: none), and how many
  // boots found it so.
  std::string applying;
  int applying_boots = 0;
  // A release this host refuses until the server assigns another one.
  std::string quarantined;
  // The last answer on disk: a release id, "unload", or empty.
  std::string assigned;
  size_t spool_pending = 0;
  uint64_t spool_dropped = 0;
  // The last error of a Tick or a step (OK if none) and when it happened
  // (the Clock's time; InfinitePast if none). It stays after the agent
  // recovers: compare it with last_contact.
  absl::Status last_error;
  absl::Time last_error_at = absl::InfinitePast();
  // When the server last answered a poll or took a telemetry batch
  // (InfinitePast: not since this boot).
  absl::Time last_contact = absl::InfinitePast();
};

// Agent
//
// Durable steps of an apply of release R (each completes before the next):
//   1. the verified payload is written to the content store
//      (PayloadFileName);
//   2. the state file records the applying marker for R (R becomes current);
//   3. an APPLYING event for R is appended to the spool;
//   -- Load(R) --
//   4. an APPLIED event is appended;
//   -- a heartbeat interval later --
//   5. a HEARTBEAT event is appended, then the state records R as last good
//      and drops the marker (R is healthy).
// Event ids are "<host>/<release or ->/<boot>/<step>" with steps
// "applying-<n>" and "applied-<n>" (the n-th load of this boot),
// "heartbeat-<n>", "refused", "local_fallback" (the boot that fell back),
// "dropped-<total>".
class Agent {
 public:
  // Start
  //
  // One boot: recovers the state and the spool, counts the boot durably,
  // runs the boot-loop guard and loads the current content (or falls back).
  // The pointers must outlive the agent. Errors: INVALID_ARGUMENT for bad
  // options (naming the field; trusted keys as ValidateTrustedKeys), the file
  // system's errors, DATA_LOSS for a malformed state or ack file (the agent
  // did not start). A failure to load content is not an error of Start: it
  // is in GetStatus().last_error and retried by Tick.
  static absl::StatusOr<std::unique_ptr<Agent>> Start(
      const AgentOptions& options, AgentFileSystem* fs, const Clock* clock,
      AgentTransport* transport, ContentHooks* hooks);

  // Tick
  //
  // Does what is due: heartbeat and health, assignment poll and apply,
  // telemetry send. Returns the first error (also kept in
  // GetStatus().last_error); call again later either way.
  absl::Status Tick();

  // NextWakeup
  //
  // When Tick next has something to do.
  absl::Time NextWakeup() const;

  // Stop
  //
  // Records, durably, that this run ends cleanly (SIGTERM, a shutdown).
  // The next Start of a run that did not Stop reports a BOOT with clean =
  // false (the gate's `unclean_reboot`): the agent or the host died. Call
  // it last; the agent must not be ticked afterwards. File system errors.
  absl::Status Stop();

  // Report
  //
  // Appends an event the host observed to the spool (sent with the next
  // batch, kept across crashes like every other event), for the release
  // running now (or none):
  //   - EventType::kCrash: the content's consumer crashed; `signal` is an
  //     optional crash signature (at most 256 characters).
  //   - EventType::kSignal: a named failure signal the plan's rules may
  //     watch; `signal` is its name, [a-z0-9_]{1,64}.
  // Event ids are "<host>/<release or ->/<boot>/report-<n>". Errors:
  // INVALID_ARGUMENT (another type, a bad name or signature, naming the
  // field), the file system's errors (nothing was appended).
  absl::Status Report(EventType type, absl::string_view signal);

  // ValidateReport
  //
  // What Report checks before it appends anything (for tools that queue a
  // report for a running agent): INVALID_ARGUMENT naming the field, or OK.
  static absl::Status ValidateReport(EventType type, absl::string_view signal);

  AgentStatus GetStatus() const;

  // Implementation detail, public for the state file's codec.
  struct State;
  ~Agent();

 private:
  Agent(const AgentOptions& options, AgentFileSystem* fs, const Clock* clock,
        AgentTransport* transport, ContentHooks* hooks);
  absl::Status Boot();
  absl::Status SaveState();
  absl::Status Spool(EventType type, const std::string& release_id,
                     const std::string& step, const std::string& signal = "",
                     uint32_t boot_count = 0, bool clean = true);
  absl::StatusOr<std::string> EnsurePayload(const Release& release,
                                            bool* rejected);
  absl::Status LoadCurrent();
  absl::Status Reconcile();
  absl::Status Verify(const Release& release, absl::string_view payload);
  absl::Status LoadMarked(const Release& release);
  absl::Status FallBack();
  absl::Status ApplyAssigned(const Release& release);
  absl::Status DoUnload();
  absl::Status Poll();
  absl::Status SendDue();
  absl::Status HeartbeatDue();
  // Loaded in this boot and not yet healthy (the applying marker is set).
  bool AwaitingHealth() const;
  std::string PayloadPath(const std::string& release_id) const;
  absl::Duration Jitter(absl::Duration d, double lo, double hi);
  void Note(const absl::Status& s);

  AgentOptions options_;
  AgentFileSystem* fs_;
  const Clock* clock_;
  AgentTransport* transport_;
  ContentHooks* hooks_;
  std::unique_ptr<State> state_;
  std::unique_ptr<EventSpool> spool_;
  std::mt19937_64 rng_;
  // Whether the current content is loaded in this boot, and since when
  // (health is judged one heartbeat interval later).
  bool loaded_ = false;
  absl::Time loaded_at_ = absl::InfinitePast();
  uint64_t heartbeats_ = 0;
  uint64_t loads_ = 0;
  uint64_t reports_ = 0;
  uint64_t dropped_reported_ = 0;
  absl::Time next_heartbeat_;
  absl::Time next_poll_;
  absl::Time next_send_;
  // Until when the server asked not to send (its last retry hint).
  absl::Time send_hint_until_ = absl::InfinitePast();
  absl::Time next_apply_ = absl::InfinitePast();
  int send_failures_ = 0;
  std::set<std::string> refused_this_boot_;
  absl::Status last_error_;
  absl::Time last_error_at_ = absl::InfinitePast();
  absl::Time last_contact_ = absl::InfinitePast();
};

}  // namespace ringfence
