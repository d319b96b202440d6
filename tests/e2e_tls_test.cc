// End-to-end tests of TLS and mutual TLS: ringfenced with --tls_cert,
// --tls_key and --client_ca; gRPC clients, ringctl and the emulated fleet
// with the client TLS options. Certificates are generated at test time
// (TestCerts()).
#include <filesystem>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "e2e_fixture.h"

namespace ringfence::e2e {
namespace {

constexpr grpc::StatusCode kUnavailable = grpc::StatusCode::UNAVAILABLE;

// A TLS client trusting `ca`, with a client certificate if `cert` is set.
std::optional<ClientTls> Tls(const std::string& ca,
                             const std::string& cert = "",
                             const std::string& key = "") {
  absl::StatusOr<std::optional<ClientTls>> tls = LoadClientTls(ca, cert, key);
  EXPECT_TRUE(tls.ok()) << tls.status();
  return tls.ok() ? *tls : std::nullopt;
}

class E2ETlsTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    certs_ = TestCerts();
    ASSERT_NE(certs_, nullptr) << "could not generate certificates";
  }

  static grpc::Status ListReleases(v1::Releases::Stub& stub,
                                   const std::string& token = kOperatorToken) {
    v1::ListReleasesResponse resp;
    return stub.ListReleases(Ctx(token).get(), {}, &resp);
  }

  const TestCertFiles* certs_ = nullptr;
};

