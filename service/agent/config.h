// The ringfence-agent configuration file: protobuf text format of
// ringfence.agent.v1.AgentConfig (service/proto/ringfence/agent/v1/
// agent_config.proto), whose fields mirror `ringfence-agent run`'s flags.
//
// Thread safety: free functions without shared state.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "ringfence/agent/v1/agent_config.pb.h"

namespace ringfence::agent {

// The largest configuration file read, in bytes.
inline constexpr size_t kMaxConfigBytes = 1 << 20;

// LoadAgentConfig
//
// Reads and parses `path`. Errors: NOT_FOUND if it cannot be read;
// INVALID_ARGUMENT for a file over kMaxConfigBytes or text that does not
// parse, as "PATH:LINE:COLUMN: what" (unknown fields included).
absl::StatusOr<v1::AgentConfig> LoadAgentConfig(const std::string& path);

}  // namespace ringfence::agent
