// ringctl: the command-line client of ringfenced.
//
//   ringctl release create --id=cf291-v2 --content-type=channel-file/291
//       --digest=<sha256> --size=40000 [--version=V] [--fetch-url=URL]
//       [--signature=BASE64]
//   ringctl release validate --id=... (the flags of release create)
//   ringctl release get ID | release list [--content-type=T]
//   ringctl rollout start --release=R --plan=FILE --reason=TEXT [--id=ID]
//       [--baseline=R | --no-baseline] [--pending]
//   ringctl rollout status ID | rollout list [--content-type=T] [--release=R]
//   ringctl rollout pause|resume|abort|promote ID --reason=TEXT
//   ringctl rollout watch ID [--interval=1s]
//   ringctl emergency-stop --content-type=T --reason=TEXT [--clear]
//   ringctl gate check --release=R [--stage=S] [--wait --timeout=10m]
//   ringctl plan explain FILE
//
// Offline (no server):
//   ringctl validate --schema=S --capabilities=C [--target-agents=RANGE] FILE
//   ringctl keygen --out=PREFIX
//   ringctl sign --key=PREFIX.key --id=... --content-type=... --digest=...
//       --size=... [--version=...] [--key-id=...]
//   ringctl simulate --plan=FILE --scenario=FILE ...
//
// Global flags: --server (default 127.0.0.1:7443), --token (default
// $RINGFENCE_TOKEN), --json (print responses as protobuf JSON),
// --rpc-timeout (default 10s), --tls-ca (connect over TLS, verifying the
// server with these CAs), --tls-cert/--tls-key (client certificate for
// mutual TLS), --tls-server-name. Flags may be spelled with '_' or '-'.
//
// Exit codes:
//   0  success; the gate is cleared; the watched rollout completed
//   1  not yet: the gate is pending (after --timeout with --wait)
//   2  halted or rejected (gate, watched rollout), or the server refused the
//      request (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
//      FAILED_PRECONDITION, OUT_OF_RANGE); `validate`: the file is rejected
//   3  usage error, connection or authentication failure, server error;
//      offline commands: unreadable files, invalid schema, manifest or key
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "ringfence/content.h"
#include "ringfence/gate.h"
#include "ringfence/model.h"
#include "ringfence/policy.h"
#include "ringfence/signing.h"
#include "ringfence/sim_command.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "ringfence/validate.h"
#include "service/status_map.h"
#include "service/tls.h"

namespace {

namespace v1 = ::ringfence::v1;
using ringfence::Release;
using ringfence::Rollout;

constexpr int kExitOk = 0;
constexpr int kExitNotYet = 1;
constexpr int kExitRejected = 2;
constexpr int kExitError = 3;

constexpr char kUsage[] =
    R"(usage: ringctl [--server=HOST:PORT] [--token=T] [--json] COMMAND ...

commands:
  release create --id=ID --content-type=T
                 (--payload=FILE | --digest=SHA256 --size=BYTES)
                 [--version=V] [--fetch-url=URL] [--platforms=a,b]
                 [--min-agent-version=V] [--max-agent-version=V]
                 [--signature=BASE64 (from `ringctl sign`)]
                 (--payload sends the content for the server's content
                 rules; digest and size default to the file's; a rejected
                 release's findings are printed, exit 2)
  release validate (the flags of release create; stores nothing)
  release get ID
  release list [--content-type=T]
  rollout start --release=R --plan=FILE --reason=TEXT [--id=ID]
                [--baseline=R | --no-baseline] [--pending]
                (--no-baseline: the first release of a content type; a halt
                tells every host to unload it)
  rollout status ID
  rollout list [--content-type=T] [--release=R]
  rollout pause|resume|abort|promote ID --reason=TEXT
  rollout watch ID [--interval=1s]
  emergency-stop --content-type=T --reason=TEXT [--clear]
  gate check --release=R [--stage=S] [--wait] [--timeout=D] [--interval=D]
  simulate --plan=FILE --scenario=FILE [--seeds=N] [--seed-offset=K]
           [--rehearse=PRESET] [--deciders=ringfence,oracle,threshold_rule]
           [--threads=N] [--runs=FILE] [--horizon=DURATION]
           (offline: no server; runs seeds K+1..K+N; presets boot-loop,
           crash-on-apply:P, crash-rate:RR; --json prints the summary as
           JSON, --runs writes one JSON line per run; warns on stderr,
           before running, when the plan cannot progress on the fleet)
  plan explain FILE
           (offline: prints every stage's effective gate rules, each value
           marked default, plan or stage, and the built-in signals switched
           off with their reasons; exit 2 naming the field if the plan is
           refused)
  validate --schema=FILE --capabilities=FILE [--target-agents=RANGE] FILE
           (offline: checks a content file against its schema and the
           agents' capability manifest; RANGE is MIN..MAX, e.g. 7.11..7.12;
           without it every manifest entry applies; --json prints the
           ValidationResult; exit 0 valid, 2 rejected)
  keygen --out=PREFIX
           (offline: writes an Ed25519 key pair, PREFIX.key (private, mode
           0600, never overwritten) and PREFIX.pub; prints the key id)
  sign --key=PREFIX.key --id=ID --content-type=T
       (--payload=FILE | --digest=SHA256 --size=BYTES) [--version=V]
       [--min-agent-version=V] [--max-agent-version=V] [--platforms=a,b]
       [--key-id=K]
           (offline: prints the release signature, base64, for
           Release.signature; --key-id defaults to the key's fingerprint)

global flags:
  --server       address of ringfenced (default 127.0.0.1:7443)
  --token        bearer token (default: $RINGFENCE_TOKEN)
  --json         print responses as protobuf JSON
  --rpc-timeout  deadline of each call (default 10s)
  --tls-ca       PEM CA certificates of the server: connect over TLS
  --tls-cert     PEM client certificate chain (mutual TLS; with --tls-key)
  --tls-key      PEM private key of --tls-cert
  --tls-server-name  name to verify the server's certificate against
                 (default: the --server host)

exit codes: 0 ok/cleared, 1 not yet, 2 halted/rejected/refused,
            3 usage, connection or server error
)";

// ---- Command line ---------------------------------------------------------

// Flags that take no value.
const std::set<std::string> kBoolFlags = {"json",        "wait",  "pending",
                                          "no-baseline", "clear", "help"};
// Commands that run without a server.
const std::set<std::string> kOfflineCommands = {"simulate", "validate",
                                                "keygen", "sign", "plan"};
const std::set<std::string> kGlobalFlags = {
    "server", "token",    "json",    "rpc-timeout",    "help",
    "tls-ca", "tls-cert", "tls-key", "tls-server-name"};

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;

  bool Has(const std::string& name) const { return flags.count(name) > 0; }
  std::string Get(const std::string& name, std::string def = "") const {
    auto it = flags.find(name);
    return it == flags.end() ? def : it->second;
  }
};

Args ParseArgs(int argc, char** argv, std::string* error) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) args.positional.push_back(argv[i]);
      break;
    }
    if (!absl::StartsWith(a, "--") || a.size() == 2) {
      args.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::string value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    absl::StrReplaceAll({{"_", "-"}}, &name);
    if (kBoolFlags.count(name) > 0) {
      if (has_value && value != "true" && value != "false") {
        *error = absl::StrCat("--", name, " takes no value (or true/false)");
        return args;
      }
      if (!has_value || value == "true") {
        args.flags[name] = "true";
      } else {
        args.flags.erase(name);
      }
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        *error = absl::StrCat("--", name, " needs a value");
        return args;
      }
      value = argv[++i];
    }
    args.flags[name] = value;
  }
  return args;
}

