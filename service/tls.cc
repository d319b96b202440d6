#include "service/tls.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "ringfence/model.h"

namespace ringfence {
namespace {

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

// A PEM file named by the option `what` (e.g. "tls_cert").
struct PemFile {
  std::string what;
  std::string path;
  std::string contents;

  std::string Name() const { return absl::StrCat(what, " ", path); }
};

absl::StatusOr<PemFile> ReadPem(absl::string_view what,
                                const std::string& path) {
  PemFile file{std::string(what), path, ""};
  absl::StatusOr<std::string> contents = ReadFileToString(path);
  if (!contents.ok()) {
    return absl::NotFoundError(
        absl::StrCat(file.Name(), ": cannot read the file"));
  }
  file.contents = *std::move(contents);
  return file;
}

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                BIO_free);
}

// Never prompts for a passphrase (the default callback reads the terminal).
int NoPassphrase(char*, int, int, void*) { return 0; }

// The first certificate of `file` (the leaf of a chain). INVALID_ARGUMENT if
// it holds none, or (with `check_expiry`) if the first has expired.
absl::StatusOr<X509Ptr> FirstCertificate(const PemFile& file,
                                         bool check_expiry) {
  BioPtr bio = MemoryBio(file.contents);
  X509Ptr first(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr),
                X509_free);
  ERR_clear_error();
  if (first == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.Name(), ": no PEM certificate in the file"));
  }
  if (check_expiry &&
      X509_cmp_current_time(X509_get0_notAfter(first.get())) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.Name(), ": the certificate has expired"));
  }
  return first;
}

// Checks that `key` holds a private key matching `cert`'s first certificate.
absl::Status CheckKeyMatches(const PemFile& key, const PemFile& cert) {
  absl::StatusOr<X509Ptr> leaf = FirstCertificate(cert, /*check_expiry=*/true);
  if (!leaf.ok()) return leaf.status();
  BioPtr bio = MemoryBio(key.contents);
  KeyPtr pkey(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr),
      EVP_PKEY_free);
  ERR_clear_error();
  if (pkey == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        key.Name(),
        ": no PEM private key in the file (passphrase-protected keys are not "
        "supported)"));
  }
  const bool matches = X509_check_private_key(leaf->get(), pkey.get()) == 1;
  ERR_clear_error();
  if (!matches) {
    return absl::InvalidArgumentError(absl::StrCat(
        key.Name(), ": the key does not belong to the certificate in ",
        cert.path));
  }
  return absl::OkStatus();
}

// A certificate needs its key, and a key its certificate.
absl::Status RequireBoth(const std::string& cert_path,
                         const std::string& key_path) {
  if (!cert_path.empty() && key_path.empty()) {
    return absl::InvalidArgumentError(
        "tls_key: missing (tls_cert needs its private key)");
  }
  if (cert_path.empty() && !key_path.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert: missing (tls_key needs its certificate)");
  }
  return absl::OkStatus();
}

// Loads and checks a certificate/key pair; both paths must be given.
absl::Status LoadKeyPair(absl::string_view cert_what,
                         const std::string& cert_path,
                         absl::string_view key_what,
                         const std::string& key_path, std::string* cert_pem,
                         std::string* key_pem) {
  absl::StatusOr<PemFile> cert = ReadPem(cert_what, cert_path);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<PemFile> key = ReadPem(key_what, key_path);
  if (!key.ok()) return key.status();
  if (absl::Status s = CheckKeyMatches(*key, *cert); !s.ok()) return s;
  *cert_pem = std::move(cert->contents);
  *key_pem = std::move(key->contents);
  return absl::OkStatus();
}

// Loads and checks a CA bundle.
absl::StatusOr<std::string> LoadCa(absl::string_view what,
                                   const std::string& path) {
  absl::StatusOr<PemFile> ca = ReadPem(what, path);
  if (!ca.ok()) return ca.status();
  // CA bundles may hold expired roots next to valid ones.
  absl::StatusOr<X509Ptr> first = FirstCertificate(*ca, /*check_expiry=*/false);
  if (!first.ok()) return first.status();
  return std::move(ca->contents);
}

}  // namespace

absl::StatusOr<std::optional<ServerTls>> LoadServerTls(
    const std::string& cert_path, const std::string& key_path,
    const std::string& client_ca_path) {
  if (cert_path.empty() && key_path.empty() && client_ca_path.empty()) {
    return std::nullopt;
  }
  if (absl::Status s = RequireBoth(cert_path, key_path); !s.ok()) return s;
  if (cert_path.empty()) {
    return absl::InvalidArgumentError(
        "client_ca: mutual TLS needs tls_cert and tls_key too");
  }
  ServerTls tls;
  absl::Status s = LoadKeyPair("tls_cert", cert_path, "tls_key", key_path,
                               &tls.cert_chain_pem, &tls.private_key_pem);
  if (!s.ok()) return s;
  if (!client_ca_path.empty()) {
    absl::StatusOr<std::string> ca = LoadCa("client_ca", client_ca_path);
    if (!ca.ok()) return ca.status();
    tls.client_ca_pem = *std::move(ca);
  }
  return tls;
}

