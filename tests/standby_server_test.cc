// What a standby replica serves (service/standby_server.h): health
// NOT_SERVING for the API, UNAVAILABLE for every call, and a port that the
// real server can take over once the standby is shut down; with a Follower,
// GetAssignment from its snapshot or through the leader, never a grant of
// its own, ReportTelemetry and StreamTelemetry through the leader (a
// stream's messages one at a time, each counted once the leader
// acknowledged it), and Fleet's health following the snapshot's freshness.
#include "service/standby_server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "ringfence/clock.h"
#include "ringfence/controller.h"
#include "ringfence/follower.h"
#include "ringfence/store.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/server.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::testing::HasSubstr;

// grpc.health.v1.Health/Check of `service`: 1 SERVING, 2 NOT_SERVING;
// -(status code) if the call failed.
int Health(const std::shared_ptr<grpc::Channel>& channel,
           const std::string& service) {
  std::string request;
  if (!service.empty()) {
    request = absl::StrCat(
        "\x0a", std::string(1, static_cast<char>(service.size())), service);
  }
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice slice(request);
  grpc::ByteBuffer req(&slice, 1), resp;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", {}, &req, &resp,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return -static_cast<int>(status.error_code());
  grpc::Slice out;
  if (!resp.DumpToSingleSlice(&out).ok() || out.size() != 2) return -1;
  return out.begin()[1];
}

// Whether `condition` holds within 10 seconds.
bool Eventually(const std::function<bool()>& condition) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

constexpr int kServing = 1;
constexpr int kNotServing = 2;

TEST(ListenOnPortTest, ReplacesThePort) {
  EXPECT_EQ(ListenOnPort("0.0.0.0:0", 7443), "0.0.0.0:7443");
  EXPECT_EQ(ListenOnPort("127.0.0.1:7443", 7443), "127.0.0.1:7443");
  EXPECT_EQ(ListenOnPort("[::]:0", 8443), "[::]:8443");
  EXPECT_EQ(ListenOnPort("localhost:0", 1), "localhost:1");
  EXPECT_EQ(ListenOnPort("unix:/run/ringfence.sock", 1),
            "unix:/run/ringfence.sock");
}

TEST(StandbyServerTest, RefusesEverythingAndHandsItsPortOn) {
  absl::StatusOr<std::unique_ptr<StandbyServer>> standby =
      StandbyServer::Start("127.0.0.1:0", std::nullopt);
  ASSERT_OK(standby);
  const int port = (*standby)->port();
  ASSERT_GT(port, 0);
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  EXPECT_EQ(Health(channel, ""), kServing);
  // Without a Follower, Fleet too.
  for (const char* service : {"ringfence.v1.Releases", "ringfence.v1.Rollouts",
                              "ringfence.v1.Fleet"}) {
    EXPECT_EQ(Health(channel, service), kNotServing) << service;
  }
  auto rollouts = v1::Rollouts::NewStub(channel);
  const auto list = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    v1::ListRolloutsResponse resp;
    return rollouts->ListRollouts(&ctx, {}, &resp);
  };
  grpc::Status s = list();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "this replica stands by");
  (*standby)->SetMessage("replica \"b\" stands by: replica \"a\" leads");
  s = list();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("replica \"a\" leads"));

  // Shut down, the port is free for the server that takes over.
  (*standby)->Shutdown();
  absl::StatusOr<std::unique_ptr<StandbyServer>> next =
      StandbyServer::Start(ListenOnPort("127.0.0.1:0", port), std::nullopt);
  ASSERT_OK(next);
  EXPECT_EQ((*next)->port(), port);
}