// Fails with a usage error unless every flag given is global or in
// `allowed`, every flag in `required` is given, and there are exactly
// `positional` positional arguments after the command words.
bool CheckArgs(const Args& args, size_t command_words, size_t positional,
               const std::set<std::string>& allowed,
               const std::set<std::string>& required, std::string* error) {
  for (const auto& [name, value] : args.flags) {
    if (kGlobalFlags.count(name) == 0 && allowed.count(name) == 0) {
      *error = absl::StrCat("unknown flag --", name, " for this command");
      return false;
    }
  }
  for (const std::string& name : required) {
    if (args.Get(name).empty()) {
      *error = absl::StrCat("missing --", name);
      return false;
    }
  }
  if (args.positional.size() != command_words + positional) {
    *error = positional == 0
                 ? std::string("unexpected argument")
                 : absl::StrCat("expected ", positional, " argument(s)");
    return false;
  }
  return true;
}

// ---- Output -----------------------------------------------------------------

std::string Json(const google::protobuf::Message& m, bool one_line = false) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = !one_line;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  if (!one_line && absl::EndsWith(out, "\n")) out.pop_back();
  return out;
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", ringfence::FromProto(t),
                          absl::UTCTimeZone());
}

std::string StateName(ringfence::RolloutState s) {
  return std::string(ringfence::RolloutStateName(s));
}

void PrintRelease(const Release& r) {
  std::printf("%-24s %-24s version=%s size=%llu digest=%s\n", r.id().c_str(),
              r.content_type().c_str(),
              r.version().empty() ? "-" : r.version().c_str(),
              static_cast<unsigned long long>(r.size_bytes()),
              r.digest_sha256().c_str());
}

void PrintReleaseDetail(const Release& r) {
  std::printf("release       %s\n", r.id().c_str());
  std::printf("content type  %s\n", r.content_type().c_str());
  std::printf("version       %s\n", r.version().c_str());
  std::printf("digest        %s\n", r.digest_sha256().c_str());
  std::printf("size          %llu bytes\n",
              static_cast<unsigned long long>(r.size_bytes()));
  std::printf("fetch url     %s\n", r.fetch_url().c_str());
  std::printf("created       %s\n", FormatTime(r.created_at()).c_str());
}

// "canary (2/4)", or "late-track" past the regular stages.
std::string StageLabel(const Rollout& r) {
  const int n = r.plan().stages_size();
  const int stage = static_cast<int>(r.stage());
  const std::string name = ringfence::StageName(r.plan(), stage);
  if (stage >= n) return name;
  return absl::StrFormat("%s (%d/%d)", name, stage + 1, n);
}

void PrintRolloutLine(const Rollout& r) {
  std::printf("%-28s %-24s %-10s stage %s\n", r.id().c_str(),
              r.release_id().c_str(), StateName(r.state()).c_str(),
              StageLabel(r).c_str());
}

std::string SignalsLine(const v1::RolloutTelemetry& t) {
  std::vector<std::string> parts;
  for (const ringfence::SignalSummary& s : t.signals()) {
    parts.push_back(absl::StrFormat("%s %d/%d", s.signal(),
                                    s.treatment().affected_hosts(),
                                    s.control().affected_hosts()));
  }
  return absl::StrJoin(parts, "  ");
}

