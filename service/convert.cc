#include "service/convert.h"

#include "absl/strings/str_cat.h"
#include "ringfence/gate.h"
#include "ringfence/status_macros.h"
#include "service/request_validation.h"

namespace ringfence {

HostInfo HostFromProto(const v1::GetAssignmentRequest& request) {
  HostInfo host;
  HostFromProto(request, &host);
  return host;
}

void HostFromProto(const v1::GetAssignmentRequest& request, HostInfo* host) {
  host->host_id = request.host_id();
  host->tenant = request.tenant();
  host->labels.resize(static_cast<size_t>(request.labels_size()));
  for (int i = 0; i < request.labels_size(); ++i) {
    host->labels[static_cast<size_t>(i)] = request.labels(i);
  }
  host->agent_version = request.agent_version();
  host->platform = request.platform();
  host->telemetry_pending = request.telemetry_pending();
}

namespace {

// Fills `events` (a TelemetryEvent or TelemetryEventView vector).
template <typename Event>
absl::Status ConvertEvents(
    const google::protobuf::RepeatedPtrField<v1::TelemetryEvent>& protos,
    std::vector<Event>* events) {
  events->reserve(protos.size());
  for (int i = 0; i < protos.size(); ++i) {
    const v1::TelemetryEvent& p = protos.Get(i);
    RETURN_IF_ERROR(ValidateEvent(p, i));
    Event& e = events->emplace_back();
    e.host_id = p.host_id();
    e.type = static_cast<EventType>(p.type());
    if (p.has_time()) e.time = FromProto(p.time());
    e.release_id = p.release_id();
    e.signal = p.signal();
    e.clean = !p.has_clean() || p.clean();
    e.boot_id = p.boot_id();
    e.boots_since_apply = p.boots_since_apply();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<TelemetryEvent>> EventsFromProto(
    const google::protobuf::RepeatedPtrField<v1::TelemetryEvent>& protos) {
  std::vector<TelemetryEvent> events;
  absl::Status s = ConvertEvents(protos, &events);
  if (!s.ok()) return s;
  return events;
}

absl::Status EventViewsFromProto(
    const google::protobuf::RepeatedPtrField<v1::TelemetryEvent>& protos,
    std::vector<TelemetryEventView>* views) {
  views->clear();
  return ConvertEvents(protos, views);
}

v1::TelemetryEvent EventToProto(const TelemetryEvent& event) {
  v1::TelemetryEvent p;
  p.set_host_id(event.host_id);
  p.set_type(static_cast<v1::EventType>(event.type));
  *p.mutable_time() = ToProtoTime(event.time);
  p.set_release_id(event.release_id);
  p.set_signal(event.signal);
  if (event.type == EventType::kBoot) p.set_clean(event.clean);
  p.set_boot_id(event.boot_id);
  p.set_boots_since_apply(event.boots_since_apply);
  return p;
}

v1::AssignReason AssignReasonToProto(AssignReason reason) {
  switch (reason) {
    case AssignReason::kNoRelease:
      return v1::NO_RELEASE;
    case AssignReason::kNotTargeted:
      return v1::NOT_TARGETED;
    case AssignReason::kPinned:
      return v1::PINNED;
    case AssignReason::kNotInAudience:
      return v1::NOT_IN_AUDIENCE;
    case AssignReason::kNotYet:
      return v1::NOT_YET;
    case AssignReason::kWaitingForPacing:
      return v1::WAITING_FOR_PACING;
    case AssignReason::kExposed:
      return v1::EXPOSED;
    case AssignReason::kStageOpen:
      return v1::STAGE_OPEN;
    case AssignReason::kCompleted:
      return v1::COMPLETED;
    case AssignReason::kPaused:
      return v1::PAUSED;
    case AssignReason::kRolledBack:
      return v1::ROLLED_BACK;
    case AssignReason::kEmergencyStop:
      return v1::EMERGENCY_STOP;
    case AssignReason::kStoreUnavailable:
      return v1::STORE_UNAVAILABLE;
    case AssignReason::kNotWatched:
      return v1::NOT_WATCHED;
  }
  return v1::ASSIGN_REASON_UNSPECIFIED;
}

v1::ContentAssignment AssignmentToProto(absl::string_view content_type,
                                        const Assignment& a) {
  v1::ContentAssignment p;
  AssignmentToProto(content_type, a, &p);
  return p;
}

absl::Status AnswerGetAssignment(Controller& controller,
                                 const v1::GetAssignmentRequest& request,
                                 HostInfo* host,
                                 v1::GetAssignmentResponse* response) {
  HostFromProto(request, host);
  RETURN_IF_ERROR(ValidateGetAssignment(request, *host));
  for (const std::string& type : request.content_types()) {
    AssignmentToProto(type, controller.Assign(*host, type),
                      response->add_assignments());
  }
  return absl::OkStatus();
}

void AssignmentToProto(absl::string_view content_type, const Assignment& a,
                       v1::ContentAssignment* p) {
  p->set_content_type(content_type.data(), content_type.size());
  if (a.release != nullptr) {
    p->set_has_release(true);
    p->set_release_id(a.release->id());
    p->set_version(a.release->version());
    p->set_digest_sha256(a.release->digest_sha256());
    p->set_size_bytes(a.release->size_bytes());
    p->set_fetch_url(a.release->fetch_url());
    p->set_signature(a.release->signature());
    if (a.release->has_targeting()) {
      *p->mutable_targeting() = a.release->targeting();
    }
  }
  p->set_unload(a.unload);
  p->set_reason(AssignReasonToProto(a.reason));
  if (a.rollout_id != nullptr) p->set_rollout_id(*a.rollout_id);
  p->set_stage(a.stage);
}

v1::GetRolloutResponse RolloutStatusToProto(const RolloutStatus& status) {
  v1::GetRolloutResponse p;
  *p.mutable_rollout() = status.rollout;
  const Plan& plan = status.rollout.plan();
  p.set_stage_name(StageName(plan, static_cast<int>(status.rollout.stage())));
  p.set_stage_exposure_budget(status.stage_exposure_budget);
  const TrackerSnapshot& t = status.telemetry;
  v1::RolloutTelemetry* tp = p.mutable_telemetry();
  if (t.last_ingest != absl::InfinitePast()) {
    *tp->mutable_last_ingest() = ToProtoTime(t.last_ingest);
  }
  tp->set_tracked_hosts(t.tracked_hosts);
  tp->set_treatment_hosts(t.treatment_hosts);
  tp->set_treatment_host_hours(t.treatment_host_hours);
  tp->set_control_hosts(t.control_hosts);
  tp->set_control_host_hours(t.control_host_hours);
  tp->set_outside_population_events(t.outside_population_events);
  for (const SignalCounts& c : t.signal_counts) {
    SignalSummary* s = tp->add_signals();
    s->set_signal(c.signal);
    s->mutable_treatment()->set_affected_hosts(c.treatment_affected);
    s->mutable_treatment()->set_hosts(t.treatment_hosts);
    s->mutable_treatment()->set_host_hours(t.treatment_host_hours);
    s->mutable_control()->set_affected_hosts(c.control_affected);
    s->mutable_control()->set_hosts(t.control_hosts);
    s->mutable_control()->set_host_hours(t.control_host_hours);
    s->set_e_value(c.compared ? c.e_value : 1.0);
    s->set_e_threshold(c.e_threshold);
  }
  // Cohorts beyond the current stage are empty by construction.
  const size_t cohorts =
      std::min<size_t>(t.cohorts.size(), status.rollout.stage() + size_t{1});
  for (size_t i = 0; i < cohorts; ++i) {
    const CohortCounts& c = t.cohorts[i];
    v1::StageCohort* cp = tp->add_cohorts();
    cp->set_stage(static_cast<uint32_t>(i));
    cp->set_stage_name(StageName(plan, static_cast<int>(i)));
    cp->set_exposed_hosts(c.exposed);
    cp->set_applied_hosts(c.applied);
    cp->set_healthy_hosts(c.healthy);
    cp->set_host_hours(c.host_hours);
    for (size_t s = 0; s < t.signals.size() && s < c.affected.size(); ++s) {
      if (c.affected[s] > 0) {
        (*cp->mutable_affected_hosts())[t.signals[s]] = c.affected[s];
      }
      if (c.pre_affected[s] > 0) {
        (*cp->mutable_pre_affected_hosts())[t.signals[s]] = c.pre_affected[s];
      }
    }
  }
  for (const auto& [name, n] : t.unwatched_signals) {
    (*tp->mutable_unwatched_signals())[name] = n;
  }
  return p;
}

v1::CheckGateResponse GateCheckToProto(const GateCheck& check) {
  v1::CheckGateResponse p;
  switch (check.status) {
    case GateStatus::kCleared:
      p.set_status(v1::GATE_CLEARED);
      break;
    case GateStatus::kPending:
      p.set_status(v1::GATE_PENDING);
      break;
    case GateStatus::kRejected:
      p.set_status(v1::GATE_REJECTED);
      break;
  }
  *p.mutable_rollout() = check.rollout;
  p.set_explanation(check.explanation);
  return p;
}

}  // namespace ringfence
