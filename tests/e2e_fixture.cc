#include "e2e_fixture.h"

#include <grpcpp/generic/generic_stub.h>
#include <unistd.h>

#include <cstdlib>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"

namespace ringfence::e2e {

std::string FindOnPath(const std::string& name) {
  const std::string path = Env("PATH");
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

namespace {

// A gRPC client reads its connection only while a thread polls it; a test
// blocked in waitpid() polls nothing, and a server shutting down gracefully
// waits for its clients to acknowledge the GOAWAY: without this, until the
// client's backup poll, every 5s. (Read when gRPC initializes, at the first
// channel, after static initialization. Children inherit it, harmlessly.)
const bool kFastBackupPoll = [] {
  setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100",
         /*overwrite=*/0);
  return true;
}();

constexpr char kOpensslConfig[] = R"(
[req]
distinguished_name = dn
prompt = no
[dn]
CN = ringfence-e2e
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
[host_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectAltName = URI:ringfence://host/h7, DNS:h7.fleet.example
authorityKeyIdentifier = keyid
[operator_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectAltName = URI:ringfence://operator/carol
authorityKeyIdentifier = keyid
[unknown_role_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectAltName = URI:ringfence://wizard/merlin
authorityKeyIdentifier = keyid
)";

// Generates the files into `dir`; false (after logging) on failure.
bool Generate(const std::string& dir, TestCertFiles* files) {
  const std::string openssl = FindOnPath("openssl");
  if (openssl.empty()) {
    std::cerr << "TestCerts: no openssl on $PATH\n";
    return false;
  }
  const std::string config = dir + "/openssl.cnf";
  WriteFile(config, kOpensslConfig);
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), openssl);
    const CommandResult r = RunCommand(args);
    if (r.exit_code != 0) {
      std::cerr << "TestCerts: " << absl::StrJoin(args, " ") << " failed ("
                << r.exit_code << "):\n"
                << r.err;
    }
    return r.exit_code == 0;
  };
  const std::vector<std::string> new_key = {
      "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc"};
  // A self-signed CA `name`.pem with key `name`.key.
  auto ca = [&](const std::string& name) {
    std::vector<std::string> args = {"req",         "-config",
                                     config,        "-x509",
                                     "-days",       "2",
                                     "-subj",       "/CN=ringfence e2e " + name,
                                     "-extensions", "ca_ext",
                                     "-keyout",     dir + "/" + name + ".key",
                                     "-out",        dir + "/" + name + ".pem"};
    args.insert(args.begin() + 1, new_key.begin(), new_key.end());
    return run(args);
  };
  // A certificate `name`.pem (key `name`.key) signed by CA `issuer`.
  auto leaf = [&](const std::string& name, const std::string& issuer,
                  const std::string& extensions, const std::string& cn) {
    std::vector<std::string> req = {"req",     "-config",
                                    config,    "-new",
                                    "-subj",   "/CN=" + cn,
                                    "-keyout", dir + "/" + name + ".key",
                                    "-out",    dir + "/" + name + ".csr"};
    req.insert(req.begin() + 1, new_key.begin(), new_key.end());
    return run(req) && run({"x509", "-req", "-in", dir + "/" + name + ".csr",
                            "-CA", dir + "/" + issuer + ".pem", "-CAkey",
                            dir + "/" + issuer + ".key", "-set_serial",
                            std::to_string(name.size() * 1000 + issuer.size()),
                            "-days", "2", "-extfile", config, "-extensions",
                            extensions, "-out", dir + "/" + name + ".pem"});
  };
  if (!ca("ca") || !ca("client-ca") || !ca("other-ca") ||
      !leaf("server", "ca", "server_ext", "localhost") ||
      !leaf("client", "client-ca", "client_ext", "fleet-agent") ||
      !leaf("host7", "client-ca", "host_ext", "h7") ||
      !leaf("operator-carol", "client-ca", "operator_ext", "carol") ||
      !leaf("unknown-role", "client-ca", "unknown_role_ext", "merlin") ||
      !leaf("other", "other-ca", "client_ext", "stranger") ||
      !leaf("other-server", "other-ca", "server_ext", "localhost")) {
    return false;
  }
  auto pem = [&](const std::string& name) { return dir + "/" + name + ".pem"; };
  auto key = [&](const std::string& name) { return dir + "/" + name + ".key"; };
  files->ca = pem("ca");
  files->server_cert = pem("server");
  files->server_key = key("server");
  files->client_ca = pem("client-ca");
  files->client_cert = pem("client");
  files->client_key = key("client");
  files->host_cert = pem("host7");
  files->host_key = key("host7");
  files->operator_cert = pem("operator-carol");
  files->operator_key = key("operator-carol");
  files->unknown_role_cert = pem("unknown-role");
  files->unknown_role_key = key("unknown-role");
  files->other_ca = pem("other-ca");
  files->other_cert = pem("other");
  files->other_key = key("other");
  files->other_server_cert = pem("other-server");
  files->other_server_key = key("other-server");
  return true;
}

// Removes the directory when the process exits.
struct CertDir {
  std::string dir = MakeTempDir();
  TestCertFiles files;
  bool ok = !dir.empty() && Generate(dir, &files);
  ~CertDir() { RemoveTree(dir); }
};

}  // namespace

const TestCertFiles* TestCerts() {
  static CertDir certs;
  return certs.ok ? &certs.files : nullptr;
}

int E2ETest::HealthStatus(const std::string& service,
                          std::shared_ptr<grpc::Channel> channel) {
  // HealthCheckRequest{service}: field 1, length-delimited (names < 128).
  std::string request_bytes;
  if (!service.empty()) {
    request_bytes = absl::StrCat(
        "\x0a", std::string(1, static_cast<char>(service.size())), service);
  }
  grpc::GenericStub generic(channel != nullptr ? channel : channel_);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::Status status;
  absl::Notification done;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", {}, &request,
                    &response, [&](grpc::Status s) {
                      status = std::move(s);
                      done.Notify();
                    });
  done.WaitForNotification();
  if (!status.ok()) return -static_cast<int>(status.error_code());
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // HealthCheckResponse{status}: field 1, varint; absent = UNKNOWN.
  if (bytes.empty()) return 0;
  if (bytes.size() == 2 && bytes[0] == '\x08') return bytes[1];
  return -1;
}

std::string E2ETest::ListedState() {
  v1::ListReleasesResponse releases;
  EXPECT_THAT(releases_->ListReleases(Ctx(kOperatorToken).get(), {}, &releases),
              GrpcOk());
  v1::ListRolloutsResponse rollouts;
  EXPECT_THAT(rollouts_->ListRollouts(Ctx(kOperatorToken).get(), {}, &rollouts),
              GrpcOk());
  // The gate's latest HOLD decision is live state that the ticker refreshes
  // on its own; "nothing changed" is about what requests can change.
  for (auto& r : *rollouts.mutable_rollouts()) r.clear_last_decision();
  return absl::StrCat(releases.DebugString(), "\n----\n",
                      rollouts.DebugString());
}

}  // namespace ringfence::e2e