// With tokens, a caller without a valid one is told nothing about who
// leads: UNAUTHENTICATED, as the leader would answer.
TEST(StandbyServerTest, TellsOnlyAuthenticatedCallersWhoLeads) {
  absl::StatusOr<TokenAuthenticator> auth =
      TokenAuthenticator::Parse("op-token operator alice\n", "tokens");
  ASSERT_OK(auth);
  absl::StatusOr<std::unique_ptr<StandbyServer>> standby =
      StandbyServer::Start("127.0.0.1:0", std::nullopt, *std::move(auth));
  ASSERT_OK(standby);
  (*standby)->SetMessage("replica \"b\" stands by: replica \"a\" leads");
  auto rollouts = v1::Rollouts::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*standby)->port()),
                          grpc::InsecureChannelCredentials()));
  const auto list = [&](const std::string& token) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::ListRolloutsResponse resp;
    return rollouts->ListRollouts(&ctx, {}, &resp);
  };
  for (const std::string token : {"", "wrong"}) {
    const grpc::Status s = list(token);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << token;
    EXPECT_THAT(s.error_message(), Not(HasSubstr("leads"))) << token;
  }
  const grpc::Status s = list("op-token");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("replica \"a\" leads"));
}

constexpr char kType[] = "channel-file/500";

MATCHER(GrpcOk, "") {
  *result_listener << "status is " << arg.error_code() << ": "
                   << arg.error_message();
  return arg.ok();
}

// A leader (Controller and Server on a memory store) with rollout "r-1" in
// its dogfood stage, and a follower of the same store behind a standby.
class FollowerStandbyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Controller::Create(store_.get(), &clock_, {});
    ASSERT_OK(c);
    leader_ = *std::move(c);
    Release r;
    r.set_id("cf500-a");
    r.set_content_type(kType);
    r.set_version("1");
    r.set_digest_sha256(std::string(64, 'a'));
    r.set_size_bytes(1);
    ASSERT_OK(leader_->CreateRelease(r, "ci"));
    StartRolloutRequest req;
    req.rollout_id = "r-1";
    req.release_id = "cf500-a";
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
        R"pb(
          name: "manual"
          stages {
            name: "dogfood"
            audience { labels: "ring:dogfood" }
            bake_time { seconds: 3600 }
          }
          stages {
            name: "fleet"
            audience { percent: 100 }
            bake_time { seconds: 3600 }
          }
        )pb",
        &req.plan));
    req.allow_no_baseline = true;
    req.actor = "ci";
    req.reason = "test";
    ASSERT_OK(leader_->StartRollout(req));
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    auto server = Server::Start(leader_.get(), std::move(options));
    ASSERT_OK(server);
    server_ = *std::move(server);
    FollowerOptions fo;
    fo.max_staleness = absl::Seconds(1);
    auto f = Follower::Create(store_.get(), &clock_, fo);
    ASSERT_OK(f);
    follower_ = *std::move(f);
    ASSERT_OK(follower_->Refresh());
    FollowerServing serving;
    serving.follower = follower_.get();
    serving.leader_address = [this] {
      absl::MutexLock lock(&mu_);
      return leader_address_;
    };
    serving.leader_credentials = grpc::InsecureChannelCredentials();
    serving.forward_deadline = absl::Seconds(5);
    serving.poll_interval = absl::Milliseconds(20);
    auto standby = StandbyServer::Start("127.0.0.1:0", std::nullopt,
                                        std::nullopt, {}, std::move(serving));
    ASSERT_OK(standby);
    standby_ = *std::move(standby);
    (*standby_).SetMessage("replica \"b\" stands by: replica \"a\" leads");
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", standby_->port()),
                                   grpc::InsecureChannelCredentials());
    fleet_ = v1::Fleet::NewStub(channel_);
  }

  void SetLeader(const std::string& address) {
    absl::MutexLock lock(&mu_);
    leader_address_ = address;
  }

  grpc::Status Assign(const std::string& host, bool dogfood,
                      v1::ContentAssignment* out, bool forwarded = false) {
    v1::GetAssignmentRequest req;
    req.set_host_id(host);
    if (dogfood) req.add_labels("ring:dogfood");
    req.add_content_types(kType);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    if (forwarded) ctx.AddMetadata("ringfence-forwarded", "1");
    v1::GetAssignmentResponse resp;
    grpc::Status s = fleet_->GetAssignment(&ctx, req, &resp);
    if (s.ok()) *out = resp.assignments(0);
    return s;
  }

  // Streams `batches` to the standby (with `metadata`), half-closes, and
  // returns the answer.
  grpc::Status Stream(
      const std::vector<v1::TelemetryBatch>& batches,
      v1::StreamTelemetryResponse* resp,
      const std::vector<std::pair<std::string, std::string>>& metadata = {}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(20));
    for (const auto& [key, value] : metadata) ctx.AddMetadata(key, value);
    std::unique_ptr<grpc::ClientWriter<v1::TelemetryBatch>> writer =
        fleet_->StreamTelemetry(&ctx, resp);
    for (const v1::TelemetryBatch& batch : batches) {
      if (!writer->Write(batch)) break;  // the stream ended: see Finish
    }
    writer->WritesDone();
    return writer->Finish();
  }

  FakeClock clock_;
  StorePtr store_ = NewMemoryStore();
  std::unique_ptr<Controller> leader_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Follower> follower_;
  std::unique_ptr<StandbyServer> standby_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Fleet::Stub> fleet_;
  absl::Mutex mu_;
  std::string leader_address_ ABSL_GUARDED_BY(mu_);
};

