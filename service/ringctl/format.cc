#include "service/ringctl/format.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "ringfence/gate.h"

namespace ringfence::ringctl {

std::string Json(const google::protobuf::Message& m, bool one_line) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = !one_line;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  if (!one_line && absl::EndsWith(out, "\n")) out.pop_back();
  return out;
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", FromProto(t),
                          absl::UTCTimeZone());
}

std::string StateName(RolloutState s) {
  return std::string(RolloutStateName(s));
}

std::string DescribeApprovalRequest(const config::v1::ApprovalRequest& r) {
  std::string what;
  if (r.action() == "start") {
    what = absl::StrCat("start of release ", r.start().release_id());
    if (!r.rollout_id().empty()) absl::StrAppend(&what, " as ", r.rollout_id());
  } else if (r.action() == "clear_emergency_stop") {
    what = "clear of the emergency stop";
  } else {
    what = absl::StrCat(r.action(), " of rollout ", r.rollout_id());
  }
  std::vector<std::string> guarded;
  for (const int g : r.guarded()) {
    guarded.push_back(GuardedActionName(static_cast<GuardedAction>(g)));
  }
  return absl::StrCat(r.id(), " ", what, " (", r.content_type(), "; ",
                      absl::StrJoin(guarded, ", "), ") by ", r.requested_by(),
                      ", pending until ", FormatTime(r.expires_at()), ": ",
                      r.reason());
}

void PrintRelease(const Release& r) {
  std::printf("%-24s %-24s version=%s size=%llu digest=%s\n", r.id().c_str(),
              r.content_type().c_str(),
              r.version().empty() ? "-" : r.version().c_str(),
              static_cast<unsigned long long>(r.size_bytes()),
              r.digest_sha256().c_str());
}

void PrintReleaseDetail(const Release& r) {
  std::printf("release       %s\n", r.id().c_str());
  std::printf("content type  %s\n", r.content_type().c_str());
  std::printf("version       %s\n", r.version().c_str());
  std::printf("digest        %s\n", r.digest_sha256().c_str());
  std::printf("size          %llu bytes\n",
              static_cast<unsigned long long>(r.size_bytes()));
  std::printf("fetch url     %s\n", r.fetch_url().c_str());
  std::printf("created       %s\n", FormatTime(r.created_at()).c_str());
}

// "canary (2/4)", or "late-track" past the regular stages.
std::string StageLabel(const Rollout& r) {
  const int n = r.plan().stages_size();
  const int stage = static_cast<int>(r.stage());
  const std::string name = StageName(r.plan(), stage);
  if (stage >= n) return name;
  return absl::StrFormat("%s (%d/%d)", name, stage + 1, n);
}

void PrintRolloutLine(const Rollout& r) {
  std::printf("%-28s %-24s %-10s stage %s\n", r.id().c_str(),
              r.release_id().c_str(), StateName(r.state()).c_str(),
              StageLabel(r).c_str());
}

std::string SignalsLine(const v1::RolloutTelemetry& t) {
  std::vector<std::string> parts;
  for (const SignalSummary& s : t.signals()) {
    parts.push_back(absl::StrFormat("%s %d/%d", s.signal(),
                                    s.treatment().affected_hosts(),
                                    s.control().affected_hosts()));
  }
  return absl::StrJoin(parts, "  ");
}

void PrintRolloutStatus(const v1::GetRolloutResponse& st) {
  const Rollout& r = st.rollout();
  const v1::RolloutTelemetry& t = st.telemetry();
  std::printf("rollout    %s\n", r.id().c_str());
  std::printf(
      "release    %s (%s)%s\n", r.release_id().c_str(),
      r.content_type().c_str(),
      r.baseline_release_id().empty()
          ? ""
          : absl::StrCat(", baseline ", r.baseline_release_id()).c_str());
  std::printf("state      %s%s\n", StateName(r.state()).c_str(),
              r.reason().empty() ? "" : absl::StrCat(": ", r.reason()).c_str());
  std::printf("stage      %s since %s\n", StageLabel(r).c_str(),
              FormatTime(r.stage_started_at()).c_str());
  std::printf(
      "exposure   %llu hosts exposed (stage budget %llu), %llu control "
      "hosts\n",
      static_cast<unsigned long long>(t.treatment_hosts()),
      static_cast<unsigned long long>(st.stage_exposure_budget()),
      static_cast<unsigned long long>(t.control_hosts()));
  std::printf("signals    %s   (affected hosts: exposed/control)\n",
              SignalsLine(t).c_str());
  if (t.outside_population_events() > 0) {
    std::printf(
        "outside    %llu events of hosts not of the release's population "
        "(not checked in, or not targeted)\n",
        static_cast<unsigned long long>(t.outside_population_events()));
  }
  if (!t.unwatched_signals().empty()) {
    std::vector<std::string> parts;
    for (const auto& [name, n] : t.unwatched_signals()) {
      parts.push_back(absl::StrCat(name, " ", n));
    }
    std::sort(parts.begin(), parts.end());
    std::printf("unwatched  %s   (signal events no rule watches)\n",
                absl::StrJoin(parts, "  ").c_str());
  }
  if (r.has_last_decision()) {
    std::printf("decision   %s\n", r.last_decision().summary().c_str());
  }
  std::printf("telemetry  last batch %s\n",
              t.has_last_ingest() ? FormatTime(t.last_ingest()).c_str()
                                  : "never (since the server started)");
}

}  // namespace ringfence::ringctl
