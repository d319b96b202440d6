#include "ringfence/model.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "ringfence/policy.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::ringfence::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Lt;
using ::testing::StartsWith;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string TestDataPath(absl::string_view name) {
  return absl::StrCat(RINGFENCE_TESTDATA_DIR, "/", name);
}

// Parses with protobuf directly, so fixtures do not depend on the code under
// test.
template <typename T>
T ParseOrDie(absl::string_view text) {
  T message;
  if (!google::protobuf::TextFormat::ParseFromString(std::string(text),
                                                     &message)) {
    ADD_FAILURE() << "bad fixture: " << text;
  }
  return message;
}

// A small valid plan: explicit hosts + a label, the early track, 1 %, 100 %.
Plan BasePlan() {
  return ParseOrDie<Plan>(R"pb(
    name: "base"
    stages {
      name: "dogfood"
      audience { hosts: "h1" hosts: "h2" labels: "ring:dogfood" }
      bake_time { seconds: 600 }
    }
    stages {
      name: "early"
      audience { early_track: true }
      bake_time { seconds: 600 }
    }
    stages {
      name: "1pct"
      audience { percent: 1 }
      bake_time { seconds: 3600 }
    }
    stages {
      name: "fleet"
      audience { percent: 100 }
      bake_time { seconds: 3600 }
    }
  )pb");
}

SignalRule CompareRule(absl::string_view signal) {
  SignalRule r;
  r.set_signal(std::string(signal));
  r.set_compare_with_control(true);
  return r;
}

// ---- ValidatePlan: invalid plans -------------------------------------------

struct InvalidPlanCase {
  const char* name;
  void (*mutate)(Plan* plan);
  const char* message;  // The exact "field: reason" the error must contain.
};

void PrintTo(const InvalidPlanCase& c, std::ostream* os) { *os << c.name; }

class InvalidPlanTest : public ::testing::TestWithParam<InvalidPlanCase> {};

TEST_P(InvalidPlanTest, NamesFieldAndReason) {
  Plan plan = BasePlan();
  ASSERT_OK(ValidatePlan(plan)) << "the base plan must be valid";
  GetParam().mutate(&plan);
  EXPECT_THAT(ValidatePlan(plan), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr(GetParam().message)));
}

