// Tests of the agent's file systems (agent_fs.h): the POSIX implementation
// against a temporary directory and the in-memory fake's crash modes.
#include "ringfence/agent_fs.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::ringfence::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

void ExerciseBasics(AgentFileSystem* fs, const std::string& root) {
  const std::string dir = root + "/a/b";
  ASSERT_OK(fs->MakeDirs(dir));
  EXPECT_THAT(fs->ReadFile(dir + "/x"), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_OK(fs->WriteFileAtomically(dir + "/x", "one"));
  ASSERT_OK(fs->WriteFileAtomically(dir + "/x", "two"));
  EXPECT_EQ(*fs->ReadFile(dir + "/x"), "two");
  ASSERT_OK(fs->AppendDurably(dir + "/log", "ab"));
  ASSERT_OK(fs->AppendDurably(dir + "/log", "cd"));
  EXPECT_EQ(*fs->ReadFile(dir + "/log"), "abcd");
  ASSERT_OK(fs->WriteAtDurably(dir + "/slots", 4, "ab"));
  EXPECT_EQ(*fs->ReadFile(dir + "/slots"), std::string("\0\0\0\0ab", 6));
  ASSERT_OK(fs->WriteAtDurably(dir + "/slots", 0, "xyz"));
  ASSERT_OK(fs->WriteAtDurably(dir + "/slots", 5, "BC"));
  EXPECT_EQ(*fs->ReadFile(dir + "/slots"), std::string("xyz\0aBC", 7));
  ASSERT_OK(fs->Remove(dir + "/slots"));
  EXPECT_THAT(*fs->List(dir), ElementsAre("log", "x"));
  ASSERT_OK(fs->Remove(dir + "/x"));
  ASSERT_OK(fs->Remove(dir + "/x"));  // absent: OK
  EXPECT_THAT(*fs->List(dir), ElementsAre("log"));
  EXPECT_THAT(*fs->List(root + "/nope"), IsEmpty());
}

TEST(PosixFileSystemTest, Basics) {
  const std::string root =
      absl::StrCat(::testing::TempDir(), "/agent_fs_test_", getpid());
  std::filesystem::remove_all(root);
  std::unique_ptr<AgentFileSystem> fs = NewPosixFileSystem();
  ExerciseBasics(fs.get(), root);
  std::filesystem::remove_all(root);
}

TEST(MemoryFileSystemTest, Basics) {
  MemoryFileSystem fs;
  ExerciseBasics(&fs, "/state");
}

TEST(MemoryFileSystemTest, CrashBeforeLeavesNothingAndKillsTheProcess) {
  MemoryFileSystem fs;
  ASSERT_OK(fs.WriteFileAtomically("/d/f", "old"));
  fs.CrashAtMutation(0, MemoryFileSystem::CrashMode::kBefore);
  EXPECT_THAT(fs.WriteFileAtomically("/d/f", "new"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(fs.crashed());
  EXPECT_THAT(fs.ReadFile("/d/f"), StatusIs(absl::StatusCode::kUnavailable));
  fs.Reboot();
  EXPECT_EQ(*fs.ReadFile("/d/f"), "old");
}

TEST(MemoryFileSystemTest, TornWriteLeavesOldFileAndAPartialTemp) {
  MemoryFileSystem fs;
  ASSERT_OK(fs.WriteFileAtomically("/d/f", "old"));
  fs.CrashAtMutation(0, MemoryFileSystem::CrashMode::kTorn);
  EXPECT_FALSE(fs.WriteFileAtomically("/d/f", "new contents").ok());
  fs.Reboot();
  EXPECT_EQ(*fs.ReadFile("/d/f"), "old");
  EXPECT_TRUE(fs.files().count("/d/f.tmp"));
}

TEST(MemoryFileSystemTest, TornAppendKeepsAStrictPrefix) {
  for (uint64_t seed = 1; seed < 20; ++seed) {
    MemoryFileSystem fs(seed);
    ASSERT_OK(fs.AppendDurably("/d/log", "head"));
    fs.CrashAtMutation(1, MemoryFileSystem::CrashMode::kTorn);
    ASSERT_OK(fs.AppendDurably("/d/log", "1"));
    EXPECT_FALSE(fs.AppendDurably("/d/log", "0123456789").ok());
    fs.Reboot();
    const std::string got = *fs.ReadFile("/d/log");
    ASSERT_GT(got.size(), 5u);
    ASSERT_LT(got.size(), 15u);
    EXPECT_EQ(got, std::string("head10123456789").substr(0, got.size()));
  }
}

TEST(MemoryFileSystemTest, TornWriteAtKeepsTheOldBytesPastAStrictPrefix) {
  for (uint64_t seed = 1; seed < 20; ++seed) {
    MemoryFileSystem fs(seed);
    ASSERT_OK(fs.WriteAtDurably("/d/f", 0, "0123456789"));
    fs.CrashAtMutation(0, MemoryFileSystem::CrashMode::kTorn);
    EXPECT_FALSE(fs.WriteAtDurably("/d/f", 2, "abcdef").ok());
    fs.Reboot();
    const std::string got = *fs.ReadFile("/d/f");
    ASSERT_EQ(got.size(), 10u);
    size_t n = 0;  // bytes of the new data that landed
    while (n < 6 && got[2 + n] == "abcdef"[n]) ++n;
    EXPECT_GT(n, 0u);
    EXPECT_LT(n, 6u);
    EXPECT_EQ(got.substr(2 + n), std::string("0123456789").substr(2 + n));
  }
  MemoryFileSystem fs;
  ASSERT_OK(fs.WriteAtDurably("/d/f", 0, "old"));
  fs.CrashAtMutation(0, MemoryFileSystem::CrashMode::kBefore);
  EXPECT_FALSE(fs.WriteAtDurably("/d/f", 0, "new").ok());
  fs.Reboot();
  EXPECT_EQ(*fs.ReadFile("/d/f"), "old");
}

TEST(MemoryFileSystemTest, CrashAfterKeepsTheWholeOperation) {
  MemoryFileSystem fs;
  fs.CrashAtMutation(0, MemoryFileSystem::CrashMode::kAfter);
  EXPECT_FALSE(fs.AppendDurably("/d/log", "abc").ok());
  EXPECT_FALSE(fs.AppendDurably("/d/log", "def").ok());  // dead
  fs.Reboot();
  EXPECT_EQ(*fs.ReadFile("/d/log"), "abc");
  EXPECT_EQ(fs.mutations(), 1);
}

}  // namespace
}  // namespace ringfence
