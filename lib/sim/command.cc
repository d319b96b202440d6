#include <algorithm>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ringfence/error_text.h"
#include "ringfence/model.h"
#include "ringfence/sim.h"
#include "ringfence/sim_command.h"
#include "ringfence/status_macros.h"
#include "sim/json.h"

namespace ringfence {
namespace {

std::string Seconds(double s) {
  if (s < 0) return "—";
  return absl::StrFormat("%.0fs", s);
}

void PrintSummary(std::FILE* out, const std::string& name,
                  const SimSummary& s) {
  const Proportion& f = s.false_halts;
  std::string reasons;
  for (const auto& [k, v] : s.halt_reasons) {
    absl::StrAppend(&reasons, reasons.empty() ? "" : ", ", k, " ", v);
  }
  std::fprintf(
      out,
      "  %-15s completed %5.1f%%  halted %5.1f%%  stalled %5.1f%%  "
      "false halts %s\n"
      "  %-15s hurt mean %.1f (p95 %.0f; by the end %.1f)  exposed at halt "
      "%.1f (p95 %.0f)\n"
      "  %-15s time to halt p50 %s p95 %s  completion p50 %s%s p95 %s%s%s%s\n",
      name.c_str(), 100 * s.completed_fraction, 100 * s.halted_fraction,
      100 * s.stalled_fraction,
      f.n == 0 ? "n/a (every run could hurt)"
               : absl::StrFormat("%d/%d = %.2f%% [95%% CI %.2f..%.2f%%]", f.k,
                                 f.n, 100 * f.rate, 100 * f.low, 100 * f.high)
                     .c_str(),
      "", s.hurt_mean, s.hurt_p95, s.hurt_at_end_mean,
      std::max(0.0, s.exposed_at_halt_mean),
      std::max(0.0, s.exposed_at_halt_p95), "",
      Seconds(s.time_to_halt_s_p50).c_str(),
      Seconds(s.time_to_halt_s_p95).c_str(),
      s.completion_p50_censored ? ">=" : "",
      Seconds(s.completion_s_p50).c_str(),
      s.completion_p95_censored ? ">=" : "",
      Seconds(s.completion_s_p95).c_str(),
      reasons.empty() ? "" : "  halts: ", reasons.c_str());
}

}  // namespace

absl::Status RunSimulateCommand(const SimulateCommand& cmd, std::FILE* out,
                                std::FILE* warnings) {
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
  if (absl::Status s = ValidateScenarioForPlan(scenario, plan); !s.ok()) {
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
          absl::StrCat("--deciders: unknown decider ", QuoteForError(d),
                       " (ringfence, oracle, threshold_rule)"));
    }
  }
  if (deciders.empty()) {
    return absl::InvalidArgumentError("--deciders: must name at least one");
  }
  if (cmd.seeds < 1 || cmd.seeds > 100000) {
    return absl::InvalidArgumentError("--seeds: must be in [1, 100000]");
  }
  std::FILE* runs_file = nullptr;
  if (!cmd.runs_path.empty()) {
    runs_file = std::fopen(cmd.runs_path.c_str(), "w");
    if (runs_file == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--runs: cannot write ", cmd.runs_path));
    }
  }
  const std::vector<std::string> warned = PlanWarnings(scenario, plan);
  if (warnings != nullptr) {
    for (const std::string& w : warned) {
      std::fprintf(warnings, "warning: %s\n", w.c_str());
    }
    std::fflush(warnings);
  }
  const int seeds = cmd.seeds;
  const bool timeline = seeds == 1 && !cmd.json;

  std::vector<std::vector<SimRun>> results(deciders.size(),
                                           std::vector<SimRun>(seeds));
  std::vector<std::pair<size_t, int>> work;
  for (int i = 0; i < seeds; ++i) {
    for (size_t d = 0; d < deciders.size(); ++d) work.emplace_back(d, i);
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
      o.seed = cmd.seed_offset + static_cast<uint64_t>(i) + 1;
      o.timeline = timeline && deciders[d] == Decider::kRingfence;
      o.horizon = cmd.horizon;
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
  if (!first_error.ok()) {
    if (runs_file != nullptr) std::fclose(runs_file);
    return first_error;
  }
  if (runs_file != nullptr) {
    for (int i = 0; i < seeds; ++i) {
      for (size_t d = 0; d < deciders.size(); ++d) {
        const std::string js = RunJson(results[d][i]);
        std::fprintf(runs_file, "{\"scenario\": %s, %s\n",
                     internal::JsonString(scenario.name()).c_str(),
                     js.c_str() + 1);
      }
    }
    if (std::fclose(runs_file) != 0) {
      return absl::InternalError(
          absl::StrCat("--runs: writing ", cmd.runs_path, " failed"));
    }
  }
  const double horizon_s = absl::ToDoubleSeconds(
      cmd.horizon >= absl::ZeroDuration() ? cmd.horizon
      : scenario.has_horizon()            ? FromProto(scenario.horizon())
                                          : absl::Hours(24));
  const double max_s = absl::ToDoubleSeconds(
      FromProto(scenario.max_duration()) > absl::ZeroDuration()
          ? FromProto(scenario.max_duration())
          : absl::Hours(48));

  if (cmd.json) {
    std::vector<std::string> parts, quoted;
    for (size_t d = 0; d < deciders.size(); ++d) {
      parts.push_back(absl::StrCat(
          internal::JsonString(std::string(DeciderName(deciders[d]))), ": ",
          SummaryJson(Summarize(results[d]))));
    }
    for (const std::string& w : warned)
      quoted.push_back(internal::JsonString(w));
    // The first JSON layout, kept for scripts written against it:
    // "summary" holds ringfence's figures under their old names, with the
    // other deciders' nested by name.
    std::vector<std::string> legacy;
    std::string legacy_ringfence;
    for (size_t d = 0; d < deciders.size(); ++d) {
      const SimSummary s = Summarize(results[d]);
      const std::string fields = absl::StrFormat(
          "\"runs\": %d, \"halted_fraction\": %.6g, \"false_halt_rate\": "
          "%.6g, \"hosts_hurt_mean\": %.6g, \"hosts_hurt_at_halt_mean\": "
          "%.6g, \"hosts_exposed_at_halt_mean\": %.6g, "
          "\"time_to_halt_s_mean\": %.6g, \"time_to_halt_s_p50\": %.6g, "
          "\"time_to_halt_s_p95\": %.6g",
          s.runs, s.halted_fraction, std::max(0.0, s.false_halts.rate),
          s.hurt_mean, s.hurt_at_halt_mean, s.exposed_at_halt_mean,
          s.time_to_halt_s_mean, s.time_to_halt_s_p50, s.time_to_halt_s_p95);
      if (deciders[d] == Decider::kRingfence) {
        legacy_ringfence = fields;
      } else {
        legacy.push_back(absl::StrCat(
            internal::JsonString(std::string(DeciderName(deciders[d]))), ": {",
            fields, "}"));
      }
    }
    if (!legacy_ringfence.empty())
      legacy.insert(legacy.begin(), legacy_ringfence);
    std::fprintf(
        out, "%s\n",
        absl::StrCat(
            "{\"scenario\": ", internal::JsonString(scenario.name()),
            ", \"scenario_file\": ", internal::JsonString(cmd.scenario_path),
            ", \"plan_file\": ", internal::JsonString(cmd.plan_path),
            ", \"rehearse\": ", internal::JsonString(cmd.rehearse),
            ", \"hosts\": ", scenario.fleet().hosts(), ", \"seeds\": ", seeds,
            ", \"seed_offset\": ", cmd.seed_offset,
            ", \"horizon_s\": ", horizon_s, ", \"max_duration_s\": ", max_s,
            ", \"has_effect\": ", HasEffect(scenario) ? "true" : "false",
            ", \"can_hurt\": ", CanHurt(scenario) ? "true" : "false",
            ", \"warnings\": [", absl::StrJoin(quoted, ", "), "]",
            ", \"deciders\": {", absl::StrJoin(parts, ", "), "}",
            ", \"summary\": {", absl::StrJoin(legacy, ", "), "}}")
            .c_str());
    return absl::OkStatus();
  }

  std::fprintf(out,
               "scenario %s: %llu hosts, seeds %llu..%llu, horizon %.0fh "
               "after the end%s\n",
               scenario.name().c_str(),
               static_cast<unsigned long long>(scenario.fleet().hosts()),
               static_cast<unsigned long long>(cmd.seed_offset + 1),
               static_cast<unsigned long long>(cmd.seed_offset + seeds),
               horizon_s / 3600,
               !HasEffect(scenario) ? " (the update has no effect)"
               : !CanHurt(scenario) ? " (the update cannot hurt any host)"
                                    : "");
  for (size_t d = 0; d < deciders.size(); ++d) {
    PrintSummary(out, std::string(DeciderName(deciders[d])),
                 Summarize(results[d]));
  }
  if (!timeline) return absl::OkStatus();
  for (size_t d = 0; d < deciders.size(); ++d) {
    if (deciders[d] != Decider::kRingfence) continue;
    const SimRun& r = results[d][0];
    std::fprintf(out,
                 "\nringfence, seed %llu: %s after %.0fs in %s; %llu "
                 "exposed, %llu hurt by the end, %llu by the horizon (%.1fs "
                 "wall)\n",
                 static_cast<unsigned long long>(r.seed),
                 std::string(SimOutcomeName(r.outcome)).c_str(), r.end_s,
                 r.stage.c_str(),
                 static_cast<unsigned long long>(r.exposed_at_end),
                 static_cast<unsigned long long>(r.hurt_at_end),
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
