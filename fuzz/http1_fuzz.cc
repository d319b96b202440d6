// libFuzzer target: arbitrary bytes as a server's answer to the agent's
// HTTP transport (Http1AnswerParser, service/http1_client.h). The first
// byte picks where the answer is cut into pieces; the rest is the answer.
// Checked: no crash or sanitizer report; a body never longer than the
// bound; and the outcome (error code, completeness, status, body,
// Retry-After, keep-alive) the same as when the bytes come in one piece.
//
//   http1_fuzz fuzz/corpus/http1_fuzz -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "service/http1_client.h"

namespace {

constexpr size_t kMaxBody = 4096;

struct Outcome {
  absl::StatusCode code = absl::StatusCode::kOk;
  bool complete = false;
  bool keep_alive = false;
  ringfence::Http1Response response;
};

// Feeds `answer` in pieces of `step` bytes (all at once for 0), then the
// end of the stream if the answer is still incomplete.
Outcome Run(absl::string_view answer, size_t step) {
  ringfence::Http1AnswerParser parser(kMaxBody);
  Outcome out;
  absl::Status status;
  size_t at = 0;
  while (status.ok() && at < answer.size() && !parser.complete()) {
    const size_t n = step == 0 ? answer.size() : step;
    status = parser.Feed(answer.substr(at, n));
    at += n;
  }
  if (status.ok() && !parser.complete()) status = parser.Feed("");
  out.code = status.code();
  out.complete = parser.complete();
  out.keep_alive = parser.keep_alive();
  if (parser.complete()) out.response = parser.TakeResponse();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = data[0] % 17 + 1;
  const absl::string_view answer(reinterpret_cast<const char*>(data + 1),
                                 size - 1);
  const Outcome whole = Run(answer, 0);
  const Outcome pieces = Run(answer, step);
  if (whole.response.body.size() > kMaxBody ||
      whole.response.retry_after.size() > 64) {
    std::abort();
  }
  if (whole.code != pieces.code || whole.complete != pieces.complete ||
      whole.keep_alive != pieces.keep_alive ||
      whole.response.status != pieces.response.status ||
      whole.response.body != pieces.response.body ||
      whole.response.retry_after != pieces.response.retry_after) {
    std::abort();
  }
  return 0;
}
