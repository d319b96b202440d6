// ringfence_simulate: runs a plan over a scenario with the fleet simulator
// (sim.h), over many seeds, for ringfence's gate and for the two baselines
// (the oracle SPRT and a threshold rule) on the same scenario and seeds.
//
//   ringfence_simulate --plan=P --scenario=S [--seeds=N] [--json]
//   ringfence_simulate --plan=P --scenario=S --rehearse=boot-loop
//   ringfence_simulate --plan=P --scenario=S --seeds=1   # + minute timeline
//
// Exit codes: 0 ran, 3 usage or input error.
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ringfence/model.h"
#include "ringfence/sim.h"

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

namespace {

using ringfence::Decider;
using ringfence::SimRun;

int Usage(const std::string& why) {
  std::fprintf(stderr, "ringfence_simulate: %s\n", why.c_str());
  return 3;
}

void PrintSummary(const std::string& name, const ringfence::SimSummary& s) {
  std::printf(
      "  %-15s halted %5.1f%%  false-halt %5.2f%%  hurt mean %8.1f  "
      "exposed at halt %9.1f  time to halt mean %7.0fs p50 %7.0fs p95 %7.0fs\n",
      name.c_str(), 100 * s.halted_fraction, 100 * s.false_halt_rate,
      s.hosts_hurt_mean, s.hosts_exposed_at_halt_mean, s.time_to_halt_s_mean,
      s.time_to_halt_s_p50, s.time_to_halt_s_p95);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_plan).empty() ||
      absl::GetFlag(FLAGS_scenario).empty()) {
    return Usage("--plan and --scenario are required");
  }
  ringfence::Plan plan;
  ringfence::Scenario scenario;
  absl::Status s = ringfence::LoadMessageFile(absl::GetFlag(FLAGS_plan), &plan);
  if (s.ok()) s = ringfence::ValidatePlan(plan);
  if (!s.ok()) return Usage(std::string(s.message()));
  s = ringfence::LoadMessageFile(absl::GetFlag(FLAGS_scenario), &scenario);
  if (!s.ok()) return Usage(std::string(s.message()));
  if (!absl::GetFlag(FLAGS_rehearse).empty()) {
    auto r =
        ringfence::RehearsalScenario(scenario, absl::GetFlag(FLAGS_rehearse));
    if (!r.ok()) return Usage(std::string(r.status().message()));
    scenario = *r;
  }
  s = ringfence::ValidateScenario(scenario);
  if (!s.ok()) return Usage(std::string(s.message()));

  std::vector<Decider> deciders;
  for (absl::string_view d :
       absl::StrSplit(absl::GetFlag(FLAGS_deciders), ',', absl::SkipEmpty())) {
    if (d == "ringfence")
      deciders.push_back(Decider::kRingfence);
    else if (d == "oracle")
      deciders.push_back(Decider::kOracle);
    else if (d == "threshold_rule")
      deciders.push_back(Decider::kThresholdRule);
    else
      return Usage(absl::StrCat("unknown decider \"", d, "\""));
  }
  const int seeds = std::max(1, absl::GetFlag(FLAGS_seeds));
  const bool timeline = seeds == 1 && !absl::GetFlag(FLAGS_json);

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
      ringfence::SimOptions o;
      o.decider = deciders[d];
      o.seed = static_cast<uint64_t>(i) + 1;
      o.timeline = timeline && deciders[d] == Decider::kRingfence;
      auto r = ringfence::Simulate(scenario, plan, o);
      std::lock_guard<std::mutex> lock(mu);
      if (!r.ok()) {
        if (first_error.ok()) first_error = r.status();
        return;
      }
      results[d][i] = std::move(*r);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::max(1, absl::GetFlag(FLAGS_threads)); ++t) {
    threads.emplace_back(worker);
  }
  for (auto& t : threads) t.join();
  if (!first_error.ok()) return Usage(first_error.ToString());

  if (absl::GetFlag(FLAGS_json)) {
    std::string out = absl::StrCat("{\"scenario\": \"", scenario.name(),
                                   "\", \"seeds\": ", seeds, ", \"summary\": ");
    std::string summary;
    std::vector<std::string> others;
    for (size_t d = 0; d < deciders.size(); ++d) {
      const std::string js =
          ringfence::SummaryJson(ringfence::Summarize(results[d]));
      if (deciders[d] == Decider::kRingfence) {
        summary = js;
      } else {
        others.push_back(absl::StrCat("\"", ringfence::DeciderName(deciders[d]),
                                      "\": ", js));
      }
    }
    if (summary.empty()) summary = "{}";
    if (!others.empty()) {
      summary.pop_back();  // '}'
      absl::StrAppend(&summary, summary.size() > 1 ? ", " : "",
                      absl::StrJoin(others, ", "), "}");
    }
    absl::StrAppend(&out, summary);
    if (absl::GetFlag(FLAGS_runs)) {
      std::vector<std::string> runs;
      for (size_t d = 0; d < deciders.size(); ++d) {
        for (const SimRun& r : results[d]) {
          runs.push_back(absl::StrCat(
              "{\"decider\": \"", ringfence::DeciderName(deciders[d]),
              "\", \"run\": ", ringfence::RunJson(r), "}"));
        }
      }
      absl::StrAppend(&out, ", \"runs\": [", absl::StrJoin(runs, ", "), "]");
    }
    std::printf("%s}\n", out.c_str());
    return 0;
  }

  std::printf("scenario %s: %llu hosts, %d seed(s)%s\n",
              scenario.name().c_str(),
              static_cast<unsigned long long>(scenario.fleet().hosts()), seeds,
              ringfence::HasEffect(scenario) ? "" : " (update has no effect)");
  for (size_t d = 0; d < deciders.size(); ++d) {
    PrintSummary(std::string(ringfence::DeciderName(deciders[d])),
                 ringfence::Summarize(results[d]));
  }
  if (timeline) {
    for (size_t d = 0; d < deciders.size(); ++d) {
      if (deciders[d] != Decider::kRingfence) continue;
      const SimRun& r = results[d][0];
      std::printf(
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
      for (const auto& p : r.timeline) {
        const std::string line =
            absl::StrFormat("%-9s %-10s exposed %9d hurt %6d  %s", p.state,
                            p.stage, p.exposed, p.hurt, p.decision);
        if (line == last) continue;
        last = line;
        std::printf("  t+%5.0fmin %s\n", p.t_s / 60, line.c_str());
      }
    }
  }
  return 0;
}