const InvalidPlanCase kInvalidPlans[] = {
    // Plan name and stage list.
    {"BadPlanName", [](Plan* p) { p->set_name("my plan"); },
     "name: must match [A-Za-z0-9._:/@-]+ (got \"my plan\")"},
    {"EmptyStages", [](Plan* p) { p->clear_stages(); },
     "stages: must have at least one stage"},
    {"TooManyStages",
     [](Plan* p) {
       while (p->stages_size() < 65) *p->add_stages() = p->stages(0);
     },
     "stages: at most 64 stages (got 65)"},
    // Stage names.
    {"EmptyStageName", [](Plan* p) { p->mutable_stages(1)->clear_name(); },
     "stages[1].name: must not be empty"},
    {"BadStageName",
     [](Plan* p) { p->mutable_stages(1)->set_name("early\tadopters"); },
     "stages[1].name: must match [A-Za-z0-9._:/@-]+ (got "
     "\"early\\tadopters\")"},
    {"LongStageName",
     [](Plan* p) { p->mutable_stages(1)->set_name(std::string(129, 'x')); },
     "stages[1].name: must be at most 128 characters (got 129)"},
    {"DuplicateStageName",
     [](Plan* p) { p->mutable_stages(2)->set_name("dogfood"); },
     "stages[2].name: duplicate stage name \"dogfood\""},
    // Audiences.
    {"EmptyAudience", [](Plan* p) { p->mutable_stages(1)->clear_audience(); },
     "stages[1].audience: must select hosts (hosts, labels, early_track or "
     "percent)"},
    {"EmptyAudienceNegativeZeroPercent",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_audience()->set_early_track(false);
       p->mutable_stages(1)->mutable_audience()->set_percent(-0.0);
     },
     "stages[1].audience: must select hosts"},
    {"PercentDecreases",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_audience()->set_percent(10);
       p->mutable_stages(2)->mutable_audience()->set_percent(5);
     },
     "stages[2].audience.percent: must be greater than "
     "stages[1].audience.percent (10)"},
    {"PercentRepeats",
     [](Plan* p) { p->mutable_stages(1)->mutable_audience()->set_percent(1); },
     "stages[2].audience.percent: must be greater than "
     "stages[1].audience.percent (1)"},
    {"PercentComparedWithLastPercentStage",
     // Stage 1 has no percent: stage 2 is compared with stage 0.
     [](Plan* p) { p->mutable_stages(0)->mutable_audience()->set_percent(5); },
     "stages[2].audience.percent: must be greater than "
     "stages[0].audience.percent (5)"},
    {"PercentFractionalRepeat",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_audience()->set_percent(0.5);
       p->mutable_stages(2)->mutable_audience()->set_percent(0.5);
     },
     "stages[2].audience.percent: must be greater than "
     "stages[1].audience.percent (0.5)"},
    {"PercentAbove100",
     [](Plan* p) {
       p->mutable_stages(3)->mutable_audience()->set_percent(100.5);
     },
     "stages[3].audience.percent: must be in [0, 100] (got 100.5)"},
    {"PercentNegative",
     [](Plan* p) { p->mutable_stages(2)->mutable_audience()->set_percent(-1); },
     "stages[2].audience.percent: must be in [0, 100] (got -1)"},
    {"PercentNaN",
     [](Plan* p) {
       p->mutable_stages(2)->mutable_audience()->set_percent(kNaN);
     },
     "stages[2].audience.percent: must be in [0, 100] (got nan)"},
    {"PercentInfinite",
     [](Plan* p) {
       p->mutable_stages(2)->mutable_audience()->set_percent(kInf);
     },
     "stages[2].audience.percent: must be in [0, 100] (got inf)"},
    {"LastStageBelow100",
     [](Plan* p) {
       p->mutable_stages(3)->mutable_audience()->set_percent(99.5);
     },
     "stages[3].audience.percent: the last stage must reach 100 (got 99.5)"},
    {"LastStageWithoutPercent",
     [](Plan* p) { p->mutable_stages()->RemoveLast(); },
     "stages[2].audience.percent: the last stage must reach 100 (got 1)"},
    {"SingleHostsOnlyStage",
     [](Plan* p) {
       while (p->stages_size() > 1) p->mutable_stages()->RemoveLast();
     },
     "stages[0].audience.percent: the last stage must reach 100 (got 0)"},
    // Host and label ids.
    {"EmptyHostId",
     [](Plan* p) { p->mutable_stages(0)->mutable_audience()->add_hosts(""); },
     "stages[0].audience.hosts[2]: must not be empty"},
    {"HostIdWithSpace",
     [](Plan* p) {
       p->mutable_stages(0)->mutable_audience()->set_hosts(1, "bad host");
     },
     "stages[0].audience.hosts[1]: must match [A-Za-z0-9._:/@-]+ "
     "(got \"bad host\")"},
    {"HostIdWithControlCharacter",
     [](Plan* p) {
       p->mutable_stages(0)->mutable_audience()->set_hosts(0, "h1\n");
     },
     "stages[0].audience.hosts[0]: must match [A-Za-z0-9._:/@-]+ "
     "(got \"h1\\n\")"},
    {"HostIdTooLong",
     [](Plan* p) {
       p->mutable_stages(0)->mutable_audience()->set_hosts(
           0, std::string(129, 'h'));
     },
     "stages[0].audience.hosts[0]: must be at most 128 characters (got 129)"},
    {"HostListedTwiceInStage",
     [](Plan* p) { p->mutable_stages(0)->mutable_audience()->add_hosts("h1"); },
     "stages[0].audience.hosts[2]: host \"h1\" is listed twice in the plan"},
    {"HostListedInTwoStages",
     [](Plan* p) {
       p->mutable_stages(2)->mutable_audience()->add_hosts("h3");
       p->mutable_stages(2)->mutable_audience()->add_hosts("h2");
     },
     "stages[2].audience.hosts[1]: host \"h2\" is listed twice in the plan"},
    {"BadLabel",
     [](Plan* p) {
       p->mutable_stages(0)->mutable_audience()->add_labels("ring canary");
     },
     "stages[0].audience.labels[1]: must match [A-Za-z0-9._:/@-]+ "
     "(got \"ring canary\")"},
    // Bounds of the repeated fields and of the whole plan.
    {"TooManyLabels",
     [](Plan* p) {
       for (int i = 0; i < kMaxAudienceLabels; ++i) {
         p->mutable_stages(1)->mutable_audience()->add_labels("l");
       }
       p->mutable_stages(1)->mutable_audience()->add_labels("l");
     },
     "stages[1].audience.labels: at most 64 labels (got 65)"},
    {"TooManyHostsInOneStage",
     [](Plan* p) {
       for (int i = 0; i < kMaxPlanHosts; ++i) {
         p->mutable_stages(1)->mutable_audience()->add_hosts(
             absl::StrCat("host-", i));
       }
     },
     "stages[1].audience.hosts: at most 1000 hosts in all stages together "
     "(got 1002 up to this stage)"},
    {"TooManyHostsInAllStages",
     [](Plan* p) {
       for (int s = 1; s <= 2; ++s) {
         for (int i = 0; i < 500; ++i) {
           p->mutable_stages(s)->mutable_audience()->add_hosts(
               absl::StrCat("host-", s, "-", i));
         }
       }
     },
     "stages[2].audience.hosts: at most 1000 hosts in all stages together "
     "(got 1002 up to this stage)"},
    {"PlanOverItsSize",
     [](Plan* p) {
       // Every field within its bound, the whole over kMaxPlanBytes: 64
       // stages of 64 labels of 100 characters.
       for (int s = 4; s < kMaxStages; ++s) {
         Stage* stage = p->add_stages();
         *stage = p->stages(1);
         stage->set_name(absl::StrCat("extra-", s));
       }
       for (Stage& stage : *p->mutable_stages()) {
         for (int i = 0; i < kMaxAudienceLabels - 1; ++i) {
           stage.mutable_audience()->add_labels(
               absl::StrCat(i, "-", std::string(100, 'l')));
         }
       }
       // The last stage must still be the one at 100 %.
       p->mutable_stages()->SwapElements(3, p->stages_size() - 1);
     },
     "stages: the plan is "},
    // Durations.
    {"BakeTimeZero", [](Plan* p) { p->mutable_stages(1)->clear_bake_time(); },
     "stages[1].bake_time: must be > 0"},
    {"BakeTimeNegative",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_bake_time()->set_seconds(-60);
     },
     "stages[1].bake_time: must not be negative"},
    {"BakeTimeNegativeNanos",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_bake_time()->set_seconds(0);
       p->mutable_stages(1)->mutable_bake_time()->set_nanos(-1);
     },
     "stages[1].bake_time: must not be negative"},
    {"BakeTimeOverOneYear",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_bake_time()->set_seconds(31536001);
     },
     "stages[1].bake_time: must be at most one year (got 31536001s)"},
    {"BakeTimeOverOneYearByNanos",
     // [0, one year] is inclusive of exactly one year, not of a year + 0.5 s.
     [](Plan* p) {
       p->mutable_stages(1)->mutable_bake_time()->set_seconds(31536000);
       p->mutable_stages(1)->mutable_bake_time()->set_nanos(500000000);
     },
     "stages[1].bake_time: must be at most one year"},
    {"LateTrackExtraBakeNegative",
     [](Plan* p) {
       p->mutable_late_track()->mutable_extra_bake()->set_seconds(-1);
     },
     "late_track.extra_bake: must not be negative"},
    {"LateTrackBakeTimeNegative",
     [](Plan* p) {
       p->mutable_late_track()->mutable_bake_time()->set_seconds(-1);
     },
     "late_track.bake_time: must not be negative"},
    {"LateTrackBakeTimeOverOneYear",
     [](Plan* p) {
       p->mutable_late_track()->mutable_bake_time()->set_seconds(40000000);
     },
     "late_track.bake_time: must be at most one year (got 40000000s)"},
    // Pacing.
    {"PacingGrowthAbove100",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_pacing()->set_growth_per_healthy_host(101);
     },
     "stages[1].pacing.growth_per_healthy_host: must be in [0, 100] (got 101)"},
    {"PacingGrowthNegative",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_pacing()->set_growth_per_healthy_host(
           -0.5);
     },
     "stages[1].pacing.growth_per_healthy_host: must be in [0, 100] "
     "(got -0.5)"},
    {"PacingGrowthNaN",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_pacing()->set_growth_per_healthy_host(
           kNaN);
     },
     "stages[1].pacing.growth_per_healthy_host: must be in [0, 100] "
     "(got nan)"},
    {"PacingInitialHostsTooMany",
     [](Plan* p) {
       p->mutable_stages(3)->mutable_pacing()->set_initial_hosts(1000001);
     },
     "stages[3].pacing.initial_hosts: must be at most 1000000"},
    {"PacingHealthyAfterNegative",
     [](Plan* p) {
       p->mutable_stages(2)
           ->mutable_pacing()
           ->mutable_healthy_after()
           ->set_seconds(-5);
     },
     "stages[2].pacing.healthy_after: must not be negative"},
    // Gate policy (plan level).
    {"AlphaNegative", [](Plan* p) { p->mutable_policy()->set_alpha(-0.01); },
     "policy.alpha: must be in (0, 0.5] (got -0.01)"},
    {"AlphaTooLarge", [](Plan* p) { p->mutable_policy()->set_alpha(0.6); },
     "policy.alpha: must be in (0, 0.5] (got 0.6)"},
    {"AlphaNaN", [](Plan* p) { p->mutable_policy()->set_alpha(kNaN); },
     "policy.alpha: must be in (0, 0.5] (got nan)"},
    {"SilenceTimeoutNegative",
     [](Plan* p) {
       p->mutable_policy()->mutable_silence_timeout()->set_seconds(-1);
     },
     "policy.silence_timeout: must not be negative"},
    {"ApplyTimeoutNegative",
     [](Plan* p) {
       p->mutable_policy()->mutable_apply_timeout()->set_seconds(-1);
     },
     "policy.apply_timeout: must not be negative"},
    {"MaxStalenessNegative",
     [](Plan* p) {
       p->mutable_policy()->mutable_max_staleness()->set_nanos(-1000);
     },
     "policy.max_staleness: must not be negative"},
    {"MinExposedHostHoursNegative",
     [](Plan* p) { p->mutable_policy()->set_min_exposed_host_hours(-1); },
     "policy.min_exposed_host_hours: must be >= 0"},
    {"TooManySignals",
     [](Plan* p) {
       for (int i = 0; i < 9; ++i) {
         *p->mutable_policy()->add_signals() =
             CompareRule(absl::StrCat("s", i));
       }
     },
     "policy.signals: at most 8 signals (got 9)"},
    {"DuplicateSignal",
     [](Plan* p) {
       *p->mutable_policy()->add_signals() = CompareRule("crash");
       *p->mutable_policy()->add_signals() = CompareRule("silent");
       *p->mutable_policy()->add_signals() = CompareRule("crash");
     },
     "policy.signals[2].signal: duplicate signal \"crash\""},
    {"EmptySignalName",
     [](Plan* p) { *p->mutable_policy()->add_signals() = CompareRule(""); },
     "policy.signals[0].signal: must not be empty"},
    {"UpperCaseSignalName",
     [](Plan* p) {
       *p->mutable_policy()->add_signals() = CompareRule("Crash");
     },
     "policy.signals[0].signal: must match [a-z0-9_]{1,64} (got \"Crash\")"},
    {"SignalNameTooLong",
     [](Plan* p) {
       *p->mutable_policy()->add_signals() = CompareRule(std::string(65, 'a'));
     },
     "policy.signals[0].signal: must be at most 64 characters (got 65)"},
    // K1: safety rules cannot be switched off by accident.
    {"CrashLeftWithNoHaltingRule",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       r->set_signal("crash");
       r->set_max_affected_hosts(0);
       r->set_compare_with_control(false);
     },
     "policy.signals[0]: leaves \"crash\" with no halting rule in stage "
     "dogfood"},
    {"SilentLeftWithNoHaltingRuleInOneStage",
     [](Plan* p) {
       SignalRule* r = p->mutable_stages(2)->mutable_policy()->add_signals();
       r->set_signal("silent");
       r->set_max_affected_hosts(0);
       r->set_compare_with_control(false);
     },
     "stages[2].policy.signals[0]: leaves \"silent\" with no halting rule "
     "in stage 1pct"},
    {"CrashCannotBeDisabled",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       r->set_signal("crash");
       r->set_disabled(true);
       r->set_disabled_reason("noisy");
     },
     "policy.signals[0].disabled: \"crash\" cannot be disabled"},
    {"BuiltinLeftWithNoRuleNeedsDisabled",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       r->set_signal("apply_stuck");
       r->set_max_affected_hosts(0);
       r->set_max_affected_fraction(0);
     },
     "policy.signals[0]: leaves built-in signal \"apply_stuck\" with no "
     "halting rule in stage dogfood; to switch it off, set disabled: true "
     "with a disabled_reason"},
    {"DisabledNeedsAReason",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       r->set_signal("unclean_reboot");
       r->set_disabled(true);
     },
     "policy.signals[0].disabled_reason: required with disabled: true"},
    {"ReasonWithoutDisabled",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       r->set_signal("unclean_reboot");
       r->set_disabled_reason("why");
     },
     "policy.signals[0].disabled_reason: set only with disabled: true"},
    {"TooManyVendorSignalsAcrossStages",
     [](Plan* p) {
       for (int i = 0; i < 2; ++i) {
         *p->mutable_policy()->add_signals() =
             CompareRule(absl::StrCat("plan_", i));
       }
       for (int i = 0; i < 2; ++i) {
         *p->mutable_stages(1)->mutable_policy()->add_signals() =
             CompareRule(absl::StrCat("stage_", i));
       }
     },
     "policy.signals: at most 8 signals in all stages together (5 built-in, "
     "so at most 3 vendor-defined); got 9"},
    {"BootLoopAttemptsTooLarge",
     [](Plan* p) { p->mutable_policy()->set_boot_loop_attempts(8); },
     "policy.boot_loop_attempts: must be at most 7 (got 8)"},
    {"PostCompletionWatchNegative",
     [](Plan* p) { p->mutable_post_completion_watch()->set_seconds(-1); },
     "post_completion_watch: must not be negative"},
    {"MarginNegative",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       *r = CompareRule("crash");
       r->set_margin(-0.1);
     },
     "policy.signals[0].margin: must be in [0, 100] (got -0.1)"},
    {"MarginTooLarge",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       *r = CompareRule("crash");
       r->set_margin(101);
     },
     "policy.signals[0].margin: must be in [0, 100] (got 101)"},
    {"MarginNaN",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       *r = CompareRule("crash");
       r->set_margin(kNaN);
     },
     "policy.signals[0].margin: must be in [0, 100] (got nan)"},
    {"FractionAboveOne",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       r->set_signal("apply_stuck");
       r->set_max_affected_fraction(1.5);
     },
     "policy.signals[0].max_affected_fraction: must be in [0, 1] (got 1.5)"},
    {"FractionNegative",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       r->set_signal("apply_stuck");
       r->set_max_affected_fraction(-0.05);
     },
     "policy.signals[0].max_affected_fraction: must be in [0, 1] "
     "(got -0.05)"},
    // Gate policy (stage override).
    {"StagePolicyAlpha",
     [](Plan* p) { p->mutable_stages(2)->mutable_policy()->set_alpha(1); },
     "stages[2].policy.alpha: must be in (0, 0.5] (got 1)"},
    {"StagePolicyRuleEnablesNothing",
     [](Plan* p) {
       GatePolicy* policy = p->mutable_stages(1)->mutable_policy();
       *policy->add_signals() = CompareRule("crash");
       policy->add_signals()->set_signal("my_signal");
     },
     "stages[1].policy.signals[1]: enables no rule for \"my_signal\" in "
     "stage early"},
    {"StagePolicyDuplicateSignal",
     [](Plan* p) {
       GatePolicy* policy = p->mutable_stages(3)->mutable_policy();
       *policy->add_signals() = CompareRule("silent");
       *policy->add_signals() = CompareRule("silent");
     },
     "stages[3].policy.signals[1].signal: duplicate signal \"silent\""},
};

