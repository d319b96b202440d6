#include "ringfence/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ringfence/audit.h"
#include "ringfence/error_text.h"
#include "ringfence/status_macros.h"
#include "store/evidence_columns.h"

namespace ringfence {
namespace {

// Each migration takes the schema from version i to i + 1.
const char* const kMigrations[] = {
    // 1: the initial schema.
    R"sql(
CREATE TABLE releases(
  id TEXT PRIMARY KEY,
  content_type TEXT NOT NULL,
  body BLOB NOT NULL);
CREATE TABLE rollouts(
  id TEXT PRIMARY KEY,
  content_type TEXT NOT NULL,
  state INTEGER NOT NULL,
  version INTEGER NOT NULL,
  body BLOB NOT NULL);
CREATE TABLE decisions(
  rollout_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  verdict INTEGER NOT NULL,
  body BLOB NOT NULL,
  PRIMARY KEY(rollout_id, seq)) WITHOUT ROWID;
CREATE TABLE exposures(
  rollout_id TEXT NOT NULL,
  host_id TEXT NOT NULL,
  stage INTEGER NOT NULL,
  at_ns INTEGER NOT NULL,
  PRIMARY KEY(rollout_id, host_id)) WITHOUT ROWID;
CREATE TABLE emergency_stops(
  content_type TEXT PRIMARY KEY,
  actor TEXT NOT NULL,
  reason TEXT NOT NULL,
  at_ns INTEGER NOT NULL);
CREATE TABLE audit(
  seq INTEGER PRIMARY KEY,
  at_ns INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  rollout_id TEXT NOT NULL,
  body BLOB NOT NULL,
  hash TEXT NOT NULL);
)sql",
    // 2: telemetry checkpoints; audit lookups by rollout.
    R"sql(
CREATE TABLE checkpoints(
  rollout_id TEXT PRIMARY KEY,
  at_ns INTEGER NOT NULL,
  body BLOB NOT NULL);
CREATE INDEX audit_by_rollout ON audit(rollout_id, seq);
)sql",
    // 3: per-host evidence written with checkpoints (store.h HostEvidence);
    // whether an exposure was a paced grant.
    R"sql(
CREATE TABLE host_evidence(
  rollout_id TEXT NOT NULL,
  host_key INTEGER NOT NULL,
  exposed INTEGER NOT NULL,
  stage INTEGER NOT NULL,
  exposed_at_ns INTEGER NOT NULL,
  flags INTEGER NOT NULL,
  affected INTEGER NOT NULL,
  pre_affected INTEGER NOT NULL,
  PRIMARY KEY(rollout_id, host_key)) WITHOUT ROWID;
ALTER TABLE exposures ADD COLUMN granted INTEGER NOT NULL DEFAULT 1;
)sql",
    // 4: webhook delivery cursors (store.h PutWebhookCursor).
    R"sql(
CREATE TABLE webhook_cursors(
  name TEXT PRIMARY KEY,
  seq INTEGER NOT NULL);
)sql",
    // 5: when an exposed host began loading (HostEvidence::loading_since;
    // 0 = not known).
    R"sql(
ALTER TABLE host_evidence ADD COLUMN loading_since_ns INTEGER NOT NULL
  DEFAULT 0;
CREATE INDEX host_evidence_exposed ON host_evidence(rollout_id, host_key)
  WHERE exposed = 1;
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) ==
                  kSqliteSchemaVersion,
              "one migration per schema version");

