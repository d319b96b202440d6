#include "service/metrics.h"

#include <grpcpp/support/interceptor.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/descriptor.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/text_serializer.h"
#include "ringfence/model.h"
#include "service/http_json.h"
#include "service/status_map.h"

namespace ringfence {
namespace {

namespace pm = ::prometheus;

// Calls take from well under a millisecond (reads) to seconds (content
// validation).
const pm::Histogram::BucketBoundaries& RpcBuckets() {
  static const auto* buckets = new pm::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return *buckets;
}

// The methods this server serves, as gRPC names them ("/pkg.Service/M"):
// the only values the `method` label takes besides "other", so a client
// cannot create series by calling made-up methods.
absl::flat_hash_set<std::string> KnownMethods() {
  absl::flat_hash_set<std::string> out;
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* name : {"ringfence.v1.Releases", "ringfence.v1.Rollouts",
                           "ringfence.v1.Fleet"}) {
    const google::protobuf::ServiceDescriptor* service =
        pool->FindServiceByName(name);
    if (service == nullptr) continue;
    for (int i = 0; i < service->method_count(); ++i) {
      out.insert(absl::StrCat("/", name, "/", service->method(i)->name()));
    }
  }
  out.insert("/grpc.health.v1.Health/Check");
  out.insert("/grpc.health.v1.Health/Watch");
  return out;
}

std::string StateName(config::v1::RolloutState state) {
  return absl::AsciiStrToLower(config::v1::RolloutState_Name(state));
}

class RpcInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(ServerMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(absl::Now()) {}
  // The call is done when gRPC destroys its interceptors.
  ~RpcInterceptor() override {
    metrics_->ObserveRpc(method_, code_,
                         absl::ToDoubleSeconds(absl::Now() - start_));
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      code_ = methods->GetSendStatus().error_code();
    }
    methods->Proceed();
  }

 private:
  ServerMetrics* const metrics_;
  const std::string method_;
  const absl::Time start_;
  // A call that never sends a status was cancelled.
  grpc::StatusCode code_ = grpc::StatusCode::CANCELLED;
};

class RpcInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcInterceptorFactory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcInterceptor(metrics_, info->method());
  }

 private:
  ServerMetrics* const metrics_;
};

}  // namespace

ServerMetrics::ServerMetrics(Controller* controller, size_t max_recent_rollouts)
    : controller_(controller),
      max_recent_rollouts_(max_recent_rollouts),
      known_methods_(KnownMethods()),
      rpc_duration_(pm::BuildHistogram()
                        .Name("ringfence_rpc_duration_seconds")
                        .Help("Time from the start to the end of each gRPC "
                              "call (HTTP API calls included), by method "
                              "and status code")
                        .Register(rpc_registry_)) {}