void PrintRolloutStatus(const v1::GetRolloutResponse& st) {
  const Rollout& r = st.rollout();
  const v1::RolloutTelemetry& t = st.telemetry();
  std::printf("rollout    %s\n", r.id().c_str());
  std::printf(
      "release    %s (%s)%s\n", r.release_id().c_str(),
      r.content_type().c_str(),
      r.baseline_release_id().empty()
          ? ""
          : absl::StrCat(", baseline ", r.baseline_release_id()).c_str());
  std::printf("state      %s%s\n", StateName(r.state()).c_str(),
              r.reason().empty() ? "" : absl::StrCat(": ", r.reason()).c_str());
  std::printf("stage      %s since %s\n", StageLabel(r).c_str(),
              FormatTime(r.stage_started_at()).c_str());
  std::printf(
      "exposure   %llu hosts exposed (stage budget %llu), %llu control "
      "hosts\n",
      static_cast<unsigned long long>(t.treatment_hosts()),
      static_cast<unsigned long long>(st.stage_exposure_budget()),
      static_cast<unsigned long long>(t.control_hosts()));
  std::printf("signals    %s   (affected hosts: exposed/control)\n",
              SignalsLine(t).c_str());
  if (!t.unwatched_signals().empty()) {
    std::vector<std::string> parts;
    for (const auto& [name, n] : t.unwatched_signals()) {
      parts.push_back(absl::StrCat(name, " ", n));
    }
    std::sort(parts.begin(), parts.end());
    std::printf("unwatched  %s   (signal events no rule watches)\n",
                absl::StrJoin(parts, "  ").c_str());
  }
  if (r.has_last_decision()) {
    std::printf("decision   %s\n", r.last_decision().summary().c_str());
  }
  std::printf("telemetry  last batch %s\n",
              t.has_last_ingest() ? FormatTime(t.last_ingest()).c_str()
                                  : "never (since the server started)");
}

// ---- Calls ------------------------------------------------------------------

class Client {
 public:
  Client(const Args& args, const std::optional<ringfence::ClientTls>& tls)
      : channel_(
            ringfence::MakeChannel(args.Get("server", "127.0.0.1:7443"), tls)),
        releases_(v1::Releases::NewStub(channel_)),
        rollouts_(v1::Rollouts::NewStub(channel_)),
        json_(args.Has("json")) {
    const char* env = std::getenv("RINGFENCE_TOKEN");
    token_ = args.Get("token", env == nullptr ? "" : env);
  }

  // Sets the deadline from --rpc-timeout; false on a bad value.
  bool SetRpcTimeout(const std::string& value) {
    if (value.empty()) return true;
    return absl::ParseDuration(value, &rpc_timeout_) &&
           rpc_timeout_ > absl::ZeroDuration();
  }

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(rpc_timeout_));
    if (!token_.empty()) {
      ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token_));
    }
    return ctx;
  }

  v1::Releases::Stub& releases() { return *releases_; }
  v1::Rollouts::Stub& rollouts() { return *rollouts_; }
  bool json() const { return json_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Releases::Stub> releases_;
  std::unique_ptr<v1::Rollouts::Stub> rollouts_;
  bool json_;
  std::string token_;
  absl::Duration rpc_timeout_ = absl::Seconds(10);
};

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "ERROR";
  }
}

// Prints the error and returns the exit code for a failed call.
int Fail(const grpc::Status& s) {
  // A rejected release carries all its findings: list them, one per line,
  // instead of the message that strings the first ones together.
  if (std::optional<ringfence::content::v1::ValidationResult> result =
          ringfence::ValidationResultFromStatus(s)) {
    const int errors = ringfence::FromProto(*result).errors();
    std::fprintf(stderr,
                 "ringctl: %s: content rejected: %d error(s), %d "
                 "warning(s):\n",
                 CodeName(s.error_code()), errors,
                 result->findings_size() - errors);
    for (const ringfence::content::v1::Finding& f : result->findings()) {
      std::fprintf(stderr, "  %s %s: %s\n", f.severity().c_str(),
                   f.code().c_str(), f.message().c_str());
    }
  } else {
    std::fprintf(stderr, "ringctl: %s: %s\n", CodeName(s.error_code()),
                 s.error_message().c_str());
  }
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitRejected;
    default:
      return kExitError;
  }
}

int Usage(const std::string& message) {
  std::fprintf(stderr, "ringctl: %s\n\n%s", message.c_str(), kUsage);
  return kExitError;
}

// ---- Commands ---------------------------------------------------------------

bool ReadWholeFile(const char* cmd, const std::string& path, std::string* out) {
  absl::StatusOr<std::string> contents = ringfence::ReadFileToString(path);
  if (!contents.ok()) {
    std::fprintf(stderr, "ringctl %s: cannot read %s\n", cmd, path.c_str());
    return false;
  }
  *out = *std::move(contents);
  return true;
}

// The release described by the flags of `release create` (and its
// --payload's contents into `payload`, if not null); false (after a message)
// on a bad value. --digest and --size default to the payload's; without a
// payload they are required if `require_digest` (`release validate` lets the
// server name what is missing).
bool ReleaseFromArgs(const Args& args, bool require_digest, Release* r,
                     std::string* payload = nullptr) {
  r->set_id(args.Get("id"));
  r->set_content_type(args.Get("content-type"));
  r->set_digest_sha256(args.Get("digest"));
  uint64_t size = 0;
  if (args.Has("size") && !absl::SimpleAtoi(args.Get("size"), &size)) {
    Usage("--size must be a number of bytes");
    return false;
  }
  r->set_size_bytes(size);
  if (args.Has("payload")) {
    std::string contents;
    if (!ReadWholeFile("release", args.Get("payload"), &contents)) {
      return false;
    }
    const ringfence::PayloadDigest d = ringfence::ComputeDigest(contents);
    if (!args.Has("digest")) r->set_digest_sha256(d.sha256_hex);
    if (!args.Has("size")) r->set_size_bytes(d.size_bytes);
    if (payload != nullptr) *payload = std::move(contents);
  } else if (require_digest && (!args.Has("digest") || !args.Has("size"))) {
    Usage("--digest and --size are required without --payload");
    return false;
  }
  r->set_version(args.Get("version"));
  r->set_fetch_url(args.Get("fetch-url"));
  if (args.Has("signature")) {
    std::string signature;
    if (!absl::Base64Unescape(args.Get("signature"), &signature)) {
      Usage("--signature must be base64 (what `ringctl sign` prints)");
      return false;
    }
    r->set_signature(signature);
  }
  r->mutable_targeting()->set_min_agent_version(args.Get("min-agent-version"));
  r->mutable_targeting()->set_max_agent_version(args.Get("max-agent-version"));
  if (args.Has("platforms")) {
    for (absl::string_view p :
         absl::StrSplit(args.Get("platforms"), ',', absl::SkipEmpty())) {
      r->mutable_targeting()->add_platforms(std::string(p));
    }
  }
  return true;
}

