// What one call of the agent's HTTP transport costs the agent: Http1Client
// (service/http1_client.h) POSTing a heartbeat-sized body to an in-process
// cpp-httplib server on loopback, over a new connection each time (what an
// agent polling every minute does: the server closes idle connections
// after 5 s) or over one kept open, in plaintext and over TLS (a
// throwaway self-signed P-256 certificate; TLS 1.3, sessions resumed).
//
// The figure is the CPU time of the benchmark thread, which is the
// client's alone: the server answers on its own threads (their CPU is
// not counted; the kernel's loopback work is partly counted on the side
// that triggers it).
//
// BM_HttpListenerKeptConnection is the other side: the wall-clock time of a
// request on a kept connection to ringfenced's own HTTP listener
// (service/http_server.h, HttpServer), whose answers are written as a
// header block and then a body. Small writes like those, without
// TCP_NODELAY, wait for the client's delayed acknowledgement (about 40 ms
// on Linux) before the body leaves.
//
//   build/bin/ringfence_http1_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true  (one line)
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "bench/bench_main.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "httplib.h"
#include "service/http1_client.h"
#include "service/http_server.h"

namespace ringfence {
namespace {

// A self-signed certificate for 127.0.0.1 and its key, and the certificate
// as a PEM file (the client's CA file).
struct SelfSigned {
  SelfSigned() {
    key = EVP_EC_gen("P-256");
    cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("bench"),
                               -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* san =
        X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "IP:127.0.0.1");
    X509_add_ext(cert, san, -1);
    X509_EXTENSION_free(san);
    X509_sign(cert, key, EVP_sha256());
    char path[] = "/tmp/ringfence-http1-bench-XXXXXX";
    const int fd = mkstemp(path);
    ca_file = path;
    FILE* f = fdopen(fd, "w");
    PEM_write_X509(f, cert);
    fclose(f);
  }
  ~SelfSigned() {
    unlink(ca_file.c_str());
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  std::string ca_file;
};

// An HTTP(S) server on 127.0.0.1 answering POST /v1/fleet/telemetry with an
// empty protobuf body, as ringfenced's listener answers a batch.
class LoopbackServer {
 public:
  explicit LoopbackServer(bool tls) {
    if (tls) {
      server_ = std::make_unique<httplib::SSLServer>(certs_.cert, certs_.key);
    } else {
      server_ = std::make_unique<httplib::Server>();
    }
    server_->Post("/v1/fleet/telemetry",
                  [](const httplib::Request&, httplib::Response& out) {
                    out.set_content("", "application/x-protobuf");
                  });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    while (!server_->is_running()) absl::SleepFor(absl::Milliseconds(1));
  }
  ~LoopbackServer() {
    server_->stop();
    thread_.join();
  }
  Http1Target Target(bool tls) const {
    Http1Target t;
    t.tls = tls;
    t.host = "127.0.0.1";
    t.port = static_cast<uint16_t>(port_);
    if (tls) t.ca_file = certs_.ca_file;
    return t;
  }

 private:
  SelfSigned certs_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::thread thread_;
};

void Post(benchmark::State& state, bool new_connection) {
  const bool tls = state.range(0) != 0;
  LoopbackServer server(tls);
  absl::StatusOr<std::unique_ptr<Http1Client>> client =
      Http1Client::Create(server.Target(tls));
  if (!client.ok()) {
    state.SkipWithError(std::string(client.status().message()).c_str());
    return;
  }
  // About a heartbeat batch of the agent: one event.
  const std::string body(180, 'e');
  const std::string headers =
      "Content-Type: application/x-protobuf\r\n"
      "Accept: application/x-protobuf\r\n"
      "Authorization: Bearer 0123456789abcdef0123456789abcdef\r\n";
  for (auto _ : state) {
    absl::StatusOr<Http1Response> r =
        (*client)->Post("/v1/fleet/telemetry", headers, body,
                        absl::Now() + absl::Seconds(10), 1 << 20);
    if (!r.ok() || r->status != 200) {
      state.SkipWithError(r.ok() ? "not 200" : r.status().ToString().c_str());
      return;
    }
    if (new_connection) (*client)->Close();
  }
  if (tls && new_connection && state.iterations() > 1 &&
      !(*client)->session_resumed()) {
    state.SkipWithError("the TLS session was not resumed");
  }
}

void BM_Http1PostNewConnection(benchmark::State& state) { Post(state, true); }
BENCHMARK(BM_Http1PostNewConnection)
    ->ArgName("tls")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);

void BM_Http1PostKeptConnection(benchmark::State& state) { Post(state, false); }
BENCHMARK(BM_Http1PostKeptConnection)
    ->ArgName("tls")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond);

// PEM text of a certificate and a key.
std::string CertPem(X509* cert) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}
std::string KeyPem(EVP_PKEY* key) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

// ringfenced's HTTP listener (no gRPC server behind it: the request is one
// the listener answers itself, a POST to a route it does not have, whose
// 404 carries the JSON error body every API error does). Real time per
// request over one kept connection.
void BM_HttpListenerKeptConnection(benchmark::State& state) {
  const bool tls = state.range(0) != 0;
  SelfSigned certs;
  HttpServerOptions options;
  if (tls) {
    ServerTls server_tls;
    server_tls.cert_chain_pem = CertPem(certs.cert);
    server_tls.private_key_pem = KeyPem(certs.key);
    options.tls = server_tls;
  }
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
      grpc::CreateChannel("127.0.0.1:1", grpc::InsecureChannelCredentials()),
      [] { return std::string(); }, options);
  if (!server.ok()) {
    state.SkipWithError(std::string(server.status().message()).c_str());
    return;
  }
  Http1Target target;
  target.tls = tls;
  target.host = "127.0.0.1";
  target.port = static_cast<uint16_t>((*server)->port());
  if (tls) target.ca_file = certs.ca_file;
  absl::StatusOr<std::unique_ptr<Http1Client>> client =
      Http1Client::Create(target);
  if (!client.ok()) {
    state.SkipWithError(std::string(client.status().message()).c_str());
    return;
  }
  const std::string body(180, 'e');
  const std::string headers = "Content-Type: application/x-protobuf\r\n";
  for (auto _ : state) {
    absl::StatusOr<Http1Response> r =
        (*client)->Post("/v1/no-such-route", headers, body,
                        absl::Now() + absl::Seconds(10), 1 << 20);
    if (!r.ok() || r->status != 404) {
      state.SkipWithError(r.ok() ? "not 404" : r.status().ToString().c_str());
      return;
    }
  }
  (*server)->Shutdown();
}
BENCHMARK(BM_HttpListenerKeptConnection)
    ->ArgName("tls")
    ->Arg(0)
    ->Arg(1)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace ringfence

int main(int argc, char** argv) { return ringfence::RunBenchmarks(argc, argv); }
