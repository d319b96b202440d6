// The `simulate` command shared by ringctl and ringfence_simulate: runs a
// plan over a scenario for several seeds and deciders and prints a readable
// summary (with a per-minute timeline for a single seed) or JSON.
#pragma once

#include <cstdio>
#include <string>

#include "absl/status/status.h"

namespace ringfence {

struct SimulateCommand {
  std::string plan_path;
  std::string scenario_path;
  // A preset effect instead of the scenario's (see RehearsalScenario).
  std::string rehearse;
  std::string deciders = "ringfence,oracle,threshold_rule";
  int seeds = 1;
  int threads = 2;
  bool json = false;
  // With json: every run, not only the summary.
  bool runs = false;
};

// RunSimulateCommand
//
// Loads the files, runs, and prints to `out`. Errors (unreadable or invalid
// plan or scenario, unknown decider or preset) are returned with the file or
// field named; nothing is printed to `out` then.
absl::Status RunSimulateCommand(const SimulateCommand& command, std::FILE* out);

}  // namespace ringfence