INSTANTIATE_TEST_SUITE_P(
    ValidatePlan, InvalidPlanTest, ::testing::ValuesIn(kInvalidPlans),
    [](const ::testing::TestParamInfo<InvalidPlanCase>& info) {
      return std::string(info.param.name);
    });

TEST(ValidatePlanTest, PlanAtItsBoundsPasses) {
  Plan plan = BasePlan();
  Audience* dogfood = plan.mutable_stages(0)->mutable_audience();
  while (dogfood->hosts_size() < kMaxPlanHosts) {
    dogfood->add_hosts(absl::StrCat("host-", dogfood->hosts_size()));
  }
  while (dogfood->labels_size() < kMaxAudienceLabels) {
    dogfood->add_labels(absl::StrCat("label-", dogfood->labels_size()));
  }
  EXPECT_OK(ValidatePlan(plan));
}

TEST(ValidatePlanTest, ReportsTheFirstOffendingField) {
  Plan plan = BasePlan();
  plan.mutable_stages(1)->clear_name();
  plan.mutable_stages(3)->mutable_audience()->set_percent(50);
  EXPECT_THAT(ValidatePlan(plan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       StartsWith("stages[1].name: must not be empty")));
}

// ---- ValidatePlan: valid plans ---------------------------------------------

struct ValidPlanCase {
  const char* name;
  void (*mutate)(Plan* plan);
};

void PrintTo(const ValidPlanCase& c, std::ostream* os) { *os << c.name; }

class ValidPlanTest : public ::testing::TestWithParam<ValidPlanCase> {};

TEST_P(ValidPlanTest, Passes) {
  Plan plan = BasePlan();
  GetParam().mutate(&plan);
  EXPECT_OK(ValidatePlan(plan));
}

const ValidPlanCase kValidPlans[] = {
    {"Base", [](Plan*) {}},
    {"UnnamedPlan", [](Plan* p) { p->clear_name(); }},
    {"SinglePercentStage",
     [](Plan* p) { p->mutable_stages()->DeleteSubrange(0, 3); }},
    {"Exactly64Stages",
     [](Plan* p) {
       p->clear_stages();
       for (int i = 0; i < 64; ++i) {
         Stage* s = p->add_stages();
         s->set_name(absl::StrCat("s", i));
         s->mutable_audience()->set_percent(i == 63 ? 100 : (i + 1) * 1.5);
         s->mutable_bake_time()->set_seconds(1);
       }
     }},
    {"Exactly8Signals",  // 5 built-in + 3 vendor
     [](Plan* p) {
       for (int i = 0; i < 3; ++i) {
         *p->mutable_policy()->add_signals() =
             CompareRule(absl::StrCat("s", i));
       }
       *p->mutable_policy()->add_signals() = CompareRule("crash");
     }},
    {"ZeroAlphaMeansDefault",
     [](Plan* p) { p->mutable_policy()->set_alpha(0); }},
    {"AlphaHalf", [](Plan* p) { p->mutable_policy()->set_alpha(0.5); }},
    {"BakeTimeOneNanosecond",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_bake_time()->set_seconds(0);
       p->mutable_stages(1)->mutable_bake_time()->set_nanos(1);
     }},
    {"BakeTimeExactlyOneYear",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_bake_time()->set_seconds(31536000);
     }},
    {"PacingBounds",
     [](Plan* p) {
       p->mutable_stages(1)->mutable_pacing()->set_growth_per_healthy_host(100);
       p->mutable_stages(1)->mutable_pacing()->set_initial_hosts(1000000);
     }},
    {"RuleLimits",
     [](Plan* p) {
       SignalRule* r = p->mutable_policy()->add_signals();
       *r = CompareRule("crash");
       r->set_margin(100);
       r->set_max_affected_fraction(1);
       SignalRule* hosts_only = p->mutable_policy()->add_signals();
       hosts_only->set_signal("vendor_signal_2");
       hosts_only->set_max_affected_hosts(1);
     }},
    {"SameLabelInTwoStages",
     [](Plan* p) {
       p->mutable_stages(2)->mutable_audience()->add_labels("ring:dogfood");
     }},
    {"IdPunctuation",
     [](Plan* p) {
       p->set_name("a-Z_0.9:/@");
       p->mutable_stages(0)->mutable_audience()->add_hosts(
           "host@site:rack/1.example-a_b");
       p->mutable_stages(0)->mutable_audience()->add_hosts(
           std::string(128, 'x'));
     }},
};

INSTANTIATE_TEST_SUITE_P(
    ValidatePlan, ValidPlanTest, ::testing::ValuesIn(kValidPlans),
    [](const ::testing::TestParamInfo<ValidPlanCase>& info) {
      return std::string(info.param.name);
    });

