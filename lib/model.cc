#include "ringfence/model.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "ringfence/approvals.h"
#include "ringfence/error_text.h"
#include "ringfence/hash.h"
#include "ringfence/policy.h"
#include "ringfence/status_macros.h"

namespace ringfence {
namespace {

using ::google::protobuf::Duration;

// Collects text-format parse errors so they can be returned as a Status.
class ErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (first_.empty()) {
      first_ = absl::StrFormat("line %d, column %d: %s", line + 1, column + 1,
                               message);
    }
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

absl::Status Invalid(absl::string_view field, absl::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", reason));
}

// [A-Za-z0-9._:/@-] as a table: ids are checked for every telemetry event.
struct IdCharTable {
  constexpr IdCharTable() : ok() {
    for (int c = 0; c < 256; ++c) {
      ok[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '/' || c == '@' || c == '-';
    }
  }
  bool ok[256];
};
constexpr IdCharTable kIdChars;

bool IsIdChar(char c) { return kIdChars.ok[static_cast<unsigned char>(c)]; }

absl::Status CheckMaxBytes(absl::string_view value, size_t max,
                           absl::string_view field) {
  if (value.size() <= max) return absl::OkStatus();
  return Invalid(field, absl::StrCat("must be at most ", max, " bytes (got ",
                                     value.size(), ")"));
}

absl::Status ValidatePacing(const Pacing& p, absl::string_view path) {
  if (!std::isfinite(p.growth_per_healthy_host()) ||
      p.growth_per_healthy_host() < 0 || p.growth_per_healthy_host() > 100) {
    return Invalid(absl::StrCat(path, ".growth_per_healthy_host"),
                   absl::StrCat("must be in [0, 100] (got ",
                                p.growth_per_healthy_host(), ")"));
  }
  if (p.initial_hosts() > 1000000) {
    return Invalid(absl::StrCat(path, ".initial_hosts"),
                   "must be at most 1000000");
  }
  return internal::CheckDuration(p.healthy_after(),
                                 absl::StrCat(path, ".healthy_after"), false);
}

}  // namespace

namespace internal {

constexpr int64_t kMaxDurationSeconds = 365LL * 24 * 3600;  // one year

absl::Status CheckDuration(const Duration& d, absl::string_view field,
                           bool positive) {
  if (d.seconds() < 0 || d.nanos() < 0) {
    return Invalid(field, "must not be negative");
  }
  if (d.nanos() > 999999999) {
    return Invalid(field, "nanos must be in [0, 999999999]");
  }
  if (positive && d.seconds() == 0 && d.nanos() == 0) {
    return Invalid(field, "must be > 0");
  }
  if (d.seconds() > kMaxDurationSeconds ||
      (d.seconds() == kMaxDurationSeconds && d.nanos() > 0)) {
    return Invalid(field, absl::StrCat("must be at most one year (got ",
                                       d.seconds(), "s)"));
  }
  return absl::OkStatus();
}

}  // namespace internal

namespace {
// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
constexpr int64_t kMinTimestampSeconds = -62135596800;
constexpr int64_t kMaxTimestampSeconds = 253402300799;
}  // namespace

bool IsValidTimestamp(const google::protobuf::Timestamp& t) {
  return t.seconds() >= kMinTimestampSeconds &&
         t.seconds() <= kMaxTimestampSeconds && t.nanos() >= 0 &&
         t.nanos() <= 999999999;
}

absl::Status ValidateTimestamp(const google::protobuf::Timestamp& t,
                               absl::string_view field) {
  if (t.nanos() < 0 || t.nanos() > 999999999) {
    return Invalid(field, absl::StrCat("nanos must be in [0, 999999999] (got ",
                                       t.nanos(), ")"));
  }
  if (t.seconds() < kMinTimestampSeconds ||
      t.seconds() > kMaxTimestampSeconds) {
    return Invalid(field,
                   absl::StrCat("must be between 0001-01-01T00:00:00Z and "
                                "9999-12-31T23:59:59Z (got seconds ",
                                t.seconds(), ")"));
  }
  return absl::OkStatus();
}

bool IsValidSignalName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

absl::Status ValidateSignalName(absl::string_view name,
                                absl::string_view field) {
  if (name.empty()) return Invalid(field, "must not be empty");
  if (name.size() > 64) {
    return Invalid(field, absl::StrCat("must be at most 64 characters (got ",
                                       name.size(), ")"));
  }
  if (!IsValidSignalName(name)) {
    return Invalid(field, absl::StrCat("must match [a-z0-9_]{1,64} (got ",
                                       QuoteForError(name), ")"));
  }
  return absl::OkStatus();
}

absl::Status ParseTextOrJson(absl::string_view text,
                             google::protobuf::Message* message) {
  absl::string_view stripped = absl::StripLeadingAsciiWhitespace(text);
  if (absl::StartsWith(stripped, "{")) {
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = false;
    auto status = google::protobuf::util::JsonStringToMessage(std::string(text),
                                                              message, options);
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid JSON for ", message->GetTypeName(), ": ",
          CutForError(status.message().ToString(), kMaxParserMessageBytes)));
    }
    return absl::OkStatus();
  }
  google::protobuf::TextFormat::Parser parser;
  ErrorCollector errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), message)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid text proto for ", message->GetTypeName(), ": ",
                     CutForError(errors.first(), kMaxParserMessageBytes)));
  }
  return absl::OkStatus();
}

