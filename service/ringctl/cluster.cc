// ringctl cluster status: the replicas sharing the database, which one
// leads, and how fresh each one's view is (any replica answers).
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "ringfence/v1/ringfence.grpc.pb.h"
#include "service/ringctl/client.h"
#include "service/ringctl/commands.h"
#include "service/ringctl/format.h"

namespace ringfence::ringctl {
namespace {

// "1.25s", "-0.3s", "12ms": to the millisecond.
std::string Age(const google::protobuf::Duration& d) {
  return absl::FormatDuration(
      absl::Trunc(absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos()),
                  absl::Milliseconds(1)));
}

const char* RoleName(v1::ReplicaRole role) {
  switch (role) {
    case v1::REPLICA_ROLE_LEADER:
      return "leader";
    case v1::REPLICA_ROLE_STANDBY:
      return "standby";
    default:
      return "unknown";
  }
}

int Status(const Invocation& inv) {
  Client& c = inv.client();
  v1::GetClusterStatusResponse resp;
  grpc::Status s = c.cluster().GetClusterStatus(
      c.Context().get(), v1::GetClusterStatusRequest(), &resp);
  if (!s.ok()) return Fail(s);
  if (c.json()) {
    std::printf("%s\n", Json(resp).c_str());
    return kExitOk;
  }
  std::printf("store %s; answered by %s (%s)\n", resp.store().c_str(),
              resp.answered_by().c_str(), RoleName(resp.answered_by_role()));
  const v1::ClusterLease& lease = resp.lease();
  const bool expired =
      lease.expires_in().seconds() < 0 || lease.expires_in().nanos() < 0;
  if (resp.store() == "postgres") {
    if (lease.holder().empty()) {
      std::printf("lease: never taken\n");
    } else {
      std::printf("lease: %s, epoch %lld, %s %s, renewed %s ago\n",
                  lease.holder().c_str(), static_cast<long long>(lease.epoch()),
                  expired ? "EXPIRED" : "expires in",
                  expired ? "(a standby takes it at its next tick)"
                          : Age(lease.expires_in()).c_str(),
                  Age(lease.since_renewal()).c_str());
    }
  }
  std::printf("%-32s %-24s %-8s %6s  %s\n", "REPLICA", "ADDRESS", "ROLE",
              "EPOCH", "LAST SEEN");
  for (const v1::ClusterReplica& r : resp.replicas()) {
    std::string role = RoleName(r.role());
    // A leader's row outlives it: the lease says who leads now.
    if (r.role() == v1::REPLICA_ROLE_LEADER && resp.store() == "postgres" &&
        (r.replica_id() != lease.holder() || r.epoch() != lease.epoch() ||
         expired)) {
      role = "leader (stale)";
    }
    std::printf("%-32s %-24s %-8s %6lld  %s ago\n", r.replica_id().c_str(),
                r.address().empty() ? "-" : r.address().c_str(), role.c_str(),
                static_cast<long long>(r.epoch()),
                Age(r.last_seen_age()).c_str());
  }
  return kExitOk;
}

}  // namespace

void AddClusterCommands(CommandLine& cli) {
  cli.DescribeNoun("cluster", "the replicas of a replicated ringfenced");
  CLI::App* status = cli.AddCommand(
      {"cluster", "status"}, "the replicas, which one leads, the lease",
      CommandLine::kOnline, [](const Invocation& inv) { return Status(inv); });
  cli.SetDetails(
      status,
      "Any replica answers, a standby too (--server may name any). Each "
      "replica records itself in the database every tick: LAST SEEN is how "
      "long ago, by the database's clock (about a tick at most while it "
      "runs). The lease line says who leads, until when, and how long ago "
      "the leader last renewed (about a tick while it is healthy). With the "
      "SQLite store: the one server, leading. --json prints the "
      "GetClusterStatusResponse.");
}

}  // namespace ringfence::ringctl
