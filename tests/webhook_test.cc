// Webhook notifications: the body and signature (deterministic), the
// config's checks, the cursor file, and the notifier's delivery loop over a
// memory store with a scripted HTTP client.
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "ringfence/clock.h"
#include "ringfence/model.h"
#include "ringfence/store.h"
#include "service/webhook_config.h"
#include "service/webhook_cursor.h"
#include "service/webhook_message.h"
#include "service/webhook_notifier.h"
#include "status_matchers.h"

namespace ringfence {
namespace {

using ::google::protobuf::Struct;
using ::ringfence::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string TempDir() {
  std::string dir = ::testing::TempDir() + "webhook_test_XXXXXX";
  EXPECT_NE(mkdtemp(dir.data()), nullptr);
  return dir;
}

void Write(const std::string& path, const std::string& text) {
  ASSERT_TRUE(WriteFileAtomically(path, text).ok());
}

Struct ParseJson(const std::string& body) {
  Struct s;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(body, &s).ok())
      << body;
  return s;
}

std::string Str(const Struct& s, const std::string& field) {
  auto it = s.fields().find(field);
  return it == s.fields().end() ? "<absent>" : it->second.string_value();
}

double Num(const Struct& s, const std::string& field) {
  auto it = s.fields().find(field);
  return it == s.fields().end() ? -1 : it->second.number_value();
}

// RFC 4231, test case 2.
TEST(WebhookMessageTest, HmacSha256MatchesRfc4231) {
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(WebhookMessageTest, SignatureSignsTimestampDotBody) {
  const absl::Time t = absl::FromUnixSeconds(1700000123);
  const std::string body = R"({"id":"ops:7"})";
  EXPECT_EQ(WebhookSignature("s3cret-key-0123456789", t, body),
            absl::StrCat("t=1700000123,v1=",
                         HmacSha256Hex("s3cret-key-0123456789",
                                       absl::StrCat("1700000123.", body))));
  // Another secret, time or body gives another signature.
  EXPECT_NE(WebhookSignature("s3cret-key-0123456789", t, body),
            WebhookSignature("other-key-0123456789", t, body));
  EXPECT_NE(
      WebhookSignature("s3cret-key-0123456789", t, body),
      WebhookSignature("s3cret-key-0123456789", t + absl::Seconds(1), body));
  EXPECT_NE(WebhookSignature("s3cret-key-0123456789", t, body),
            WebhookSignature("s3cret-key-0123456789", t, body + " "));
}

AuditEntry HaltEntry() {
  AuditEntry a;
  a.set_seq(42);
  *a.mutable_at() = ToProtoTime(absl::FromUnixSeconds(1700000000));
  a.set_actor("gate");
  a.set_action("halt");
  a.set_reason("circuit breaker: crash");
  a.set_rollout_id("r1");
  a.set_from_state(config::v1::RUNNING);
  a.set_to_state(config::v1::HALTED);
  Decision* d = a.mutable_decision();
  d->set_summary("HALT: crash");
  auto* e = d->add_evidence();
  e->set_rule("circuit_breaker");
  e->set_explanation("4 hosts crashed, more than the 3 allowed");
  a.set_hash(std::string(64, 'c'));
  return a;
}

TEST(WebhookMessageTest, HaltBodyCarriesEvidenceAndHead) {
  Rollout r;
  r.set_id("r1");
  r.set_release_id("rel-2");
  r.set_content_type("channel-file/292");
  WebhookEvent e = WebhookEventFromAudit(HaltEntry(), &r);
  e.head_seq = 44;
  e.head_hash = std::string(64, 'e');
  const std::string body = WebhookBody("ops", e);
  const Struct s = ParseJson(body);
  EXPECT_EQ(Str(s, "id"), "ops:42");
  EXPECT_EQ(Num(s, "audit_seq"), 42);
  EXPECT_EQ(Str(s, "action"), "halt");
  EXPECT_EQ(Str(s, "rollout_id"), "r1");
  EXPECT_EQ(Str(s, "release_id"), "rel-2");
  EXPECT_EQ(Str(s, "content_type"), "channel-file/292");
  EXPECT_EQ(Str(s, "state"), "halted");
  EXPECT_EQ(Str(s, "actor"), "gate");
  EXPECT_EQ(Str(s, "reason"), "circuit breaker: crash");
  EXPECT_EQ(Str(s, "evidence"), "4 hosts crashed, more than the 3 allowed");
  EXPECT_EQ(Str(s, "time"), "2023-11-14T22:13:20.000Z");
  const Struct& head = s.fields().at("audit_head").struct_value();
  EXPECT_EQ(Num(head, "seq"), 44);
  EXPECT_EQ(Str(head, "hash"), std::string(64, 'e'));
  EXPECT_EQ(Str(s, "text"),
            "ringfence: rollout r1 (release rel-2, channel-file/292) halt -> "
            "halted by gate: 4 hosts crashed, more than the 3 allowed");
  // Deterministic: the same event gives the same bytes.
  EXPECT_EQ(body, WebhookBody("ops", e));
}

TEST(WebhookMessageTest, TextIsEscapedAndOneLine) {
  AuditEntry a;
  a.set_seq(3);
  a.set_actor("alice");
  a.set_action("pause");
  a.set_rollout_id("r\"1");
  a.set_to_state(config::v1::PAUSED);
  a.set_reason("line one\nline \"two\"\\ \x01 end");
  const WebhookEvent e = WebhookEventFromAudit(a, nullptr);
  const std::string body = WebhookBody("ops", e);
  const Struct s = ParseJson(body);
  EXPECT_EQ(Str(s, "reason"), "line one\nline \"two\"\\ \x01 end");
  EXPECT_EQ(Str(s, "rollout_id"), "r\"1");
  EXPECT_THAT(Str(s, "text"), Not(HasSubstr("\n")));
  EXPECT_THAT(Str(s, "text"), HasSubstr("paused by alice: line one line"));
}

TEST(WebhookMessageTest, LongReasonsAreCut) {
  AuditEntry a;
  a.set_seq(3);
  a.set_action("abort");
  a.set_reason(std::string(10000, 'x'));
  const Struct s = ParseJson(WebhookBody("ops", WebhookEventFromAudit(a, {})));
  EXPECT_LE(Str(s, "reason").size(), 4100u);
  EXPECT_LE(Str(s, "text").size(), 4100u);
}

TEST(WebhookMessageTest, EmergencyStopNamesItsContentType) {
  AuditEntry a;
  a.set_seq(9);
  a.set_actor("root");
  a.set_action("emergency_stop");
  a.set_reason("ct:a/b: crashes everywhere");
  const WebhookEvent e = WebhookEventFromAudit(a, nullptr);
  EXPECT_EQ(e.content_type, "ct:a/b");
  EXPECT_EQ(e.reason, "crashes everywhere");
  EXPECT_EQ(e.state, "");
  EXPECT_EQ(WebhookSummary(e),
            "ringfence: emergency stop of ct:a/b set by root: crashes "
            "everywhere");
}

// The two-person rule: a request notifies its would-be approvers; the
// approved action names both principals.
TEST(WebhookMessageTest, ApprovalRequestsAndApprovedActionsNameThePeople) {
  AuditEntry requested;
  requested.set_seq(12);
  requested.set_actor("alice");
  requested.set_action("approval_requested");
  requested.set_rollout_id("r-1");
  requested.set_reason("dogfood is fine");
  config::v1::ApprovalRequest* r = requested.mutable_approval_request();
  r->set_id("apr-00000000000000ab");
  r->set_action("promote");
  r->set_content_type("ct/a");
  r->set_rollout_id("r-1");
  *r->mutable_expires_at() = ToProtoTime(absl::FromUnixSeconds(1721365200));
  const WebhookEvent e = WebhookEventFromAudit(requested, nullptr);
  EXPECT_EQ(e.content_type, "ct/a");
  EXPECT_EQ(e.state, "");
  EXPECT_TRUE(Wants(WebhookTarget(), e.action, e.content_type));
  EXPECT_EQ(WebhookSummary(e),
            "ringfence: approval request apr-00000000000000ab: promote of "
            "rollout r-1 (ct/a) waits for a second principal until "
            "2024-07-19T05:00:00Z by alice: dogfood is fine");
  Struct s = ParseJson(WebhookBody("ops", e));
  EXPECT_EQ(Str(s, "approval_request_id"), "apr-00000000000000ab");

  AuditEntry approved;
  approved.set_seq(13);
  approved.set_actor("alice");
  approved.set_action("promote");
  approved.set_rollout_id("r-1");
  approved.set_to_state(config::v1::RUNNING);
  approved.set_approved_by("bob");
  approved.set_approval_request_id("apr-00000000000000ab");
  const WebhookEvent a = WebhookEventFromAudit(approved, nullptr);
  EXPECT_THAT(WebhookSummary(a), HasSubstr("by alice, approved by bob"));
  s = ParseJson(WebhookBody("ops", a));
  EXPECT_EQ(Str(s, "approved_by"), "bob");
  EXPECT_EQ(Str(s, "approval_request_id"), "apr-00000000000000ab");
}

TEST(WebhookConfigTest, FiltersByEventAndContentType) {
  WebhookTarget all;
  EXPECT_TRUE(Wants(all, "halt", "ct/a"));
  EXPECT_TRUE(Wants(all, "clear_emergency_stop", "ct/a"));
  EXPECT_FALSE(Wants(all, "start", "ct/a"));
  EXPECT_FALSE(Wants(all, "create_release", ""));
  WebhookTarget some;
  some.events = {"halt", "abort"};
  some.content_types = {"ct/a"};
  EXPECT_TRUE(Wants(some, "halt", "ct/a"));
  EXPECT_FALSE(Wants(some, "halt", "ct/b"));
  EXPECT_FALSE(Wants(some, "pause", "ct/a"));
}

class WebhookConfigFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    Write(dir_ + "/secret", "  very-secret-key-0123456789\n");
  }
  absl::StatusOr<std::vector<WebhookTarget>> Load(const std::string& text) {
    Write(dir_ + "/webhooks.textproto", text);
    return LoadWebhookConfig(dir_ + "/webhooks.textproto");
  }
  std::string dir_;
};