std::string ResolvePath(const std::string& config_file,
                        const std::string& path) {
  const std::filesystem::path p(path);
  if (p.is_absolute()) return path;
  return (std::filesystem::path(config_file).parent_path() / p).string();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::InternalError(absl::StrCat(path, ": read error"));
  return buffer.str();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents, int mode) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                        static_cast<mode_t>(mode));
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat(tmp, ": cannot create: ", std::strerror(errno)));
  }
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n =
        ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  const bool ok = done == contents.size() && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat(path, ": cannot write"));
  }
  return absl::OkStatus();
}

absl::Status LoadMessageFile(const std::string& path,
                             google::protobuf::Message* message) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open (not a regular file)"));
  }
  ASSIGN_OR_RETURN(const std::string text, ReadFileToString(path));
  absl::Status s = ParseTextOrJson(text, message);
  if (!s.ok()) return PrefixStatus(path, s);
  return absl::OkStatus();
}

// Whether all 8 bytes of `w` are id characters, 8 at a time (SWAR): ids are
// checked for every telemetry event and assignment request. For bytes below
// 0x80, adding 0x80 - lo sets a byte's top bit iff the byte is >= lo, and no
// byte carries into the next.
bool AllIdChars8(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kTop = 0x8080808080808080ULL;
  if (w & kTop) return false;
  auto ge = [w](unsigned lo) { return w + (0x80 - lo) * kOnes; };
  auto in = [&](unsigned lo, unsigned hi) { return ge(lo) & ~ge(hi + 1); };
  // "-./0-9:" is 0x2D..0x3A, "@A-Z" 0x40..0x5A, '_' 0x5F, "a-z" 0x61..0x7A.
  const uint64_t ok =
      in(0x2D, 0x3A) | in(0x40, 0x5A) | in(0x5F, 0x5F) | in(0x61, 0x7A);
  return (ok & kTop) == kTop;
}

bool IsValidId(absl::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  const char* p = id.data();
  size_t n = id.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if (!AllIdChars8(w)) return false;
  }
  for (; n > 0; ++p, --n) {
    if (!IsIdChar(*p)) return false;
  }
  return true;
}

absl::Status ValidateRequiredText(absl::string_view value,
                                  absl::string_view field) {
  if (value.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must not be empty"));
  }
  if (value.size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": must be at most ", kMaxReasonBytes, " characters"));
  }
  return absl::OkStatus();
}

