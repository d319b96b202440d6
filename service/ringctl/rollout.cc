// ringctl rollout start|status|list|watch|pause|resume|abort|promote.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ringfence/gate.h"
#include "ringfence/model.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/ringctl/client.h"
#include "service/ringctl/commands.h"
#include "service/ringctl/format.h"

namespace ringfence::ringctl {
namespace {

struct StartFlags {
  std::string release;
  std::string plan;
  std::string reason;
  std::string id;
  std::string baseline;
  bool pending = false;
  bool no_baseline = false;
};

struct ListFlags {
  std::string content_type;
  std::string release;
};

int RolloutStart(Client& c, const StartFlags& f) {
  v1::StartRolloutRequest req;
  req.set_rollout_id(f.id);
  req.set_release_id(f.release);
  req.set_baseline_release_id(f.baseline);
  req.set_reason(f.reason);
  req.set_start_pending(f.pending);
  req.set_allow_no_baseline(f.no_baseline);
  absl::Status loaded = LoadMessageFile(f.plan, req.mutable_plan());
  if (!loaded.ok()) {
    std::fprintf(stderr, "ringctl: --plan: %s\n",
                 std::string(loaded.message()).c_str());
    return absl::IsInvalidArgument(loaded) ? kExitRejected : kExitError;
  }
  Rollout resp;
  grpc::Status s = c.rollouts().StartRollout(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    std::printf("started rollout %s of %s (%s, stage %s)\n", resp.id().c_str(),
                resp.release_id().c_str(), StateName(resp.state()).c_str(),
                StageLabel(resp).c_str());
    if (resp.baseline_release_id().empty()) {
      std::printf(
          "note: no baseline: if this rollout is halted or aborted, every "
          "host is told to unload %s\n",
          resp.content_type().c_str());
    } else if (resp.baseline_vouched()) {
      std::printf(
          "note: baseline %s never completed a rollout (vouched for): hosts "
          "outside the rollout keep what they run; only a halt or abort "
          "tells hosts to run it\n",
          resp.baseline_release_id().c_str());
    }
  }
  return kExitOk;
}

int RolloutStatus(Client& c, const std::string& id) {
  v1::GetRolloutRequest req;
  req.set_rollout_id(id);
  v1::GetRolloutResponse resp;
  grpc::Status s = c.rollouts().GetRollout(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    PrintRolloutStatus(resp);
  }
  return kExitOk;
}

int RolloutList(Client& c, const ListFlags& f) {
  v1::ListRolloutsRequest req;
  req.set_content_type(f.content_type);
  req.set_release_id(f.release);
  v1::ListRolloutsResponse resp;
  grpc::Status s = c.rollouts().ListRollouts(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    for (const Rollout& r : resp.rollouts()) PrintRolloutLine(r);
  }
  return kExitOk;
}

int RolloutAction(Client& c, const std::string& action, const std::string& id,
                  const std::string& reason) {
  v1::RolloutActionRequest req;
  req.set_rollout_id(id);
  req.set_reason(reason);
  Rollout resp;
  auto ctx = c.Context();
  grpc::Status s;
  if (action == "pause") {
    s = c.rollouts().PauseRollout(ctx.get(), req, &resp);
  } else if (action == "resume") {
    s = c.rollouts().ResumeRollout(ctx.get(), req, &resp);
  } else if (action == "abort") {
    s = c.rollouts().AbortRollout(ctx.get(), req, &resp);
  } else {
    s = c.rollouts().PromoteRollout(ctx.get(), req, &resp);
  }
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    std::printf("rollout %s: %s, stage %s\n", resp.id().c_str(),
                StateName(resp.state()).c_str(), StageLabel(resp).c_str());
  }
  return kExitOk;
}

// What makes a watch line worth printing again.
std::string WatchKey(const v1::GetRolloutResponse& st) {
  const Rollout& r = st.rollout();
  std::string key = absl::StrCat(r.version(), "/", r.state(), "/", r.stage(),
                                 "/", st.telemetry().treatment_hosts(), "/",
                                 st.telemetry().control_hosts(), "/",
                                 SignalsLine(st.telemetry()), "/");
  if (r.has_last_decision()) {
    const Decision& d = r.last_decision();
    absl::StrAppend(&key, d.verdict(), "/",
                    d.evidence_size() > 0 ? d.evidence(0).rule() : "");
  }
  return key;
}

std::string WatchLine(const v1::GetRolloutResponse& st) {
  const Rollout& r = st.rollout();
  std::string line = absl::StrFormat(
      "%s  %-9s stage %-16s exposed %d (budget %d)  control %d  %s",
      absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone()),
      StateName(r.state()), StageLabel(r), st.telemetry().treatment_hosts(),
      st.stage_exposure_budget(), st.telemetry().control_hosts(),
      SignalsLine(st.telemetry()));
  if (r.has_last_decision()) {
    const Decision& d = r.last_decision();
    absl::StrAppend(
        &line, "  | ", absl::AsciiStrToUpper(VerdictName(d.verdict())),
        d.evidence_size() > 0 ? absl::StrCat(" (", d.evidence(0).rule(), ")")
                              : "");
  }
  return line;
}

