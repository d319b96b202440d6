// ServerMetrics: what ringfenced reports to Prometheus (served as text by
// the HTTP listener's GET /metrics, http_server.h).
//
// Two kinds of metric:
//   * observed as they happen: the latency of every gRPC call (a server
//     interceptor, NewInterceptorFactory, so calls made over HTTP count
//     too, being calls on the in-process channel);
//   * read at scrape time (Render) from the Controller's and the
//     Ingestor's own accessors: rollouts, their state, stage and exposed
//     hosts, gate decisions, halts, store health, telemetry counts and the
//     audit log's head. Nothing in lib/ knows about metrics.
//
// Per-rollout series (labels rollout_id, content_type) exist for every
// rollout that is not in a terminal state and for the most recent
// `max_recent_rollouts` terminal ones, so the number of series stays
// bounded however many rollouts the store has seen.
//
// The metrics and their meaning are listed in service/README.md
// ("Metrics").
//
// Thread safety: thread-safe. The Controller must outlive the object, and
// the object every call the interceptor factory's interceptors observe.
#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <grpcpp/support/status.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "ringfence/controller.h"
#include "service/ingestor.h"

namespace ringfence {

class ServerMetrics {
 public:
  // `max_recent_rollouts`: terminal rollouts kept in the per-rollout
  // series, newest first (default 20).
  explicit ServerMetrics(Controller* controller,
                         size_t max_recent_rollouts = 20);
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // ObserveRpc
  //
  // Records one finished call of `method` ("/ringfence.v1.Rollouts/
  // PauseRollout"; a method this server does not serve is recorded as
  // "other") with its status `code`, taking `seconds`.
  void ObserveRpc(absl::string_view method, grpc::StatusCode code,
                  double seconds);

  // NewInterceptorFactory
  //
  // A factory for grpc::ServerBuilder whose interceptors call ObserveRpc
  // for every call, timed from when the call starts to when it is done.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  NewInterceptorFactory();

  // Render
  //
  // Every metric in the Prometheus text exposition format (version 0.0.4),
  // reading the Controller now and taking the telemetry counts `ingest`.
  // Reads only what changed since the last render of the decision and
  // audit logs (at most 100,000 audit entries per call). Never fails: what
  // cannot be read is left out and counted in
  // ringfence_metrics_read_errors_total.
  std::string Render(const Ingestor::Counts& ingest);

 private:
  struct DecisionCursor {
    uint64_t after_seq = 0;
    bool done = false;  // terminal and read to the end
  };

  Controller* const controller_;
  const size_t max_recent_rollouts_;
  const absl::flat_hash_set<std::string> known_methods_;
  prometheus::Registry rpc_registry_;
  prometheus::Family<prometheus::Histogram>& rpc_duration_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, DecisionCursor> decision_cursors_
      ABSL_GUARDED_BY(mu_);
  // Gate decisions read so far, by verdict name.
  std::map<std::string, uint64_t> decisions_ ABSL_GUARDED_BY(mu_);
  uint64_t audit_head_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::string audit_head_hash_ ABSL_GUARDED_BY(mu_);
  uint64_t read_errors_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ringfence
