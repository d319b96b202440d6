// TLS and mutual TLS for ringfenced and its clients (ringctl, the emulated
// fleet): PEM files loaded and checked once, at startup, and turned into gRPC
// credentials.
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

namespace ringfence {

// What the server presents, and whom it accepts.
struct ServerTls {
  // The server's certificate chain (leaf first), PEM.
  std::string cert_chain_pem;
  // Its private key, PEM.
  std::string private_key_pem;
  // CA certificates that sign client certificates, PEM. Non-empty = mutual
  // TLS: every client must present a certificate signed by one of them.
  std::string client_ca_pem;
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

// ServerCredentials
//
// TLS credentials for `tls` (requiring and verifying client certificates if
// it has a client CA); insecure credentials for nullopt.
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
