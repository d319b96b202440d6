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

std::string EscapeControlCharacters(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      out += absl::CHexEscape(absl::string_view(&c, 1));
    }
  }
  return out;
}

std::string CutForError(absl::string_view message, size_t max_bytes) {
  if (message.size() <= max_bytes) return std::string(message);
  return absl::StrCat(message.substr(0, max_bytes), "... (", message.size(),
                      " bytes)");
}

}  // namespace ringfence
