// The C API of ringfence/agent_c.h over the agent core, the POSIX file
// system and GrpcAgentTransport. No exception or C++ type crosses it.
#include "ringfence/agent_c.h"

#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "ringfence/agent.h"
#include "ringfence/agent_fs.h"
#include "ringfence/clock.h"
#include "ringfence/signing.h"
#include "service/agent/status_text.h"
#include "service/agent_transport.h"
#include "service/tls.h"

namespace {

std::string Str(const char* s) { return s == nullptr ? "" : s; }

size_t CopyOut(const std::string& text, char* buf, size_t len) {
  if (buf != nullptr && len > 0) {
    const size_t n = std::min(text.size(), len - 1);
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return text.size();
}

int Report(const absl::Status& s, char* err, size_t err_len) {
  CopyOut(s.ok() ? "" : std::string(s.message()), err, err_len);
  return static_cast<int>(s.code());
}

class CHooks final : public ringfence::ContentHooks {
 public:
  explicit CHooks(const rf_content_hooks& hooks) : hooks_(hooks) {}

  absl::StatusOr<std::string> Fetch(const ringfence::Release& r) override {
    if (hooks_.fetch == nullptr) {
      return absl::FailedPreconditionError("no fetch hook");
    }
    char* data = nullptr;
    size_t size = 0;
    const int rc = hooks_.fetch(hooks_.user, r.id().c_str(),
                                r.fetch_url().c_str(), &data, &size);
    std::string out;
    if (data != nullptr) {
      out.assign(data, size);
      std::free(data);
    }
    if (rc != 0) {
      return absl::UnavailableError(absl::StrCat("fetch hook returned ", rc));
    }
    return out;
  }
  absl::Status Load(const ringfence::Release& r,
                    const std::string& payload_path) override {
    if (hooks_.load == nullptr) return absl::OkStatus();
    const int rc =
        hooks_.load(hooks_.user, r.id().c_str(), payload_path.c_str());
    return rc == 0
               ? absl::OkStatus()
               : absl::InternalError(absl::StrCat("load hook returned ", rc));
  }
  absl::Status Unload() override {
    if (hooks_.unload == nullptr) return absl::OkStatus();
    const int rc = hooks_.unload(hooks_.user);
    return rc == 0
               ? absl::OkStatus()
               : absl::InternalError(absl::StrCat("unload hook returned ", rc));
  }

 private:
  rf_content_hooks hooks_;
};

}  // namespace

struct rf_agent {
  std::unique_ptr<ringfence::AgentFileSystem> fs;
  std::unique_ptr<ringfence::GrpcAgentTransport> transport;
  std::unique_ptr<CHooks> hooks;
  std::unique_ptr<ringfence::Agent> agent;
};

extern "C" {

void rf_agent_options_init(rf_agent_options* o) {
  if (o == nullptr) return;
  std::memset(o, 0, sizeof(*o));
  o->poll_interval_s = 60;
  o->heartbeat_interval_s = 60;
  o->boot_loop_limit = 3;
}

int rf_agent_start(const rf_agent_options* o, const rf_content_hooks* hooks,
                   rf_agent** out, char* err, size_t err_len) {
  if (out != nullptr) *out = nullptr;
  if (o == nullptr || hooks == nullptr || out == nullptr) {
    return Report(
        absl::InvalidArgumentError("options, hooks and out must not be NULL"),
        err, err_len);
  }
  if (o->server == nullptr || o->server[0] == '\0') {
    return Report(absl::InvalidArgumentError("server: required"), err, err_len);
  }
  if (!(o->poll_interval_s > 0) || !(o->heartbeat_interval_s > 0) ||
      o->poll_interval_s > 86400 || o->heartbeat_interval_s > 86400) {
    return Report(absl::InvalidArgumentError(
                      "poll_interval_s, heartbeat_interval_s: must be in "
                      "(0, 86400]"),
                  err, err_len);
  }
  if (o->num_labels > 0 && o->labels == nullptr) {
    return Report(
        absl::InvalidArgumentError("labels: NULL with num_labels > 0"), err,
        err_len);
  }
  ringfence::AgentOptions options;
  options.identity.host_id = Str(o->host_id);
  options.identity.content_type = Str(o->content_type);
  options.identity.tenant = Str(o->tenant);
  for (size_t i = 0; i < o->num_labels; ++i) {
    options.identity.labels.push_back(Str(o->labels[i]));
  }
  options.identity.agent_version = Str(o->agent_version);
  options.identity.platform = Str(o->platform);
  options.state_dir = Str(o->state_dir);
  options.require_signature = o->allow_unsigned == 0;
  options.poll_interval = absl::Seconds(o->poll_interval_s);
  options.heartbeat_interval = absl::Seconds(o->heartbeat_interval_s);
  options.boot_loop_limit = o->boot_loop_limit;
  options.seed = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  if (o->trusted_keys_file != nullptr && o->trusted_keys_file[0] != '\0') {
    absl::StatusOr<ringfence::TrustedKeys> keys =
        ringfence::LoadTrustedKeysFile(o->trusted_keys_file);
    if (!keys.ok()) return Report(keys.status(), err, err_len);
    options.trusted_keys = *std::move(keys);
  }
  absl::StatusOr<std::optional<ringfence::ClientTls>> tls =
      ringfence::LoadClientTls(Str(o->tls_ca), Str(o->tls_cert),
                               Str(o->tls_key));
  if (!tls.ok()) return Report(tls.status(), err, err_len);

  auto a = std::make_unique<rf_agent>();
  a->fs = ringfence::NewPosixFileSystem();
  a->transport = std::make_unique<ringfence::GrpcAgentTransport>(
      ringfence::MakeChannel(Str(o->server), *tls), Str(o->token));
  a->hooks = std::make_unique<CHooks>(*hooks);
  absl::StatusOr<std::unique_ptr<ringfence::Agent>> agent =
      ringfence::Agent::Start(options, a->fs.get(), &ringfence::RealClock(),
                              a->transport.get(), a->hooks.get());
  if (!agent.ok()) return Report(agent.status(), err, err_len);
  a->agent = *std::move(agent);
  *out = a.release();
  return Report(absl::OkStatus(), err, err_len);
}

int rf_agent_tick(rf_agent* agent, char* err, size_t err_len) {
  if (agent == nullptr) {
    return Report(absl::InvalidArgumentError("agent: NULL"), err, err_len);
  }
  return Report(agent->agent->Tick(), err, err_len);
}

int64_t rf_agent_next_wakeup_unix_ms(const rf_agent* agent) {
  if (agent == nullptr) return 0;
  return absl::ToUnixMillis(agent->agent->NextWakeup());
}

size_t rf_agent_status_text(const rf_agent* agent, char* buf, size_t len) {
  if (agent == nullptr) return CopyOut("", buf, len);
  return CopyOut(ringfence::agent::AgentStatusText(agent->agent->GetStatus()),
                 buf, len);
}

int rf_agent_stop(rf_agent* agent, char* err, size_t err_len) {
  if (agent == nullptr) {
    return Report(absl::InvalidArgumentError("agent: NULL"), err, err_len);
  }
  return Report(agent->agent->Stop(), err, err_len);
}

int rf_agent_report(rf_agent* agent, int kind, const char* signal, char* err,
                    size_t err_len) {
  if (agent == nullptr) {
    return Report(absl::InvalidArgumentError("agent: NULL"), err, err_len);
  }
  if (kind != RF_REPORT_CRASH && kind != RF_REPORT_SIGNAL) {
    return Report(
        absl::InvalidArgumentError("kind: RF_REPORT_CRASH or RF_REPORT_SIGNAL"),
        err, err_len);
  }
  return Report(agent->agent->Report(static_cast<ringfence::EventType>(kind),
                                     signal == nullptr ? "" : signal),
                err, err_len);
}

void rf_agent_free(rf_agent* agent) { delete agent; }

}  // extern "C"
