#include "ringfence/assign.h"

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "ringfence/hash.h"
#include "ringfence/model.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Le;
using ::testing::Lt;

constexpr Track kEarly = config::v1::TRACK_EARLY;
constexpr Track kGeneral = config::v1::TRACK_GENERAL;
constexpr Track kLate = config::v1::TRACK_LATE;
constexpr Track kPinned = config::v1::TRACK_PINNED;
constexpr Track kUnspecified = config::v1::TRACK_UNSPECIFIED;

constexpr absl::string_view kSalt = "rollout-42";

std::string TestDataPath(absl::string_view name) {
  return absl::StrCat(RINGFENCE_TESTDATA_DIR, "/", name);
}

template <typename T>
T ParseOrDie(absl::string_view text) {
  T message;
  if (!google::protobuf::TextFormat::ParseFromString(std::string(text),
                                                     &message)) {
    ADD_FAILURE() << "bad fixture: " << text;
  }
  return message;
}

HostInfo Host(absl::string_view id, std::vector<std::string> labels = {}) {
  HostInfo h;
  h.host_id = std::string(id);
  h.labels = std::move(labels);
  return h;
}

std::string SyntheticHost(int i) { return absl::StrFormat("h%06d.fleet", i); }

// ---- ValidateHostInfo ------------------------------------------------------

HostInfo ValidHostInfo() {
  HostInfo h;
  h.host_id = "host-1.example.com";
  h.tenant = "acme";
  h.labels = {"ring:canary", "site/eu-west@2"};
  h.agent_version = "7.11.0";
  h.platform = "windows";
  return h;
}

TEST(ValidateHostInfoTest, ValidHosts) {
  EXPECT_OK(ValidateHostInfo(ValidHostInfo()));
  EXPECT_OK(ValidateHostInfo(Host("h")));  // only host_id is required
  HostInfo many_labels = Host("h");
  for (int i = 0; i < 64; ++i) many_labels.labels.push_back(absl::StrCat(i));
  EXPECT_OK(ValidateHostInfo(many_labels));
}

struct InvalidHostCase {
  const char* name;
  void (*mutate)(HostInfo* host);
  const char* message;
};

void PrintTo(const InvalidHostCase& c, std::ostream* os) { *os << c.name; }

class InvalidHostInfoTest : public ::testing::TestWithParam<InvalidHostCase> {};

TEST_P(InvalidHostInfoTest, NamesFieldAndReason) {
  HostInfo host = ValidHostInfo();
  GetParam().mutate(&host);
  EXPECT_THAT(ValidateHostInfo(host),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(GetParam().message)));
}

const InvalidHostCase kInvalidHosts[] = {
    {"EmptyHostId", [](HostInfo* h) { h->host_id.clear(); },
     "host_id: must not be empty"},
    {"HostIdWithSpace", [](HostInfo* h) { h->host_id = "host 1"; },
     "host_id: must match [A-Za-z0-9._:/@-]+ (got \"host 1\")"},
    {"HostIdTooLong", [](HostInfo* h) { h->host_id = std::string(129, 'h'); },
     "host_id: must be at most 128 characters (got 129)"},
    {"BadTenant", [](HostInfo* h) { h->tenant = "acme corp"; },
     "tenant: must match [A-Za-z0-9._:/@-]+ (got \"acme corp\")"},
    {"TooManyLabels", [](HostInfo* h) { h->labels.assign(65, "ring:canary"); },
     "labels: at most 64 labels (got 65)"},
    {"EmptyLabel", [](HostInfo* h) { h->labels[1].clear(); },
     "labels[1]: must not be empty"},
    {"BadLabel", [](HostInfo* h) { h->labels.push_back("ring\tx"); },
     "labels[2]: must match [A-Za-z0-9._:/@-]+ (got \"ring\\tx\")"},
    {"NonNumericAgentVersion", [](HostInfo* h) { h->agent_version = "7.x"; },
     "agent_version: must be a dotted version like 7.11.0 (got \"7.x\")"},
    {"AgentVersionTooManyParts",
     [](HostInfo* h) { h->agent_version = "7.11.0.1.2"; },
     "agent_version: must be a dotted version like 7.11.0 "
     "(got \"7.11.0.1.2\")"},
    {"AgentVersionEscaped", [](HostInfo* h) { h->agent_version = "7\n"; },
     "agent_version: must be a dotted version like 7.11.0 (got \"7\\n\")"},
    {"BadPlatform", [](HostInfo* h) { h->platform = "win 11"; },
     "platform: must match [A-Za-z0-9._:/@-]+ (got \"win 11\")"},
};

