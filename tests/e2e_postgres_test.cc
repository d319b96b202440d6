// ringfenced on PostgreSQL (--store=postgres): state survives a restart, the
// DSN comes from a file or the environment and never reaches the log.
// Needs the test server (ctest's `postgres` fixture, or
// RINGFENCE_TEST_POSTGRES_DSN_FILE naming a file with a DSN).
#include <signal.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "e2e_fixture.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringfence::e2e {
namespace {

// The password in the test server's DSN (scripts/pg-test-server.sh).
constexpr char kTestPassword[] = "ringfence-test-secret";

TEST_F(E2ETest, PostgresStoreKeepsStateAcrossRestarts) {
  const std::string dsn_file = PostgresDsnFile();
  ASSERT_FALSE(ReadFile(dsn_file).empty())
      << "no PostgreSQL DSN in \"" << dsn_file
      << "\": run through ctest (fixture postgres) or set "
         "RINGFENCE_TEST_POSTGRES_DSN_FILE";
  // The same --replica_id and advertised address across the restart (as a
  // replica on a fixed port has; the test's listens on port 0): the new
  // process takes the lease over at once (the killed one's would otherwise
  // have to expire).
  const std::vector<std::string> flags = {
      "--store=postgres", "--postgres_dsn_file=" + dsn_file,
      absl::StrCat("--postgres_schema=e2e_", getpid(), "_",
                   absl::ToUnixMicros(absl::Now())),
      "--replica_id=e2e-restart", "--advertise_address=e2e-restart.test:7443"};
  StartServer(flags);
  ASSERT_THAT(CreateRelease("cf400-a", "channel-file/400"), GrpcOk());
  ASSERT_THAT(StartRollout("pg-1", "cf400-a", ParsePlan(kManualPlan)),
              GrpcOk());
  Rollout before;
  ASSERT_THAT(Act("pause", "pg-1", kOperatorToken, &before), GrpcOk());

  server_->Signal(SIGKILL);
  EXPECT_EQ(server_->Wait(absl::Seconds(10)), 128 + SIGKILL);
  StartServer(flags);

  const v1::GetRolloutResponse st = GetRollout("pg-1");
  EXPECT_EQ(st.rollout().state(), cfg::PAUSED);
  EXPECT_EQ(st.rollout().version(), before.version());
  v1::ListReleasesResponse releases;
  ASSERT_THAT(releases_->ListReleases(Ctx(kOperatorToken).get(), {}, &releases),
              GrpcOk());
  ASSERT_EQ(releases.releases_size(), 1);
  EXPECT_EQ(releases.releases(0).id(), "cf400-a");
  Rollout after;
  ASSERT_THAT(Act("resume", "pg-1", kOperatorToken, &after), GrpcOk());
  EXPECT_EQ(after.version(), before.version() + 1);

  const std::string log = ReadFile(LogPath(starts_));
  EXPECT_THAT(log, HasSubstr("PostgreSQL (DSN from " + dsn_file));
  EXPECT_THAT(log, Not(HasSubstr(kTestPassword)));
}

TEST_F(E2ETest, PostgresStoreNeedsADsnAndKeepsItOutOfErrors) {
  CommandResult r = RunServerToExit({"--store=postgres"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("RINGFENCE_POSTGRES_DSN"));

  const std::string secret = "Sekr1t-e2e-0815";
  r = RunCommand({ringfenced_, "--listen=127.0.0.1:0",
                  "--data_dir=" + dir_ + "/data-bad", "--store=postgres"},
                 {"RINGFENCE_POSTGRES_DSN=host=/nonexistent-ringfence-dir "
                  "user=" +
                  secret + " password=" + secret},
                 absl::Seconds(15));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot connect to PostgreSQL"));
  EXPECT_THAT(r.err, HasSubstr("$RINGFENCE_POSTGRES_DSN"));
  EXPECT_THAT(r.err, Not(HasSubstr(secret)));

  r = RunServerToExit({"--store=oracle"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("must be sqlite or postgres"));
}

}  // namespace
}  // namespace ringfence::e2e
