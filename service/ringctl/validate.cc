// ringctl validate (offline): a content file against its schema and the
// agents' capability manifest.
#include "ringfence/validate.h"

#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "ringfence/content.h"
#include "ringfence/model.h"
#include "service/ringctl/commands.h"
#include "service/ringctl/format.h"

namespace ringfence::ringctl {
namespace {

struct ValidateFlags {
  std::string schema;
  std::string capabilities;
  std::optional<std::string> target_agents;
  std::string file;
};

int ValidateFile(const Invocation& inv, const ValidateFlags& f) {
  const std::string& path = f.file;
  ContentSchema schema;
  CapabilityManifest manifest;
  absl::Status s = LoadMessageFile(f.schema, &schema);
  if (!s.ok()) {
    std::fprintf(stderr, "ringctl validate: --schema %s: %s\n",
                 f.schema.c_str(), std::string(s.message()).c_str());
    return kExitError;
  }
  s = LoadMessageFile(f.capabilities, &manifest);
  if (!s.ok()) {
    std::fprintf(stderr, "ringctl validate: --capabilities %s: %s\n",
                 f.capabilities.c_str(), std::string(s.message()).c_str());
    return kExitError;
  }
  std::optional<AgentRange> targets;
  if (f.target_agents.has_value()) {
    absl::StatusOr<AgentRange> range = ParseAgentRange(*f.target_agents);
    if (!range.ok()) {
      return inv.Usage(
          absl::StrCat("--target-agents: ", range.status().message()));
    }
    targets = *std::move(range);
  }
  std::string payload;
  if (!ReadWholeFile("validate", path, &payload)) return kExitError;
  absl::StatusOr<ValidationReport> report =
      ValidateContent(payload, schema, manifest, targets);
  if (!report.ok()) {
    std::fprintf(stderr, "ringctl validate: %s\n",
                 std::string(report.status().message()).c_str());
    return kExitError;
  }
  if (inv.json()) {
    std::printf("%s\n", Json(ToProto(*report)).c_str());
  } else {
    for (const Finding& f : report->findings) {
      std::string where;
      if (!f.instance.empty())
        absl::StrAppend(&where, " instance=", f.instance);
      if (!f.field.empty()) {
        absl::StrAppend(&where, " field=", f.field, "(", f.field_index, ")");
      } else if (f.field_index != 0) {
        absl::StrAppend(&where, " field=#", f.field_index);
      }
      if (!f.agents.empty()) absl::StrAppend(&where, " agents=", f.agents);
      std::printf("%-7s %s%s\n        %s\n",
                  std::string(SeverityName(f.severity)).c_str(), f.code.c_str(),
                  where.c_str(), f.message.c_str());
    }
    std::printf("%s: %s: %d error(s), %d warning(s)\n", path.c_str(),
                report->ok ? "valid" : "REJECTED", report->errors(),
                report->warnings());
  }
  return report->ok ? kExitOk : kExitRejected;
}

}  // namespace

void AddValidateCommand(CommandLine& cli) {
  auto flags = std::make_shared<ValidateFlags>();
  CLI::App* app = cli.AddCommand(
      {"validate"}, "check a content file for its agents (offline)",
      CommandLine::kOffline,
      [flags](const Invocation& inv) { return ValidateFile(inv, *flags); });
  cli.SetDetails(app,
                 "Checks the file against its schema and the agents' "
                 "capability manifest. Prints each finding (severity, code, "
                 "instance, field, agent range, message) and a summary; "
                 "--json prints the ValidationResult. Exit 0 valid, 2 "
                 "rejected, 3 unreadable or invalid input.");
  cli.AddFlag(app, "schema", &flags->schema,
              "the content type's schema, text-proto or JSON",
              CommandLine::kRequired)
      ->type_name("FILE");
  cli.AddFlag(app, "capabilities", &flags->capabilities,
              "the agents' capability manifest, text-proto or JSON",
              CommandLine::kRequired)
      ->type_name("FILE");
  cli.AddFlag(app, "target-agents", &flags->target_agents,
              "the agent versions the content targets, MIN..MAX (e.g. "
              "7.11..7.12); without it every manifest entry applies and "
              "coverage is not checked")
      ->type_name("RANGE");
  cli.AddArgument(app, "FILE", &flags->file, "the content file");
}

}  // namespace ringfence::ringctl