TEST_F(FollowerStandbyTest, AnswersLocallyForwardsGrantsAndNeverGrants) {
  v1::ContentAssignment a;
  // Outside the open stage: answered from the snapshot.
  ASSERT_THAT(Assign("web-1", false, &a), GrpcOk());
  EXPECT_EQ(a.reason(), v1::NOT_YET);
  // A new grant with no leader known: nothing granted, nothing recorded.
  ASSERT_THAT(Assign("dog-1", true, &a), GrpcOk());
  EXPECT_FALSE(a.has_release());
  EXPECT_EQ(a.reason(), v1::STORE_UNAVAILABLE);
  // A leader that does not answer: the same.
  SetLeader("127.0.0.1:1");
  ASSERT_THAT(Assign("dog-1", true, &a), GrpcOk());
  EXPECT_EQ(a.reason(), v1::STORE_UNAVAILABLE);
  auto exposures = store_->ListExposures("r-1");
  ASSERT_OK(exposures);
  EXPECT_TRUE(exposures->empty());
  // The leader: granted there, durably, and relayed; a call another
  // replica forwarded is not forwarded again.
  SetLeader(absl::StrCat("127.0.0.1:", server_->port()));
  ASSERT_THAT(Assign("dog-1", true, &a, /*forwarded=*/true), GrpcOk());
  EXPECT_EQ(a.reason(), v1::STORE_UNAVAILABLE);
  ASSERT_THAT(Assign("dog-1", true, &a), GrpcOk());
  EXPECT_EQ(a.reason(), v1::EXPOSED);
  EXPECT_EQ(a.release_id(), "cf500-a");
  exposures = store_->ListExposures("r-1");
  ASSERT_OK(exposures);
  ASSERT_EQ(exposures->size(), 1u);
  EXPECT_EQ((*exposures)[0].host_id, "dog-1");
  // Telemetry is forwarded to the leader; a call another replica forwarded
  // is not forwarded again, and one the leader does not answer fails:
  // UNAVAILABLE naming the leader.
  const auto report = [&](bool forwarded) {
    grpc::ClientContext ctx;
    if (forwarded) ctx.AddMetadata("ringfence-forwarded", "1");
    v1::ReportTelemetryRequest telemetry;
    telemetry.add_events()->set_host_id("dog-1");
    v1::ReportTelemetryResponse telemetry_resp;
    return fleet_->ReportTelemetry(&ctx, telemetry, &telemetry_resp);
  };
  grpc::Status s = report(/*forwarded=*/true);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("replica \"a\" leads"));
  SetLeader("127.0.0.1:1");
  s = report(/*forwarded=*/false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("forwarding to the leader failed"));
  EXPECT_THAT(s.error_message(), HasSubstr("replica \"a\" leads"));
  // A snapshot older than the bound: UNAVAILABLE, saying why.
  clock_.Advance(absl::Milliseconds(1001));
  s = Assign("web-1", false, &a);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("older than its bound"));
  EXPECT_THAT(s.error_message(), HasSubstr("replica \"a\" leads"));
  ASSERT_OK(follower_->Refresh());
  ASSERT_THAT(Assign("web-1", false, &a), GrpcOk());
  EXPECT_EQ(a.reason(), v1::NOT_YET);
}

