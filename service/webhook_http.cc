#include "service/webhook_http.h"

#include <curl/curl.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace ringfence {
namespace {

class CurlClient final : public WebhookHttpClient {
 public:
  CurlClient(const WebhookHttpOptions& options, const std::atomic<bool>* cancel)
      : options_(options), cancel_(cancel), curl_(curl_easy_init()) {}
  ~CurlClient() override {
    if (curl_ != nullptr) curl_easy_cleanup(curl_);
  }

  WebhookHttpResult Post(
      const std::string& url,
      const std::vector<std::pair<std::string, std::string>>& headers,
      const std::string& body) override {
    WebhookHttpResult result;
    if (curl_ == nullptr) {
      result.error = "cannot initialize libcurl";
      return result;
    }
    CURL* c = curl_;
    curl_easy_reset(c);
    curl_slist* list = nullptr;
    list = curl_slist_append(list, "Content-Type: application/json");
    // No "Expect: 100-continue" round trip.
    list = curl_slist_append(list, "Expect:");
    for (const auto& [name, value] : headers) {
      list = curl_slist_append(list, absl::StrCat(name, ": ", value).c_str());
    }
    response_bytes_ = 0;
    too_long_ = false;
    char error[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c, CURLOPT_USERAGENT, "ringfence-webhook/1");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(
                         std::max(options_.timeout, absl::Milliseconds(1)))));
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &CurlClient::Write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &CurlClient::Progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, this);
    const CURLcode code = curl_easy_perform(c);
    curl_slist_free_all(list);
    if (code != CURLE_OK) {
      // curl's messages can name the URL; its code's text does not.
      result.error = too_long_
                         ? absl::StrCat("response longer than ",
                                        options_.max_response_bytes, " bytes")
                         : curl_easy_strerror(code);
      return result;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    result.status = static_cast<int>(status);
    if (!result.acknowledged()) {
      result.error = absl::StrCat("HTTP ", result.status);
    }
    return result;
  }

 private:
  static size_t Write(char*, size_t size, size_t n, void* self_ptr) {
    auto* self = static_cast<CurlClient*>(self_ptr);
    self->response_bytes_ += size * n;
    if (self->response_bytes_ > self->options_.max_response_bytes) {
      self->too_long_ = true;
      return 0;  // aborts the transfer
    }
    return size * n;  // the body itself is not needed
  }

  static int Progress(void* self_ptr, curl_off_t, curl_off_t, curl_off_t,
                      curl_off_t) {
    auto* self = static_cast<CurlClient*>(self_ptr);
    return self->cancel_->load(std::memory_order_relaxed) ? 1 : 0;
  }

  const WebhookHttpOptions options_;
  const std::atomic<bool>* const cancel_;
  CURL* const curl_;
  size_t response_bytes_ = 0;
  bool too_long_ = false;
};

}  // namespace

std::unique_ptr<WebhookHttpClient> NewCurlWebhookHttpClient(
    const WebhookHttpOptions& options, const std::atomic<bool>* cancel) {
  return std::make_unique<CurlClient>(options, cancel);
}

}  // namespace ringfence
