#include "ringfence/postgres_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ringfence/audit.h"
#include "ringfence/error_text.h"
#include "ringfence/status_macros.h"
#include "store/evidence_columns.h"
#include "store/postgres_conn.h"
#include "store/postgres_lease.h"

namespace ringfence {
namespace {

using internal::Conn;
using internal::LeaseRow;
using internal::Params;
using internal::Redactor;
using internal::Result;

// Each migration takes the schema from version i to i + 1. Integers are
// BIGINT throughout (results are decoded as 8-byte integers); times are Unix
// nanoseconds, as in the SQLite store.
const char* const kMigrations[] = {
    // 1: the initial schema. `ord` keeps creation order for the List calls.
    // audit_head holds the last audit entry's seq and hash: writers lock it
    // (FOR UPDATE) to append, which orders them across processes.
    R"sql(
CREATE TABLE releases(
  id TEXT PRIMARY KEY,
  ord BIGSERIAL NOT NULL,
  content_type TEXT NOT NULL,
  body BYTEA NOT NULL);
CREATE TABLE rollouts(
  id TEXT PRIMARY KEY,
  ord BIGSERIAL NOT NULL,
  content_type TEXT NOT NULL,
  state BIGINT NOT NULL,
  version BIGINT NOT NULL,
  body BYTEA NOT NULL);
CREATE TABLE decisions(
  rollout_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  verdict BIGINT NOT NULL,
  body BYTEA NOT NULL,
  PRIMARY KEY(rollout_id, seq));
CREATE TABLE exposures(
  rollout_id TEXT NOT NULL,
  host_id TEXT NOT NULL,
  stage BIGINT NOT NULL,
  at_ns BIGINT NOT NULL,
  granted BIGINT NOT NULL,
  PRIMARY KEY(rollout_id, host_id));
CREATE TABLE emergency_stops(
  content_type TEXT PRIMARY KEY,
  actor TEXT NOT NULL,
  reason TEXT NOT NULL,
  at_ns BIGINT NOT NULL);
CREATE TABLE checkpoints(
  rollout_id TEXT PRIMARY KEY,
  at_ns BIGINT NOT NULL,
  body BYTEA NOT NULL);
CREATE TABLE host_evidence(
  rollout_id TEXT NOT NULL,
  host_key BIGINT NOT NULL,
  exposed BIGINT NOT NULL,
  stage BIGINT NOT NULL,
  exposed_at_ns BIGINT NOT NULL,
  flags BIGINT NOT NULL,
  affected BIGINT NOT NULL,
  pre_affected BIGINT NOT NULL,
  PRIMARY KEY(rollout_id, host_key));
CREATE TABLE audit(
  seq BIGINT PRIMARY KEY,
  at_ns BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  rollout_id TEXT NOT NULL,
  body BYTEA NOT NULL,
  hash TEXT NOT NULL);
CREATE INDEX audit_by_rollout ON audit(rollout_id, seq);
CREATE TABLE audit_head(
  id BIGINT PRIMARY KEY,
  seq BIGINT NOT NULL,
  hash TEXT NOT NULL);
INSERT INTO audit_head(id, seq, hash) VALUES(1, 0,
  '0000000000000000000000000000000000000000000000000000000000000000');
)sql",
    // 2: the lease that elects one replica (postgres_lease.h), and the epoch
    // of the leader that appended each audit entry (0: no lease).
    R"sql(
CREATE TABLE lease(
  id BIGINT PRIMARY KEY,
  holder TEXT NOT NULL,
  epoch BIGINT NOT NULL,
  expires_at TIMESTAMP WITH TIME ZONE NOT NULL);
INSERT INTO lease(id, holder, epoch, expires_at)
  VALUES(1, '', 0, TIMESTAMP WITH TIME ZONE '1970-01-01 00:00:00+00');
ALTER TABLE audit ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
)sql",
    // 3: the replicas that record themselves every tick (RecordReplica), for
    // cluster status, and when the lease was last taken or renewed.
    R"sql(
CREATE TABLE replicas(
  replica_id TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  role TEXT NOT NULL,
  epoch BIGINT NOT NULL,
  last_seen TIMESTAMP WITH TIME ZONE NOT NULL);
ALTER TABLE lease ADD COLUMN renewed_at TIMESTAMP WITH TIME ZONE NOT NULL
  DEFAULT TIMESTAMP WITH TIME ZONE '1970-01-01 00:00:00+00';
)sql",
    // 4: webhook delivery cursors (store.h PutWebhookCursor), with the
    // audit log, so that the next leader goes on from them.
    R"sql(
CREATE TABLE webhook_cursors(
  name TEXT PRIMARY KEY,
  seq BIGINT NOT NULL);
)sql",
    // 5: when an exposed host began loading (HostEvidence::loading_since;
    // 0 = not known).
    R"sql(
ALTER TABLE host_evidence ADD COLUMN loading_since_ns BIGINT NOT NULL
  DEFAULT 0;
CREATE INDEX host_evidence_exposed ON host_evidence(rollout_id, host_key)
  WHERE exposed = 1;
)sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) ==
                  kPostgresSchemaVersion,
              "one migration per schema version");