absl::Status FromSqlite(int rc, sqlite3* db, absl::string_view what) {
  const int primary = rc & 0xff;
  const std::string msg = absl::StrCat(
      what, ": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
      " (sqlite ", rc, ")");
  switch (primary) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
      return absl::OkStatus();
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return absl::FailedPreconditionError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(msg);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(msg);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// A prepared statement; finalized on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  absl::Status status() const { return FromSqlite(rc_, db_, "prepare"); }
  Stmt& Bind(int i, absl::string_view text) {
    Check(sqlite3_bind_text(stmt_, i, text.data(),
                            static_cast<int>(text.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& BindBlob(int i, absl::string_view blob) {
    Check(sqlite3_bind_blob(stmt_, i, blob.data(),
                            static_cast<int>(blob.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    Check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  // Step: OK + true for a row, OK + false when done.
  absl::StatusOr<bool> Step() {
    if (rc_ != SQLITE_OK) return FromSqlite(rc_, db_, "bind");
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return FromSqlite(rc, db_, "step");
  }
  absl::Status Run() {
    absl::StatusOr<bool> r = Step();
    return r.status();
  }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) {
    const void* p = sqlite3_column_blob(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(static_cast<const char*>(p), n);
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && rc_ == SQLITE_OK) rc_ = rc;
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_ = SQLITE_OK;
};

template <typename Msg>
absl::StatusOr<Msg> ParseBody(const std::string& bytes,
                              absl::string_view what) {
  Msg m;
  if (!m.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("unparseable ", what, " record"));
  }
  return m;
}

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, int lock_fd, const Clock* clock)
      : db_(db), lock_fd_(lock_fd), clock_(clock) {}
  ~SqliteStore() override {
    sqlite3_close_v2(db_);
    if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
  }

  absl::Status Init(const SqliteStoreOptions& options) {
    absl::MutexLock lock(&mu_);
    sqlite3_busy_timeout(
        db_, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
    RETURN_IF_ERROR(ExecLocked("PRAGMA foreign_keys=ON"));
    if (options.max_db_bytes > 0) {
      RETURN_IF_ERROR(ExecLocked(
          absl::StrCat("PRAGMA max_page_count=",
                       std::max<int64_t>(1, options.max_db_bytes / 4096))));
    }
    if (!options.read_only) {
      RETURN_IF_ERROR(ExecLocked("PRAGMA page_size=4096"));
      RETURN_IF_ERROR(ExecLocked("PRAGMA journal_mode=WAL"));
      RETURN_IF_ERROR(ExecLocked("PRAGMA synchronous=FULL"));
    }
    // Reading the schema version also detects files that are not databases.
    Stmt v(db_, "PRAGMA user_version");
    RETURN_IF_ERROR(v.status());
    ASSIGN_OR_RETURN(bool row, v.Step());
    const int version = row ? static_cast<int>(v.Int(0)) : 0;
    const int target =
        options.max_schema_version > 0
            ? std::min(options.max_schema_version, kSqliteSchemaVersion)
            : kSqliteSchemaVersion;
    if (version > kSqliteSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database schema version ", version,
          " is newer than this build supports (", kSqliteSchemaVersion, ")"));
    }
    if (options.read_only && version < target) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database schema version ", version, " needs migration to ", target,
          "; open it read-write once"));
    }
    for (int next = version + 1; next <= target; ++next) {
      absl::Status s = TxLocked([&]() -> absl::Status {
        mu_.AssertHeld();
        RETURN_IF_ERROR(ExecLocked(kMigrations[next - 1]));
        return ExecLocked(absl::StrCat("PRAGMA user_version=", next));
      });
      if (!s.ok()) {
        return absl::Status(
            s.code(), absl::StrCat("migrating schema to version ", next, ": ",
                                   s.message()));
      }
    }
    Stmt last(db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
    RETURN_IF_ERROR(last.status());
    ASSIGN_OR_RETURN(bool has, last.Step());
    last_audit_seq_ = has ? static_cast<uint64_t>(last.Int(0)) : 0;
    last_audit_hash_ = has ? last.Text(1) : kAuditGenesisHash;
    return absl::OkStatus();
  }

  absl::Status PutRelease(const Release& release,
                          const AuditEntry& audit) override {
    absl::MutexLock lock(&mu_);
    return TxLocked([&]() -> absl::Status {
      mu_.AssertHeld();
      Stmt s(db_,
             "INSERT INTO releases(id, content_type, body) VALUES(?1, ?2, ?3)");
      s.Bind(1, release.id())
          .Bind(2, release.content_type())
          .BindBlob(3, release.SerializeAsString());
      absl::Status st = s.Run();
      if (absl::IsAlreadyExists(st)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "release ", QuoteForError(release.id()), " already exists"));
      }
      RETURN_IF_ERROR(st);
      return AppendAuditLocked(audit);
    });
  }

  absl::StatusOr<Release> GetRelease(absl::string_view id) override {
    absl::MutexLock lock(&mu_);
    Stmt s(db_, "SELECT body FROM releases WHERE id = ?1");
    s.Bind(1, id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) {
      return absl::NotFoundError(
          absl::StrCat("release ", QuoteForError(id), " not found"));
    }
    return ParseBody<Release>(s.Text(0), "release");
  }

  absl::StatusOr<std::vector<Release>> ListReleases() override {
    absl::MutexLock lock(&mu_);
    Stmt s(db_, "SELECT body FROM releases ORDER BY rowid");
    std::vector<Release> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      ASSIGN_OR_RETURN(Release r, ParseBody<Release>(s.Text(0), "release"));
      out.push_back(std::move(r));
    }
    return out;
  }

  absl::Status CreateRollout(const Rollout& rollout,
                             const AuditEntry& audit) override {
    absl::MutexLock lock(&mu_);
    return TxLocked([&]() -> absl::Status {
      mu_.AssertHeld();
      Stmt s(db_,
             "INSERT INTO rollouts(id, content_type, state, version, body) "
             "VALUES(?1, ?2, ?3, ?4, ?5)");
      s.Bind(1, rollout.id())
          .Bind(2, rollout.content_type())
          .Bind(3, static_cast<int64_t>(rollout.state()))
          .Bind(4, static_cast<int64_t>(rollout.version()))
          .BindBlob(5, rollout.SerializeAsString());
      absl::Status st = s.Run();
      if (absl::IsAlreadyExists(st)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "rollout ", QuoteForError(rollout.id()), " already exists"));
      }
      RETURN_IF_ERROR(st);
      return AppendAuditLocked(audit);
    });
  }

  absl::Status CommitTransition(const Rollout& rollout,
                                uint64_t expected_version,
                                const AuditEntry& audit,
                                const Decision* decision) override {
    absl::MutexLock lock(&mu_);
    return TxLocked([&]() -> absl::Status {
      mu_.AssertHeld();
      Stmt get(db_, "SELECT version FROM rollouts WHERE id = ?1");
      get.Bind(1, rollout.id());
      ASSIGN_OR_RETURN(bool row, get.Step());
      if (!row) {
        return absl::NotFoundError(absl::StrCat(
            "rollout ", QuoteForError(rollout.id()), " not found"));
      }
      const uint64_t stored = static_cast<uint64_t>(get.Int(0));
      if (stored != expected_version) {
        return absl::AbortedError(
            absl::StrCat("rollout ", QuoteForError(rollout.id()),
                         " changed concurrently (version ", stored,
                         ", expected ", expected_version, ")"));
      }
      Stmt s(db_,
             "UPDATE rollouts SET state = ?2, version = ?3, body = ?4 "
             "WHERE id = ?1");
      s.Bind(1, rollout.id())
          .Bind(2, static_cast<int64_t>(rollout.state()))
          .Bind(3, static_cast<int64_t>(rollout.version()))
          .BindBlob(4, rollout.SerializeAsString());
      RETURN_IF_ERROR(s.Run());
      if (decision != nullptr) RETURN_IF_ERROR(InsertDecisionLocked(*decision));
      return AppendAuditLocked(audit);
    });
  }

  absl::StatusOr<Rollout> GetRollout(absl::string_view id) override {
    absl::MutexLock lock(&mu_);
    Stmt s(db_, "SELECT body FROM rollouts WHERE id = ?1");
    s.Bind(1, id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) {
      return absl::NotFoundError(
          absl::StrCat("rollout ", QuoteForError(id), " not found"));
    }
    return ParseBody<Rollout>(s.Text(0), "rollout");
  }

  absl::StatusOr<std::vector<Rollout>> ListRollouts() override {
    absl::MutexLock lock(&mu_);
    Stmt s(db_, "SELECT body FROM rollouts ORDER BY rowid");
    std::vector<Rollout> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      ASSIGN_OR_RETURN(Rollout r, ParseBody<Rollout>(s.Text(0), "rollout"));
      out.push_back(std::move(r));
    }
    return out;
  }

  absl::Status AppendDecision(const Decision& decision) override {
    absl::MutexLock lock(&mu_);
    return TxLocked([&]() {
      mu_.AssertHeld();
      return InsertDecisionLocked(decision);
    });
  }

  absl::StatusOr<std::vector<Decision>> ListDecisions(
      absl::string_view rollout_id, uint64_t after_seq) override {
    absl::MutexLock lock(&mu_);
    Stmt s(db_,
           "SELECT body FROM decisions WHERE rollout_id = ?1 AND seq > ?2 "
           "ORDER BY seq");
    s.Bind(1, rollout_id).Bind(2, static_cast<int64_t>(after_seq));
    std::vector<Decision> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      ASSIGN_OR_RETURN(Decision d, ParseBody<Decision>(s.Text(0), "decision"));
      out.push_back(std::move(d));
    }
    return out;
  }

  // Group commit: concurrent callers (GetAssignment grants from many hosts)
  // queue their exposures; one of them commits everything queued in one
  // transaction (one fsync) while the others wait for its outcome. Each
  // caller returns only after its own rows are durable.
  absl::Status RecordExposures(absl::string_view rollout_id,
                               absl::Span<const Exposure> exposures) override {
    if (exposures.empty()) return absl::OkStatus();
    PendingExposures mine;
    mine.rollout_id = std::string(rollout_id);
    mine.exposures.assign(exposures.begin(), exposures.end());
    absl::MutexLock q(&queue_mu_);
    queue_.push_back(&mine);
    while (!mine.done) {
      if (!committing_) {
        committing_ = true;
        std::vector<PendingExposures*> group;
        group.swap(queue_);
        queue_mu_.Unlock();
        absl::Status status;
        {
          absl::MutexLock lock(&mu_);
          status = TxLocked([&]() -> absl::Status {
            mu_.AssertHeld();
            return InsertExposuresLocked(group);
          });
        }
        queue_mu_.Lock();
        for (PendingExposures* p : group) {
          p->status = status;
          p->done = true;
        }
        committing_ = false;
        done_cv_.SignalAll();
      } else {
        done_cv_.Wait(&queue_mu_);
      }
    }
    return mine.status;
  }

  absl::StatusOr<std::vector<Exposure>> ListExposures(
      absl::string_view rollout_id) override {
    absl::MutexLock lock(&mu_);
    Stmt s(db_,
           "SELECT host_id, stage, at_ns, granted FROM exposures WHERE "
           "rollout_id = ?1");
    s.Bind(1, rollout_id);
    std::vector<Exposure> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.push_back({s.Text(0), static_cast<uint32_t>(s.Int(1)),
                     absl::FromUnixNanos(s.Int(2)), s.Int(3) != 0});
    }
    return out;
  }

  absl::Status SetEmergencyStop(const EmergencyStop& stop,
                                const AuditEntry& audit) override {
    absl::MutexLock lock(&mu_);
    return TxLocked([&]() -> absl::Status {
      mu_.AssertHeld();
      Stmt s(db_,
             "INSERT OR REPLACE INTO emergency_stops(content_type, actor, "
             "reason, at_ns) VALUES(?1, ?2, ?3, ?4)");
      s.Bind(1, stop.content_type)
          .Bind(2, stop.actor)
          .Bind(3, stop.reason)
          .Bind(4, absl::ToUnixNanos(stop.at));
      RETURN_IF_ERROR(s.Run());
      return AppendAuditLocked(audit);
    });
  }

  absl::Status ClearEmergencyStop(absl::string_view content_type,
                                  const AuditEntry& audit) override {
    absl::MutexLock lock(&mu_);
    return TxLocked([&]() -> absl::Status {
      mu_.AssertHeld();
      Stmt s(db_, "DELETE FROM emergency_stops WHERE content_type = ?1");
      s.Bind(1, content_type);
      RETURN_IF_ERROR(s.Run());
      if (sqlite3_changes(db_) == 0) {
        return absl::NotFoundError(absl::StrCat("content type ",
                                                QuoteForError(content_type),
                                                " has no emergency stop"));
      }
      return AppendAuditLocked(audit);
    });
  }

  absl::StatusOr<std::vector<EmergencyStop>> ListEmergencyStops() override {
    absl::MutexLock lock(&mu_);
    Stmt s(db_,
           "SELECT content_type, actor, reason, at_ns FROM emergency_stops "
           "ORDER BY content_type");
    std::vector<EmergencyStop> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      out.push_back(
          {s.Text(0), s.Text(1), s.Text(2), absl::FromUnixNanos(s.Int(3))});
    }
    return out;
  }

  absl::Status PutCheckpoint(absl::string_view rollout_id,
                             absl::string_view bytes,
                             absl::Span<const HostEvidence> evidence) override {
    absl::MutexLock lock(&mu_);
    return TxLocked([&]() -> absl::Status {
      mu_.AssertHeld();
      Stmt s(db_,
             "INSERT OR REPLACE INTO checkpoints(rollout_id, at_ns, body) "
             "VALUES(?1, ?2, ?3)");
      s.Bind(1, rollout_id)
          .Bind(2, absl::ToUnixNanos(clock_->Now()))
          .BindBlob(3, bytes);
      RETURN_IF_ERROR(s.Run());
      if (evidence.empty()) return absl::OkStatus();
      Stmt e(db_,
             "INSERT OR REPLACE INTO host_evidence(rollout_id, host_key, "
             "exposed, stage, exposed_at_ns, flags, affected, pre_affected, "
             "loading_since_ns) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
      RETURN_IF_ERROR(e.status());
      for (const HostEvidence& h : evidence) {
        e.Bind(1, rollout_id)
            .Bind(2, static_cast<int64_t>(h.host_key))
            .Bind(3, int64_t{h.exposed})
            .Bind(4, static_cast<int64_t>(h.stage))
            .Bind(5, h.exposed ? absl::ToUnixNanos(h.exposed_at) : 0)
            .Bind(6, static_cast<int64_t>(h.flags))
            .Bind(7, static_cast<int64_t>(h.affected))
            .Bind(8, static_cast<int64_t>(h.pre_affected))
            .Bind(9, internal::LoadingSinceNanos(h));
        RETURN_IF_ERROR(e.Run());
        e.Reset();
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<HostEvidence>> ListHostEvidence(
      absl::string_view rollout_id) override {
    return ReadHostEvidence(rollout_id, /*exposed_only=*/false);
  }
  absl::StatusOr<std::vector<HostEvidence>> ListExposedHostEvidence(
      absl::string_view rollout_id) override {
    return ReadHostEvidence(rollout_id, /*exposed_only=*/true);
  }

  absl::StatusOr<std::vector<HostEvidence>> ReadHostEvidence(
      absl::string_view rollout_id, bool exposed_only) {
    const std::string sql = absl::StrCat(
        "SELECT host_key, exposed, stage, exposed_at_ns, flags, affected, "
        "pre_affected, loading_since_ns FROM host_evidence WHERE rollout_id = "
        "?1",
        exposed_only ? " AND exposed = 1" : "");
    absl::MutexLock lock(&mu_);
    Stmt s(db_, sql.c_str());
    s.Bind(1, rollout_id);
    std::vector<HostEvidence> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      HostEvidence h;
      h.host_key = static_cast<uint64_t>(s.Int(0));
      h.exposed = s.Int(1) != 0;
      h.stage = static_cast<uint32_t>(s.Int(2));
      h.exposed_at = absl::FromUnixNanos(s.Int(3));
      h.flags = static_cast<uint32_t>(s.Int(4));
      h.affected = static_cast<uint32_t>(s.Int(5));
      h.pre_affected = static_cast<uint32_t>(s.Int(6));
      h.loading_since = internal::LoadingSinceFromNanos(s.Int(7));
      out.push_back(h);
    }
    return out;
  }

  // Writes a 64 KiB row under an id no rollout can have ("") and deletes it
  // in the same transaction: pages are allocated, dirtied and committed with
  // full sync, so a full disk (or database, with max_db_bytes), a read-only
  // file or a lost lock fails here as it would for real work, and nothing
  // changes. 64 KiB: a store with less headroom than that is not healthy
  // (else health would flap between a passing probe and failing work).
  absl::Status Probe() override {
    absl::MutexLock lock(&mu_);
    return TxLocked([&]() -> absl::Status {
      mu_.AssertHeld();
      Stmt put(db_,
               "INSERT OR REPLACE INTO checkpoints(rollout_id, at_ns, body) "
               "VALUES('', ?1, zeroblob(65536))");
      put.Bind(1, absl::ToUnixNanos(clock_->Now()));
      RETURN_IF_ERROR(put.Run());
      Stmt del(db_, "DELETE FROM checkpoints WHERE rollout_id = ''");
      return del.Run();
    });
  }

  absl::StatusOr<std::string> GetCheckpoint(
      absl::string_view rollout_id) override {
    absl::MutexLock lock(&mu_);
    Stmt s(db_, "SELECT body FROM checkpoints WHERE rollout_id = ?1");
    s.Bind(1, rollout_id);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) {
      return absl::NotFoundError(absl::StrCat("no checkpoint for rollout ",
                                              QuoteForError(rollout_id)));
    }
    return s.Text(0);
  }

  absl::Status AppendAudit(const AuditEntry& audit) override {
    absl::MutexLock lock(&mu_);
    return TxLocked([&]() {
      mu_.AssertHeld();
      return AppendAuditLocked(audit);
    });
  }

  absl::StatusOr<std::vector<AuditEntry>> ReadAudit(uint64_t after_seq,
                                                    size_t limit) override {
    absl::MutexLock lock(&mu_);
    Stmt s(db_,
           "SELECT seq, body, hash FROM audit WHERE seq > ?1 ORDER BY seq "
           "LIMIT ?2");
    s.Bind(1, static_cast<int64_t>(after_seq))
        .Bind(2, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
    std::vector<AuditEntry> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, s.Step());
      if (!row) break;
      AuditEntry e;
      if (!e.ParseFromString(s.Text(1))) {
        // Keep going: VerifyAuditLog reports the broken link.
        e.Clear();
      }
      // The row's seq and hash columns are what later entries chain to.
      e.set_seq(static_cast<uint64_t>(s.Int(0)));
      if (e.hash().empty()) e.set_hash(s.Text(2));
      out.push_back(std::move(e));
    }
    return out;
  }

  absl::StatusOr<std::optional<uint64_t>> GetWebhookCursor(
      absl::string_view name) override {
    absl::MutexLock lock(&mu_);
    Stmt s(db_, "SELECT seq FROM webhook_cursors WHERE name = ?1");
    s.Bind(1, name);
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) return std::nullopt;
    return static_cast<uint64_t>(s.Int(0));
  }

  absl::Status PutWebhookCursor(absl::string_view name, uint64_t seq) override {
    absl::MutexLock lock(&mu_);
    return TxLocked([&]() -> absl::Status {
      mu_.AssertHeld();
      Stmt s(db_,
             "INSERT OR REPLACE INTO webhook_cursors(name, seq) "
             "VALUES(?1, ?2)");
      s.Bind(1, name).Bind(2, static_cast<int64_t>(seq));
      return s.Run();
    });
  }

 private:
  absl::Status ExecLocked(const std::string& sql)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err != nullptr ? err : "";
    sqlite3_free(err);
    if (rc == SQLITE_OK) return absl::OkStatus();
    return FromSqlite(rc, db_, sql.substr(0, 40));
  }

  // Runs `body` in an IMMEDIATE transaction: commit if it returns OK, roll
  // back otherwise. The audit chain's in-memory tail follows the outcome.
  absl::Status TxLocked(const std::function<absl::Status()>& body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const uint64_t seq = last_audit_seq_;
    const std::string hash = last_audit_hash_;
    RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE"));
    absl::Status s = body();
    if (s.ok()) s = ExecLocked("COMMIT");
    if (!s.ok()) {
      if (!sqlite3_get_autocommit(db_)) (void)ExecLocked("ROLLBACK");
      last_audit_seq_ = seq;
      last_audit_hash_ = hash;
    }
    return s;
  }

  struct PendingExposures {
    std::string rollout_id;
    std::vector<Exposure> exposures;
    bool done = false;
    absl::Status status;
  };

  absl::Status InsertExposuresLocked(
      const std::vector<PendingExposures*>& group)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt s(db_,
           "INSERT OR IGNORE INTO exposures(rollout_id, host_id, stage, "
           "at_ns, granted) VALUES(?1, ?2, ?3, ?4, ?5)");
    RETURN_IF_ERROR(s.status());
    for (const PendingExposures* p : group) {
      for (const Exposure& e : p->exposures) {
        s.Bind(1, p->rollout_id)
            .Bind(2, e.host_id)
            .Bind(3, static_cast<int64_t>(e.stage))
            .Bind(4, absl::ToUnixNanos(e.at))
            .Bind(5, int64_t{e.granted});
        RETURN_IF_ERROR(s.Run());
        s.Reset();
      }
    }
    return absl::OkStatus();
  }

  absl::Status InsertDecisionLocked(const Decision& decision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Stmt s(db_,
           "INSERT INTO decisions(rollout_id, seq, verdict, body) "
           "VALUES(?1, ?2, ?3, ?4)");
    s.Bind(1, decision.rollout_id())
        .Bind(2, static_cast<int64_t>(decision.seq()))
        .Bind(3, static_cast<int64_t>(decision.verdict()))
        .BindBlob(4, decision.SerializeAsString());
    absl::Status st = s.Run();
    if (absl::IsAlreadyExists(st)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "decision ", decision.seq(), " of rollout ",
          QuoteForError(decision.rollout_id()), " already recorded"));
    }
    return st;
  }

  absl::Status AppendAuditLocked(const AuditEntry& audit)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    AuditEntry e = audit;
    e.set_seq(last_audit_seq_ + 1);
    ChainAuditEntry(last_audit_hash_, &e);
    Stmt s(db_,
           "INSERT INTO audit(seq, at_ns, actor, action, rollout_id, body, "
           "hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    s.Bind(1, static_cast<int64_t>(e.seq()))
        .Bind(2, e.at().seconds() * 1000000000LL + e.at().nanos())
        .Bind(3, e.actor())
        .Bind(4, e.action())
        .Bind(5, e.rollout_id())
        .BindBlob(6, e.SerializeAsString())
        .Bind(7, e.hash());
    RETURN_IF_ERROR(s.Run());
    last_audit_seq_ = e.seq();
    last_audit_hash_ = e.hash();
    return absl::OkStatus();
  }

  // Lock order: queue_mu_ is never held while taking mu_.
  absl::Mutex queue_mu_;
  absl::CondVar done_cv_;
  std::vector<PendingExposures*> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool committing_ ABSL_GUARDED_BY(queue_mu_) = false;

  absl::Mutex mu_;
  sqlite3* const db_;
  const int lock_fd_;
  const Clock* const clock_;
  uint64_t last_audit_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_audit_hash_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::string SqliteStorePath(const std::string& data_dir) {
  return (std::filesystem::path(data_dir) / "ringfence.db").string();
}

