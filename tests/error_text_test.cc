#include "ringfence/error_text.h"

#include <algorithm>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringfence {
namespace {

using ::testing::EndsWith;
using ::testing::StartsWith;

TEST(QuoteForErrorTest, QuotesAndEscapesShortText) {
  EXPECT_EQ(QuoteForError(""), "\"\"");
  EXPECT_EQ(QuoteForError("canary"), "\"canary\"");
  EXPECT_EQ(QuoteForError("a\tb\"c\\"), "\"a\\tb\\\"c\\\\\"");
  EXPECT_EQ(QuoteForError(std::string("a\0z", 3)), "\"a\\x00z\"");
  // A hex digit after a \x escape is escaped too, so the escape ends.
  EXPECT_EQ(QuoteForError(std::string("a\0b", 3)), "\"a\\x00\\x62\"");
  EXPECT_EQ(QuoteForError("\xc3\xa9"), "\"\\xc3\\xa9\"");
  EXPECT_EQ(QuoteForError(std::string(kMaxQuotedBytes, 'x')),
            "\"" + std::string(kMaxQuotedBytes, 'x') + "\"");
}

TEST(QuoteForErrorTest, CutsLongTextAndSaysItsLength) {
  const std::string stage(1 << 20, 's');
  const std::string quoted = QuoteForError(stage);
  EXPECT_EQ(quoted,
            "\"" + std::string(kMaxQuotedBytes, 's') + "\"... (1048576 bytes)");
  EXPECT_EQ(QuoteForError(std::string(kMaxQuotedBytes + 1, 'x')),
            "\"" + std::string(kMaxQuotedBytes, 'x') + "\"... (101 bytes)");
  // Escaping at most quadruples what is kept.
  const std::string binary(5000, '\x01');
  EXPECT_LE(QuoteForError(binary).size(), 4 * kMaxQuotedBytes + 32);
  EXPECT_THAT(QuoteForError(binary), EndsWith("\"... (5000 bytes)"));
}

TEST(QuoteForErrorTest, TakesALargerBoundForBoundedText) {
  EXPECT_EQ(QuoteForError("abcdef", 3), "\"abc\"... (6 bytes)");
  EXPECT_EQ(QuoteForError(std::string(2000, 'e'), 2048),
            "\"" + std::string(2000, 'e') + "\"");
}

// Whatever the bytes, the result is one line without control characters,
// and text without control characters or backslashes is unchanged.
TEST(EscapeControlCharactersTest, LeavesOneLineWithoutControlCharacters) {
  EXPECT_EQ(EscapeControlCharacters("denied\n2026 FORGED \x1b[31mred"),
            "denied\\n2026 FORGED \\x1b[31mred");
  EXPECT_EQ(EscapeControlCharacters("a\\b"), "a\\\\b");
  EXPECT_EQ(EscapeControlCharacters("h\xc3\xa9llo"), "h\xc3\xa9llo");
  std::mt19937 rng(3);
  for (int i = 0; i < 2000; ++i) {
    std::string text(rng() % 64, '\0');
    for (char& c : text) c = static_cast<char>(rng());
    const std::string out = EscapeControlCharacters(text);
    for (const char c : out) {
      const unsigned char u = static_cast<unsigned char>(c);
      ASSERT_TRUE(u >= 0x20 && u != 0x7f) << QuoteForError(out);
    }
    const bool plain = std::all_of(text.begin(), text.end(), [](char c) {
      const unsigned char u = static_cast<unsigned char>(c);
      return u >= 0x20 && u != 0x7f && c != '\\';
    });
    if (plain) {
      EXPECT_EQ(out, text);
    }
  }
}

TEST(CutForErrorTest, KeepsShortMessagesAndCutsLongOnes) {
  EXPECT_EQ(CutForError("line 1, column 2: bad", 100), "line 1, column 2: bad");
  const std::string parser_message =
      "Message type \"x\" has no field named \"" + std::string(1 << 20, 'f') +
      "\".";
  const std::string cut = CutForError(parser_message, kMaxParserMessageBytes);
  EXPECT_THAT(cut, StartsWith("Message type \"x\" has no field named \"fff"));
  EXPECT_THAT(
      cut, EndsWith(absl::StrCat("... (", parser_message.size(), " bytes)")));
  EXPECT_LE(cut.size(), kMaxParserMessageBytes + 32);
}

}  // namespace
}  // namespace ringfence
