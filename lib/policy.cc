#include "ringfence/policy.h"

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "ringfence/error_text.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", reason));
}

constexpr uint32_t kMaxBootLoopAttempts = 7;  // HostState keeps 3 bits

bool IsSet(const google::protobuf::Duration& d) {
  return d.seconds() != 0 || d.nanos() != 0;
}

// Where a value of the effective policy comes from.
enum Layer { kDefault, kPlanLayer, kStageLayer };
const char* LayerName(Layer l) {
  return l == kDefault ? "default" : l == kPlanLayer ? "plan" : "stage";
}

// Origins of one rule's fields.
struct RuleOrigin {
  Layer breaker = kDefault, ceiling = kDefault, compare = kDefault,
        margin = kDefault, disabled = kDefault;
};

// One merged policy with the origin of every value (for ExplainPlan).
struct Layered {
  GatePolicy policy;
  Layer alpha = kDefault, silence = kDefault, apply = kDefault,
        staleness = kDefault, min_hosts = kDefault, min_hours = kDefault,
        ceiling_min = kDefault, attempts = kDefault, lag = kDefault;
  std::vector<RuleOrigin> rules;  // parallel to policy.signals()
};

GatePolicy DefaultLayer() {
  GatePolicy p;
  p.set_alpha(0.01);
  p.mutable_silence_timeout()->set_seconds(600);
  p.mutable_apply_timeout()->set_seconds(600);
  p.mutable_max_staleness()->set_seconds(120);
  p.set_min_exposed_hosts(1);
  p.set_min_exposed_host_hours(0);
  p.set_ceiling_min_exposed_hosts(20);
  p.set_boot_loop_attempts(3);
  p.mutable_max_telemetry_lag()->set_seconds(3600);
  for (const SignalRule& r : BuiltinSignalRules()) *p.add_signals() = r;
  return p;
}

void MergeRule(const SignalRule& over, Layer layer, SignalRule* base,
               RuleOrigin* origin) {
  if (over.has_max_affected_hosts()) {
    base->set_max_affected_hosts(over.max_affected_hosts());
    origin->breaker = layer;
  }
  if (over.has_max_affected_fraction()) {
    base->set_max_affected_fraction(over.max_affected_fraction());
    origin->ceiling = layer;
  }
  if (over.has_compare_with_control()) {
    base->set_compare_with_control(over.compare_with_control());
    origin->compare = layer;
  }
  if (over.has_margin()) {
    base->set_margin(over.margin());
    origin->margin = layer;
  }
  if (over.has_disabled()) {
    base->set_disabled(over.disabled());
    base->set_disabled_reason(over.disabled() ? over.disabled_reason() : "");
    origin->disabled = layer;
  }
}

void MergePolicy(const GatePolicy& over, Layer layer, Layered* out) {
  GatePolicy& p = out->policy;
  if (over.alpha() != 0) {
    p.set_alpha(over.alpha());
    out->alpha = layer;
  }
  if (IsSet(over.silence_timeout())) {
    *p.mutable_silence_timeout() = over.silence_timeout();
    out->silence = layer;
  }
  if (IsSet(over.apply_timeout())) {
    *p.mutable_apply_timeout() = over.apply_timeout();
    out->apply = layer;
  }
  if (IsSet(over.max_staleness())) {
    *p.mutable_max_staleness() = over.max_staleness();
    out->staleness = layer;
  }
  if (over.min_exposed_hosts() != 0) {
    p.set_min_exposed_hosts(over.min_exposed_hosts());
    out->min_hosts = layer;
  }
  if (over.has_min_exposed_host_hours()) {
    p.set_min_exposed_host_hours(over.min_exposed_host_hours());
    out->min_hours = layer;
  }
  if (over.ceiling_min_exposed_hosts() != 0) {
    p.set_ceiling_min_exposed_hosts(over.ceiling_min_exposed_hosts());
    out->ceiling_min = layer;
  }
  if (over.boot_loop_attempts() != 0) {
    p.set_boot_loop_attempts(over.boot_loop_attempts());
    out->attempts = layer;
  }
  if (IsSet(over.max_telemetry_lag())) {
    *p.mutable_max_telemetry_lag() = over.max_telemetry_lag();
    out->lag = layer;
  }
  for (const SignalRule& r : over.signals()) {
    int i = 0;
    while (i < p.signals_size() && p.signals(i).signal() != r.signal()) ++i;
    if (i == p.signals_size()) {
      // A vendor signal: every field starts off, at this layer.
      SignalRule* fresh = p.add_signals();
      fresh->set_signal(r.signal());
      fresh->set_max_affected_hosts(0);
      fresh->set_max_affected_fraction(0);
      fresh->set_compare_with_control(false);
      fresh->set_margin(0);
      fresh->set_disabled(false);
      out->rules.push_back(RuleOrigin{layer, layer, layer, layer, layer});
    }
    MergeRule(r, layer, p.mutable_signals(i), &out->rules[i]);
  }
}