INSTANTIATE_TEST_SUITE_P(
    Fields, InvalidHostInfoTest, ::testing::ValuesIn(kInvalidHosts),
    [](const ::testing::TestParamInfo<InvalidHostCase>& info) {
      return std::string(info.param.name);
    });

// ---- IsTargeted ------------------------------------------------------------

HostInfo Agent(absl::string_view version, absl::string_view platform = "") {
  HostInfo h = Host("h");
  h.agent_version = std::string(version);
  h.platform = std::string(platform);
  return h;
}

TEST(IsTargetedTest, EmptyTargetingTargetsEveryone) {
  const Targeting any;
  EXPECT_TRUE(IsTargeted(any, Agent("")));
  EXPECT_TRUE(IsTargeted(any, Agent("1")));
  EXPECT_TRUE(IsTargeted(any, Agent("99.0", "plan9")));
}

TEST(IsTargetedTest, MinVersionIsInclusive) {
  const Targeting t = ParseOrDie<Targeting>(R"pb(min_agent_version: "7.11")pb");
  EXPECT_FALSE(IsTargeted(t, Agent("7.10.99")));
  EXPECT_FALSE(IsTargeted(t, Agent("6")));
  EXPECT_TRUE(IsTargeted(t, Agent("7.11")));
  EXPECT_TRUE(IsTargeted(t, Agent("7.11.0")));
  EXPECT_TRUE(IsTargeted(t, Agent("7.11.0.1")));
  EXPECT_TRUE(IsTargeted(t, Agent("10")));
}

TEST(IsTargetedTest, MaxVersionIsExclusive) {
  const Targeting t = ParseOrDie<Targeting>(R"pb(max_agent_version: "7.16")pb");
  EXPECT_TRUE(IsTargeted(t, Agent("7.15.99")));
  EXPECT_TRUE(IsTargeted(t, Agent("1")));
  EXPECT_FALSE(IsTargeted(t, Agent("7.16")));
  EXPECT_FALSE(IsTargeted(t, Agent("7.16.0")));
  EXPECT_FALSE(IsTargeted(t, Agent("7.16.0.1")));
  EXPECT_FALSE(IsTargeted(t, Agent("8")));
}

