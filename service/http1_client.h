// Http1Client: one HTTP/1.1 client connection, plaintext or TLS, to one
// server: what the agent's HTTP transport (agent_http_transport.h) sends its
// POSTs over.
//
// Why not libcurl: every agent of a fleet keeps this resident, and Debian's
// libcurl links about 30 shared libraries (GnuTLS, Kerberos, LDAP, a second
// OpenSSL next to the one the statically linked agent carries) whose pages
// stayed resident between polls, and it set up a new OpenSSL context, CA
// file read included, for every connection (bench/README.md, "Host agent
// footprint"). This client is the socket calls, the OpenSSL already in the
// agent (one SSL_CTX for the client's life, the TLS session kept for
// resumption) and Node's http_parser (Debian's libhttp-parser) for the
// answer: status line, headers, Content-Length or chunked bodies,
// keep-alive.
//
// What it does not do: proxies, redirects, compression, HTTP/2. It reuses a
// connection the server kept open; a reused connection that fails before any
// byte of the answer arrived (the server closed it while idle) is replaced
// once, and the request sent again: both of the agent's calls are idempotent
// (GetAssignment asks; the server's evidence from telemetry is monotone, so
// a batch sent twice counts once: docs/agent.md, "Event ids").
//
// Errors (absl::Status): UNAVAILABLE for a name that does not resolve, a
// connection refused or cut, a TLS handshake that fails (the certificate's
// verification error named) or an answer that is not HTTP/1.x;
// DEADLINE_EXCEEDED when the deadline passes first; RESOURCE_EXHAUSTED for
// a body longer than asked for. The connection is closed after any error.
//
// Thread safety: not thread-safe; one call at a time. Writes never raise
// SIGPIPE (MSG_NOSIGNAL, over TLS too: NewNoSigpipeSocketBio); a peer that
// went away is an error.
#pragma once

#include <http_parser.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace ringfence {

struct Http1Target {
  // Whether to speak TLS (https).
  bool tls = false;
  // The host to connect to: a DNS name or an IP literal (IPv6 without
  // brackets).
  std::string host;
  uint16_t port = 0;
  // The name in the Host header, the TLS SNI and the name (or IP address)
  // the server's certificate is checked against (empty: `host`).
  std::string name;
  // TLS: a PEM file of the CA(s) to trust (empty: the system's CAs).
  std::string ca_file;
  // TLS: the client's certificate chain (leaf first) and its key, PEM
  // files, presented when the server asks (mutual TLS). Both or neither.
  std::string cert_file, key_file;
};

struct Http1Response {
  int status = 0;
  std::string body;
  // The Retry-After header's value (empty without one).
  std::string retry_after;
};

// Http1AnswerParser
//
// One HTTP/1.x answer read piece by piece, on http_parser: its status, its
// body (Content-Length, chunked, or up to the end of the stream) and its
// Retry-After header. The pieces may be cut anywhere; the result does not
// depend on where.
//
// Example:
//   Http1AnswerParser parser(/*max_body=*/1 << 20);
//   while (!parser.complete()) {
//     RETURN_IF_ERROR(parser.Feed(ReadSome()));  // "" at the end of stream
//   }
//   Http1Response answer = parser.TakeResponse();
class Http1AnswerParser {
 public:
  explicit Http1AnswerParser(size_t max_body);
  Http1AnswerParser(const Http1AnswerParser&) = delete;
  Http1AnswerParser& operator=(const Http1AnswerParser&) = delete;

  // Feed
  //
  // The next bytes of the stream; an empty piece says it ended. Once the
  // answer is complete, further bytes are ignored. Errors (and every Feed
  // after one returns it again): RESOURCE_EXHAUSTED for a body longer than
  // max_body; UNAVAILABLE for bytes that are not an HTTP/1.x answer (the
  // parser's reason named) or a stream that ended before the answer did.
  absl::Status Feed(absl::string_view piece);

  bool complete() const { return complete_; }
  // Whether any byte has been fed.
  bool started() const { return started_; }
  // Whether the connection may carry another request (a complete answer
  // without "Connection: close", HTTP/1.1).
  bool keep_alive() const;
  // The answer. REQUIRES: complete().
  Http1Response TakeResponse() { return std::move(response_); }