// ---- Loading ---------------------------------------------------------------

TEST(LoadMessageFileTest, DefaultPlanTextProtoIsValid) {
  Plan plan;
  ASSERT_OK(LoadMessageFile(TestDataPath("default_plan.textproto"), &plan));
  EXPECT_EQ(plan.name(), "default");
  ASSERT_EQ(plan.stages_size(), 4);
  EXPECT_EQ(plan.stages(3).audience().percent(), 100);
  EXPECT_EQ(plan.stages(0).policy().signals_size(), 4);
  EXPECT_EQ(plan.late_track().extra_bake().seconds(), 3600);
  EXPECT_OK(ValidatePlan(plan));
}

TEST(LoadMessageFileTest, TextProtoAndJsonLoadTheSamePlan) {
  Plan from_text;
  Plan from_json;
  ASSERT_OK(
      LoadMessageFile(TestDataPath("default_plan.textproto"), &from_text));
  ASSERT_OK(LoadMessageFile(TestDataPath("default_plan.json"), &from_json));
  std::string diff;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(from_text, from_json)) << diff;
  EXPECT_OK(ValidatePlan(from_json));
}

TEST(LoadMessageFileTest, MissingFileIsNotFound) {
  const std::string path = TestDataPath("no_such_plan.textproto");
  Plan plan;
  EXPECT_THAT(LoadMessageFile(path, &plan),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(absl::StrCat(path, ": cannot open"))));
}

TEST(LoadMessageFileTest, DirectoryIsNotLoadedAsAnEmptyMessage) {
  // A directory opens as an std::ifstream on Linux but cannot be read; it must
  // not load as an empty (default) message. model.h: "NOT_FOUND if the file
  // cannot be read".
  const std::string path = TestDataPath("");
  Plan plan;
  EXPECT_THAT(LoadMessageFile(path, &plan),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST(FileTest, WriteAtomicallyThenReadBack) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "model_test_atomic.bin");
  const std::string contents("a\0b\nc", 5);
  ASSERT_OK(WriteFileAtomically(path, "old"));
  ASSERT_OK(WriteFileAtomically(path, contents, 0600));
  absl::StatusOr<std::string> back = ReadFileToString(path);
  ASSERT_OK(back);
  EXPECT_EQ(*back, contents);
  // The new file has the mode it was written with (umask permitting).
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::remove(path.c_str());

  EXPECT_THAT(ReadFileToString(path),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
  // A directory that does not exist: nothing written, an error naming it.
  EXPECT_THAT(WriteFileAtomically(path + ".d/x", "y"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr(".d/x")));
}

TEST(LoadMessageFileTest, SyntaxErrorNamesFileLineAndColumn) {
  const std::string path =
      absl::StrCat(::testing::TempDir(), "model_test_bad_plan.textproto");
  {
    std::ofstream out(path);
    out << "name: \"bad\"\n"
           "stages {\n"
           "  name: \"s\"\n"
           "  bake_tme { seconds: 1 }\n"
           "}\n";
  }
  Plan plan;
  EXPECT_THAT(
      LoadMessageFile(path, &plan),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(StartsWith(absl::StrCat(path, ": ")),
                     HasSubstr("invalid text proto for ringfence.config.v1."
                               "Plan: line 4, column "),
                     HasSubstr("has no field named \"bake_tme\""))));
  std::remove(path.c_str());
}

TEST(ParseTextOrJsonTest, ParsesTextProto) {
  Plan plan;
  ASSERT_OK(ParseTextOrJson(R"pb(
                              name: "p"
                              stages {
                                name: "all"
                                audience { percent: 100 }
                                bake_time { seconds: 60 }
                              }
                            )pb",
                            &plan));
  EXPECT_EQ(plan.name(), "p");
  ASSERT_EQ(plan.stages_size(), 1);
  EXPECT_EQ(plan.stages(0).bake_time().seconds(), 60);
}

TEST(ParseTextOrJsonTest, ParsesJsonAfterLeadingWhitespace) {
  Plan plan;
  ASSERT_OK(ParseTextOrJson(
      " \n\t{\"name\": \"p\", \"stages\": [{\"name\": \"all\", "
      "\"audience\": {\"percent\": 100}, \"bakeTime\": \"1.5s\"}]}",
      &plan));
  EXPECT_EQ(plan.name(), "p");
  ASSERT_EQ(plan.stages_size(), 1);
  EXPECT_EQ(plan.stages(0).bake_time().seconds(), 1);
  EXPECT_EQ(plan.stages(0).bake_time().nanos(), 500000000);
}

TEST(ParseTextOrJsonTest, EmptyTextIsAnEmptyMessage) {
  Plan plan;
  plan.set_name("stale");
  ASSERT_OK(ParseTextOrJson("", &plan));
  EXPECT_EQ(plan.name(), "");
}

// Line and column are 1-based: the protobuf tokenizer's are 0-based.
TEST(ParseTextOrJsonTest, TextSyntaxErrorHasOneBasedLineAndColumn) {
  Plan plan;
  // The offending token "abc" (with its quote) starts at line 3, column 24.
  EXPECT_THAT(ParseTextOrJson("name: \"p\"\n"
                              "stages {\n"
                              "  bake_time { seconds: \"abc\" }\n"
                              "}\n",
                              &plan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid text proto for "
                                 "ringfence.config.v1.Plan: line 3, "
                                 "column 24: Expected integer")));
  // The tokenizer itself reports the "x" of "1x" (line 3, column 25).
  EXPECT_THAT(ParseTextOrJson("name: \"p\"\n"
                              "stages {\n"
                              "  bake_time { seconds: 1x }\n"
                              "}\n",
                              &plan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 3, column 25: ")));
  // First line, missing ':' before the string at column 6.
  EXPECT_THAT(ParseTextOrJson("name \"p\"\n", &plan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("line 1, column 6: Expected \":\"")));
}

TEST(ParseTextOrJsonTest, TextUnknownFieldHasLine) {
  Plan plan;
  // (protobuf reports the column of the token after the unknown name.)
  EXPECT_THAT(ParseTextOrJson("name: \"p\"\nstage { name: \"x\" }\n", &plan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("line 2, column "),
                             HasSubstr("has no field named \"stage\""))));
}

TEST(ParseTextOrJsonTest, TextUnterminatedMessageIsAnError) {
  Plan plan;
  EXPECT_THAT(ParseTextOrJson("stages {\n  name: \"x\"\n", &plan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid text proto for "
                                 "ringfence.config.v1.Plan: line 3, ")));
}

TEST(ParseTextOrJsonTest, JsonSyntaxErrorIsInvalidArgument) {
  Plan plan;
  EXPECT_THAT(ParseTextOrJson("{\"name\" \"p\"}", &plan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid JSON for ringfence.config.v1.Plan: "
                                 "Expected : between key:value pair.")));
}

TEST(ParseTextOrJsonTest, JsonUnknownFieldIsRejected) {
  Plan plan;
  EXPECT_THAT(ParseTextOrJson("{\"name\": \"p\", \"stagez\": []}", &plan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid JSON for ringfence.config.v1.Plan: "
                                 "stagez: Cannot find field")));
}

TEST(ParseTextOrJsonTest, JsonWrongTypeIsRejected) {
  Plan plan;
  EXPECT_THAT(ParseTextOrJson("{\"stages\": [{\"bakeTime\": 60}]}", &plan),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("invalid JSON for ringfence.config.v1.Plan: "
                                 "(stages[0].bake_time): invalid value")));
  EXPECT_THAT(
      ParseTextOrJson("{\n\"stages\": [\n{\"name\": \"a\"},\n{\"name\": 1}]}",
                      &plan),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("(stages[1].name): invalid value 1")));
}

// ---- ValidateRelease -------------------------------------------------------