TEST_F(WebhookConfigFileTest, LoadsAndResolvesTheSecret) {
  auto t = Load(R"pb(
    webhooks {
      name: "ops"
      url: "https://hooks.example/T0/B0"
      events: "halt"
      secret_file: "secret"
    }
    webhooks {
      name: "audit-copy"
      url: "http://127.0.0.1:9/x"
      content_types: "ct/a"
      secret_file: "secret"
    })pb");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].name, "ops");
  EXPECT_EQ((*t)[0].secret, "very-secret-key-0123456789");
  EXPECT_TRUE((*t)[0].events.contains("halt"));
  EXPECT_TRUE((*t)[1].content_types.contains("ct/a"));
}

TEST_F(WebhookConfigFileTest, NamesTheBadFieldWithoutSecretsOrUrls) {
  EXPECT_THAT(Load(R"pb(webhooks {
                          name: "ops"
                          url: "ftp://user:pw@host/x"
                          secret_file: "secret"
                        })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("webhooks[0] (\"ops\").url"),
                             Not(HasSubstr("pw@host")))));
  EXPECT_THAT(Load(R"pb(webhooks {
                          name: "a"
                          url: "http://h/"
                          secret_file: "secret"
                        }
                        webhooks {
                          name: "a"
                          url: "http://h/"
                          secret_file: "secret"
                        })pb"),
              StatusIs(
                  absl::StatusCode::kInvalidArgument,
                  HasSubstr("webhooks[1] (\"a\").name: used by an earlier")));
  EXPECT_THAT(Load(R"pb(webhooks { name: "Bad Name" url: "http://h/" })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("webhooks[0].name")));
  EXPECT_THAT(Load(R"pb(webhooks { name: "a" url: "http://h/" })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("secret_file: required")));
  EXPECT_THAT(Load(R"pb(webhooks {
                          name: "a"
                          url: "http://h/"
                          events: "start"
                          secret_file: "secret"
                        })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("events: unknown event \"start\"")));
  Write(dir_ + "/short", "tiny");
  EXPECT_THAT(Load(R"pb(webhooks {
                          name: "a"
                          url: "http://h/"
                          secret_file: "short"
                        })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("16 to 4096 bytes (got 4)"),
                             Not(HasSubstr("tiny")))));
  EXPECT_THAT(Load(R"pb(webhooks {
                          name: "a"
                          url: "http://h/"
                          secret_file: "missing"
                        })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("secret_file: ")));
}

