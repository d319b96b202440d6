// Http1Client (service/http1_client.h) against scripted servers on raw
// sockets: answers cut at random places, chunked and delimited bodies,
// kept and dropped connections, stalls, garbage; and over TLS against a
// real HTTPS server (cpp-httplib), name checks and session resumption
// included.
#include "service/http1_client.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "e2e_fixture.h"
#include "service/agent_http_transport.h"

namespace ringfence {
namespace {

using ::ringfence::e2e::TestCertFiles;
using ::ringfence::e2e::TestCerts;
using ::testing::HasSubstr;

MATCHER_P(StatusIs, code, "") { return arg.status().code() == code; }

// Reads one request (headers and a Content-Length body) from `fd`: the
// whole text, empty at EOF.
std::string ReadRequest(int fd) {
  std::string in;
  char buffer[4096];
  while (true) {
    const size_t end = in.find("\r\n\r\n");
    if (end != std::string::npos) {
      size_t length = 0;
      const size_t at = in.find("Content-Length: ");
      if (at != std::string::npos && at < end) {
        length = std::stoul(in.substr(at + 16));
      }
      if (in.size() >= end + 4 + length) return in;
    }
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) return "";
    in.append(buffer, static_cast<size_t>(n));
  }
}

// Sends `data` in pieces of random sizes, flushed one by one (with
// TCP_NODELAY on the client side, the client reads them as they come).
void SendInPieces(int fd, const std::string& data, std::mt19937* rng) {
  size_t at = 0;
  while (at < data.size()) {
    const size_t n = std::min<size_t>(
        data.size() - at, std::uniform_int_distribution<size_t>(1, 40)(*rng));
    ASSERT_EQ(send(fd, data.data() + at, n, MSG_NOSIGNAL),
              static_cast<ssize_t>(n));
    at += n;
    if ((*rng)() % 4 == 0) usleep(200);
  }
}

// A server on 127.0.0.1 that runs `serve` on each accepted connection, one
// connection at a time, and counts them.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::function<void(int fd, int connection)> serve)
      : serve_(std::move(serve)) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof(address);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&address),
                   sizeof(address)),
              0);
    EXPECT_EQ(listen(listen_fd_, 8), 0);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p = {listen_fd_, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        const int fd = accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) continue;
        serve_(fd, ++connections_);
        close(fd);
      }
    });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }
  uint16_t port() const { return port_; }
  int connections() const { return connections_; }

 private:
  std::function<void(int, int)> serve_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

std::unique_ptr<Http1Client> ClientFor(uint16_t port) {
  Http1Target target;
  target.host = "127.0.0.1";
  target.port = port;
  absl::StatusOr<std::unique_ptr<Http1Client>> client =
      Http1Client::Create(target);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

absl::Time Soon() { return absl::Now() + absl::Seconds(5); }

std::string Chunked(const std::string& body, std::mt19937* rng) {
  std::string out;
  size_t at = 0;
  while (at < body.size()) {
    const size_t n = std::min<size_t>(
        body.size() - at, std::uniform_int_distribution<size_t>(1, 300)(*rng));
    absl::StrAppend(&out, absl::Hex(n), "\r\n", body.substr(at, n), "\r\n");
    at += n;
  }
  return out + "0\r\n\r\n";
}

TEST(ParseHttpUrlTest, TakesSchemeHostAndPortAlone) {
  struct Good {
    const char* url;
    bool tls;
    const char* host;
    uint16_t port;
  };
  for (const Good& g :
       {Good{"http://127.0.0.1:8080", false, "127.0.0.1", 8080},
        Good{"HTTPS://rollouts.example", true, "rollouts.example", 443},
        Good{"http://h/", false, "h", 80},
        Good{"https://[::1]:9443/", true, "::1", 9443}}) {
    SCOPED_TRACE(g.url);
    absl::StatusOr<Http1Target> t = ParseHttpUrl("server", g.url);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->tls, g.tls);
    EXPECT_EQ(t->host, g.host);
    EXPECT_EQ(t->port, g.port);
  }
  for (const char* bad :
       {"ftp://h:1", "h:1", "http://", "http://:80", "http://h:0",
        "http://h:65536", "http://h:+80", "http://h:80/v1", "http://h?x=1",
        "http://h#top", "http://u@h:1", "http://[::1", "http://[h]:1",
        "http://[::1]x", "http://h :1", "http://h:1\r\nX: y"}) {
    SCOPED_TRACE(bad);
    absl::StatusOr<Http1Target> t = ParseHttpUrl("server", bad);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(t.status().message(), HasSubstr("server: "));
  }
}

