// Webhook notifications of the real ringfenced (--webhooks_file) to a real
// HTTP receiver in the test process: every notifying audit entry arrives,
// signed, with a unique id, after the receiver's failures are retried; and
// after kill -9 while the receiver is down, nothing acknowledged is sent
// again and nothing is lost.
#include <httplib.h>
#include <signal.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "e2e_fixture.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "service/webhook_message.h"

namespace ringfence::e2e {
namespace {

using cfg::AuditEntry;

constexpr char kSecret[] = "e2e-webhook-secret-7d3a9c1b5e";

// What the receiver saw.
struct Delivery {
  std::string id;
  std::string body;
  bool signature_ok = false;
};

// A webhook receiver on 127.0.0.1: answers 500 to the first `fail_first`
// requests, 200 after; records what it acknowledged.
class Receiver {
 public:
  // Listens on `port` (0: any free port). `hang`: each request waits (up
  // to 60s, or until the receiver is destroyed) before its answer.
  Receiver(int port, int fail_first, bool hang = false)
      : fail_left_(fail_first) {
    server_.Post("/hook", [this, hang](const httplib::Request& req,
                                       httplib::Response& res) {
      if (hang) {
        hung_.Notify();
        release_.WaitForNotificationWithTimeout(absl::Seconds(60));
      }
      absl::MutexLock lock(&mu_);
      ++requests_;
      if (fail_left_ > 0) {
        --fail_left_;
        res.status = 500;
        return;
      }
      Delivery d;
      d.id = req.get_header_value("X-Ringfence-Delivery");
      d.body = req.body;
      d.signature_ok =
          Verify(req.get_header_value("X-Ringfence-Signature"), req.body);
      acked_.push_back(std::move(d));
      res.status = 200;
      res.set_content("ok", "text/plain");
    });
    port_ = port == 0 ? server_.bind_to_any_port("127.0.0.1")
                      : (server_.bind_to_port("127.0.0.1", port) ? port : -1);
    if (port_ > 0)
      thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Receiver() {
    release_.Notify();
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  int port() const { return port_; }
  // True once a request is hanging (hang mode).
  bool hanging() const { return hung_.HasBeenNotified(); }
  int requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::vector<Delivery> acked() {
    absl::MutexLock lock(&mu_);
    return acked_;
  }

  // What a receiver does: recompute the HMAC over "<t>." + body, and
  // refuse timestamps more than 5 minutes away.
  static bool Verify(const std::string& header, const std::string& body) {
    std::map<std::string, std::string> parts;
    for (absl::string_view kv : absl::StrSplit(header, ',')) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, '=');
      parts[p.first] = p.second;
    }
    int64_t t = 0;
    if (!absl::SimpleAtoi(parts["t"], &t)) return false;
    if (std::abs(absl::ToUnixSeconds(absl::Now()) - t) > 300) return false;
    return parts["v1"] == HmacSha256Hex(kSecret, absl::StrCat(t, ".", body));
  }

 private:
  httplib::Server server_;
  absl::Notification hung_, release_;
  std::thread thread_;
  int port_ = -1;
  absl::Mutex mu_;
  int fail_left_ ABSL_GUARDED_BY(mu_);
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Delivery> acked_ ABSL_GUARDED_BY(mu_);
};

google::protobuf::Struct Json(const std::string& body) {
  google::protobuf::Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(body, &s).ok())
      << body;
  return s;
}

class E2EWebhookTest : public E2ETest {
 protected:
  void StartWithWebhooks(int receiver_port, const std::string& timeout = "2s") {
    WriteFile(dir_ + "/hook-secret", absl::StrCat(kSecret, "\n"));
    WriteFile(dir_ + "/webhooks.textproto",
              absl::StrCat("webhooks {\n  name: \"ops\"\n  url: "
                           "\"http://127.0.0.1:",
                           receiver_port,
                           "/hook\"\n  secret_file: \"hook-secret\"\n}\n"));
    server_flags_ = {
        "--webhooks_file=" + dir_ + "/webhooks.textproto",
        "--webhook_backoff_initial=50ms", "--webhook_backoff_max=200ms",
        "--webhook_poll_interval=50ms", "--webhook_timeout=" + timeout};
    StartServer();
  }