TEST(WebhookCursorTest, RoundTripsAndRefusesGarbage) {
  const std::string dir = TempDir();
  const std::string path = dir + "/ops.cursor";
  auto none = ReadWebhookCursor(path);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(WriteWebhookCursor(path, 17).ok());
  ASSERT_TRUE(WriteWebhookCursor(path, 18).ok());
  auto got = ReadWebhookCursor(path);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value_or(0), 18u);
  Write(path, "eighteen\n");
  EXPECT_THAT(ReadWebhookCursor(path).status(),
              StatusIs(absl::StatusCode::kDataLoss));
  Write(path, std::string(1000, '1'));
  EXPECT_THAT(ReadWebhookCursor(path).status(),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(WebhookNotifierTest, BackoffDoublesWithJitterUpToTheCap) {
  const absl::Duration s = absl::Seconds(1), cap = absl::Minutes(5);
  EXPECT_EQ(WebhookNotifier::Backoff(s, cap, 0, 0.0), absl::Milliseconds(500));
  EXPECT_EQ(WebhookNotifier::Backoff(s, cap, 0, 1.0), s);
  EXPECT_EQ(WebhookNotifier::Backoff(s, cap, 3, 1.0), absl::Seconds(8));
  EXPECT_EQ(WebhookNotifier::Backoff(s, cap, 30, 1.0), cap);
  EXPECT_EQ(WebhookNotifier::Backoff(s, cap, 1000, 0.0), cap / 2);
}

// Records every POST; fails those while `fail_next` > 0.
struct FakeReceiver {
  absl::Mutex mu;
  int fail_next ABSL_GUARDED_BY(mu) = 0;
  std::vector<std::string> acked ABSL_GUARDED_BY(mu);  // delivery ids
  int attempts ABSL_GUARDED_BY(mu) = 0;
  std::vector<std::string> bodies ABSL_GUARDED_BY(mu);
  std::vector<std::string> signatures ABSL_GUARDED_BY(mu);
};

class FakeHttp : public WebhookHttpClient {
 public:
  explicit FakeHttp(FakeReceiver* r) : r_(r) {}
  WebhookHttpResult Post(
      const std::string&,
      const std::vector<std::pair<std::string, std::string>>& headers,
      const std::string& body) override {
    absl::MutexLock lock(&r_->mu);
    ++r_->attempts;
    WebhookHttpResult result;
    if (r_->fail_next > 0) {
      --r_->fail_next;
      result.status = 503;
      result.error = "HTTP 503";
      return result;
    }
    for (const auto& [name, value] : headers) {
      if (name == "X-Ringfence-Delivery") r_->acked.push_back(value);
      if (name == "X-Ringfence-Signature") r_->signatures.push_back(value);
    }
    r_->bodies.push_back(body);
    result.status = 204;
    return result;
  }

 private:
  FakeReceiver* r_;
};

class WebhookNotifierLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    store_ = NewMemoryStore();
  }

  void Append(const std::string& action, const std::string& reason) {
    AuditEntry a;
    *a.mutable_at() = ToProtoTime(clock_.Now());
    a.set_actor("alice");
    a.set_action(action);
    a.set_reason(reason);
    ASSERT_TRUE(store_->AppendAudit(a).ok());
  }

  std::unique_ptr<WebhookNotifier> Start() {
    WebhookTarget t;
    t.name = "ops";
    t.url = "http://receiver.invalid/";
    t.secret = "very-secret-key-0123456789";
    t.content_types = {"ct/a"};
    WebhookNotifierOptions o;
    o.legacy_cursor_dir = dir_ + "/webhooks";
    o.poll_interval = absl::Milliseconds(5);
    o.backoff_initial = absl::Milliseconds(1);
    o.backoff_max = absl::Milliseconds(4);
    o.http_factory = [this](const WebhookHttpOptions&,
                            const std::atomic<bool>*) {
      return std::make_unique<FakeHttp>(&receiver_);
    };
    auto n = WebhookNotifier::Start(store_.get(), &clock_, {t}, o);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *std::move(n) : nullptr;
  }

  bool WaitForAcked(size_t n) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      {
        absl::MutexLock lock(&receiver_.mu);
        if (receiver_.acked.size() >= n) return true;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }

  std::string dir_;
  FakeClock clock_;
  StorePtr store_;
  FakeReceiver receiver_;
};

