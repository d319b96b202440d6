#include "service/webhook_config.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ringfence/model.h"
#include "ringfence/status_macros.h"
#include "ringfence/v1/webhooks.pb.h"

namespace ringfence {
namespace {

constexpr int kMaxWebhooks = 32;
constexpr size_t kMaxNameBytes = 64;
constexpr size_t kMaxUrlBytes = 2048;
constexpr size_t kMinSecretBytes = 16;
constexpr size_t kMaxSecretBytes = 4096;
constexpr int kMaxFilterEntries = 256;

constexpr absl::string_view kNotifyingActions[] = {
    "halt", "abort", "pause", "resume", "promote", "gate_promote", "complete",
    "emergency_stop", "clear_emergency_stop",
    // The two-person rule: a request waits for an approver; a request
    // rejected. (An approved action notifies as itself, naming both.)
    "approval_requested", "approval_rejected"};

bool IsNameChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' ||
         c == '-';
}

}  // namespace

bool IsNotifyingAction(absl::string_view action) {
  for (absl::string_view a : kNotifyingActions) {
    if (a == action) return true;
  }
  return false;
}

bool Wants(const WebhookTarget& target, absl::string_view action,
           absl::string_view content_type) {
  if (!IsNotifyingAction(action)) return false;
  if (!target.events.empty() && !target.events.contains(action)) return false;
  return target.content_types.empty() || content_type.empty() ||
         target.content_types.contains(content_type);
}

absl::StatusOr<std::vector<WebhookTarget>> LoadWebhookConfig(
    const std::string& path) {
  v1::WebhookConfig config;
  RETURN_IF_ERROR(LoadMessageFile(path, &config));
  if (config.webhooks_size() > kMaxWebhooks) {
    return absl::InvalidArgumentError(
        absl::StrCat("webhooks: at most ", kMaxWebhooks, " (got ",
                     config.webhooks_size(), ")"));
  }
  std::vector<WebhookTarget> targets;
  absl::flat_hash_set<std::string> names;
  for (int i = 0; i < config.webhooks_size(); ++i) {
    const v1::Webhook& w = config.webhooks(i);
    const std::string where = absl::StrCat("webhooks[", i, "]");
    auto bad = [&](absl::string_view field, absl::string_view problem) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, w.name().empty() ? "" : " (\"", w.name(),
          w.name().empty() ? "" : "\")", ".", field, ": ", problem));
    };
    if (w.name().empty() || w.name().size() > kMaxNameBytes) {
      return bad("name", "must be 1 to 64 characters of [a-z0-9_-]");
    }
    for (char c : w.name()) {
      if (!IsNameChar(c)) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ".name: must be 1 to 64 characters of [a-z0-9_-]"));
      }
    }
    if (!names.insert(w.name()).second) {
      return bad("name", "used by an earlier webhook");
    }
    if (w.url().size() > kMaxUrlBytes) {
      return bad("url", "must be at most 2048 characters");
    }
    const std::string scheme = absl::AsciiStrToLower(
        absl::string_view(w.url()).substr(0, w.url().find("://") + 3));
    if ((scheme != "http://" && scheme != "https://") ||
        w.url().size() <= scheme.size()) {
      return bad("url", "must start with http:// or https:// and name a host");
    }
    for (char c : w.url()) {
      if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
        return bad("url", "must not contain spaces or control characters");
      }
    }
    if (w.content_types_size() > kMaxFilterEntries ||
        w.events_size() > kMaxFilterEntries) {
      return bad("content_types/events", "at most 256 entries each");
    }
    WebhookTarget t;
    t.name = w.name();
    t.url = w.url();
    for (const std::string& ct : w.content_types()) {
      if (absl::Status s = ValidateId(ct, "content_types"); !s.ok()) {
        return bad("content_types", s.message());
      }
      t.content_types.insert(ct);
    }
    for (const std::string& e : w.events()) {
      if (!IsNotifyingAction(e)) {
        return bad("events",
                   absl::StrCat("unknown event \"", absl::CEscape(e),
                                "\" (one of: halt, abort, pause, resume, "
                                "promote, gate_promote, complete, "
                                "emergency_stop, clear_emergency_stop, "
                                "approval_requested, approval_rejected)"));
      }
      t.events.insert(e);
    }
    if (w.secret_file().empty()) {
      return bad("secret_file", "required (the key that signs every POST)");
    }
    const std::string secret_path = ResolvePath(path, w.secret_file());
    absl::StatusOr<std::string> secret = ReadFileToString(secret_path);
    if (!secret.ok()) return bad("secret_file", secret.status().message());
    t.secret = std::string(absl::StripAsciiWhitespace(*secret));
    if (t.secret.size() < kMinSecretBytes ||
        t.secret.size() > kMaxSecretBytes) {
      return bad("secret_file",
                 absl::StrCat(secret_path,
                              ": the secret must be 16 to 4096 bytes (got ",
                              t.secret.size(), ")"));
    }
    targets.push_back(std::move(t));
  }
  return targets;
}

}  // namespace ringfence
