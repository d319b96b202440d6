// WebhookNotifier: POSTs audit entries to webhooks, using the audit log as
// the outbox.
//
// One thread per webhook tails the audit log through the Store
// (ReadAudit(cursor, n)), skips the entries the webhook does not want, and
// POSTs each wanted entry (webhook_message.h), retrying with exponential
// backoff and jitter until the receiver acknowledges it with a 2xx. Only
// then does the webhook's cursor move past it, durably, in the store
// (Store::PutWebhookCursor), before the next entry is sent: one delivery in
// flight per webhook, in audit order, and a failing receiver delays only
// its own webhook. After a crash, or on the replica that takes over, the
// worker resumes after the cursor: delivery is at least once, and only an
// entry whose acknowledgement was not yet recorded can arrive twice.
//
// A webhook without a cursor (newly configured) starts at the log's head:
// it is told of what happens from then on, not of the history.
//
// Thread safety: Start and the destructor from one thread; everything else
// runs on the notifier's own threads.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "ringfence/clock.h"
#include "ringfence/store.h"
#include "service/webhook_config.h"
#include "service/webhook_http.h"

namespace ringfence {

struct WebhookNotifierOptions {
  // Where an earlier version kept the cursors, one "<webhook name>.cursor"
  // file each (webhook_cursor.h); default "": nowhere. A webhook with no
  // cursor in the store but a file there goes on from the file's seq
  // (copied into the store once).
  std::string legacy_cursor_dir;
  // How often an idle worker reads the audit log for new entries
  // (default 500ms).
  absl::Duration poll_interval = absl::Milliseconds(500);
  // The first retry's delay (default 1s); each further one doubles, up to
  // backoff_max (default 5 min); each delay is drawn from [d/2, d].
  absl::Duration backoff_initial = absl::Seconds(1);
  absl::Duration backoff_max = absl::Minutes(5);
  // Timeout and response bound of each POST.
  WebhookHttpOptions http;
  // Builds each worker's HTTP client (default: libcurl). Tests substitute.
  std::function<std::unique_ptr<WebhookHttpClient>(
      const WebhookHttpOptions&, const std::atomic<bool>* cancel)>
      http_factory;
  // Where the notifier reports failures and recoveries, one line each
  // (default: nowhere). Lines name webhooks, never URLs or secrets.
  std::function<void(const std::string&)> log;
};

class WebhookNotifier {
 public:
  // Start
  //
  // Reads (or, for new webhooks, creates at the log's head) every cursor
  // and starts one worker per webhook. `store` and `clock` must outlive the
  // notifier. Errors if a cursor cannot be read or written (the store's
  // error; DATA_LOSS for a legacy cursor file that does not parse).
  static absl::StatusOr<std::unique_ptr<WebhookNotifier>> Start(
      Store* store, const Clock* clock, std::vector<WebhookTarget> targets,
      WebhookNotifierOptions options);

  // Stops the workers (a POST in flight is abandoned; its entry is sent
  // again after a restart).
  ~WebhookNotifier();

  // The delay before retry `attempt` (0 = the first retry) given a uniform
  // draw `u` in [0, 1): min(max, initial * 2^attempt) * (1 + u) / 2.
  static absl::Duration Backoff(absl::Duration initial, absl::Duration max,
                                int attempt, double u);

 private:
  struct Worker;
  WebhookNotifier(Store* store, const Clock* clock,
                  WebhookNotifierOptions options);
  void Run(Worker* w);

  Store* const store_;
  const Clock* const clock_;
  const WebhookNotifierOptions options_;
  absl::Notification stop_;
  std::atomic<bool> stopping_{false};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
};

}  // namespace ringfence
