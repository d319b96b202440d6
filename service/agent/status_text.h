// AgentStatusText: an AgentStatus as "key value" lines (boot, running,
// last_good, applying, quarantined, assigned, spool_pending,
// spool_dropped, last_contact, last_error, last_error_at; "-" for none;
// times in RFC 3339 UTC to the second), what `ringfence-agent status`
// prints and rf_agent_status_text returns. last_error stays after the
// agent recovers: a last_contact later than last_error_at says it did.
#pragma once

#include <string>

#include "ringfence/agent.h"

namespace ringfence::agent {

std::string AgentStatusText(const AgentStatus& status);

}  // namespace ringfence::agent
