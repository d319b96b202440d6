// What a webhook receives: the JSON body built from one audit entry, and
// the X-Ringfence-Signature header that signs it.
//
//   X-Ringfence-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//                          "<t>." + body)>
//
// Thread safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ringfence/model.h"

namespace ringfence {

// WebhookEvent
//
// The facts of one notification, gathered from an audit entry and the
// rollout it names.
struct WebhookEvent {
  uint64_t audit_seq = 0;
  std::string action;
  std::string rollout_id;  // "" for emergency stops set or cleared
  std::string release_id;
  std::string content_type;
  std::string state;  // the rollout's state after the entry, e.g. "halted"
  std::string actor;
  std::string reason;
  // For gate decisions (halts): the deciding evidence sentence.
  std::string evidence;
  // The two-person rule: the request an entry makes, settles or carries
  // out, its approver (on an approved action), and what it asks and until
  // when (on approval_requested).
  std::string approval_request_id;
  std::string approved_by;
  std::string requested_action;
  absl::Time expires_at = absl::InfinitePast();
  // The audit log's last entry when the notification was built.
  uint64_t head_seq = 0;
  std::string head_hash;
  // When the audited change happened.
  absl::Time time;
};

// WebhookEventFromAudit
//
// The event of `entry`; `rollout` (the rollout the entry names, or null if
// none or unknown) supplies release and content type. An emergency stop set
// or cleared names its content type in the reason ("<content type>:
// <reason>"), which is split apart here.
WebhookEvent WebhookEventFromAudit(const AuditEntry& entry,
                                   const Rollout* rollout);

// WebhookDeliveryId
//
// "<webhook name>:<audit seq>": the same for every retry of a delivery, so
// receivers dedupe by it.
std::string WebhookDeliveryId(absl::string_view webhook_name,
                              uint64_t audit_seq);

// WebhookSummary
//
// The one-line summary (the body's `text`), e.g. "ringfence: rollout r1
// (release rel-2, channel-file/292) halted by gate: 4 hosts crashed ...".
std::string WebhookSummary(const WebhookEvent& event);

// WebhookBody
//
// The JSON body POSTed to webhook `webhook_name` (fields in a fixed order;
// service/README.md, "Notifications").
std::string WebhookBody(absl::string_view webhook_name,
                        const WebhookEvent& event);

// HmacSha256Hex
//
// Lower-case hex HMAC-SHA256 of `data` under `key`.
std::string HmacSha256Hex(absl::string_view key, absl::string_view data);

// WebhookSignature
//
// The X-Ringfence-Signature value of `body` signed at `t` with `secret`:
// "t=<unix seconds>,v1=<HmacSha256Hex(secret, "<t>." + body)>".
std::string WebhookSignature(absl::string_view secret, absl::Time t,
                             absl::string_view body);

}  // namespace ringfence