int ReleaseCreate(Client& c, const Args& args) {
  v1::CreateReleaseRequest req;
  if (!ReleaseFromArgs(args, /*require_digest=*/true, req.mutable_release(),
                       req.mutable_payload())) {
    return kExitError;
  }
  Release resp;
  grpc::Status s = c.releases().CreateRelease(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    std::printf("created release %s of %s\n", resp.id().c_str(),
                resp.content_type().c_str());
  }
  return kExitOk;
}

int ReleaseValidate(Client& c, const Args& args) {
  v1::ValidateReleaseRequest req;
  if (!ReleaseFromArgs(args, /*require_digest=*/false, req.mutable_release(),
                       req.mutable_payload())) {
    return kExitError;
  }
  v1::ValidateReleaseResponse resp;
  grpc::Status s = c.releases().ValidateRelease(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    for (const ringfence::content::v1::Finding& f : resp.findings()) {
      std::printf("%s %s: %s\n", f.severity().c_str(), f.code().c_str(),
                  f.message().c_str());
    }
    std::printf("release %s is %s\n", req.release().id().c_str(),
                resp.ok() ? "valid" : "rejected");
  }
  return resp.ok() ? kExitOk : kExitRejected;
}

int ReleaseGet(Client& c, const std::string& id) {
  v1::GetReleaseRequest req;
  req.set_release_id(id);
  Release resp;
  grpc::Status s = c.releases().GetRelease(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    PrintReleaseDetail(resp);
  }
  return kExitOk;
}

int ReleaseList(Client& c, const Args& args) {
  v1::ListReleasesRequest req;
  req.set_content_type(args.Get("content-type"));
  v1::ListReleasesResponse resp;
  grpc::Status s = c.releases().ListReleases(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    for (const Release& r : resp.releases()) PrintRelease(r);
  }
  return kExitOk;
}

int RolloutStart(Client& c, const Args& args) {
  v1::StartRolloutRequest req;
  req.set_rollout_id(args.Get("id"));
  req.set_release_id(args.Get("release"));
  req.set_baseline_release_id(args.Get("baseline"));
  req.set_reason(args.Get("reason"));
  req.set_start_pending(args.Has("pending"));
  req.set_allow_no_baseline(args.Has("no-baseline"));
  absl::Status loaded =
      ringfence::LoadMessageFile(args.Get("plan"), req.mutable_plan());
  if (!loaded.ok()) {
    std::fprintf(stderr, "ringctl: --plan: %s\n",
                 std::string(loaded.message()).c_str());
    return absl::IsInvalidArgument(loaded) ? kExitRejected : kExitError;
  }
  Rollout resp;
  grpc::Status s = c.rollouts().StartRollout(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    std::printf("started rollout %s of %s (%s, stage %s)\n", resp.id().c_str(),
                resp.release_id().c_str(), StateName(resp.state()).c_str(),
                StageLabel(resp).c_str());
    if (resp.baseline_release_id().empty()) {
      std::printf(
          "note: no baseline: if this rollout is halted or aborted, every "
          "host is told to unload %s\n",
          resp.content_type().c_str());
    } else if (resp.baseline_vouched()) {
      std::printf(
          "note: baseline %s never completed a rollout (vouched for): hosts "
          "outside the rollout keep what they run; only a halt or abort "
          "tells hosts to run it\n",
          resp.baseline_release_id().c_str());
    }
  }
  return kExitOk;
}

int RolloutStatus(Client& c, const std::string& id) {
  v1::GetRolloutRequest req;
  req.set_rollout_id(id);
  v1::GetRolloutResponse resp;
  grpc::Status s = c.rollouts().GetRollout(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    PrintRolloutStatus(resp);
  }
  return kExitOk;
}

int RolloutList(Client& c, const Args& args) {
  v1::ListRolloutsRequest req;
  req.set_content_type(args.Get("content-type"));
  req.set_release_id(args.Get("release"));
  v1::ListRolloutsResponse resp;
  grpc::Status s = c.rollouts().ListRollouts(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    for (const Rollout& r : resp.rollouts()) PrintRolloutLine(r);
  }
  return kExitOk;
}

int RolloutAction(Client& c, const std::string& action, const std::string& id,
                  const Args& args) {
  v1::RolloutActionRequest req;
  req.set_rollout_id(id);
  req.set_reason(args.Get("reason"));
  Rollout resp;
  auto ctx = c.Context();
  grpc::Status s;
  if (action == "pause") {
    s = c.rollouts().PauseRollout(ctx.get(), req, &resp);
  } else if (action == "resume") {
    s = c.rollouts().ResumeRollout(ctx.get(), req, &resp);
  } else if (action == "abort") {
    s = c.rollouts().AbortRollout(ctx.get(), req, &resp);
  } else {
    s = c.rollouts().PromoteRollout(ctx.get(), req, &resp);
  }
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    std::printf("rollout %s: %s, stage %s\n", resp.id().c_str(),
                StateName(resp.state()).c_str(), StageLabel(resp).c_str());
  }
  return kExitOk;
}