// The parser's outcome for `answer` fed in pieces of `step` bytes (0: at
// once), then the end of the stream if still incomplete.
struct ParseOutcome {
  absl::StatusCode code;
  bool complete;
  bool keep_alive;
  Http1Response response;
};
ParseOutcome ParseInPieces(const std::string& answer, size_t step,
                           size_t max_body) {
  Http1AnswerParser parser(max_body);
  absl::Status status;
  for (size_t at = 0;
       status.ok() && at < answer.size() && !parser.complete();) {
    const size_t n = step == 0 ? answer.size() : step;
    status = parser.Feed(absl::string_view(answer).substr(at, n));
    at += n;
  }
  if (status.ok() && !parser.complete()) status = parser.Feed("");
  ParseOutcome out{status.code(), parser.complete(), parser.keep_alive(), {}};
  if (parser.complete()) out.response = parser.TakeResponse();
  return out;
}

// Random answers, valid and then damaged (bytes changed, cut, inserted):
// wherever the stream is cut into pieces the outcome is the same, a body is
// never longer than the bound, and a valid answer reads back exactly.
TEST(Http1AnswerParserTest, TheOutcomeDoesNotDependOnThePieces) {
  std::mt19937 rng(7);
  const char* const kTemplates[] = {
      "HTTP/1.1 %s OK\r\nContent-Length: %n\r\nRetry-After: 3\r\n\r\n%b",
      "HTTP/1.1 %s OK\r\nTransfer-Encoding: chunked\r\n\r\n%c",
      "HTTP/1.0 %s OK\r\nX-A: b\r\n\r\n%b",
      "HTTP/1.1 %s OK\r\nConnection: close\r\nContent-Length: %n\r\n\r\n%b",
  };
  int valid = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string body(std::uniform_int_distribution<size_t>(0, 700)(rng), 0);
    for (char& c : body) c = static_cast<char>(rng());
    // (204 and 304 answers have no body, whatever follows them.)
    int code = 200 + static_cast<int>(rng() % 400);
    if (code == 204 || code == 304) code = 200;
    const std::string status = absl::StrCat(code);
    std::string answer = kTemplates[rng() % 4];
    auto put = [&](const char* key, const std::string& value) {
      const size_t at = answer.find(key);
      if (at != std::string::npos) answer.replace(at, 2, value);
    };
    put("%s", status);
    put("%n", absl::StrCat(body.size()));
    put("%c", Chunked(body, &rng));
    put("%b", body);
    const bool damaged = i % 2 == 1;
    if (damaged) {
      for (int k = 0; k < 3; ++k) {
        const size_t at = rng() % (answer.size() + 1);
        switch (rng() % 3) {
          case 0:
            if (at < answer.size()) answer[at] = static_cast<char>(rng());
            break;
          case 1:
            answer.resize(at);
            break;
          default:
            answer.insert(at, 1, static_cast<char>(rng()));
        }
      }
    }
    const size_t max_body = rng() % 4 == 0 ? rng() % 700 : 1000;
    SCOPED_TRACE(absl::StrCat("answer ", i, ": ", answer.substr(0, 80)));
    const ParseOutcome whole = ParseInPieces(answer, 0, max_body);
    const ParseOutcome pieces = ParseInPieces(answer, 1 + rng() % 50, max_body);
    EXPECT_EQ(whole.code, pieces.code);
    EXPECT_EQ(whole.complete, pieces.complete);
    EXPECT_EQ(whole.keep_alive, pieces.keep_alive);
    EXPECT_EQ(whole.response.status, pieces.response.status);
    EXPECT_EQ(whole.response.body, pieces.response.body);
    EXPECT_EQ(whole.response.retry_after, pieces.response.retry_after);
    EXPECT_LE(whole.response.body.size(), max_body);
    if (!damaged && body.size() <= max_body) {
      ++valid;
      ASSERT_TRUE(whole.complete) << absl::StatusCodeToString(whole.code);
      EXPECT_EQ(whole.response.status, std::stoi(status));
      EXPECT_EQ(whole.response.body, body);
    }
    if (!damaged && body.size() > max_body) {
      EXPECT_EQ(whole.code, absl::StatusCode::kResourceExhausted);
    }
  }
  EXPECT_GT(valid, 1000);
}

