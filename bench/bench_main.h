// The main() of ringfence's benchmark binaries: BENCHMARK_MAIN() plus one
// knob, shared so both binaries measure under the same conditions.
//
// Abseil's deadlock detection (on whenever Abseil is built without NDEBUG,
// as the Debian packages are) puts a global lock and a graph lookup in every
// absl::Mutex acquisition, gRPC's included. ringfenced turns it off unless
// run with --mutex_deadlock_detection, so the benchmarks do too by default.
// RINGFENCE_BENCH_DEADLOCK_DETECTION=on leaves it on, to measure what it
// costs. The JSON context field "absl_deadlock_detection" records the mode.
#ifndef RINGFENCE_BENCH_BENCH_MAIN_H_
#define RINGFENCE_BENCH_BENCH_MAIN_H_

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>

#include "absl/synchronization/mutex.h"

namespace ringfence {

inline int RunBenchmarks(int argc, char** argv) {
  const char* dd = std::getenv("RINGFENCE_BENCH_DEADLOCK_DETECTION");
  const bool dd_on = dd != nullptr && std::strcmp(dd, "on") == 0;
  if (!dd_on) {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  benchmark::AddCustomContext("absl_deadlock_detection",
                              dd_on ? "library default" : "off");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace ringfence

#endif  // RINGFENCE_BENCH_BENCH_MAIN_H_
