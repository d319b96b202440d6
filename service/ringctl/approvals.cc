// ringctl approvals list, approve, reject: the two-person rule's requests
// (ringfence/approvals.h). A held call of any other command prints its
// request and exits 1 (client.cc Fail).
#include "ringfence/approvals.h"

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/ringctl/client.h"
#include "service/ringctl/commands.h"
#include "service/ringctl/format.h"

namespace ringfence::ringctl {
namespace {

struct DecideFlags {
  std::string id;
  std::string reason;
};

int List(Client& c) {
  v1::ListApprovalsResponse resp;
  grpc::Status s = c.rollouts().ListApprovals(
      c.Context().get(), v1::ListApprovalsRequest(), &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
    return kExitOk;
  }
  if (resp.requests().empty()) std::printf("no pending approval requests\n");
  for (const ApprovalRequest& r : resp.requests()) {
    std::printf("%s\n", DescribeApprovalRequest(r).c_str());
  }
  return kExitOk;
}

int Approve(Client& c, const DecideFlags& f) {
  v1::ApproveRequest req;
  req.set_request_id(f.id);
  req.set_reason(f.reason);
  v1::ApproveResponse resp;
  grpc::Status s = c.rollouts().Approve(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
    return kExitOk;
  }
  std::printf("approved %s: %s\n", f.id.c_str(),
              DescribeApprovalRequest(resp.request()).c_str());
  if (resp.has_rollout()) PrintRolloutLine(resp.rollout());
  return kExitOk;
}

int Reject(Client& c, const DecideFlags& f) {
  v1::RejectRequest req;
  req.set_request_id(f.id);
  req.set_reason(f.reason);
  v1::RejectResponse resp;
  grpc::Status s = c.rollouts().Reject(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    std::printf("rejected %s\n", f.id.c_str());
  }
  return kExitOk;
}

}  // namespace

void AddApprovalCommands(CommandLine& cli) {
  CLI::App* app = cli.AddCommand(
      {"approvals", "list"}, "the actions waiting for a second principal",
      CommandLine::kOnline,
      [](const Invocation& inv) { return List(inv.client()); });
  cli.SetDetails(app,
                 "Lists the pending requests of the two-person rule, oldest "
                 "first: id, action, requester, expiry, reason.");
  struct Decision {
    const char* name;
    const char* summary;
    const char* details;
    int (*run)(Client&, const DecideFlags&);
  };
  for (const Decision& d : std::vector<Decision>{
           {"approve", "carry out a pending request as its second principal",
            "Runs the request's action now, as its requester's call would "
            "run (every check again, the halt rules included), with you "
            "and --reason on record. The requester cannot approve its own "
            "request (PERMISSION_DENIED, exit 3).",
            &Approve},
           {"reject", "settle a pending request without acting",
            "Anyone may reject; the requester may withdraw its own.", &Reject},
       }) {
    auto flags = std::make_shared<DecideFlags>();
    auto run = d.run;
    app = cli.AddCommand({d.name}, d.summary, CommandLine::kOnline,
                         [flags, run](const Invocation& inv) {
                           return run(inv.client(), *flags);
                         });
    cli.SetDetails(app, d.details);
    cli.AddArgument(app, "REQUEST", &flags->id,
                    "the approval request (apr-...)");
    cli.AddFlag(app, "reason", &flags->reason, "why (the audit log records it)",
                CommandLine::kRequired)
        ->type_name("TEXT");
  }
}

}  // namespace ringfence::ringctl