// What makes a watch line worth printing again.
std::string WatchKey(const v1::GetRolloutResponse& st) {
  const Rollout& r = st.rollout();
  std::string key = absl::StrCat(r.version(), "/", r.state(), "/", r.stage(),
                                 "/", st.telemetry().treatment_hosts(), "/",
                                 st.telemetry().control_hosts(), "/",
                                 SignalsLine(st.telemetry()), "/");
  if (r.has_last_decision()) {
    const ringfence::Decision& d = r.last_decision();
    absl::StrAppend(&key, d.verdict(), "/",
                    d.evidence_size() > 0 ? d.evidence(0).rule() : "");
  }
  return key;
}

std::string WatchLine(const v1::GetRolloutResponse& st) {
  const Rollout& r = st.rollout();
  std::string line = absl::StrFormat(
      "%s  %-9s stage %-16s exposed %d (budget %d)  control %d  %s",
      absl::FormatTime("%H:%M:%S", absl::Now(), absl::LocalTimeZone()),
      StateName(r.state()), StageLabel(r), st.telemetry().treatment_hosts(),
      st.stage_exposure_budget(), st.telemetry().control_hosts(),
      SignalsLine(st.telemetry()));
  if (r.has_last_decision()) {
    const ringfence::Decision& d = r.last_decision();
    absl::StrAppend(&line, "  | ",
                    absl::AsciiStrToUpper(ringfence::VerdictName(d.verdict())),
                    d.evidence_size() > 0
                        ? absl::StrCat(" (", d.evidence(0).rule(), ")")
                        : "");
  }
  return line;
}

int RolloutWatch(Client& c, const std::string& id, const Args& args) {
  absl::Duration interval = absl::Seconds(1);
  if (args.Has("interval") &&
      (!absl::ParseDuration(args.Get("interval"), &interval) ||
       interval < absl::Milliseconds(50))) {
    return Usage("--interval must be a duration of at least 50ms, e.g. 1s");
  }
  const bool tty = isatty(STDOUT_FILENO) != 0 && !c.json();
  std::string last_key;
  uint64_t last_seq = 0;
  bool line_open = false;  // TTY: a status line without its newline
  while (true) {
    v1::GetRolloutRequest req;
    req.set_rollout_id(id);
    req.set_include_decisions(true);
    req.set_decisions_after_seq(last_seq);
    v1::GetRolloutResponse st;
    grpc::Status s = c.rollouts().GetRollout(c.Context().get(), req, &st);
    if (!s.ok()) {
      if (line_open) std::printf("\n");
      return Fail(s);
    }
    for (const ringfence::Decision& d : st.decisions()) {
      last_seq = std::max(last_seq, d.seq());
      if (c.json()) continue;
      if (line_open) std::printf("\n");
      line_open = false;
      std::printf(
          "  decision #%llu, stage %s: %s\n",
          static_cast<unsigned long long>(d.seq()),
          ringfence::StageName(st.rollout().plan(), static_cast<int>(d.stage()))
              .c_str(),
          d.summary().c_str());
    }
    const bool terminal = ringfence::IsTerminal(st.rollout().state());
    const std::string key = WatchKey(st);
    if (c.json()) {
      if (key != last_key) {
        st.clear_decisions();
        std::printf("%s\n", Json(st, /*one_line=*/true).c_str());
      }
    } else if (tty) {
      std::printf("\r\033[K%s", WatchLine(st).c_str());
      line_open = true;
    } else if (key != last_key) {
      std::printf("%s\n", WatchLine(st).c_str());
    }
    std::fflush(stdout);
    last_key = key;
    if (terminal) {
      if (line_open) std::printf("\n");
      if (!c.json()) {
        std::printf("rollout %s %s%s\n", id.c_str(),
                    StateName(st.rollout().state()).c_str(),
                    st.rollout().reason().empty()
                        ? ""
                        : absl::StrCat(": ", st.rollout().reason()).c_str());
      }
      return st.rollout().state() == ringfence::config::v1::COMPLETED
                 ? kExitOk
                 : kExitRejected;
    }
    absl::SleepFor(interval);
  }
}

int EmergencyStop(Client& c, const Args& args) {
  if (args.Has("clear")) {
    v1::ClearEmergencyStopRequest req;
    req.set_content_type(args.Get("content-type"));
    req.set_reason(args.Get("reason"));
    v1::ClearEmergencyStopResponse resp;
    grpc::Status s =
        c.rollouts().ClearEmergencyStop(c.Context().get(), req, &resp);
    if (!s.ok()) return Fail(s);
    if (c.json()) {
      std::printf("%s\n", Json(resp).c_str());
    } else {
      std::printf("emergency stop of %s cleared\n", req.content_type().c_str());
    }
    return kExitOk;
  }
  v1::EmergencyStopRequest req;
  req.set_content_type(args.Get("content-type"));
  req.set_reason(args.Get("reason"));
  v1::EmergencyStopResponse resp;
  grpc::Status s = c.rollouts().EmergencyStop(c.Context().get(), req, &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
  } else {
    std::printf("emergency stop of %s; halted rollouts: %s\n",
                resp.content_type().c_str(),
                resp.halted_rollout_ids().empty()
                    ? "none"
                    : absl::StrJoin(resp.halted_rollout_ids(), ", ").c_str());
  }
  return kExitOk;
}

