/* ringfence/agent_c.h: the host agent (ringfence/agent.h) for hosts whose
 * agent is not C++. The same agent core, with the gRPC transport to
 * ringfenced built in, behind an opaque handle: plain C types only, no
 * exceptions, no STL across the boundary; strings are NUL-terminated UTF-8
 * and are copied before a call returns.
 *
 *   rf_agent_options o;
 *   rf_agent_options_init(&o);
 *   o.server = "rollouts.example:7443";  o.token = token;
 *   o.host_id = "web-0042";  o.content_type = "channel-file/291";
 *   o.state_dir = "/var/lib/vendor-agent/ringfence";
 *   rf_content_hooks h = {vendor, vendor_fetch, vendor_load, vendor_unload};
 *   rf_agent* agent;  char err[256];
 *   if (rf_agent_start(&o, &h, &agent, err, sizeof err) != RF_OK) ...;
 *   for (;;) {
 *     rf_agent_tick(agent, NULL, 0);
 *     sleep_until_ms(rf_agent_next_wakeup_unix_ms(agent));
 *   }
 *   rf_agent_free(agent);
 *
 * Each rf_agent_start is one boot of the host (the boot-loop guard counts
 * it). Error codes are absl::StatusCode values (RF_OK = 0); `err`, when
 * not NULL, receives the message, cut to `err_len` - 1 bytes and
 * NUL-terminated.
 *
 * Thread safety: one thread per rf_agent at a time. Link with the
 * ringfence_agent_c library (C++ runtime, gRPC). */
#ifndef RINGFENCE_AGENT_C_H_
#define RINGFENCE_AGENT_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  RF_OK = 0,
  RF_INVALID_ARGUMENT = 3,
  RF_NOT_FOUND = 5,
  RF_FAILED_PRECONDITION = 9,
  RF_INTERNAL = 13,
  RF_UNAVAILABLE = 14,
  RF_DATA_LOSS = 15
};

typedef struct rf_agent rf_agent;

typedef struct {
  /* ringfenced: "host:port"; plaintext unless tls_ca is set. */
  const char* server;
  /* Bearer token (NULL: none). */
  const char* token;
  /* PEM file paths (NULL: none): the server's CA; a client certificate and
   * key for mutual TLS. */
  const char* tls_ca;
  const char* tls_cert;
  const char* tls_key;
  /* The host (required), the content type it runs (required), and what
   * stages select it by. labels: num_labels strings. */
  const char* host_id;
  const char* content_type;
  const char* tenant;
  const char* const* labels;
  size_t num_labels;
  const char* agent_version;
  const char* platform;
  /* Where the agent keeps its state, content and spool (required). */
  const char* state_dir;
  /* Publisher keys file: lines "key_id path/to/key.pub" (NULL: none). */
  const char* trusted_keys_file;
  /* Nonzero: load releases without a publisher signature. */
  int allow_unsigned;
  /* Seconds (defaults 60, 60); boots that find a release still loading
   * before falling back (default 3). */
  double poll_interval_s;
  double heartbeat_interval_s;
  int boot_loop_limit;
} rf_agent_options;

/* The vendor's side. Each returns 0 on success. */
typedef struct {
  void* user;
  /* The payload of release `release_id` from `url`: *data = malloc()ed
   * bytes (the agent frees them), *size = their length. */
  int (*fetch)(void* user, const char* release_id, const char* url, char** data,
               size_t* size);
  /* Load the verified payload at `payload_path`. May crash the host. */
  int (*load)(void* user, const char* release_id, const char* payload_path);
  /* Stop running any release of the content type. */
  int (*unload)(void* user);
} rf_content_hooks;

/* Defaults: everything NULL/0, intervals 60 s, boot-loop limit 3. */
void rf_agent_options_init(rf_agent_options* options);

/* One boot: recovers state and spool, runs the boot-loop guard, loads the
 * current content. *out = the agent (free with rf_agent_free). Errors:
 * RF_INVALID_ARGUMENT (bad options, naming the field), RF_DATA_LOSS
 * (malformed state), file system errors. */
int rf_agent_start(const rf_agent_options* options,
                   const rf_content_hooks* hooks, rf_agent** out, char* err,
                   size_t err_len);

/* Does what is due (poll, apply, heartbeat, send). The last error, if
 * any; the agent keeps running either way. */
int rf_agent_tick(rf_agent* agent, char* err, size_t err_len);

/* When rf_agent_tick is next due, in Unix milliseconds. */
int64_t rf_agent_next_wakeup_unix_ms(const rf_agent* agent);

/* What the agent runs and why, as text lines "key value" (running,
 * last_good, applying, quarantined, assigned, spool_pending, ...), like
 * `ringfence-agent status`. Returns the full length; writes at most
 * len - 1 bytes and a NUL. */
size_t rf_agent_status_text(const rf_agent* agent, char* buf, size_t len);

/* Report kinds for rf_agent_report. */
enum { RF_REPORT_CRASH = 4, RF_REPORT_SIGNAL = 6 };

/* Appends a CRASH (`signal` = an optional crash signature, at most 256
 * characters, may be NULL) or a named failure SIGNAL (`signal` =
 * [a-z0-9_]{1,64}) observed on the host to the spool, for the release
 * running now. Errors: RF_INVALID_ARGUMENT (another kind, a bad name or
 * signature; nothing appended), file system errors. */
int rf_agent_report(rf_agent* agent, int kind, const char* signal, char* err,
                    size_t err_len);

/* Records a clean end of this run (a shutdown): the next rf_agent_start
 * will not report an unclean boot. Call it before rf_agent_free when the
 * host or the agent shuts down in order; a run that ends without it is
 * reported as an unclean reboot. */
int rf_agent_stop(rf_agent* agent, char* err, size_t err_len);

void rf_agent_free(rf_agent* agent);

#ifdef __cplusplus
}
#endif

#endif /* RINGFENCE_AGENT_C_H_ */
