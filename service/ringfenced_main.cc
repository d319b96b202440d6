// ringfenced: the ringfence gRPC server.
//
//   ringfenced    # 127.0.0.1:7443, ./ringfence-data, no authentication
//                 # (loopback only: elsewhere it needs tokens, mutual TLS
//                 # or --insecure_no_auth)
//   ringfenced --listen=0.0.0.0:7443 --data_dir=/var/lib/ringfence
//              --auth_tokens_file=/etc/ringfence/tokens
//              --tls_cert=server.pem --tls_key=server.key
//              [--client_ca=agents-ca.pem]   # mutual TLS
//              [--trusted_keys_file=/etc/ringfence/publisher-keys
//               --require_signatures]           # signed releases only
//              [--content_rules=/etc/ringfence/content-rules.textproto]
//              [--http_listen=0.0.0.0:8443]   # HTTP/JSON API and /metrics
//   ringfenced --store=postgres --postgres_dsn_file=/etc/ringfence/pg-dsn
//              # or the DSN in $RINGFENCE_POSTGRES_DSN; never on the
//              # command line (it may hold a password)
//              [--replica_id=db-a:7443 --lease_ttl=10s]
//              # replicas on one database: one leads (service/README.md)
//              [--webhooks_file=/etc/ringfence/webhooks.textproto]
//              # HTTP POSTs of halts, pauses, ... (service/README.md)
//
// Opens the store (SQLite in --data_dir, or PostgreSQL), resumes every
// rollout, serves the
// API, and evaluates every active rollout's gate each --tick_interval (and
// then refreshes the Fleet service's health from the store's).
// SIGTERM or SIGINT shuts down gracefully (calls in flight get
// --shutdown_grace) and exits 0; every state change was committed when it
// was made, so a restart resumes where it stopped.
//
// With --store=postgres several replicas may share the database: each
// stands by (StandbyServer) until it takes the lease, then restores the
// state from the store and serves, renewing the lease every tick. A leader
// that finds its lease taken over exits at once with status 3
// (kExitSuperseded), having written nothing since, for its supervisor to
// restart it as a standby. A leader shutting down gracefully releases the
// lease, for a standby to take over at its next tick.
#include <curl/curl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/error_text.h"
#include "ringfence/model.h"
#include "ringfence/postgres_store.h"
#include "ringfence/release_check.h"
#include "ringfence/signing.h"
#include "ringfence/sqlite_store.h"
#include "ringfence/status_macros.h"
#include "service/auth.h"
#include "service/cluster_service.h"
#include "service/http_server.h"
#include "service/replica_startup.h"
#include "service/server.h"
#include "service/tls.h"
#include "service/webhook_config.h"
#include "service/webhook_notifier.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7443",
          "address to listen on, host:port (port 0: any free port)");
ABSL_FLAG(std::string, port_file, "",
          "if set, write the bound port to this file once serving");
ABSL_FLAG(std::string, http_listen, "",
          "if set, also serve the HTTP/JSON API and GET /metrics on this "
          "host:port (port 0: any free port); HTTPS with --tls_cert. HTTP "
          "callers authenticate by bearer token, or over HTTPS with "
          "--client_ca by a client certificate naming a principal");
ABSL_FLAG(std::string, http_port_file, "",
          "if set, write the bound HTTP port to this file once serving");
ABSL_FLAG(bool, metrics_no_auth, false,
          "serve GET /metrics without a token even with --auth_tokens_file "
          "(default: /metrics needs a publisher, operator or admin token)");
ABSL_FLAG(int32_t, http_max_body_bytes, 1 << 20,
          "largest HTTP request body accepted (bytes); larger: 413");
ABSL_FLAG(std::string, data_dir, "./ringfence-data",
          "directory of the SQLite store (created if missing)");
ABSL_FLAG(std::string, store, "sqlite",
          "where state is kept: sqlite (a file in --data_dir) or postgres "
          "(a PostgreSQL database several replicas can share; DSN from "
          "--postgres_dsn_file or $RINGFENCE_POSTGRES_DSN)");
ABSL_FLAG(std::string, postgres_dsn_file, "",
          "with --store=postgres: file holding the libpq connection string "
          "(it may hold a password: keep the file private); if empty, the "
          "environment variable RINGFENCE_POSTGRES_DSN");
ABSL_FLAG(std::string, postgres_schema, "ringfence",
          "with --store=postgres: schema of ringfence's tables (created if "
          "missing)");
ABSL_FLAG(int32_t, postgres_pool_size, 4,
          "with --store=postgres: most database connections open at once");
ABSL_FLAG(std::string, replica_id, "",
          "with --store=postgres: this replica's name in the lease that "
          "elects the one replica that acts (default: <hostname>:<port>); "
          "unique per replica, and kept across its restarts");
ABSL_FLAG(std::string, advertise_address, "",
          "the gRPC address other machines reach this replica at, as cluster "
          "status reports it (default: the --listen host and the bound port; "
          "for a wildcard host, <hostname>:<port>)");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(10),
          "with --store=postgres: how long the leader's lease lasts without "
          "renewal (it renews every --tick_interval); when the leader dies, "
          "another replica takes over within about this plus one tick. At "
          "least 3 ticks and 100ms, at most 1h");
