// ringctl gate check: whether a release cleared a stage of its rollout, for
// CI pipelines (exit 0 cleared, 1 pending, 2 rejected).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/ringctl/client.h"
#include "service/ringctl/commands.h"
#include "service/ringctl/format.h"

namespace ringfence::ringctl {
namespace {

struct GateFlags {
  std::string release;
  std::string stage;
  bool wait = false;
  std::optional<std::string> timeout;
  std::optional<std::string> interval;
};

int GateCheck(const Invocation& inv, const GateFlags& f) {
  Client& c = inv.client();
  absl::Duration timeout = absl::ZeroDuration();
  absl::Duration interval = absl::Seconds(1);
  if (f.timeout.has_value() && (!absl::ParseDuration(*f.timeout, &timeout) ||
                                timeout < absl::ZeroDuration())) {
    return inv.Usage("--timeout must be a duration, e.g. 30m");
  }
  if (f.interval.has_value() && (!absl::ParseDuration(*f.interval, &interval) ||
                                 interval < absl::Milliseconds(50))) {
    return inv.Usage("--interval must be a duration of at least 50ms");
  }
  const bool wait = f.wait;
  if (wait && !f.timeout.has_value()) timeout = absl::InfiniteDuration();
  const absl::Time deadline = absl::Now() + timeout;
  v1::CheckGateRequest req;
  req.set_release_id(f.release);
  req.set_stage(f.stage);
  while (true) {
    v1::CheckGateResponse resp;
    grpc::Status s = c.rollouts().CheckGate(c.Context().get(), req, &resp);
    const bool retry = wait && absl::Now() < deadline &&
                       s.error_code() == grpc::StatusCode::UNAVAILABLE;
    if (!s.ok() && !retry) return Fail(s);
    if (s.ok() && (resp.status() != v1::GATE_PENDING || !wait ||
                   absl::Now() >= deadline)) {
      int code = kExitNotYet;
      const char* word = "PENDING";
      if (resp.status() == v1::GATE_CLEARED) {
        code = kExitOk;
        word = "CLEARED";
      } else if (resp.status() == v1::GATE_REJECTED) {
        code = kExitRejected;
        word = "REJECTED";
      }
      if (c.json()) {
        std::printf("%s\n", Json(resp).c_str());
      } else {
        std::printf("%s: %s\n", word, resp.explanation().c_str());
      }
      return code;
    }
    absl::SleepFor(std::min(interval, deadline - absl::Now()));
  }
}

}  // namespace

void AddGateCommands(CommandLine& cli) {
  cli.DescribeNoun("gate", "ask the gate, for CI pipelines");
  auto flags = std::make_shared<GateFlags>();
  CLI::App* app = cli.AddCommand(
      {"gate", "check"}, "whether a release's rollout reached a stage",
      CommandLine::kOnline,
      [flags](const Invocation& inv) { return GateCheck(inv, *flags); });
  cli.SetDetails(app,
                 "Prints CLEARED, PENDING or REJECTED with the explanation. "
                 "Exit 0 cleared, 1 pending, 2 rejected (the rollout was "
                 "halted or aborted).");
  cli.AddFlag(app, "release", &flags->release, "the release",
              CommandLine::kRequired)
      ->type_name("R");
  cli.AddFlag(app, "stage", &flags->stage,
              "a stage of the plan (default: the whole fleet, i.e. the rollout "
              "completed)")
      ->type_name("S");
  cli.AddSwitch(app, "wait", &flags->wait,
                "poll while the gate is pending (and the server unavailable)");
  cli.AddFlag(app, "timeout", &flags->timeout,
              "with --wait: give up after this long, exit 1 (default: never)")
      ->type_name("DURATION");
  cli.AddFlag(app, "interval", &flags->interval,
              "with --wait: how often to poll (default 1s, at least 50ms)")
      ->type_name("DURATION");
}

}  // namespace ringfence::ringctl
