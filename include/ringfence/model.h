// The ringfence data model: releases, plans, stages, gate policies (protobuf
// messages from ringfence/config/v1/config.proto), rollout state and decisions
// (state.proto), and their validation.
//
// Validation happens before anything starts and names the exact field and the
// reason, e.g. `stages[2].audience.percent: must be greater than
// stages[1].audience.percent (10)`; errors are INVALID_ARGUMENT.
//
// Thread safety: all functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "ringfence/config/v1/config.pb.h"
#include "ringfence/config/v1/state.pb.h"

namespace ringfence {

using config::v1::Arm;
using config::v1::ArmCounts;
using config::v1::Audience;
using config::v1::AuditEntry;
using config::v1::Decision;
using config::v1::Evidence;
using config::v1::FleetConfig;
using config::v1::GatePolicy;
using config::v1::LateTrack;
using config::v1::Pacing;
using config::v1::Plan;
using config::v1::Release;
using config::v1::Rollout;
using config::v1::RolloutState;
using config::v1::SignalRule;
using config::v1::SignalSummary;
using config::v1::Stage;
using config::v1::Targeting;
using config::v1::Tenant;
using config::v1::Track;
using config::v1::Verdict;

// Built-in signal names.
inline constexpr absl::string_view kSignalCrash = "crash";
inline constexpr absl::string_view kSignalUncleanReboot = "unclean_reboot";
inline constexpr absl::string_view kSignalSilent = "silent";
inline constexpr absl::string_view kSignalApplyStuck = "apply_stuck";
// Reported by a host's boot-loop guard after it fell back to the last known
// good content on its own (a kSignal event naming the release it dropped).
inline constexpr absl::string_view kSignalLocalFallback = "local_fallback";

// Maximum number of distinct signals one rollout tracks: the five built-in
// ones and up to three vendor-defined ones.
inline constexpr int kMaxSignals = 8;

// ---- Loading ---------------------------------------------------------------

// ParseTextOrJson
//
// Parses `text` into `message`: JSON if its first non-space character is '{',
// text-proto otherwise. Errors are INVALID_ARGUMENT with the parser's message
// (with line and column for text-proto; protobuf 3.21's JSON parser gives an
// excerpt instead).
absl::Status ParseTextOrJson(absl::string_view text,
                             google::protobuf::Message* message);

// ReadFileToString
//
// The whole contents of the file at `path`. NOT_FOUND ("<path>: cannot
// open") if it cannot be opened, INTERNAL if reading it fails.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// WriteFileAtomically
//
// Replaces the file at `path` with `contents` through a temporary file
// (created with `mode`), fsync and rename: a reader sees the old file or the
// new one, never a mix. INTERNAL naming the file if it fails (the old file
// stays).
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents, int mode = 0644);

// LoadMessageFile
//
// Reads a text-proto (.textproto, .txtpb, .pbtxt) or JSON (.json) file into
// `message`. NOT_FOUND if the file cannot be read.
absl::Status LoadMessageFile(const std::string& path,
                             google::protobuf::Message* message);

// ResolvePath
//
// A path named inside the configuration file `config_file`: as is if
// absolute, else relative to that file's directory.
std::string ResolvePath(const std::string& config_file,
                        const std::string& path);

// ---- Bounds ----------------------------------------------------------------
//
// Every string and repeated field of a release and a plan is bounded, so
// that one record stays small whatever a caller sends: a release is at most
// about 8 KiB, a plan at most kMaxPlanBytes. ValidateRelease and
// ValidatePlan refuse what goes over, naming the field; nothing is cut.
// Ids (ValidateId) are at most 128 characters, signal names 64, agent
// versions 64.