bool ValidSchemaName(absl::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!(absl::ascii_islower(s[0]) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_')) {
      return false;
    }
  }
  // pg_* names are reserved for the system.
  return !absl::StartsWith(s, "pg_");
}

void IgnoreNotice(void*, const char*) {}

template <typename Msg>
absl::StatusOr<Msg> ParseBody(const std::string& bytes,
                              absl::string_view what) {
  Msg m;
  if (!m.ParseFromString(bytes)) {
    return absl::DataLossError(absl::StrCat("unparseable ", what, " record"));
  }
  return m;
}

class PostgresStoreImpl final : public PostgresStore {
 public:
  PostgresStoreImpl(const PostgresStoreOptions& options, std::string password)
      : options_(options),
        redact_(std::move(password)),
        clock_(options.clock != nullptr ? options.clock : &RealClock()) {}

  ~PostgresStoreImpl() override {
    absl::MutexLock lock(&mu_);
    idle_.clear();
  }

  absl::Status Init() {
    // The schema, then schema_migrations, then one transaction per
    // migration. Another process may be doing the same: every step is
    // idempotent, and a migration's row is inserted first so that a
    // concurrent migrator waits on it and then fails with a unique violation
    // instead of applying the migration twice.
    return WithConn(false, [&](Conn& c) -> absl::Status {
      Params schema;
      schema.Text(options_.schema);
      ASSIGN_OR_RETURN(Result have,
                       c.Exec("looking up the schema",
                              "SELECT 1 FROM information_schema.schemata WHERE "
                              "schema_name = $1",
                              schema));
      if (have.rows() == 0) {
        absl::StatusOr<Result> r = c.ExecScript(
            "creating the schema",
            absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", options_.schema)
                .c_str());
        if (!r.ok() && !absl::IsAlreadyExists(r.status())) return r.status();
      }
      absl::StatusOr<Result> r = c.ExecScript(
          "creating schema_migrations",
          "CREATE TABLE IF NOT EXISTS schema_migrations("
          "version BIGINT PRIMARY KEY, applied_at_ns BIGINT NOT NULL)");
      if (!r.ok() && !absl::IsAlreadyExists(r.status())) return r.status();
      while (true) {
        ASSIGN_OR_RETURN(
            Result v,
            c.Exec("reading the schema version",
                   "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
        const int64_t version = v.Int(0, 0);
        if (version > kPostgresSchemaVersion) {
          return absl::FailedPreconditionError(absl::StrCat(
              "database schema \"", options_.schema, "\" is at version ",
              version, ", newer than this build supports (",
              kPostgresSchemaVersion, "); upgrade ringfence"));
        }
        if (version == kPostgresSchemaVersion) return absl::OkStatus();
        const int64_t next = version + 1;
        absl::Status s = TxOn(c, [&]() -> absl::Status {
          Params p;
          p.Int(next).Int(absl::ToUnixNanos(clock_->Now()));
          RETURN_IF_ERROR(c.Exec("recording the migration",
                                 "INSERT INTO schema_migrations(version, "
                                 "applied_at_ns) VALUES($1, $2)",
                                 p)
                              .status());
          return c.ExecScript("migrating", kMigrations[next - 1]).status();
        });
        if (absl::IsAlreadyExists(s)) continue;  // another process did it
        if (!s.ok()) {
          return absl::Status(
              s.code(), absl::StrCat("migrating schema to version ", next, ": ",
                                     s.message()));
        }
      }
    });
  }

  absl::Status PutRelease(const Release& release,
                          const AuditEntry& audit) override {
    return Tx([&](Conn& c) -> absl::Status {
      Params p;
      p.Text(release.id())
          .Text(release.content_type())
          .Bytes(release.SerializeAsString());
      absl::Status st = c.Exec("inserting the release",
                               "INSERT INTO releases(id, content_type, body) "
                               "VALUES($1, $2, $3)",
                               p)
                            .status();
      if (absl::IsAlreadyExists(st)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "release ", QuoteForError(release.id()), " already exists"));
      }
      RETURN_IF_ERROR(st);
      return AppendAuditOn(c, audit);
    });
  }