TEST_F(WebhookNotifierLoopTest, DeliversInOrderRetriesAndResumesAfterCursor) {
  // History before the webhook existed is not sent.
  Append("emergency_stop", "ct/a: before the webhook");
  auto n = Start();
  ASSERT_NE(n, nullptr);
  {
    absl::MutexLock lock(&receiver_.mu);
    receiver_.fail_next = 3;
  }
  Append("emergency_stop", "ct/a: bad");          // seq 2
  Append("create_release", "");                   // 3: never notifies
  Append("emergency_stop", "ct/b: other type");   // 4: filtered out
  Append("clear_emergency_stop", "ct/a: fixed");  // 5
  ASSERT_TRUE(WaitForAcked(2));
  n.reset();
  {
    absl::MutexLock lock(&receiver_.mu);
    EXPECT_THAT(receiver_.acked, ElementsAre("ops:2", "ops:5"));
    EXPECT_EQ(receiver_.attempts, 5);  // 3 failures, then 2 deliveries
    const Struct last = ParseJson(receiver_.bodies.back());
    EXPECT_EQ(Str(last, "action"), "clear_emergency_stop");
    EXPECT_EQ(Str(last, "content_type"), "ct/a");
    EXPECT_EQ(Num(last.fields().at("audit_head").struct_value(), "seq"), 5);
    // Signed over "<t>." + body with the fake clock's time.
    EXPECT_EQ(receiver_.signatures.back(),
              WebhookSignature("very-secret-key-0123456789", clock_.Now(),
                               receiver_.bodies.back()));
  }
  auto cursor = store_->GetWebhookCursor("ops");
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(cursor->value_or(0), 5u);

  // A restart sends only what is new.
  Append("emergency_stop", "ct/a: again");  // 6
  n = Start();
  ASSERT_TRUE(WaitForAcked(3));
  n.reset();
  absl::MutexLock lock(&receiver_.mu);
  EXPECT_THAT(receiver_.acked, ElementsAre("ops:2", "ops:5", "ops:6"));
}

