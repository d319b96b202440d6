// ringctl simulate (offline): rehearse a plan on the fleet simulator
// (sim_command.h), in-process.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "ringfence/sim_command.h"
#include "service/ringctl/commands.h"

namespace ringfence::ringctl {
namespace {

struct SimulateFlags {
  std::string plan;
  std::string scenario;
  std::optional<std::string> seeds;
  std::optional<std::string> seed_offset;
  std::string rehearse;
  std::optional<std::string> deciders;
  std::optional<std::string> threads;
  std::string runs;
  std::optional<std::string> horizon;
};

int Simulate(const Invocation& inv, const SimulateFlags& f) {
  SimulateCommand c;
  c.plan_path = f.plan;
  c.scenario_path = f.scenario;
  c.rehearse = f.rehearse;
  c.runs_path = f.runs;
  if (f.deciders.has_value()) c.deciders = *f.deciders;
  if ((f.seeds.has_value() && !absl::SimpleAtoi(*f.seeds, &c.seeds)) ||
      (f.seed_offset.has_value() &&
       !absl::SimpleAtoi(*f.seed_offset, &c.seed_offset)) ||
      (f.threads.has_value() && !absl::SimpleAtoi(*f.threads, &c.threads))) {
    return inv.Usage("--seeds, --seed-offset and --threads take numbers");
  }
  if (f.horizon.has_value() && (!absl::ParseDuration(*f.horizon, &c.horizon) ||
                                c.horizon < absl::ZeroDuration())) {
    return inv.Usage("--horizon takes a duration >= 0, e.g. 24h");
  }
  c.json = inv.json();
  const absl::Status s = RunSimulateCommand(c, stdout, stderr);
  if (!s.ok()) {
    std::fprintf(stderr, "ringctl simulate: %s\n",
                 std::string(s.message()).c_str());
    return kExitError;
  }
  return kExitOk;
}

}  // namespace

void AddSimulateCommand(CommandLine& cli) {
  auto flags = std::make_shared<SimulateFlags>();
  CLI::App* app = cli.AddCommand(
      {"simulate"}, "rehearse a plan on the fleet simulator (offline)",
      CommandLine::kOffline,
      [flags](const Invocation& inv) { return Simulate(inv, *flags); });
  cli.SetDetails(app,
                 "Runs seeds K+1..K+N with each decider and prints how each "
                 "did (--json: the summary as JSON). Warns on stderr, before "
                 "running, when the plan cannot progress on the fleet.");
  cli.AddFlag(app, "plan", &flags->plan, "the plan, text-proto or JSON",
              CommandLine::kRequired)
      ->type_name("FILE");
  cli.AddFlag(app, "scenario", &flags->scenario,
              "the fleet and the release's effect, text-proto or JSON",
              CommandLine::kRequired)
      ->type_name("FILE");
  cli.AddFlag(app, "seeds", &flags->seeds, "runs (N, default 1)")
      ->type_name("N");
  cli.AddFlag(app, "seed-offset", &flags->seed_offset,
              "the first run's seed is K+1 (default 0)")
      ->type_name("K");
  cli.AddFlag(app, "rehearse", &flags->rehearse,
              "a preset effect instead of the scenario's: boot-loop, "
              "crash-on-apply:P, crash-rate:RR")
      ->type_name("PRESET");
  cli.AddFlag(app, "deciders", &flags->deciders,
              "who decides, comma-separated (default "
              "ringfence,oracle,threshold_rule)")
      ->type_name("LIST");
  cli.AddFlag(app, "threads", &flags->threads, "threads (default 2)")
      ->type_name("N");
  cli.AddFlag(app, "runs", &flags->runs, "write one JSON line per run here")
      ->type_name("FILE");
  cli.AddFlag(app, "horizon", &flags->horizon,
              "how long after the rollout's end harm is counted (default: the "
              "scenario's, 24h if unset), e.g. 6h")
      ->type_name("DURATION");
}

}  // namespace ringfence::ringctl
