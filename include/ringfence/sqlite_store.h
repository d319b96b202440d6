// The embedded default Store: one SQLite database file under a data
// directory.
//
// Durability: WAL journal with synchronous=FULL, so a write that returned OK
// survives a crash of the process or the machine. Every write is one
// transaction; a transition and its audit entry commit together or not at
// all.
//
// Exclusivity: the data directory is locked (flock on `<dir>/LOCK`) for the
// life of the store; opening a directory in use by another process (or
// another store in this one) fails with FAILED_PRECONDITION instead of
// corrupting it.
//
// Schema: versioned migrations (PRAGMA user_version); opening an older file
// migrates it, opening a newer one fails.
//
// Errors map to canonical codes: disk full -> RESOURCE_EXHAUSTED, read-only
// file or directory -> FAILED_PRECONDITION, busy/locked -> UNAVAILABLE,
// corrupt or not a database -> DATA_LOSS.
//
// Thread safety: thread-safe (one connection behind a mutex).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ringfence/clock.h"
#include "ringfence/store.h"

namespace ringfence {

struct SqliteStoreOptions {
  // Directory holding `ringfence.db` and `LOCK`; created if missing.
  std::string data_dir;
  // Time source for the store's own timestamps (checkpoint times); default
  // RealClock(). Must outlive the store.
  const Clock* clock = nullptr;
  // How long a write waits for a lock held by another connection before
  // failing with UNAVAILABLE (default 5s).
  absl::Duration busy_timeout = absl::Seconds(5);
  // Open read-only (inspection tools); every write fails with
  // FAILED_PRECONDITION.
  bool read_only = false;
  // Largest database size in bytes; writes beyond it fail with
  // RESOURCE_EXHAUSTED (default 0 = only the disk limits it).
  int64_t max_db_bytes = 0;
  // Testing: migrate only up to this schema version (0 = latest).
  int max_schema_version = 0;
};

// The latest schema version this build writes.
inline constexpr int kSqliteSchemaVersion = 5;

// OpenSqliteStore
//
// Opens (creating if needed) the store in options.data_dir.
absl::StatusOr<StorePtr> OpenSqliteStore(const SqliteStoreOptions& options);

// The database file inside a data directory.
std::string SqliteStorePath(const std::string& data_dir);

}  // namespace ringfence
