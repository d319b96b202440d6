// End-to-end tests of telemetry ingestion: the client-streaming
// StreamTelemetry, and backpressure (RESOURCE_EXHAUSTED when more events
// than --max_inflight_events would be held at once).
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "e2e_fixture.h"

namespace ringfence::e2e {
namespace {

using ::testing::AllOf;

// Heartbeats of hosts "h-<first>" .. "h-<first + n - 1>".
v1::TelemetryBatch Heartbeats(int first, int n) {
  v1::TelemetryBatch batch;
  for (int i = first; i < first + n; ++i) {
    v1::TelemetryEvent* e = batch.add_events();
    e->set_host_id(absl::StrCat("h-", i));
    e->set_type(v1::HEARTBEAT);
  }
  return batch;
}

class E2ETelemetryTest : public E2ETest {
 protected:
  grpc::Status Report(const v1::TelemetryBatch& batch,
                      const std::string& token = kHostToken) {
    v1::ReportTelemetryRequest req;
    *req.mutable_events() = batch.events();
    v1::ReportTelemetryResponse resp;
    return fleet_->ReportTelemetry(Ctx(token).get(), req, &resp);
  }

  // Streams `batches` and returns the final status; `resp` gets the totals.
  grpc::Status Stream(const std::vector<v1::TelemetryBatch>& batches,
                      v1::StreamTelemetryResponse* resp,
                      const std::string& token = kHostToken) {
    auto ctx = Ctx(token);
    auto writer = fleet_->StreamTelemetry(ctx.get(), resp);
    for (const v1::TelemetryBatch& b : batches) {
      // False once the server has ended the stream; Finish() says why.
      if (!writer->Write(b)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  uint64_t TrackedHosts(const std::string& rollout) {
    return GetRollout(rollout).telemetry().tracked_hosts();
  }
};

TEST_F(E2ETelemetryTest, StreamTelemetryAppliesEachBatchInOrder) {
  ASSERT_THAT(CreateRelease("cf320-a", "channel-file/320"), GrpcOk());
  ASSERT_THAT(StartRollout("stream-1", "cf320-a", ParsePlan(kManualPlan)),
              GrpcOk());

  v1::StreamTelemetryResponse resp;
  EXPECT_THAT(
      Stream({Heartbeats(0, 10), Heartbeats(10, 10), Heartbeats(20, 10)},
             &resp),
      GrpcOk());
  EXPECT_EQ(resp.accepted_batches(), 3u);
  EXPECT_EQ(resp.accepted_events(), 30u);
  EXPECT_EQ(TrackedHosts("stream-1"), 30u);

  // A bad batch ends the stream naming the message and the field; the one
  // before it was applied, the bad one and those after it were not.
  v1::TelemetryBatch bad = Heartbeats(200, 2);
  bad.mutable_events(1)->clear_host_id();
  resp.Clear();
  EXPECT_THAT(Stream({Heartbeats(100, 5), bad, Heartbeats(300, 5)}, &resp),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                           AllOf(HasSubstr("message 1 of the stream"),
                                 HasSubstr("events[1].host_id"),
                                 HasSubstr("5 events, were applied"))));
  EXPECT_EQ(TrackedHosts("stream-1"), 35u);

  // The batch limit (--max_batch_events=1000) holds per message.
  EXPECT_THAT(Stream({Heartbeats(1000, 1001)}, &resp),
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                           AllOf(HasSubstr("message 0 of the stream"),
                                 HasSubstr("at most 1000"))));

  // Roles: host and admin.
  EXPECT_THAT(Stream({Heartbeats(0, 1)}, &resp, kPublisherToken),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                           HasSubstr("StreamTelemetry needs role host or "
                                     "admin")));
  EXPECT_THAT(Stream({Heartbeats(0, 1)}, &resp, ""),
              GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED, testing::_));
  resp.Clear();
  EXPECT_THAT(Stream({}, &resp, kAdminToken), GrpcOk());
  EXPECT_EQ(resp.accepted_batches(), 0u);
  EXPECT_EQ(TrackedHosts("stream-1"), 35u);
}

TEST_F(E2ETelemetryTest, IngestionBackpressureFailsFastAndRecovers) {
  // Room for 1000 events in flight; every batch is held for 1.5s, so two
  // batches of 600 and 500 sent 200ms apart overlap: whichever arrives
  // second does not fit and fails at once.
  StartServer({"--max_inflight_events=1000", "--testing_ingest_delay=1.5s"});
  const v1::TelemetryBatch a = Heartbeats(0, 600);
  const v1::TelemetryBatch b = Heartbeats(1000, 500);
  auto expect_one_saturated = [](const grpc::Status& x, const grpc::Status& y) {
    const grpc::Status& failed = x.ok() ? y : x;
    EXPECT_TRUE(x.ok() != y.ok())
        << x.error_code() << " " << x.error_message() << " / " << y.error_code()
        << " " << y.error_message();
    EXPECT_THAT(failed, GrpcStatusIs(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                     AllOf(HasSubstr("limit 1000"),
                                           HasSubstr("retry it later"))));
  };

  // Two ReportTelemetry calls.
  grpc::Status first, second;
  std::thread t1([&] { first = Report(a); });
  absl::SleepFor(absl::Milliseconds(200));
  const absl::Time start = absl::Now();
  second = Report(b);
  const absl::Duration second_took = absl::Now() - start;
  t1.join();
  expect_one_saturated(first, second);
  // Failing fast: a refused call does not wait for the slow ingest.
  if (!second.ok()) {
    EXPECT_LT(second_took, absl::Seconds(1));
  }

  // A ReportTelemetry call and a stream.
  v1::StreamTelemetryResponse resp;
  std::thread t2([&] { first = Report(a); });
  absl::SleepFor(absl::Milliseconds(200));
  second = Stream({b}, &resp);
  t2.join();
  expect_one_saturated(first, second);
  if (!second.ok()) {
    EXPECT_THAT(second.error_message(), HasSubstr("message 0 of the stream"));
  }

  // Capacity comes back when a call completes: retried alone, it fits.
  EXPECT_THAT(Report(b), GrpcOk());
}

TEST_F(E2ETelemetryTest, OpenStreamsEndAtOnceWhenTheServerShutsDown) {
  StartServer({"--shutdown_grace=20s"});
  ASSERT_THAT(CreateRelease("cf321-a", "channel-file/321"), GrpcOk());
  ASSERT_THAT(StartRollout("stream-2", "cf321-a", ParsePlan(kManualPlan)),
              GrpcOk());
  auto ctx = Ctx(kHostToken);
  v1::StreamTelemetryResponse resp;
  auto writer = fleet_->StreamTelemetry(ctx.get(), &resp);
  ASSERT_TRUE(writer->Write(Heartbeats(0, 10)));
  ASSERT_TRUE(Eventually([&] { return TrackedHosts("stream-2") == 10; },
                         absl::Seconds(30)));
  // A gateway keeps the stream open, waiting for its outcome.
  grpc::Status status;
  std::thread gateway([&] { status = writer->Finish(); });

  server_->Signal(SIGTERM);
  const absl::Time start = absl::Now();
  EXPECT_EQ(server_->Wait(absl::Seconds(15)), 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  gateway.join();
  EXPECT_THAT(status, GrpcStatusIs(grpc::StatusCode::UNAVAILABLE,
                                   AllOf(HasSubstr("shutting down"),
                                         HasSubstr("1 messages, 10 events were "
                                                   "applied"))));
}

// One connection holds at most --max_streams_per_connection calls open: a
// further call on it waits (here, until its deadline) until one ends, and
// other connections are not held up.
TEST_F(E2ETelemetryTest, CallsPerConnectionAreBounded) {
  server_.reset();
  StartServer({"--max_streams_per_connection=2"});
  auto ctx1 = Ctx(kHostToken);
  auto ctx2 = Ctx(kHostToken);
  v1::StreamTelemetryResponse resp1, resp2;
  auto stream1 = fleet_->StreamTelemetry(ctx1.get(), &resp1);
  auto stream2 = fleet_->StreamTelemetry(ctx2.get(), &resp2);
  ASSERT_TRUE(stream1->Write(Heartbeats(0, 1)));
  ASSERT_TRUE(stream2->Write(Heartbeats(1, 1)));

  auto list = [](v1::Releases::Stub& stub) {
    auto ctx = Ctx(kOperatorToken);
    ctx->set_deadline(std::chrono::system_clock::now() +
                      std::chrono::seconds(2));
    v1::ListReleasesResponse resp;
    return stub.ListReleases(ctx.get(), {}, &resp);
  };
  EXPECT_THAT(list(*releases_),
              GrpcStatusIs(grpc::StatusCode::DEADLINE_EXCEEDED, testing::_));
  EXPECT_THAT(list(*ReleasesOver(client_tls_)), GrpcOk());

  stream1->WritesDone();
  EXPECT_THAT(stream1->Finish(), GrpcOk());
  EXPECT_THAT(list(*releases_), GrpcOk());
  stream2->WritesDone();
  EXPECT_THAT(stream2->Finish(), GrpcOk());
  EXPECT_EQ(resp1.accepted_events() + resp2.accepted_events(), 2u);
}

}  // namespace
}  // namespace ringfence::e2e
