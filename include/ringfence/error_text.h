// Input quoted in error messages.
//
// Error messages travel: a gRPC status message is an HTTP/2 header, which
// clients refuse (and which can break the connection) beyond a few KiB, and
// messages end up in logs and the audit log. So an error that quotes what a
// caller sent quotes it through QuoteForError, which bounds and escapes it:
// the one way the library and the service quote input.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace ringfence {

// Longest part of an input that QuoteForError quotes by default, in bytes
// (before escaping, so at most 4 times as many characters after).
inline constexpr size_t kMaxQuotedBytes = 100;

// QuoteForError
//
// `text` in double quotes, escaped with absl::CHexEscape (quotes,
// backslashes, control and non-ASCII bytes become escapes), and, if it is
// longer than `max_bytes`, cut to its first `max_bytes` bytes followed by its
// total length:
//
//   QuoteForError("a\tb")                  // "a\tb" (quotes included)
//   QuoteForError(std::string(5000, 'x'))  // "xxx...x"... (5000 bytes)
//
// A larger `max_bytes` is for text a person needs more of and that is
// bounded anyway (a vendor validator's stderr).
std::string QuoteForError(absl::string_view text,
                          size_t max_bytes = kMaxQuotedBytes);

// Longest message of a parser (protobuf's text or JSON parser) quoted in an
// error: they quote the offending token, which may be any length.
inline constexpr size_t kMaxParserMessageBytes = 300;

// CutForError
//
// `message` if it is at most `max_bytes` long; else its first `max_bytes`
// bytes followed by "... (N bytes)". For error text composed elsewhere that
// may hold input (a parser's message, another error's), and as the last
// bound on a whole message before it leaves the process.
std::string CutForError(absl::string_view message, size_t max_bytes);

// EscapeControlCharacters
//
// `text` with its ASCII control bytes (below 0x20, and 0x7f) and
// backslashes as C escapes ("\n", "\x1b", "\\"), other bytes as they
// are: for text written into a line-oriented log or status file that may
// hold what another party sent (a server's error message), so that it
// stays one line and carries no terminal escape sequences.
std::string EscapeControlCharacters(absl::string_view text);

}  // namespace ringfence