// `n` heartbeats of host `host` (running no release).
v1::TelemetryBatch Heartbeats(const std::string& host, int n) {
  v1::TelemetryBatch batch;
  for (int i = 0; i < n; ++i) {
    v1::TelemetryEvent* e = batch.add_events();
    e->set_host_id(host);
    e->set_type(v1::HEARTBEAT);
  }
  return batch;
}

// Fleet's health follows the snapshot: SERVING while it is within its
// bound, NOT_SERVING once it is older; Releases and Rollouts stay
// NOT_SERVING (they say which replica leads).
TEST_F(FollowerStandbyTest, FleetHealthFollowsTheSnapshot) {
  EXPECT_TRUE(Eventually(
      [&] { return Health(channel_, "ringfence.v1.Fleet") == kServing; }));
  EXPECT_EQ(Health(channel_, ""), kServing);
  EXPECT_EQ(Health(channel_, "ringfence.v1.Cluster"), kServing);
  EXPECT_EQ(Health(channel_, "ringfence.v1.Releases"), kNotServing);
  EXPECT_EQ(Health(channel_, "ringfence.v1.Rollouts"), kNotServing);
  // Older than the bound (no poll refreshes it here): NOT_SERVING, without
  // a poll (a poll stuck on the database changes nothing).
  clock_.Advance(absl::Milliseconds(1001));
  EXPECT_TRUE(Eventually(
      [&] { return Health(channel_, "ringfence.v1.Fleet") == kNotServing; }));
  v1::ContentAssignment a;
  EXPECT_EQ(Assign("web-1", false, &a).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  ASSERT_OK(follower_->Refresh());
  EXPECT_TRUE(Eventually(
      [&] { return Health(channel_, "ringfence.v1.Fleet") == kServing; }));
  EXPECT_EQ(Health(channel_, "ringfence.v1.Rollouts"), kNotServing);
}

// A follower's poll refreshes the snapshot and updates health at once; one
// that cannot forward (no credentials for the leader) is NOT_SERVING however
// fresh its snapshot, since the calls that need the leader fail.
TEST_F(FollowerStandbyTest, HealthAfterEachPollAndOnlyIfItCanForward) {
  for (const bool can_forward : {true, false}) {
    SCOPED_TRACE(can_forward ? "can forward" : "cannot forward");
    auto f = Follower::Create(store_.get(), &clock_, {});
    ASSERT_OK(f);
    std::unique_ptr<Follower> follower = *std::move(f);
    std::atomic<int> polls{0};
    FollowerServing serving;
    serving.follower = follower.get();
    serving.poll = [&] {
      if (follower->Refresh().ok()) ++polls;
    };
    // Health is checked only after each poll within this test's time.
    serving.poll_interval = absl::Seconds(30);
    if (can_forward) {
      serving.leader_credentials = grpc::InsecureChannelCredentials();
    }
    auto standby = StandbyServer::Start("127.0.0.1:0", std::nullopt,
                                        std::nullopt, {}, std::move(serving));
    ASSERT_OK(standby);
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*standby)->port()),
                            grpc::InsecureChannelCredentials());
    ASSERT_TRUE(Eventually([&] { return polls > 0; }));
    if (can_forward) {
      EXPECT_TRUE(Eventually(
          [&] { return Health(channel, "ringfence.v1.Fleet") == kServing; }));
    } else {
      absl::SleepFor(absl::Milliseconds(100));
      EXPECT_EQ(Health(channel, "ringfence.v1.Fleet"), kNotServing);
    }
    (*standby)->Shutdown();
  }
}

