// AgentStatusText: an AgentStatus as "key value" lines (boot, running,
// last_good, applying, quarantined, assigned, spool_pending,
// spool_dropped, last_error; "-" for none), what `ringfence-agent status`
// prints and rf_agent_status_text returns.
#pragma once

#include <string>

#include "ringfence/agent.h"

namespace ringfence::agent {

std::string AgentStatusText(const AgentStatus& status);

}  // namespace ringfence::agent