int RolloutWatch(const Invocation& inv, const std::string& id,
                 const std::optional<std::string>& interval_flag) {
  Client& c = inv.client();
  absl::Duration interval = absl::Seconds(1);
  if (interval_flag.has_value() &&
      (!absl::ParseDuration(*interval_flag, &interval) ||
       interval < absl::Milliseconds(50))) {
    return inv.Usage("--interval must be a duration of at least 50ms, e.g. 1s");
  }
  const bool tty = isatty(STDOUT_FILENO) != 0 && !c.json();
  std::string last_key;
  uint64_t last_seq = 0;
  bool line_open = false;  // TTY: a status line without its newline
  while (true) {
    v1::GetRolloutRequest req;
    req.set_rollout_id(id);
    req.set_include_decisions(true);
    req.set_decisions_after_seq(last_seq);
    v1::GetRolloutResponse st;
    grpc::Status s = c.rollouts().GetRollout(c.Context().get(), req, &st);
    if (!s.ok()) {
      if (line_open) std::printf("\n");
      return Fail(s);
    }
    for (const Decision& d : st.decisions()) {
      last_seq = std::max(last_seq, d.seq());
      if (c.json()) continue;
      if (line_open) std::printf("\n");
      line_open = false;
      std::printf(
          "  decision #%llu, stage %s: %s\n",
          static_cast<unsigned long long>(d.seq()),
          StageName(st.rollout().plan(), static_cast<int>(d.stage())).c_str(),
          d.summary().c_str());
    }
    const bool terminal = IsTerminal(st.rollout().state());
    const std::string key = WatchKey(st);
    if (c.json()) {
      if (key != last_key) {
        st.clear_decisions();
        std::printf("%s\n", Json(st, /*one_line=*/true).c_str());
      }
    } else if (tty) {
      std::printf("\r\033[K%s", WatchLine(st).c_str());
      line_open = true;
    } else if (key != last_key) {
      std::printf("%s\n", WatchLine(st).c_str());
    }
    std::fflush(stdout);
    last_key = key;
    if (terminal) {
      if (line_open) std::printf("\n");
      if (!c.json()) {
        std::printf("rollout %s %s%s\n", id.c_str(),
                    StateName(st.rollout().state()).c_str(),
                    st.rollout().reason().empty()
                        ? ""
                        : absl::StrCat(": ", st.rollout().reason()).c_str());
      }
      return st.rollout().state() == config::v1::COMPLETED ? kExitOk
                                                           : kExitRejected;
    }
    absl::SleepFor(interval);
  }
}

}  // namespace