absl::StatusOr<StorePtr> OpenSqliteStore(const SqliteStoreOptions& options) {
  if (options.data_dir.empty()) {
    return absl::InvalidArgumentError("data_dir: must not be empty");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data_dir: cannot create \"", options.data_dir, "\": ", ec.message()));
  }
  const std::string lock_path =
      (std::filesystem::path(options.data_dir) / "LOCK").string();
  const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data_dir: cannot open \"", lock_path, "\": ", std::strerror(errno)));
  }
  if (flock(fd, (options.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    const int err = errno;
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("data_dir \"", options.data_dir,
                     "\" is in use by another ringfence process (",
                     err == EWOULDBLOCK ? "locked" : std::strerror(err), ")"));
  }
  sqlite3* db = nullptr;
  const int flags =
      (options.read_only ? SQLITE_OPEN_READONLY
                         : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
      SQLITE_OPEN_FULLMUTEX;
  const int rc = sqlite3_open_v2(SqliteStorePath(options.data_dir).c_str(), &db,
                                 flags, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = FromSqlite(rc, db, "open");
    sqlite3_close_v2(db);
    close(fd);
    return s;
  }
  auto store = std::make_unique<SqliteStore>(
      db, fd, options.clock != nullptr ? options.clock : &RealClock());
  absl::Status s = store->Init(options);
  if (!s.ok()) {
    return absl::Status(
        s.code(),
        absl::StrCat(SqliteStorePath(options.data_dir), ": ", s.message()));
  }
  return StorePtr(std::move(store));
}

}  // namespace ringfence
