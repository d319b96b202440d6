// TLS and mutual TLS for ringfenced and its clients (ringctl, the emulated
// fleet): PEM files loaded and checked at startup and turned into gRPC
// credentials; the server may also re-read its files while it runs, so a
// rotated certificate is served without a restart.
//
// The files are checked with OpenSSL when loaded, so a wrong path, a file
// that holds no certificate, a key that does not belong to its certificate
// or an expired certificate fails at startup with the file's name instead of
// as a handshake failure on every call.
//
// Example (server):
//   absl::StatusOr<std::optional<ServerTls>> tls =
//       LoadServerTls(cert_path, key_path, client_ca_path);
//   builder.AddListeningPort(addr, ServerCredentials(*tls), &port);
// Example (client):
//   absl::StatusOr<std::optional<ClientTls>> tls =
//       LoadClientTls(ca_path, cert_path, key_path);
//   auto channel = MakeChannel("127.0.0.1:7443", *tls);
//
// Thread safety: pure functions over immutable values.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ringfence {

// What the server presents, and whom it accepts.
struct ServerTls {
  // The server's certificate chain (leaf first), PEM.
  std::string cert_chain_pem;
  // Its private key, PEM.
  std::string private_key_pem;
  // CA certificates that sign client certificates, PEM. Non-empty = mutual
  // TLS: every gRPC client must present a certificate signed by one of them
  // (HTTPS clients may: http_server.h).
  std::string client_ca_pem;
  // > 0: serve from files that gRPC re-reads this often (new handshakes
  // only), namely TlsFileStager's: `watched_identity_path` (key and
  // certificate chain in one file) and `watched_client_ca_path` (empty
  // without mutual TLS). 0: serve the PEM above, read once.
  absl::Duration reload_interval = absl::ZeroDuration();
  std::string watched_identity_path, watched_client_ca_path;
};

// What a client trusts, and what it presents.
struct ClientTls {
  // CA certificates that sign the server's certificate, PEM (empty = the
  // system's roots).
  std::string ca_pem;
  // The client's certificate chain and key for mutual TLS, PEM (both empty =
  // none).
  std::string cert_chain_pem;
  std::string private_key_pem;
  // The name to check the server's certificate against instead of the
  // target's host (empty = the target's host).
  std::string server_name_override;
};

// LoadServerTls
//
// The server's TLS from PEM files. All paths empty = no TLS (nullopt).
// INVALID_ARGUMENT if only one of cert/key is given, if a client CA is given
// without them, or if a file holds no certificate (key), the key does not
// match the certificate, or the certificate has expired; NOT_FOUND if a file
// cannot be read. Errors name the file.
absl::StatusOr<std::optional<ServerTls>> LoadServerTls(
    const std::string& cert_path, const std::string& key_path,
    const std::string& client_ca_path);

// LoadClientTls
//
// A client's TLS from PEM files. All paths empty = no TLS (nullopt); a CA
// alone = TLS verifying the server; cert and key = mutual TLS (with the
// system's roots if no CA is given). Errors as LoadServerTls.
absl::StatusOr<std::optional<ClientTls>> LoadClientTls(
    const std::string& ca_path, const std::string& cert_path,
    const std::string& key_path);

// TlsFileStager
//
// Certificate rotation without a restart. gRPC's file watcher serves
// whatever its files hold, including a half-written file or a key from one
// pair with the certificate of the next (it stops serving TLS then), and it
// reads a key and a certificate file at different instants. So the watcher
// reads ringfenced's own copies in `dir`, and Stage() replaces them only
// with files that load and check as at startup (LoadServerTls): the key and
// chain together in one file (identity.pem), by one rename, mode 0600. A
// bad or half-rotated set of files is refused and the copies keep the last
// good one.
//
// Thread safety: Stage() from one thread at a time.
class TlsFileStager {
 public:
  TlsFileStager(std::string cert_path, std::string key_path,
                std::string client_ca_path, std::string dir);

  // Loads and checks the files; if they hold something other than what is
  // staged, stages it. True if it staged; the LoadServerTls error (naming
  // the file) if the files do not check, or INTERNAL if the copies cannot
  // be written (the previous ones stay).
  absl::StatusOr<bool> Stage();

  std::string identity_path() const { return dir_ + "/identity.pem"; }
  // Empty without a client CA.
  std::string client_ca_path() const;

 private:
  const std::string cert_path_, key_path_, client_ca_path_, dir_;
  std::string staged_identity_, staged_client_ca_;
};

// ServerCredentials
//
// TLS credentials for `tls` (requiring and verifying client certificates if
// it has a client CA; watching its files if it has a reload interval);
// insecure credentials for nullopt.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
    const std::optional<ServerTls>& tls);

// MakeChannel
//
// A channel to `target` over TLS per `tls` (plaintext for nullopt), with
// `args` (for e.g. a local subchannel pool).
std::shared_ptr<grpc::Channel> MakeChannel(
    const std::string& target, const std::optional<ClientTls>& tls,
    grpc::ChannelArguments args = grpc::ChannelArguments());

}  // namespace ringfence
