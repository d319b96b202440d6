// HTTP POSTs of webhook notifications, over libcurl.
//
// One WebhookHttpClient per webhook worker (it reuses its connection); not
// safe for concurrent use. REQUIRES: curl_global_init() was called before
// any thread started (ringfenced's main does).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"

namespace ringfence {

struct WebhookHttpOptions {
  // The whole request, connecting included (default 10s).
  absl::Duration timeout = absl::Seconds(10);
  // Longest response body read; a longer one fails the POST (default 64 KiB).
  size_t max_response_bytes = 64 << 10;
};

struct WebhookHttpResult {
  // The HTTP status; 0 if no response arrived.
  int status = 0;
  // Why it failed, for the log (never the URL: it may hold a secret).
  std::string error;
  bool acknowledged() const { return status >= 200 && status < 300; }
};

class WebhookHttpClient {
 public:
  virtual ~WebhookHttpClient() = default;
  // Post
  //
  // POSTs `body` (application/json) with `headers` to `url`. Redirects are
  // not followed (a 3xx is a failure); only http and https are spoken.
  virtual WebhookHttpResult Post(
      const std::string& url,
      const std::vector<std::pair<std::string, std::string>>& headers,
      const std::string& body) = 0;
};

// NewCurlWebhookHttpClient
//
// A client on libcurl. While `*cancel` is true a transfer in flight is
// abandoned at once (shutdown). `cancel` must outlive the client.
std::unique_ptr<WebhookHttpClient> NewCurlWebhookHttpClient(
    const WebhookHttpOptions& options, const std::atomic<bool>* cancel);

}  // namespace ringfence
