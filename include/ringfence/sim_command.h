// The `simulate` command shared by ringctl and ringfence_simulate: runs a
// plan over a scenario for several seeds and deciders and prints a readable
// summary (with a per-minute timeline for a single seed) or JSON.
//
// Before anything runs it writes to `warnings` why the plan may be unable to
// progress on the fleet described (PlanWarnings in sim.h), one line each,
// prefixed "warning: ".
//
// JSON (--json): one object,
//   {"scenario": NAME, "scenario_file": PATH, "plan_file": PATH,
//    "hosts": N, "seeds": N, "seed_offset": K, "horizon_s": S,
//    "max_duration_s": S, "has_effect": B, "can_hurt": B,
//    "warnings": [...], "deciders": {"ringfence": SUMMARY, ...}}
// with SUMMARY as SummaryJson (sim.h). Per-run results (--runs=FILE): one
// JSON object per line, RunJson plus "scenario".
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace ringfence {

struct SimulateCommand {
  std::string plan_path;
  std::string scenario_path;
  // A preset effect instead of the scenario's (see RehearsalScenario).
  std::string rehearse;
  std::string deciders = "ringfence,oracle,threshold_rule";
  // Runs use seeds seed_offset + 1 .. seed_offset + seeds: the run printed
  // for seed S is replayed exactly by --seed-offset=S-1 --seeds=1.
  int seeds = 1;
  uint64_t seed_offset = 0;
  int threads = 2;
  bool json = false;
  // Where to write one JSON line per run ("" = nowhere).
  std::string runs_path;
  // Overrides the scenario's horizon when >= 0.
  absl::Duration horizon = absl::Seconds(-1);
};

// RunSimulateCommand
//
// Loads the files, warns, runs, and prints to `out`. Errors (unreadable or
// invalid plan or scenario, unknown decider or preset, unwritable runs
// file) are returned with the file or field named; nothing is printed to
// `out` then.
absl::Status RunSimulateCommand(const SimulateCommand& command, std::FILE* out,
                                std::FILE* warnings = stderr);

}  // namespace ringfence
