// A webhook's cursor file, as versions before the store kept cursors
// (Store::PutWebhookCursor) wrote them: the highest audit seq it has
// acknowledged (or skipped as not matching), in a small file replaced
// atomically (write a temporary file, fsync, rename, fsync the directory).
// The notifier reads one only to import it (WebhookNotifierOptions::
// legacy_cursor_dir).
//
// Thread safety: the functions touch only the file named; callers keep one
// writer per file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ringfence {

// ReadWebhookCursor
//
// The seq in the cursor file at `path`; nullopt if there is no file.
// DATA_LOSS if the file holds anything but a decimal seq and a newline.
absl::StatusOr<std::optional<uint64_t>> ReadWebhookCursor(
    const std::string& path);

// WriteWebhookCursor
//
// Durably replaces the cursor file at `path` with `seq`. INTERNAL naming
// the file if it fails (the old value stays).
absl::Status WriteWebhookCursor(const std::string& path, uint64_t seq);

}  // namespace ringfence