// The merged policy of `stage`, disabled rules included.
Layered LayeredPolicy(const Plan& plan, int stage) {
  Layered out;
  out.policy = DefaultLayer();
  out.rules.resize(out.policy.signals_size());
  if (plan.has_policy()) MergePolicy(plan.policy(), kPlanLayer, &out);
  if (stage >= 0 && stage < plan.stages_size() &&
      plan.stages(stage).has_policy()) {
    MergePolicy(plan.stages(stage).policy(), kStageLayer, &out);
  }
  return out;
}

bool HasHaltingRule(const SignalRule& r) {
  return r.max_affected_hosts() > 0 || r.max_affected_fraction() > 0 ||
         r.compare_with_control();
}

// The field to name for a signal's effective rule in `stage`: the stage's
// own entry if it has one, else the plan's.
std::string RuleField(const Plan& plan, int stage, absl::string_view signal) {
  if (stage < plan.stages_size()) {
    const GatePolicy& sp = plan.stages(stage).policy();
    for (int i = 0; i < sp.signals_size(); ++i) {
      if (sp.signals(i).signal() == signal) {
        return absl::StrCat("stages[", stage, "].policy.signals[", i, "]");
      }
    }
  }
  for (int i = 0; i < plan.policy().signals_size(); ++i) {
    if (plan.policy().signals(i).signal() == signal) {
      return absl::StrCat("policy.signals[", i, "]");
    }
  }
  return "policy.signals";
}

std::string StageLabel(const Plan& plan, int stage) {
  return stage < plan.stages_size()
             ? absl::StrCat("stage ", plan.stages(stage).name())
             : std::string("the late-track stage");
}

std::string Seconds(const google::protobuf::Duration& d) {
  return absl::FormatDuration(FromProto(d));
}

}  // namespace

std::vector<SignalRule> BuiltinSignalRules() {
  // Every built-in signal has a breaker of 3 hosts (control-aware, gate.h),
  // so a release that hurts its hosts stops at a handful of them whether
  // or not a control arm exists. Crash and silence are also compared with
  // control (each compared signal takes a share of the false-halt budget);
  // the rest get a 5 % ceiling.
  std::vector<SignalRule> rules;
  auto add = [&](absl::string_view signal, bool compare, double margin,
                 double ceiling) {
    SignalRule r;
    r.set_signal(std::string(signal));
    r.set_max_affected_hosts(3);
    r.set_max_affected_fraction(ceiling);
    r.set_compare_with_control(compare);
    r.set_margin(margin);
    r.set_disabled(false);
    rules.push_back(std::move(r));
  };
  add(kSignalCrash, true, 0.1, 0);
  add(kSignalUncleanReboot, false, 0, 0.05);
  add(kSignalSilent, true, 0.2, 0);
  add(kSignalApplyStuck, false, 0, 0.05);
  add(kSignalLocalFallback, false, 0, 0.05);
  return rules;
}

bool IsBuiltinSignal(absl::string_view signal) {
  return signal == kSignalCrash || signal == kSignalUncleanReboot ||
         signal == kSignalSilent || signal == kSignalApplyStuck ||
         signal == kSignalLocalFallback;
}

GatePolicy EffectivePolicy(const Plan& plan, int stage) {
  GatePolicy p = LayeredPolicy(plan, stage).policy;
  auto* rules = p.mutable_signals();
  rules->erase(std::remove_if(rules->begin(), rules->end(),
                              [](const SignalRule& r) { return r.disabled(); }),
               rules->end());
  return p;
}

std::vector<GatePolicy> EffectivePolicies(const Plan& plan) {
  std::vector<GatePolicy> out;
  out.reserve(plan.stages_size() + 1);
  for (int s = 0; s <= plan.stages_size(); ++s) {
    out.push_back(EffectivePolicy(plan, s));
  }
  return out;
}

Pacing EffectivePacing(const Plan& plan, int stage) {
  Pacing p;
  if (stage >= 0 && stage < plan.stages_size()) p = plan.stages(stage).pacing();
  if (p.initial_hosts() == 0) p.set_initial_hosts(5);
  if (p.growth_per_healthy_host() == 0) p.set_growth_per_healthy_host(1.0);
  if (p.healthy_after().seconds() == 0 && p.healthy_after().nanos() == 0) {
    p.mutable_healthy_after()->set_seconds(60);
  }
  return p;
}