ABSL_FLAG(absl::Duration, follower_poll_interval, absl::Milliseconds(250),
          "with --store=postgres: how often a standby re-reads the rollout "
          "state it answers GetAssignment from, and checks that it is "
          "fresh for its Fleet health (10ms to 10s)");
ABSL_FLAG(absl::Duration, follower_max_staleness, absl::Seconds(1),
          "with --store=postgres: a standby answers GetAssignment from its "
          "snapshot only while it is at most this old (so it sees a halt or "
          "emergency stop at most this long after its commit); older, it "
          "answers UNAVAILABLE naming the leader. At least 2 poll intervals, "
          "at most 1m");
ABSL_FLAG(absl::Duration, follower_forward_deadline, absl::Seconds(2),
          "with --store=postgres: how long a standby waits for the leader "
          "when it forwards a GetAssignment that would grant an exposure "
          "(past it, the host is granted nothing), a ReportTelemetry or a "
          "StreamTelemetry message (past it, UNAVAILABLE); 10ms to 1m");
ABSL_FLAG(
    std::string, auth_tokens_file, "",
    "bearer tokens, one \"token role actor\" per line (roles: host, relay, "
    "publisher, operator, admin); empty: no authentication, every "
    "caller is admin (refused on a non-loopback --listen without "
    "--client_ca or --insecure_no_auth)");
ABSL_FLAG(bool, insecure_no_auth, false,
          "serve without --auth_tokens_file and without mutual TLS on an "
          "address other machines can reach: every caller is admin");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain of the server (with --tls_key: serve TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::ZeroDuration(),
          "re-read --tls_cert, --tls_key and --client_ca this often (whole "
          "seconds, at least 1s) and serve what they hold, for certificate "
          "rotation without a restart; 0 = read once at startup");
ABSL_FLAG(std::string, client_ca, "",
          "PEM CA certificates; if set, every gRPC client must present a "
          "certificate signed by one of them (mutual TLS), and HTTPS "
          "clients may");
ABSL_FLAG(uint64_t, max_batch_events, 100000,
          "largest telemetry batch accepted (events)");
ABSL_FLAG(uint64_t, max_inflight_events, 1000000,
          "most telemetry events held at once across all calls; a batch that "
          "would go over fails with RESOURCE_EXHAUSTED (retry later)");
ABSL_FLAG(int32_t, max_message_bytes, 16 << 20,
          "largest request message accepted (bytes)");
ABSL_FLAG(int32_t, max_streams_per_connection, 100,
          "calls open at once on one client connection (HTTP/2 streams); "
          "further calls on it wait");
ABSL_FLAG(int64_t, max_db_bytes, 0,
          "largest size of the SQLite database (bytes); writes beyond it fail "
          "and the server fails closed (0 = only the disk limits it)");
ABSL_FLAG(absl::Duration, tick_interval, absl::Seconds(1),
          "how often every active rollout's gate is evaluated");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "on SIGTERM, how long calls in flight may take before they are "
          "cancelled");
ABSL_FLAG(std::string, fleet_config, "",
          "optional FleetConfig file (text-proto or JSON): tenants and tracks");
ABSL_FLAG(std::string, trusted_keys_file, "",
          "publisher keys whose release signatures are accepted: lines "
          "`key_id path/to/key.pub` (Ed25519 PEM public key; a relative "
          "path is relative to this file's directory; '#' comments). A "
          "signed release must verify against them");
ABSL_FLAG(bool, require_signatures, false,
          "refuse unsigned releases (FAILED_PRECONDITION); needs "
          "--trusted_keys_file");
ABSL_FLAG(std::string, content_rules, "",
          "optional content rules file (ringfence.content.v1.ContentRules, "
          "text-proto or JSON): per content type, the schema, the agents' "
          "capability manifest and external validators that CreateRelease "
          "and ValidateRelease check payloads against");
ABSL_FLAG(int32_t, max_concurrent_validations, 4,
          "content validations (calls sending a payload) run at once; more "
          "get RESOURCE_EXHAUSTED");
ABSL_FLAG(uint64_t, expected_hosts, 0,
          "hosts per rollout, to size its host table up front (about 28.5 "
          "bytes per host at 10M hosts, against 28 to 42 when the table "
          "grows on demand); 0 = grow");
ABSL_FLAG(bool, mutex_deadlock_detection, false,
          "keep Abseil's lock-order checking on (a debugging aid, on in "
          "Abseil builds without NDEBUG such as Debian's; it takes a global "
          "lock on every mutex acquisition, gRPC's included)");
ABSL_FLAG(bool, ack_telemetry_after_checkpoint, true,
          "answer ReportTelemetry / StreamTelemetry batches only once they "
          "are in a committed checkpoint (at most one --tick_interval "
          "later), so that a crash of the server loses no acknowledged "
          "event; false answers at once (faster, and up to a checkpoint "
          "interval of acknowledged evidence is lost in a crash)");