// A stream through the follower: each message reaches the leader (which
// counts the events), and the answer counts what the leader accepted; the
// first message the leader refuses ends the stream with its error, saying
// how many were applied before it.
TEST_F(FollowerStandbyTest, StreamsTelemetryThroughTheLeader) {
  v1::StreamTelemetryResponse resp;
  // No leader known: UNAVAILABLE naming the leader.
  grpc::Status s = Stream({Heartbeats("web-7", 2)}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("message 0 of the stream"));
  EXPECT_THAT(s.error_message(), HasSubstr("replica \"a\" leads"));
  // A leader that does not answer: the same, saying so.
  SetLeader("127.0.0.1:1");
  s = Stream({Heartbeats("web-7", 2)}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("forwarding to the leader failed"));
  EXPECT_THAT(s.error_message(), HasSubstr("replica \"a\" leads"));
  EXPECT_THAT(s.error_message(),
              HasSubstr("(the 0 messages before it, 0 events, were applied)"));
  // A stream another replica forwarded is not forwarded again.
  SetLeader(absl::StrCat("127.0.0.1:", server_->port()));
  s = Stream({Heartbeats("web-7", 2)}, &resp, {{"ringfence-forwarded", "1"}});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("replica \"a\" leads"));
  auto status = leader_->GetRollout("r-1");
  ASSERT_OK(status);
  EXPECT_EQ(status->telemetry.outside_population_events, 0u);

  // The leader: every message applied there, and acknowledged.
  ASSERT_THAT(Stream({Heartbeats("web-7", 2), Heartbeats("web-8", 3),
                      Heartbeats("web-7", 1)},
                     &resp),
              GrpcOk());
  EXPECT_EQ(resp.accepted_batches(), 3u);
  EXPECT_EQ(resp.accepted_events(), 6u);
  status = leader_->GetRollout("r-1");
  ASSERT_OK(status);
  // (Hosts that never asked for their assignment: counted, not judged.)
  EXPECT_EQ(status->telemetry.outside_population_events, 6u);

  // The leader refuses the second message: the stream ends with its error;
  // the first was applied, the third never sent.
  v1::TelemetryBatch bad = Heartbeats("web-9", 1);
  bad.mutable_events(0)->set_type(v1::EVENT_TYPE_UNSPECIFIED);
  s = Stream({Heartbeats("web-7", 2), bad, Heartbeats("web-7", 4)}, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("message 1 of the stream: events[0].type"));
  EXPECT_THAT(s.error_message(),
              HasSubstr("(the 1 messages before it, 2 events, were applied)"));
  status = leader_->GetRollout("r-1");
  ASSERT_OK(status);
  EXPECT_EQ(status->telemetry.outside_population_events, 8u);
}

// A leader that answers ReportTelemetry when the test says so, recording
// each call's events and metadata.
class FakeLeader final : public v1::Fleet::CallbackService {
 public:
  struct Call {
    int events = 0;
    std::string authorization;
    std::string forwarded;
  };

  grpc::ServerUnaryReactor* ReportTelemetry(
      grpc::CallbackServerContext* ctx, const v1::ReportTelemetryRequest* req,
      v1::ReportTelemetryResponse* resp) override {
    Call call;
    call.events = req->events_size();
    for (const auto& [key, value] : ctx->client_metadata()) {
      const std::string v(value.data(), value.size());
      if (key == "authorization") call.authorization = v;
      if (key == "ringfence-forwarded") call.forwarded = v;
    }
    absl::MutexLock lock(&mu_);
    calls_.push_back(call);
    pending_.push_back({ctx->DefaultReactor(), resp, call.events});
    return pending_.back().reactor;
  }

