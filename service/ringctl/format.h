// How ringctl prints what the server returns: protobuf JSON (--json) and
// the human-readable lines of releases and rollouts.
//
// Thread safety: pure functions, except the Print* ones, which write to
// stdout.
#pragma once

#include <string>

#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"
#include "ringfence/approvals.h"
#include "ringfence/model.h"
#include "ringfence/v1/ringfence.pb.h"

namespace ringfence::ringctl {

// Json
//
// `m` as protobuf JSON with the proto field names: indented, or on one line
// (for streams of objects).
std::string Json(const google::protobuf::Message& m, bool one_line = false);

// "2024-07-19 04:09:00 UTC", or "-" for an unset timestamp.
std::string FormatTime(const google::protobuf::Timestamp& t);

// "in_progress", "halted", ...
std::string StateName(RolloutState s);

// StageLabel
//
// "canary (2/4)", or "late-track" past the regular stages.
std::string StageLabel(const Rollout& r);

// SignalsLine
//
// "crash 3/0  silent 1/1": per signal, the affected hosts exposed/control.
std::string SignalsLine(const v1::RolloutTelemetry& t);

// DescribeApprovalRequest
//
// "apr-0123456789abcdef promote of rollout R (channel-file/291) by alice,
// pending until 2024-07-19 05:09:00 UTC: <reason>".
std::string DescribeApprovalRequest(const config::v1::ApprovalRequest& r);

// A release on one line (`release list`).
void PrintRelease(const Release& r);
// A release, one field per line (`release get`).
void PrintReleaseDetail(const Release& r);
// A rollout on one line (`rollout list`).
void PrintRolloutLine(const Rollout& r);
// A rollout's status, one aspect per line (`rollout status`).
void PrintRolloutStatus(const v1::GetRolloutResponse& st);

}  // namespace ringfence::ringctl