constexpr char kDigest[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

Release ValidRelease() {
  Release r;
  r.set_id("rel-2024.07.19:1");
  r.set_content_type("channel-file/291");
  r.set_version("291.1");
  r.set_digest_sha256(kDigest);
  r.set_size_bytes(4096);
  r.mutable_targeting()->set_min_agent_version("7.11");
  r.mutable_targeting()->set_max_agent_version("7.16.0");
  r.mutable_targeting()->add_platforms("windows");
  r.mutable_targeting()->add_platforms("linux");
  return r;
}

TEST(ValidateReleaseTest, ValidReleasePasses) {
  EXPECT_OK(ValidateRelease(ValidRelease()));
  Release at_bounds = ValidRelease();
  at_bounds.set_version(std::string(kMaxVersionBytes, 'v'));
  at_bounds.set_fetch_url(std::string(kMaxFetchUrlBytes, 'u'));
  at_bounds.set_signature(std::string(kMaxSignatureBytes, '\0'));
  at_bounds.set_size_bytes(kMaxReleaseSizeBytes);
  at_bounds.mutable_targeting()->clear_platforms();
  for (int i = 0; i < kMaxPlatforms; ++i) {
    at_bounds.mutable_targeting()->add_platforms(absl::StrCat("p", i));
  }
  at_bounds.mutable_created_at()->set_seconds(253402300799);
  at_bounds.mutable_created_at()->set_nanos(999999999);
  EXPECT_OK(ValidateRelease(at_bounds));
  at_bounds.mutable_created_at()->set_seconds(-62135596800);
  at_bounds.mutable_created_at()->set_nanos(0);
  EXPECT_OK(ValidateRelease(at_bounds));
  Release no_targeting = ValidRelease();
  no_targeting.clear_targeting();
  no_targeting.clear_version();
  EXPECT_OK(ValidateRelease(no_targeting));
  Release only_min = ValidRelease();
  only_min.mutable_targeting()->clear_max_agent_version();
  EXPECT_OK(ValidateRelease(only_min));
  Release only_max = ValidRelease();
  only_max.mutable_targeting()->clear_min_agent_version();
  EXPECT_OK(ValidateRelease(only_max));
}

struct InvalidReleaseCase {
  const char* name;
  void (*mutate)(Release* release);
  const char* message;
};

void PrintTo(const InvalidReleaseCase& c, std::ostream* os) { *os << c.name; }

class InvalidReleaseTest : public ::testing::TestWithParam<InvalidReleaseCase> {
};

TEST_P(InvalidReleaseTest, NamesFieldAndReason) {
  Release release = ValidRelease();
  GetParam().mutate(&release);
  EXPECT_THAT(ValidateRelease(release),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(GetParam().message)));
}

const InvalidReleaseCase kInvalidReleases[] = {
    {"EmptyId", [](Release* r) { r->clear_id(); }, "id: must not be empty"},
    {"BadId", [](Release* r) { r->set_id("rel 1"); },
     "id: must match [A-Za-z0-9._:/@-]+ (got \"rel 1\")"},
    {"EmptyContentType", [](Release* r) { r->clear_content_type(); },
     "content_type: must not be empty"},
    {"LongVersion", [](Release* r) { r->set_version(std::string(129, 'v')); },
     "version: must be at most 128 bytes (got 129)"},
    {"LongFetchUrl",
     [](Release* r) {
       r->set_fetch_url("https://u.example/" + std::string(10 << 20, 'x'));
     },
     "fetch_url: must be at most 2048 bytes (got 10485778)"},
    {"FetchUrlWithNewline",
     [](Release* r) { r->set_fetch_url("https://u.example/a\nb"); },
     "fetch_url: must not contain control characters (got "
     "\"https://u.example/a\\nb\")"},
    {"LongSignature",
     [](Release* r) { r->set_signature(std::string(1025, 's')); },
     "signature: must be at most 1024 bytes (got 1025)"},
    {"MaxSize", [](Release* r) { r->set_size_bytes(UINT64_MAX); },
     "size_bytes: must be at most 1099511627776 (1 TiB; got "
     "18446744073709551615)"},
    {"TooManyPlatforms",
     [](Release* r) {
       for (int i = 0; i < kMaxPlatforms; ++i) {
         r->mutable_targeting()->add_platforms(absl::StrCat("p", i));
       }
     },
     "targeting.platforms: at most 32 platforms (got 34)"},
    {"CreatedAtAfterYear9999",
     [](Release* r) { r->mutable_created_at()->set_seconds(253402300800); },
     "created_at: must be between 0001-01-01T00:00:00Z and "
     "9999-12-31T23:59:59Z (got seconds 253402300800)"},
    {"CreatedAtBeforeYear1",
     [](Release* r) { r->mutable_created_at()->set_seconds(INT64_MIN); },
     "created_at: must be between"},
    {"CreatedAtNegativeNanos",
     [](Release* r) { r->mutable_created_at()->set_nanos(-1); },
     "created_at: nanos must be in [0, 999999999] (got -1)"},
    {"EmptyDigest", [](Release* r) { r->clear_digest_sha256(); },
     "digest_sha256: must be 64 lower-case hex characters (got 0 characters)"},
    {"ShortDigest",
     [](Release* r) { r->set_digest_sha256(std::string(kDigest, 63)); },
     "digest_sha256: must be 64 lower-case hex characters (got 63 characters)"},
    {"LongDigest",
     [](Release* r) { r->set_digest_sha256(absl::StrCat(kDigest, "0")); },
     "digest_sha256: must be 64 lower-case hex characters (got 65 characters)"},
    {"UpperCaseDigest",
     [](Release* r) { (*r->mutable_digest_sha256())[10] = 'A'; },
     "digest_sha256: must be lower-case hex"},
    {"NonHexDigest",
     [](Release* r) { (*r->mutable_digest_sha256())[63] = 'g'; },
     "digest_sha256: must be lower-case hex"},
    {"ZeroSize", [](Release* r) { r->set_size_bytes(0); },
     "size_bytes: must be > 0"},
    {"MinVersionNotNumeric",
     [](Release* r) { r->mutable_targeting()->set_min_agent_version("7.x"); },
     "targeting.min_agent_version: must be a dotted version like 7.11.0 "
     "(got \"7.x\")"},
    {"MinVersionPrefixed",
     [](Release* r) { r->mutable_targeting()->set_min_agent_version("v7.11"); },
     "targeting.min_agent_version: must be a dotted version like 7.11.0 "
     "(got \"v7.11\")"},
    {"MaxVersionTooManyComponents",
     [](Release* r) {
       r->mutable_targeting()->set_max_agent_version("7.16.0.1.2");
     },
     "targeting.max_agent_version: must be a dotted version like 7.11.0 "
     "(got \"7.16.0.1.2\")"},
    {"MaxVersionTrailingDot",
     [](Release* r) { r->mutable_targeting()->set_max_agent_version("7."); },
     "targeting.max_agent_version: must be a dotted version like 7.11.0 "
     "(got \"7.\")"},
    {"MaxVersionEscaped",
     [](Release* r) { r->mutable_targeting()->set_max_agent_version("7\n"); },
     "targeting.max_agent_version: must be a dotted version like 7.11.0 "
     "(got \"7\\n\")"},
    {"MinEqualsMax",
     [](Release* r) { r->mutable_targeting()->set_min_agent_version("7.16"); },
     "targeting.max_agent_version: must be greater than min_agent_version "
     "(7.16)"},
    {"MinAboveMax",
     [](Release* r) { r->mutable_targeting()->set_min_agent_version("8"); },
     "targeting.max_agent_version: must be greater than min_agent_version "
     "(8)"},
    {"BadPlatform",
     [](Release* r) { r->mutable_targeting()->add_platforms("mac os"); },
     "targeting.platforms[2]: must match [A-Za-z0-9._:/@-]+ (got \"mac os\")"},
    {"EmptyPlatform",
     [](Release* r) { r->mutable_targeting()->set_platforms(0, ""); },
     "targeting.platforms[0]: must not be empty"},
};

INSTANTIATE_TEST_SUITE_P(
    ValidateRelease, InvalidReleaseTest, ::testing::ValuesIn(kInvalidReleases),
    [](const ::testing::TestParamInfo<InvalidReleaseCase>& info) {
      return std::string(info.param.name);
    });

// ---- ValidateFleetConfig ---------------------------------------------------

