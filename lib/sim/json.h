// JSON string literals for the simulator's machine output.
#pragma once

#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace ringfence::internal {

// JsonString
//
// `s` as a JSON string literal, quotes included: `"` and `\` escaped,
// control characters as \u00XX, everything else (UTF-8) as is.
inline std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += absl::StrFormat("\\u%04x", u);
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace ringfence::internal