void AddRolloutCommands(CommandLine& cli) {
  cli.DescribeNoun("rollout", "start, follow and steer rollouts");

  auto start = std::make_shared<StartFlags>();
  CLI::App* app = cli.AddCommand(
      {"rollout", "start"}, "start a rollout of a release along a plan",
      CommandLine::kOnline, [start](const Invocation& inv) {
        return RolloutStart(inv.client(), *start);
      });
  cli.AddFlag(app, "release", &start->release, "the release to roll out",
              CommandLine::kRequired)
      ->type_name("R");
  cli.AddFlag(app, "plan", &start->plan,
              "the plan, text-proto or JSON (ringctl plan explain shows what "
              "its gate does)",
              CommandLine::kRequired)
      ->type_name("FILE");
  cli.AddFlag(app, "reason", &start->reason, "why (the audit log records it)",
              CommandLine::kRequired)
      ->type_name("TEXT");
  cli.AddFlag(app, "id", &start->id, "the rollout's id (default: assigned)")
      ->type_name("ID");
  cli.AddFlag(app, "baseline", &start->baseline,
              "the release hosts fall back to (default: the release of the "
              "content type's last completed rollout)")
      ->type_name("R");
  cli.AddSwitch(app, "no-baseline", &start->no_baseline,
                "the first release of a content type: a halt tells every "
                "host to unload it");
  cli.AddSwitch(app, "pending", &start->pending,
                "create the rollout PENDING; rollout resume starts it");

  auto id = std::make_shared<std::string>();
  app = cli.AddCommand(
      {"rollout", "status"}, "print a rollout's state and evidence",
      CommandLine::kOnline,
      [id](const Invocation& inv) { return RolloutStatus(inv.client(), *id); });
  cli.SetDetails(app,
                 "State, stage, exposure, affected hosts per signal "
                 "(exposed/control), signals no rule watches, the last "
                 "decision and when telemetry last arrived.");
  cli.AddArgument(app, "ID", id.get(), "the rollout");

  auto list = std::make_shared<ListFlags>();
  app = cli.AddCommand({"rollout", "list"}, "list rollouts",
                       CommandLine::kOnline, [list](const Invocation& inv) {
                         return RolloutList(inv.client(), *list);
                       });
  cli.AddFlag(app, "content-type", &list->content_type,
              "only rollouts of this content type")
      ->type_name("TYPE");
  cli.AddFlag(app, "release", &list->release, "only rollouts of this release")
      ->type_name("R");

  struct WatchFlags {
    std::string id;
    std::optional<std::string> interval;
  };
  auto watch = std::make_shared<WatchFlags>();
  app = cli.AddCommand({"rollout", "watch"}, "follow a rollout until it ends",
                       CommandLine::kOnline, [watch](const Invocation& inv) {
                         return RolloutWatch(inv, watch->id, watch->interval);
                       });
  cli.SetDetails(app,
                 "Prints a line when the rollout changes, and every gate "
                 "decision. Exit 0 when it completes, 2 when it is halted or "
                 "aborted. --json prints one object per change.");
  cli.AddArgument(app, "ID", &watch->id, "the rollout");
  cli.AddFlag(app, "interval", &watch->interval,
              "how often to poll (default 1s, at least 50ms)")
      ->type_name("DURATION");

  struct ActionFlags {
    std::string id;
    std::string reason;
  };
  struct Action {
    const char* name;
    const char* summary;
    const char* details;
  };
  for (const Action& action : {
           Action{"pause", "pause a rollout at its stage",
                  "The gate keeps watching: a paused rollout still halts."},
           Action{"resume", "resume a paused or pending rollout",
                  "Refused (FAILED_PRECONDITION, exit 2), and the rollout "
                  "halted, when the gate's halt rules trip on the evidence "
                  "already received."},
           Action{"abort", "abort a rollout",
                  "Hosts go back to the baseline, or unload the content when "
                  "the rollout has none."},
           Action{"promote", "move a rollout to its next stage now",
                  "Overrides the gate's holds, never its halts: refused "
                  "(FAILED_PRECONDITION, exit 2), and the rollout halted, "
                  "when its halt rules trip on the evidence already "
                  "received."},
       }) {
    auto flags = std::make_shared<ActionFlags>();
    const std::string name = action.name;
    app = cli.AddCommand(
        {"rollout", name}, action.summary, CommandLine::kOnline,
        [flags, name](const Invocation& inv) {
          return RolloutAction(inv.client(), name, flags->id, flags->reason);
        });
    cli.SetDetails(app, action.details);
    cli.AddArgument(app, "ID", &flags->id, "the rollout");
    cli.AddFlag(app, "reason", &flags->reason, "why (the audit log records it)",
                CommandLine::kRequired)
        ->type_name("TEXT");
  }
}

}  // namespace ringfence::ringctl