absl::StatusOr<std::optional<ClientTls>> LoadClientTls(
    const std::string& ca_path, const std::string& cert_path,
    const std::string& key_path) {
  if (ca_path.empty() && cert_path.empty() && key_path.empty()) {
    return std::nullopt;
  }
  if (absl::Status s = RequireBoth(cert_path, key_path); !s.ok()) return s;
  ClientTls tls;
  if (!ca_path.empty()) {
    absl::StatusOr<std::string> ca = LoadCa("tls_ca", ca_path);
    if (!ca.ok()) return ca.status();
    tls.ca_pem = *std::move(ca);
  }
  if (!cert_path.empty()) {
    absl::Status s = LoadKeyPair("tls_cert", cert_path, "tls_key", key_path,
                                 &tls.cert_chain_pem, &tls.private_key_pem);
    if (!s.ok()) return s;
  }
  return tls;
}

TlsFileStager::TlsFileStager(std::string cert_path, std::string key_path,
                             std::string client_ca_path, std::string dir)
    : cert_path_(std::move(cert_path)),
      key_path_(std::move(key_path)),
      client_ca_path_(std::move(client_ca_path)),
      dir_(std::move(dir)) {}

std::string TlsFileStager::client_ca_path() const {
  return client_ca_path_.empty() ? "" : dir_ + "/client_ca.pem";
}

absl::StatusOr<bool> TlsFileStager::Stage() {
  absl::StatusOr<std::optional<ServerTls>> tls =
      LoadServerTls(cert_path_, key_path_, client_ca_path_);
  if (!tls.ok()) return tls.status();
  if (!tls->has_value()) {
    return absl::InvalidArgumentError("tls_cert: missing");
  }
  // The key first: the watcher reads both from this one file.
  std::string identity = (*tls)->private_key_pem;
  if (!identity.empty() && identity.back() != '\n') identity += '\n';
  identity += (*tls)->cert_chain_pem;
  const std::string& client_ca = (*tls)->client_ca_pem;
  if (identity == staged_identity_ && client_ca == staged_client_ca_) {
    return false;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  std::filesystem::permissions(dir_, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, ec);
  if (client_ca != staged_client_ca_ && !client_ca.empty()) {
    if (absl::Status s = WriteFileAtomically(client_ca_path(), client_ca, 0600);
        !s.ok()) {
      return s;
    }
    staged_client_ca_ = client_ca;
  }
  if (identity != staged_identity_) {
    if (absl::Status s = WriteFileAtomically(identity_path(), identity, 0600);
        !s.ok()) {
      return s;
    }
    staged_identity_ = std::move(identity);
  }
  return true;
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(
    const std::optional<ServerTls>& tls) {
  if (!tls.has_value()) return grpc::InsecureServerCredentials();
  const grpc_ssl_client_certificate_request_type client_certs =
      tls->client_ca_pem.empty()
          ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
          : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  if (tls->reload_interval > absl::ZeroDuration()) {
    const auto seconds = static_cast<unsigned int>(
        std::max<int64_t>(1, absl::ToInt64Seconds(tls->reload_interval)));
    auto provider =
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
            tls->watched_identity_path, tls->watched_identity_path,
            tls->watched_client_ca_path, seconds);
    grpc::experimental::TlsServerCredentialsOptions options(provider);
    options.watch_identity_key_cert_pairs();
    if (!tls->watched_client_ca_path.empty()) options.watch_root_certs();
    options.set_cert_request_type(client_certs);
    return grpc::experimental::TlsServerCredentials(options);
  }
  grpc::SslServerCredentialsOptions options(client_certs);
  options.pem_root_certs = tls->client_ca_pem;
  options.pem_key_cert_pairs.push_back(
      {tls->private_key_pem, tls->cert_chain_pem});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target,
                                           const std::optional<ClientTls>& tls,
                                           grpc::ChannelArguments args) {
  if (!tls.has_value()) {
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(),
                                     args);
  }
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls->ca_pem;
  options.pem_cert_chain = tls->cert_chain_pem;
  options.pem_private_key = tls->private_key_pem;
  if (!tls->server_name_override.empty()) {
    args.SetSslTargetNameOverride(tls->server_name_override);
  }
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(options), args);
}

}  // namespace ringfence