ABSL_FLAG(std::string, webhooks_file, "",
          "optional ringfence.v1.WebhookConfig file (text-proto or JSON): "
          "webhooks POSTed a signed JSON notification of every halt, abort, "
          "pause, resume, promotion, completion and emergency stop; their "
          "delivery cursors live in the store");
ABSL_FLAG(absl::Duration, webhook_timeout, absl::Seconds(10),
          "longest a webhook POST may take");
ABSL_FLAG(absl::Duration, webhook_backoff_initial, absl::Seconds(1),
          "delay before a failed webhook POST is retried; doubles with each "
          "further failure (with jitter) up to --webhook_backoff_max");
ABSL_FLAG(absl::Duration, webhook_backoff_max, absl::Minutes(5),
          "longest delay between retries of a webhook POST");
ABSL_FLAG(absl::Duration, webhook_poll_interval, absl::Milliseconds(500),
          "how often the webhook workers read the audit log for new entries");
ABSL_FLAG(absl::Duration, testing_ingest_delay, absl::ZeroDuration(),
          "testing only: hold every telemetry batch this long before "
          "ingesting it (slow ingestion on purpose)");

namespace {

// The exit status of a leader whose lease another replica took over.
constexpr int kExitSuperseded = 3;

void Log(const std::string& message) {
  std::fprintf(
      stderr, "%s ringfenced: %s\n",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone())
          .c_str(),
      message.c_str());
}

// A listen address of flag `name`: "host:port" with a port from 0 to
// 65535 (gRPC would take 99999 modulo 65536), or a "unix:" path.
absl::Status CheckListenAddress(absl::string_view name,
                                const std::string& value) {
  if (absl::StartsWith(value, "unix:") ||
      absl::StartsWith(value, "unix-abstract:")) {
    return absl::OkStatus();
  }
  const size_t colon = value.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, " must be host:port with a port from 0 to ",
                     "65535 (0: any free port), or unix:PATH; got ",
                     ringfence::QuoteForError(value)));
  }
  return absl::OkStatus();
}

// The flags' bounds and how they relate (INVALID_ARGUMENT naming the flag).
absl::Status CheckFlagBounds() {
  RETURN_IF_ERROR(CheckListenAddress("listen", absl::GetFlag(FLAGS_listen)));
  if (const std::string http = absl::GetFlag(FLAGS_http_listen);
      !http.empty()) {
    RETURN_IF_ERROR(CheckListenAddress("http_listen", http));
  }
  const absl::Duration tick = absl::GetFlag(FLAGS_tick_interval);
  if (tick <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--tick_interval must be > 0");
  }
  if (absl::GetFlag(FLAGS_max_batch_events) == 0) {
    return absl::InvalidArgumentError("--max_batch_events must be > 0");
  }
  if (absl::GetFlag(FLAGS_max_inflight_events) <
      absl::GetFlag(FLAGS_max_batch_events)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_inflight_events (", absl::GetFlag(FLAGS_max_inflight_events),
        ") must be at least --max_batch_events (",
        absl::GetFlag(FLAGS_max_batch_events),
        "): a full batch could never be admitted"));
  }
  if (absl::GetFlag(FLAGS_max_message_bytes) <= 0) {
    return absl::InvalidArgumentError("--max_message_bytes must be > 0");
  }
  if (absl::GetFlag(FLAGS_max_streams_per_connection) <= 0) {
    return absl::InvalidArgumentError(
        "--max_streams_per_connection must be > 0");
  }
  if (absl::GetFlag(FLAGS_max_db_bytes) < 0) {
    return absl::InvalidArgumentError("--max_db_bytes must be >= 0");
  }
  const absl::Duration lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  if (lease_ttl < std::max(3 * tick, absl::Milliseconds(100)) ||
      lease_ttl > absl::Hours(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lease_ttl (", absl::FormatDuration(lease_ttl),
                     ") must be at least 3 ticks (--tick_interval ",
                     absl::FormatDuration(tick),
                     ") and 100ms, and at most 1h: the leader renews it "
                     "every tick"));
  }
  const absl::Duration follower_poll =
      absl::GetFlag(FLAGS_follower_poll_interval);
  if (follower_poll < absl::Milliseconds(10) ||
      follower_poll > absl::Seconds(10)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--follower_poll_interval (", absl::FormatDuration(follower_poll),
        ") must be at least 10ms and at most 10s"));
  }
  const absl::Duration follower_staleness =
      absl::GetFlag(FLAGS_follower_max_staleness);
  if (follower_staleness < 2 * follower_poll ||
      follower_staleness > absl::Minutes(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--follower_max_staleness (", absl::FormatDuration(follower_staleness),
        ") must be at least 2 --follower_poll_interval (",
        absl::FormatDuration(follower_poll), ") and at most 1m"));
  }
  const absl::Duration forward_deadline =
      absl::GetFlag(FLAGS_follower_forward_deadline);
  if (forward_deadline < absl::Milliseconds(10) ||
      forward_deadline > absl::Minutes(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--follower_forward_deadline (", absl::FormatDuration(forward_deadline),
        ") must be at least 10ms and at most 1m"));
  }
  if (absl::GetFlag(FLAGS_replica_id).size() > 200) {
    return absl::InvalidArgumentError("--replica_id must be at most 200 bytes");
  }
  if (absl::GetFlag(FLAGS_advertise_address).size() > 300) {
    return absl::InvalidArgumentError(
        "--advertise_address must be at most 300 bytes");
  }

  // Each active rollout reserves ~28.5 bytes per expected host up front.
  constexpr uint64_t kMaxExpectedHosts = 100'000'000;
  if (absl::GetFlag(FLAGS_expected_hosts) > kMaxExpectedHosts) {
    return absl::InvalidArgumentError(
        absl::StrCat("--expected_hosts must be at most ", kMaxExpectedHosts,
                     " (each active rollout reserves ~28.5 bytes per host)"));
  }
  return absl::OkStatus();
}