void ServerMetrics::ObserveRpc(absl::string_view method, grpc::StatusCode code,
                               double seconds) {
  const std::string label = known_methods_.contains(method)
                                ? std::string(method)
                                : std::string("other");
  rpc_duration_
      .Add({{"method", label}, {"code", std::string(GrpcCodeName(code))}},
           RpcBuckets())
      .Observe(seconds);
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ServerMetrics::NewInterceptorFactory() {
  return std::make_unique<RpcInterceptorFactory>(this);
}

std::string ServerMetrics::Render(const Ingestor::Counts& ingest) {
  pm::Registry now;
  absl::MutexLock lock(&mu_);

  pm::BuildGauge()
      .Name("ringfence_store_healthy")
      .Help(
          "1 while the store accepts writes, 0 while it fails (the server "
          "then fails closed)")
      .Register(now)
      .Add({})
      .Set(controller_->store_healthy() ? 1 : 0);

  auto& events = pm::BuildCounter()
                     .Name("ringfence_telemetry_events_ingested_total")
                     .Help("Telemetry events applied to rollouts")
                     .Register(now);
  events.Add({}).Increment(static_cast<double>(ingest.events_ingested));
  auto& batches = pm::BuildCounter()
                      .Name("ringfence_telemetry_batches_total")
                      .Help("Telemetry batches applied")
                      .Register(now);
  batches.Add({}).Increment(static_cast<double>(ingest.batches_ingested));
  auto& refused =
      pm::BuildCounter()
          .Name("ringfence_telemetry_batches_refused_total")
          .Help(
              "Telemetry batches refused whole, by reason: saturated "
              "(over the in-flight budget; retried later), too_large "
              "(over --max_batch_events), failed (invalid, or the store "
              "failed)")
          .Register(now);
  refused.Add({{"reason", "saturated"}})
      .Increment(static_cast<double>(ingest.refused_saturated));
  refused.Add({{"reason", "too_large"}})
      .Increment(static_cast<double>(ingest.refused_too_large));
  refused.Add({{"reason", "failed"}})
      .Increment(static_cast<double>(ingest.failed));

  // Rollouts: counts by state, and the bounded per-rollout series.
  auto& rollouts_by_state = pm::BuildGauge()
                                .Name("ringfence_rollouts")
                                .Help("Rollouts the server knows, by state")
                                .Register(now);
  auto& state = pm::BuildGauge()
                    .Name("ringfence_rollout_state")
                    .Help(
                        "1 for the rollout's current state, 0 for the "
                        "others (live and recent rollouts)")
                    .Register(now);
  auto& stage = pm::BuildGauge()
                    .Name("ringfence_rollout_stage")
                    .Help(
                        "Index of the rollout's current stage (from 0; "
                        "the number of plan stages in the late track)")
                    .Register(now);
  auto& exposed = pm::BuildGauge()
                      .Name("ringfence_rollout_exposed_hosts")
                      .Help(
                          "Hosts running the rollout's release that "
                          "report telemetry (treatment arm; counted since "
                          "the server started)")
                      .Register(now);
  auto& halts = pm::BuildCounter()
                    .Name("ringfence_rollout_halts_total")
                    .Help(
                        "Rollouts halted (by the gate or an emergency "
                        "stop); halted is final, so this only grows")
                    .Register(now);
  auto& decisions =
      pm::BuildCounter()
          .Name("ringfence_gate_decisions_total")
          .Help("Gate decisions recorded, by outcome (hold, promote, halt)")
          .Register(now);

  absl::StatusOr<std::vector<Rollout>> all = controller_->ListRollouts();
  if (all.ok()) {
    std::map<config::v1::RolloutState, int> counts;
    for (int s = config::v1::RolloutState_MIN;
         s <= config::v1::RolloutState_MAX; ++s) {
      if (s != config::v1::ROLLOUT_STATE_UNSPECIFIED &&
          config::v1::RolloutState_IsValid(s)) {
        counts[static_cast<config::v1::RolloutState>(s)] = 0;
      }
    }
    for (const Rollout& r : *all) ++counts[r.state()];
    for (const auto& [s, n] : counts) {
      rollouts_by_state.Add({{"state", StateName(s)}}).Set(n);
    }
    halts.Add({}).Increment(counts[config::v1::HALTED]);

    // Live rollouts, then the newest terminal ones (creation order).
    std::vector<const Rollout*> shown;
    size_t recent = 0;
    for (auto it = all->rbegin(); it != all->rend(); ++it) {
      if (!IsTerminal(it->state())) {
        shown.push_back(&*it);
      } else if (recent < max_recent_rollouts_) {
        ++recent;
        shown.push_back(&*it);
      }
    }
    for (const Rollout* r : shown) {
      const pm::Labels labels{{"rollout_id", r->id()},
                              {"content_type", r->content_type()}};
      for (const auto& [s, n] : counts) {
        pm::Labels with_state = labels;
        with_state["state"] = StateName(s);
        state.Add(with_state).Set(r->state() == s ? 1 : 0);
      }
      stage.Add(labels).Set(r->stage());
      absl::StatusOr<RolloutStatus> st = controller_->GetRollout(r->id());
      if (st.ok()) {
        exposed.Add(labels).Set(
            static_cast<double>(st->telemetry.treatment_hosts));
      } else {
        ++read_errors_;
      }
    }

    // Decisions: read each rollout's new ones; a terminal rollout read to
    // its end is not read again.
    for (const Rollout& r : *all) {
      DecisionCursor& cursor = decision_cursors_[r.id()];
      if (cursor.done) continue;
      absl::StatusOr<std::vector<Decision>> d =
          controller_->ListDecisions(r.id(), cursor.after_seq);
      if (!d.ok()) {
        ++read_errors_;
        continue;
      }
      for (const Decision& decision : *d) {
        cursor.after_seq = std::max(cursor.after_seq, decision.seq());
        ++decisions_[absl::AsciiStrToLower(
            config::v1::Verdict_Name(decision.verdict()))];
      }
      cursor.done = IsTerminal(r.state());
    }
  } else {
    ++read_errors_;
  }
  for (const char* outcome : {"hold", "promote", "halt"}) {
    decisions.Add({{"outcome", outcome}})
        .Increment(static_cast<double>(decisions_[outcome]));
  }

  // The audit log's head: read forward from the last one seen.
  constexpr size_t kAuditPage = 1000;
  constexpr size_t kMaxAuditPerRender = 100000;
  for (size_t read = 0; read < kMaxAuditPerRender; read += kAuditPage) {
    absl::StatusOr<std::vector<AuditEntry>> page =
        controller_->ReadAudit(audit_head_seq_, kAuditPage);
    if (!page.ok()) {
      ++read_errors_;
      break;
    }
    if (!page->empty()) {
      audit_head_seq_ = page->back().seq();
      audit_head_hash_ = page->back().hash();
    }
    if (page->size() < kAuditPage) break;
  }
  pm::BuildGauge()
      .Name("ringfence_audit_head_seq")
      .Help("Sequence number of the newest audit log entry (0: none)")
      .Register(now)
      .Add({})
      .Set(static_cast<double>(audit_head_seq_));
  pm::BuildGauge()
      .Name("ringfence_audit_head_info")
      .Help(
          "Always 1; label hash is the newest audit entry's hash (the "
          "hash chain's head, to compare with a copy of the log)")
      .Register(now)
      .Add({{"hash", audit_head_hash_}, {"seq", absl::StrCat(audit_head_seq_)}})
      .Set(1);

  pm::BuildCounter()
      .Name("ringfence_metrics_read_errors_total")
      .Help(
          "Reads of the controller or store that failed while rendering "
          "metrics (what they would have shown is left out)")
      .Register(now)
      .Add({})
      .Increment(static_cast<double>(read_errors_));

  std::vector<pm::MetricFamily> families = rpc_registry_.Collect();
  std::vector<pm::MetricFamily> current = now.Collect();
  families.insert(families.end(), std::make_move_iterator(current.begin()),
                  std::make_move_iterator(current.end()));
  return pm::TextSerializer().Serialize(families);
}

}  // namespace ringfence