  absl::StatusOr<Release> GetRelease(absl::string_view id) override {
    Release out;
    RETURN_IF_ERROR(Read([&](Conn& c) -> absl::Status {
      Params p;
      p.Text(id);
      ASSIGN_OR_RETURN(Result r,
                       c.Exec("reading the release",
                              "SELECT body FROM releases WHERE id = $1", p));
      if (r.rows() == 0) {
        return absl::NotFoundError(
            absl::StrCat("release ", QuoteForError(id), " not found"));
      }
      ASSIGN_OR_RETURN(out, ParseBody<Release>(r.Text(0, 0), "release"));
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<std::vector<Release>> ListReleases() override {
    return ListBodies<Release>("release",
                               "SELECT body FROM releases ORDER BY ord");
  }

  absl::Status CreateRollout(const Rollout& rollout,
                             const AuditEntry& audit) override {
    return Tx([&](Conn& c) -> absl::Status {
      Params p;
      p.Text(rollout.id())
          .Text(rollout.content_type())
          .Int(static_cast<int64_t>(rollout.state()))
          .Int(static_cast<int64_t>(rollout.version()))
          .Bytes(rollout.SerializeAsString());
      absl::Status st =
          c.Exec("inserting the rollout",
                 "INSERT INTO rollouts(id, content_type, state, version, "
                 "body) VALUES($1, $2, $3, $4, $5)",
                 p)
              .status();
      if (absl::IsAlreadyExists(st)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "rollout ", QuoteForError(rollout.id()), " already exists"));
      }
      RETURN_IF_ERROR(st);
      return AppendAuditOn(c, audit);
    });
  }

  absl::Status CommitTransition(const Rollout& rollout,
                                uint64_t expected_version,
                                const AuditEntry& audit,
                                const Decision* decision) override {
    return Tx([&](Conn& c) -> absl::Status {
      Params id;
      id.Text(rollout.id());
      // FOR UPDATE: a concurrent committer in another process waits here
      // and then sees the new version.
      ASSIGN_OR_RETURN(
          Result get,
          c.Exec("reading the rollout version",
                 "SELECT version FROM rollouts WHERE id = $1 FOR UPDATE", id));
      if (get.rows() == 0) {
        return absl::NotFoundError(absl::StrCat(
            "rollout ", QuoteForError(rollout.id()), " not found"));
      }
      const uint64_t stored = static_cast<uint64_t>(get.Int(0, 0));
      if (stored != expected_version) {
        return absl::AbortedError(
            absl::StrCat("rollout ", QuoteForError(rollout.id()),
                         " changed concurrently (version ", stored,
                         ", expected ", expected_version, ")"));
      }
      Params p;
      p.Text(rollout.id())
          .Int(static_cast<int64_t>(rollout.state()))
          .Int(static_cast<int64_t>(rollout.version()))
          .Bytes(rollout.SerializeAsString());
      RETURN_IF_ERROR(c.Exec("updating the rollout",
                             "UPDATE rollouts SET state = $2, version = $3, "
                             "body = $4 WHERE id = $1",
                             p)
                          .status());
      if (decision != nullptr) RETURN_IF_ERROR(InsertDecisionOn(c, *decision));
      return AppendAuditOn(c, audit);
    });
  }

  absl::StatusOr<Rollout> GetRollout(absl::string_view id) override {
    Rollout out;
    RETURN_IF_ERROR(Read([&](Conn& c) -> absl::Status {
      Params p;
      p.Text(id);
      ASSIGN_OR_RETURN(Result r,
                       c.Exec("reading the rollout",
                              "SELECT body FROM rollouts WHERE id = $1", p));
      if (r.rows() == 0) {
        return absl::NotFoundError(
            absl::StrCat("rollout ", QuoteForError(id), " not found"));
      }
      ASSIGN_OR_RETURN(out, ParseBody<Rollout>(r.Text(0, 0), "rollout"));
      return absl::OkStatus();
    }));
    return out;
  }

  absl::StatusOr<std::vector<Rollout>> ListRollouts() override {
    return ListBodies<Rollout>("rollout",
                               "SELECT body FROM rollouts ORDER BY ord");
  }

  absl::Status AppendDecision(const Decision& decision) override {
    return Tx([&](Conn& c) { return InsertDecisionOn(c, decision); });
  }

  absl::StatusOr<std::vector<Decision>> ListDecisions(
      absl::string_view rollout_id, uint64_t after_seq) override {
    Params p;
    p.Text(rollout_id).Int(static_cast<int64_t>(after_seq));
    return ListBodies<Decision>("decision",
                                "SELECT body FROM decisions WHERE rollout_id "
                                "= $1 AND seq > $2 ORDER BY seq",
                                p);
  }

  // One multi-row INSERT per chunk, all in one transaction; ON CONFLICT DO
  // NOTHING keeps the first record of a host (idempotent).
  absl::Status RecordExposures(absl::string_view rollout_id,
                               absl::Span<const Exposure> exposures) override {
    if (exposures.empty()) return absl::OkStatus();
    constexpr size_t kChunk = 500;
    return Tx([&](Conn& c) -> absl::Status {
      for (size_t start = 0; start < exposures.size(); start += kChunk) {
        const size_t end = std::min(exposures.size(), start + kChunk);
        std::string sql =
            "INSERT INTO exposures(rollout_id, host_id, stage, at_ns, "
            "granted) VALUES";
        Params p;
        p.Text(rollout_id);
        int n = 2;
        for (size_t i = start; i < end; ++i) {
          const Exposure& e = exposures[i];
          absl::StrAppend(&sql, i == start ? "" : ",", "($1, $", n, ", $",
                          n + 1, ", $", n + 2, ", $", n + 3, ")");
          n += 4;
          p.Text(e.host_id)
              .Int(static_cast<int64_t>(e.stage))
              .Int(absl::ToUnixNanos(e.at))
              .Int(e.granted ? 1 : 0);
        }
        sql += " ON CONFLICT (rollout_id, host_id) DO NOTHING";
        RETURN_IF_ERROR(c.Exec("recording exposures", sql.c_str(), p).status());
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::vector<Exposure>> ListExposures(
      absl::string_view rollout_id) override {
    std::vector<Exposure> out;
    RETURN_IF_ERROR(Read([&](Conn& c) -> absl::Status {
      out.clear();
      Params p;
      p.Text(rollout_id);
      ASSIGN_OR_RETURN(Result r,
                       c.Exec("listing exposures",
                              "SELECT host_id, stage, at_ns, granted FROM "
                              "exposures WHERE rollout_id = $1",
                              p));
      for (int i = 0; i < r.rows(); ++i) {
        out.push_back({r.Text(i, 0), static_cast<uint32_t>(r.Int(i, 1)),
                       absl::FromUnixNanos(r.Int(i, 2)), r.Int(i, 3) != 0});
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status SetEmergencyStop(const EmergencyStop& stop,
                                const AuditEntry& audit) override {
    return Tx([&](Conn& c) -> absl::Status {
      Params p;
      p.Text(stop.content_type)
          .Text(stop.actor)
          .Text(stop.reason)
          .Int(absl::ToUnixNanos(stop.at));
      RETURN_IF_ERROR(
          c.Exec("setting the emergency stop",
                 "INSERT INTO emergency_stops(content_type, actor, reason, "
                 "at_ns) VALUES($1, $2, $3, $4) ON CONFLICT (content_type) "
                 "DO UPDATE SET actor = EXCLUDED.actor, reason = "
                 "EXCLUDED.reason, at_ns = EXCLUDED.at_ns",
                 p)
              .status());
      return AppendAuditOn(c, audit);
    });
  }

  absl::Status ClearEmergencyStop(absl::string_view content_type,
                                  const AuditEntry& audit) override {
    return Tx([&](Conn& c) -> absl::Status {
      Params p;
      p.Text(content_type);
      ASSIGN_OR_RETURN(
          Result r,
          c.Exec("clearing the emergency stop",
                 "DELETE FROM emergency_stops WHERE content_type = $1", p));
      if (r.affected() == 0) {
        return absl::NotFoundError(absl::StrCat("content type ",
                                                QuoteForError(content_type),
                                                " has no emergency stop"));
      }
      return AppendAuditOn(c, audit);
    });
  }

  absl::StatusOr<std::vector<EmergencyStop>> ListEmergencyStops() override {
    std::vector<EmergencyStop> out;
    RETURN_IF_ERROR(Read([&](Conn& c) -> absl::Status {
      out.clear();
      ASSIGN_OR_RETURN(Result r, c.Exec("listing emergency stops",
                                        "SELECT content_type, actor, reason, "
                                        "at_ns FROM emergency_stops ORDER BY "
                                        "content_type"));
      for (int i = 0; i < r.rows(); ++i) {
        out.push_back({r.Text(i, 0), r.Text(i, 1), r.Text(i, 2),
                       absl::FromUnixNanos(r.Int(i, 3))});
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status PutCheckpoint(absl::string_view rollout_id,
                             absl::string_view bytes,
                             absl::Span<const HostEvidence> evidence) override {
    return Tx([&](Conn& c) -> absl::Status {
      Params p;
      p.Text(rollout_id).Int(absl::ToUnixNanos(clock_->Now())).Bytes(bytes);
      RETURN_IF_ERROR(
          c.Exec("writing the checkpoint",
                 "INSERT INTO checkpoints(rollout_id, at_ns, body) "
                 "VALUES($1, $2, $3) ON CONFLICT (rollout_id) DO UPDATE SET "
                 "at_ns = EXCLUDED.at_ns, body = EXCLUDED.body",
                 p)
              .status());
      // One statement per record: a multi-row upsert may not touch a key
      // twice, and a batch may repeat one (the last record wins, as in the
      // SQLite store).
      for (const HostEvidence& h : evidence) {
        Params e;
        e.Text(rollout_id)
            .Int(static_cast<int64_t>(h.host_key))
            .Int(h.exposed ? 1 : 0)
            .Int(static_cast<int64_t>(h.stage))
            .Int(h.exposed ? absl::ToUnixNanos(h.exposed_at) : 0)
            .Int(static_cast<int64_t>(h.flags))
            .Int(static_cast<int64_t>(h.affected))
            .Int(static_cast<int64_t>(h.pre_affected))
            .Int(internal::LoadingSinceNanos(h));
        RETURN_IF_ERROR(
            c.Exec("writing host evidence",
                   "INSERT INTO host_evidence(rollout_id, host_key, exposed, "
                   "stage, exposed_at_ns, flags, affected, pre_affected, "
                   "loading_since_ns) VALUES($1, $2, $3, $4, $5, $6, $7, $8, "
                   "$9) ON CONFLICT (rollout_id, host_key) DO UPDATE SET "
                   "exposed = EXCLUDED.exposed, stage = EXCLUDED.stage, "
                   "exposed_at_ns = EXCLUDED.exposed_at_ns, flags = "
                   "EXCLUDED.flags, affected = EXCLUDED.affected, "
                   "pre_affected = EXCLUDED.pre_affected, loading_since_ns = "
                   "EXCLUDED.loading_since_ns",
                   e)
                .status());
      }
      return absl::OkStatus();
    });
  }

  absl::StatusOr<std::string> GetCheckpoint(
      absl::string_view rollout_id) override {
    std::string out;
    RETURN_IF_ERROR(Read([&](Conn& c) -> absl::Status {
      Params p;
      p.Text(rollout_id);
      ASSIGN_OR_RETURN(
          Result r,
          c.Exec("reading the checkpoint",
                 "SELECT body FROM checkpoints WHERE rollout_id = $1", p));
      if (r.rows() == 0) {
        return absl::NotFoundError(absl::StrCat("no checkpoint for rollout ",
                                                QuoteForError(rollout_id)));
      }
      out = r.Text(0, 0);
      return absl::OkStatus();
    }));
    return out;
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
        "$1",
        exposed_only ? " AND exposed = 1" : "");
    std::vector<HostEvidence> out;
    RETURN_IF_ERROR(Read([&](Conn& c) -> absl::Status {
      out.clear();
      Params p;
      p.Text(rollout_id);
      ASSIGN_OR_RETURN(Result r,
                       c.Exec("listing host evidence", sql.c_str(), p));
      for (int i = 0; i < r.rows(); ++i) {
        HostEvidence h;
        h.host_key = static_cast<uint64_t>(r.Int(i, 0));
        h.exposed = r.Int(i, 1) != 0;
        h.stage = static_cast<uint32_t>(r.Int(i, 2));
        h.exposed_at = absl::FromUnixNanos(r.Int(i, 3));
        h.flags = static_cast<uint32_t>(r.Int(i, 4));
        h.affected = static_cast<uint32_t>(r.Int(i, 5));
        h.pre_affected = static_cast<uint32_t>(r.Int(i, 6));
        h.loading_since = internal::LoadingSinceFromNanos(r.Int(i, 7));
        out.push_back(h);
      }
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status AppendAudit(const AuditEntry& audit) override {
    return Tx([&](Conn& c) { return AppendAuditOn(c, audit); });
  }

  absl::StatusOr<std::vector<AuditEntry>> ReadAudit(uint64_t after_seq,
                                                    size_t limit) override {
    std::vector<AuditEntry> out;
    RETURN_IF_ERROR(Read([&](Conn& c) -> absl::Status {
      out.clear();
      Params p;
      p.Int(static_cast<int64_t>(after_seq))
          .Int(static_cast<int64_t>(
              std::min<uint64_t>(limit, static_cast<uint64_t>(INT64_MAX))));
      ASSIGN_OR_RETURN(Result r, c.Exec("reading the audit log",
                                        "SELECT seq, body, hash FROM audit "
                                        "WHERE seq > $1 ORDER BY seq LIMIT $2",
                                        p));
      for (int i = 0; i < r.rows(); ++i) {
        AuditEntry e;
        if (!e.ParseFromString(r.Text(i, 1))) {
          // Keep going: VerifyAuditLog reports the broken link.
          e.Clear();
        }
        // The row's seq and hash columns are what later entries chain to.
        e.set_seq(static_cast<uint64_t>(r.Int(i, 0)));
        if (e.hash().empty()) e.set_hash(r.Text(i, 2));
        out.push_back(std::move(e));
      }
      return absl::OkStatus();
    }));
    return out;
  }

  // A write that changes nothing: upsert and delete a checkpoint under an id
  // no rollout can have (""), committed. Fails as real work would if the
  // server is unreachable, read-only or out of space.
  absl::StatusOr<std::optional<uint64_t>> GetWebhookCursor(
      absl::string_view name) override {
    std::optional<uint64_t> out;
    RETURN_IF_ERROR(Read([&](Conn& c) -> absl::Status {
      Params p;
      p.Text(name);
      ASSIGN_OR_RETURN(
          Result r,
          c.Exec("reading a webhook cursor",
                 "SELECT seq FROM webhook_cursors WHERE name = $1", p));
      out.reset();
      if (r.rows() > 0) out = static_cast<uint64_t>(r.Int(0, 0));
      return absl::OkStatus();
    }));
    return out;
  }

  absl::Status PutWebhookCursor(absl::string_view name, uint64_t seq) override {
    return Tx([&](Conn& c) -> absl::Status {
      Params p;
      p.Text(name).Int(static_cast<int64_t>(seq));
      return c
          .Exec("writing a webhook cursor",
                "INSERT INTO webhook_cursors(name, seq) VALUES($1, $2) "
                "ON CONFLICT (name) DO UPDATE SET seq = EXCLUDED.seq",
                p)
          .status();
    });
  }

  absl::Status Probe() override {
    return Tx([&](Conn& c) -> absl::Status {
      Params p;
      p.Int(absl::ToUnixNanos(clock_->Now()));
      RETURN_IF_ERROR(c.Exec("probing (write)",
                             "INSERT INTO checkpoints(rollout_id, at_ns, body) "
                             "VALUES('', $1, '') ON CONFLICT (rollout_id) DO "
                             "UPDATE SET at_ns = EXCLUDED.at_ns",
                             p)
                          .status());
      return c
          .Exec("probing (delete)",
                "DELETE FROM checkpoints WHERE rollout_id = ''")
          .status();
    });
  }

  absl::StatusOr<PostgresLease> AcquireLease(absl::string_view replica_id,
                                             absl::Duration ttl) override {
    if (replica_id.empty()) {
      return absl::InvalidArgumentError("lease: replica_id must not be empty");
    }
    if (ttl < absl::Milliseconds(1)) {
      return absl::InvalidArgumentError(
          absl::StrCat("lease: ttl must be at least 1ms (got ",
                       absl::FormatDuration(ttl), ")"));
    }
    absl::MutexLock acquiring(&acquire_mu_);
    {
      absl::MutexLock lock(&lease_mu_);
      if (!superseded_.ok()) return superseded_;
    }
    const int64_t epoch = fenced_epoch_.load(std::memory_order_acquire);
    if (epoch != 0 && replica_id != replica_id_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "lease: this store holds epoch ", epoch, " as replica ",
          QuoteForError(replica_id_), ", not ", QuoteForError(replica_id)));
    }
    bool updated = false;
    absl::StatusOr<LeaseRow> row;
    // Not a transaction of Tx: the lease's own statement is not fenced.
    RETURN_IF_ERROR(WithConn(false, [&](Conn& c) -> absl::Status {
      row = internal::UpdateLeaseOn(c, replica_id, epoch, ttl, &updated);
      return row.status();
    }));
    if (epoch != 0 && !updated) {
      absl::Status error = internal::SupersededError(
          epoch, *row, "this replica must stop acting for the cluster");
      NoteSuperseded(error);
      return error;
    }
    if (epoch == 0 && updated) {
      replica_id_ = std::string(replica_id);
      fenced_epoch_.store(row->epoch, std::memory_order_release);
    }
    PostgresLease out;
    out.held = updated;
    out.holder = row->holder;
    out.epoch = row->epoch;
    out.remaining = row->remaining;
    return out;
  }

  absl::Status ReleaseLease() override {
    absl::MutexLock acquiring(&acquire_mu_);
    const int64_t epoch = fenced_epoch_.load(std::memory_order_acquire);
    if (epoch == 0) return absl::OkStatus();
    return WithConn(false,
                    [&](Conn& c) { return internal::ExpireLeaseOn(c, epoch); });
  }

  int64_t fenced_epoch() const override {
    return fenced_epoch_.load(std::memory_order_acquire);
  }

  absl::Status RecordReplica(absl::string_view replica_id,
                             absl::string_view address) override {
    if (replica_id.empty()) {
      return absl::InvalidArgumentError(
          "replicas: replica_id must not be empty");
    }
    // Unfenced, like the lease's own statement: standbys record themselves
    // too. The role comes from the lease row in the same statement, so a
    // replica whose epoch was superseded records itself as a standby.
    return WithConn(false, [&](Conn& c) -> absl::Status {
      return internal::RecordReplicaOn(
                 c, replica_id, address,
                 fenced_epoch_.load(std::memory_order_acquire),
                 kForgetReplicasAfter)
          .status();
    });
  }

  absl::StatusOr<ClusterView> ReadCluster() override {
    ClusterView view;
    RETURN_IF_ERROR(Read([&](Conn& c) -> absl::Status {
      ASSIGN_OR_RETURN(view, internal::ReadClusterOn(c, kMaxClusterReplicas));
      return absl::OkStatus();
    }));
    return view;
  }

 private:
  using ConnPtr = std::unique_ptr<Conn>;

  // Takes an idle connection, or opens one if fewer than pool_size are open,
  // or waits for one to be returned.
  absl::StatusOr<ConnPtr> Acquire() {
    {
      absl::MutexLock lock(&mu_);
      const absl::Time deadline =
          absl::Now() + options_.connect_timeout + options_.statement_timeout;
      while (idle_.empty() && open_ >= options_.pool_size) {
        if (cv_.WaitWithDeadline(&mu_, deadline) && idle_.empty() &&
            open_ >= options_.pool_size) {
          return absl::UnavailableError(absl::StrCat(
              "all ", options_.pool_size, " PostgreSQL connections are busy"));
        }
      }
      if (!idle_.empty()) {
        ConnPtr c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
      ++open_;  // reserved; connect outside the lock
    }
    absl::StatusOr<ConnPtr> c = Connect();
    if (!c.ok()) {
      absl::MutexLock lock(&mu_);
      --open_;
      cv_.Signal();
    }
    return c;
  }

  void ReturnConn(ConnPtr c) {
    const bool broken = c->broken();
    std::vector<ConnPtr> dropped;
    {
      absl::MutexLock lock(&mu_);
      if (broken) {
        // The server probably restarted: the idle connections are likely
        // dead too. Drop them all; the next calls connect afresh.
        open_ -= 1 + static_cast<int>(idle_.size());
        dropped.swap(idle_);
      } else {
        idle_.push_back(std::move(c));
      }
      cv_.SignalAll();
    }
    // PQfinish outside the lock (`c` and `dropped` die here).
  }

  absl::StatusOr<ConnPtr> Connect() {
    const std::string timeout = absl::StrCat(std::max<int64_t>(
        2, absl::ToInt64Seconds(options_.connect_timeout + absl::Seconds(1) -
                                absl::Nanoseconds(1))));
    const std::string user_timeout = absl::StrCat(absl::ToInt64Milliseconds(
        options_.connect_timeout + options_.statement_timeout));
    // Keywords after the dsn ("dbname", expanded) override what it sets;
    // those before it are defaults it may override. (libpq ignores the TCP
    // ones on Unix sockets.)
    const char* keys[] = {"tcp_user_timeout",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "dbname",
                          "connect_timeout",
                          "fallback_application_name",
                          nullptr};
    const char* values[] = {user_timeout.c_str(),
                            "1",
                            "10",
                            "5",
                            "3",
                            options_.dsn.c_str(),
                            timeout.c_str(),
                            "ringfence",
                            nullptr};
    PGconn* raw = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (raw == nullptr) {
      return absl::ResourceExhaustedError(
          "cannot allocate a PostgreSQL connection");
    }
    auto c = std::make_unique<Conn>(raw, &redact_);
    if (PQstatus(raw) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(raw);
      absl::StripAsciiWhitespace(&msg);
      return absl::UnavailableError(
          redact_(absl::StrCat("cannot connect to PostgreSQL: ", msg)));
    }
    PQsetNoticeProcessor(raw, IgnoreNotice, nullptr);
    // Session settings; the schema name was validated (no quoting needed).
    RETURN_IF_ERROR(
        c->ExecScript(
             "setting up the session",
             absl::StrCat(
                 "SET search_path TO ", options_.schema,
                 "; SET statement_timeout = ",
                 absl::ToInt64Milliseconds(options_.statement_timeout),
                 options_.idle_in_transaction_timeout > absl::ZeroDuration()
                     ? absl::StrCat(
                           "; SET idle_in_transaction_session_timeout = ",
                           std::max<int64_t>(
                               1, absl::ToInt64Milliseconds(
                                      options_.idle_in_transaction_timeout)))
                     : "")
                 .c_str())
            .status());
    return c;
  }

  // Runs `body` on a pooled connection. `retry_read`: if the connection
  // turns out broken, run it once more on a fresh one (reads only).
  absl::Status WithConn(bool retry_read,
                        const std::function<absl::Status(Conn&)>& body) {
    for (int attempt = 0;; ++attempt) {
      ASSIGN_OR_RETURN(ConnPtr c, Acquire());
      absl::Status s = body(*c);
      const bool broken = c->broken();
      ReturnConn(std::move(c));
      if (broken && retry_read && attempt == 0) continue;
      return s;
    }
  }

  absl::Status Read(const std::function<absl::Status(Conn&)>& body) {
    return WithConn(true, body);
  }

  template <typename Msg>
  absl::StatusOr<std::vector<Msg>> ListBodies(absl::string_view what,
                                              const char* sql,
                                              const Params& p = Params()) {
    std::vector<Msg> out;
    RETURN_IF_ERROR(Read([&](Conn& c) -> absl::Status {
      out.clear();
      ASSIGN_OR_RETURN(Result r,
                       c.Exec(absl::StrCat("listing ", what, "s"), sql, p));
      for (int i = 0; i < r.rows(); ++i) {
        ASSIGN_OR_RETURN(Msg m, ParseBody<Msg>(r.Text(i, 0), what));
        out.push_back(std::move(m));
      }
      return absl::OkStatus();
    }));
    return out;
  }

  // Runs `body` in a transaction on `c`: commit if it returns OK, roll back
  // otherwise.
  static absl::Status TxOn(Conn& c, const std::function<absl::Status()>& body) {
    RETURN_IF_ERROR(c.ExecScript("beginning a transaction", "BEGIN").status());
    absl::Status s = body();
    if (s.ok()) {
      absl::StatusOr<Result> r = c.ExecScript("committing", "COMMIT");
      if (!r.ok()) {
        s = r.status();
      } else if (r->command() != "COMMIT") {
        s = absl::AbortedError("the transaction was rolled back");
      }
      if (s.ok()) return s;
    }
    if (!c.broken() && PQtransactionStatus(c.raw()) != PQTRANS_IDLE) {
      (void)c.ExecScript("rolling back", "ROLLBACK");
    }
    return s;
  }

  // Runs `body` in a transaction. A store fenced to an epoch (AcquireLease)
  // first locks the lease row FOR SHARE and checks the epoch: a takeover
  // then waits for this transaction, and if one came first, nothing is
  // written.
  absl::Status Tx(const std::function<absl::Status(Conn&)>& body) {
    const int64_t epoch = fenced_epoch_.load(std::memory_order_acquire);
    if (epoch != 0) {
      absl::MutexLock lock(&lease_mu_);
      // Epochs only grow: a superseded store stays superseded.
      if (!superseded_.ok()) return superseded_;
    }
    std::optional<LeaseRow> newer;
    absl::Status s = WithConn(false, [&](Conn& c) {
      return TxOn(c, [&]() -> absl::Status {
        if (epoch != 0) {
          ASSIGN_OR_RETURN(LeaseRow row, internal::LockLeaseOn(c));
          if (row.epoch != epoch) {
            newer = row;
            return internal::SupersededError(
                epoch, row, "the write was refused: nothing was written");
          }
        }
        return body(c);
      });
    });
    if (newer.has_value()) NoteSuperseded(s);
    return s;
  }

  // Records that this store's epoch was superseded (`error` says by whom)
  // and tells options_.on_superseded, once.
  void NoteSuperseded(const absl::Status& error) {
    {
      absl::MutexLock lock(&lease_mu_);
      if (!superseded_.ok()) return;
      superseded_ = error;
    }
    if (options_.on_superseded) options_.on_superseded(error);
  }

  absl::Status InsertDecisionOn(Conn& c, const Decision& decision) {
    Params p;
    p.Text(decision.rollout_id())
        .Int(static_cast<int64_t>(decision.seq()))
        .Int(static_cast<int64_t>(decision.verdict()))
        .Bytes(decision.SerializeAsString());
    absl::Status st = c.Exec("inserting the decision",
                             "INSERT INTO decisions(rollout_id, seq, verdict, "
                             "body) VALUES($1, $2, $3, $4)",
                             p)
                          .status();
    if (absl::IsAlreadyExists(st)) {
      return absl::AlreadyExistsError(absl::StrCat(
          "decision ", decision.seq(), " of rollout ",
          QuoteForError(decision.rollout_id()), " already recorded"));
    }
    return st;
  }

  // Appends within the caller's transaction. Locking the head row orders
  // appenders across connections and processes; it is taken last so that
  // it is held briefly.
  absl::Status AppendAuditOn(Conn& c, const AuditEntry& audit) {
    ASSIGN_OR_RETURN(Result head,
                     c.Exec("locking the audit head",
                            "SELECT seq, hash FROM audit_head WHERE id = 1 "
                            "FOR UPDATE"));
    if (head.rows() != 1) {
      return absl::DataLossError("the audit head row is missing");
    }
    AuditEntry e = audit;
    e.set_seq(static_cast<uint64_t>(head.Int(0, 0)) + 1);
    ChainAuditEntry(head.Text(0, 1), &e);
    Params p;
    p.Int(static_cast<int64_t>(e.seq()))
        .Int(e.at().seconds() * 1000000000LL + e.at().nanos())
        .Text(e.actor())
        .Text(e.action())
        .Text(e.rollout_id())
        .Bytes(e.SerializeAsString())
        .Text(e.hash())
        .Int(fenced_epoch_.load(std::memory_order_acquire));
    RETURN_IF_ERROR(c.Exec("appending to the audit log",
                           "INSERT INTO audit(seq, at_ns, actor, action, "
                           "rollout_id, body, hash, epoch) VALUES($1, $2, $3, "
                           "$4, $5, $6, $7, $8)",
                           p)
                        .status());
    Params h;
    h.Int(static_cast<int64_t>(e.seq())).Text(e.hash());
    return c
        .Exec("advancing the audit head",
              "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", h)
        .status();
  }

  const PostgresStoreOptions options_;
  const Redactor redact_;
  const Clock* const clock_;

  // Serializes AcquireLease.
  absl::Mutex acquire_mu_ ABSL_ACQUIRED_BEFORE(lease_mu_);
  // The replica the lease was taken for.
  std::string replica_id_ ABSL_GUARDED_BY(acquire_mu_);
  // The epoch this store holds (0: none); set once, by AcquireLease.
  std::atomic<int64_t> fenced_epoch_{0};
  absl::Mutex lease_mu_;
  // Not OK once the epoch was superseded: the error every write returns.
  absl::Status superseded_ ABSL_GUARDED_BY(lease_mu_);

  absl::Mutex mu_;
  absl::CondVar cv_;
  std::vector<ConnPtr> idle_ ABSL_GUARDED_BY(mu_);
  // Connections open or being opened, idle or in use.
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

absl::StatusOr<PostgresStorePtr> OpenPostgresStore(
    const PostgresStoreOptions& options) {
  if (options.dsn.empty()) {
    return absl::InvalidArgumentError("postgres dsn: must not be empty");
  }
  if (!ValidSchemaName(options.schema)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "postgres schema ", QuoteForError(options.schema),
        ": use lower-case letters, digits and '_' (at most 63, not starting "
        "with a digit or pg_)"));
  }
  if (options.pool_size < 1 || options.pool_size > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "postgres pool_size ", options.pool_size, ": must be 1..1000"));
  }
  if (options.connect_timeout <= absl::ZeroDuration() ||
      options.statement_timeout < absl::ZeroDuration() ||
      options.idle_in_transaction_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "postgres timeouts: connect_timeout must be positive, "
        "statement_timeout and idle_in_transaction_timeout not negative");
  }
  // Parse the dsn only to learn the password (to keep it out of messages).
  // libpq's parse error may quote the dsn, so it is not passed on.
  char* err = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(options.dsn.c_str(), &err);
  if (parsed == nullptr) {
    PQfreemem(err);
    return absl::InvalidArgumentError(
        "postgres dsn: malformed connection string (not shown: it may hold a "
        "password)");
  }
  std::string password;
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (std::strcmp(o->keyword, "password") == 0 && o->val != nullptr) {
      password = o->val;
    }
  }
  PQconninfoFree(parsed);
  auto store =
      std::make_unique<PostgresStoreImpl>(options, std::move(password));
  RETURN_IF_ERROR(store->Init());
  return PostgresStorePtr(std::move(store));
}

}  // namespace ringfence