TEST_F(E2ETlsTest, TlsServerIsVerifiedWithTheRightCa) {
  client_tls_ = Tls(certs_->ca);
  ctl_flags_ = {"--tls-ca=" + certs_->ca};
  StartServer(
      {"--tls_cert=" + certs_->server_cert, "--tls_key=" + certs_->server_key});
  EXPECT_THAT(ReadFile(LogPath(starts_)), HasSubstr(", TLS)"));

  // The right CA: served, by IP and by name.
  EXPECT_THAT(ListReleases(*releases_), GrpcOk());
  EXPECT_THAT(ListReleases(*ReleasesOver(Tls(certs_->ca), "localhost")),
              GrpcOk());
  EXPECT_THAT(CreateRelease("cf310-a", "channel-file/310"), GrpcOk());

  // A CA that did not sign the server's certificate, or no TLS at all: the
  // handshake fails, nothing is served.
  EXPECT_THAT(ListReleases(*ReleasesOver(Tls(certs_->other_ca))),
              GrpcStatusIs(kUnavailable, testing::_));
  EXPECT_THAT(ListReleases(*ReleasesOver(std::nullopt)),
              GrpcStatusIs(kUnavailable, testing::_));

  // ringctl: --tls-ca (or --tls_ca) verifies the server.
  CommandResult r = Ctl({"release", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("cf310-a"));
  // The name checked can differ from the address dialled.
  ctl_flags_ = {"--tls-ca=" + certs_->ca, "--tls-server-name=localhost"};
  r = Ctl({"release", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ctl_flags_ = {"--tls-ca=" + certs_->ca,
                "--tls-server-name=elsewhere.example"};
  r = Ctl({"release", "list"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  ctl_flags_ = {"--tls_ca=" + certs_->other_ca};
  r = Ctl({"release", "list"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  ctl_flags_ = {};
  r = Ctl({"release", "list"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  // A CA file that is not one is a usage error, before any call.
  ctl_flags_ = {"--tls-ca=" + certs_->server_key};
  r = Ctl({"release", "list"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("no PEM certificate"));
}

TEST_F(E2ETlsTest, MutualTlsNeedsAClientCertificateSignedByTheClientCa) {
  client_tls_ = Tls(certs_->ca, certs_->client_cert, certs_->client_key);
  StartServer({"--tls_cert=" + certs_->server_cert,
               "--tls_key=" + certs_->server_key,
               "--client_ca=" + certs_->client_ca});
  EXPECT_THAT(ReadFile(LogPath(starts_)), HasSubstr("mutual TLS"));

  EXPECT_THAT(ListReleases(*releases_), GrpcOk());
  // No client certificate, or one the client CA did not sign: refused.
  EXPECT_THAT(ListReleases(*ReleasesOver(Tls(certs_->ca))),
              GrpcStatusIs(kUnavailable, testing::_));
  EXPECT_THAT(ListReleases(*ReleasesOver(
                  Tls(certs_->ca, certs_->other_cert, certs_->other_key))),
              GrpcStatusIs(kUnavailable, testing::_));
  // Bearer tokens still apply on top of the certificate.
  EXPECT_THAT(
      ListReleases(*releases_, ""),
      GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED, HasSubstr("Bearer")));

  // ringctl with and without its certificate.
  ctl_flags_ = {"--tls-ca=" + certs_->ca, "--tls-cert=" + certs_->client_cert,
                "--tls-key=" + certs_->client_key};
  CommandResult r = Ctl({"release", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ctl_flags_ = {"--tls-ca=" + certs_->ca};
  r = Ctl({"release", "list"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  // A certificate without its key is a usage error.
  ctl_flags_ = {"--tls-ca=" + certs_->ca, "--tls-cert=" + certs_->client_cert};
  r = Ctl({"release", "list"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("tls_key"));

  // The emulated fleet with the client certificate polls and reports.
  FleetOptions options = Fleet("channel-file/311");
  options.hosts = 3;
  options.dogfood_hosts = 1;
  options.threads = 1;
  options.tls = client_tls_;
  FleetEmulator fleet(options);
  fleet.Start();
  EXPECT_TRUE(Eventually([&] { return fleet.polls() >= 6; }, absl::Seconds(30)))
      << fleet.first_error();
  fleet.Stop();
  EXPECT_EQ(fleet.errors(), 0) << fleet.first_error();
  EXPECT_EQ(fleet.WithReason(v1::NO_RELEASE), 3);
}

// Replaces `to` with the contents of `from` atomically (a temporary file,
// then rename), as certificate managers do.
void Replace(const std::string& from, const std::string& to) {
  WriteFile(to + ".tmp", ReadFile(from));
  std::filesystem::rename(to + ".tmp", to);
}

// Mutual TLS without tokens: only holders of a client certificate connect,
// so ringfenced serves them (as admin) on any address; TLS alone does not
// authenticate anyone, so it needs tokens there.
TEST_F(E2ETlsTest, MutualTlsWithoutTokensServesEveryAddress) {
  server_.reset();
  const std::vector<std::string> tls_flags = {
      "--listen=0.0.0.0:0", "--tls_cert=" + certs_->server_cert,
      "--tls_key=" + certs_->server_key};
  const CommandResult refused = RunServerToExit(tls_flags);
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.err, HasSubstr("is not a loopback address"));

  with_tokens_ = false;
  client_tls_ = Tls(certs_->ca, certs_->client_cert, certs_->client_key);
  std::vector<std::string> mtls_flags = tls_flags;
  mtls_flags.push_back("--client_ca=" + certs_->client_ca);
  StartServer(mtls_flags);
  EXPECT_THAT(ReadFile(LogPath(starts_)),
              HasSubstr("every client whose certificate --client_ca signed "
                        "is admin"));
  EXPECT_THAT(ListReleases(*releases_, ""), GrpcOk());
  EXPECT_THAT(CreateRelease("cf315-a", "channel-file/315", kDigestA, ""),
              GrpcOk());
  // Without a client certificate: no handshake, nothing served.
  EXPECT_THAT(ListReleases(*ReleasesOver(Tls(certs_->ca)), ""),
              GrpcStatusIs(kUnavailable, testing::_));
}

// Under mutual TLS a client certificate may name its principal in a URI
// SAN, ringfence://<role>/<actor>: that is the caller, whatever token it
// sends. A host certificate speaks for its host only.
TEST_F(E2ETlsTest, ClientCertificateNamesItsPrincipal) {
  client_tls_ = Tls(certs_->ca, certs_->client_cert, certs_->client_key);
  StartServer({"--tls_cert=" + certs_->server_cert,
               "--tls_key=" + certs_->server_key,
               "--client_ca=" + certs_->client_ca});
  ASSERT_THAT(CreateRelease("cf316-a", "channel-file/316"), GrpcOk());
  ASSERT_THAT(StartRollout("certs-1", "cf316-a", ParsePlan(kManualPlan)),
              GrpcOk());
  auto channel = [&](const std::string& cert, const std::string& key) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    return MakeChannel(absl::StrCat("127.0.0.1:", port_),
                       Tls(certs_->ca, cert, key), args);
  };
  auto host = channel(certs_->host_cert, certs_->host_key);
  auto host_fleet = v1::Fleet::NewStub(host);

  // The host certificate: h7's assignment and telemetry, with no token or
  // even with the admin's.
  v1::GetAssignmentRequest req;
  req.set_host_id("h7");
  req.add_content_types("channel-file/316");
  v1::GetAssignmentResponse assignment;
  EXPECT_THAT(host_fleet->GetAssignment(Ctx("").get(), req, &assignment),
              GrpcOk());
  v1::ReportTelemetryRequest report;
  report.add_events()->set_host_id("h7");
  report.mutable_events(0)->set_type(v1::HEARTBEAT);
  v1::ReportTelemetryResponse reported;
  EXPECT_THAT(host_fleet->ReportTelemetry(Ctx("").get(), report, &reported),
              GrpcOk());
  req.set_host_id("h8");
  EXPECT_THAT(
      host_fleet->GetAssignment(Ctx(kAdminToken).get(), req, &assignment),
      GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                   HasSubstr("speaks only for host \"h7\"")));
  report.add_events()->set_host_id("h8");
  report.mutable_events(1)->set_type(v1::HEARTBEAT);
  EXPECT_THAT(host_fleet->ReportTelemetry(Ctx("").get(), report, &reported),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                           HasSubstr("events[1].host_id")));
  EXPECT_EQ(GetRollout("certs-1").telemetry().tracked_hosts(), 1u);
  v1::ListReleasesResponse releases;
  EXPECT_THAT(v1::Releases::NewStub(host)->ListReleases(Ctx(kAdminToken).get(),
                                                        {}, &releases),
              GrpcStatusIs(grpc::StatusCode::PERMISSION_DENIED,
                           HasSubstr("has role host")));

  // An operator certificate: reads and pauses (recorded as carol), does not
  // publish.
  auto op = channel(certs_->operator_cert, certs_->operator_key);
  EXPECT_THAT(
      v1::Releases::NewStub(op)->ListReleases(Ctx("").get(), {}, &releases),
      GrpcOk());
  v1::RolloutActionRequest pause;
  pause.set_rollout_id("certs-1");
  pause.set_reason("certificate operator drill");
  Rollout paused;
  EXPECT_THAT(
      v1::Rollouts::NewStub(op)->PauseRollout(Ctx("").get(), pause, &paused),
      GrpcOk());
  EXPECT_EQ(paused.state(), RolloutState::PAUSED);
  EXPECT_THAT(paused.reason(), HasSubstr("paused by carol"));

  // A certificate naming a role that does not exist is refused.
  auto wizard = channel(certs_->unknown_role_cert, certs_->unknown_role_key);
  EXPECT_THAT(v1::Releases::NewStub(wizard)->ListReleases(
                  Ctx(kAdminToken).get(), {}, &releases),
              GrpcStatusIs(grpc::StatusCode::UNAUTHENTICATED,
                           HasSubstr("unknown role")));
}

TEST_F(E2ETlsTest, RotatedCertificateIsServedWithoutARestart) {
  const std::string cert = dir_ + "/tls.pem";
  const std::string key = dir_ + "/tls.key";
  Replace(certs_->server_cert, cert);
  Replace(certs_->server_key, key);
  client_tls_ = Tls(certs_->ca);
  StartServer(
      {"--tls_cert=" + cert, "--tls_key=" + key, "--tls_reload_interval=1s"});
  const std::string log = LogPath(starts_);
  EXPECT_THAT(ReadFile(log), HasSubstr("re-read every 1s"));
  auto served_by = [&](const std::string& ca) {
    return ListReleases(*ReleasesOver(Tls(ca))).ok();
  };
  EXPECT_TRUE(served_by(certs_->ca));
  EXPECT_FALSE(served_by(certs_->other_ca));
  // The copy gRPC reads holds the private key: owner only.
  EXPECT_EQ(
      std::filesystem::status(dir_ + "/data/tls/identity.pem").permissions(),
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

  // A certificate file that is not PEM, then a new key before its
  // certificate: both refused, and the server keeps serving what it has.
  WriteFile(cert + ".tmp", "not a certificate\n");
  std::filesystem::rename(cert + ".tmp", cert);
  EXPECT_TRUE(Eventually(
      [&] {
        return ReadFile(log).find("no PEM certificate") != std::string::npos;
      },
      absl::Seconds(30)));
  EXPECT_TRUE(served_by(certs_->ca));
  Replace(certs_->server_cert, cert);
  Replace(certs_->other_server_key, key);
  EXPECT_TRUE(Eventually(
      [&] {
        return ReadFile(log).find("does not belong") != std::string::npos;
      },
      absl::Seconds(30)));
  EXPECT_TRUE(served_by(certs_->ca));

  // The rotation completes (a certificate from another CA): new connections
  // get it without a restart, and the old CA no longer verifies the server.
  Replace(certs_->other_server_cert, cert);
  EXPECT_TRUE(Eventually([&] { return served_by(certs_->other_ca); },
                         absl::Seconds(30)));
  EXPECT_FALSE(served_by(certs_->ca));
  EXPECT_THAT(ReadFile(log), HasSubstr("TLS files changed"));
  EXPECT_TRUE(server_->running());
}

TEST_F(E2ETlsTest, RotatedClientCaIsEnforcedWithoutARestart) {
  const std::string client_ca = dir_ + "/client-ca.pem";
  Replace(certs_->client_ca, client_ca);
  client_tls_ = Tls(certs_->ca, certs_->client_cert, certs_->client_key);
  StartServer({"--tls_cert=" + certs_->server_cert,
               "--tls_key=" + certs_->server_key, "--client_ca=" + client_ca,
               "--tls_reload_interval=1s"});
  auto accepted = [&](const std::string& cert, const std::string& key) {
    return ListReleases(*ReleasesOver(Tls(certs_->ca, cert, key))).ok();
  };
  EXPECT_TRUE(accepted(certs_->client_cert, certs_->client_key));
  EXPECT_FALSE(accepted(certs_->other_cert, certs_->other_key));

  Replace(certs_->other_ca, client_ca);
  EXPECT_TRUE(Eventually(
      [&] { return accepted(certs_->other_cert, certs_->other_key); },
      absl::Seconds(30)));
  EXPECT_FALSE(accepted(certs_->client_cert, certs_->client_key));
}

TEST_F(E2ETlsTest, BadTlsFlagsStopTheServerAtStartup) {
  struct Case {
    std::vector<std::string> flags;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--tls_cert=" + certs_->server_cert}, "tls_key"},
      {{"--client_ca=" + certs_->client_ca}, "client_ca"},
      {{"--tls_cert=" + certs_->server_cert, "--tls_key=" + certs_->client_key},
       "does not belong to the certificate"},
      {{"--tls_cert=" + certs_->server_key, "--tls_key=" + certs_->server_key},
       "no PEM certificate"},
      {{"--tls_cert=" + certs_->server_cert, "--tls_key=" + dir_ + "/missing"},
       "cannot read"},
      {{"--max_inflight_events=10"}, "--max_inflight_events (10)"},
      {{"--tls_reload_interval=5s"}, "needs --tls_cert"},
      {{"--tls_cert=" + certs_->server_cert, "--tls_key=" + certs_->server_key,
        "--tls_reload_interval=0.5s"},
       "between 1s and 24h"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.flags.front());
    std::vector<std::string> flags = {"--max_batch_events=1000"};
    flags.insert(flags.end(), c.flags.begin(), c.flags.end());
    const CommandResult r = RunServerToExit(flags);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace ringfence::e2e
