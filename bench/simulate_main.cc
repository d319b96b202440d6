// ringfence_simulate: the fleet simulator's command line (the same command
// as `ringctl simulate`, without the server flags). See sim_command.h.
//
//   ringfence_simulate --plan=P --scenario=S [--seeds=N] [--seed_offset=K]
//       [--json] [--runs=FILE] [--horizon=24h]
//   ringfence_simulate --plan=P --scenario=S --rehearse=boot-loop
//
// Warnings about a plan that cannot progress on the fleet go to stderr
// before anything runs. Exit codes: 0 ran, 3 usage or input error.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/time.h"
#include "ringfence/sim_command.h"

ABSL_FLAG(std::string, plan, "", "plan file (text-proto or JSON)");
ABSL_FLAG(std::string, scenario, "", "scenario file (text-proto or JSON)");
ABSL_FLAG(int, seeds, 1, "runs per decider");
ABSL_FLAG(uint64_t, seed_offset, 0,
          "runs use seeds seed_offset+1 .. seed_offset+seeds (replay the run "
          "of seed S with --seed_offset=S-1 --seeds=1)");
ABSL_FLAG(std::string, rehearse, "",
          "preset effect instead of the scenario's: boot-loop, "
          "crash-on-apply:<p>, crash-rate:<RR>");
ABSL_FLAG(std::string, deciders, "ringfence,oracle,threshold_rule",
          "which deciders to run");
ABSL_FLAG(int, threads, 2, "parallel runs");
ABSL_FLAG(bool, json, false, "print the summary as JSON");
ABSL_FLAG(std::string, runs, "", "write one JSON line per run to this file");
ABSL_FLAG(std::string, horizon, "",
          "how long after the rollout's end harm is counted (default: the "
          "scenario's, 24h if unset), e.g. 6h");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  ringfence::SimulateCommand c;
  c.plan_path = absl::GetFlag(FLAGS_plan);
  c.scenario_path = absl::GetFlag(FLAGS_scenario);
  c.rehearse = absl::GetFlag(FLAGS_rehearse);
  c.deciders = absl::GetFlag(FLAGS_deciders);
  c.seeds = absl::GetFlag(FLAGS_seeds);
  c.seed_offset = absl::GetFlag(FLAGS_seed_offset);
  c.threads = absl::GetFlag(FLAGS_threads);
  c.json = absl::GetFlag(FLAGS_json);
  c.runs_path = absl::GetFlag(FLAGS_runs);
  const std::string horizon = absl::GetFlag(FLAGS_horizon);
  if (!horizon.empty() && (!absl::ParseDuration(horizon, &c.horizon) ||
                           c.horizon < absl::ZeroDuration())) {
    std::fprintf(stderr,
                 "ringfence_simulate: --horizon: not a duration >= 0: %s\n",
                 horizon.c_str());
    return 3;
  }
  const absl::Status s = ringfence::RunSimulateCommand(c, stdout, stderr);
  if (!s.ok()) {
    std::fprintf(stderr, "ringfence_simulate: %s\n",
                 std::string(s.message()).c_str());
    return 3;
  }
  return 0;
}
