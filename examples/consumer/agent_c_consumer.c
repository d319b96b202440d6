/* A C program on the installed agent C API (ringfence/agent_c.h): options
 * without a state directory are refused with a message, as documented. A
 * real agent would go on with rf_agent_start, rf_agent_tick and
 * rf_agent_next_wakeup_unix_ms (see the header). */
#include <stdio.h>
#include <string.h>

#include "ringfence/agent_c.h"

static int Fetch(void* ctx, const char* release_id, const char* url, char** out,
                 size_t* out_len) {
  (void)ctx, (void)release_id, (void)url, (void)out, (void)out_len;
  return RF_NOT_FOUND;
}
static int Load(void* ctx, const char* release_id, const char* path) {
  (void)ctx, (void)release_id, (void)path;
  return RF_OK;
}
static int Unload(void* ctx) {
  (void)ctx;
  return RF_OK;
}

int main(void) {
  rf_agent_options o;
  rf_agent_options_init(&o);
  o.server = "127.0.0.1:7443";
  o.host_id = "web-0042";
  o.content_type = "channel-file/291";
  rf_content_hooks hooks = {NULL, Fetch, Load, Unload};
  rf_agent* agent = NULL;
  char err[256] = "";
  const int rc = rf_agent_start(&o, &hooks, &agent, err, sizeof err);
  if (rc != RF_INVALID_ARGUMENT || agent != NULL || strlen(err) == 0) {
    fprintf(stderr, "expected RF_INVALID_ARGUMENT, got %d\n", rc);
    return 1;
  }
  printf("agent_c: refused without a state directory: %s\n", err);
  return 0;
}
