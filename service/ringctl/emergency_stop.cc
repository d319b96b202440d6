// ringctl emergency-stop: halt every rollout of a content type and refuse
// new ones until the stop is cleared.
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_join.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/ringctl/client.h"
#include "service/ringctl/commands.h"
#include "service/ringctl/format.h"

namespace ringfence::ringctl {
namespace {

struct StopFlags {
  std::string content_type;
  std::string reason;
  bool clear = false;
};

int EmergencyStop(Client& c, const StopFlags& f) {
  if (f.clear) {
    v1::ClearEmergencyStopRequest req;
    req.set_content_type(f.content_type);
    req.set_reason(f.reason);
    v1::ClearEmergencyStopResponse resp;
    grpc::Status s =
        c.rollouts().ClearEmergencyStop(c.Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (c.json()) {
      std::printf("%s\n", Json(resp).c_str());
    } else {
      std::printf("emergency stop of %s cleared\n", req.content_type().c_str());
    }
    return kExitOk;
  }
  v1::EmergencyStopRequest req;
  req.set_content_type(f.content_type);
  req.set_reason(f.reason);
  v1::EmergencyStopResponse resp;
  grpc::Status s = c.rollouts().EmergencyStop(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    std::printf("emergency stop of %s; halted rollouts: %s\n",
                resp.content_type().c_str(),
                resp.halted_rollout_ids().empty()
                    ? "none"
                    : absl::StrJoin(resp.halted_rollout_ids(), ", ").c_str());
  }
  return kExitOk;
}

}  // namespace

void AddEmergencyStopCommand(CommandLine& cli) {
  auto flags = std::make_shared<StopFlags>();
  CLI::App* app = cli.AddCommand(
      {"emergency-stop"}, "halt a content type's rollouts, refuse new ones",
      CommandLine::kOnline, [flags](const Invocation& inv) {
        return EmergencyStop(inv.client(), *flags);
      });
  cli.SetDetails(app,
                 "Halts every active rollout of the content type and refuses "
                 "new ones until --clear. Clearing never resumes a rollout.");
  cli.AddFlag(app, "content-type", &flags->content_type, "the content type",
              CommandLine::kRequired)
      ->type_name("T");
  cli.AddFlag(app, "reason", &flags->reason, "why (the audit log records it)",
              CommandLine::kRequired)
      ->type_name("TEXT");
  cli.AddSwitch(app, "clear", &flags->clear, "clear the emergency stop");
}

}  // namespace ringfence::ringctl
