#include "ringfence/error_text.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace ringfence {

std::string QuoteForError(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) {
    return absl::StrCat("\"", absl::CHexEscape(text), "\"");
  }
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, max_bytes)),
                      "\"... (", text.size(), " bytes)");
}

std::string CutForError(absl::string_view message, size_t max_bytes) {
  if (message.size() <= max_bytes) return std::string(message);
  return absl::StrCat(message.substr(0, max_bytes), "... (", message.size(),
                      " bytes)");
}

}  // namespace ringfence