  // The ids every notifying entry of the audit log should be delivered as.
  std::vector<std::string> ExpectedIds() {
    std::vector<std::string> ids;
    v1::ListAuditRequest req;
    req.set_limit(1000);
    v1::ListAuditResponse resp;
    EXPECT_THAT(rollouts_->ListAudit(Ctx(kOperatorToken).get(), req, &resp),
                GrpcOk());
    const std::set<std::string> notifying = {
        "halt",     "abort",          "pause",
        "resume",   "promote",        "gate_promote",
        "complete", "emergency_stop", "clear_emergency_stop"};
    for (const AuditEntry& e : resp.entries()) {
      if (notifying.count(e.action()) > 0) {
        ids.push_back(absl::StrCat("ops:", e.seq()));
      }
    }
    return ids;
  }

  static std::multiset<std::string> Ids(const std::vector<Delivery>& ds) {
    std::multiset<std::string> ids;
    for (const Delivery& d : ds) ids.insert(d.id);
    return ids;
  }

  // Waits until every expected id was acknowledged, by `receiver` or
  // (`earlier`) before it.
  bool AllDelivered(Receiver& receiver, absl::Duration timeout,
                    const std::multiset<std::string>& earlier = {}) {
    return Eventually(
        [&] {
          const std::multiset<std::string> got = Ids(receiver.acked());
          for (const std::string& id : ExpectedIds()) {
            if (got.count(id) == 0 && earlier.count(id) == 0) return false;
          }
          return true;
        },
        timeout);
  }
};

TEST_F(E2EWebhookTest, DeliversSignedRetriedAndExactlyOnceAcrossKill9) {
  auto receiver = std::make_unique<Receiver>(0, /*fail_first=*/3);
  const int receiver_port = receiver->port();
  ASSERT_GT(receiver_port, 0);
  StartWithWebhooks(receiver_port);

  // Pause and resume one rollout; the gate halts another.
  ASSERT_THAT(CreateRelease("hk-rel", "ct/hooks"), GrpcOk());
  ASSERT_THAT(StartRollout("hk-1", "hk-rel", ParsePlan(kManualPlan)), GrpcOk());
  ASSERT_THAT(Act("pause", "hk-1", kOperatorToken), GrpcOk());
  ASSERT_THAT(Act("resume", "hk-1", kOperatorToken), GrpcOk());
  ASSERT_THAT(CreateRelease("cf292-good", "channel-file/292", kDigestA),
              GrpcOk());
  ASSERT_THAT(CreateRelease("cf292-bootloop", "channel-file/292", kDigestB),
              GrpcOk());
  AdoptBaseline("cf292-good", ParsePlan(kBootLoopPlan));
  ASSERT_THAT(StartRollout("bad-1", "cf292-bootloop", ParsePlan(kBootLoopPlan),
                           nullptr, "cf292-good"),
              GrpcOk());
  {
    FleetOptions options = Fleet("channel-file/292");
    options.boot_loop_releases = {"cf292-bootloop"};
    FleetEmulator fleet(options);
    fleet.Start();
    ASSERT_TRUE(WaitForState("bad-1", cfg::HALTED, absl::Seconds(30)));
  }

  ASSERT_TRUE(AllDelivered(*receiver, absl::Seconds(30)))
      << "expected " << ExpectedIds().size() << ", got "
      << receiver->acked().size();
  const std::vector<Delivery> first = receiver->acked();
  // The three 500s were retried.
  EXPECT_GE(receiver->requests(), static_cast<int>(first.size()) + 3);
  std::set<std::string> actions;
  for (const Delivery& d : first) {
    EXPECT_TRUE(d.signature_ok) << d.id;
    const google::protobuf::Struct body = Json(d.body);
    EXPECT_EQ(body.fields().at("id").string_value(), d.id);
    const std::string action = body.fields().at("action").string_value();
    actions.insert(action);
    if (action == "pause") {
      EXPECT_EQ(body.fields().at("rollout_id").string_value(), "hk-1");
      EXPECT_EQ(body.fields().at("content_type").string_value(), "ct/hooks");
      EXPECT_EQ(body.fields().at("release_id").string_value(), "hk-rel");
      EXPECT_EQ(body.fields().at("state").string_value(), "paused");
      EXPECT_EQ(body.fields().at("actor").string_value(), "alice");
    }
    if (action == "halt") {
      EXPECT_EQ(body.fields().at("rollout_id").string_value(), "bad-1");
      EXPECT_NE(body.fields().at("evidence").string_value(), "") << d.body;
      EXPECT_THAT(body.fields().at("text").string_value(), HasSubstr("bad-1"));
    }
    const auto& head = body.fields().at("audit_head").struct_value();
    EXPECT_GE(head.fields().at("seq").number_value(),
              body.fields().at("audit_seq").number_value());
    EXPECT_EQ(head.fields().at("hash").string_value().size(), 64u);
  }
  EXPECT_THAT(actions, AllOf(Contains("pause"), Contains("resume"),
                             Contains("halt"), Contains("promote")));
  // One delivery per audit seq.
  const std::multiset<std::string> first_ids = Ids(first);
  EXPECT_EQ(std::set<std::string>(first_ids.begin(), first_ids.end()).size(),
            first_ids.size());

  // The receiver goes down; more happens; ringfenced is killed.
  receiver.reset();
  ASSERT_THAT(Act("pause", "hk-1", kOperatorToken), GrpcOk());
  ASSERT_THAT(Act("abort", "hk-1", kOperatorToken), GrpcOk());
  const size_t expected_before_kill = ExpectedIds().size();
  EXPECT_EQ(expected_before_kill, first.size() + 2);
  absl::SleepFor(absl::Milliseconds(400));  // failing attempts meanwhile
  server_->Signal(SIGKILL);
  ASSERT_EQ(server_->Wait(absl::Seconds(10)), 128 + SIGKILL);

  StartServer();
  receiver = std::make_unique<Receiver>(receiver_port, /*fail_first=*/0);
  ASSERT_EQ(receiver->port(), receiver_port);
  ASSERT_TRUE(AllDelivered(*receiver, absl::Seconds(30), first_ids))
      << "expected " << absl::StrJoin(ExpectedIds(), " ") << "; got "
      << absl::StrJoin(Ids(receiver->acked()), " ");
  absl::SleepFor(absl::Milliseconds(500));  // nothing more should come
  const std::vector<Delivery> second = receiver->acked();
  const std::multiset<std::string> second_ids = Ids(second);
  for (const std::string& id : first_ids) {
    EXPECT_EQ(second_ids.count(id), 0u) << id << " was acknowledged before";
  }
  // Every new entry exactly once (none was acknowledged before the kill).
  EXPECT_EQ(second.size(), 2u);
  std::set<std::string> all(first_ids.begin(), first_ids.end());
  for (const Delivery& d : second) {
    EXPECT_TRUE(d.signature_ok) << d.id;
    all.insert(d.id);
  }
  const std::vector<std::string> expected = ExpectedIds();
  EXPECT_EQ(all, std::set<std::string>(expected.begin(), expected.end()));
  EXPECT_EQ(expected.size(), expected_before_kill);
}

TEST_F(E2EWebhookTest, ShutdownDoesNotWaitForAHangingReceiver) {
  Receiver receiver(0, /*fail_first=*/0, /*hang=*/true);
  ASSERT_GT(receiver.port(), 0);
  StartWithWebhooks(receiver.port(), "30s");
  server_flags_.clear();
  ASSERT_THAT(CreateRelease("hang-rel", "ct/hang"), GrpcOk());
  ASSERT_THAT(StartRollout("hang-1", "hang-rel", ParsePlan(kManualPlan)),
              GrpcOk());
  ASSERT_THAT(Act("pause", "hang-1", kOperatorToken), GrpcOk());
  ASSERT_TRUE(
      Eventually([&] { return receiver.hanging(); }, absl::Seconds(10)));
  // The POST in flight (its --webhook_timeout is 30s) is abandoned: it
  // does not hold up a graceful shutdown.
  const absl::Time start = absl::Now();
  server_->Signal(SIGTERM);
  EXPECT_EQ(server_->Wait(absl::Seconds(10)), 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(6));
}

TEST_F(E2EWebhookTest, BadConfigStopsStartupNamingTheField) {
  WriteFile(dir_ + "/hook-secret", "short\n");
  WriteFile(dir_ + "/webhooks.textproto",
            "webhooks { name: \"ops\" url: \"http://user:pw@127.0.0.1:1/\" "
            "secret_file: \"hook-secret\" }\n");
  const CommandResult r =
      RunServerToExit({"--webhooks_file=" + dir_ + "/webhooks.textproto"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, AllOf(HasSubstr("--webhooks_file: webhooks[0] (\"ops\")"
                                     ".secret_file"),
                           Not(HasSubstr("short")), Not(HasSubstr("pw@"))));
}

}  // namespace
}  // namespace ringfence::e2e
