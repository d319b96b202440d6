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
                      const std::string& token = kRelayToken) {
    v1::ReportTelemetryRequest req;
    *req.mutable_events() = batch.events();
    v1::ReportTelemetryResponse resp;
    return fleet_->ReportTelemetry(Ctx(token).get(), req, &resp);
  }

  // Streams `batches` and returns the final status; `resp` gets the totals.
  grpc::Status Stream(const std::vector<v1::TelemetryBatch>& batches,
                      v1::StreamTelemetryResponse* resp,
                      const std::string& token = kRelayToken) {
    auto ctx = Ctx(token);
    auto writer = fleet_->StreamTelemetry(ctx.get(), resp);
    for (const v1::TelemetryBatch& b : batches) {
      // False once the server has ended the stream; Finish() says why.
      if (!writer->Write(b)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // Hosts "h-<first>" .. check in (E2ETest::CheckIn).
  void CheckIn(const std::string& content_type, int first, int n) {
    for (int i = first; i < first + n; ++i) {
      E2ETest::CheckIn(absl::StrCat("h-", i), content_type);
    }
  }

  uint64_t TrackedHosts(const std::string& rollout) {
    return GetRollout(rollout).telemetry().tracked_hosts();
  }
};

TEST_F(E2ETelemetryTest, StreamTelemetryAppliesEachBatchInOrder) {
  ASSERT_THAT(CreateRelease("cf320-a", "channel-file/320"), GrpcOk());
  ASSERT_THAT(StartRollout("stream-1", "cf320-a", ParsePlan(kManualPlan)),
              GrpcOk());
  CheckIn("channel-file/320", 0, 30);
  CheckIn("channel-file/320", 100, 5);
  CheckIn("channel-file/320", 300, 5);

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

  // Roles: host, relay and admin.
  EXPECT_THAT(
      Stream({Heartbeats(0, 1)}, &resp, kPublisherToken),
      GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                   HasSubstr("StreamTelemetry needs role host, relay or "
                             "admin")));
  EXPECT_THAT(Stream({Heartbeats(0, 1)}, &resp, ""),
              GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED, testing::_));
  resp.Clear();
  EXPECT_THAT(Stream({}, &resp, kAdminToken), GrpcOk());
  EXPECT_EQ(resp.accepted_batches(), 0u);
  EXPECT_EQ(TrackedHosts("stream-1"), 35u);
}

// A host token speaks for its own host only: every call for another host
// is PERMISSION_DENIED whole (nothing of the batch is applied), so one
// compromised host can neither halt a rollout with others' crashes nor
// hide a boot loop by heartbeating for dead hosts. A relay speaks for all.
TEST_F(E2ETelemetryTest, AHostTokenSpeaksOnlyForItsHost) {
  ASSERT_THAT(CreateRelease("cf321-a", "channel-file/321"), GrpcOk());
  ASSERT_THAT(StartRollout("bound-1", "cf321-a", ParsePlan(kManualPlan)),
              GrpcOk());
  // Its assignment (which also makes it of the rollout's population).
  v1::GetAssignmentRequest req;
  req.set_host_id("h7");
  req.add_content_types("channel-file/321");
  v1::GetAssignmentResponse assignment;
  EXPECT_THAT(fleet_->GetAssignment(Ctx(kHost7Token).get(), req, &assignment),
              GrpcOk());
  E2ETest::CheckIn("h-3", "channel-file/321");
  v1::TelemetryBatch own;
  own.add_events()->set_host_id("h7");
  own.mutable_events(0)->set_type(v1::HEARTBEAT);
  EXPECT_THAT(Report(own, kHost7Token), GrpcOk());
  EXPECT_EQ(TrackedHosts("bound-1"), 1u);

  // One event for another host among its own: refused whole.
  v1::TelemetryBatch mixed = own;
  *mixed.add_events() = Heartbeats(3, 1).events(0);
  EXPECT_THAT(
      Report(mixed, kHost7Token),
      GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                   AllOf(HasSubstr("events[1].host_id"),
                         HasSubstr("speaks only for host \"h7\""),
                         HasSubstr("not \"h-3\""), HasSubstr("relay"))));
  v1::StreamTelemetryResponse resp;
  EXPECT_THAT(Stream({own, mixed}, &resp, kHost7Token),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                           AllOf(HasSubstr("message 1 of the stream"),
                                 HasSubstr("events[1].host_id"),
                                 HasSubstr("1 events, were applied"))));
  EXPECT_EQ(TrackedHosts("bound-1"), 1u);

  // No other host's assignment.
  req.set_host_id("h-3");
  EXPECT_THAT(fleet_->GetAssignment(Ctx(kHost7Token).get(), req, &assignment),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                           HasSubstr("host_id: \"h7\" speaks only for")));
  // A host is not an operator.
  v1::ListRolloutsResponse rollouts;
  EXPECT_THAT(rollouts_->ListRollouts(Ctx(kHost7Token).get(), {}, &rollouts),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                           HasSubstr("has role host")));

  // The relay speaks for every host.
  EXPECT_THAT(Report(mixed), GrpcOk());
  EXPECT_THAT(fleet_->GetAssignment(Ctx(kRelayToken).get(), req, &assignment),
              GrpcOk());
  EXPECT_EQ(TrackedHosts("bound-1"), 2u);
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
  CheckIn("channel-file/321", 0, 10);
  auto ctx = Ctx(kRelayToken);
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

// A stream message that does not parse (a proto3 string that is not UTF-8)
// ends the stream at once with INVALID_ARGUMENT naming it: never an OK that
// would acknowledge it, nor a wait until the client's deadline. What came
// before it stays applied.
TEST_F(E2ETelemetryTest, AnUnparseableStreamMessageEndsTheStreamAtOnce) {
  ASSERT_THAT(CreateRelease("cf322-a", "channel-file/322"), GrpcOk());
  ASSERT_THAT(StartRollout("stream-3", "cf322-a", ParsePlan(kManualPlan)),
              GrpcOk());
  CheckIn("channel-file/322", 0, 6);
  auto ctx = Ctx(kRelayToken);
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(30));
  v1::StreamTelemetryResponse resp;
  auto writer = fleet_->StreamTelemetry(ctx.get(), &resp);
  ASSERT_TRUE(writer->Write(Heartbeats(0, 5)));
  v1::TelemetryBatch bad = Heartbeats(5, 1);
  bad.mutable_events(0)->set_host_id("host-\xff\xfe");
  const absl::Time start = absl::Now();
  writer->Write(bad);  // may fail once the server ended the call
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_THAT(status,
              GrpcStatusIs(grpc::StatusCode::INVALID_ARGUMENT,
                           AllOf(HasSubstr("message 1 of the stream: does not "
                                           "parse as a "
                                           "ringfence.v1.TelemetryBatch"),
                                 HasSubstr("the 1 messages before it, 5 "
                                           "events, were applied"))));
  EXPECT_EQ(TrackedHosts("stream-3"), 5);
}

// One connection holds at most --max_streams_per_connection calls open: a
// further call on it waits (here, until its deadline) until one ends, and
// other connections are not held up.
TEST_F(E2ETelemetryTest, CallsPerConnectionAreBounded) {
  server_.reset();
  StartServer({"--max_streams_per_connection=2"});
  auto ctx1 = Ctx(kRelayToken);
  auto ctx2 = Ctx(kRelayToken);
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
