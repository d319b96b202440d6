#include "service/agent/status_text.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "ringfence/error_text.h"

namespace ringfence::agent {

std::string AgentStatusText(const AgentStatus& s) {
  // One "key value" per line, whatever the server said: every value
  // escaped (a release id is validated, an error message may quote
  // anything).
  auto or_none = [](const std::string& v) {
    return v.empty() ? std::string("-") : EscapeControlCharacters(v);
  };
  auto time_or_none = [](absl::Time t) {
    return t == absl::InfinitePast()
               ? std::string("-")
               : absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
  };
  return absl::StrCat(
      "boot ", s.boot, "\nrunning ", or_none(s.running), "\nlast_good ",
      or_none(s.last_good), "\napplying ", or_none(s.applying),
      s.applying.empty() ? "" : absl::StrCat(" (", s.applying_boots, " boots)"),
      "\nquarantined ", or_none(s.quarantined), "\nassigned ",
      or_none(s.assigned), "\nspool_pending ", s.spool_pending,
      "\nspool_dropped ", s.spool_dropped, "\nlast_contact ",
      time_or_none(s.last_contact), "\nlast_error ",
      s.last_error.ok() ? "-"
                        : EscapeControlCharacters(s.last_error.ToString()),
      "\nlast_error_at ",
      s.last_error.ok() ? "-" : time_or_none(s.last_error_at), "\n");
}

}  // namespace ringfence::agent
