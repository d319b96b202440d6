#include <algorithm>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ringfence/model.h"
#include "ringfence/sim.h"
#include "ringfence/sim_command.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

void PrintSummary(std::FILE* out, const std::string& name,
                  const SimSummary& s) {
  std::fprintf(
      out,
      "  %-15s halted %5.1f%%  false-halt %5.2f%%  hurt mean %8.1f  "
      "exposed at halt %9.1f  time to halt mean %7.0fs p50 %7.0fs p95 %7.0fs\n",
      name.c_str(), 100 * s.halted_fraction, 100 * s.false_halt_rate,
      s.hosts_hurt_mean, s.hosts_exposed_at_halt_mean, s.time_to_halt_s_mean,
      s.time_to_halt_s_p50, s.time_to_halt_s_p95);
}

}  // namespace

absl::Status RunSimulateCommand(const SimulateCommand& cmd, std::FILE* out) {
  if (cmd.plan_path.empty()) {
    return absl::InvalidArgumentError("--plan: required");
  }
  if (cmd.scenario_path.empty()) {
    return absl::InvalidArgumentError("--scenario: required");
  }
  Plan plan;
  Scenario scenario;
  RETURN_IF_ERROR(LoadMessageFile(cmd.plan_path, &plan));
  if (absl::Status s = ValidatePlan(plan); !s.ok()) {
    return PrefixStatus(cmd.plan_path, s);
  }
  RETURN_IF_ERROR(LoadMessageFile(cmd.scenario_path, &scenario));
  if (!cmd.rehearse.empty()) {
    ASSIGN_OR_RETURN(scenario, RehearsalScenario(scenario, cmd.rehearse));
  }
  if (absl::Status s = ValidateScenario(scenario); !s.ok()) {
    return PrefixStatus(cmd.scenario_path, s);
  }
  std::vector<Decider> deciders;
  for (absl::string_view d :
       absl::StrSplit(cmd.deciders, ',', absl::SkipEmpty())) {
    if (d == "ringfence") {
      deciders.push_back(Decider::kRingfence);
    } else if (d == "oracle") {
      deciders.push_back(Decider::kOracle);
    } else if (d == "threshold_rule") {
      deciders.push_back(Decider::kThresholdRule);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--deciders: unknown decider \"", d,
                       "\" (ringfence, oracle, threshold_rule)"));
    }
  }
  if (deciders.empty()) {
    return absl::InvalidArgumentError("--deciders: must name at least one");
  }
  if (cmd.seeds < 1 || cmd.seeds > 100000) {
    return absl::InvalidArgumentError("--seeds: must be in [1, 100000]");
  }
  const int seeds = cmd.seeds;
  const bool timeline = seeds == 1 && !cmd.json;

  std::vector<std::vector<SimRun>> results(deciders.size(),
                                           std::vector<SimRun>(seeds));
  std::vector<std::pair<size_t, int>> work;
  for (size_t d = 0; d < deciders.size(); ++d) {
    for (int i = 0; i < seeds; ++i) work.emplace_back(d, i);
  }
  std::mutex mu;
  size_t next = 0;
  absl::Status first_error;
  auto worker = [&] {
    while (true) {
      size_t w;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (next >= work.size() || !first_error.ok()) return;
        w = next++;
      }
      const auto [d, i] = work[w];
      SimOptions o;
      o.decider = deciders[d];
      o.seed = static_cast<uint64_t>(i) + 1;
      o.timeline = timeline && deciders[d] == Decider::kRingfence;
      absl::StatusOr<SimRun> r = Simulate(scenario, plan, o);
      std::lock_guard<std::mutex> lock(mu);
      if (!r.ok()) {
        if (first_error.ok()) first_error = r.status();
        return;
      }
      results[d][i] = std::move(*r);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::clamp(cmd.threads, 1, 64); ++t) {
    threads.emplace_back(worker);
  }
  for (auto& t : threads) t.join();
  RETURN_IF_ERROR(first_error);

  if (cmd.json) {
    std::string summary;
    std::vector<std::string> others;
    for (size_t d = 0; d < deciders.size(); ++d) {
      const std::string js = SummaryJson(Summarize(results[d]));
      if (deciders[d] == Decider::kRingfence) {
        summary = js;
      } else {
        others.push_back(
            absl::StrCat("\"", DeciderName(deciders[d]), "\": ", js));
      }
    }
    if (summary.empty()) summary = "{}";
    if (!others.empty()) {
      summary.pop_back();  // the closing brace
      absl::StrAppend(&summary, summary.size() > 1 ? ", " : "",
                      absl::StrJoin(others, ", "), "}");
    }
    std::string text =
        absl::StrCat("{\"scenario\": \"", scenario.name(),
                     "\", \"seeds\": ", seeds, ", \"summary\": ", summary);
    if (cmd.runs) {
      std::vector<std::string> runs;
      for (size_t d = 0; d < deciders.size(); ++d) {
        for (const SimRun& r : results[d]) {
          runs.push_back(absl::StrCat("{\"decider\": \"",
                                      DeciderName(deciders[d]),
                                      "\", \"run\": ", RunJson(r), "}"));
        }
      }
      absl::StrAppend(&text, ", \"runs\": [", absl::StrJoin(runs, ", "), "]");
    }
    std::fprintf(out, "%s}\n", text.c_str());
    return absl::OkStatus();
  }

  std::fprintf(out, "scenario %s: %llu hosts, %d seed(s)%s\n",
               scenario.name().c_str(),
               static_cast<unsigned long long>(scenario.fleet().hosts()), seeds,
               HasEffect(scenario) ? "" : " (update has no effect)");
  for (size_t d = 0; d < deciders.size(); ++d) {
    PrintSummary(out, std::string(DeciderName(deciders[d])),
                 Summarize(results[d]));
  }
  if (!timeline) return absl::OkStatus();
  for (size_t d = 0; d < deciders.size(); ++d) {
    if (deciders[d] != Decider::kRingfence) continue;
    const SimRun& r = results[d][0];
    std::fprintf(out,
                 "\nringfence, seed 1: %s after %.0fs; %llu exposed, %llu hurt "
                 "(%.1fs wall)\n",
                 r.halted      ? "HALTED"
                 : r.completed ? "COMPLETED"
                               : "UNFINISHED",
                 r.halted ? r.time_to_halt_s : r.time_to_completion_s,
                 static_cast<unsigned long long>(r.halted ? r.exposed_at_halt
                                                          : r.exposed_total),
                 static_cast<unsigned long long>(r.hurt_total), r.wall_seconds);
    std::string last;
    for (const TimelinePoint& p : r.timeline) {
      const std::string line =
          absl::StrFormat("%-9s %-10s exposed %9d hurt %6d  %s", p.state,
                          p.stage, p.exposed, p.hurt, p.decision);
      if (line == last) continue;
      last = line;
      std::fprintf(out, "  t+%5.0fmin %s\n", p.t_s / 60, line.c_str());
    }
  }
  return absl::OkStatus();
}

}  // namespace ringfence