  // The calls received so far.
  std::vector<Call> calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  // How many calls wait for an answer.
  size_t pending() {
    absl::MutexLock lock(&mu_);
    return pending_.size();
  }
  // Answers the oldest pending call: OK accepting its events, or `status`.
  void Answer(const grpc::Status& status) {
    Pending p;
    {
      absl::MutexLock lock(&mu_);
      p = pending_.front();
      pending_.pop_front();
    }
    if (status.ok()) p.resp->set_accepted_events(p.events);
    p.reactor->Finish(status);
  }

 private:
  struct Pending {
    grpc::ServerUnaryReactor* reactor = nullptr;
    v1::ReportTelemetryResponse* resp = nullptr;
    int events = 0;
  };
  absl::Mutex mu_;
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
};

// Backpressure and acknowledgement against a leader the test controls: the
// follower forwards the next message only once the leader answered the one
// before, with the caller's credentials and the mark that stops a second
// forward; a message the leader did not answer within the forward deadline
// is not counted, and the stream fails UNAVAILABLE for the caller to
// re-send.
TEST_F(FollowerStandbyTest, ForwardsOneMessageAtATimeAndCountsOnlyAnswers) {
  FakeLeader fake;
  grpc::ServerBuilder builder;
  int fake_port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &fake_port);
  builder.RegisterService(&fake);
  std::unique_ptr<grpc::Server> fake_server = builder.BuildAndStart();
  ASSERT_NE(fake_server, nullptr);
  SetLeader(absl::StrCat("127.0.0.1:", fake_port));

  v1::StreamTelemetryResponse resp;
  grpc::Status s;
  std::thread agent([&] {
    s = Stream({Heartbeats("web-1", 1), Heartbeats("web-2", 2),
                Heartbeats("web-3", 3)},
               &resp, {{"authorization", "Bearer agent-token"}});
  });
  ASSERT_TRUE(Eventually([&] { return fake.pending() == 1; }));
  // The caller has sent all three; the follower holds the second back.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(fake.calls().size(), 1u);
  fake.Answer(grpc::Status::OK);
  ASSERT_TRUE(Eventually([&] { return fake.calls().size() == 2; }));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(fake.calls().size(), 2u);
  // The leader is out of room for the second: its error, and the count of
  // what it accepted before; the third is never sent.
  fake.Answer(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                           "too many events in flight"));
  agent.join();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("message 1 of the stream: too many events in flight "
                        "(the 1 messages before it, 1 events, were applied)"));
  const std::vector<FakeLeader::Call> calls = fake.calls();
  ASSERT_EQ(calls.size(), 2u);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].events, static_cast<int>(i) + 1);
    EXPECT_EQ(calls[i].authorization, "Bearer agent-token");
    EXPECT_EQ(calls[i].forwarded, "1");
  }

  // A leader that does not answer within the forward deadline (5 s here):
  // the message is not counted, and the caller is told to re-send.
  std::thread agent2([&] {
    s = Stream({Heartbeats("web-1", 1), Heartbeats("web-2", 2)}, &resp);
  });
  ASSERT_TRUE(Eventually([&] { return fake.pending() == 1; }));
  fake.Answer(grpc::Status::OK);
  ASSERT_TRUE(Eventually([&] { return fake.pending() == 1; }));
  agent2.join();  // the second message's deadline passes
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(),
              HasSubstr("message 1 of the stream: forwarding to the leader "
                        "failed"));
  EXPECT_THAT(s.error_message(),
              HasSubstr("(the 1 messages before it, 1 events, were applied)"));
  fake.Answer(grpc::Status::OK);  // too late: nobody listens
  fake_server->Shutdown();
}

}  // namespace
}  // namespace ringfence