TEST(ValidateFleetConfigTest, ValidFleetPasses) {
  EXPECT_OK(ValidateFleetConfig(FleetConfig()));
  EXPECT_OK(ValidateFleetConfig(ParseOrDie<FleetConfig>(R"pb(
    tenants { name: "acme" track: TRACK_EARLY }
    tenants { name: "hospital-7" track: TRACK_LATE }
    tenants { name: "bank" track: TRACK_PINNED }
    tenants { name: "shop" }
  )pb")));
}

TEST(ValidateFleetConfigTest, DuplicateTenant) {
  EXPECT_THAT(
      ValidateFleetConfig(ParseOrDie<FleetConfig>(R"pb(
        tenants { name: "acme" track: TRACK_EARLY }
        tenants { name: "bank" track: TRACK_LATE }
        tenants { name: "acme" track: TRACK_PINNED }
      )pb")),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("tenants[2].name: duplicate tenant \"acme\"")));
}

TEST(ValidateFleetConfigTest, EmptyOrBadTenantName) {
  EXPECT_THAT(ValidateFleetConfig(ParseOrDie<FleetConfig>(R"pb(
                tenants { name: "acme" }
                tenants { track: TRACK_LATE }
              )pb")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tenants[1].name: must not be empty")));
  EXPECT_THAT(ValidateFleetConfig(ParseOrDie<FleetConfig>(R"pb(
                tenants { name: "ac me" }
              )pb")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tenants[0].name: must match "
                                 "[A-Za-z0-9._:/@-]+ (got \"ac me\")")));
}

TEST(ValidateFleetConfigTest, UnknownTrack) {
  FleetConfig fleet;
  Tenant* t = fleet.add_tenants();
  t->set_name("acme");
  t->set_track(static_cast<Track>(42));
  EXPECT_THAT(ValidateFleetConfig(fleet),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tenants[0].track: unknown track")));
}

// ---- Defaults --------------------------------------------------------------

void ExpectDefaultSignals(const GatePolicy& p) {
  ASSERT_EQ(p.signals_size(), 5);
  const char* names[] = {"crash", "unclean_reboot", "silent", "apply_stuck",
                         "local_fallback"};
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(names[i]);
    const SignalRule& r = p.signals(i);
    EXPECT_EQ(r.signal(), names[i]);
    // Every built-in signal has a breaker at 3 hosts.
    EXPECT_EQ(r.max_affected_hosts(), 3u);
    EXPECT_FALSE(r.disabled());
    const bool compared = i == 0 || i == 2;
    EXPECT_EQ(r.compare_with_control(), compared);
    EXPECT_DOUBLE_EQ(r.margin(), i == 0 ? 0.1 : i == 2 ? 0.2 : 0);
    EXPECT_DOUBLE_EQ(r.max_affected_fraction(), compared ? 0 : 0.05);
  }
}

TEST(BuiltinSignalRulesTest, MatchDocumentation) {
  std::vector<SignalRule> rules = BuiltinSignalRules();
  GatePolicy p;
  for (const SignalRule& r : rules) *p.add_signals() = r;
  ExpectDefaultSignals(p);
  EXPECT_OK(ValidateGatePolicy(p, "policy"));
  for (const SignalRule& r : rules) EXPECT_TRUE(IsBuiltinSignal(r.signal()));
  EXPECT_FALSE(IsBuiltinSignal("latency_regression"));
}

TEST(EffectivePolicyTest, FillsEveryDefault) {
  const Plan plan = BasePlan();
  for (int stage : {-1, 0, 3, 4}) {
    SCOPED_TRACE(stage);
    const GatePolicy p = EffectivePolicy(plan, stage);
    ExpectDefaultSignals(p);
    EXPECT_DOUBLE_EQ(p.alpha(), 0.01);
    EXPECT_EQ(FromProto(p.silence_timeout()), absl::Minutes(10));
    EXPECT_EQ(FromProto(p.apply_timeout()), absl::Minutes(10));
    EXPECT_EQ(FromProto(p.max_staleness()), absl::Minutes(2));
    EXPECT_EQ(p.min_exposed_hosts(), 1u);
    EXPECT_EQ(p.ceiling_min_exposed_hosts(), 20u);
    EXPECT_EQ(p.min_exposed_host_hours(), 0);
    EXPECT_EQ(p.boot_loop_attempts(), 3u);
    EXPECT_OK(ValidateGatePolicy(p, "policy"));
  }
}

TEST(EffectivePolicyTest, KeepsSetFieldsOfThePlanPolicy) {
  Plan plan = BasePlan();
  *plan.mutable_policy() = ParseOrDie<GatePolicy>(R"pb(
    alpha: 0.02
    max_staleness { nanos: 500000000 }
    min_exposed_hosts: 7
    min_exposed_host_hours: 2.5
    signals { signal: "crash" max_affected_hosts: 2 }
  )pb");
  const GatePolicy p = EffectivePolicy(plan, 2);
  // The crash rule changes only its breaker; every other rule stays.
  ASSERT_EQ(p.signals_size(), 5);
  EXPECT_EQ(p.signals(0).max_affected_hosts(), 2u);
  EXPECT_TRUE(p.signals(0).compare_with_control());
  EXPECT_DOUBLE_EQ(p.signals(0).margin(), 0.1);
  EXPECT_DOUBLE_EQ(p.alpha(), 0.02);
  EXPECT_EQ(FromProto(p.max_staleness()), absl::Milliseconds(500));
  EXPECT_EQ(FromProto(p.silence_timeout()), absl::Minutes(10));
  EXPECT_EQ(p.min_exposed_hosts(), 7u);
  EXPECT_EQ(p.ceiling_min_exposed_hosts(), 20u);
  EXPECT_DOUBLE_EQ(p.min_exposed_host_hours(), 2.5);
}

// K1: a vendor rule is added to the built-in ones, never instead of them.
TEST(EffectivePolicyTest, VendorSignalsAddToTheBuiltinOnes) {
  Plan plan = BasePlan();
  *plan.mutable_policy() = ParseOrDie<GatePolicy>(R"pb(
    signals { signal: "latency_regression" max_affected_hosts: 3 }
  )pb");
  ASSERT_OK(ValidatePlan(plan));
  for (int stage = 0; stage <= plan.stages_size(); ++stage) {
    const GatePolicy p = EffectivePolicy(plan, stage);
    ASSERT_EQ(p.signals_size(), 6);
    GatePolicy builtins = p;
    builtins.mutable_signals()->RemoveLast();
    ExpectDefaultSignals(builtins);
    EXPECT_EQ(p.signals(5).signal(), "latency_regression");
    EXPECT_EQ(p.signals(5).max_affected_hosts(), 3u);
    EXPECT_FALSE(p.signals(5).compare_with_control());
  }
}

TEST(EffectivePolicyTest, StagePolicyOverridesFieldByField) {
  Plan plan = BasePlan();
  *plan.mutable_policy() = ParseOrDie<GatePolicy>(R"pb(
    alpha: 0.02
    silence_timeout { seconds: 30 }
    min_exposed_host_hours: 2
    signals { signal: "crash" max_affected_hosts: 2 }
    signals { signal: "vendor_x" max_affected_hosts: 4 margin: 0.5 }
  )pb");
  *plan.mutable_stages(1)->mutable_policy() = ParseOrDie<GatePolicy>(R"pb(
    alpha: 0.05
    apply_timeout { seconds: 45 }
    min_exposed_host_hours: 0
    signals { signal: "crash" compare_with_control: false }
    signals { signal: "vendor_x" max_affected_hosts: 1 }
  )pb");
  ASSERT_OK(ValidatePlan(plan));
  const GatePolicy stage1 = EffectivePolicy(plan, 1);
  EXPECT_DOUBLE_EQ(stage1.alpha(), 0.05);
  EXPECT_EQ(FromProto(stage1.apply_timeout()), absl::Seconds(45));
  // Inherited from the plan's policy.
  EXPECT_EQ(FromProto(stage1.silence_timeout()), absl::Seconds(30));
  // An explicit 0 overrides for min_exposed_host_hours.
  EXPECT_EQ(stage1.min_exposed_host_hours(), 0);
  ASSERT_EQ(stage1.signals_size(), 6);
  EXPECT_EQ(stage1.signals(0).max_affected_hosts(), 2u);   // plan
  EXPECT_FALSE(stage1.signals(0).compare_with_control());  // stage
  EXPECT_EQ(stage1.signals(5).max_affected_hosts(), 1u);   // stage
  EXPECT_DOUBLE_EQ(stage1.signals(5).margin(), 0.5);       // plan

  // Other stages keep the plan's policy.
  for (int stage : {0, 2}) {
    const GatePolicy p = EffectivePolicy(plan, stage);
    EXPECT_DOUBLE_EQ(p.alpha(), 0.02);
    EXPECT_EQ(FromProto(p.silence_timeout()), absl::Seconds(30));
    EXPECT_DOUBLE_EQ(p.min_exposed_host_hours(), 2);
    EXPECT_TRUE(p.signals(0).compare_with_control());
    EXPECT_EQ(p.signals(5).max_affected_hosts(), 4u);
  }
}