// What CreateRelease and ValidateRelease check a release against: the
// trusted publisher keys and the content rules of the flags
// (INVALID_ARGUMENT naming the flag).
absl::StatusOr<std::unique_ptr<ringfence::ReleaseChecker>>
ReleaseCheckerFromFlags() {
  ringfence::ReleaseCheckOptions check_options;
  check_options.require_signature = absl::GetFlag(FLAGS_require_signatures);
  if (const std::string path = absl::GetFlag(FLAGS_trusted_keys_file);
      !path.empty()) {
    absl::StatusOr<ringfence::TrustedKeys> keys =
        ringfence::LoadTrustedKeysFile(path);
    if (!keys.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--trusted_keys_file: ", keys.status().message()));
    }
    if (keys->empty() && check_options.require_signature) {
      return absl::InvalidArgumentError(
          absl::StrCat("--trusted_keys_file: ", path,
                       " lists no keys; with --require_signatures every "
                       "release would be refused"));
    }
    Log(absl::StrCat(
        "release signatures: ", keys->size(), " trusted keys from ", path,
        check_options.require_signature ? ", required" : ", optional"));
    check_options.trusted_keys = *std::move(keys);
  } else if (check_options.require_signature) {
    return absl::InvalidArgumentError(
        "--require_signatures needs --trusted_keys_file");
  }
  {
    const std::string rules = absl::GetFlag(FLAGS_content_rules);
    absl::StatusOr<std::unique_ptr<ringfence::ReleaseChecker>> checker =
        rules.empty() ? ringfence::ReleaseChecker::Create(check_options)
                      : ringfence::NewReleaseCheckerFromFile(
                            rules, std::move(check_options));
    if (!checker.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          rules.empty() ? "--trusted_keys_file: " : "--content_rules: ",
          checker.status().message()));
    }
    if (!rules.empty()) Log(absl::StrCat("content rules from ", rules));
    return checker;
  }
}

