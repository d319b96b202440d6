// The webhooks ringfenced notifies (--webhooks_file, a
// ringfence.v1.WebhookConfig): loaded and checked once at startup.
//
// Thread safety: WebhookTarget is a plain value; the functions are pure
// (LoadWebhookConfig reads files).
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ringfence {

// One receiver, checked, with its secret read.
struct WebhookTarget {
  std::string name;
  std::string url;
  // Empty: every content type.
  absl::flat_hash_set<std::string> content_types;
  // Empty: every action that notifies (IsNotifyingAction).
  absl::flat_hash_set<std::string> events;
  // The HMAC key. Never log it.
  std::string secret;
};

// IsNotifyingAction
//
// Whether audit entries with `action` are sent to webhooks at all: halt,
// abort, pause, resume, promote, gate_promote, complete, emergency_stop,
// clear_emergency_stop.
bool IsNotifyingAction(absl::string_view action);

// Wants
//
// Whether `target` is notified of an entry with `action` about
// `content_type` ("" = none known: matches any filter).
bool Wants(const WebhookTarget& target, absl::string_view action,
           absl::string_view content_type);

// LoadWebhookConfig
//
// Reads the WebhookConfig text-proto (or JSON) file at `path`, checks it and
// reads every secret file. INVALID_ARGUMENT naming the webhook and field
// (e.g. "webhooks[1] (\"ops\").url: must start with http:// or https://")
// for a bad entry; NOT_FOUND for an unreadable file. Messages never hold a
// secret or a URL (URLs may carry credentials).
absl::StatusOr<std::vector<WebhookTarget>> LoadWebhookConfig(
    const std::string& path);

}  // namespace ringfence