TEST(EffectivePolicyTest, DisablingTakesAnExplicitRecordedChoice) {
  Plan plan = BasePlan();
  *plan.mutable_stages(0)->mutable_policy() = ParseOrDie<GatePolicy>(R"pb(
    signals {
      signal: "unclean_reboot"
      disabled: true
      disabled_reason: "dogfood hosts reboot uncleanly by design"
    }
  )pb");
  ASSERT_OK(ValidatePlan(plan));
  const GatePolicy p0 = EffectivePolicy(plan, 0);
  EXPECT_EQ(p0.signals_size(), 4);
  for (const SignalRule& r : p0.signals()) {
    EXPECT_NE(r.signal(), "unclean_reboot");
  }
  EXPECT_EQ(EffectivePolicy(plan, 1).signals_size(), 5);
  const std::vector<DisabledSignal> disabled = DisabledSignals(plan);
  ASSERT_EQ(disabled.size(), 1u);
  EXPECT_EQ(disabled[0].stage, 0);
  EXPECT_EQ(disabled[0].signal, "unclean_reboot");
  EXPECT_EQ(disabled[0].reason, "dogfood hosts reboot uncleanly by design");
  // A later layer can turn it back on.
  plan.mutable_policy()->add_signals()->set_signal("apply_stuck");
  plan.mutable_policy()->mutable_signals(0)->set_disabled(true);
  plan.mutable_policy()->mutable_signals(0)->set_disabled_reason("why not");
  SignalRule* back = plan.mutable_stages(3)->mutable_policy()->add_signals();
  back->set_signal("apply_stuck");
  back->set_disabled(false);
  ASSERT_OK(ValidatePlan(plan));
  EXPECT_EQ(EffectivePolicy(plan, 3).signals_size(), 5);
  EXPECT_EQ(EffectivePolicy(plan, 2).signals_size(), 4);
}

TEST(ExplainPlanTest, ShowsEveryStagesRulesAndWhereTheyComeFrom) {
  Plan plan = BasePlan();
  *plan.mutable_policy() = ParseOrDie<GatePolicy>(R"pb(
    signals { signal: "latency_regression" max_affected_hosts: 3 }
  )pb");
  *plan.mutable_stages(0)->mutable_policy() = ParseOrDie<GatePolicy>(R"pb(
    alpha: 0.05
    signals { signal: "crash" max_affected_hosts: 2 }
    signals {
      signal: "apply_stuck"
      disabled: true
      disabled_reason: "agents report applied late"
    }
  )pb");
  ASSERT_OK(ValidatePlan(plan));
  const std::string text = ExplainPlan(plan);
  EXPECT_THAT(text, HasSubstr("stage dogfood:\n  alpha 0.05 [stage]"));
  EXPECT_THAT(text, HasSubstr("breaker 2 hosts [stage]; no ceiling [default]; "
                              "compared with control [default]; margin 0.1 "
                              "[default]"));
  EXPECT_THAT(text, HasSubstr("apply_stuck                DISABLED [stage]: "
                              "agents report applied late"));
  EXPECT_THAT(text, HasSubstr("latency_regression (vendor) breaker 3 hosts "
                              "[plan]"));
  EXPECT_THAT(text, HasSubstr("the late-track stage:\n  alpha 0.01 [default]"));
}

TEST(EffectivePacingTest, Defaults) {
  const Plan plan = BasePlan();
  for (int stage : {-1, 0, 3, 4, 100}) {
    SCOPED_TRACE(stage);
    const Pacing p = EffectivePacing(plan, stage);
    EXPECT_EQ(p.initial_hosts(), 5u);
    EXPECT_DOUBLE_EQ(p.growth_per_healthy_host(), 1.0);
    EXPECT_EQ(p.max_new_hosts_per_minute(), 0u);
    EXPECT_EQ(FromProto(p.healthy_after()), absl::Seconds(60));
  }
}

TEST(EffectivePacingTest, StagePacingOverridesDefaults) {
  Plan plan = BasePlan();
  *plan.mutable_stages(3)->mutable_pacing() = ParseOrDie<Pacing>(R"pb(
    initial_hosts: 50
    growth_per_healthy_host: 2
    max_new_hosts_per_minute: 20000
    healthy_after { seconds: 300 }
  )pb");
  plan.mutable_stages(2)->mutable_pacing()->set_initial_hosts(1);
  const Pacing fleet = EffectivePacing(plan, 3);
  EXPECT_EQ(fleet.initial_hosts(), 50u);
  EXPECT_DOUBLE_EQ(fleet.growth_per_healthy_host(), 2.0);
  EXPECT_EQ(fleet.max_new_hosts_per_minute(), 20000u);
  EXPECT_EQ(FromProto(fleet.healthy_after()), absl::Minutes(5));
  const Pacing partial = EffectivePacing(plan, 2);
  EXPECT_EQ(partial.initial_hosts(), 1u);
  EXPECT_DOUBLE_EQ(partial.growth_per_healthy_host(), 1.0);
  EXPECT_EQ(FromProto(partial.healthy_after()), absl::Seconds(60));
  // Another stage's pacing does not leak.
  EXPECT_EQ(EffectivePacing(plan, 1).initial_hosts(), 5u);
}

// ---- Agent versions --------------------------------------------------------

struct VersionOrder {
  const char* lower;
  const char* higher;
};

void PrintTo(const VersionOrder& v, std::ostream* os) {
  *os << v.lower << " < " << v.higher;
}

class CompareAgentVersionsOrderTest
    : public ::testing::TestWithParam<VersionOrder> {};

TEST_P(CompareAgentVersionsOrderTest, OrdersBothWays) {
  EXPECT_THAT(CompareAgentVersions(GetParam().lower, GetParam().higher), Lt(0));
  EXPECT_THAT(CompareAgentVersions(GetParam().higher, GetParam().lower), Gt(0));
}

INSTANTIATE_TEST_SUITE_P(
    Versions, CompareAgentVersionsOrderTest,
    ::testing::Values(
        VersionOrder{"7.11", "7.11.1"}, VersionOrder{"7.11.1", "7.12"},
        VersionOrder{"7.11", "7.12"}, VersionOrder{"7.9", "7.10"},
        VersionOrder{"9", "10"}, VersionOrder{"7.11.0", "7.11.0.1"},
        VersionOrder{"6.99.99.99", "7"}, VersionOrder{"0", "0.0.0.1"},
        VersionOrder{"7.x", "7.1"}, VersionOrder{"4294967295", "4294967296"}));

TEST(CompareAgentVersionsTest, Equal) {
  EXPECT_EQ(CompareAgentVersions("7.11", "7.11"), 0);
  EXPECT_EQ(CompareAgentVersions("7.11", "7.11.0"), 0);
  EXPECT_EQ(CompareAgentVersions("7.11.0.0", "7.11"), 0);
  EXPECT_EQ(CompareAgentVersions("7.011", "7.11"), 0);
  EXPECT_EQ(CompareAgentVersions("", "0"), 0);
  // Non-numeric components compare as 0.
  EXPECT_EQ(CompareAgentVersions("7.x", "7.0"), 0);
  EXPECT_EQ(CompareAgentVersions("7.beta.1", "7.0.1"), 0);
}

TEST(IsValidAgentVersionTest, Valid) {
  for (const char* v :
       {"7", "7.11", "7.11.0", "7.11.0.1", "0", "007.1", "999999999.1"}) {
    EXPECT_TRUE(IsValidAgentVersion(v)) << v;
  }
}

TEST(IsValidAgentVersionTest, Invalid) {
  for (const char* v :
       {"", ".", "7.", ".7", "7..1", "v7", "7.x", "7.11-beta", "1.2.3.4.5",
        "+7", "-7", " 7", "7 ", "1234567890", "7.1234567890"}) {
    EXPECT_FALSE(IsValidAgentVersion(v)) << "\"" << v << "\"";
  }
}

// ---- Conversions -----------------------------------------------------------

