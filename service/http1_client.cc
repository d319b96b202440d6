#include "service/http1_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "ringfence/error_text.h"

namespace ringfence {
namespace {

constexpr char kUserAgent[] = "ringfence-agent";

// BIO_s_socket's write, sending with MSG_NOSIGNAL (bss_sock.c's sock_write
// otherwise).
int NoSigpipeWrite(BIO* bio, const char* data, int size) {
  int fd = -1;
  BIO_get_fd(bio, &fd);
  errno = 0;
  const int n = static_cast<int>(
      send(fd, data, static_cast<size_t>(std::max(size, 0)), MSG_NOSIGNAL));
  BIO_clear_retry_flags(bio);
  if (n <= 0 && BIO_sock_should_retry(n)) BIO_set_retry_write(bio);
  return n;
}

// Milliseconds left until `deadline` for poll(2): at least 0, at most a day.
int PollMillis(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(
      absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))),
      86'400'000));
}

bool IsIpLiteral(const std::string& host) {
  in6_addr v6;
  in_addr v4;
  return inet_pton(AF_INET, host.c_str(), &v4) == 1 ||
         inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

// The oldest OpenSSL error's text, and the queue cleared.
std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

}  // namespace

BIO* NewNoSigpipeSocketBio(int fd) {
  // BIO_s_socket with its write replaced; made once, never freed.
  static BIO_METHOD* const method = [] {
    const BIO_METHOD* socket = BIO_s_socket();
    BIO_METHOD* m = BIO_meth_new(
        BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
        "socket without SIGPIPE");
    if (m == nullptr) return m;
    BIO_meth_set_write(m, NoSigpipeWrite);
    BIO_meth_set_read(m, BIO_meth_get_read(socket));
    BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(socket));
    BIO_meth_set_create(m, BIO_meth_get_create(socket));
    BIO_meth_set_destroy(m, BIO_meth_get_destroy(socket));
    return m;
  }();
  if (method == nullptr) return nullptr;
  BIO* bio = BIO_new(method);
  if (bio != nullptr) BIO_set_fd(bio, fd, BIO_NOCLOSE);
  return bio;
}

absl::StatusOr<Http1Target> ParseHttpUrl(absl::string_view field,
                                         absl::string_view url) {
  const std::string quoted = QuoteForError(url);
  Http1Target target;
  absl::string_view rest = url;
  if (absl::StartsWithIgnoreCase(rest, "https://")) {
    target.tls = true;
    rest.remove_prefix(8);
  } else if (absl::StartsWithIgnoreCase(rest, "http://")) {
    rest.remove_prefix(7);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", quoted, " is not http://host:port or https://host:port"));
  }
  if (absl::EndsWith(rest, "/")) rest.remove_suffix(1);
  if (rest.find_first_of("/?#@ \t\r\n") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", quoted,
                     " must be scheme://host:port alone (no path, query, "
                     "fragment or user)"));
  }
  absl::string_view port;
  if (absl::StartsWith(rest, "[")) {
    const size_t close = rest.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", quoted, " has no ']' after its IPv6 host"));
    }
    target.host = std::string(rest.substr(1, close - 1));
    absl::string_view after = rest.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", quoted, " has something other than :port after ']'"));
    }
    port = after;
    in6_addr v6;
    if (inet_pton(AF_INET6, target.host.c_str(), &v6) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", quoted, " has no IPv6 address between '[' and ']'"));
    }
  } else {
    const size_t colon = rest.find(':');
    target.host = std::string(rest.substr(0, colon));
    if (colon != absl::string_view::npos) port = rest.substr(colon + 1);
  }
  if (target.host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", quoted, " names no host"));
  }
  if (port.empty()) {
    target.port = target.tls ? 443 : 80;
  } else {
    uint32_t number = 0;
    if (!absl::SimpleAtoi(port, &number) || number == 0 || number > 65535 ||
        !absl::ascii_isdigit(static_cast<unsigned char>(port[0]))) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", quoted, " has a port outside 1..65535"));
    }
    target.port = static_cast<uint16_t>(number);
  }
  return target;
}