TEST(IsTargetedTest, MissingAgentVersionIsNeverInsideAVersionBound) {
  for (absl::string_view text :
       {R"pb(min_agent_version: "0")pb", R"pb(max_agent_version: "999")pb",
        R"pb(min_agent_version: "1" max_agent_version: "2")pb"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(IsTargeted(ParseOrDie<Targeting>(text), Agent("", "linux")));
  }
}

TEST(IsTargetedTest, Platforms) {
  const Targeting t = ParseOrDie<Targeting>(R"pb(
    platforms: "windows"
    platforms: "linux"
  )pb");
  EXPECT_TRUE(IsTargeted(t, Agent("", "windows")));
  EXPECT_TRUE(IsTargeted(t, Agent("7.1", "linux")));
  EXPECT_FALSE(IsTargeted(t, Agent("7.1", "macos")));
  // A host that does not report its platform is outside a platform list.
  EXPECT_FALSE(IsTargeted(t, Agent("7.1", "")));
}

TEST(IsTargetedTest, VersionAndPlatformMustBothMatch) {
  const Targeting t = ParseOrDie<Targeting>(R"pb(
    min_agent_version: "7.11"
    max_agent_version: "8"
    platforms: "linux"
  )pb");
  EXPECT_TRUE(IsTargeted(t, Agent("7.11.3", "linux")));
  EXPECT_FALSE(IsTargeted(t, Agent("7.11.3", "windows")));
  EXPECT_FALSE(IsTargeted(t, Agent("7.10", "linux")));
  EXPECT_FALSE(IsTargeted(t, Agent("8.0", "linux")));
  EXPECT_FALSE(IsTargeted(t, Agent("", "linux")));
}

// ---- TenantTracks ----------------------------------------------------------

TEST(TenantTracksTest, DefaultIsGeneral) {
  const TenantTracks empty;
  EXPECT_EQ(empty.TrackOf("acme"), kGeneral);
  EXPECT_EQ(empty.TrackOf(""), kGeneral);
}

TEST(TenantTracksTest, TracksFromFleetConfig) {
  const FleetConfig fleet = ParseOrDie<FleetConfig>(R"pb(
    tenants { name: "acme" track: TRACK_EARLY }
    tenants { name: "hospital-7" track: TRACK_LATE }
    tenants { name: "bank" track: TRACK_PINNED }
    tenants { name: "shop" track: TRACK_GENERAL }
    tenants { name: "unset" }
  )pb");
  ASSERT_OK(ValidateFleetConfig(fleet));
  const TenantTracks tracks(fleet);
  EXPECT_EQ(tracks.TrackOf("acme"), kEarly);
  EXPECT_EQ(tracks.TrackOf("hospital-7"), kLate);
  EXPECT_EQ(tracks.TrackOf("bank"), kPinned);
  EXPECT_EQ(tracks.TrackOf("shop"), kGeneral);
  EXPECT_EQ(tracks.TrackOf("unset"), kGeneral);    // UNSPECIFIED => GENERAL
  EXPECT_EQ(tracks.TrackOf("unknown"), kGeneral);  // not listed
  EXPECT_EQ(tracks.TrackOf("ACME"), kGeneral);     // names are exact
  EXPECT_EQ(tracks.TrackOf(""), kGeneral);
}

// ---- AudienceIndex ---------------------------------------------------------

// Stage 0 hosts + label, 1 early track, 2 label + host, 3 1 %, 4 50 % + a
// host, 5 100 %.
Plan TestPlan() {
  return ParseOrDie<Plan>(R"pb(
    name: "assign-test"
    stages {
      name: "dogfood"
      audience { hosts: "dog-1" hosts: "dog-2" labels: "ring:dogfood" }
      bake_time { seconds: 60 }
    }
    stages {
      name: "early"
      audience { early_track: true }
      bake_time { seconds: 60 }
    }
    stages {
      name: "canary"
      audience { labels: "ring:canary" labels: "ring:dogfood" hosts: "can-1" }
      bake_time { seconds: 60 }
    }
    stages {
      name: "1pct"
      audience { percent: 1 }
      bake_time { seconds: 60 }
    }
    stages {
      name: "half"
      audience { percent: 50 hosts: "listed-in-half" }
      bake_time { seconds: 60 }
    }
    stages {
      name: "fleet"
      audience { percent: 100 early_track: true }
      bake_time { seconds: 60 }
    }
  )pb");
}

constexpr int kDogfood = 0;
constexpr int kEarlyStage = 1;
constexpr int kCanary = 2;
constexpr int kOnePct = 3;
constexpr int kHalf = 4;
constexpr int kFleet = 5;

// The first synthetic host id (prefix + number) whose bucket under `salt` is
// in [lo, hi).
std::string FindHost(absl::string_view prefix, absl::string_view salt,
                     uint32_t lo, uint32_t hi) {
  const uint64_t seed = SaltSeed(salt);
  for (int i = 0; i < 10000000; ++i) {
    std::string id = absl::StrCat(prefix, i);
    const uint32_t b = BucketOf(seed, id);
    if (b >= lo && b < hi) return id;
  }
  ADD_FAILURE() << "no host found";
  return "";
}

class AudienceIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(ValidatePlan(plan_));
    index_ = AudienceIndex::Build(plan_, kSalt);
    ASSERT_NE(index_, nullptr);
  }

  int Place(const HostInfo& host, Track track = kGeneral) const {
    return index_->Place(host, track);
  }

  Plan plan_ = TestPlan();
  std::unique_ptr<const AudienceIndex> index_;
  const uint32_t one_pct_ = PercentToBucketLimit(1);
  const uint32_t half_ = PercentToBucketLimit(50);
};

