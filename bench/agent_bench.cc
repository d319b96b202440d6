// The host agent's footprint (ringfence/agent.h) on a real file system:
// what one poll costs the host, and how many events its spool takes per
// second. The agent's resident memory as a process is measured by
// bench/agent_footprint.sh (a real ringfence-agent against ringfenced).
//
//   build/bin/ringfence_agent_bench --benchmark_out=F
//   --benchmark_out_format=json
//
// The state directory is a fresh directory under $TMPDIR (default /tmp);
// fsync costs depend on that file system, and Google Benchmark's CPU column
// (the thread's CPU time) leaves out the time spent waiting for the disk.
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench_main.h"
#include "ringfence/agent.h"
#include "ringfence/agent_fs.h"
#include "ringfence/audit.h"
#include "ringfence/clock.h"

namespace ringfence {
namespace {

constexpr char kPayload[] = "channel file 291, 20 fields";

std::string TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = absl::StrCat(base != nullptr ? base : "/tmp",
                                  "/ringfence-agent-bench-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  return tmpl;
}

// A server that always answers "run rel-a" and accepts every batch.
class SteadyServer final : public AgentTransport {
 public:
  SteadyServer() {
    answer_.has_release = true;
    Release& r = answer_.release;
    r.set_id("rel-a");
    r.set_content_type("channel-file/291");
    r.set_version("1");
    r.set_digest_sha256(Sha256Hex(kPayload));
    r.set_size_bytes(sizeof(kPayload) - 1);
  }
  absl::StatusOr<AssignmentAnswer> GetAssignment(const AgentIdentity&,
                                                 uint64_t) override {
    ++polls;
    return answer_;
  }
  absl::Status ReportTelemetry(absl::Span<const SpooledEvent> batch,
                               absl::Duration*) override {
    events += batch.size();
    return absl::OkStatus();
  }
  uint64_t polls = 0;
  uint64_t events = 0;

 private:
  AssignmentAnswer answer_;
};

class StaticContent final : public ContentHooks {
 public:
  absl::StatusOr<std::string> Fetch(const Release&) override {
    return std::string(kPayload);
  }
  absl::Status Load(const Release&, const std::string&) override {
    return absl::OkStatus();
  }
  absl::Status Unload() override { return absl::OkStatus(); }
};

// One iteration = one poll interval of a healthy host: a Tick that
// heartbeats (a durable spool append), polls (the answer is unchanged) and
// sends the batch (a durable acknowledgement).
void BM_AgentPollInterval(benchmark::State& state) {
  const std::string dir = TempDir();
  std::unique_ptr<AgentFileSystem> fs = NewPosixFileSystem();
  FakeClock clock;
  SteadyServer server;
  StaticContent content;
  AgentOptions o;
  o.identity.host_id = "web-0042";
  o.identity.content_type = "channel-file/291";
  o.state_dir = dir;
  o.require_signature = false;
  o.poll_jitter = 0;
  absl::StatusOr<std::unique_ptr<Agent>> agent =
      Agent::Start(o, fs.get(), &clock, &server, &content);
  if (!agent.ok()) {
    state.SkipWithError(agent.status().ToString().c_str());
    return;
  }
  // Apply rel-a and become healthy before timing.
  for (int i = 0; i < 4; ++i) {
    (*agent)->Tick().IgnoreError();
    clock.Advance(o.poll_interval);
  }
  if ((*agent)->GetStatus().last_good != "rel-a") {
    state.SkipWithError("the agent did not apply rel-a");
    return;
  }
  const uint64_t polls = server.polls;
  for (auto _ : state) {
    clock.Advance(o.poll_interval);
    absl::Status s = (*agent)->Tick();
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.counters["polls_per_iteration"] =
      benchmark::Counter(static_cast<double>(server.polls - polls) /
                         static_cast<double>(state.iterations()));
  agent->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_AgentPollInterval)->Unit(benchmark::kMicrosecond);

// Durable appends of heartbeat-sized events to the spool (each fsync'd),
// acknowledged every 500 events as a delivered batch would be.
void BM_SpoolAppend(benchmark::State& state) {
  const std::string dir = TempDir();
  std::unique_ptr<AgentFileSystem> fs = NewPosixFileSystem();
  absl::StatusOr<std::unique_ptr<EventSpool>> spool =
      EventSpool::Open(fs.get(), dir + "/spool");
  if (!spool.ok()) {
    state.SkipWithError(spool.status().ToString().c_str());
    return;
  }
  TelemetryEvent e;
  e.host_id = "web-0042";
  e.type = EventType::kHeartbeat;
  e.release_id = "channel-file-291-2024-07-19-0409";
  uint64_t n = 0;
  for (auto _ : state) {
    ++n;
    absl::StatusOr<uint64_t> seq = (*spool)->Append(
        absl::StrCat("web-0042/", e.release_id, "/1/heartbeat-", n), e);
    if (!seq.ok()) {
      state.SkipWithError(seq.status().ToString().c_str());
      break;
    }
    if (n % 500 == 0) (*spool)->Ack(*seq).IgnoreError();
  }
  state.SetItemsProcessed(state.iterations());
  spool->reset();
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_SpoolAppend)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace ringfence

int main(int argc, char** argv) { return ringfence::RunBenchmarks(argc, argv); }