Http1Client::Http1Client(Http1Target target) : target_(std::move(target)) {
  const std::string& host = target_.host;
  where_ = host.find(':') == std::string::npos
               ? absl::StrCat(host, ":", target_.port)
               : absl::StrCat("[", host, "]:", target_.port);
}

Http1Client::~Http1Client() {
  Close();
  if (session_ != nullptr) SSL_SESSION_free(session_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

absl::StatusOr<std::unique_ptr<Http1Client>> Http1Client::Create(
    Http1Target target) {
  if (target.host.empty() || target.port == 0) {
    return absl::InvalidArgumentError("server: no host or port");
  }
  const bool has_identity =
      !target.cert_file.empty() || !target.key_file.empty();
  if (!target.tls && (has_identity || !target.ca_file.empty())) {
    return absl::InvalidArgumentError(
        "ca_file, cert_file, key_file: need TLS (https://)");
  }
  if (target.cert_file.empty() != target.key_file.empty()) {
    return absl::InvalidArgumentError(
        "cert_file, key_file: give both or neither");
  }
  std::unique_ptr<Http1Client> client(new Http1Client(std::move(target)));
  if (!client->target_.tls) return client;
  client->ctx_ = SSL_CTX_new(TLS_client_method());
  if (client->ctx_ == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot create a TLS context: ", OpenSslError()));
  }
  SSL_CTX* ctx = client->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  // Sessions are kept by hand (session_), across connections.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // One read() takes every record that has arrived, rather than two per
  // record (its 5-byte header, then its body): a resumed handshake and an
  // answer are about 8 records. Buffered bytes count in SSL_has_pending.
  SSL_CTX_set_read_ahead(ctx, 1);
  const std::string& ca = client->target_.ca_file;
  if (!ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1) {
      return absl::NotFoundError(
          absl::StrCat("ca_file: cannot read ", QuoteForError(ca),
                       " as PEM certificates: ", OpenSslError()));
    }
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return absl::InternalError(
        absl::StrCat("cannot load the system's CAs: ", OpenSslError()));
  }
  if (has_identity) {
    const std::string& cert = client->target_.cert_file;
    const std::string& key = client->target_.key_file;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1) {
      return absl::NotFoundError(
          absl::StrCat("cert_file: cannot read ", QuoteForError(cert),
                       " as a PEM certificate chain: ", OpenSslError()));
    }
    EVP_PKEY* pkey = nullptr;
    if (BIO* in = BIO_new_file(key.c_str(), "r"); in != nullptr) {
      pkey = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
      BIO_free(in);
    }
    if (pkey == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("key_file: cannot read ", QuoteForError(key),
                       " as a PEM private key: ", OpenSslError()));
    }
    const bool matches = SSL_CTX_use_PrivateKey(ctx, pkey) == 1 &&
                         SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(pkey);
    if (!matches) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          "key_file: is not the key of the certificate in cert_file");
    }
  }
  return client;
}

void Http1Client::Close() {
  if (ssl_ != nullptr) {
    // A close_notify, not waited for: a connection closed without one
    // leaves its session unresumable on both sides.
    SSL_shutdown(ssl_);
    ERR_clear_error();
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

absl::Status Http1Client::Connect(absl::Time deadline) {
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = absl::StrCat(target_.port);
  const int gai =
      getaddrinfo(target_.host.c_str(), port.c_str(), &hints, &found);
  if (gai != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ",
                                               QuoteForError(target_.host),
                                               ": ", gai_strerror(gai)));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> addresses(found, freeaddrinfo);
  std::string why = "no address";
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd =
        socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               a->ai_protocol);
    if (fd < 0) {
      why = strerror(errno);
      continue;
    }
    int error = 0;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      error = errno;
      if (error == EINPROGRESS) {
        pollfd p = {fd, POLLOUT, 0};
        const int ready = poll(&p, 1, PollMillis(deadline));
        if (ready == 0) {
          ::close(fd);
          return absl::DeadlineExceededError(
              absl::StrCat("connecting to ", where_, ": deadline exceeded"));
        }
        socklen_t size = sizeof(error);
        if (ready < 0) {
          error = errno;
        } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) {
          error = errno;
        }
      }
    }
    if (error != 0) {
      why = strerror(error);
      ::close(fd);
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fd_ = fd;
    return target_.tls ? Handshake(deadline) : absl::OkStatus();
  }
  return absl::UnavailableError(
      absl::StrCat("cannot connect to ", where_, ": ", why));
}