// Answers of every framing, delivered in random pieces, with random
// bodies: the body read is the body sent, and the connection is kept
// exactly when the answer allows it.
TEST(Http1ClientTest, ReadsEveryFramingWhateverThePieces) {
  std::mt19937 rng(20261201);
  struct Planned {
    int framing = 0;  // 0 Content-Length, 1 chunked, 2 until close
    int status = 200;
    std::string body;
    std::string request;  // as received
  };
  absl::Mutex mu;
  Planned plan;
  ScriptedServer server([&](int fd, int) {
    while (true) {
      std::string request = ReadRequest(fd);
      if (request.empty()) return;
      absl::MutexLock lock(&mu);
      plan.request = request;
      std::string answer = absl::StrCat("HTTP/1.1 ", plan.status, " X\r\n");
      if (plan.framing == 0) {
        absl::StrAppend(&answer, "Content-Length: ", plan.body.size(),
                        "\r\n\r\n", plan.body);
      } else if (plan.framing == 1) {
        absl::StrAppend(&answer, "Transfer-Encoding: chunked\r\n\r\n",
                        Chunked(plan.body, &rng));
      } else {
        absl::StrAppend(&answer, "Connection: close\r\n\r\n", plan.body);
      }
      SendInPieces(fd, answer, &rng);
      if (plan.framing == 2) return;
    }
  });
  std::unique_ptr<Http1Client> client = ClientFor(server.port());
  ASSERT_NE(client, nullptr);
  int expected_connections = 0;
  bool open = false;
  for (int i = 0; i < 60; ++i) {
    Planned p;
    p.framing = static_cast<int>(rng() % 3);
    p.status = i % 7 == 0 ? 503 : 200;
    p.body.resize(std::uniform_int_distribution<size_t>(0, 3000)(rng));
    for (char& c : p.body) c = static_cast<char>(rng());
    {
      absl::MutexLock lock(&mu);
      plan = p;
    }
    const std::string sent(rng() % 500, 'q');
    SCOPED_TRACE(absl::StrCat("answer ", i, " framing ", p.framing));
    absl::StatusOr<Http1Response> r =
        client->Post("/v1/x", "A: b\r\n", sent, Soon(), 1 << 20);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, p.status);
    EXPECT_EQ(r->body, p.body);
    if (!open) ++expected_connections;
    open = p.framing != 2;
    EXPECT_EQ(client->connected(), open);
    absl::MutexLock lock(&mu);
    EXPECT_TRUE(absl::StartsWith(plan.request, "POST /v1/x HTTP/1.1\r\n"));
    EXPECT_THAT(plan.request,
                HasSubstr(absl::StrCat("Host: 127.0.0.1:", server.port())));
    EXPECT_THAT(plan.request, HasSubstr("\r\nA: b\r\n"));
    EXPECT_TRUE(absl::EndsWith(
        plan.request,
        absl::StrCat("Content-Length: ", sent.size(), "\r\n\r\n", sent)));
  }
  EXPECT_EQ(server.connections(), expected_connections);
}

