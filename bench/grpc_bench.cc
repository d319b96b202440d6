// ringfence_grpc_bench: the gRPC benchmarks of issue 4 (what the wire and
// the service layer cost on top of the library).
//
//   BM_GrpcEcho             a unary callback service (bench/proto/echo.proto)
//                           that answers with its request, whose payload is
//                           the bytes of a GetAssignment request: the floor.
//   BM_GetAssignment        Fleet.GetAssignment against a started rollout
//                           (hosts answered NOT_YET or COMPLETED).
//   BM_*Raw                 the same two with pre-serialized requests and
//                           unparsed answers (no client-side protobuf work).
//   BM_ReportTelemetry      Fleet.ReportTelemetry, batches of 1000 heartbeats,
//                           sent pre-serialized (generic stub).
//   BM_ParseTelemetryBatch  only ParseFromString of the same serialized batch.
//   BM_ServerTelemetry*     the server's steps of ReportTelemetry, in process.
//   BM_CheckGateLatency     sequential Rollouts.CheckGate; p50_us / p99_us.
//   BM_GetAssignmentOnFollower  BM_GetAssignment's requests asked of a
//                           follower (a standby with a Follower over the
//                           leader's store, refreshed every 250 ms): answered
//                           from its snapshot.
//   BM_GetAssignmentDogfood / BM_GetAssignmentForwarded  requests of hosts
//                           in the running stage (each would get a new
//                           exposure, or waits for pacing), asked of the
//                           leader / of the follower, which forwards them to
//                           the leader: the forwarding's cost.
//
// Server and client run in this process over loopback (127.0.0.1, port 0),
// plaintext, no authentication, memory store, FakeClock. BM_GrpcEcho and
// BM_GetAssignment use the same client mechanics (callback unary call on one
// shared channel, each benchmark thread waiting for its call) and the same
// server handler kind, so their ratio is the service's own cost. Compare
// them by rpcs_per_s (items/s).
//
//   ringfence_grpc_bench --benchmark_min_time=1
//       --benchmark_out=grpc.json --benchmark_out_format=json
#include <benchmark/benchmark.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "bench/bench_main.h"
#include "bench/echo.grpc.pb.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/follower.h"
#include "ringfence/model.h"
#include "ringfence/store.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/convert.h"
#include "service/server.h"
#include "service/standby_server.h"

namespace ringfence {
namespace {

constexpr char kRunningType[] = "channel-file/291";
constexpr char kCompletedType[] = "channel-file/292";
constexpr char kReportTelemetryMethod[] = "/ringfence.v1.Fleet/ReportTelemetry";
constexpr int kHostPool = 4096;
constexpr int kTelemetryBatch = 1000;
constexpr int kTelemetryClients = 4;

// The default plan (examples/plans/default.textproto).
constexpr char kPlanPath[] =
    RINGFENCE_SOURCE_DIR "/examples/plans/default.textproto";

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "ringfence_grpc_bench: %s: %s\n", what,
                 s.ToString().c_str());
    std::abort();
  }
}

void CheckGrpc(const grpc::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "ringfence_grpc_bench: %s: %d %s\n", what,
                 static_cast<int>(s.error_code()), s.error_message().c_str());
    std::abort();
  }
}

// How busy the whole process (client, server and gRPC threads) was during
// the timed loop, in cores: counter `cores_busy` (set by thread 0). With 2
// cores, 2.0 means the rate is CPU-bound; well below means waiting.
class ProcessCpu {
 public:
  explicit ProcessCpu(benchmark::State& state)
      : state_(state), cpu_(CpuSeconds()), wall_(WallSeconds()) {}
  void Stop() {
    if (state_.thread_index() != 0) return;
    const double wall = WallSeconds() - wall_;
    if (wall > 0) state_.counters["cores_busy"] = (CpuSeconds() - cpu_) / wall;
  }

 private:
  static double CpuSeconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) +
           1e-9 * static_cast<double>(ts.tv_nsec);
  }
  static double WallSeconds() {
    return std::chrono::duration<double>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  benchmark::State& state_;
  const double cpu_;
  const double wall_;
};

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// 32 lower-case hex characters (an EDR-style agent id).
std::string HostId(uint64_t i) {
  static constexpr char kHex[] = "0123456789abcdef";
  const uint64_t a = SplitMix64(2 * i), b = SplitMix64(2 * i + 1);
  std::string s(32, '0');
  for (int k = 0; k < 16; ++k) {
    s[k] = kHex[(a >> (4 * k)) & 15];
    s[16 + k] = kHex[(b >> (4 * k)) & 15];
  }
  return s;
}