absl::Status Http1Client::Handshake(absl::Time deadline) {
  ssl_ = SSL_new(ctx_);
  // OpenSSL writes from SSL_connect, SSL_write, SSL_read (alerts) and
  // SSL_shutdown: a peer that went away is an error, not a SIGPIPE.
  BIO* socket = ssl_ == nullptr ? nullptr : NewNoSigpipeSocketBio(fd_);
  if (socket == nullptr) {
    const std::string why = OpenSslError();
    Close();
    return absl::InternalError(absl::StrCat("cannot set up TLS: ", why));
  }
  SSL_set_bio(ssl_, socket, socket);
  const std::string& name = target_.name.empty() ? target_.host : target_.name;
  bool named = false;
  if (IsIpLiteral(name)) {
    named =
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str()) == 1;
  } else {
    named = SSL_set_tlsext_host_name(ssl_, name.c_str()) == 1 &&
            SSL_set1_host(ssl_, name.c_str()) == 1;
  }
  if (!named) {
    Close();
    return absl::InvalidArgumentError(
        absl::StrCat("server_name: cannot check a certificate against ",
                     QuoteForError(name)));
  }
  if (session_ != nullptr) SSL_set_session(ssl_, session_);
  while (true) {
    ERR_clear_error();
    const int done = SSL_connect(ssl_);
    if (done == 1) {
      session_resumed_ = SSL_session_reused(ssl_) == 1;
      return absl::OkStatus();
    }
    const int error = SSL_get_error(ssl_, done);
    short events = 0;
    if (error == SSL_ERROR_WANT_READ) events = POLLIN;
    if (error == SSL_ERROR_WANT_WRITE) events = POLLOUT;
    if (events == 0) {
      std::string why;
      const long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK) {
        why = absl::StrCat("certificate verify failed: ",
                           X509_verify_cert_error_string(verify));
      } else {
        why = OpenSslError();
        if (why.empty()) why = "the connection was closed";
      }
      Close();
      return absl::UnavailableError(
          absl::StrCat("TLS handshake with ", where_, " failed: ", why));
    }
    pollfd p = {fd_, events, 0};
    if (poll(&p, 1, PollMillis(deadline)) == 0) {
      Close();
      return absl::DeadlineExceededError(
          absl::StrCat("TLS handshake with ", where_, ": deadline exceeded"));
    }
  }
}