TEST_F(AudienceIndexTest, Shape) {
  EXPECT_EQ(index_->num_stages(), 6);
  EXPECT_EQ(index_->late_stage(), 6);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(index_->BucketOf(SyntheticHost(i)),
              BucketOf(SaltSeed(kSalt), SyntheticHost(i)));
  }
}

TEST_F(AudienceIndexTest, ExplicitHosts) {
  EXPECT_EQ(Place(Host("dog-1")), kDogfood);
  EXPECT_EQ(Place(Host("dog-2"), kEarly), kDogfood);
  EXPECT_EQ(Place(Host("dog-2"), kUnspecified), kDogfood);
  EXPECT_EQ(Place(Host("can-1")), kCanary);
}

TEST_F(AudienceIndexTest, Labels) {
  const std::string other = FindHost("lab-", kSalt, half_, kNumBuckets);
  EXPECT_EQ(Place(Host(other, {"ring:dogfood"})), kDogfood);
  EXPECT_EQ(Place(Host(other, {"ring:canary"})), kCanary);
  EXPECT_EQ(Place(Host(other, {"x", "y", "ring:canary", "z"})), kCanary);
  // A label listed in stages 0 and 2 places in 0.
  EXPECT_EQ(Place(Host(other, {"ring:canary", "ring:dogfood"})), kDogfood);
  // Labels are exact.
  EXPECT_EQ(Place(Host(other, {"ring:Canary", "ring"})), kFleet);
}

TEST_F(AudienceIndexTest, EarlyTrack) {
  const std::string early = FindHost("early-", kSalt, half_, kNumBuckets);
  EXPECT_EQ(Place(Host(early), kEarly), kEarlyStage);
  EXPECT_EQ(Place(Host(early), kGeneral), kFleet);
  EXPECT_EQ(Place(Host(early, {"ring:dogfood"}), kEarly), kDogfood);
  EXPECT_EQ(Place(Host(early, {"ring:canary"}), kEarly), kEarlyStage);
  EXPECT_EQ(Place(Host("can-1"), kEarly), kEarlyStage);
  // Bucketed into 1 % too, but the early stage comes first.
  const std::string lucky = FindHost("early-", kSalt, 0, one_pct_);
  EXPECT_EQ(Place(Host(lucky), kEarly), kEarlyStage);
}

TEST_F(AudienceIndexTest, PercentStagesByBucket) {
  const std::string low = FindHost("p-", kSalt, 0, one_pct_);
  const std::string mid = FindHost("p-", kSalt, one_pct_, half_);
  const std::string high = FindHost("p-", kSalt, half_, kNumBuckets);
  // Just below and at the exclusive limit of the 1 % stage.
  const std::string below = FindHost("p-", kSalt, one_pct_ - 100, one_pct_);
  const std::string at = FindHost("p-", kSalt, one_pct_, one_pct_ + 100);
  for (Track track : {kGeneral, kUnspecified}) {
    SCOPED_TRACE(track);
    EXPECT_EQ(Place(Host(low), track), kOnePct);
    EXPECT_EQ(Place(Host(mid), track), kHalf);
    EXPECT_EQ(Place(Host(high), track), kFleet);
    EXPECT_EQ(Place(Host(below), track), kOnePct);
    EXPECT_EQ(Place(Host(at), track), kHalf);
  }
}

TEST_F(AudienceIndexTest, FirstMatchingStageWins) {
  // Listed in stage 4, but bucketed into stage 3 (1 %).
  const std::string listed_low = FindHost("listed-", kSalt, 0, one_pct_);
  // Listed in stage 4, bucketed into stage 5.
  const std::string listed_high =
      FindHost("listed-", kSalt, half_, kNumBuckets);
  Plan plan = plan_;
  plan.mutable_stages(kHalf)->mutable_audience()->add_hosts(listed_low);
  plan.mutable_stages(kHalf)->mutable_audience()->add_hosts(listed_high);
  ASSERT_OK(ValidatePlan(plan));
  auto index = AudienceIndex::Build(plan, kSalt);
  EXPECT_EQ(index->Place(Host(listed_low), kGeneral), kOnePct);
  EXPECT_EQ(index->Place(Host(listed_high), kGeneral), kHalf);
  // A label of stage 2 beats the host list of stage 4 and the 1 % bucket.
  EXPECT_EQ(index->Place(Host(listed_low, {"ring:canary"}), kGeneral), kCanary);
  // The host list of stage 0 beats everything.
  EXPECT_EQ(index->Place(Host("dog-1", {"ring:canary"}), kEarly), kDogfood);
}

