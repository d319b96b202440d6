// ringctl plan explain (offline).
#include <cstdio>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "ringfence/model.h"
#include "ringfence/policy.h"
#include "service/ringctl/commands.h"

namespace ringfence::ringctl {
namespace {

// Prints the effective gate rules of every stage of the plan in `path`
// (policy.h ExplainPlan): exit 0, or 2 naming the field if the plan is
// refused.
int PlanExplain(const std::string& path) {
  Plan plan;
  absl::Status s = LoadMessageFile(path, &plan);
  if (s.ok()) s = ValidatePlan(plan);
  if (!s.ok()) {
    std::fprintf(stderr, "ringctl: %s: %s\n", path.c_str(),
                 std::string(s.message()).c_str());
    return absl::IsNotFound(s) ? kExitError : kExitRejected;
  }
  std::printf("%s", ExplainPlan(plan).c_str());
  return kExitOk;
}

}  // namespace

void AddPlanCommands(CommandLine& cli) {
  cli.DescribeNoun("plan", "rollout plans (offline)");
  auto path = std::make_shared<std::string>();
  CLI::App* app = cli.AddCommand(
      {"plan", "explain"}, "print a plan's effective gate rules (offline)",
      CommandLine::kOffline,
      [path](const Invocation&) { return PlanExplain(*path); });
  cli.SetDetails(app,
                 "Every stage's rules, each value marked default, plan or "
                 "stage, and the built-in signals switched off with their "
                 "reasons. Exit 2 naming the field if the plan would be "
                 "refused.");
  cli.AddArgument(app, "FILE", path.get(), "the plan, text-proto or JSON");
}

}  // namespace ringfence::ringctl