int GateCheck(Client& c, const Args& args) {
  absl::Duration timeout = absl::ZeroDuration();
  absl::Duration interval = absl::Seconds(1);
  if (args.Has("timeout") &&
      (!absl::ParseDuration(args.Get("timeout"), &timeout) ||
       timeout < absl::ZeroDuration())) {
    return Usage("--timeout must be a duration, e.g. 30m");
  }
  if (args.Has("interval") &&
      (!absl::ParseDuration(args.Get("interval"), &interval) ||
       interval < absl::Milliseconds(50))) {
    return Usage("--interval must be a duration of at least 50ms");
  }
  const bool wait = args.Has("wait");
  if (wait && !args.Has("timeout")) timeout = absl::InfiniteDuration();
  const absl::Time deadline = absl::Now() + timeout;
  v1::CheckGateRequest req;
  req.set_release_id(args.Get("release"));
  req.set_stage(args.Get("stage"));
  while (true) {
    v1::CheckGateResponse resp;
    grpc::Status s = c.rollouts().CheckGate(c.Context().get(), req, &resp);
    const bool retry = wait && absl::Now() < deadline &&
                       s.error_code() == grpc::StatusCode::UNAVAILABLE;
    if (!s.ok() && !retry) return Fail(s);
    if (s.ok() && (resp.status() != v1::GATE_PENDING || !wait ||
                   absl::Now() >= deadline)) {
      int code = kExitNotYet;
      const char* word = "PENDING";
      if (resp.status() == v1::GATE_CLEARED) {
        code = kExitOk;
        word = "CLEARED";
      } else if (resp.status() == v1::GATE_REJECTED) {
        code = kExitRejected;
        word = "REJECTED";
      }
      if (c.json()) {
        std::printf("%s\n", Json(resp).c_str());
      } else {
        std::printf("%s: %s\n", word, resp.explanation().c_str());
      }
      return code;
    }
    absl::SleepFor(std::min(interval, deadline - absl::Now()));
  }
}

// ---- Offline commands
// ---------------------------------------------------------

// Reads `path` whole; false (after a message) if it cannot be read.

// Writes `contents` to a new file `path` with `mode`; `exclusive` refuses
// to replace an existing file. False (after a message) on failure.
bool WriteNewFile(const std::string& path, const std::string& contents,
                  mode_t mode, bool exclusive) {
  const int fd = open(
      path.c_str(),
      O_WRONLY | O_CREAT | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC), mode);
  if (fd < 0) {
    std::fprintf(stderr, "ringctl keygen: cannot create %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return false;
  }
  bool ok = fchmod(fd, mode) == 0;
  size_t done = 0;
  while (ok && done < contents.size()) {
    const ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) ok = false;
  if (!ok) {
    std::fprintf(stderr, "ringctl keygen: cannot write %s: %s\n", path.c_str(),
                 std::strerror(errno));
  }
  return ok;
}

// Prints the effective gate rules of every stage of the plan in `path`
// (policy.h ExplainPlan): exit 0, or 2 naming the field if the plan is
// refused.
int PlanExplain(const std::string& path) {
  ringfence::Plan plan;
  absl::Status s = ringfence::LoadMessageFile(path, &plan);
  if (s.ok()) s = ringfence::ValidatePlan(plan);
  if (!s.ok()) {
    std::fprintf(stderr, "ringctl: %s: %s\n", path.c_str(),
                 std::string(s.message()).c_str());
    return absl::IsNotFound(s) ? kExitError : kExitRejected;
  }
  std::printf("%s", ringfence::ExplainPlan(plan).c_str());
  return kExitOk;
}

int ValidateFile(const Args& args) {
  const std::string& path = args.positional[1];
  ringfence::ContentSchema schema;
  ringfence::CapabilityManifest manifest;
  absl::Status s = ringfence::LoadMessageFile(args.Get("schema"), &schema);
  if (!s.ok()) {
    std::fprintf(stderr, "ringctl validate: --schema %s: %s\n",
                 args.Get("schema").c_str(), std::string(s.message()).c_str());
    return kExitError;
  }
  s = ringfence::LoadMessageFile(args.Get("capabilities"), &manifest);
  if (!s.ok()) {
    std::fprintf(stderr, "ringctl validate: --capabilities %s: %s\n",
                 args.Get("capabilities").c_str(),
                 std::string(s.message()).c_str());
    return kExitError;
  }
  std::optional<ringfence::AgentRange> targets;
  if (args.Has("target-agents")) {
    absl::StatusOr<ringfence::AgentRange> range =
        ringfence::ParseAgentRange(args.Get("target-agents"));
    if (!range.ok()) {
      return Usage(absl::StrCat("--target-agents: ", range.status().message()));
    }
    targets = *std::move(range);
  }
  std::string payload;
  if (!ReadWholeFile("validate", path, &payload)) return kExitError;
  absl::StatusOr<ringfence::ValidationReport> report =
      ringfence::ValidateContent(payload, schema, manifest, targets);
  if (!report.ok()) {
    std::fprintf(stderr, "ringctl validate: %s\n",
                 std::string(report.status().message()).c_str());
    return kExitError;
  }
  if (args.Has("json")) {
    std::printf("%s\n", Json(ringfence::ToProto(*report)).c_str());
  } else {
    for (const ringfence::Finding& f : report->findings) {
      std::string where;
      if (!f.instance.empty())
        absl::StrAppend(&where, " instance=", f.instance);
      if (!f.field.empty()) {
        absl::StrAppend(&where, " field=", f.field, "(", f.field_index, ")");
      } else if (f.field_index != 0) {
        absl::StrAppend(&where, " field=#", f.field_index);
      }
      if (!f.agents.empty()) absl::StrAppend(&where, " agents=", f.agents);
      std::printf("%-7s %s%s\n        %s\n",
                  std::string(ringfence::SeverityName(f.severity)).c_str(),
                  f.code.c_str(), where.c_str(), f.message.c_str());
    }
    std::printf("%s: %s: %d error(s), %d warning(s)\n", path.c_str(),
                report->ok ? "valid" : "REJECTED", report->errors(),
                report->warnings());
  }
  return report->ok ? kExitOk : kExitRejected;
}