absl::Status Http1Client::WriteAll(absl::string_view data,
                                   absl::Time deadline) {
  while (!data.empty()) {
    short wait_for = POLLOUT;
    if (ssl_ != nullptr) {
      ERR_clear_error();
      const int n = SSL_write(
          ssl_, data.data(),
          static_cast<int>(std::min<size_t>(data.size(), size_t{1} << 30)));
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      const int error = SSL_get_error(ssl_, n);
      if (error == SSL_ERROR_WANT_READ) {
        wait_for = POLLIN;
      } else if (error != SSL_ERROR_WANT_WRITE) {
        return absl::UnavailableError(
            absl::StrCat("sending to ", where_, ": the connection failed"));
      }
    } else {
      const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return absl::UnavailableError(
            absl::StrCat("sending to ", where_, ": ", strerror(errno)));
      }
    }
    pollfd p = {fd_, wait_for, 0};
    if (poll(&p, 1, PollMillis(deadline)) == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("sending to ", where_, ": deadline exceeded"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Http1Client::ReadSome(char* buffer, size_t size,
                                             absl::Time deadline) {
  while (true) {
    short wait_for = POLLIN;
    if (ssl_ != nullptr) {
      ERR_clear_error();
      const int n = SSL_read(ssl_, buffer, static_cast<int>(size));
      if (n > 0) return static_cast<size_t>(n);
      const int error = SSL_get_error(ssl_, n);
      if (error == SSL_ERROR_ZERO_RETURN) return 0;
      if (error == SSL_ERROR_WANT_WRITE) {
        wait_for = POLLOUT;
      } else if (error != SSL_ERROR_WANT_READ) {
        // An EOF without close_notify: the end, as far as the answer is
        // concerned (a short body is caught by the parser).
        if (error == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) return 0;
        return absl::UnavailableError(
            absl::StrCat("reading from ", where_, ": ", OpenSslError()));
      }
    } else {
      const ssize_t n = recv(fd_, buffer, size, 0);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        return absl::UnavailableError(
            absl::StrCat("reading from ", where_, ": ", strerror(errno)));
      }
    }
    pollfd p = {fd_, wait_for, 0};
    if (poll(&p, 1, PollMillis(deadline)) == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("waiting for ", where_, "'s answer: deadline exceeded"));
    }
  }
}

bool Http1Client::ClosedWhileIdle() const {
  if (ssl_ != nullptr && SSL_has_pending(ssl_) == 1) return true;
  pollfd p = {fd_, POLLIN, 0};
  return poll(&p, 1, 0) != 0;
}

Http1AnswerParser::Http1AnswerParser(size_t max_body) : max_body_(max_body) {
  http_parser_init(&parser_, HTTP_RESPONSE);
  parser_.data = this;
  http_parser_settings_init(&settings_);
  settings_.on_header_field = &OnHeaderField;
  settings_.on_header_value = &OnHeaderValue;
  settings_.on_body = &OnBody;
  settings_.on_message_complete = &OnMessageComplete;
}

int Http1AnswerParser::OnHeaderField(http_parser* p, const char* at, size_t n) {
  auto* self = static_cast<Http1AnswerParser*>(p->data);
  if (self->in_value_) {
    self->field_.clear();
    self->in_value_ = false;
  }
  // Only Retry-After matters: a longer name is kept cut.
  constexpr size_t kLongestName = 64;
  if (self->field_.size() < kLongestName) {
    self->field_.append(at, std::min(n, kLongestName - self->field_.size()));
  }
  return 0;
}

int Http1AnswerParser::OnHeaderValue(http_parser* p, const char* at, size_t n) {
  auto* self = static_cast<Http1AnswerParser*>(p->data);
  if (!self->in_value_) {
    self->in_value_ = true;
    self->retry_after_ = absl::EqualsIgnoreCase(self->field_, "retry-after");
    if (self->retry_after_) self->response_.retry_after.clear();
  }
  constexpr size_t kLongestValue = 64;
  std::string& value = self->response_.retry_after;
  if (self->retry_after_ && value.size() < kLongestValue) {
    value.append(at, std::min(n, kLongestValue - value.size()));
  }
  return 0;
}

int Http1AnswerParser::OnBody(http_parser* p, const char* at, size_t n) {
  auto* self = static_cast<Http1AnswerParser*>(p->data);
  if (n > self->max_body_ - self->response_.body.size()) {
    self->too_long_ = true;
    return 1;  // stops the parser
  }
  self->response_.body.append(at, n);
  return 0;
}

int Http1AnswerParser::OnMessageComplete(http_parser* p) {
  auto* self = static_cast<Http1AnswerParser*>(p->data);
  self->complete_ = true;
  self->response_.status = static_cast<int>(p->status_code);
  http_parser_pause(p, 1);  // nothing after the answer is read
  return 0;
}

bool Http1AnswerParser::keep_alive() const {
  return complete_ && http_should_keep_alive(&parser_) != 0;
}

absl::Status Http1AnswerParser::Feed(absl::string_view piece) {
  if (!error_.ok() || complete_) return error_;
  if (!piece.empty()) started_ = true;
  // An empty piece tells the parser the stream ended (the end of a body
  // delimited by the close, else an error).
  http_parser_execute(&parser_, &settings_, piece.data(), piece.size());
  const http_errno error = HTTP_PARSER_ERRNO(&parser_);
  if (too_long_) {
    error_ = absl::ResourceExhaustedError(
        absl::StrCat("the body is longer than ", max_body_, " bytes"));
  } else if (piece.empty() && !complete_) {
    error_ = absl::UnavailableError(
        "the connection was closed before the answer ended");
  } else if (error != HPE_OK && error != HPE_PAUSED) {
    error_ = absl::UnavailableError(absl::StrCat(
        "not an HTTP/1.x answer: ", http_errno_description(error)));
  }
  return error_;
}

absl::StatusOr<Http1Response> Http1Client::Exchange1(absl::string_view request,
                                                     absl::Time deadline,
                                                     size_t max_body,
                                                     bool* answered) {
  *answered = false;
  if (absl::Status sent = WriteAll(request, deadline); !sent.ok()) {
    return sent;
  }
  Http1AnswerParser parser(max_body);
  char buffer[16384];
  while (!parser.complete()) {
    absl::StatusOr<size_t> n = ReadSome(buffer, sizeof(buffer), deadline);
    if (!n.ok()) return n.status();
    absl::Status fed = parser.Feed(absl::string_view(buffer, *n));
    *answered = parser.started();
    if (!fed.ok()) {
      return absl::Status(fed.code(), absl::StrCat("the answer from ", where_,
                                                   ": ", fed.message()));
    }
  }
  if (!parser.keep_alive()) Close();
  return parser.TakeResponse();
}

absl::StatusOr<Http1Response> Http1Client::Post(absl::string_view path,
                                                absl::string_view headers,
                                                absl::string_view body,
                                                absl::Time deadline,
                                                size_t max_body) {
  const std::string& name = target_.name.empty() ? target_.host : target_.name;
  const bool v6 = name.find(':') != std::string::npos;
  const std::string request = absl::StrCat(
      "POST ", path, " HTTP/1.1\r\nHost: ", v6 ? "[" : "", name, v6 ? "]" : "",
      ":", target_.port, "\r\nUser-Agent: ", kUserAgent, "\r\n", headers,
      "Content-Length: ", body.size(), "\r\n\r\n", body);
  for (int attempt = 0;; ++attempt) {
    if (fd_ >= 0 && ClosedWhileIdle()) Close();
    const bool reused = fd_ >= 0;
    if (!reused) {
      if (absl::Status connected = Connect(deadline); !connected.ok()) {
        Close();
        return connected;
      }
    }
    bool answered = false;
    absl::StatusOr<Http1Response> response =
        Exchange1(request, deadline, max_body, &answered);
    if (response.ok()) {
      if (ssl_ != nullptr) {
        // Kept for the next connection (under TLS 1.3 the session ticket
        // arrives after the handshake, so it is taken after the answer).
        SSL_SESSION* latest = SSL_get1_session(ssl_);
        if (latest != nullptr && SSL_SESSION_is_resumable(latest)) {
          if (session_ != nullptr) SSL_SESSION_free(session_);
          session_ = latest;
        } else if (latest != nullptr) {
          SSL_SESSION_free(latest);
        }
      }
      return response;
    }
    Close();
    // The server closed a kept connection as the request went out: once,
    // on a new connection.
    if (reused && !answered && attempt == 0 &&
        absl::IsUnavailable(response.status())) {
      continue;
    }
    return response.status();
  }
}

}  // namespace ringfence
