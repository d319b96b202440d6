// ringfence_simulate: the fleet simulator's command line (the same command
// as `ringctl simulate`, without the server flags). See sim_command.h.
//
//   ringfence_simulate --plan=P --scenario=S [--seeds=N] [--json]
//   ringfence_simulate --plan=P --scenario=S --rehearse=boot-loop
//
// Exit codes: 0 ran, 3 usage or input error.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "ringfence/sim_command.h"

ABSL_FLAG(std::string, plan, "", "plan file (text-proto or JSON)");
ABSL_FLAG(std::string, scenario, "", "scenario file (text-proto or JSON)");
ABSL_FLAG(int, seeds, 1, "runs per decider (seeds 1..N)");
ABSL_FLAG(std::string, rehearse, "",
          "preset effect instead of the scenario's: boot-loop, "
          "crash-on-apply:<p>, crash-rate:<RR>");
ABSL_FLAG(std::string, deciders, "ringfence,oracle,threshold_rule",
          "which deciders to run");
ABSL_FLAG(int, threads, 2, "parallel runs");
ABSL_FLAG(bool, json, false, "print JSON");
ABSL_FLAG(bool, runs, false, "with --json: include every run");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  ringfence::SimulateCommand c;
  c.plan_path = absl::GetFlag(FLAGS_plan);
  c.scenario_path = absl::GetFlag(FLAGS_scenario);
  c.rehearse = absl::GetFlag(FLAGS_rehearse);
  c.deciders = absl::GetFlag(FLAGS_deciders);
  c.seeds = absl::GetFlag(FLAGS_seeds);
  c.threads = absl::GetFlag(FLAGS_threads);
  c.json = absl::GetFlag(FLAGS_json);
  c.runs = absl::GetFlag(FLAGS_runs);
  const absl::Status s = ringfence::RunSimulateCommand(c, stdout);
  if (!s.ok()) {
    std::fprintf(stderr, "ringfence_simulate: %s\n",
                 std::string(s.message()).c_str());
    return 3;
  }
  return 0;
}
