// The real Prometheus server scraping the real ringfenced's GET /metrics
// (with a bearer token, as an operator would configure it), and promtool
// linting what it serves. Fails, not skips, without prometheus or promtool
// on $PATH (scripts/install-deps.sh installs them).
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "e2e_fixture.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace ringfence::e2e {
namespace {

// A port nothing listens on now (Prometheus cannot bind port 0 and say
// which port it got).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

class E2EPrometheusTest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (HasFatalFailure()) return;
    StartServerWithHttp();
  }

  void TearDown() override {
    if (prometheus_ != nullptr && HasFailure()) {
      std::cerr << "---- prometheus log ----\n"
                << ReadFile(dir_ + "/prometheus.log");
    }
    prometheus_.reset();
    E2ETest::TearDown();
  }

  // The value of the first series `query` returns ("" if none yet).
  std::string Query(int prometheus_port, const std::string& query) {
    httplib::Client c("127.0.0.1", prometheus_port);
    c.set_connection_timeout(2);
    c.set_read_timeout(5);
    const httplib::Params params{{"query", query}};
    auto r = c.Get("/api/v1/query", params, httplib::Headers{});
    if (!r || r->status != 200) return "";
    google::protobuf::Struct body;
    if (!google::protobuf::util::JsonStringToMessage(r->body, &body).ok()) {
      return "";
    }
    const auto& data = body.fields().at("data").struct_value().fields();
    const auto& result = data.at("result").list_value();
    if (result.values_size() == 0) return "";
    const auto& value =
        result.values(0).struct_value().fields().at("value").list_value();
    return value.values_size() == 2 ? value.values(1).string_value() : "";
  }

  std::unique_ptr<ChildProcess> prometheus_;
};

TEST_F(E2EPrometheusTest, PrometheusScrapesRolloutsAndPromtoolAccepts) {
  const std::string prometheus = FindOnPath("prometheus");
  const std::string promtool = FindOnPath("promtool");
  ASSERT_FALSE(prometheus.empty())
      << "prometheus not found on $PATH (scripts/install-deps.sh)";
  ASSERT_FALSE(promtool.empty())
      << "promtool not found on $PATH (scripts/install-deps.sh)";
  ASSERT_EQ(RunCommand({prometheus, "--version"}).exit_code, 0);

  ASSERT_THAT(CreateRelease("prom-rel", "ct/prom"), GrpcOk());
  ASSERT_THAT(StartRollout("prom-1", "prom-rel", ParsePlan(kLivePlan)),
              GrpcOk());
  FleetEmulator fleet(Fleet("ct/prom"));
  fleet.Start();

  const int port = FreePort();
  ASSERT_GT(port, 0);
  WriteFile(dir_ + "/prometheus.yml",
            absl::StrCat("global:\n"
                         "  scrape_interval: 1s\n"
                         "  evaluation_interval: 1s\n"
                         "scrape_configs:\n"
                         "  - job_name: ringfenced\n"
                         "    scrape_interval: 1s\n"
                         "    scrape_timeout: 1s\n"
                         "    authorization:\n"
                         "      type: Bearer\n"
                         "      credentials: ",
                         kOperatorToken,
                         "\n"
                         "    static_configs:\n"
                         "      - targets: ['127.0.0.1:",
                         HttpPort(), "']\n"));
  prometheus_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{
          prometheus, "--config.file=" + dir_ + "/prometheus.yml",
          "--storage.tsdb.path=" + dir_ + "/prometheus-data",
          absl::StrCat("--web.listen-address=127.0.0.1:", port)},
      dir_ + "/prometheus.log");
  ASSERT_TRUE(prometheus_->started());

  // Prometheus scraped ringfenced with the token (up == 1), and sees the
  // rollout running with its dogfood hosts exposed.
  EXPECT_TRUE(
      Eventually([&] { return Query(port, "up") == "1"; }, absl::Seconds(60)))
      << "up = " << Query(port, "up");
  EXPECT_TRUE(Eventually(
      [&] {
        return Query(port, "ringfence_rollouts{state=\"running\"}") == "1";
      },
      absl::Seconds(30)));
  std::string exposed;
  EXPECT_TRUE(Eventually(
      [&] {
        exposed = Query(port,
                        "ringfence_rollout_exposed_hosts{rollout_id="
                        "\"prom-1\",content_type=\"ct/prom\"}");
        return exposed == "5";
      },
      absl::Seconds(30)))
      << "exposed hosts: " << exposed;
  EXPECT_TRUE(Eventually(
      [&] {
        const std::string v =
            Query(port, "ringfence_telemetry_events_ingested_total");
        double d = 0;
        return absl::SimpleAtod(v, &d) && d > 0;
      },
      absl::Seconds(30)));
  EXPECT_TRUE(Eventually(
      [&] {
        return !Query(port,
                      "ringfence_rpc_duration_seconds_count{method=\"/"
                      "ringfence.v1.Rollouts/StartRollout\",code=\"OK\"}")
                    .empty();
      },
      absl::Seconds(30)));
  fleet.Stop();

  // promtool's linter accepts what /metrics serves.
  httplib::Client http("127.0.0.1", HttpPort());
  auto metrics = http.Get(
      "/metrics", {{"Authorization", absl::StrCat("Bearer ", kOperatorToken)}});
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  WriteFile(dir_ + "/metrics.txt", metrics->body);
  CommandResult lint =
      RunCommand({"/bin/sh", "-c", "\"$0\" check metrics < \"$1\"", promtool,
                  dir_ + "/metrics.txt"});
  EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err;
  EXPECT_THAT(metrics->body, HasSubstr("ringfence_audit_head_seq "));
}

}  // namespace
}  // namespace ringfence::e2e
