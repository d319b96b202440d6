// libFuzzer target: arbitrary bytes as a content payload, parsed (text or
// binary) and validated against a fixed schema and capability manifest,
// for a fixed agent range and offline. Checks the report's invariants and
// that reports survive the proto and Status round trips.
//
//   cmake -DCMAKE_CXX_COMPILER=clang++ -DRINGFENCE_FUZZ=ON ...
//   content_fuzz fuzz/corpus/content_fuzz -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/text_format.h"
#include "ringfence/content.h"
#include "ringfence/validate.h"

namespace {

using ringfence::AgentRange;
using ringfence::CapabilityManifest;
using ringfence::ContentSchema;
using ringfence::ValidationReport;

constexpr char kSchema[] = R"pb(
  content_type: "fuzz/content"
  types {
    name: "t"
    fields { name: "num" type: FIELD_TYPE_INTEGER min_value: 0 max_value: 100 }
    fields { name: "str" type: FIELD_TYPE_STRING max_length: 8 }
    fields { name: "pat" type: FIELD_TYPE_PATTERN max_length: 64 }
    fields { name: "raw" type: FIELD_TYPE_BYTES max_length: 4 }
    fields {
      name: "kind"
      type: FIELD_TYPE_ENUM
      enum_values: [ "a", "b" ]
    }
  }
  types {
    name: "u"
    fields { name: "x" type: FIELD_TYPE_INTEGER }
  }
)pb";

constexpr char kManifest[] = R"pb(
  agents {
    min_agent_version: "1"
    max_agent_version: "2"
    template_inputs { template_type: "t" inputs_supplied: 4 }
    supported_field_types: [
      FIELD_TYPE_INTEGER,
      FIELD_TYPE_STRING,
      FIELD_TYPE_PATTERN
    ]
    supported_match_kinds: [
      MATCH_KIND_EXACT,
      MATCH_KIND_PATTERN,
      MATCH_KIND_WILDCARD
    ]
    limits { max_instances: 3 max_pattern_program_size: 20 max_file_bytes: 600 }
  }
  agents {
    min_agent_version: "2"
    max_agent_version: "3"
    template_inputs { template_type: "t" inputs_supplied: 5 }
    template_inputs { template_type: "u" inputs_supplied: 1 }
    supported_field_types: [
      FIELD_TYPE_INTEGER,
      FIELD_TYPE_STRING,
      FIELD_TYPE_PATTERN,
      FIELD_TYPE_BYTES,
      FIELD_TYPE_ENUM
    ]
    supported_match_kinds: [
      MATCH_KIND_EXACT,
      MATCH_KIND_RANGE,
      MATCH_KIND_PATTERN,
      MATCH_KIND_WILDCARD
    ]
    limits { max_instances: 100 max_pattern_program_size: 1000 }
  }
)pb";

template <typename T>
T Parse(const char* text) {
  T message;
  if (!google::protobuf::TextFormat::ParseFromString(text, &message)) abort();
  return message;
}

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

void CheckReport(const ValidationReport& report) {
  Check(report.ok == (report.errors() == 0));
  for (const ringfence::Finding& f : report.findings) {
    Check(!f.code.empty());
    Check(!f.message.empty());
    Check(f.source == "schema");
  }
  const ValidationReport back =
      ringfence::FromProto(ringfence::ToProto(report));
  Check(back.ok == report.ok);
  Check(back.findings.size() == report.findings.size());
  const absl::Status status = ringfence::RejectionStatus(report);
  Check(status.ok() == report.ok);
  if (!status.ok()) {
    std::optional<ValidationReport> carried =
        ringfence::ReportFromStatus(status);
    Check(carried.has_value() &&
          carried->findings.size() == report.findings.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Binary payloads with invalid UTF-8 in string fields make protobuf log an
  // error per input; the fuzzer does not need them.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ContentSchema* schema =
      new ContentSchema(Parse<ContentSchema>(kSchema));
  static const CapabilityManifest* manifest =
      new CapabilityManifest(Parse<CapabilityManifest>(kManifest));
  const absl::string_view payload(reinterpret_cast<const char*>(data), size);

  // Targets [1, 4): both entries plus an uncovered gap.
  absl::StatusOr<ValidationReport> targeted = ringfence::ValidateContent(
      payload, *schema, *manifest, AgentRange{"1", "4"});
  Check(targeted.ok());
  CheckReport(*targeted);
  Check(!targeted->ok);  // the gap [3, 4) always rejects

  absl::StatusOr<ValidationReport> offline =
      ringfence::ValidateContent(payload, *schema, *manifest, std::nullopt);
  Check(offline.ok());
  CheckReport(*offline);

  // Whatever parses has one reading: its binary encoding reads back the
  // same, or, when that encoding also parses as text (with other contents,
  // or with escapes that are not UTF-8), is refused for that.
  absl::StatusOr<ringfence::ContentFile> file =
      ringfence::ParseContentFile(payload);
  if (file.ok()) {
    const std::string binary = file->SerializeAsString();
    absl::StatusOr<ringfence::ContentFile> again =
        ringfence::ParseContentFile(binary);
    if (again.ok()) {
      Check(again->SerializeAsString() == binary);
    } else {
      Check(absl::StartsWith(again.status().message(), "ambiguous payload") ||
            absl::StrContains(again.status().message(), "not valid UTF-8"));
    }
  }
  return 0;
}
