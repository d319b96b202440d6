#include "service/webhook_message.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ringfence {
namespace {

// Longest text field in a body (reasons, evidence): receivers such as chat
// services refuse very long messages.
constexpr size_t kMaxTextBytes = 4096;

// `s` cut to at most `max` bytes, not inside a UTF-8 sequence.
std::string Truncate(absl::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) {
    --end;
  }
  return absl::StrCat(s.substr(0, end), "...");
}

// `s` as a JSON string literal, quotes included.
std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          absl::StrAppendFormat(&out, "\\u%04x", u);
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace

WebhookEvent WebhookEventFromAudit(const AuditEntry& entry,
                                   const Rollout* rollout) {
  WebhookEvent e;
  e.audit_seq = entry.seq();
  e.action = entry.action();
  e.rollout_id = entry.rollout_id();
  e.actor = entry.actor();
  e.reason = entry.reason();
  if (entry.has_at()) e.time = FromProto(entry.at());
  if (rollout != nullptr) {
    e.release_id = rollout->release_id();
    e.content_type = rollout->content_type();
  }
  e.approved_by = entry.approved_by();
  e.approval_request_id = entry.approval_request_id();
  if (entry.has_approval_request()) {
    const config::v1::ApprovalRequest& r = entry.approval_request();
    e.approval_request_id = r.id();
    e.requested_action = r.action();
    e.content_type = r.content_type();
    if (r.has_expires_at()) e.expires_at = FromProto(r.expires_at());
  }
  const bool approval_only = entry.action() == "approval_requested" ||
                             entry.action() == "approval_rejected";
  if (!entry.rollout_id().empty() && !approval_only) {
    e.state = std::string(RolloutStateName(entry.to_state()));
  } else if (entry.action() == "emergency_stop" ||
             entry.action() == "clear_emergency_stop") {
    // Content types hold no spaces: the first ": " ends it.
    const size_t colon = entry.reason().find(": ");
    if (colon != std::string::npos) {
      e.content_type = entry.reason().substr(0, colon);
      e.reason = entry.reason().substr(colon + 2);
    }
  }
  if (entry.has_decision()) {
    const Decision& d = entry.decision();
    e.evidence = d.evidence_size() > 0 && !d.evidence(0).explanation().empty()
                     ? d.evidence(0).explanation()
                     : d.summary();
  }
  return e;
}

std::string WebhookDeliveryId(absl::string_view webhook_name,
                              uint64_t audit_seq) {
  return absl::StrCat(webhook_name, ":", audit_seq);
}

std::string WebhookSummary(const WebhookEvent& e) {
  std::string what;
  if (e.action == "approval_requested") {
    what = absl::StrCat(
        "approval request ", e.approval_request_id, ": ", e.requested_action,
        e.rollout_id.empty() ? std::string() : " of rollout " + e.rollout_id,
        " (", e.content_type, ") waits for a second principal",
        e.expires_at == absl::InfinitePast()
            ? std::string()
            : absl::FormatTime(" until %Y-%m-%dT%H:%M:%SZ", e.expires_at,
                               absl::UTCTimeZone()));
  } else if (e.action == "approval_rejected") {
    what =
        absl::StrCat("approval request ", e.approval_request_id, " rejected");
  } else if (e.action == "emergency_stop" && e.rollout_id.empty()) {
    what = absl::StrCat("emergency stop of ", e.content_type, " set");
  } else if (e.action == "clear_emergency_stop") {
    what = absl::StrCat("emergency stop of ", e.content_type, " cleared");
  } else {
    what = absl::StrCat("rollout ", e.rollout_id);
    if (!e.release_id.empty()) {
      absl::StrAppend(&what, " (release ", e.release_id, ", ", e.content_type,
                      ")");
    }
    absl::StrAppend(&what, " ", e.action, e.state.empty() ? "" : " -> ",
                    e.state);
  }
  absl::StrAppend(&what, " by ", e.actor);
  if (!e.approved_by.empty()) {
    absl::StrAppend(&what, ", approved by ", e.approved_by);
  }
  const std::string& why = e.evidence.empty() ? e.reason : e.evidence;
  if (!why.empty()) absl::StrAppend(&what, ": ", why);
  // One line: a reason may hold line breaks.
  for (char& c : what) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return Truncate(absl::StrCat("ringfence: ", what), kMaxTextBytes);
}

std::string WebhookBody(absl::string_view webhook_name, const WebhookEvent& e) {
  std::string out = "{";
  auto field = [&out](absl::string_view name, const std::string& json) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(&out, JsonString(name), ":", json);
  };
  auto text = [&](absl::string_view name, absl::string_view value) {
    field(name, JsonString(Truncate(value, kMaxTextBytes)));
  };
  text("id", WebhookDeliveryId(webhook_name, e.audit_seq));
  text("webhook", webhook_name);
  field("audit_seq", absl::StrCat(e.audit_seq));
  text("action", e.action);
  text("rollout_id", e.rollout_id);
  text("release_id", e.release_id);
  text("content_type", e.content_type);
  text("state", e.state);
  text("actor", e.actor);
  text("reason", e.reason);
  text("evidence", e.evidence);
  if (!e.approval_request_id.empty()) {
    text("approval_request_id", e.approval_request_id);
  }
  if (!e.approved_by.empty()) text("approved_by", e.approved_by);
  field("audit_head", absl::StrCat("{\"seq\":", e.head_seq,
                                   ",\"hash\":", JsonString(e.head_hash), "}"));
  text("time",
       absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", e.time, absl::UTCTimeZone()));
  text("text", WebhookSummary(e));
  out += '}';
  return out;
}

std::string HmacSha256Hex(absl::string_view key, absl::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(),
           mac, &len) == nullptr) {
    return "";
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(mac), len));
}

std::string WebhookSignature(absl::string_view secret, absl::Time t,
                             absl::string_view body) {
  const std::string ts = absl::StrCat(absl::ToUnixSeconds(t));
  return absl::StrCat(
      "t=", ts, ",v1=", HmacSha256Hex(secret, absl::StrCat(ts, ".", body)));
}

}  // namespace ringfence
