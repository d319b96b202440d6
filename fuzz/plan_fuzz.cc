// libFuzzer target: arbitrary bytes as a plan file (text-proto or JSON,
// ringfence::ParseTextOrJson), validated with ValidatePlan; for valid plans
// the effective policy and pacing of every stage are computed and must
// validate too.
//
//   plan_fuzz fuzz/corpus/plan_fuzz -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/stubs/logging.h"
#include "ringfence/model.h"
#include "ringfence/policy.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  ringfence::Plan plan;
  if (!ringfence::ParseTextOrJson(text, &plan).ok()) return 0;
  if (!ringfence::ValidatePlan(plan).ok()) return 0;
  for (int i = 0; i < plan.stages_size(); ++i) {
    const ringfence::GatePolicy policy = ringfence::EffectivePolicy(plan, i);
    if (!ringfence::ValidateGatePolicy(policy, absl::StrCat("stages[", i, "]"))
             .ok()) {
      __builtin_trap();  // defaults must never make a valid plan invalid
    }
    const ringfence::Pacing pacing = ringfence::EffectivePacing(plan, i);
    if (pacing.initial_hosts() == 0) __builtin_trap();
  }
  return 0;
}
