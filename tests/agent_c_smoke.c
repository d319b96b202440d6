/* A C program on ringfence/agent_c.h (compiled as C): runs the agent
 * against a server for a while; its load hook writes the release id to
 * STATE_DIR/running. Used by tests/e2e_agent_test.cc.
 *   agent_c_smoke SERVER TOKEN HOST_ID CONTENT_TYPE STATE_DIR SECONDS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ringfence/agent_c.h"

static int Fetch(void* user, const char* release_id, const char* url,
                 char** data, size_t* size) {
  (void)user;
  (void)release_id;
  if (strncmp(url, "file://", 7) != 0) return 1;
  FILE* f = fopen(url + 7, "rb");
  if (f == NULL) return 1;
  char* buf = malloc(1 << 20);
  size_t n = fread(buf, 1, 1 << 20, f);
  fclose(f);
  *data = buf;
  *size = n;
  return 0;
}

static int Load(void* user, const char* release_id, const char* path) {
  (void)path;
  char file[4096];
  snprintf(file, sizeof file, "%s/running", (const char*)user);
  FILE* f = fopen(file, "w");
  if (f == NULL) return 1;
  fprintf(f, "%s\n", release_id);
  fclose(f);
  return 0;
}

static int Unload(void* user) {
  (void)user;
  return 0;
}

static long long NowMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char** argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s SERVER TOKEN HOST CONTENT_TYPE DIR SECONDS\n",
            argv[0]);
    return 2;
  }
  rf_agent_options o;
  rf_agent_options_init(&o);
  o.server = argv[1];
  o.token = argv[2];
  o.host_id = argv[3];
  o.content_type = argv[4];
  o.state_dir = argv[5];
  o.allow_unsigned = 1;
  o.poll_interval_s = 0.2;
  o.heartbeat_interval_s = 0.2;
  rf_content_hooks hooks = {argv[5], Fetch, Load, Unload};
  rf_agent* agent = NULL;
  char err[256];
  /* Bad options are refused with a message. */
  rf_agent_options bad = o;
  bad.state_dir = NULL;
  if (rf_agent_start(&bad, &hooks, &agent, err, sizeof err) != 3 ||
      agent != NULL || strlen(err) == 0) {
    fprintf(stderr, "an agent without state_dir was not refused\n");
    return 1;
  }
  int rc = rf_agent_start(&o, &hooks, &agent, err, sizeof err);
  if (rc != RF_OK) {
    fprintf(stderr, "rf_agent_start: %d %s\n", rc, err);
    return 1;
  }
  /* Reports: a named signal and a crash are spooled; a bad name is not. */
  if (rf_agent_report(agent, RF_REPORT_SIGNAL, "c_api_marker", err,
                      sizeof err) != RF_OK ||
      rf_agent_report(agent, RF_REPORT_CRASH, NULL, err, sizeof err) != RF_OK) {
    fprintf(stderr, "rf_agent_report: %s\n", err);
    return 1;
  }
  if (rf_agent_report(agent, RF_REPORT_SIGNAL, "Not A Name", err, sizeof err) !=
      RF_INVALID_ARGUMENT) {
    fprintf(stderr, "a bad signal name was not refused\n");
    return 1;
  }
  const long long end = NowMs() + 1000LL * atoi(argv[6]);
  while (NowMs() < end) {
    rf_agent_tick(agent, NULL, 0);
    long long wait = rf_agent_next_wakeup_unix_ms(agent) - NowMs();
    if (wait < 10) wait = 10;
    if (wait > 100) wait = 100;
    struct timespec ts = {0, wait * 1000000L};
    nanosleep(&ts, NULL);
  }
  char status[1024];
  rf_agent_status_text(agent, status, sizeof status);
  printf("%s", status);
  if (rf_agent_stop(agent, err, sizeof err) != RF_OK) {
    fprintf(stderr, "rf_agent_stop: %s\n", err);
    return 1;
  }
  rf_agent_free(agent);
  return 0;
}
