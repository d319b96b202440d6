// PostgresSchemaTest: a test over a schema of its own on the test server
// (TestPostgresDsn() in store_factory.h): a fresh temporary directory per
// test, named after the test, whose OpenTestPostgresStore schema is dropped
// after a test that passed (kept after a failure, to look at).
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "status_matchers.h"
#include "store_factory.h"

namespace ringfence::testing {

class PostgresSchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dsn = TestPostgresDsn();
    ASSERT_TRUE(dsn.ok()) << dsn.status();
    dsn_ = *dsn;
    const ::testing::TestInfo* test =
        ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = (std::filesystem::path(::testing::TempDir()) /
            absl::StrCat(test->test_suite_name(), "_", getpid(), "_",
                         test->name()))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    schema_ = TestPostgresSchema(dir_);
  }
  void TearDown() override {
    std::filesystem::remove_all(dir_);
    if (!HasFailure()) {
      EXPECT_OK(
          ExecTestSql(dsn_, "DROP SCHEMA IF EXISTS " + schema_ + " CASCADE"));
    }
  }

  std::string dsn_;
  std::string dir_;
  std::string schema_;
};

}  // namespace ringfence::testing