absl::Status ValidateId(absl::string_view id, absl::string_view field) {
  if (id.empty()) return Invalid(field, "must not be empty");
  if (id.size() > 128) {
    return Invalid(field, absl::StrCat("must be at most 128 characters (got ",
                                       id.size(), ")"));
  }
  for (char c : id) {
    if (!IsIdChar(c)) {
      return Invalid(field, absl::StrCat("must match [A-Za-z0-9._:/@-]+ (got ",
                                         QuoteForError(id), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePlan(const Plan& plan) {
  if (!plan.name().empty()) RETURN_IF_ERROR(ValidateId(plan.name(), "name"));
  if (plan.stages_size() == 0) {
    return Invalid("stages", "must have at least one stage");
  }
  if (plan.stages_size() > kMaxStages) {
    return Invalid("stages",
                   absl::StrCat("at most ", kMaxStages, " stages (got ",
                                plan.stages_size(), ")"));
  }
  if (plan.has_policy())
    RETURN_IF_ERROR(ValidateGatePolicy(plan.policy(), "policy"));
  // The bounds on repeated fields first: the checks below are linear in
  // them.
  int plan_hosts = 0;
  for (int i = 0; i < plan.stages_size(); ++i) {
    const Audience& a = plan.stages(i).audience();
    if (a.labels_size() > kMaxAudienceLabels) {
      return Invalid(absl::StrCat("stages[", i, "].audience.labels"),
                     absl::StrCat("at most ", kMaxAudienceLabels,
                                  " labels (got ", a.labels_size(), ")"));
    }
    plan_hosts += a.hosts_size();
    if (plan_hosts > kMaxPlanHosts) {
      return Invalid(absl::StrCat("stages[", i, "].audience.hosts"),
                     absl::StrCat("at most ", kMaxPlanHosts,
                                  " hosts in all stages together (got ",
                                  plan_hosts, " up to this stage)"));
    }
  }
  absl::flat_hash_set<std::string> names;
  absl::flat_hash_set<std::string> hosts;
  int last_percent_stage = -1;
  for (int i = 0; i < plan.stages_size(); ++i) {
    const Stage& s = plan.stages(i);
    const std::string p = absl::StrCat("stages[", i, "]");
    RETURN_IF_ERROR(ValidateId(s.name(), absl::StrCat(p, ".name")));
    if (!names.insert(s.name()).second) {
      return Invalid(
          absl::StrCat(p, ".name"),
          absl::StrCat("duplicate stage name ", QuoteForError(s.name())));
    }
    const Audience& a = s.audience();
    if (a.hosts_size() == 0 && a.labels_size() == 0 && !a.early_track() &&
        a.percent() == 0) {
      return Invalid(absl::StrCat(p, ".audience"),
                     "must select hosts (hosts, labels, early_track or "
                     "percent)");
    }
    for (int h = 0; h < a.hosts_size(); ++h) {
      const std::string f = absl::StrCat(p, ".audience.hosts[", h, "]");
      RETURN_IF_ERROR(ValidateId(a.hosts(h), f));
      if (!hosts.insert(a.hosts(h)).second) {
        return Invalid(f, absl::StrCat("host ", QuoteForError(a.hosts(h)),
                                       " is listed twice in the plan"));
      }
    }
    for (int l = 0; l < a.labels_size(); ++l) {
      RETURN_IF_ERROR(ValidateId(a.labels(l),
                                 absl::StrCat(p, ".audience.labels[", l, "]")));
    }
    const std::string pf = absl::StrCat(p, ".audience.percent");
    if (!std::isfinite(a.percent()) || a.percent() < 0 || a.percent() > 100) {
      return Invalid(
          pf, absl::StrCat("must be in [0, 100] (got ", a.percent(), ")"));
    }
    if (a.percent() > 0) {
      if (PercentToBucketLimit(a.percent()) == 0) {
        return Invalid(pf, absl::StrCat("must be at least 0.0001 (got ",
                                        a.percent(), ")"));
      }
      // Compare bucket limits, not raw values: a step finer than the
      // 0.0001 % resolution would add no host.
      if (last_percent_stage >= 0 &&
          PercentToBucketLimit(a.percent()) <=
              PercentToBucketLimit(
                  plan.stages(last_percent_stage).audience().percent())) {
        return Invalid(
            pf, absl::StrCat(
                    "must be greater than stages[", last_percent_stage,
                    "].audience.percent (",
                    plan.stages(last_percent_stage).audience().percent(), ")"));
      }
      last_percent_stage = i;
    }
    RETURN_IF_ERROR(internal::CheckDuration(
        s.bake_time(), absl::StrCat(p, ".bake_time"), true));
    RETURN_IF_ERROR(ValidatePacing(s.pacing(), absl::StrCat(p, ".pacing")));
    if (!std::isfinite(s.promote_max_relative_risk()) ||
        (s.promote_max_relative_risk() != 0 &&
         s.promote_max_relative_risk() <= 1)) {
      return Invalid(absl::StrCat(p, ".promote_max_relative_risk"),
                     "must be 0 (off) or > 1: a bound of 1 or less would "
                     "hold an update with no effect forever");
    }
    if (s.has_policy()) {
      RETURN_IF_ERROR(
          ValidateGatePolicy(s.policy(), absl::StrCat(p, ".policy")));
    }
  }
  const int last = plan.stages_size() - 1;
  if (plan.stages(last).audience().percent() != 100) {
    return Invalid(absl::StrCat("stages[", last, "].audience.percent"),
                   absl::StrCat("the last stage must reach 100 (got ",
                                plan.stages(last).audience().percent(), ")"));
  }
  RETURN_IF_ERROR(internal::CheckDuration(plan.late_track().extra_bake(),
                                          "late_track.extra_bake", false));
  RETURN_IF_ERROR(internal::CheckDuration(plan.late_track().bake_time(),
                                          "late_track.bake_time", false));
  RETURN_IF_ERROR(internal::CheckDuration(plan.post_completion_watch(),
                                          "post_completion_watch", false));
  // Each field is within its bound; together they must be too.
  if (const size_t bytes = plan.ByteSizeLong(); bytes > kMaxPlanBytes) {
    return Invalid(
        "stages",
        absl::StrCat("the plan is ", bytes,
                     " bytes serialized; a plan may be at most ", kMaxPlanBytes,
                     " (fewer stages, labels, hosts or reasons)"));
  }
  return ValidateEffectivePolicies(plan);
}

absl::Status ValidateRelease(const Release& release) {
  RETURN_IF_ERROR(ValidateId(release.id(), "id"));
  RETURN_IF_ERROR(ValidateId(release.content_type(), "content_type"));
  RETURN_IF_ERROR(
      CheckMaxBytes(release.version(), kMaxVersionBytes, "version"));
  const std::string& d = release.digest_sha256();
  if (d.size() != 64) {
    return Invalid("digest_sha256",
                   absl::StrCat("must be 64 lower-case hex characters (got ",
                                d.size(), " characters)"));
  }
  for (char c : d) {
    if (!(absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
          (c >= 'a' && c <= 'f'))) {
      return Invalid("digest_sha256", "must be lower-case hex");
    }
  }
  if (release.size_bytes() == 0) return Invalid("size_bytes", "must be > 0");
  if (release.size_bytes() > kMaxReleaseSizeBytes) {
    return Invalid("size_bytes",
                   absl::StrCat("must be at most ", kMaxReleaseSizeBytes,
                                " (1 TiB; got ", release.size_bytes(), ")"));
  }
  RETURN_IF_ERROR(
      CheckMaxBytes(release.signature(), kMaxSignatureBytes, "signature"));
  RETURN_IF_ERROR(
      CheckMaxBytes(release.fetch_url(), kMaxFetchUrlBytes, "fetch_url"));
  for (size_t i = 0; i < release.fetch_url().size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(release.fetch_url()[i]);
    if (c < 0x20 || c == 0x7f) {
      return Invalid("fetch_url",
                     absl::StrCat("must not contain control characters (got ",
                                  QuoteForError(release.fetch_url()), ")"));
    }
  }
  if (release.has_created_at()) {
    RETURN_IF_ERROR(ValidateTimestamp(release.created_at(), "created_at"));
  }
  const Targeting& t = release.targeting();
  if (!t.min_agent_version().empty() &&
      !IsValidAgentVersion(t.min_agent_version())) {
    return Invalid("targeting.min_agent_version",
                   absl::StrCat("must be a dotted version like 7.11.0 (got ",
                                QuoteForError(t.min_agent_version()), ")"));
  }
  if (!t.max_agent_version().empty() &&
      !IsValidAgentVersion(t.max_agent_version())) {
    return Invalid("targeting.max_agent_version",
                   absl::StrCat("must be a dotted version like 7.11.0 (got ",
                                QuoteForError(t.max_agent_version()), ")"));
  }
  if (!t.min_agent_version().empty() && !t.max_agent_version().empty() &&
      CompareAgentVersions(t.min_agent_version(), t.max_agent_version()) >= 0) {
    return Invalid("targeting.max_agent_version",
                   absl::StrCat("must be greater than min_agent_version (",
                                t.min_agent_version(), ")"));
  }
  if (t.platforms_size() > kMaxPlatforms) {
    return Invalid("targeting.platforms",
                   absl::StrCat("at most ", kMaxPlatforms, " platforms (got ",
                                t.platforms_size(), ")"));
  }
  for (int i = 0; i < t.platforms_size(); ++i) {
    RETURN_IF_ERROR(ValidateId(t.platforms(i),
                               absl::StrCat("targeting.platforms[", i, "]")));
  }
  return absl::OkStatus();
}

absl::Status ValidateFleetConfig(const FleetConfig& fleet) {
  absl::flat_hash_set<std::string> names;
  for (int i = 0; i < fleet.tenants_size(); ++i) {
    const std::string f = absl::StrCat("tenants[", i, "].name");
    RETURN_IF_ERROR(ValidateId(fleet.tenants(i).name(), f));
    if (!names.insert(fleet.tenants(i).name()).second) {
      return Invalid(f, absl::StrCat("duplicate tenant ",
                                     QuoteForError(fleet.tenants(i).name())));
    }
    if (!config::v1::Track_IsValid(fleet.tenants(i).track())) {
      return Invalid(absl::StrCat("tenants[", i, "].track"), "unknown track");
    }
  }
  return ValidateApprovalRules(fleet);
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  // In this range seconds * 1e9 + nanos cannot overflow, and the inline
  // FromUnixNanos gives the same time as the general (out-of-line) sum.
  constexpr int64_t kFastSeconds = 9000000000;
  if (t.seconds() > -kFastSeconds && t.seconds() < kFastSeconds) {
    return absl::FromUnixNanos(t.seconds() * 1000000000 + t.nanos());
  }
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out.set_seconds(ns / 1000000000);
  out.set_nanos(static_cast<int32_t>(ns % 1000000000));
  return out;
}

google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  google::protobuf::Timestamp out;
  const int64_t ns = absl::ToUnixNanos(t);
  int64_t s = ns / 1000000000;
  int64_t n = ns % 1000000000;
  if (n < 0) {
    n += 1000000000;
    s -= 1;
  }
  out.set_seconds(s);
  out.set_nanos(static_cast<int32_t>(n));
  return out;
}

namespace {

// Consumes the next dot-separated component of `*v` and returns its value
// (0 when missing or not a number). Allocation-free: it runs per lookup.
uint64_t NextVersionComponent(absl::string_view* v) {
  const size_t dot = v->find('.');
  const absl::string_view part = v->substr(0, dot);
  *v =
      dot == absl::string_view::npos ? absl::string_view() : v->substr(dot + 1);
  // Same result as SimpleAtoi for 1..18 plain digits; anything else is 0.
  if (part.empty() || part.size() > 18) return 0;
  uint64_t x = 0;
  for (char c : part) {
    if (c < '0' || c > '9') return 0;
    x = x * 10 + static_cast<uint64_t>(c - '0');
  }
  return x;
}

}  // namespace

int CompareAgentVersions(absl::string_view a, absl::string_view b) {
  // An empty remainder after the last component still compares as 0, so
  // "7.11" == "7.11.0".
  bool more_a = true, more_b = true;
  while (more_a || more_b) {
    const uint64_t x = more_a ? NextVersionComponent(&a) : 0;
    const uint64_t y = more_b ? NextVersionComponent(&b) : 0;
    if (x != y) return x < y ? -1 : 1;
    more_a = !a.empty();
    more_b = !b.empty();
  }
  return 0;
}

bool IsValidAgentVersion(absl::string_view v) {
  if (v.empty() || v.size() > 64) return false;
  std::vector<absl::string_view> parts = absl::StrSplit(v, '.');
  if (parts.size() > 4) return false;
  for (absl::string_view p : parts) {
    if (p.empty() || p.size() > 9) return false;
    for (char c : p) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    }
  }
  return true;
}

absl::string_view RolloutStateName(RolloutState s) {
  switch (s) {
    case config::v1::PENDING:
      return "pending";
    case config::v1::RUNNING:
      return "running";
    case config::v1::PAUSED:
      return "paused";
    case config::v1::HALTED:
      return "halted";
    case config::v1::ABORTED:
      return "aborted";
    case config::v1::COMPLETED:
      return "completed";
    default:
      return "unspecified";
  }
}

absl::string_view VerdictName(Verdict v) {
  switch (v) {
    case config::v1::HOLD:
      return "hold";
    case config::v1::PROMOTE:
      return "promote";
    case config::v1::HALT:
      return "halt";
    default:
      return "unspecified";
  }
}

bool IsTerminal(RolloutState s) {
  return s == config::v1::HALTED || s == config::v1::ABORTED ||
         s == config::v1::COMPLETED;
}

}  // namespace ringfence