TEST(Http1ClientTest, ReadsRetryAfter) {
  ScriptedServer server([](int fd, int) {
    ReadRequest(fd);
    const std::string answer =
        "HTTP/1.1 429 Too Many\r\nretry-AFTER: 17\r\nContent-Length: "
        "2\r\n\r\nno";
    send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
  });
  std::unique_ptr<Http1Client> client = ClientFor(server.port());
  absl::StatusOr<Http1Response> r = client->Post("/", "", "", Soon(), 100);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 429);
  EXPECT_EQ(r->retry_after, "17");
  EXPECT_EQ(r->body, "no");
}

// Writes through NewNoSigpipeSocketBio to a peer that went away fail with
// EPIPE, and so does a TLS handshake over it, with SIGPIPE at its default
// disposition (which would end the process) and unblocked.
TEST(NoSigpipeSocketBioTest, AWriteToAClosedPeerIsAnErrorNotASignal) {
  struct sigaction previous = {};
  struct sigaction default_action = {};
  default_action.sa_handler = SIG_DFL;
  sigaction(SIGPIPE, &default_action, &previous);
  sigset_t pipe_only, old_mask;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_UNBLOCK, &pipe_only, &old_mask);
  for (const bool tls : {false, true}) {
    SCOPED_TRACE(tls ? "SSL_connect" : "BIO_write");
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    close(fds[1]);
    BIO* bio = NewNoSigpipeSocketBio(fds[0]);
    ASSERT_NE(bio, nullptr);
    if (!tls) {
      EXPECT_EQ(BIO_write(bio, "x", 1), -1);
      EXPECT_EQ(errno, EPIPE);
      EXPECT_FALSE(BIO_should_retry(bio));
      BIO_free(bio);
    } else {
      SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
      SSL* ssl = SSL_new(ctx);
      SSL_set_bio(ssl, bio, bio);
      const int connected = SSL_connect(ssl);
      EXPECT_NE(connected, 1);
      EXPECT_EQ(SSL_get_error(ssl, connected), SSL_ERROR_SYSCALL);
      EXPECT_EQ(errno, EPIPE);
      SSL_free(ssl);
      SSL_CTX_free(ctx);
    }
    close(fds[0]);
  }
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  sigaction(SIGPIPE, &previous, nullptr);
}