 private:
  static int OnHeaderField(http_parser* p, const char* at, size_t n);
  static int OnHeaderValue(http_parser* p, const char* at, size_t n);
  static int OnBody(http_parser* p, const char* at, size_t n);
  static int OnMessageComplete(http_parser* p);

  http_parser parser_;
  http_parser_settings settings_;
  const size_t max_body_;
  Http1Response response_;
  absl::Status error_;
  bool started_ = false;
  bool complete_ = false;
  bool too_long_ = false;
  // The header being read: (the start of) its name, and whether the value
  // being read is Retry-After's.
  std::string field_;
  bool in_value_ = false;
  bool retry_after_ = false;
};

// ParseHttpUrl
//
// "http://host[:port]" or "https://host[:port]" (scheme case-insensitive,
// IPv6 in brackets, a trailing "/" allowed) as a target; the default ports
// are 80 and 443. INVALID_ARGUMENT naming `field` and the reason for
// anything else (another scheme, a path, query, fragment or user name, a
// port outside 1..65535).
absl::StatusOr<Http1Target> ParseHttpUrl(absl::string_view field,
                                         absl::string_view url);

// NewNoSigpipeSocketBio
//
// An OpenSSL BIO on the connected socket `fd` (left open when the BIO is
// freed) that reads like BIO_s_socket and writes with send(MSG_NOSIGNAL):
// a write to a peer that went away fails with EPIPE and raises no SIGPIPE,
// whatever the process does with that signal, and without touching the
// thread's signal mask. Null if OpenSSL cannot make one. The caller owns it
// (SSL_set_bio takes it over).
BIO* NewNoSigpipeSocketBio(int fd);

class Http1Client {
 public:
  // Create
  //
  // Over TLS, builds the client's SSL context: peer verification on, TLS
  // 1.2 or later, the CAs of `target.ca_file` or the system's, the client
  // certificate and key if given. NOT_FOUND naming the field for a file
  // that cannot be read as PEM; INVALID_ARGUMENT for an empty host or port
  // 0, a certificate without its key (or the reverse), a key that does not
  // match the certificate, or TLS files without TLS. Connects on the first
  // Post, not here.
  static absl::StatusOr<std::unique_ptr<Http1Client>> Create(
      Http1Target target);
  ~Http1Client();
  Http1Client(const Http1Client&) = delete;
  Http1Client& operator=(const Http1Client&) = delete;

  // Post
  //
  // POSTs `body` to `path` with `headers` (complete "Name: value\r\n"
  // lines; Host, Content-Length and User-Agent are added) and reads the
  // answer, whatever its status, by `deadline` (connecting included). A
  // body longer than `max_body` bytes is RESOURCE_EXHAUSTED. The connection
  // stays open when the server keeps it alive.
  absl::StatusOr<Http1Response> Post(absl::string_view path,
                                     absl::string_view headers,
                                     absl::string_view body,
                                     absl::Time deadline, size_t max_body);

  // Close
  //
  // Closes the connection if one is open. The TLS session is kept: the
  // next connection resumes it.
  void Close();

  // Whether a connection is open (for tests).
  bool connected() const { return fd_ >= 0; }
  // Whether the last TLS connection resumed an earlier session (for tests).
  bool session_resumed() const { return session_resumed_; }

 private:
  explicit Http1Client(Http1Target target);

  absl::Status Connect(absl::Time deadline);
  absl::Status Handshake(absl::Time deadline);
  absl::Status WriteAll(absl::string_view data, absl::Time deadline);
  // Reads up to `size` bytes: the count, 0 at the end of the stream.
  absl::StatusOr<size_t> ReadSome(char* buffer, size_t size,
                                  absl::Time deadline);
  // One request and its answer on the open connection. *answered is set
  // once any byte of the answer has arrived.
  absl::StatusOr<Http1Response> Exchange1(absl::string_view request,
                                          absl::Time deadline, size_t max_body,
                                          bool* answered);
  // Whether the idle connection was closed by the server (readable: EOF or
  // stray bytes).
  bool ClosedWhileIdle() const;

  const Http1Target target_;
  std::string where_;  // "host:port", for messages
  SSL_CTX* ctx_ = nullptr;
  SSL_SESSION* session_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool session_resumed_ = false;
};

}  // namespace ringfence