TEST(TimeConversionTest, ToProtoTimeNormalizesNanos) {
  struct Case {
    absl::Time t;
    int64_t seconds;
    int32_t nanos;
  };
  const Case cases[] = {
      {absl::UnixEpoch(), 0, 0},
      {absl::FromUnixMillis(1500), 1, 500000000},
      {absl::FromUnixMillis(-1500), -2, 500000000},
      {absl::FromUnixNanos(-1), -1, 999999999},
      {absl::FromUnixSeconds(-1), -1, 0},
      {absl::FromUnixNanos(1721390000123456789), 1721390000, 123456789},
      {absl::FromCivil(absl::CivilSecond(1900, 1, 1, 0, 0, 0),
                       absl::UTCTimeZone()) -
           absl::Nanoseconds(1),
       -2208988801, 999999999},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::FormatTime(c.t));
    const google::protobuf::Timestamp ts = ToProtoTime(c.t);
    EXPECT_EQ(ts.seconds(), c.seconds);
    EXPECT_EQ(ts.nanos(), c.nanos);
    EXPECT_EQ(FromProto(ts), c.t);
  }
}

TEST(TimeConversionTest, TimestampRoundTrips) {
  for (int64_t ns :
       {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{999999999},
        int64_t{-999999999}, int64_t{-1000000000}, int64_t{-1000000001},
        int64_t{1721390000123456789}, int64_t{-1721390000123456789}}) {
    SCOPED_TRACE(ns);
    const absl::Time t = absl::FromUnixNanos(ns);
    EXPECT_EQ(FromProto(ToProtoTime(t)), t);
  }
  google::protobuf::Timestamp ts;
  ts.set_seconds(-5);
  ts.set_nanos(250);
  EXPECT_EQ(FromProto(ts), absl::FromUnixSeconds(-5) + absl::Nanoseconds(250));
  EXPECT_TRUE(MessageDifferencer::Equals(ToProtoTime(FromProto(ts)), ts));
}

TEST(TimeConversionTest, DurationRoundTrips) {
  const google::protobuf::Duration neg =
      ToProtoDuration(absl::Milliseconds(-1500));
  EXPECT_EQ(neg.seconds(), -1);
  EXPECT_EQ(neg.nanos(), -500000000);
  const google::protobuf::Duration pos =
      ToProtoDuration(absl::Milliseconds(1500));
  EXPECT_EQ(pos.seconds(), 1);
  EXPECT_EQ(pos.nanos(), 500000000);
  for (absl::Duration d :
       {absl::ZeroDuration(), absl::Nanoseconds(1), absl::Nanoseconds(-1),
        absl::Milliseconds(-1500), absl::Hours(24 * 365),
        -absl::Hours(24 * 365) - absl::Nanoseconds(7)}) {
    SCOPED_TRACE(absl::FormatDuration(d));
    EXPECT_EQ(FromProto(ToProtoDuration(d)), d);
  }
}

// ---- Names -----------------------------------------------------------------

TEST(NamesTest, RolloutStateName) {
  EXPECT_EQ(RolloutStateName(config::v1::ROLLOUT_STATE_UNSPECIFIED),
            "unspecified");
  EXPECT_EQ(RolloutStateName(config::v1::PENDING), "pending");
  EXPECT_EQ(RolloutStateName(config::v1::RUNNING), "running");
  EXPECT_EQ(RolloutStateName(config::v1::PAUSED), "paused");
  EXPECT_EQ(RolloutStateName(config::v1::HALTED), "halted");
  EXPECT_EQ(RolloutStateName(config::v1::ABORTED), "aborted");
  EXPECT_EQ(RolloutStateName(config::v1::COMPLETED), "completed");
  EXPECT_EQ(RolloutStateName(static_cast<RolloutState>(99)), "unspecified");
}

TEST(NamesTest, VerdictName) {
  EXPECT_EQ(VerdictName(config::v1::VERDICT_UNSPECIFIED), "unspecified");
  EXPECT_EQ(VerdictName(config::v1::HOLD), "hold");
  EXPECT_EQ(VerdictName(config::v1::PROMOTE), "promote");
  EXPECT_EQ(VerdictName(config::v1::HALT), "halt");
  EXPECT_EQ(VerdictName(static_cast<Verdict>(99)), "unspecified");
}

TEST(NamesTest, IsTerminal) {
  std::vector<RolloutState> terminal;
  for (int s = config::v1::RolloutState_MIN; s <= config::v1::RolloutState_MAX;
       ++s) {
    if (IsTerminal(static_cast<RolloutState>(s))) {
      terminal.push_back(static_cast<RolloutState>(s));
    }
  }
  EXPECT_THAT(terminal, ElementsAre(config::v1::HALTED, config::v1::ABORTED,
                                    config::v1::COMPLETED));
}

// ---- ValidateId ------------------------------------------------------------

TEST(ValidateIdTest, NamesTheField) {
  EXPECT_OK(ValidateId("a", "host_id"));
  EXPECT_OK(ValidateId(std::string(128, 'a'), "host_id"));
  EXPECT_THAT(ValidateId("", "actor"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("actor: must not be empty")));
  EXPECT_THAT(ValidateId(std::string(200, 'a'), "actor"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("actor: must be at most 128 characters "
                                 "(got 200)")));
  EXPECT_THAT(ValidateId(std::string("a\0z", 3), "actor"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("actor: must match [A-Za-z0-9._:/@-]+ "
                                 "(got \"a\\x00z\")")));
  // What is quoted is cut: 128 escaped bytes would be 512 characters.
  const absl::Status s = ValidateId(std::string(128, '\x01'), "actor");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("\"... (128 bytes))")));
  EXPECT_LT(s.message().size(), 500u);
  // Longer than an id: only the length is said.
  EXPECT_THAT(ValidateId(std::string(1 << 20, '\x01'), "actor"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "actor: must be at most 128 characters (got "
                       "1048576)"));
}

TEST(ValidateTimestampTest, AcceptsItsDocumentedRangeOnly) {
  google::protobuf::Timestamp t;
  EXPECT_OK(ValidateTimestamp(t, "t"));
  for (int64_t s : {int64_t{-62135596800}, int64_t{253402300799}}) {
    t.set_seconds(s);
    t.set_nanos(999999999);
    EXPECT_OK(ValidateTimestamp(t, "t"));
    EXPECT_TRUE(IsValidTimestamp(t));
  }
  for (int64_t s :
       {int64_t{-62135596801}, int64_t{253402300800}, INT64_MAX, INT64_MIN}) {
    t.set_seconds(s);
    t.set_nanos(0);
    EXPECT_THAT(ValidateTimestamp(t, "events[3].time"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("events[3].time: must be between")));
    EXPECT_FALSE(IsValidTimestamp(t));
  }
  t.set_seconds(0);
  for (int32_t n : {-1, 1000000000, INT32_MAX, INT32_MIN}) {
    t.set_nanos(n);
    EXPECT_THAT(ValidateTimestamp(t, "created_at"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("created_at: nanos must be in")));
    EXPECT_FALSE(IsValidTimestamp(t));
  }
}

// IsValidId checks 8 bytes at a time: every byte value at every position of
// ids of every length up to 24 must get the same answer as one at a time.
TEST(IsValidIdTest, AgreesWithTheCharacterClassAtEveryPosition) {
  auto id_char = [](unsigned char c) {
    return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == ':' ||
           c == '/' || c == '@' || c == '-';
  };
  for (size_t len = 1; len <= 24; ++len) {
    for (size_t pos = 0; pos < len; ++pos) {
      for (int c = 0; c < 256; ++c) {
        std::string id(len, 'a');
        id[pos] = static_cast<char>(c);
        ASSERT_EQ(IsValidId(id), id_char(static_cast<unsigned char>(c)))
            << "len " << len << " pos " << pos << " byte " << c;
      }
    }
  }
  EXPECT_FALSE(IsValidId(""));
  EXPECT_TRUE(IsValidId(std::string(128, 'Z')));
  EXPECT_FALSE(IsValidId(std::string(129, 'Z')));
  EXPECT_TRUE(IsValidId("0123456789-./:@_ABCXYZabcxyz"));
}

TEST(FromProtoTest, TimestampsConvertExactlyAtAnyRange) {
  for (int64_t s :
       {int64_t{0}, int64_t{1700000000}, int64_t{-1}, int64_t{-62135596800},
        int64_t{253402300799}, int64_t{8999999999}, int64_t{9000000000},
        int64_t{-9000000000}, int64_t{1} << 40}) {
    for (int32_t n : {0, 1, 999999999}) {
      google::protobuf::Timestamp t;
      t.set_seconds(s);
      t.set_nanos(n);
      EXPECT_EQ(FromProto(t), absl::FromUnixSeconds(s) + absl::Nanoseconds(n))
          << s << "s " << n << "ns";
    }
  }
}

}  // namespace
}  // namespace ringfence