Release MakeRelease(const std::string& id, const std::string& content_type,
                    char digest_char) {
  Release r;
  r.set_id(id);
  r.set_content_type(content_type);
  r.set_version(id);
  r.set_digest_sha256(std::string(64, digest_char));
  r.set_size_bytes(40000);
  r.set_fetch_url("https://updates.example/" + id);
  r.mutable_targeting()->set_min_agent_version("7.0");
  r.mutable_targeting()->add_platforms("windows");
  r.mutable_targeting()->add_platforms("linux");
  return r;
}

// A message's serialized bytes, ready to send through a generic stub.
grpc::ByteBuffer Bytes(const google::protobuf::MessageLite& m) {
  grpc::Slice slice(m.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

// ---- The ringfenced fixture -------------------------------------------------

// A controller with a rollout of "cf291-next" RUNNING in stage 0 (dogfood, so
// "ring:prod" hosts are NOT_YET) and a COMPLETED rollout of "cf292-next",
// served by ringfence::Server on 127.0.0.1:0. Built once, never destroyed.
struct Ringfenced {
  FakeClock clock;
  StorePtr store;
  std::unique_ptr<Controller> controller;
  std::unique_ptr<Server> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Fleet::Stub> fleet;
  std::unique_ptr<v1::Rollouts::Stub> rollouts;
  // GetAssignment requests serialized, for the raw client (shared channel).
  std::unique_ptr<grpc::GenericStub> raw;
  std::vector<grpc::ByteBuffer> raw_requests;
  // Telemetry clients, one connection each (pre-serialized batches).
  std::vector<std::unique_ptr<grpc::GenericStub>> telemetry_clients;
  std::vector<v1::GetAssignmentRequest> requests;  // kHostPool
};

Ringfenced& GetRingfenced() {
  static Ringfenced* const w = [] {
    auto* w = new Ringfenced;
    w->store = NewMemoryStore();
    auto c = Controller::Create(w->store.get(), &w->clock, {});
    Check(c.status(), "Controller::Create");
    w->controller = *std::move(c);
    Plan plan;
    Check(LoadMessageFile(kPlanPath, &plan), "parse plan");
    Check(ValidatePlan(plan), "validate plan");
    struct Spec {
      const char* type;
      const char* base;
      const char* next;
      int promotions;
    };
    for (const Spec& s : {Spec{kRunningType, "cf291-good", "cf291-next", 0},
                          Spec{kCompletedType, "cf292-good", "cf292-next",
                               plan.stages_size() + 1}}) {
      Check(w->controller->CreateRelease(MakeRelease(s.base, s.type, 'a'),
                                         "bench"),
            "CreateRelease baseline");
      Check(w->controller->CreateRelease(MakeRelease(s.next, s.type, 'b'),
                                         "bench"),
            "CreateRelease next");
      StartRolloutRequest req;
      // The baseline must have completed a rollout: adopt it first.
      req.rollout_id = absl::StrCat(s.base, "-rollout");
      req.release_id = s.base;
      req.plan = plan;
      req.allow_no_baseline = true;
      req.actor = "bench";
      req.reason = "the release every host runs";
      Check(w->controller->StartRollout(req).status(), "StartRollout base");
      Check(w->controller->PromoteToCompletion(req.rollout_id, "bench", "adopt")
                .status(),
            "PromoteToCompletion base");
      req.rollout_id = absl::StrCat(s.next, "-rollout");
      req.release_id = s.next;
      req.baseline_release_id = s.base;
      req.plan = plan;
      req.actor = "bench";
      req.reason = "benchmark rollout";
      Check(w->controller->StartRollout(req).status(), "StartRollout");
      for (int p = 0; p < s.promotions; ++p) {
        Check(w->controller->Promote(req.rollout_id, "bench", "bench").status(),
              "Promote");
      }
    }
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    auto server = Server::Start(w->controller.get(), std::move(options));
    Check(server.status(), "Server::Start");
    w->server = *std::move(server);
    w->channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", w->server->port()),
                            grpc::InsecureChannelCredentials());
    w->fleet = v1::Fleet::NewStub(w->channel);
    w->rollouts = v1::Rollouts::NewStub(w->channel);
    for (int k = 0; k < kTelemetryClients; ++k) {
      // A distinct channel argument gives each client its own connection,
      // as distinct hosts would have.
      grpc::ChannelArguments args;
      args.SetInt("ringfence.bench.telemetry_client", k);
      w->telemetry_clients.push_back(
          std::make_unique<grpc::GenericStub>(grpc::CreateCustomChannel(
              absl::StrCat("127.0.0.1:", w->server->port()),
              grpc::InsecureChannelCredentials(), args)));
    }
    // Half the hosts ask about the running rollout (NOT_YET), half about
    // the completed one (COMPLETED).
    for (int i = 0; i < kHostPool; ++i) {
      v1::GetAssignmentRequest r;
      r.set_host_id(HostId(i));
      r.set_tenant(absl::StrCat("tenant-", 100 + i % 900));
      r.add_labels(absl::StrCat("region:r", i % 8));
      r.add_labels("ring:prod");
      r.set_agent_version("7.11.0");
      r.set_platform("windows");
      r.add_content_types(i % 2 == 0 ? kRunningType : kCompletedType);
      w->requests.push_back(std::move(r));
    }
    w->raw = std::make_unique<grpc::GenericStub>(w->channel);
    for (const auto& r : w->requests) w->raw_requests.push_back(Bytes(r));
    // Check the answers once.
    int not_yet = 0, completed = 0;
    for (int i = 0; i < kHostPool; ++i) {
      grpc::ClientContext ctx;
      v1::GetAssignmentResponse resp;
      CheckGrpc(w->fleet->GetAssignment(&ctx, w->requests[i], &resp),
                "GetAssignment (setup)");
      const auto reason = resp.assignments(0).reason();
      not_yet += reason == v1::NOT_YET;
      completed += reason == v1::COMPLETED;
    }
    std::fprintf(stderr,
                 "ringfence_grpc_bench: %d hosts: %d NOT_YET, %d COMPLETED\n",
                 kHostPool, not_yet, completed);
    if (not_yet + completed < kHostPool * 9 / 10) std::abort();
    return w;
  }();
  return *w;
}

// ---- The bare echo fixture -------------------------------------------------

// A unary callback service that answers with its request: the same handler
// kind (CallbackService, DefaultReactor, Finish) as Fleet.GetAssignment, so
// the difference between the two is the service's own work.
class EchoService final : public bench::Echo::CallbackService {
 public:
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* ctx,
                                 const bench::EchoMessage* request,
                                 bench::EchoMessage* response) override {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    response->set_payload(request->payload());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

struct Echo {
  EchoService service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<bench::Echo::Stub> stub;
  // The GetAssignment requests' bytes as payloads.
  std::vector<bench::EchoMessage> requests;
  // The same requests serialized, for the raw client (same channel).
  std::unique_ptr<grpc::GenericStub> raw;
  std::vector<grpc::ByteBuffer> raw_requests;
};

Echo& GetEcho() {
  static Echo* const e = [] {
    auto* e = new Echo;
    int port = 0;
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(&e->service);
    e->server = builder.BuildAndStart();
    if (e->server == nullptr || port == 0) std::abort();
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                       grpc::InsecureChannelCredentials());
    e->stub = bench::Echo::NewStub(channel);
    e->raw = std::make_unique<grpc::GenericStub>(channel);
    for (const auto& r : GetRingfenced().requests) {
      bench::EchoMessage m;
      m.set_payload(r.SerializeAsString());
      e->raw_requests.push_back(Bytes(m));
      e->requests.push_back(std::move(m));
    }
    return e;
  }();
  return *e;
}

double RequestBytes() {
  size_t total = 0;
  for (const auto& r : GetRingfenced().requests) total += r.ByteSizeLong();
  return static_cast<double>(total) / kHostPool;
}

// One callback unary call per iteration, waited for; the same loop for every
// client below, so the pairs compared differ only in the call.
// `start(ctx, i, response, on_done)` issues call number `i` (each thread
// starts at its own offset into the request pool). Counter rpcs_per_s
// (== items_per_second): the aggregate rate over the threads.
template <typename Response, typename Start>
void UnaryCalls(benchmark::State& state, Start start) {
  size_t i = static_cast<size_t>(state.thread_index()) * 997;
  ProcessCpu cpu(state);
  for (auto _ : state) {
    grpc::ClientContext ctx;
    Response response;
    grpc::Status status;
    absl::Notification done;
    start(&ctx, i++, &response, [&](grpc::Status s) {
      status = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    if (!status.ok()) {
      state.SkipWithError(status.error_message().c_str());
      break;
    }
  }
  cpu.Stop();
  state.SetItemsProcessed(state.iterations());
  state.counters["rpcs_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

// ---- 1. BM_GrpcEcho
// -----------------------------------------------------------

void BM_GrpcEcho(benchmark::State& state) {
  Echo& e = GetEcho();
  UnaryCalls<bench::EchoMessage>(
      state, [&e](grpc::ClientContext* ctx, size_t i,
                  bench::EchoMessage* response, auto on_done) {
        e.stub->async()->Echo(ctx, &e.requests[i % kHostPool], response,
                              std::move(on_done));
      });
  if (state.thread_index() == 0) state.counters["req_bytes"] = RequestBytes();
}
BENCHMARK(BM_GrpcEcho)->Threads(1)->Threads(8)->UseRealTime();

// ---- 2. BM_GetAssignment
// -----------------------------------------------------

void BM_GetAssignment(benchmark::State& state) {
  Ringfenced& w = GetRingfenced();
  UnaryCalls<v1::GetAssignmentResponse>(
      state, [&w](grpc::ClientContext* ctx, size_t i,
                  v1::GetAssignmentResponse* response, auto on_done) {
        w.fleet->async()->GetAssignment(ctx, &w.requests[i % kHostPool],
                                        response, std::move(on_done));
      });
  if (state.thread_index() == 0) state.counters["req_bytes"] = RequestBytes();
}
BENCHMARK(BM_GetAssignment)->Threads(1)->Threads(8)->UseRealTime();

// ---- 2b. The same pair with a raw client ---------------------------------
//
// The client sends pre-serialized requests and does not parse the answers
// (generic stub, ByteBuffers), so the client's protobuf work, which differs
// between the two (a 6-field request and a 181-byte answer of 7 strings
// against one bytes field), is not counted. The servers are unchanged: each
// parses its request and serializes its response. GetAssignment answers
// were checked at setup; here only the status is.

void RawUnaryCalls(benchmark::State& state, grpc::GenericStub& stub,
                   const char* method,
                   const std::vector<grpc::ByteBuffer>& requests) {
  UnaryCalls<grpc::ByteBuffer>(
      state, [&](grpc::ClientContext* ctx, size_t i, grpc::ByteBuffer* response,
                 auto on_done) {
        stub.UnaryCall(ctx, method, grpc::StubOptions(),
                       &requests[i % requests.size()], response,
                       std::move(on_done));
      });
}

void BM_GrpcEchoRaw(benchmark::State& state) {
  Echo& e = GetEcho();
  RawUnaryCalls(state, *e.raw, "/ringfence.bench.Echo/Echo", e.raw_requests);
}
BENCHMARK(BM_GrpcEchoRaw)->Threads(1)->Threads(8)->UseRealTime();

void BM_GetAssignmentRaw(benchmark::State& state) {
  Ringfenced& w = GetRingfenced();
  RawUnaryCalls(state, *w.raw, "/ringfence.v1.Fleet/GetAssignment",
                w.raw_requests);
}
BENCHMARK(BM_GetAssignmentRaw)->Threads(1)->Threads(8)->UseRealTime();

// What the GetAssignment handler does besides gRPC, in process: the request
// to a HostInfo, validation, Controller::Assign and the response, for the
// same 4096 requests. Counter resp_bytes: the average response size (echo's
// is the request's, req_bytes).
void BM_ServerGetAssignmentWork(benchmark::State& state) {
  Ringfenced& w = GetRingfenced();
  // As the handler does: the HostInfo and the response are reused.
  HostInfo host;
  auto answer = [&w, &host](const v1::GetAssignmentRequest& req,
                            v1::GetAssignmentResponse* resp) {
    return AnswerGetAssignment(*w.controller, req, &host, resp);
  };
  size_t i = 0;
  v1::GetAssignmentResponse resp;
  for (auto _ : state) {
    resp.Clear();
    absl::Status s = answer(w.requests[i++ % kHostPool], &resp);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(resp);
  }
  state.SetItemsProcessed(state.iterations());
  size_t resp_bytes = 0;
  for (const v1::GetAssignmentRequest& req : w.requests) {
    v1::GetAssignmentResponse resp;
    answer(req, &resp).IgnoreError();
    resp_bytes += resp.ByteSizeLong();
  }
  state.counters["resp_bytes"] = static_cast<double>(resp_bytes) / kHostPool;
}
BENCHMARK(BM_ServerGetAssignmentWork);

// ---- 3. BM_ReportTelemetry vs BM_ParseTelemetryBatch
// --------------------------

const v1::ReportTelemetryRequest& TelemetryBatch() {
  static const v1::ReportTelemetryRequest* const batch = [] {
    auto* b = new v1::ReportTelemetryRequest;
    for (int i = 0; i < kTelemetryBatch; ++i) {
      v1::TelemetryEvent* e = b->add_events();
      e->set_host_id(HostId(1000000 + i));
      e->set_type(v1::HEARTBEAT);
      e->mutable_time()->set_seconds(1700000000 + i);
      e->set_release_id("cf291-good");
    }
    return b;
  }();
  return *batch;
}

// The batch, serialized once: the client's serialization of 58 KB is not
// part of what the server costs, so the client sends these bytes through a
// generic stub. The server sees exactly what a Fleet stub would send.
const grpc::ByteBuffer& TelemetryBatchBytes() {
  static const grpc::ByteBuffer* const bytes =
      new grpc::ByteBuffer(Bytes(TelemetryBatch()));
  return *bytes;
}

void BM_ReportTelemetry(benchmark::State& state) {
  Ringfenced& w = GetRingfenced();
  const grpc::ByteBuffer& request = TelemetryBatchBytes();
  grpc::GenericStub& client =
      *w.telemetry_clients[state.thread_index() % kTelemetryClients];
  ProcessCpu cpu(state);
  for (auto _ : state) {
    grpc::ClientContext ctx;
    grpc::ByteBuffer response_bytes;
    grpc::Status status;
    absl::Notification done;
    client.UnaryCall(&ctx, kReportTelemetryMethod, grpc::StubOptions(),
                     &request, &response_bytes, [&](grpc::Status s) {
                       status = std::move(s);
                       done.Notify();
                     });
    done.WaitForNotification();
    v1::ReportTelemetryResponse response;
    if (status.ok()) {
      status = grpc::GenericDeserialize<grpc::ProtoBufferReader,
                                        v1::ReportTelemetryResponse>(
          &response_bytes, &response);
    }
    if (!status.ok() || response.accepted_events() != kTelemetryBatch) {
      state.SkipWithError(status.ok() ? "short accept"
                                      : status.error_message().c_str());
      break;
    }
  }
  cpu.Stop();
  // Summed over the threads: the aggregate rate (== items_per_second).
  state.SetItemsProcessed(state.iterations() * kTelemetryBatch);
  if (state.thread_index() == 0) {
    state.counters["batch_bytes"] = static_cast<double>(request.Length());
  }
}
// Threads(1): one batch in flight, a round trip at a time. Threads(4): four
// clients on four connections, so the server's work on one batch overlaps
// the transport of others (as with many reporting hosts).
BENCHMARK(BM_ReportTelemetry)->Threads(1)->Threads(4)->UseRealTime();

void BM_ParseTelemetryBatch(benchmark::State& state) {
  const std::string bytes = TelemetryBatch().SerializeAsString();
  v1::ReportTelemetryRequest request;
  for (auto _ : state) {
    if (!request.ParseFromString(bytes)) {
      state.SkipWithError("parse failed");
      break;
    }
    benchmark::DoNotOptimize(request);
  }
  state.SetItemsProcessed(state.iterations() * kTelemetryBatch);
  state.counters["batch_bytes"] = static_cast<double>(bytes.size());
}
BENCHMARK(BM_ParseTelemetryBatch);

// ---- 3b. The server's steps, in process (no gRPC)
// ----------------------------
//
// What ReportTelemetry costs the server besides the transport, step by step,
// on the same controller: the parse as the server does it (a fresh message
// per call) and what the handler does with the parsed batch.

void BM_ServerTelemetryParse(benchmark::State& state) {
  const std::string bytes = TelemetryBatch().SerializeAsString();
  for (auto _ : state) {
    v1::ReportTelemetryRequest request;
    if (!request.ParseFromString(bytes)) {
      state.SkipWithError("parse failed");
      break;
    }
    benchmark::DoNotOptimize(request);
  }
  state.SetItemsProcessed(state.iterations() * kTelemetryBatch);
}
BENCHMARK(BM_ServerTelemetryParse);

// A message on an arena, cleared and reused: the submessages a heap
// message's Clear() frees (the Timestamps) stay in the arena.
void BM_ServerTelemetryParseArenaReuse(benchmark::State& state) {
  const std::string bytes = TelemetryBatch().SerializeAsString();
  google::protobuf::Arena arena;
  auto* request =
      google::protobuf::Arena::CreateMessage<v1::ReportTelemetryRequest>(
          &arena);
  for (auto _ : state) {
    if (!request->ParseFromString(bytes)) {
      state.SkipWithError("parse failed");
      break;
    }
    benchmark::DoNotOptimize(request);
    if (arena.SpaceAllocated() > (1 << 20)) {
      arena.Reset();
      request =
          google::protobuf::Arena::CreateMessage<v1::ReportTelemetryRequest>(
              &arena);
    }
  }
  state.SetItemsProcessed(state.iterations() * kTelemetryBatch);
}
BENCHMARK(BM_ServerTelemetryParseArenaReuse);

void BM_ServerTelemetryIngest(benchmark::State& state) {
  Ringfenced& w = GetRingfenced();
  const v1::ReportTelemetryRequest& batch = TelemetryBatch();
  std::vector<TelemetryEventView> views;
  for (auto _ : state) {
    absl::Status s = EventViewsFromProto(batch.events(), &views);
    if (s.ok()) s = w.controller->Ingest(views);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kTelemetryBatch);
}
BENCHMARK(BM_ServerTelemetryIngest);

// ---- 4. BM_CheckGateLatency
// ----------------------------------------------------

void BM_CheckGateLatency(benchmark::State& state) {
  Ringfenced& w = GetRingfenced();
  v1::CheckGateRequest request;
  request.set_release_id("cf291-next");
  request.set_stage("dogfood");
  std::vector<double> latencies_us;
  latencies_us.reserve(1 << 20);
  for (auto _ : state) {
    grpc::ClientContext ctx;
    v1::CheckGateResponse response;
    const auto start = std::chrono::steady_clock::now();
    const grpc::Status s = w.rollouts->CheckGate(&ctx, request, &response);
    const auto end = std::chrono::steady_clock::now();
    if (!s.ok()) {
      state.SkipWithError(s.error_message().c_str());
      break;
    }
    latencies_us.push_back(
        std::chrono::duration<double, std::micro>(end - start).count());
  }
  if (latencies_us.empty()) return;
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double q) {
    size_t k =
        static_cast<size_t>(q * static_cast<double>(latencies_us.size()));
    return latencies_us[std::min(k, latencies_us.size() - 1)];
  };
  state.counters["p50_us"] = pct(0.50);
  state.counters["p99_us"] = pct(0.99);
  state.counters["p999_us"] = pct(0.999);
  state.counters["max_us"] = latencies_us.back();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CheckGateLatency)->UseRealTime();

// ---- 5. GetAssignment on a follower ----------------------------------------

// A follower of the fixture's leader: a StandbyServer with a Follower over the
// same store (memory; on PostgreSQL each refresh is a few queries more, off
// the request path), forwarding to the leader's port over loopback.
struct FollowerFixture {
  std::unique_ptr<Follower> follower;
  std::unique_ptr<StandbyServer> standby;
  std::unique_ptr<v1::Fleet::Stub> fleet;
  std::unique_ptr<v1::Fleet::Stub> leader;  // its own channel
  // Hosts in the running rollout's dogfood stage, none exposed.
  std::vector<v1::GetAssignmentRequest> dogfood;
};

FollowerFixture& GetFollower() {
  static FollowerFixture* const f = [] {
    Ringfenced& w = GetRingfenced();
    auto* f = new FollowerFixture;
    // The completed rollout's hosts (under its post-completion watch, so
    // exposed when first answered) report running its release: they are
    // up on it, and a follower answers them from its snapshot once a
    // checkpoint says so (follower.h).
    std::vector<TelemetryEvent> beats;
    for (const v1::GetAssignmentRequest& r : w.requests) {
      if (r.content_types(0) != kCompletedType) continue;
      TelemetryEvent e;
      e.host_id = r.host_id();
      e.type = EventType::kHeartbeat;
      e.release_id = "cf292-next";
      e.time = w.clock.Now();
      beats.push_back(std::move(e));
    }
    Check(w.controller->Ingest(beats), "Ingest heartbeats");
    w.clock.Advance(absl::Seconds(2));
    Check(w.controller->Tick(), "Tick (checkpoint)");
    auto follower =
        Follower::Create(w.store.get(), &w.clock, FollowerOptions());
    Check(follower.status(), "Follower::Create");
    f->follower = *std::move(follower);
    Check(f->follower->Refresh(), "Follower::Refresh");
    FollowerServing serving;
    serving.follower = f->follower.get();
    Follower* raw = f->follower.get();
    serving.poll = [raw] { raw->Refresh().IgnoreError(); };
    serving.poll_interval = absl::Milliseconds(250);
    const std::string leader = absl::StrCat("127.0.0.1:", w.server->port());
    serving.leader_address = [leader] { return leader; };
    serving.leader_credentials = grpc::InsecureChannelCredentials();
    auto standby = StandbyServer::Start("127.0.0.1:0", std::nullopt,
                                        std::nullopt, {}, std::move(serving));
    Check(standby.status(), "StandbyServer::Start");
    f->standby = *std::move(standby);
    f->fleet = v1::Fleet::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", f->standby->port()),
                            grpc::InsecureChannelCredentials()));
    grpc::ChannelArguments args;
    args.SetInt("ringfence.bench.leader_direct", 1);
    f->leader = v1::Fleet::NewStub(grpc::CreateCustomChannel(
        leader, grpc::InsecureChannelCredentials(), args));
    for (int i = 0; i < kHostPool; ++i) {
      v1::GetAssignmentRequest r = w.requests[i];
      r.set_host_id(HostId(kHostPool + i));
      r.clear_labels();
      r.add_labels("ring:dogfood");
      r.clear_content_types();
      r.add_content_types(kRunningType);
      f->dogfood.push_back(std::move(r));
    }
    // The follower answers as the leader does.
    for (int i = 0; i < kHostPool; i += 64) {
      grpc::ClientContext a, b;
      v1::GetAssignmentResponse from_leader, from_follower;
      CheckGrpc(w.fleet->GetAssignment(&a, w.requests[i], &from_leader),
                "GetAssignment (leader)");
      CheckGrpc(f->fleet->GetAssignment(&b, w.requests[i], &from_follower),
                "GetAssignment (follower)");
      if (from_leader.SerializeAsString() !=
          from_follower.SerializeAsString()) {
        std::fprintf(stderr, "ringfence_grpc_bench: follower answered %s\n",
                     from_follower.ShortDebugString().c_str());
        std::abort();
      }
    }
    return f;
  }();
  return *f;
}

void BM_GetAssignmentOnFollower(benchmark::State& state) {
  Ringfenced& w = GetRingfenced();
  FollowerFixture& f = GetFollower();
  UnaryCalls<v1::GetAssignmentResponse>(
      state, [&w, &f](grpc::ClientContext* ctx, size_t i,
                      v1::GetAssignmentResponse* response, auto on_done) {
        f.fleet->async()->GetAssignment(ctx, &w.requests[i % kHostPool],
                                        response, std::move(on_done));
      });
}
BENCHMARK(BM_GetAssignmentOnFollower)->Threads(1)->Threads(8)->UseRealTime();

void BM_GetAssignmentDogfood(benchmark::State& state) {
  FollowerFixture& f = GetFollower();
  UnaryCalls<v1::GetAssignmentResponse>(
      state, [&f](grpc::ClientContext* ctx, size_t i,
                  v1::GetAssignmentResponse* response, auto on_done) {
        f.leader->async()->GetAssignment(ctx, &f.dogfood[i % kHostPool],
                                         response, std::move(on_done));
      });
}
BENCHMARK(BM_GetAssignmentDogfood)->Threads(1)->Threads(8)->UseRealTime();

void BM_GetAssignmentForwarded(benchmark::State& state) {
  FollowerFixture& f = GetFollower();
  UnaryCalls<v1::GetAssignmentResponse>(
      state, [&f](grpc::ClientContext* ctx, size_t i,
                  v1::GetAssignmentResponse* response, auto on_done) {
        f.fleet->async()->GetAssignment(ctx, &f.dogfood[i % kHostPool],
                                        response, std::move(on_done));
      });
}
BENCHMARK(BM_GetAssignmentForwarded)->Threads(1)->Threads(8)->UseRealTime();

}  // namespace
}  // namespace ringfence

int main(int argc, char** argv) { return ringfence::RunBenchmarks(argc, argv); }