int KeyGen(const Args& args) {
  const std::string prefix = args.Get("out");
  absl::StatusOr<ringfence::KeyPair> keys = ringfence::GenerateKeyPair();
  if (!keys.ok()) {
    std::fprintf(stderr, "ringctl keygen: %s\n",
                 std::string(keys.status().message()).c_str());
    return kExitError;
  }
  absl::StatusOr<std::string> key_id =
      ringfence::PublicKeyFingerprint(keys->public_pem);
  if (!key_id.ok()) {
    std::fprintf(stderr, "ringctl keygen: %s\n",
                 std::string(key_id.status().message()).c_str());
    return kExitError;
  }
  const std::string key_path = prefix + ".key";
  const std::string pub_path = prefix + ".pub";
  if (!WriteNewFile(key_path, keys->private_pem, 0600, /*exclusive=*/true)) {
    return kExitError;
  }
  if (!WriteNewFile(pub_path, keys->public_pem, 0644, /*exclusive=*/false)) {
    unlink(key_path.c_str());
    return kExitError;
  }
  if (args.Has("json")) {
    std::printf(
        "{\"key_id\": \"%s\", \"private_key\": \"%s\", "
        "\"public_key\": \"%s\"}\n",
        key_id->c_str(), absl::CHexEscape(key_path).c_str(),
        absl::CHexEscape(pub_path).c_str());
  } else {
    std::printf("%s\n", key_id->c_str());
    std::fprintf(stderr, "wrote %s (private, keep secret) and %s\n",
                 key_path.c_str(), pub_path.c_str());
  }
  return kExitOk;
}

// The public key PEM of a private key PEM; empty if it is not a key.
std::string PublicPemOf(const std::string& private_pem) {
  std::string out;
  BIO* in =
      BIO_new_mem_buf(private_pem.data(), static_cast<int>(private_pem.size()));
  if (in == nullptr) return out;
  EVP_PKEY* key = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  if (key == nullptr) return out;
  BIO* mem = BIO_new(BIO_s_mem());
  if (mem != nullptr && PEM_write_bio_PUBKEY(mem, key) == 1) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(mem, &data);
    if (n > 0) out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(mem);
  EVP_PKEY_free(key);
  return out;
}

int Sign(const Args& args) {
  Release release;
  if (!ReleaseFromArgs(args, /*require_digest=*/true, &release)) {
    return kExitError;
  }
  std::string private_pem;
  if (!ReadWholeFile("sign", args.Get("key"), &private_pem)) return kExitError;
  std::string key_id = args.Get("key-id");
  if (key_id.empty()) {
    absl::StatusOr<std::string> fp =
        ringfence::PublicKeyFingerprint(PublicPemOf(private_pem));
    if (!fp.ok()) {
      std::fprintf(stderr,
                   "ringctl sign: --key %s: not an Ed25519 private key\n",
                   args.Get("key").c_str());
      return kExitError;
    }
    key_id = *std::move(fp);
  }
  absl::StatusOr<std::string> signature =
      ringfence::SignRelease(release, private_pem, key_id);
  if (!signature.ok()) {
    std::fprintf(stderr, "ringctl sign: %s\n",
                 std::string(signature.status().message()).c_str());
    return kExitError;
  }
  const std::string b64 = absl::Base64Escape(*signature);
  if (args.Has("json")) {
    std::printf("{\"key_id\": \"%s\", \"signature\": \"%s\"}\n",
                absl::CHexEscape(key_id).c_str(), b64.c_str());
  } else {
    std::printf("%s\n", b64.c_str());
  }
  return kExitOk;
}

// Runs an offline command (one of kOfflineCommands).
int RunOffline(const Args& args) {
  std::string error;
  const std::string& cmd = args.positional[0];
  if (cmd == "validate") {
    if (!CheckArgs(args, 1, 1, {"schema", "capabilities", "target-agents"},
                   {"schema", "capabilities"}, &error)) {
      return Usage(error);
    }
    return ValidateFile(args);
  }
  if (cmd == "keygen") {
    if (!CheckArgs(args, 1, 0, {"out"}, {"out"}, &error)) return Usage(error);
    return KeyGen(args);
  }
  if (cmd == "plan" && args.positional.size() > 1 &&
      args.positional[1] == "explain") {
    if (!CheckArgs(args, 2, 1, {}, {}, &error)) return Usage(error);
    return PlanExplain(args.positional[2]);
  }
  if (cmd == "sign") {
    if (!CheckArgs(
            args, 1, 0,
            {"key", "id", "content-type", "digest", "size", "version", "key-id",
             "payload", "min-agent-version", "max-agent-version", "platforms"},
            {"key", "id", "content-type"}, &error)) {
      return Usage(error);
    }
    return Sign(args);
  }
  return Usage(absl::StrCat("unknown command \"", cmd, "\""));
}

