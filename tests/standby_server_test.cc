// What a standby replica serves (service/standby_server.h): health
// NOT_SERVING for the API, UNAVAILABLE for every call, and a port that the
// real server can take over once the standby is shut down.
#include "service/standby_server.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
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
  EXPECT_EQ(Health(channel, ""), 1);
  for (const char* service : {"ringfence.v1.Releases", "ringfence.v1.Rollouts",
                              "ringfence.v1.Fleet"}) {
    EXPECT_EQ(Health(channel, service), 2) << service;
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

}  // namespace
}  // namespace ringfence