std::vector<DisabledSignal> DisabledSignals(const Plan& plan) {
  std::vector<DisabledSignal> out;
  for (int s = 0; s <= plan.stages_size(); ++s) {
    const Layered l = LayeredPolicy(plan, s);
    for (const SignalRule& r : l.policy.signals()) {
      if (r.disabled()) out.push_back({s, r.signal(), r.disabled_reason()});
    }
  }
  return out;
}

absl::Status ValidateGatePolicy(const GatePolicy& policy,
                                absl::string_view path) {
  auto field = [&](absl::string_view f) { return absl::StrCat(path, ".", f); };
  if (!std::isfinite(policy.alpha()) || policy.alpha() < 0 ||
      policy.alpha() > 0.5) {
    return Invalid(field("alpha"), absl::StrCat("must be in (0, 0.5] (got ",
                                                policy.alpha(), ")"));
  }
  RETURN_IF_ERROR(internal::CheckDuration(policy.silence_timeout(),
                                          field("silence_timeout"), false));
  RETURN_IF_ERROR(internal::CheckDuration(policy.apply_timeout(),
                                          field("apply_timeout"), false));
  RETURN_IF_ERROR(internal::CheckDuration(policy.max_staleness(),
                                          field("max_staleness"), false));
  RETURN_IF_ERROR(internal::CheckDuration(policy.max_telemetry_lag(),
                                          field("max_telemetry_lag"), false));
  if (!std::isfinite(policy.min_exposed_host_hours()) ||
      policy.min_exposed_host_hours() < 0) {
    return Invalid(field("min_exposed_host_hours"), "must be >= 0");
  }
  if (policy.boot_loop_attempts() > kMaxBootLoopAttempts) {
    return Invalid(field("boot_loop_attempts"),
                   absl::StrCat("must be at most ", kMaxBootLoopAttempts,
                                " (got ", policy.boot_loop_attempts(), ")"));
  }
  if (policy.signals_size() > kMaxSignals) {
    return Invalid(field("signals"),
                   absl::StrCat("at most ", kMaxSignals, " signals (got ",
                                policy.signals_size(), ")"));
  }
  absl::flat_hash_set<std::string> seen;
  for (int i = 0; i < policy.signals_size(); ++i) {
    const SignalRule& r = policy.signals(i);
    const std::string p = absl::StrCat(path, ".signals[", i, "]");
    RETURN_IF_ERROR(ValidateSignalName(r.signal(), absl::StrCat(p, ".signal")));
    if (!seen.insert(r.signal()).second) {
      return Invalid(
          absl::StrCat(p, ".signal"),
          absl::StrCat("duplicate signal ", QuoteForError(r.signal())));
    }
    if (!std::isfinite(r.max_affected_fraction()) ||
        r.max_affected_fraction() < 0 || r.max_affected_fraction() > 1) {
      return Invalid(absl::StrCat(p, ".max_affected_fraction"),
                     absl::StrCat("must be in [0, 1] (got ",
                                  r.max_affected_fraction(), ")"));
    }
    if (!std::isfinite(r.margin()) || r.margin() < 0 || r.margin() > 100) {
      return Invalid(
          absl::StrCat(p, ".margin"),
          absl::StrCat("must be in [0, 100] (got ", r.margin(), ")"));
    }
    if (r.disabled()) {
      if (r.signal() == kSignalCrash || r.signal() == kSignalSilent) {
        return Invalid(
            absl::StrCat(p, ".disabled"),
            absl::StrCat(QuoteForError(r.signal()),
                         " cannot be disabled: a release that kills its "
                         "hosts shows it (tune its breaker, ceiling or "
                         "margin instead)"));
      }
      if (r.disabled_reason().empty()) {
        return Invalid(absl::StrCat(p, ".disabled_reason"),
                       "required with disabled: true (it is recorded in the "
                       "audit log when a rollout starts)");
      }
    } else if (!r.disabled_reason().empty()) {
      return Invalid(absl::StrCat(p, ".disabled_reason"),
                     "set only with disabled: true");
    }
    if (r.disabled_reason().size() > kMaxReasonBytes) {
      return Invalid(
          absl::StrCat(p, ".disabled_reason"),
          absl::StrCat("must be at most ", kMaxReasonBytes, " characters (got ",
                       r.disabled_reason().size(), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateEffectivePolicies(const Plan& plan) {
  absl::flat_hash_set<std::string> all;
  for (int s = 0; s <= plan.stages_size(); ++s) {
    const GatePolicy p = LayeredPolicy(plan, s).policy;
    for (const SignalRule& r : p.signals()) {
      all.insert(r.signal());
      if (r.disabled() || HasHaltingRule(r)) continue;
      const std::string where = RuleField(plan, s, r.signal());
      if (r.signal() == kSignalCrash || r.signal() == kSignalSilent) {
        return Invalid(
            where,
            absl::StrCat("leaves ", QuoteForError(r.signal()),
                         " with no halting rule in ", StageLabel(plan, s),
                         " (max_affected_hosts, max_affected_fraction and "
                         "compare_with_control are all off); crash and "
                         "silent must be watched in every stage"));
      }
      if (IsBuiltinSignal(r.signal())) {
        return Invalid(
            where,
            absl::StrCat("leaves built-in signal ", QuoteForError(r.signal()),
                         " with no halting rule in ", StageLabel(plan, s),
                         "; to switch it off, set disabled: true with a "
                         "disabled_reason (recorded in the audit log)"));
      }
      return Invalid(
          where, absl::StrCat("enables no rule for ", QuoteForError(r.signal()),
                              " in ", StageLabel(plan, s),
                              " (set max_affected_hosts, "
                              "max_affected_fraction or "
                              "compare_with_control)"));
    }
  }
  if (all.size() > static_cast<size_t>(kMaxSignals)) {
    return Invalid(
        "policy.signals",
        absl::StrCat("at most ", kMaxSignals,
                     " signals in all stages together (5 built-in, "
                     "so at most ",
                     kMaxSignals - 5, " vendor-defined); got ", all.size()));
  }
  return absl::OkStatus();
}

std::string ExplainPlan(const Plan& plan) {
  std::string out = absl::StrFormat(
      "plan \"%s\": %d stage(s) and the late track. Values come from the "
      "built-in defaults, the plan's policy or the stage's policy, as "
      "marked.\n",
      plan.name(), plan.stages_size());
  for (int s = 0; s <= plan.stages_size(); ++s) {
    const Layered l = LayeredPolicy(plan, s);
    const GatePolicy& p = l.policy;
    absl::StrAppend(&out, "\n", StageLabel(plan, s), ":\n");
    absl::StrAppendFormat(
        &out,
        "  alpha %g [%s]; silence_timeout %s [%s]; apply_timeout %s [%s]; "
        "max_staleness %s [%s]\n"
        "  min_exposed_hosts %d [%s]; min_exposed_host_hours %g [%s]; "
        "ceiling_min_exposed_hosts %d [%s]; boot_loop_attempts %d [%s]; "
        "max_telemetry_lag %s [%s]\n",
        p.alpha(), LayerName(l.alpha), Seconds(p.silence_timeout()),
        LayerName(l.silence), Seconds(p.apply_timeout()), LayerName(l.apply),
        Seconds(p.max_staleness()), LayerName(l.staleness),
        p.min_exposed_hosts(), LayerName(l.min_hosts),
        p.min_exposed_host_hours(), LayerName(l.min_hours),
        p.ceiling_min_exposed_hosts(), LayerName(l.ceiling_min),
        p.boot_loop_attempts(), LayerName(l.attempts),
        Seconds(p.max_telemetry_lag()), LayerName(l.lag));
    for (int i = 0; i < p.signals_size(); ++i) {
      const SignalRule& r = p.signals(i);
      const RuleOrigin& o = l.rules[i];
      const std::string name = absl::StrCat(
          r.signal(), IsBuiltinSignal(r.signal()) ? "" : " (vendor)");
      if (r.disabled()) {
        absl::StrAppendFormat(&out, "  %-26s DISABLED [%s]: %s\n", name,
                              LayerName(o.disabled), r.disabled_reason());
        continue;
      }
      std::vector<std::string> parts;
      parts.push_back(
          r.max_affected_hosts() > 0
              ? absl::StrFormat("breaker %d hosts [%s]", r.max_affected_hosts(),
                                LayerName(o.breaker))
              : absl::StrFormat("no breaker [%s]", LayerName(o.breaker)));
      parts.push_back(
          r.max_affected_fraction() > 0
              ? absl::StrFormat("ceiling %g%% [%s]",
                                100 * r.max_affected_fraction(),
                                LayerName(o.ceiling))
              : absl::StrFormat("no ceiling [%s]", LayerName(o.ceiling)));
      parts.push_back(
          r.compare_with_control()
              ? absl::StrFormat("compared with control [%s]",
                                LayerName(o.compare))
              : absl::StrFormat("not compared [%s]", LayerName(o.compare)));
      parts.push_back(
          absl::StrFormat("margin %g [%s]", r.margin(), LayerName(o.margin)));
      absl::StrAppendFormat(&out, "  %-26s %s\n", name,
                            absl::StrJoin(parts, "; "));
    }
  }
  return out;
}

}  // namespace ringfence