TEST_F(AudienceIndexTest, PinnedIsNeverPlaced) {
  EXPECT_EQ(Place(Host("dog-1"), kPinned), -1);
  EXPECT_EQ(Place(Host("x", {"ring:dogfood"}), kPinned), -1);
  EXPECT_EQ(Place(Host(FindHost("p-", kSalt, 0, one_pct_)), kPinned), -1);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(Place(Host(SyntheticHost(i)), kPinned), -1);
  }
}

TEST_F(AudienceIndexTest, LateIsPlacedOnlyInTheLateStage) {
  EXPECT_EQ(Place(Host("dog-1"), kLate), index_->late_stage());
  EXPECT_EQ(Place(Host("x", {"ring:dogfood"}), kLate), index_->late_stage());
  EXPECT_EQ(Place(Host(FindHost("p-", kSalt, 0, one_pct_)), kLate),
            index_->late_stage());
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(Place(Host(SyntheticHost(i)), kLate), plan_.stages_size());
  }
}

TEST_F(AudienceIndexTest, EveryEarlyOrGeneralHostIsPlacedByAValidPlan) {
  for (int i = 0; i < 10000; ++i) {
    for (Track track : {kEarly, kGeneral, kUnspecified}) {
      const int stage = Place(Host(SyntheticHost(i)), track);
      ASSERT_GE(stage, 0) << SyntheticHost(i);
      ASSERT_LE(stage, kFleet) << SyntheticHost(i);
    }
  }
}

TEST_F(AudienceIndexTest, OnePercentStageGetsOnePercentOfTheFleet) {
  constexpr int kHosts = 100000;
  std::vector<int> per_stage(plan_.stages_size(), 0);
  for (int i = 0; i < kHosts; ++i) {
    const int stage = Place(Host(SyntheticHost(i)), kGeneral);
    ASSERT_GE(stage, kOnePct);
    ++per_stage[stage];
  }
  // Binomial(100000, 0.01): mean 1000, sd 31.5; allow 5 sd.
  EXPECT_THAT(per_stage[kOnePct], AllOf(Ge(843), Le(1157)));
  // Binomial(100000, 0.49): sd 158; allow 5 sd.
  EXPECT_THAT(per_stage[kHalf], AllOf(Ge(49000 - 790), Le(49000 + 790)));
  EXPECT_EQ(per_stage[kOnePct] + per_stage[kHalf] + per_stage[kFleet], kHosts);
}

TEST(AudienceIndexSaltTest, SameSaltSamePlacementOtherSaltDifferent) {
  const Plan plan = TestPlan();
  auto a1 = AudienceIndex::Build(plan, "salt-a");
  auto a2 = AudienceIndex::Build(Plan(plan), std::string("salt-a"));
  auto b = AudienceIndex::Build(plan, "salt-b");
  constexpr int kHosts = 100000;
  int differ = 0;
  int one_pct_a = 0;
  int one_pct_both = 0;
  for (int i = 0; i < kHosts; ++i) {
    const HostInfo host = Host(SyntheticHost(i));
    const int pa = a1->Place(host, kGeneral);
    ASSERT_EQ(a2->Place(host, kGeneral), pa) << host.host_id;
    ASSERT_EQ(a2->BucketOf(host.host_id), a1->BucketOf(host.host_id));
    const int pb = b->Place(host, kGeneral);
    differ += pa != pb;
    one_pct_a += pa == kOnePct;
    one_pct_both += pa == kOnePct && pb == kOnePct;
  }
  // Independent salts: stage 4 vs 5 is a coin flip, so ~50 % differ.
  EXPECT_THAT(differ, AllOf(Ge(45000), Le(55000)));
  // ~1 % of the 1 % stage is shared (mean 10).
  EXPECT_THAT(one_pct_both, Lt(one_pct_a / 10));
}