// What the agent's transport makes of answers other than 200: the
// server's JSON error keeps its code and message; anything else (a proxy's
// page) is the HTTP status's code with the start of the body quoted and its
// whole size named; a 429's Retry-After is the wait.
TEST(HttpAgentTransportTest, NamesWhatANon200AnswerSays) {
  struct Case {
    std::string answer;
    absl::StatusCode code;
    std::string message;
  };
  const std::string page(5000, 'x');
  const Case cases[] = {
      {"HTTP/1.1 403 Forbidden\r\nContent-Length: 50\r\n\r\n"
       "{\"code\":\"PERMISSION_DENIED\",\"message\":\"not h7\"}   ",
       absl::StatusCode::kPermissionDenied, "not h7"},
      {absl::StrCat("HTTP/1.1 502 Bad Gateway\r\nContent-Length: ", page.size(),
                    "\r\n\r\n", page),
       absl::StatusCode::kUnavailable, "(5000 bytes)"},
      {"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",
       absl::StatusCode::kNotFound, "HTTP 404: \"nope\""},
      {"HTTP/1.1 429 Slow Down\r\nRetry-After: 17\r\nContent-Length: "
       "0\r\n\r\n",
       absl::StatusCode::kResourceExhausted, "HTTP 429"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    ScriptedServer server([&](int fd, int) {
      ReadRequest(fd);
      send(fd, c.answer.data(), c.answer.size(), MSG_NOSIGNAL);
    });
    HttpAgentOptions options;
    options.server = absl::StrCat("http://127.0.0.1:", server.port());
    absl::StatusOr<std::unique_ptr<HttpAgentTransport>> transport =
        HttpAgentTransport::Create(options);
    ASSERT_TRUE(transport.ok()) << transport.status();
    absl::Duration retry_after = absl::ZeroDuration();
    const absl::Status status = (*transport)->ReportTelemetry({}, &retry_after);
    EXPECT_EQ(status.code(), c.code) << status;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
    EXPECT_LE(status.message().size(), 600u);
    if (c.code == absl::StatusCode::kResourceExhausted) {
      EXPECT_EQ(retry_after, absl::Seconds(17));
    }
  }
}

// A kept connection the server closed while idle (before the request, or
// as it arrived, answering nothing) is replaced once; a new connection
// that is closed unanswered is an error, not retried.
TEST(Http1ClientTest, ReplacesAKeptConnectionTheServerDropped) {
  std::atomic<int> mode{0};  // 0 answer and keep; 1 answer and close
                             // after a delay; 2 read and close unanswered
  ScriptedServer server([&](int fd, int) {
    while (true) {
      if (ReadRequest(fd).empty()) return;
      // Read once, as the request arrives (the test changes it only once
      // the previous answer has arrived).
      const int now = mode;
      if (now == 2) return;
      const std::string answer =
          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
      if (now == 1) return;
    }
  });
  std::unique_ptr<Http1Client> client = ClientFor(server.port());
  ASSERT_TRUE(client->Post("/", "", "a", Soon(), 100).ok());
  EXPECT_EQ(server.connections(), 1);
  ASSERT_TRUE(client->Post("/", "", "b", Soon(), 100).ok());
  EXPECT_EQ(server.connections(), 1);  // kept
  mode = 1;  // the server answers, then closes (the client does not know)
  ASSERT_TRUE(client->Post("/", "", "c", Soon(), 100).ok());
  absl::SleepFor(absl::Milliseconds(100));
  mode = 0;
  absl::StatusOr<Http1Response> after = client->Post("/", "", "d", Soon(), 100);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(server.connections(), 2);
  // The server reads the request on the kept connection and closes it
  // unanswered: replaced once, and the new one too is closed: UNAVAILABLE.
  mode = 2;
  absl::StatusOr<Http1Response> dropped =
      client->Post("/", "", "e", Soon(), 100);
  EXPECT_THAT(dropped, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(dropped.status().message(),
              HasSubstr("closed before the answer ended"));
  EXPECT_EQ(server.connections(), 3);
  EXPECT_FALSE(client->connected());
}

TEST(Http1ClientTest, RefusesWhatIsNotAnAnswerAndBoundsTheBody) {
  std::atomic<int> mode{0};
  ScriptedServer server([&](int fd, int) {
    ReadRequest(fd);
    std::string answer;
    switch (mode.load()) {
      case 0:
        answer = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
        break;
      case 1:
        answer = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" +
                 std::string(1000, 'x');
        break;
      case 2:
        answer =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            "zz\r\n";
        break;
      case 3:
        answer = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
        break;
      case 4:
        answer = "HTTP/1.1 200 OK\r\n" + std::string(100000, 'h');
        break;
    }
    send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
  });
  std::unique_ptr<Http1Client> client = ClientFor(server.port());
  const std::pair<absl::StatusCode, const char*> expected[] = {
      {absl::StatusCode::kUnavailable, "not an HTTP/1.x answer"},
      {absl::StatusCode::kResourceExhausted, "longer than 999 bytes"},
      {absl::StatusCode::kUnavailable, "not an HTTP/1.x answer"},
      {absl::StatusCode::kUnavailable, "before the answer ended"},
      {absl::StatusCode::kUnavailable, "not an HTTP/1.x answer"},
  };
  for (int m = 0; m < 5; ++m) {
    SCOPED_TRACE(m);
    mode = m;
    absl::StatusOr<Http1Response> r = client->Post("/", "", "", Soon(), 999);
    EXPECT_THAT(r, StatusIs(expected[m].first));
    EXPECT_THAT(r.status().message(), HasSubstr(expected[m].second));
    EXPECT_FALSE(client->connected());
  }
}

TEST(Http1ClientTest, GivesUpAtTheDeadline) {
  ScriptedServer server([](int fd, int) {
    ReadRequest(fd);
    const std::string part = "HTTP/1.1 200 OK\r\nContent-Le";
    send(fd, part.data(), part.size(), MSG_NOSIGNAL);
    absl::SleepFor(absl::Seconds(2));
  });
  std::unique_ptr<Http1Client> client = ClientFor(server.port());
  const absl::Time start = absl::Now();
  absl::StatusOr<Http1Response> r =
      client->Post("/", "", "", start + absl::Milliseconds(300), 100);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_FALSE(client->connected());
}

TEST(Http1ClientTest, NoServerIsUnavailable) {
  uint16_t port = 0;
  {
    ScriptedServer gone([](int, int) {});
    port = gone.port();
  }
  std::unique_ptr<Http1Client> client = ClientFor(port);
  EXPECT_THAT(client->Post("/", "", "", Soon(), 100),
              StatusIs(absl::StatusCode::kUnavailable));
}

// Over TLS against cpp-httplib's HTTPS server: the certificate is checked
// against the CA and the name given (or the IP address connected to), and
// a second connection resumes the first's session.
TEST(Http1ClientTest, OverTlsChecksTheNameAndResumesTheSession) {
  const TestCertFiles* certs = TestCerts();
  ASSERT_NE(certs, nullptr) << "could not generate certificates";
  httplib::SSLServer https(certs->server_cert.c_str(),
                           certs->server_key.c_str());
  ASSERT_TRUE(https.is_valid());
  https.Post("/echo",
             [](const httplib::Request& request, httplib::Response& response) {
               response.set_content("tls:" + request.body, "text/plain");
             });
  const int port = https.bind_to_any_port("127.0.0.1");
  std::thread serving([&] { https.listen_after_bind(); });
  while (!https.is_running()) absl::SleepFor(absl::Milliseconds(1));

  auto client_for = [&](const std::string& ca, const std::string& name) {
    Http1Target target;
    target.tls = true;
    target.host = "127.0.0.1";
    target.port = static_cast<uint16_t>(port);
    target.ca_file = ca;
    target.name = name;
    return Http1Client::Create(target);
  };
  for (const char* name : {"localhost", ""}) {  // the DNS SAN, the IP SAN
    SCOPED_TRACE(name);
    auto client = client_for(certs->ca, name);
    ASSERT_TRUE(client.ok()) << client.status();
    for (int i = 0; i < 3; ++i) {
      absl::StatusOr<Http1Response> r =
          (*client)->Post("/echo", "", absl::StrCat("n", i), Soon(), 100);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->body, absl::StrCat("tls:n", i));
      EXPECT_EQ((*client)->session_resumed(), i > 0);
      (*client)->Close();
    }
  }
  auto wrong_name = client_for(certs->ca, "rollouts.example");
  ASSERT_TRUE(wrong_name.ok());
  absl::StatusOr<Http1Response> r =
      (*wrong_name)->Post("/echo", "", "x", Soon(), 100);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(r.status().message(), HasSubstr("certificate verify failed"));
  auto wrong_ca = client_for(certs->other_ca, "localhost");
  ASSERT_TRUE(wrong_ca.ok());
  EXPECT_THAT((*wrong_ca)->Post("/echo", "", "x", Soon(), 100),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(client_for("/no/such/ca.pem", "").status().code(),
              absl::StatusCode::kNotFound);
  // Plain HTTP to the TLS listener is not an answer.
  Http1Target plain;
  plain.host = "127.0.0.1";
  plain.port = static_cast<uint16_t>(port);
  auto plaintext = Http1Client::Create(plain);
  ASSERT_TRUE(plaintext.ok());
  EXPECT_FALSE((*plaintext)->Post("/echo", "", "x", Soon(), 100).ok());
  https.stop();
  serving.join();
}

}  // namespace
}  // namespace ringfence