// A cursor file an earlier version wrote is imported into the store once:
// delivery goes on after its seq; the store's cursor wins from then on.
TEST_F(WebhookNotifierLoopTest, ALegacyCursorFileIsImportedOnce) {
  Append("emergency_stop", "ct/a: 1");  // seq 1
  Append("emergency_stop", "ct/a: 2");  // 2
  Append("emergency_stop", "ct/a: 3");  // 3
  std::filesystem::create_directories(dir_ + "/webhooks");
  ASSERT_TRUE(WriteWebhookCursor(dir_ + "/webhooks/ops.cursor", 1).ok());
  auto n = Start();
  ASSERT_NE(n, nullptr);
  ASSERT_TRUE(WaitForAcked(2));
  n.reset();
  {
    absl::MutexLock lock(&receiver_.mu);
    EXPECT_THAT(receiver_.acked, ElementsAre("ops:2", "ops:3"));
  }
  auto cursor = store_->GetWebhookCursor("ops");
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(cursor->value_or(0), 3u);
  // The file is not read again (a stale file cannot move the cursor back).
  Append("emergency_stop", "ct/a: 4");  // 4
  n = Start();
  ASSERT_TRUE(WaitForAcked(3));
  n.reset();
  absl::MutexLock lock(&receiver_.mu);
  EXPECT_THAT(receiver_.acked, ElementsAre("ops:2", "ops:3", "ops:4"));
}

}  // namespace
}  // namespace ringfence