TEST(AudienceIndexNoMatchTest, HostMatchingNoSelectorIsNotPlaced) {
  // ValidatePlan requires a final 100 % stage, which places every early or
  // general host; Build() itself does not. Without percent stages, a host
  // matching no selector is never placed.
  const Plan plan = ParseOrDie<Plan>(R"pb(
    stages {
      name: "dogfood"
      audience { hosts: "dog-1" labels: "ring:dogfood" }
      bake_time { seconds: 60 }
    }
    stages {
      name: "early"
      audience { early_track: true }
      bake_time { seconds: 60 }
    }
  )pb");
  auto index = AudienceIndex::Build(plan, kSalt);
  EXPECT_EQ(index->Place(Host("other"), kGeneral), -1);
  EXPECT_EQ(index->Place(Host("other", {"ring:canary"}), kGeneral), -1);
  EXPECT_EQ(index->Place(Host("other"), kUnspecified), -1);
  EXPECT_EQ(index->Place(Host("other"), kEarly), 1);
  EXPECT_EQ(index->Place(Host("other", {"ring:dogfood"}), kGeneral), 0);
  EXPECT_EQ(index->Place(Host("other"), kLate), 2);

  const Plan no_early = ParseOrDie<Plan>(R"pb(
    stages {
      name: "dogfood"
      audience { hosts: "dog-1" }
      bake_time { seconds: 60 }
    }
  )pb");
  EXPECT_EQ(AudienceIndex::Build(no_early, kSalt)->Place(Host("e"), kEarly),
            -1);
}

TEST(AudienceIndexDefaultPlanTest, PlacesByTheExamplePlan) {
  Plan plan;
  ASSERT_OK(LoadMessageFile(TestDataPath("default_plan.textproto"), &plan));
  ASSERT_OK(ValidatePlan(plan));
  auto index = AudienceIndex::Build(plan, kSalt);
  const uint32_t one_pct = PercentToBucketLimit(1);
  const std::string low = FindHost("d-", kSalt, 0, one_pct);
  const std::string high = FindHost("d-", kSalt, one_pct, kNumBuckets);
  EXPECT_EQ(index->Place(Host(high, {"ring:dogfood"}), kGeneral), 0);
  EXPECT_EQ(index->Place(Host(high), kEarly), 1);
  EXPECT_EQ(index->Place(Host(low), kGeneral), 2);
  EXPECT_EQ(index->Place(Host(high), kGeneral), 3);
  EXPECT_EQ(index->Place(Host(low), kLate), 4);
  EXPECT_EQ(index->Place(Host(low, {"ring:dogfood"}), kPinned), -1);
}

}  // namespace
}  // namespace ringfence

namespace ringfence {
namespace {

// CompiledTargeting must answer exactly like IsTargeted.
TEST(CompiledTargetingTest, AgreesWithIsTargeted) {
  const std::vector<std::pair<std::string, std::string>> bounds = {
      {"", ""}, {"7.11", ""}, {"", "7.12"}, {"7.11.0", "7.11.5"}, {"7", "8"}};
  const std::vector<std::string> versions = {
      "",       "7",      "7.10.9", "7.11",    "7.11.0",
      "7.11.4", "7.11.5", "7.12",   "8.0.0.1", "6.99.99.99"};
  for (const auto& [min, max] : bounds) {
    for (const std::vector<std::string>& platforms :
         std::vector<std::vector<std::string>>{
             {}, {"windows"}, {"linux", "macos"}}) {
      Targeting t;
      t.set_min_agent_version(min);
      t.set_max_agent_version(max);
      for (const auto& p : platforms) t.add_platforms(p);
      const CompiledTargeting compiled(t);
      for (const std::string& v : versions) {
        for (const std::string platform : {"windows", "linux", ""}) {
          HostInfo h;
          h.host_id = "h";
          h.agent_version = v;
          h.platform = platform;
          EXPECT_EQ(compiled.Matches(h), IsTargeted(t, h))
              << "min=" << min << " max=" << max << " v=" << v
              << " platform=" << platform;
        }
      }
    }
  }
}

}  // namespace
}  // namespace ringfence