// Release.version: at most this many bytes.
inline constexpr size_t kMaxVersionBytes = 128;
// Release.fetch_url: at most this many bytes, no control characters.
inline constexpr size_t kMaxFetchUrlBytes = 2048;
// Release.signature: at most this many bytes (a ReleaseSignature is about
// 200).
inline constexpr size_t kMaxSignatureBytes = 1024;
// Release.size_bytes: at most 1 TiB.
inline constexpr uint64_t kMaxReleaseSizeBytes = uint64_t{1} << 40;
// Release.targeting.platforms: at most this many.
inline constexpr int kMaxPlatforms = 32;
// Plan.stages: at most this many.
inline constexpr int kMaxStages = 64;
// Audience.labels of one stage: at most this many.
inline constexpr int kMaxAudienceLabels = 64;
// Audience.hosts of all stages of a plan together: at most this many.
inline constexpr int kMaxPlanHosts = 1000;
// A whole plan, serialized: at most this many bytes (the bounds of its
// fields would allow about 1.3 MiB; real plans are a few KiB), so that a
// rollout record, which holds its plan, stays small.
inline constexpr size_t kMaxPlanBytes = 256 << 10;
// Free text recorded in the audit log (a call's reason, a rule's
// disabled_reason): at most this many bytes.
inline constexpr size_t kMaxReasonBytes = 1024;

// ---- Validation ------------------------------------------------------------

// ValidatePlan
//
// Checks every field of `plan`, and the effective policy of every stage
// (policy.h ValidateEffectivePolicies); the error names the first offending
// field.
absl::Status ValidatePlan(const Plan& plan);

// ValidateRelease
//
// Checks every field of `release` (id, content type, version, digest, size,
// signature size, fetch URL, targeting, created_at) against the bounds
// above.
absl::Status ValidateRelease(const Release& release);

// ValidateFleetConfig
//
// Checks tenant names are non-empty and unique.
absl::Status ValidateFleetConfig(const FleetConfig& fleet);

// ValidateId
//
// Ids (release, rollout, host, actor) are 1..128 characters of
// [A-Za-z0-9._:/@-]. `field` names the field in the error.
absl::Status ValidateId(absl::string_view id, absl::string_view field);

// ValidateRequiredText
//
// INVALID_ARGUMENT naming `field` unless `value` (a reason) is 1 to
// kMaxReasonBytes bytes.
absl::Status ValidateRequiredText(absl::string_view value,
                                  absl::string_view field);

// IsValidId
//
// ValidateId(id, ...).ok() without building an error (for hot paths).
bool IsValidId(absl::string_view id);

// ValidateSignalName / IsValidSignalName
//
// Signal names are 1..64 characters of [a-z0-9_]. `field` names the field
// in the error.
absl::Status ValidateSignalName(absl::string_view name,
                                absl::string_view field);
bool IsValidSignalName(absl::string_view name);

// ValidateTimestamp / IsValidTimestamp
//
// A google.protobuf.Timestamp in its documented range: 0001-01-01T00:00:00Z
// to 9999-12-31T23:59:59.999999999Z, nanos in [0, 999999999] (what its JSON
// form can express). `field` names the field in the error.
absl::Status ValidateTimestamp(const google::protobuf::Timestamp& t,
                               absl::string_view field);
bool IsValidTimestamp(const google::protobuf::Timestamp& t);

namespace internal {
// CheckDuration
//
// INVALID_ARGUMENT naming `field` unless `d` is well-formed and within
// [0, one year]; `positive` additionally requires > 0.
absl::Status CheckDuration(const google::protobuf::Duration& d,
                           absl::string_view field, bool positive);
}  // namespace internal

// ---- Conversions
// -------------------------------------------------------------

absl::Duration FromProto(const google::protobuf::Duration& d);
absl::Time FromProto(const google::protobuf::Timestamp& t);
google::protobuf::Duration ToProtoDuration(absl::Duration d);
google::protobuf::Timestamp ToProtoTime(absl::Time t);

// CompareAgentVersions
//
// Compares dotted numeric versions ("7.11" < "7.11.1" < "7.12"); missing
// components are 0. Returns <0, 0, >0. Non-numeric components compare as 0.
int CompareAgentVersions(absl::string_view a, absl::string_view b);

// IsValidAgentVersion
//
// True for dotted numeric versions of 1..4 components ("7", "7.11.0").
bool IsValidAgentVersion(absl::string_view v);

// RolloutStateName / VerdictName
//
// Lower-case names ("running", "halt") for messages.
absl::string_view RolloutStateName(RolloutState s);
absl::string_view VerdictName(Verdict v);

// IsTerminal
//
// True for HALTED, ABORTED and COMPLETED.
bool IsTerminal(RolloutState s);

}  // namespace ringfence