// The store the flags name (INVALID_ARGUMENT naming the flag, or the
// store's error), with `*description` saying where its data is (without
// credentials) and `*replicated` the store again if it is PostgreSQL
// (replicas elect a leader on it), else nullptr. `lease_ttl` bounds how
// long a session may sit in a transaction.
absl::StatusOr<ringfence::StorePtr> StoreFromFlags(
    absl::Duration lease_ttl, std::string* description,
    ringfence::PostgresStore** replicated) {
  *replicated = nullptr;
  absl::StatusOr<ringfence::StorePtr> store;
  if (const std::string kind = absl::GetFlag(FLAGS_store); kind == "sqlite") {
    ringfence::SqliteStoreOptions store_options;
    store_options.data_dir = absl::GetFlag(FLAGS_data_dir);
    store_options.max_db_bytes = absl::GetFlag(FLAGS_max_db_bytes);
    *description = absl::StrCat("SQLite in ", store_options.data_dir);
    store = ringfence::OpenSqliteStore(store_options);
  } else if (kind == "postgres") {
    ringfence::PostgresStoreOptions store_options;
    const std::string dsn_file = absl::GetFlag(FLAGS_postgres_dsn_file);
    if (!dsn_file.empty()) {
      absl::StatusOr<std::string> dsn = ringfence::ReadFileToString(dsn_file);
      if (!dsn.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--postgres_dsn_file: ", dsn.status().message()));
      }
      store_options.dsn = std::string(absl::StripAsciiWhitespace(*dsn));
      *description = absl::StrCat("PostgreSQL (DSN from ", dsn_file);
    } else if (const char* env = std::getenv("RINGFENCE_POSTGRES_DSN");
               env != nullptr) {
      store_options.dsn = std::string(absl::StripAsciiWhitespace(env));
      *description = "PostgreSQL (DSN from $RINGFENCE_POSTGRES_DSN";
    }
    if (store_options.dsn.empty()) {
      return absl::InvalidArgumentError(
          "--store=postgres needs a connection string: "
          "--postgres_dsn_file=FILE or the environment variable "
          "RINGFENCE_POSTGRES_DSN (not empty)");
    }
    store_options.schema = absl::GetFlag(FLAGS_postgres_schema);
    store_options.pool_size = absl::GetFlag(FLAGS_postgres_pool_size);
    // A leader paused inside a write must not hold the lease row's lock
    // past its lease: the server ends such a session first.
    store_options.idle_in_transaction_timeout = lease_ttl / 2;
    // Crash-only: the leader's in-memory state is no longer the cluster's.
    // Nothing was written (the store refused it); a supervisor restarts
    // this replica as a standby.
    store_options.on_superseded = [](const absl::Status& s) {
      Log(absl::StrCat("lost the lease: ", s.message(), "; exiting (status ",
                       kExitSuperseded, ") to restart as a standby"));
      _exit(kExitSuperseded);
    };
    absl::StrAppend(&*description, ", schema ", store_options.schema, ")");
    absl::StatusOr<ringfence::PostgresStorePtr> opened =
        ringfence::OpenPostgresStore(store_options);
    if (opened.ok()) *replicated = opened->get();
    store = std::move(opened);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--store=", kind, ": must be sqlite or postgres"));
  }
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        absl::StrCat("cannot open the store (", *description,
                                     "): ", store.status().ToString()));
  }
  return store;
}

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "ringfenced: the ringfence gRPC server (see --helpfull)");
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_mutex_deadlock_detection)) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }

  // Signals are taken synchronously by sigwait() below; block them before
  // any thread starts so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (absl::Status s = CheckFlagBounds(); !s.ok()) {
    Log(std::string(s.message()));
    return 2;
  }
  const absl::Duration tick = absl::GetFlag(FLAGS_tick_interval);
  const absl::Duration lease_ttl = absl::GetFlag(FLAGS_lease_ttl);
  const absl::Duration follower_poll =
      absl::GetFlag(FLAGS_follower_poll_interval);
  const absl::Duration follower_staleness =
      absl::GetFlag(FLAGS_follower_max_staleness);
  const absl::Duration forward_deadline =
      absl::GetFlag(FLAGS_follower_forward_deadline);

  ringfence::ControllerOptions controller_options;
  controller_options.max_batch_events = absl::GetFlag(FLAGS_max_batch_events);
  controller_options.expected_hosts = absl::GetFlag(FLAGS_expected_hosts);
  if (const std::string path = absl::GetFlag(FLAGS_fleet_config);
      !path.empty()) {
    absl::Status s =
        ringfence::LoadMessageFile(path, &controller_options.fleet);
    if (s.ok()) s = ringfence::ValidateFleetConfig(controller_options.fleet);
    if (!s.ok()) {
      Log(absl::StrCat("--fleet_config: ", s.message()));
      return 2;
    }
  }

  ringfence::ServerOptions server_options;
  server_options.listen = absl::GetFlag(FLAGS_listen);
  ringfence::HttpServerOptions http_options;
  http_options.listen = absl::GetFlag(FLAGS_http_listen);
  http_options.metrics_no_auth = absl::GetFlag(FLAGS_metrics_no_auth);
  if (absl::GetFlag(FLAGS_http_max_body_bytes) <= 0) {
    Log("--http_max_body_bytes must be > 0");
    return 2;
  }
  http_options.max_body_bytes =
      static_cast<size_t>(absl::GetFlag(FLAGS_http_max_body_bytes));
  server_options.max_receive_message_bytes =
      absl::GetFlag(FLAGS_max_message_bytes);
  server_options.max_batch_events = absl::GetFlag(FLAGS_max_batch_events);
  server_options.max_streams_per_connection =
      absl::GetFlag(FLAGS_max_streams_per_connection);
  server_options.max_inflight_events = absl::GetFlag(FLAGS_max_inflight_events);
  server_options.max_concurrent_validations =
      absl::GetFlag(FLAGS_max_concurrent_validations);
  server_options.testing_ingest_delay =
      absl::GetFlag(FLAGS_testing_ingest_delay);
  server_options.ack_after_checkpoint =
      absl::GetFlag(FLAGS_ack_telemetry_after_checkpoint);
  absl::StatusOr<std::optional<ringfence::ServerTls>> tls =
      ringfence::LoadServerTls(absl::GetFlag(FLAGS_tls_cert),
                               absl::GetFlag(FLAGS_tls_key),
                               absl::GetFlag(FLAGS_client_ca));
  if (!tls.ok()) {
    Log(absl::StrCat("--", tls.status().message()));
    return 2;
  }
  server_options.tls = *std::move(tls);
  std::unique_ptr<ringfence::TlsFileStager> tls_stager;
  if (const absl::Duration reload = absl::GetFlag(FLAGS_tls_reload_interval);
      reload != absl::ZeroDuration()) {
    if (!server_options.tls.has_value()) {
      Log("--tls_reload_interval: needs --tls_cert and --tls_key");
      return 2;
    }
    if (reload < absl::Seconds(1) || reload > absl::Hours(24)) {
      Log("--tls_reload_interval: must be 0 or between 1s and 24h");
      return 2;
    }
    tls_stager = std::make_unique<ringfence::TlsFileStager>(
        absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
        absl::GetFlag(FLAGS_client_ca), absl::GetFlag(FLAGS_data_dir) + "/tls");
    if (absl::StatusOr<bool> staged = tls_stager->Stage(); !staged.ok()) {
      Log(absl::StrCat("--tls_reload_interval: ", staged.status().message()));
      return 2;
    }
    server_options.tls->reload_interval = reload;
    server_options.tls->watched_identity_path = tls_stager->identity_path();
    server_options.tls->watched_client_ca_path = tls_stager->client_ca_path();
  }
  std::string transport = "plaintext (no --tls_cert)";
  if (server_options.tls.has_value()) {
    transport = server_options.tls->client_ca_pem.empty()
                    ? "TLS"
                    : absl::StrCat("mutual TLS (client certificates signed by ",
                                   absl::GetFlag(FLAGS_client_ca), ")");
    if (server_options.tls->reload_interval > absl::ZeroDuration()) {
      absl::StrAppend(
          &transport, ", files re-read every ",
          absl::FormatDuration(server_options.tls->reload_interval));
    }
  }
  if (const std::string path = absl::GetFlag(FLAGS_auth_tokens_file);
      !path.empty()) {
    absl::StatusOr<ringfence::TokenAuthenticator> auth =
        ringfence::TokenAuthenticator::Load(path);
    if (!auth.ok()) {
      Log(absl::StrCat("--auth_tokens_file: ", auth.status().message()));
      return 2;
    }
    if (auth->size() == 0) {
      Log(absl::StrCat("--auth_tokens_file: ", path,
                       " lists no tokens; every call would be refused"));
      return 2;
    }
    Log(absl::StrCat("authentication: ", auth->size(), " tokens from ", path));
    server_options.auth = *std::move(auth);
    http_options.auth = server_options.auth;
  }
  server_options.insecure_no_auth = absl::GetFlag(FLAGS_insecure_no_auth);
  if (absl::Status s = ringfence::CheckAuthentication(server_options);
      !s.ok()) {
    Log(absl::StrCat("--", s.message()));
    return 2;
  }
  http_options.insecure_no_auth = server_options.insecure_no_auth;
  http_options.tls = server_options.tls;
  if (!http_options.listen.empty() && http_options.tls.has_value() &&
      !http_options.tls->client_ca_pem.empty()) {
    // HTTPS clients' certificates reach the gRPC handlers with this key
    // (call.h, kForwardedPeerKey): random, in this process's memory only.
    unsigned char key[32];
    if (RAND_bytes(key, sizeof(key)) != 1) {
      Log("cannot draw a random key for the HTTP listener");
      return 1;
    }
    server_options.forwarded_peer_key = absl::BytesToHexString(
        absl::string_view(reinterpret_cast<const char*>(key), sizeof(key)));
    http_options.forwarded_peer_key = server_options.forwarded_peer_key;
  }
  if (!http_options.listen.empty()) {
    if (absl::Status s = ringfence::CheckHttpAuthentication(http_options);
        !s.ok()) {
      Log(absl::StrCat("--", s.message()));
      return 2;
    }
  }
  if (!server_options.auth.has_value()) {
    if (server_options.tls.has_value() &&
        !server_options.tls->client_ca_pem.empty()) {
      Log("no --auth_tokens_file: every client whose certificate --client_ca "
          "signed is admin");
    } else if (ringfence::IsLoopbackAddress(server_options.listen)) {
      Log("WARNING: no --auth_tokens_file: authentication is OFF and every "
          "local caller is admin; use this only on a trusted local machine");
    } else {
      Log(
          absl::StrCat("WARNING: --insecure_no_auth: authentication is OFF "
                       "and every caller that reaches ",
                       server_options.listen, " is admin"));
    }
  }

  std::vector<ringfence::WebhookTarget> webhooks;
  if (const std::string path = absl::GetFlag(FLAGS_webhooks_file);
      !path.empty()) {
    absl::StatusOr<std::vector<ringfence::WebhookTarget>> loaded =
        ringfence::LoadWebhookConfig(path);
    if (!loaded.ok()) {
      Log(absl::StrCat("--webhooks_file: ", loaded.status().message()));
      return 2;
    }
    webhooks = *std::move(loaded);
    const absl::Duration timeout = absl::GetFlag(FLAGS_webhook_timeout);
    const absl::Duration initial = absl::GetFlag(FLAGS_webhook_backoff_initial);
    const absl::Duration max = absl::GetFlag(FLAGS_webhook_backoff_max);
    const absl::Duration poll = absl::GetFlag(FLAGS_webhook_poll_interval);
    if (timeout <= absl::ZeroDuration() || timeout > absl::Minutes(10)) {
      Log("--webhook_timeout must be > 0 and at most 10m");
      return 2;
    }
    if (initial <= absl::ZeroDuration() || max < initial ||
        max > absl::Hours(24)) {
      Log("--webhook_backoff_initial must be > 0 and at most "
          "--webhook_backoff_max (at most 24h)");
      return 2;
    }
    if (poll <= absl::ZeroDuration() || poll > absl::Minutes(10)) {
      Log("--webhook_poll_interval must be > 0 and at most 10m");
      return 2;
    }
    // Before any thread starts: curl_global_init is not thread-safe.
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      Log("cannot initialize libcurl");
      return 1;
    }
  }

  {
    absl::StatusOr<std::unique_ptr<ringfence::ReleaseChecker>> checker =
        ReleaseCheckerFromFlags();
    if (!checker.ok()) {
      Log(std::string(checker.status().message()));
      return 2;
    }
    server_options.release_checker = *std::move(checker);
  }

  // For the log: where the data is, without credentials.
  std::string store_description;
  // The store again if it is PostgreSQL: replicas elect a leader on it.
  ringfence::PostgresStore* replicated = nullptr;
  absl::StatusOr<ringfence::StorePtr> store =
      StoreFromFlags(lease_ttl, &store_description, &replicated);
  if (!store.ok()) {
    Log(std::string(store.status().message()));
    return absl::IsInvalidArgument(store.status()) ? 2 : 1;
  }
  // Replicas: stand by until this one holds the lease; then restore and
  // serve on the port the standby had.
  std::optional<ringfence::ReplicaStartup> replica;
  server_options.cluster.replica_id = absl::GetFlag(FLAGS_replica_id);
  server_options.cluster.address = absl::GetFlag(FLAGS_advertise_address);
  if (replicated != nullptr) {
    int stop_signal = 0;
    ringfence::ReplicaStartupOptions startup;
    startup.store = replicated;
    startup.server = &server_options;
    startup.fleet = controller_options.fleet;
    startup.lease_ttl = lease_ttl;
    startup.tick = tick;
    startup.follower_poll = follower_poll;
    startup.follower_staleness = follower_staleness;
    startup.forward_deadline = forward_deadline;
    startup.log = Log;
    startup.wait = [&](absl::Duration d) {
      const timespec timeout = absl::ToTimespec(d);
      const int sig = sigtimedwait(&signals, nullptr, &timeout);
      if (sig > 0) stop_signal = sig;
      return sig > 0;
    };
    // Standing by (not leading at once): say where, as a server does.
    startup.on_standing_by = [&](int port) {
      Log(absl::StrCat("standing by on port ", port, " (",
                       absl::GetFlag(FLAGS_listen), ", ", transport,
                       "), data in ", store_description));
      if (const std::string path = absl::GetFlag(FLAGS_port_file);
          !path.empty() &&
          !ringfence::WriteFileAtomically(path, absl::StrCat(port, "\n"))
               .ok()) {
        Log(absl::StrCat("cannot write --port_file ", path));
      }
    };
    absl::StatusOr<ringfence::ReplicaStartup> started =
        ringfence::StandByUntilLeading(startup);
    if (absl::IsCancelled(started.status())) {
      Log(absl::StrCat("received ", strsignal(stop_signal),
                       " while standing by; stopped"));
      return 0;
    }
    if (!started.ok()) {
      Log(absl::StrCat("cannot stand by or take the lease: ",
                       started.status().ToString()));
      return absl::IsInvalidArgument(started.status()) ? 2 : 1;
    }
    replica = *std::move(started);
    Log(absl::StrCat("replica \"", replica->replica_id,
                     "\" leads (lease epoch ", replica->epoch, ", TTL ",
                     absl::FormatDuration(lease_ttl),
                     "): restoring the state from the store"));
  }

  absl::StatusOr<std::unique_ptr<ringfence::Controller>> controller =
      ringfence::Controller::Create(store->get(), &ringfence::RealClock(),
                                    controller_options);
  if (!controller.ok()) {
    Log(absl::StrCat("cannot load the store: ",
                     controller.status().ToString()));
    return 1;
  }
  // Before serving: a new webhook starts at the log's head, and no call
  // may add to the log before that head is read.
  std::unique_ptr<ringfence::WebhookNotifier> notifier;
  if (!webhooks.empty()) {
    const size_t count = webhooks.size();
    ringfence::WebhookNotifierOptions options;
    options.legacy_cursor_dir = absl::GetFlag(FLAGS_data_dir) + "/webhooks";
    options.poll_interval = absl::GetFlag(FLAGS_webhook_poll_interval);
    options.backoff_initial = absl::GetFlag(FLAGS_webhook_backoff_initial);
    options.backoff_max = absl::GetFlag(FLAGS_webhook_backoff_max);
    options.http.timeout = absl::GetFlag(FLAGS_webhook_timeout);
    options.log = Log;
    absl::StatusOr<std::unique_ptr<ringfence::WebhookNotifier>> started =
        ringfence::WebhookNotifier::Start(store->get(), &ringfence::RealClock(),
                                          std::move(webhooks),
                                          std::move(options));
    if (!started.ok()) {
      Log(absl::StrCat("cannot start webhook notifications: ",
                       started.status().ToString()));
      return 1;
    }
    notifier = *std::move(started);
    Log(absl::StrCat("webhook notifications: ", count, " webhooks from ",
                     absl::GetFlag(FLAGS_webhooks_file)));
  }

  // The port passes from the standby to the server.
  if (replica.has_value()) replica->standby->Shutdown();
  const std::function<absl::Status()> authority = server_options.authority;
  absl::StatusOr<std::unique_ptr<ringfence::Server>> server =
      ringfence::Server::Start(controller->get(), std::move(server_options));
  if (!server.ok()) {
    Log(server.status().ToString());
    return 1;
  }
  std::unique_ptr<ringfence::HttpServer> http;
  if (!http_options.listen.empty()) {
    ringfence::Server* grpc_server = server->get();
    const bool https = http_options.tls.has_value();
    absl::StatusOr<std::unique_ptr<ringfence::HttpServer>> started =
        ringfence::HttpServer::Start(
            grpc_server->InProcessChannel(),
            [grpc_server] { return grpc_server->RenderMetrics(); },
            std::move(http_options));
    if (!started.ok()) {
      Log(started.status().ToString());
      (*server)->Shutdown(absl::ZeroDuration());
      return 1;
    }
    http = *std::move(started);
    if (const std::string path = absl::GetFlag(FLAGS_http_port_file);
        !path.empty()) {
      if (!ringfence::WriteFileAtomically(path,
                                          absl::StrCat(http->port(), "\n"))
               .ok()) {
        Log(absl::StrCat("cannot write --http_port_file ", path));
        return 1;
      }
    }
    Log(absl::StrCat("serving HTTP", https ? "S" : "", " on port ",
                     http->port(), " (", absl::GetFlag(FLAGS_http_listen),
                     ")"));
  }

  const int port = (*server)->port();
  // The log line first: whoever waits for the port file may read it.
  Log(absl::StrCat("serving on port ", port, " (", absl::GetFlag(FLAGS_listen),
                   ", ", transport, "), data in ", store_description));
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    if (!ringfence::WriteFileAtomically(path, absl::StrCat(port, "\n")).ok()) {
      Log(absl::StrCat("cannot write --port_file ", path));
      return 1;
    }
  }

  absl::Notification stop_ticker;
  std::thread ticker([&] {
    ringfence::Controller& c = **controller;
    std::string last_error;
    do {
      absl::Status s = c.Tick();
      // Log each distinct error once, not once per tick.
      std::string error = s.ok() ? "" : s.ToString();
      if (error != last_error && !error.empty()) Log("tick: " + error);
      last_error = std::move(error);
    } while (!stop_ticker.WaitForNotificationWithTimeout(tick));
  });
  // Health on a thread of its own: a tick can wait on the store for as long
  // as a statement may take, or longer while PostgreSQL is cut off, and the
  // lease's deadline (ServerOptions::authority) passes meanwhile.
  std::thread health_updater([&] {
    bool fleet_serving = true;
    bool leads = true;
    do {
      const bool serving = (*server)->UpdateHealth();
      const absl::Status held =
          authority != nullptr ? authority() : absl::OkStatus();
      if (held.ok() != leads) {
        Log(held.ok() ? "lease renewed: answering again; Releases, Rollouts "
                        "and Fleet SERVING again"
                      : absl::StrCat(held.message(),
                                     ": answering nothing but cluster status; "
                                     "Releases, Rollouts and Fleet "
                                     "NOT_SERVING"));
        leads = held.ok();
      } else if (leads && serving != fleet_serving) {
        Log(serving ? "store healthy again: Fleet SERVING again"
                    : "store failing: failing closed, Fleet NOT_SERVING");
      }
      fleet_serving = serving;
    } while (!stop_ticker.WaitForNotificationWithTimeout(
        std::min(tick, absl::Milliseconds(100))));
  });

  // With --tls_reload_interval: copies checked TLS files to where gRPC's
  // watcher reads them (service/tls.h), logging each change and each
  // distinct refusal once.
  std::thread tls_reloader;
  if (tls_stager != nullptr) {
    tls_reloader = std::thread([&] {
      const absl::Duration every = absl::GetFlag(FLAGS_tls_reload_interval);
      std::string last_error;
      while (!stop_ticker.WaitForNotificationWithTimeout(every)) {
        absl::StatusOr<bool> staged = tls_stager->Stage();
        std::string error = staged.ok() ? "" : staged.status().ToString();
        if (!error.empty() && error != last_error) {
          Log(
              absl::StrCat("TLS files refused, still serving the previous "
                           "certificate: ",
                           error));
        }
        if (staged.ok() && *staged) Log("TLS files changed: serving them");
        last_error = std::move(error);
      }
    });
  }

  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  Log(absl::StrCat("received ", strsignal(sig), "; shutting down"));
  // HTTP first: its calls go through the gRPC server.
  if (http != nullptr) http->Shutdown();
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  stop_ticker.Notify();
  ticker.join();
  health_updater.join();
  if (tls_reloader.joinable()) tls_reloader.join();
  notifier.reset();
  server->reset();
  controller->reset();
  if (replica.has_value()) {
    // Nothing writes any more: a standby may take over now.
    if (absl::Status s = replica->lease->Release(); s.ok()) {
      Log("lease released");
    } else {
      Log(absl::StrCat("cannot release the lease (it expires after its TTL): ",
                       s.ToString()));
    }
    replica.reset();
  }
  store->reset();
  Log("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
