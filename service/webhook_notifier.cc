#include "service/webhook_notifier.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "ringfence/status_macros.h"
#include "service/webhook_cursor.h"
#include "service/webhook_message.h"

namespace ringfence {
namespace {

// Audit entries read at once (worker batches and head lookups).
constexpr size_t kPage = 256;

}  // namespace

struct WebhookNotifier::Worker {
  WebhookTarget target;
  // Highest audit seq acknowledged or skipped (durable once written).
  uint64_t cursor = 0;
  // The last audit entry seen: the head reported in bodies.
  uint64_t head_seq = 0;
  std::string head_hash;
  std::unique_ptr<WebhookHttpClient> http;
};

absl::Duration WebhookNotifier::Backoff(absl::Duration initial,
                                        absl::Duration max, int attempt,
                                        double u) {
  absl::Duration d = initial;
  for (int i = 0; i < attempt && d < max; ++i) d *= 2;
  d = std::min(d, max);
  return d * ((1.0 + std::clamp(u, 0.0, 1.0)) / 2.0);
}

WebhookNotifier::WebhookNotifier(Store* store, const Clock* clock,
                                 WebhookNotifierOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<WebhookNotifier>> WebhookNotifier::Start(
    Store* store, const Clock* clock, std::vector<WebhookTarget> targets,
    WebhookNotifierOptions options) {
  if (options.poll_interval <= absl::ZeroDuration() ||
      options.backoff_initial <= absl::ZeroDuration() ||
      options.backoff_max < options.backoff_initial) {
    return absl::InvalidArgumentError(
        "webhook poll interval and backoff must be > 0, backoff max >= "
        "backoff initial");
  }
  if (!options.http_factory) options.http_factory = NewCurlWebhookHttpClient;
  if (!options.log) options.log = [](const std::string&) {};
  std::unique_ptr<WebhookNotifier> n(
      new WebhookNotifier(store, clock, std::move(options)));

  // The log's head, found only if some webhook is new.
  std::optional<uint64_t> head;
  for (WebhookTarget& t : targets) {
    auto w = std::make_unique<Worker>();
    ASSIGN_OR_RETURN(std::optional<uint64_t> cursor,
                     store->GetWebhookCursor(t.name));
    if (!cursor.has_value() && !n->options_.legacy_cursor_dir.empty()) {
      // A cursor file of a version that kept them there: go on from it.
      const std::string path =
          absl::StrCat(n->options_.legacy_cursor_dir, "/", t.name, ".cursor");
      ASSIGN_OR_RETURN(cursor, ReadWebhookCursor(path));
      if (cursor.has_value()) {
        RETURN_IF_ERROR(store->PutWebhookCursor(t.name, *cursor));
        n->options_.log(absl::StrCat("webhook ", t.name,
                                     ": cursor imported from ", path,
                                     " (audit seq ", *cursor, ")"));
      }
    }
    if (!cursor.has_value()) {
      if (!head.has_value()) {
        uint64_t seq = 0;
        while (true) {
          ASSIGN_OR_RETURN(std::vector<AuditEntry> page,
                           store->ReadAudit(seq, kPage));
          if (page.empty()) break;
          seq = page.back().seq();
        }
        head = seq;
      }
      cursor = *head;
      RETURN_IF_ERROR(store->PutWebhookCursor(t.name, *cursor));
      n->options_.log(absl::StrCat(
          "webhook ", t.name, ": new, notifying from audit seq ", *cursor + 1));
    }
    w->cursor = *cursor;
    // Reading from just before the cursor finds its entry's hash.
    w->head_seq = w->cursor > 0 ? w->cursor - 1 : 0;
    w->target = std::move(t);
    w->http = n->options_.http_factory(n->options_.http, &n->stopping_);
    n->workers_.push_back(std::move(w));
  }
  for (auto& w : n->workers_) {
    Worker* worker = w.get();
    WebhookNotifier* self = n.get();
    n->threads_.emplace_back([self, worker] { self->Run(worker); });
  }
  return n;
}

WebhookNotifier::~WebhookNotifier() {
  stopping_.store(true);
  stop_.Notify();
  for (std::thread& t : threads_) t.join();
}

void WebhookNotifier::Run(Worker* w) {
  const std::string& name = w->target.name;
  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::string last_error;
  // Logs each distinct problem once, and the recovery.
  auto report = [&](std::string error) {
    if (error == last_error) return;
    if (error.empty()) {
      options_.log(absl::StrCat("webhook ", name, ": working again"));
    } else {
      options_.log(absl::StrCat("webhook ", name, ": ", error));
    }
    last_error = std::move(error);
  };
  // Moves the head to the log's last entry (a bounded number of pages: the
  // head only has to be recent).
  auto catch_up_head = [&]() {
    for (int i = 0; i < 16; ++i) {
      absl::StatusOr<std::vector<AuditEntry>> page =
          store_->ReadAudit(w->head_seq, kPage);
      if (!page.ok() || page->empty()) return;
      w->head_seq = page->back().seq();
      w->head_hash = page->back().hash();
      if (page->size() < kPage) return;
    }
  };
  uint64_t durable = w->cursor;
  auto persist = [&]() {
    if (durable == w->cursor) return true;
    absl::Status s = store_->PutWebhookCursor(name, w->cursor);
    if (!s.ok()) {
      report(absl::StrCat("cannot record progress: ", s.message()));
      return false;
    }
    durable = w->cursor;
    return true;
  };

  while (!stop_.HasBeenNotified()) {
    absl::StatusOr<std::vector<AuditEntry>> batch =
        store_->ReadAudit(w->cursor, kPage);
    if (!batch.ok()) {
      report(absl::StrCat("cannot read the audit log: ",
                          batch.status().ToString()));
      stop_.WaitForNotificationWithTimeout(options_.poll_interval);
      continue;
    }
    bool retry_later = false;
    for (const AuditEntry& entry : *batch) {
      if (stop_.HasBeenNotified()) break;
      if (entry.seq() <= w->cursor) continue;  // (stores return > cursor)
      if (!IsNotifyingAction(entry.action())) {
        w->cursor = entry.seq();
        continue;
      }
      std::optional<Rollout> rollout;
      if (!entry.rollout_id().empty()) {
        absl::StatusOr<Rollout> r = store_->GetRollout(entry.rollout_id());
        if (r.ok()) {
          rollout = *std::move(r);
        } else if (!absl::IsNotFound(r.status())) {
          // Without its content type the filter cannot be applied.
          report(absl::StrCat("cannot read rollout ", entry.rollout_id(), ": ",
                              r.status().ToString()));
          retry_later = true;
          break;
        }
      }
      WebhookEvent event = WebhookEventFromAudit(
          entry, rollout.has_value() ? &*rollout : nullptr);
      if (!Wants(w->target, event.action, event.content_type)) {
        w->cursor = entry.seq();
        continue;
      }
      // Skipped entries need not be recorded before a send, but a send
      // must not be repeated after a restart because an earlier
      // acknowledgement was not recorded.
      if (!persist()) {
        retry_later = true;
        break;
      }
      if (w->head_seq < entry.seq()) {
        w->head_seq = entry.seq() > 0 ? entry.seq() - 1 : 0;
      }
      catch_up_head();
      event.head_seq = w->head_seq;
      event.head_hash = w->head_hash;
      const std::string body = WebhookBody(name, event);
      const std::string id = WebhookDeliveryId(name, entry.seq());
      bool delivered = false;
      for (int attempt = 0; !stop_.HasBeenNotified(); ++attempt) {
        const WebhookHttpResult result = w->http->Post(
            w->target.url,
            {{"X-Ringfence-Delivery", id},
             {"X-Ringfence-Signature",
              WebhookSignature(w->target.secret, clock_->Now(), body)}},
            body);
        if (result.acknowledged()) {
          delivered = true;
          break;
        }
        const absl::Duration delay =
            Backoff(options_.backoff_initial, options_.backoff_max, attempt,
                    uniform(rng));
        report(absl::StrCat("delivery ", id, " (", entry.action(),
                            ") failed: ", result.error, "; retrying in ",
                            absl::FormatDuration(delay)));
        stop_.WaitForNotificationWithTimeout(delay);
      }
      if (!delivered) break;  // stopping
      report("");
      w->cursor = entry.seq();
      if (!persist()) {
        retry_later = true;
        break;
      }
    }
    persist();
    if (retry_later || batch->size() < kPage) {
      stop_.WaitForNotificationWithTimeout(options_.poll_interval);
    }
  }
  persist();
}

}  // namespace ringfence