int Run(int argc, char** argv) {
  std::string error;
  const Args args = ParseArgs(argc, argv, &error);
  if (!error.empty()) return Usage(error);
  if (args.Has("help")) {
    std::printf("%s", kUsage);
    return kExitOk;
  }
  const std::vector<std::string>& pos = args.positional;
  if (pos.empty()) return Usage("missing command");
  if (pos[0] == "simulate") {
    // Offline: runs the fleet simulator in-process, no server involved.
    if (!CheckArgs(args, 1, 0,
                   {"plan", "scenario", "seeds", "seed-offset", "rehearse",
                    "deciders", "threads", "runs", "horizon"},
                   {"plan", "scenario"}, &error)) {
      return Usage(error);
    }
    ringfence::SimulateCommand c;
    c.plan_path = args.Get("plan");
    c.scenario_path = args.Get("scenario");
    c.rehearse = args.Get("rehearse");
    c.runs_path = args.Get("runs");
    if (args.Has("deciders")) c.deciders = args.Get("deciders");
    if ((args.Has("seeds") && !absl::SimpleAtoi(args.Get("seeds"), &c.seeds)) ||
        (args.Has("seed-offset") &&
         !absl::SimpleAtoi(args.Get("seed-offset"), &c.seed_offset)) ||
        (args.Has("threads") &&
         !absl::SimpleAtoi(args.Get("threads"), &c.threads))) {
      return Usage("--seeds, --seed-offset and --threads take numbers");
    }
    if (args.Has("horizon") &&
        (!absl::ParseDuration(args.Get("horizon"), &c.horizon) ||
         c.horizon < absl::ZeroDuration())) {
      return Usage("--horizon takes a duration >= 0, e.g. 24h");
    }
    c.json = args.Has("json");
    const absl::Status s = ringfence::RunSimulateCommand(c, stdout, stderr);
    if (!s.ok()) {
      std::fprintf(stderr, "ringctl simulate: %s\n",
                   std::string(s.message()).c_str());
      return kExitError;
    }
    return kExitOk;
  }
  if (kOfflineCommands.count(pos[0]) > 0) return RunOffline(args);
  absl::StatusOr<std::optional<ringfence::ClientTls>> tls =
      ringfence::LoadClientTls(args.Get("tls-ca"), args.Get("tls-cert"),
                               args.Get("tls-key"));
  if (!tls.ok()) {
    return Usage(absl::StrCat("--", tls.status().message()));
  }
  if (args.Has("tls-server-name")) {
    if (!tls->has_value()) {
      return Usage("--tls-server-name needs TLS (--tls-ca or --tls-cert)");
    }
    (*tls)->server_name_override = args.Get("tls-server-name");
  }
  Client client(args, *tls);
  if (!client.SetRpcTimeout(args.Get("rpc-timeout"))) {
    return Usage("--rpc-timeout must be a positive duration, e.g. 10s");
  }
  const std::string cmd = pos[0];
  const std::string sub = pos.size() > 1 ? pos[1] : "";
  auto check = [&](size_t words, size_t positional,
                   const std::set<std::string>& allowed,
                   const std::set<std::string>& required) {
    return CheckArgs(args, words, positional, allowed, required, &error);
  };
  if (cmd == "release" && sub == "create") {
    if (!check(2, 0,
               {"id", "content-type", "digest", "size", "version", "fetch-url",
                "platforms", "min-agent-version", "max-agent-version",
                "signature", "payload"},
               {"id", "content-type"})) {
      return Usage(error);
    }
    return ReleaseCreate(client, args);
  }
  if (cmd == "release" && sub == "validate") {
    if (!check(2, 0,
               {"id", "content-type", "digest", "size", "version", "fetch-url",
                "platforms", "min-agent-version", "max-agent-version",
                "signature", "payload"},
               {})) {
      return Usage(error);
    }
    return ReleaseValidate(client, args);
  }
  if (cmd == "release" && sub == "get") {
    if (!check(2, 1, {}, {})) return Usage(error);
    return ReleaseGet(client, pos[2]);
  }
  if (cmd == "release" && sub == "list") {
    if (!check(2, 0, {"content-type"}, {})) return Usage(error);
    return ReleaseList(client, args);
  }
  if (cmd == "rollout" && sub == "start") {
    if (!check(2, 0,
               {"release", "plan", "reason", "id", "baseline", "pending",
                "no-baseline"},
               {"release", "plan", "reason"})) {
      return Usage(error);
    }
    return RolloutStart(client, args);
  }
  if (cmd == "rollout" && sub == "status") {
    if (!check(2, 1, {}, {})) return Usage(error);
    return RolloutStatus(client, pos[2]);
  }
  if (cmd == "rollout" && sub == "list") {
    if (!check(2, 0, {"content-type", "release"}, {})) return Usage(error);
    return RolloutList(client, args);
  }
  if (cmd == "rollout" && (sub == "pause" || sub == "resume" ||
                           sub == "abort" || sub == "promote")) {
    if (!check(2, 1, {"reason"}, {"reason"})) return Usage(error);
    return RolloutAction(client, sub, pos[2], args);
  }
  if (cmd == "rollout" && sub == "watch") {
    if (!check(2, 1, {"interval"}, {})) return Usage(error);
    return RolloutWatch(client, pos[2], args);
  }
  if (cmd == "emergency-stop") {
    if (!check(1, 0, {"content-type", "reason", "clear"},
               {"content-type", "reason"})) {
      return Usage(error);
    }
    return EmergencyStop(client, args);
  }
  if (cmd == "gate" && sub == "check") {
    if (!check(2, 0, {"release", "stage", "wait", "timeout", "interval"},
               {"release"})) {
      return Usage(error);
    }
    return GateCheck(client, args);
  }
  return Usage(
      absl::StrCat("unknown command \"", absl::StrJoin(pos, " "), "\""));
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }
