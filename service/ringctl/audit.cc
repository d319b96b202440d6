// ringctl audit list|verify: read the audit log, and check its hash chain.
#include "ringfence/audit.h"

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/ringctl/client.h"
#include "service/ringctl/commands.h"
#include "service/ringctl/format.h"

namespace ringfence::ringctl {
namespace {

struct ListFlags {
  std::string rollout;
  std::string after;
  std::string limit;
};

// The action with its transition, e.g. "pause running->paused stage 0".
// The two-person rule's entries name their request: "approval_requested
// apr-... (promote)", "approval_rejected apr-...".
std::string Describe(const AuditEntry& e) {
  std::string out = e.action();
  if (e.has_approval_request()) {
    out += " " + e.approval_request().id() + " (" +
           e.approval_request().action() + ")";
  } else if (e.action() == "approval_rejected") {
    out += " " + e.approval_request_id();
  }
  if (e.from_state() != e.to_state()) {
    out += " " + StateName(e.from_state()) + "->" + StateName(e.to_state());
  }
  return out;
}

int List(const Invocation& inv, const ListFlags& f) {
  v1::ListAuditRequest req;
  uint64_t after = 0;
  if (!f.after.empty() && !absl::SimpleAtoi(f.after, &after)) {
    return inv.Usage("--after: must be a sequence number (0 or more)");
  }
  uint32_t limit = 0;
  if (!f.limit.empty() && !absl::SimpleAtoi(f.limit, &limit)) {
    return inv.Usage("--limit: must be a number in [1, 1000]");
  }
  req.set_after_seq(after);
  req.set_limit(limit);
  req.set_rollout_id(f.rollout);
  Client& c = inv.client();
  v1::ListAuditResponse resp;
  grpc::Status s = c.rollouts().ListAudit(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
    return kExitOk;
  }
  for (const AuditEntry& e : resp.entries()) {
    std::printf("%6llu  %s  %-16s %-28s %s  %s\n",
                static_cast<unsigned long long>(e.seq()),
                FormatTime(e.at()).c_str(), e.actor().c_str(),
                Describe(e).c_str(),
                e.rollout_id().empty() ? "-" : e.rollout_id().c_str(),
                e.reason().c_str());
  }
  if (!resp.end_of_log() && resp.next_after_seq() != after) {
    std::printf("(more: --after=%llu)\n",
                static_cast<unsigned long long>(resp.next_after_seq()));
  }
  return kExitOk;
}

constexpr uint32_t kPage = 1000;

int Verify(const Invocation& inv) {
  Client& c = inv.client();
  AuditChainVerifier verifier;
  uint64_t after = 0;
  while (true) {
    v1::ListAuditRequest req;
    req.set_after_seq(after);
    req.set_limit(kPage);
    v1::ListAuditResponse resp;
    grpc::Status s = c.rollouts().ListAudit(c.Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    for (const AuditEntry& e : resp.entries()) {
      if (!verifier.Add(e)) break;
    }
    if (!verifier.result().ok || resp.entries().empty() ||
        resp.next_after_seq() <= after) {
      break;
    }
    after = resp.next_after_seq();
  }
  const AuditVerification& v = verifier.result();
  if (c.json()) {
    std::printf(
        "{\"ok\": %s, \"entries\": %llu, \"firstBrokenSeq\": %llu, "
        "\"headHash\": \"%s\"}\n",
        v.ok ? "true" : "false", static_cast<unsigned long long>(v.entries),
        static_cast<unsigned long long>(v.first_broken_seq),
        verifier.head_hash().c_str());
  } else if (v.ok) {
    std::printf("audit log OK: %llu entries, head hash %s\n",
                static_cast<unsigned long long>(v.entries),
                verifier.head_hash().c_str());
  } else {
    std::printf("audit log BROKEN at entry %llu: %s\n",
                static_cast<unsigned long long>(v.first_broken_seq),
                v.problem.c_str());
  }
  return v.ok ? kExitOk : kExitRejected;
}

}  // namespace

void AddAuditCommands(CommandLine& cli) {
  cli.DescribeNoun("audit", "read the audit log and check its hash chain");
  auto flags = std::make_shared<ListFlags>();
  CLI::App* list = cli.AddCommand(
      {"audit", "list"}, "audit log entries, oldest first",
      CommandLine::kOnline,
      [flags](const Invocation& inv) { return List(inv, *flags); });
  cli.SetDetails(list,
                 "One page (default 100 entries, --limit up to 1000) after "
                 "--after; prints where the next page starts.");
  cli.AddFlag(list, "rollout", &flags->rollout, "only this rollout's entries")
      ->type_name("ID");
  cli.AddFlag(list, "after", &flags->after,
              "entries after this sequence number (default 0)")
      ->type_name("N");
  cli.AddFlag(list, "limit", &flags->limit,
              "most entries (1..1000, default 100)")
      ->type_name("N");
  CLI::App* verify = cli.AddCommand(
      {"audit", "verify"}, "check the whole audit log's hash chain",
      CommandLine::kOnline, [](const Invocation& inv) { return Verify(inv); });
  cli.SetDetails(verify,
                 "Reads every entry over the API and recomputes the chain "
                 "(each entry's hash, and its link to the previous one) with "
                 "the function the store uses. Exit 0 if it holds; 2 naming "
                 "the first broken entry (altered, missing or relinked).");
}

}  // namespace ringfence::ringctl
